//! The guard in front of every route: allow-list, then rate limit, then bearer token.
//!
//! What a request needs is its route's [`Access`], declared next to the route in the
//! route table (`endpoints()` in `mod.rs`), never guessed from the path's name:
//!
//! - `api.allow`: a TCP client outside the list gets 403 on every path, health and
//!   metrics included. Unix-socket clients are local and always pass.
//! - Rate limit: per client address on every route but [`Access::Probe`] ones
//!   (`/healthz`, `/readyz`, `/metrics`: probes must not be throttled into a restart);
//!   429 with `Retry-After`.
//! - Tokens: when `api.tokens_file` is set, every route but [`Access::Probe`],
//!   [`Access::Public`] (`/v1/openapi.json`, public like a login page) and
//!   [`Access::Webhook`] (Strava cannot send a token; see `webhooks.rs`) needs
//!   `Authorization: Bearer TOKEN`: 401 without a valid one, 403 when a read token
//!   asks for a write (`PUT`, `POST`, `DELETE`, any method but `GET`/`HEAD`/`OPTIONS`).
//!
//! The path compared is the one the router matches (percent-decoded), against the
//! same patterns the router uses, so no encoding of a path can reach a route while
//! escaping the check. A path of no route, or a method a path does not have, takes
//! the strictest class of that path's routes: unknown paths need a token.
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
use tiercache_actors::metrics::AccessRefusal;

/// Who may call a route (all of them obey `api.allow`), from the most open to the
/// strictest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Access {
    /// Probes (`/healthz`, `/readyz`, `/metrics`): no token, no rate limit.
    Probe,
    /// Public (`/v1/openapi.json`): no token, rate-limited.
    Public,
    /// Strava's webhook: no token (Strava cannot send one; the verify token and the
    /// subscription id stand in for it), rate-limited and bounded by its own intake.
    Webhook,
    /// Everything else: a bearer token when tokens are configured, rate-limited.
    Token,
}

/// One route's path pattern, split at `/`: a literal segment, or a `{param}` that the
/// router matches with `[^/]+` (one segment, not empty).
#[derive(Debug)]
enum Segment {
    Literal(&'static str),
    Param,
}

/// A route's pattern as segments: the guard runs before the router on every request,
/// and comparing segments costs a few string compares where the router's pattern
/// costs a regex search per route (a tenth of a small read's time in our own code).
#[derive(Debug)]
struct Pattern(Vec<Segment>);

impl Pattern {
    /// # Panics
    /// On a `{param}` that does not fill a whole segment, a custom regex, or more than
    /// [`MOST_SEGMENTS`] segments: the route table is fixed at compile time, so a test
    /// catches it before anything runs.
    fn new(path: &'static str) -> Self {
        let segments: Vec<Segment> = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') && segment.ends_with('}') && !segment.contains(':') {
                    Segment::Param
                } else {
                    assert!(!segment.contains(['{', '}']), "route {path}: a parameter must fill a segment");
                    Segment::Literal(segment)
                }
            })
            .collect();
        assert!(segments.len() <= MOST_SEGMENTS, "route {path}: more than {MOST_SEGMENTS} segments");
        Self(segments)
    }

    /// Whether the router's pattern of the same text matches `path` (it is anchored at
    /// both ends).
    #[cfg(test)]
    fn is_match(&self, path: &str) -> bool {
        Segments::of(path).is_some_and(|segments| self.matches(&segments))
    }

    /// Whether the router's pattern of the same text matches the path split into
    /// `segments`.
    fn matches(&self, segments: &Segments<'_>) -> bool {
        let given = &segments.parts[..segments.len];
        self.0.len() == given.len()
            && self.0.iter().zip(given).all(|(expected, segment)| match expected {
                Segment::Literal(text) => text == segment,
                Segment::Param => !segment.is_empty(),
            })
    }
}

