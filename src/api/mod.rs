//! The HTTP API of SPEC §5 on every configured listener (TCP and `unix:` sockets).

pub mod allow;
mod auth;
mod caches;
pub mod error;
mod health;
pub mod rate_limit;
mod refresh_query;
pub mod security;
pub mod state;
pub mod tls;
pub mod tokens;
pub mod webhooks;

pub use security::Security;
pub use state::{ApiPolicy, AppState, CachePolicy};

use crate::config::{ListenAddr, Settings};
use crate::exit::{Fatal, CANTCREAT, CONFIG};
use actix_web::{web, App, HttpServer};
use std::os::unix::fs::PermissionsExt;

/// Routes, shared by every listener.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/v1/caches", web::get().to(caches::list))
        .route("/v1/caches/{name}", web::get().to(caches::get))
        .route("/v1/caches/{name}", web::put().to(caches::put))
        .route("/v1/caches/{name}", web::delete().to(caches::delete))
        .route("/v1/caches/{name}/meta", web::get().to(caches::meta))
        .route("/v1/caches/{name}/refresh", web::post().to(caches::refresh))
        .route("/v1/webhooks/strava", web::get().to(webhooks::handshake))
        .route("/v1/webhooks/strava", web::post().to(webhooks::event))
        .default_service(web::to(not_found));
}

/// Any other path or method: a JSON 404 like every other error.
async fn not_found() -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    error::ApiError::new(actix_web::http::StatusCode::NOT_FOUND, "not_found", "no such resource").error_response()
}

/// Builds the policy the API enforces from the settings (again on every reload).
pub fn policy_from(settings: &Settings) -> ApiPolicy {
    ApiPolicy {
        caches: settings
            .caches
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    CachePolicy {
                        max_size: c.max_size,
                        refresh_every: c.refresh_every,
                        has_source: c.source.is_some(),
                        max_stale: settings.refresh.max_stale,
                    },
                )
            })
            .collect(),
        max_body: settings.api.max_body,
        postgres_enabled: settings.postgres.enabled,
        strava_webhook: settings
            .webhooks
            .strava_verify_token
            .clone()
            .map(|verify_token| webhooks::StravaWebhook { verify_token, data_dir: settings.data_dir.clone() }),
    }
}

/// Binds every listener and returns the server, not yet running. actix-web's signal
/// handling is off: `signals.rs` owns every signal.
///
/// # Errors
/// Exit 78 for an address that cannot be bound, 73 for a socket path that cannot be
/// created.
pub fn bind(settings: &Settings, state: web::Data<AppState>) -> Result<actix_web::dev::Server, Fatal> {
    let max_body = usize::try_from(settings.api.max_body).unwrap_or(usize::MAX);
    let tls = match &state.tls {
        Some(resolver) => Some(tls::server_config(resolver.clone()).map_err(|e| {
            Fatal::new(CONFIG, format!("config error: api.tls_cert: cannot build the TLS configuration: {e}"))
        })?),
        None => None,
    };
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .wrap(actix_web::middleware::from_fn(auth::guard))
            .configure(routes)
    })
    .disable_signals()
    .shutdown_timeout(5);
    for (i, listen) in settings.api.listen.iter().enumerate() {
        match listen {
            ListenAddr::Tcp(addr) => {
                let bound = match &tls {
                    Some(config) => server.bind_rustls_0_23(addr.as_str(), config.clone()),
                    None => server.bind(addr.as_str()),
                };
                server = bound.map_err(|e| {
                    Fatal::new(CONFIG, format!("config error: api.listen[{i}]: cannot listen on {addr}: {e}"))
                })?;
                tracing::info!(address = %addr, tls = tls.is_some(), "listening");
            }
            ListenAddr::Unix(path) => {
                if path.exists() {
                    // A socket left by a previous run; the data_dir lock says none is running now.
                    let _ = std::fs::remove_file(path);
                }
                server = server
                    .bind_uds(path)
                    .map_err(|e| Fatal::new(CANTCREAT, format!("cannot create unix socket {}: {e}", path.display())))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                    .map_err(|e| Fatal::new(CANTCREAT, format!("cannot set the mode of {}: {e}", path.display())))?;
                tracing::info!(address = %format!("unix:{}", path.display()), "listening");
            }
        }
    }
    Ok(server.run())
}
