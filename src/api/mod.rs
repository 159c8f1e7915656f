//! The HTTP API (docs/openapi.yaml) on every configured listener (TCP and `unix:` sockets).

pub(crate) mod allow;
mod auth;
mod caches;
pub(crate) mod error;
mod health;
mod large_body;
pub(crate) mod openapi;
pub(crate) mod rate_limit;
mod refresh_query;
pub(crate) mod security;
pub(crate) mod state;
pub(crate) mod tls;
pub(crate) mod tokens;
pub(crate) mod webhook_intake;
pub(crate) mod webhooks;

pub(crate) use auth::Access;
pub(crate) use security::Security;
pub(crate) use state::{ApiPolicy, AppState, CachePolicy};

use crate::config::{ListenAddr, Settings};
use crate::exit::{Fatal, CANTCREAT, CONFIG};
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, App, FromRequest, Handler, HttpRequest, HttpResponse, HttpServer, Responder, ResponseError};
use std::os::unix::fs::PermissionsExt;

/// One route of the API. [`endpoints`] is the only list of routes: [`routes`] registers
/// it, the guard takes each route's [`Access`] from it, and the OpenAPI test compares
/// it with `docs/openapi.yaml`, so a route cannot be added without documenting it nor
/// without saying who may call it.
pub(crate) struct Endpoint {
    /// The HTTP method.
    pub method: Method,
    /// The path pattern, in the router's and OpenAPI's `{param}` syntax.
    pub path: &'static str,
    /// Who may call it: what the guard checks before the handler runs.
    pub access: Access,
    route: actix_web::Route,
    /// A GET answers HEAD too, with the same handler: actix-http sends a HEAD answer's
    /// status and headers (`Content-Length` included) without the body, which is what
    /// `curl -I`, load balancers and probes expect.
    head: Option<actix_web::Route>,
}

impl Endpoint {
    /// The methods this endpoint answers: its own, and HEAD for a GET.
    pub(crate) fn methods(&self) -> Vec<Method> {
        let mut methods = vec![self.method.clone()];
        methods.extend(self.head.as_ref().map(|_| Method::HEAD));
        methods
    }
}

fn endpoint<F, Args>(method: Method, path: &'static str, access: Access, handler: F) -> Endpoint
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    let head = (method == Method::GET).then(|| web::method(Method::HEAD).to(handler.clone()));
    Endpoint { route: web::method(method.clone()).to(handler), method, path, access, head }
}

/// Every route of the API, each with its access class.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    use Access::{Probe, Public, Token, Webhook};
    vec![
        endpoint(Method::GET, "/healthz", Probe, health::healthz),
        endpoint(Method::GET, "/readyz", Probe, health::readyz),
        endpoint(Method::GET, "/metrics", Probe, health::metrics),
        endpoint(Method::GET, "/v1/openapi.json", Public, openapi::serve),
        endpoint(Method::GET, "/v1/caches", Token, caches::list),
        endpoint(Method::GET, "/v1/caches/{name}", Token, caches::get),
        endpoint(Method::PUT, "/v1/caches/{name}", Token, caches::put),
        endpoint(Method::DELETE, "/v1/caches/{name}", Token, caches::delete),
        endpoint(Method::GET, "/v1/caches/{name}/meta", Token, caches::meta),
        endpoint(Method::POST, "/v1/caches/{name}/refresh", Token, caches::refresh),
        endpoint(Method::GET, "/v1/webhooks/strava", Webhook, webhooks::handshake),
        endpoint(Method::POST, "/v1/webhooks/strava", Webhook, webhooks::event),
    ]
}

/// Routes, shared by every listener: one resource per path, whose other methods answer
/// 405 with `Allow`; any other path answers 404.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    let mut paths: Vec<(&'static str, Vec<Endpoint>)> = Vec::new();
    for e in endpoints() {
        match paths.iter_mut().find(|(path, _)| *path == e.path) {
            Some((_, same)) => same.push(e),
            None => paths.push((e.path, vec![e])),
        }
    }
    for (path, endpoints) in paths {
        let allow = endpoints.iter().flat_map(Endpoint::methods).map(|m| m.to_string()).collect::<Vec<_>>().join(", ");
        let mut resource = web::resource(path).default_service(web::to(move |req: HttpRequest| {
            let allow = allow.clone();
            async move { method_not_allowed(req.method(), allow) }
        }));
        for e in endpoints {
            resource = resource.route(e.route);
            if let Some(head) = e.head {
                resource = resource.route(head);
            }
        }
        cfg.service(resource);
    }
    cfg.default_service(web::to(not_found));
}