/// The most segments a route may have (checked when the table is built): a longer path
/// matches no route.
const MOST_SEGMENTS: usize = 8;

/// A request's path split at `/` once, for every route to be compared with.
struct Segments<'a> {
    parts: [&'a str; MOST_SEGMENTS],
    len: usize,
}

impl<'a> Segments<'a> {
    /// `None` for a path of more segments than any route has.
    fn of(path: &'a str) -> Option<Self> {
        let mut segments = Segments { parts: [""; MOST_SEGMENTS], len: 0 };
        for part in path.split('/') {
            *segments.parts.get_mut(segments.len)? = part;
            segments.len += 1;
        }
        Some(segments)
    }
}

/// Each route's access class, as the route table declares it.
pub(super) struct AccessTable(Vec<(Method, Pattern, Access)>);

impl AccessTable {
    /// The table of `endpoints`.
    pub(super) fn new(endpoints: &[super::Endpoint]) -> Self {
        // A GET's HEAD is its route too, of the same class.
        let routes = endpoints.iter().flat_map(|e| e.methods().into_iter().map(move |m| (m, e.path, e.access)));
        Self(routes.map(|(method, path, access)| (method, Pattern::new(path), access)).collect())
    }

    /// The class of `method` on `path`: the route's own; for a method the path does
    /// not have (405), the strictest of the path's routes; for a path of no route,
    /// [`Access::Token`].
    pub(super) fn of(&self, method: &Method, path: &str) -> Access {
        let Some(segments) = Segments::of(path) else { return Access::Token };
        let mut strictest = None;
        for (m, pattern, access) in &self.0 {
            if pattern.matches(&segments) {
                if m == method {
                    return *access;
                }
                strictest = strictest.max(Some(*access));
            }
        }
        strictest.unwrap_or(Access::Token)
    }
}

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
fn refusal(state: &AppState, access: Access, req: &ServiceRequest) -> Option<HttpResponse> {
    let security = state.security.load();
    let client = req.peer_addr().map(|a| a.ip());
    let shown_client = || client.map_or_else(|| "unix".to_owned(), |ip| ip.to_canonical().to_string());
    if !security.allow.permits(client) {
        state.metrics.refused(AccessRefusal::NotAllowed);
        tracing::warn!(client = %shown_client(), method = %req.method(), "refused: client address is not in api.allow");
        let error = ApiError::new(StatusCode::FORBIDDEN, "address_not_allowed", "this client address is not allowed");
        return Some(error.error_response());
    }
    if access == Access::Probe {
        return None;
    }
    if let (Some(limiter), Some(ip)) = (&security.limiter, client) {
        if let Err(wait) = limiter.check(ip) {
            state.metrics.refused(AccessRefusal::RateLimited);
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
    if access != Access::Token {
        return None;
    }
    let tokens = security.tokens.as_ref()?;
    let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer);
    let Some(presented) = presented else {
        state.metrics.refused(AccessRefusal::Unauthenticated);
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
            state.metrics.refused(AccessRefusal::Unauthenticated);
            tracing::warn!(client = %shown_client(), method = %req.method(), "refused: invalid bearer token");
            let error = ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", "the bearer token is not valid");
            Some(with_challenge(&error, "Bearer realm=\"tiercache\", error=\"invalid_token\""))
        }
        Some(scope) if !scope.allows(needed) => {
            state.metrics.refused(AccessRefusal::ForbiddenScope);
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
pub(super) async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    let access = req.app_data::<web::Data<AccessTable>>().map(|t| t.of(req.method(), req.match_info().as_str()));
    let refused = match (req.app_data::<web::Data<AppState>>(), access) {
        (Some(state), Some(access)) => refusal(state, access, &req),
        // Without the state or the table nothing could be checked: fail closed.
        _ => Some(
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
    fn each_route_declares_its_access_and_unknown_paths_need_a_token() {
        let table = AccessTable::new(&super::super::endpoints());
        assert_eq!(table.of(&Method::GET, "/healthz"), Access::Probe);
        assert_eq!(table.of(&Method::HEAD, "/healthz"), Access::Probe, "a method the path lacks: its class");
        assert_eq!(table.of(&Method::GET, "/v1/openapi.json"), Access::Public);
        assert_eq!(table.of(&Method::POST, "/v1/webhooks/strava"), Access::Webhook);
        assert_eq!(table.of(&Method::PUT, "/v1/webhooks/strava"), Access::Webhook);
        assert_eq!(table.of(&Method::GET, "/v1/caches/strava"), Access::Token);
        assert_eq!(table.of(&Method::PATCH, "/v1/caches/strava"), Access::Token);
        // A path under the webhooks prefix that is no route is not open by its name.
        assert_eq!(table.of(&Method::POST, "/v1/webhooks/other"), Access::Token);
        assert_eq!(table.of(&Method::GET, "/v1/webhooks/strava/x"), Access::Token);
        assert_eq!(table.of(&Method::GET, "/nowhere"), Access::Token);
    }

    /// The router's own matching, as the table did it before: the oracle of the
    /// segment matcher.
    struct ByRouter(Vec<(Method, actix_web::dev::ResourceDef, Access)>);

    impl ByRouter {
        fn new(endpoints: &[super::super::Endpoint]) -> Self {
            let routes = endpoints.iter().flat_map(|e| e.methods().into_iter().map(move |m| (m, e.path, e.access)));
            Self(routes.map(|(m, path, access)| (m, actix_web::dev::ResourceDef::new(path), access)).collect())
        }

        fn of(&self, method: &Method, path: &str) -> Access {
            let on_path = || self.0.iter().filter(|(_, def, _)| def.is_match(path));
            on_path()
                .find(|(m, _, _)| m == method)
                .map(|(_, _, access)| *access)
                .or_else(|| on_path().map(|(_, _, access)| *access).max())
                .unwrap_or(Access::Token)
        }
    }

    #[test]
    fn the_segment_matcher_agrees_with_the_router_on_every_path_made_of_route_words() {
        let endpoints = super::super::endpoints();
        let table = AccessTable::new(&endpoints);
        let router = ByRouter::new(&endpoints);
        let words = [
            "",
            "v1",
            "caches",
            "strava",
            "meta",
            "refresh",
            "webhooks",
            "healthz",
            "readyz",
            "metrics",
            "openapi.json",
            "x",
            "a b",
            "%2F",
            "{name}",
            ".",
        ];
        let mut paths =
            vec![String::new(), "*".to_owned(), "v1/caches".to_owned(), "/v1/caches/a/b/c/d/e/f/g".to_owned()];
        let mut layer = vec![String::new()];
        for _ in 0..4 {
            layer = layer.iter().flat_map(|p| words.iter().map(move |w| format!("{p}/{w}"))).collect();
            paths.extend(layer.iter().cloned());
        }
        let methods = [Method::GET, Method::HEAD, Method::PUT, Method::POST, Method::DELETE, Method::PATCH];
        let mut checked = 0;
        for path in &paths {
            // Route by route, not only the class: today every route with a parameter
            // is of the strictest class, which would hide a wrong match.
            for ((_, pattern, _), (_, def, _)) in table.0.iter().zip(&router.0) {
                assert_eq!(pattern.is_match(path), def.is_match(path), "{} on {path:?}", def.pattern().unwrap_or(""));
            }
            for method in &methods {
                assert_eq!(table.of(method, path), router.of(method, path), "{method} {path:?}");
                checked += 1;
            }
        }
        assert!(checked > 400_000, "{checked} cases");
    }

    #[test]
    #[should_panic(expected = "a parameter must fill a segment")]
    fn a_parameter_inside_a_segment_is_refused() {
        let _ = Pattern::new("/v1/caches/x{name}");
    }

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
