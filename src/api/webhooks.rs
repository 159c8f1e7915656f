//! `/v1/webhooks/strava`: Strava's push subscription handshake and its events.
//!
//! No API token (Strava cannot send one, see [`super::Access::Webhook`]): the verify
//! token answers the handshake. Strava does not sign its events, so an event is a
//! hint, never an order: it only makes the refresher ask Strava, within a budget it
//! controls. Every well-formed event gets the same answer (200, the same body) at
//! once, whatever becomes of it, so the answer tells a caller nothing (no oracle for
//! the subscription id); an event of another subscription is dropped, counted. The
//! route still passes the allow-list, the rate limit and the body limit, has its own
//! bounded intake (`webhook_intake.rs`), and is 404 while no verify token is
//! configured. Strava wants 200 within 2 s whatever upstream does: the work happens
//! after the answer.

use super::error::ApiError;
use super::state::AppState;
use super::webhook_intake::Anonymous;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use tiercache_actors::metrics::{ResultLabel, TypeOutcome};
use tiercache_actors::refresher::sources::pushed::{ActivityChange, Change};
use tiercache_actors::refresher::{event_type, PushAction, PushEvent};

/// An event is a few hundred bytes; anything much larger is not from Strava.
const MAX_EVENT: usize = 64 * 1024;

/// What the routes need from the configuration (swapped on SIGHUP with the policy).
#[derive(Debug, Clone)]
pub(crate) struct StravaWebhook {
    /// `webhooks.strava_verify_token[_file]`.
    pub verify_token: SecretString,
    /// Where `tiercache strava subscribe` records the subscription id.
    pub data_dir: PathBuf,
}

fn config(state: &AppState) -> Result<StravaWebhook, ApiError> {
    state.policy.load().strava_webhook.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Strava webhooks are not configured (webhooks.strava_verify_token)",
        )
    })
}

/// Compares digests, so the time taken says nothing about how much of the token matched.
fn same_secret(given: &str, expected: &SecretString) -> bool {
    use tiercache_actors::domain::sha256;
    sha256(given.as_bytes()) == sha256(expected.expose_secret().as_bytes())
}

/// `GET /v1/webhooks/strava?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`.
pub(crate) async fn handshake(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let config = config(&state)?;
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", "the query string does not parse"))?;
    let field = |k: &str| query.get(k).map(String::as_str);
    let token_ok = field("hub.verify_token").is_some_and(|t| same_secret(t, &config.verify_token));
    let counted = |result: &'static str| state.metrics.webhook_handshakes.get_or_create(&ResultLabel { result }).inc();
    if field("hub.mode") != Some("subscribe") || !token_ok {
        // Anonymous input: counted, never a warning; never what was presented (it may be
        // the real token with a typo).
        counted("refused");
        state.webhooks.note(Anonymous::Handshake, "wrong hub.mode or hub.verify_token");
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "wrong hub.mode or hub.verify_token"));
    }
    let Some(challenge) = field("hub.challenge") else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_query", "hub.challenge is missing"));
    };
    counted("answered");
    tracing::info!("Strava webhook handshake answered");
    Ok(HttpResponse::Ok().json(json!({ "hub.challenge": challenge })))
}

/// A Strava event, as its Webhook Events API documents it.
#[derive(Debug, Deserialize)]
struct Event {
    object_type: String,
    object_id: u64,
    aspect_type: String,
    owner_id: u64,
    subscription_id: u64,
    #[serde(default)]
    updates: Option<serde_json::Map<String, Value>>,
}

impl Event {
    fn action(&self) -> PushAction {
        let authorized = self.updates.as_ref().and_then(|u| u.get("authorized"));
        let activity = |change| PushAction::Activity(ActivityChange { id: self.object_id, change });
        match (self.object_type.as_str(), self.aspect_type.as_str()) {
            ("activity", "create") => activity(Change::Create),
            ("activity", "update") => activity(Change::Update),
            ("activity", "delete") => activity(Change::Delete),
            ("athlete", _) if matches!(authorized, Some(v) if v == "false" || *v == Value::Bool(false)) => {
                PushAction::Deauthorize
            }
            _ => PushAction::Ignore,
        }
    }
}

fn count(state: &AppState, kind: &'static str, outcome: &'static str) {
    state.metrics.webhook_events.get_or_create(&TypeOutcome { r#type: kind, outcome }).inc();
}

/// The one answer every well-formed event gets.
fn received() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(r#"{"received":true}"#)
}

/// `POST /v1/webhooks/strava`: 200 at once; the work happens after the answer.
pub(crate) async fn event(state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    // Give way first: a client that pipelines thousands of events on one connection
    // would otherwise keep this worker from the other requests it serves (a PUT's
    // p99 went from 14 ms to over 100 ms under such a flood without it).
    actix_web::rt::task::yield_now().await;
    let config = config(&state)?;
    if body.len() > MAX_EVENT {
        count(&state, "unknown", "invalid");
        state.webhooks.note(Anonymous::Invalid, "too large");
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "a webhook event is at most 64 KiB"));
    }
    let event: Event = serde_json::from_slice(&body).map_err(|e| {
        count(&state, "unknown", "invalid");
        state.webhooks.note(Anonymous::Invalid, "not an event");
        ApiError::new(StatusCode::BAD_REQUEST, "bad_event", format!("not a Strava webhook event: {e}"))
    })?;
    let kind = event_type(&event.object_type, &event.aspect_type);
    let expected = state.webhooks.subscription.expected(&config.data_dir, state.webhooks.store.clone());
    if expected.is_some_and(|id| id != event.subscription_id) {
        count(&state, kind, "other_subscription");
        state.webhooks.note(Anonymous::OtherSubscription, "an event of another subscription");
        return Ok(received());
    }
    if !state.webhooks.admit() {
        count(&state, kind, "dropped");
        state.webhooks.note(Anonymous::Dropped, "over the webhook intake's rate");
        return Ok(received());
    }
    tracing::debug!(kind, object_id = event.object_id, owner_id = event.owner_id, "Strava webhook event taken in");
    let pushed = PushEvent { owner_id: event.owner_id, kind, action: event.action() };
    match state.tiers.strava_push(pushed) {
        Some(true) => {}
        Some(false) => {
            count(&state, kind, "dropped");
            state.webhooks.note(Anonymous::Dropped, "the refresher's webhook queue is full");
        }
        None => count(&state, kind, "ignored"),
    }
    Ok(received())
}
