//! `tiercache strava subscribe --callback-url URL | list | unsubscribe`: the Strava
//! application's one push subscription, managed with the strava sources' client id and
//! secret (`/api/v3/push_subscriptions` under their `base_url`). The id is recorded in
//! `data_dir/webhooks/strava.json`, where the running daemon reads it to refuse events
//! of any other subscription. No data_dir lock: the daemon must be running to answer
//! Strava's handshake while `subscribe` waits.

use crate::cli::StravaCommand;
use crate::config::{Settings, SourceConfig};
use crate::exit::{Fatal, CONFIG, UNAVAILABLE};
use secrecy::ExposeSecret;
use serde_json::Value;
use std::time::Duration;
use tiercache_actors::refresher::sources::client::{Deadline, HttpClient, Request, Response};
use tiercache_actors::refresher::sources::strava;
use tiercache_actors::strava_subscription::{self, Subscription};

/// Strava answers the subscribe call only after it has checked the callback URL.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The application's credentials, from the strava sources.
struct App {
    client_id: String,
    client_secret: String,
    base_url: String,
}

fn app(settings: &Settings) -> Result<App, Fatal> {
    let mut apps = settings.caches.iter().filter_map(|c| match &c.source {
        Some(SourceConfig::Strava(strava::Settings { client_id, client_secret, base_url, .. })) => Some(App {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            base_url: base_url.trim_end_matches('/').to_owned(),
        }),
        _ => None,
    });
    let first = apps.next().ok_or_else(|| {
        Fatal::new(
            CONFIG,
            "config error: caches: no strava source is configured (its client_id and secret manage the subscription)",
        )
    })?;
    if apps.any(|a| a.client_id != first.client_id || a.base_url != first.base_url) {
        return Err(Fatal::new(
            CONFIG,
            "config error: caches: strava sources of different applications (client_id or base_url); Strava subscribes one application at a time",
        ));
    }
    Ok(first)
}

fn run(request: Request) -> Result<Response, Fatal> {
    let client = HttpClient::new();
    actix_rt::System::new()
        .block_on(
            async move { client.send(request.header("Accept", "application/json"), Deadline::after(TIMEOUT)).await },
        )
        .map_err(|e| Fatal::new(UNAVAILABLE, format!("strava: cannot reach Strava: {e}")))
}

/// Strava's error answer in one line (its `errors[].field` and `code`), never the secret.
fn refusal(what: &str, response: &Response) -> String {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let details: Vec<String> = body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    format!("{} {}", e["field"].as_str().unwrap_or(""), e["code"].as_str().unwrap_or(""))
                        .trim()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    let message = body["message"].as_str().unwrap_or("");
    format!("strava {what}: Strava refused (HTTP {}): {message} {}", response.status, details.join("; "))
        .trim_end()
        .to_owned()
}

/// Runs `sub`; prints what a person needs on stdout.
///
/// # Errors
/// 78 without a strava source (or without a verify token to subscribe with), 69 when
/// Strava cannot be reached or refuses.
pub(crate) fn strava(settings: &Settings, sub: &StravaCommand) -> Result<(), Fatal> {
    let app = app(settings)?;
    let url = format!("{}/api/v3/push_subscriptions", app.base_url);
    let auth =
        vec![("client_id".to_owned(), app.client_id.clone()), ("client_secret".to_owned(), app.client_secret.clone())];
    let query = format!("client_id={}&client_secret={}", encode(&app.client_id), encode(&app.client_secret));
    match sub {
        StravaCommand::Subscribe { callback_url } => subscribe(settings, url, auth, callback_url),
        StravaCommand::List => {
            let response = run(Request::get(format!("{url}?{query}")))?;
            if !response.is_success() {
                return Err(Fatal::new(UNAVAILABLE, refusal("list", &response)));
            }
            let subs: Vec<Value> = serde_json::from_slice(&response.body).unwrap_or_default();
            let recorded = strava_subscription::read(&settings.data_dir);
            if subs.is_empty() {
                println!("no subscription");
            }
            for s in &subs {
                let id = s["id"].as_u64().unwrap_or_default();
                let mark = if recorded.as_ref().is_some_and(|r| r.id == id) { " (recorded here)" } else { "" };
                println!("id {id}, callback URL {}{mark}", s["callback_url"].as_str().unwrap_or("?"));
            }
            if let Some(r) = recorded.filter(|r| !subs.iter().any(|s| s["id"].as_u64() == Some(r.id))) {
                println!("recorded here but unknown to Strava: id {} (events of it are refused)", r.id);
            }
            Ok(())
        }
        StravaCommand::Unsubscribe => {
            let id = match strava_subscription::read(&settings.data_dir) {
                Some(r) => r.id,
                None => {
                    let response = run(Request::get(format!("{url}?{query}")))?;
                    let subs: Vec<Value> = serde_json::from_slice(&response.body).unwrap_or_default();
                    subs.first().and_then(|s| s["id"].as_u64()).ok_or_else(|| {
                        Fatal::new(UNAVAILABLE, "strava unsubscribe: no subscription recorded here or known to Strava")
                    })?
                }
            };
            let response = run(Request::delete(format!("{url}/{id}?{query}")))?;
            if !response.is_success() && response.status != 404 {
                return Err(Fatal::new(UNAVAILABLE, refusal("unsubscribe", &response)));
            }
            strava_subscription::remove(&settings.data_dir).map_err(|e| {
                Fatal::new(crate::exit::CANTCREAT, format!("strava unsubscribe: cannot forget the record: {e}"))
            })?;
            println!("unsubscribed: id {id}");
            Ok(())
        }
    }
}

/// `strava subscribe`: Strava checks the callback (the daemon's handshake) before it
/// answers; the id is recorded for the receiver.
fn subscribe(settings: &Settings, url: String, auth: Vec<(String, String)>, callback_url: &str) -> Result<(), Fatal> {
    let token = settings.webhooks.strava_verify_token.as_ref().ok_or_else(|| {
        Fatal::new(
            CONFIG,
            "config error: webhooks.strava_verify_token: needed to subscribe (Strava's handshake presents it)",
        )
    })?;
    let mut form = auth;
    form.push(("callback_url".into(), callback_url.to_owned()));
    form.push(("verify_token".into(), token.expose_secret().to_owned()));
    let response = run(Request::post_form(url, form))?;
    if !response.is_success() {
        let mut line = refusal("subscribe", &response);
        if line.contains("already exists") {
            line.push_str(" (already subscribed: see `tiercache strava list`, or `strava unsubscribe` first)");
        } else if line.contains("not verifiable") || line.contains("GET to callback URL") {
            line.push_str(&format!(" (the callback URL {callback_url} must reach this daemon's /v1/webhooks/strava, with the same webhooks.strava_verify_token)"));
        }
        return Err(Fatal::new(UNAVAILABLE, line));
    }
    let id = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|v| v["id"].as_u64())
        .ok_or_else(|| Fatal::new(UNAVAILABLE, "strava subscribe: Strava's answer has no subscription id"))?;
    let record = Subscription { id, callback_url: callback_url.to_owned() };
    strava_subscription::write(&settings.data_dir, &record).map_err(|e| {
        Fatal::new(crate::exit::CANTCREAT, format!("strava subscribe: subscription {id} created but not recorded: {e}"))
    })?;
    println!("subscribed: id {id}, callback URL {callback_url}");
    println!("recorded in {}", strava_subscription::path(&settings.data_dir).display());
    Ok(())
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
