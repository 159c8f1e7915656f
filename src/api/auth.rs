//! The guard in front of every route: allow-list, then rate limit, then bearer token.
//!
//! - `api.allow`: a TCP client outside the list gets 403 on every path, health and
//!   metrics included. Unix-socket clients are local and always pass.
//! - Rate limit: per client address on everything but `/healthz`, `/readyz` and
//!   `/metrics` (probes must not be throttled into a restart); 429 with `Retry-After`.
//! - Tokens: when `api.tokens_file` is set, every path but those three and
//!   `/v1/openapi.json` (the API's description, public like a login page) and
//!   `/v1/webhooks/*` (Strava cannot send a token; see `webhooks.rs`) needs
//!   `Authorization: Bearer TOKEN`: 401 without a valid one, 403 when a read token
//!   asks for a write (`PUT`, `POST`, `DELETE`, any method but `GET`/`HEAD`/`OPTIONS`).
//!
//! The path compared is the one the router matches (percent-decoded), so no encoding
//! of a path can reach a route while escaping the check; anything that is not one of
//! the open paths above needs a token, unknown paths included.
//!
//! Refusals are logged with the client address and the reason, never with a token,
//! a header value or the body, and counted in `tiercache_http_refusals_total{reason}`.

use super::error::ApiError;
use super::rate_limit::retry_after_secs;
use super::state::AppState;
use super::tokens::{bearer, Scope};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};
use tiercache_actors::metrics::Refusal;

/// Paths that need no token and are not rate limited (they still obey `api.allow`).
const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Paths that need no token but are rate limited.
const TOKEN_FREE_PATHS: [&str; 1] = ["/v1/openapi.json"];

/// The scope a request needs.
fn needed_scope(method: &Method) -> Scope {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        Scope::Read
    } else {
        Scope::Write
    }
}

fn with_challenge(error: &ApiError, challenge: &'static str) -> HttpResponse {
    let mut res = error.error_response();
    res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    res
}

/// Why a request is refused before it reaches a handler.
fn refusal(state: &AppState, req: &ServiceRequest) -> Option<HttpResponse> {
    let security = state.security.load();
    let client = req.peer_addr().map(|a| a.ip());
    let shown_client = || client.map_or_else(|| "unix".to_owned(), |ip| ip.to_canonical().to_string());
    if !security.allow.permits(client) {
        state.metrics.refused(Refusal::NotAllowed);
        tracing::warn!(client = %shown_client(), method = %req.method(), "refused: client address is not in api.allow");
        let error = ApiError::new(StatusCode::FORBIDDEN, "address_not_allowed", "this client address is not allowed");
        return Some(error.error_response());
    }
    if OPEN_PATHS.contains(&req.match_info().as_str()) {
        return None;
    }
    if let (Some(limiter), Some(ip)) = (&security.limiter, client) {
        if let Err(wait) = limiter.check(ip) {
            state.metrics.refused(Refusal::RateLimited);
            tracing::debug!(client = %shown_client(), "refused: rate limit");
            let secs = retry_after_secs(wait);
            let error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!("too many requests from this client; retry in {secs} s"),
            )
            .retry_after(secs);
            return Some(error.error_response());
        }
    }
    // Strava cannot send a token: the verify token and subscription id stand in for it.
    if TOKEN_FREE_PATHS.contains(&req.match_info().as_str()) || req.match_info().as_str().starts_with("/v1/webhooks/") {
        return None;
    }
    let tokens = security.tokens.as_ref()?;
    let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer);
    let Some(presented) = presented else {
        state.metrics.refused(Refusal::Unauthenticated);
        tracing::warn!(client = %shown_client(), method = %req.method(), "refused: no bearer token");
        let error = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this request needs an Authorization: Bearer token",
        );
        return Some(with_challenge(&error, "Bearer realm=\"tiercache\""));
    };
    let needed = needed_scope(req.method());
    match tokens.scope_of(presented) {
        None => {
            state.metrics.refused(Refusal::Unauthenticated);
            tracing::warn!(client = %shown_client(), method = %req.method(), "refused: invalid bearer token");
            let error = ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", "the bearer token is not valid");
            Some(with_challenge(&error, "Bearer realm=\"tiercache\", error=\"invalid_token\""))
        }
        Some(scope) if !scope.allows(needed) => {
            state.metrics.refused(Refusal::ForbiddenScope);
            tracing::warn!(
                client = %shown_client(),
                method = %req.method(),
                scope = scope.as_str(),
                needed = needed.as_str(),
                "refused: token scope too narrow"
            );
            let error = ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this request needs a token with the {} scope", needed.as_str()),
            );
            Some(with_challenge(&error, "Bearer realm=\"tiercache\", error=\"insufficient_scope\", scope=\"write\""))
        }
        Some(_) => None,
    }
}

/// The middleware (`actix_web::middleware::from_fn`).
///
/// # Errors
/// Only the inner service's errors.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    let refused = match req.app_data::<web::Data<AppState>>() {
        Some(state) => refusal(state, &req),
        // Without the state nothing could be checked: fail closed.
        None => Some(
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "the API is not configured").error_response(),
        ),
    };
    match refused {
        Some(response) => Ok(req.into_response(response).map_into_right_body()),
        None => next.call(req).await.map(ServiceResponse::map_into_left_body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_by_method() {
        assert_eq!(needed_scope(&Method::GET), Scope::Read);
        assert_eq!(needed_scope(&Method::HEAD), Scope::Read);
        assert_eq!(needed_scope(&Method::PUT), Scope::Write);
        assert_eq!(needed_scope(&Method::POST), Scope::Write);
        assert_eq!(needed_scope(&Method::DELETE), Scope::Write);
        assert_eq!(needed_scope(&Method::PATCH), Scope::Write);
    }
}
