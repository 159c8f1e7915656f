//! `/healthz`, `/readyz` and `/metrics`.

use super::state::AppState;
use actix_web::{web, HttpResponse};

/// 200 while the process and its supervisor live and every actor answers within the
/// health loop's period; 503 with the reason otherwise (what systemd's watchdog sees).
pub(super) async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    match state.liveness.verdict() {
        Ok(()) => HttpResponse::Ok().content_type("application/json").body(r#"{"status":"ok"}"#),
        Err(why) => HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(super::error::json_line(&serde_json::json!({"error": why, "code": "unhealthy"}))),
    }
}

/// 200 once startup is done; 503 before and while shutting down.
pub(super) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.is_ready() {
        HttpResponse::Ok().content_type("application/json").body(r#"{"status":"ready"}"#)
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body("{\"error\":\"not ready\",\"code\":\"not_ready\"}\n")
    }
}

/// Prometheus text format.
pub(super) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