/// A path of the API with a method it does not have.
fn method_not_allowed(method: &Method, allow: String) -> HttpResponse {
    let error = error::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed here; allowed: {allow}"),
    );
    let mut res = error.error_response();
    if let Ok(value) = header::HeaderValue::from_str(&allow) {
        res.headers_mut().insert(header::ALLOW, value);
    }
    res
}

/// Any other path: a JSON 404 like every other error.
async fn not_found() -> HttpResponse {
    error::ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource").error_response()
}

/// An earlier TCP entry of `api.listen` that holds the same port on the address of entry
/// `i` (the same address, or either one a wildcard): binding `i` then fails as "in use"
/// because of the daemon's own configuration.
fn overlapping(settings: &Settings, i: usize) -> Option<(usize, &str)> {
    fn tcp(entry: &ListenAddr) -> Option<&str> {
        match entry {
            ListenAddr::Tcp(addr) => Some(addr.as_str()),
            ListenAddr::Unix(_) => None,
        }
    }
    let this: std::net::SocketAddr = tcp(settings.api.listen.get(i)?)?.parse().ok()?;
    settings.api.listen[..i].iter().enumerate().find_map(|(j, entry)| {
        let text = tcp(entry)?;
        let other: std::net::SocketAddr = text.parse().ok()?;
        let covers = other.ip() == this.ip() || other.ip().is_unspecified() || this.ip().is_unspecified();
        (other.port() == this.port() && covers).then_some((j, text))
    })
}

/// Builds the policy the API enforces from the settings (again on every reload).
pub(crate) fn policy_from(settings: &Settings) -> ApiPolicy {
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
                        source: c.source.as_ref().map(|s| s.kind()),
                        max_stale: settings.refresh.max_stale,
                    },
                )
            })
            .collect(),
        max_body: settings.api.max_body,
        strava_webhook: settings
            .webhooks
            .strava_verify_token
            .clone()
            .map(|verify_token| webhooks::StravaWebhook { verify_token, data_dir: settings.data_dir.clone() }),
        openapi: openapi::for_settings(settings),
    }
}

/// Binds every listener and returns the server, not yet running. actix-web's signal
/// handling is off: `signals.rs` owns every signal.
///
/// # Errors
/// Exit 78 for an address that cannot be bound, 73 for a socket path that cannot be
/// created.
pub(crate) fn bind(settings: &Settings, state: web::Data<AppState>) -> Result<actix_web::dev::Server, Fatal> {
    let max_body = usize::try_from(settings.api.max_body).unwrap_or(usize::MAX);
    let tls = match &state.tls {
        Some(resolver) => Some(tls::server_config(resolver.clone()).map_err(|e| {
            Fatal::new(CONFIG, format!("config error: api.tls_cert: cannot build the TLS configuration: {e}"))
        })?),
        None => None,
    };
    let access = web::Data::new(auth::AccessTable::new(&endpoints()));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(access.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .wrap(actix_web::middleware::from_fn(auth::guard))
            .configure(routes)
    })
    .disable_signals()
    .workers(settings.api.workers)
    // Small JSON answers: never hold one back waiting for the client's ACK (Nagle),
    // which stalls a client that pipelines requests by tens of milliseconds.
    .tcp_nodelay(true)
    .shutdown_timeout(5);
    for (i, listen) in settings.api.listen.iter().enumerate() {
        match listen {
            ListenAddr::Tcp(addr) => {
                let bound = match &tls {
                    Some(config) => server.bind_rustls_0_23(addr.as_str(), config.clone()),
                    None => server.bind(addr.as_str()),
                };
                server = bound.map_err(|e| crate::exit::cannot_listen(i, addr, &e, overlapping(settings, i)))?;
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
