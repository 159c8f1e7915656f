//! `/healthz`, `/readyz` and `/metrics`.

use super::state::AppState;
use actix_web::{web, HttpResponse};

/// 200 while the process and its supervisor live (this handler runs only then).
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(r#"{"status":"ok"}"#)
}

/// 200 once startup is done; 503 before and while shutting down.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.is_ready() {
        HttpResponse::Ok().content_type("application/json").body(r#"{"status":"ready"}"#)
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .body(r#"{"error":"not ready","code":"not_ready"}"#)
    }
}

/// Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
