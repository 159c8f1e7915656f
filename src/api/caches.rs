//! `/v1/caches...`: read, meta, save, delete, refresh, list (docs/openapi.yaml).

use super::error::{json_line, ApiError};
use super::large_body::{Sliced, SLICE};
use super::security::schema_rejection;
use super::state::{AppState, CachePolicy};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;
use tiercache_actors::cache_rules::Refusal;
use tiercache_actors::domain::{CacheName, Document, Precondition};
use tiercache_actors::memory::ServedFrom;
use tiercache_actors::metrics::CacheResult;
use tiercache_actors::refresher::{Planned, RefreshError, RefreshFailure};
use tiercache_actors::save_flow::SaveError;
use tiercache_actors::tiers::{ReadError, ReadOutcome};

/// Which tier answered a read.
const X_CACHE_TIER: HeaderName = HeaderName::from_static("x-cache-tier");

/// Seconds a client should wait before asking again for a cache that has no data.
const EMPTY_RETRY_AFTER: u64 = 30;

fn lookup(state: &AppState, raw: &str) -> Result<(CacheName, CachePolicy), ApiError> {
    let name = CacheName::parse(raw).map_err(|_| ApiError::unknown_cache(raw))?;
    let policy = state.policy.load();
    let cache = policy.caches.get(&name).cloned().ok_or_else(|| ApiError::unknown_cache(raw))?;
    Ok((name, cache))
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn fetched_at(doc: &Document) -> DateTime<Utc> {
    doc.last_fetch.unwrap_or(doc.saved_at)
}

/// Whether `doc` is past its schedule.
fn past_schedule(doc: &Document, policy: &CachePolicy) -> bool {
    policy
        .refresh_every
        .is_some_and(|every| chrono::Duration::from_std(every).is_ok_and(|every| fetched_at(doc) + every < Utc::now()))
}

fn next_refresh_at(doc: &Document, policy: &CachePolicy) -> Option<DateTime<Utc>> {
    let every = chrono::Duration::from_std(policy.refresh_every?).ok()?;
    Some(fetched_at(doc) + every)
}

async fn read(state: &AppState, name: &CacheName, policy: &CachePolicy) -> Result<ReadOutcome, ApiError> {
    match state.tiers.read(name).await {
        Ok(mut outcome) => {
            if past_schedule(&outcome.doc, policy) {
                outcome.tier = ServedFrom::Stale;
            }
            // Only a cache with a source can become fresh again: a PUT-only cache is
            // as fresh as its writer keeps it.
            let max_stale = policy.max_stale.filter(|_| policy.has_source);
            if let Some(limit) = max_stale.and_then(|m| chrono::Duration::from_std(m).ok()) {
                if fetched_at(&outcome.doc) + limit < Utc::now() {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "too_stale",
                        format!("cache {name} is older than refresh.max_stale and no refresh has succeeded"),
                    )
                    .retry_after(EMPTY_RETRY_AFTER));
                }
            }
            Ok(outcome)
        }
        Err(ReadError::Missing) => {
            let deauthorized = state.tiers.deauthorized(name);
            let why = if let Some(d) = deauthorized {
                format!("cache {name} holds no data: {}", d.explain(name))
            } else if state.tiers.quarantined(name).await {
                format!(
                    "cache {name} holds no data: its file was found corrupt and moved to data_dir/corrupt/ \
                     (see the log); retrying will not help until the next save or refresh"
                )
            } else {
                format!("cache {name} holds no data yet and no refresh is possible")
            };
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_data", why).retry_after(EMPTY_RETRY_AFTER))
        }
        Err(ReadError::Refresh(e)) => {
            let retry = match &e {
                RefreshError::RateLimited(until) | RefreshError::BackingOff(until, _) => {
                    (*until - Utc::now()).num_seconds().max(1) as u64
                }
                _ => 5,
            };
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "refresh_failed",
                format!("cache {name} holds no data and the emergency refresh failed: {e}"),
            )
            .retry_after(retry))
        }
        Err(ReadError::Failed(e)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "tiers_unavailable",
            format!("cache {name} could not be read: {e}"),
        )
        .retry_after(5)),
    }
}

fn etag_matches(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag))
}

/// `GET /v1/caches/{name}`.
pub(super) async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let started = Instant::now();
    let (name, policy) = lookup(&state, &path)?;
    let ReadOutcome { doc, tier } = read(&state, &name, &policy).await?;
    let age = (Utc::now() - fetched_at(&doc)).num_seconds().max(0);
    let not_modified = etag_matches(&req, &doc.etag);
    let mut res = if not_modified { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    // The fixed values as `from_static`: a `&str` would be checked and copied into a
    // new header value on every read.
    res.insert_header((header::ETAG, doc.etag.as_str()))
        .insert_header((header::LAST_MODIFIED, doc.last_modified.as_str()))
        .insert_header((X_CACHE_TIER, HeaderValue::from_static(tier.as_str())))
        .insert_header((header::AGE, age))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")));
    let response = if not_modified {
        res.finish()
    } else {
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
        if doc.body.len() > SLICE {
            res.body(Sliced::new(doc.body.clone()))
        } else {
            res.body(doc.body.clone())
        }
    };
    let metrics = state.read_metrics.load();
    if let Some(counters) = metrics.reads.get(&name) {
        counters[tier.index()].inc();
    }
    if let Some(counter) = metrics.not_modified.get(&name).filter(|_| not_modified) {
        counter.inc();
    }
    metrics.duration[tier.index()].observe(started.elapsed().as_secs_f64());
    Ok(response)
}

/// `postgres_synced`: null without Postgres, else whether Postgres acknowledged exactly
/// the version found (and nothing of this cache waits in the retry queue): false
/// without data, while Postgres is away, after a dead letter.
fn postgres_synced(state: &AppState, name: &CacheName, found: Option<&ReadOutcome>) -> Value {
    state.tiers.postgres_synced(name, found.map(|o| o.doc.version)).map_or(Value::Null, Value::Bool)
}

/// Why a cache cannot be served or refreshed right now, as meta shows it.
#[derive(Default)]
struct Trouble {
    /// A tier below memory failed and nothing could be read.
    read_error: Option<String>,
    /// The cache's file was found corrupt and moved aside, and nothing replaced it yet.
    quarantined: bool,
    /// The last refresh failed (cleared by the next success).
    refresh: Option<RefreshFailure>,
    /// How the cache was last refreshed.
    last: Option<tiercache_actors::refresher::LastRefresh>,
    /// When the refresher will refresh the cache next.
    planned: Option<Planned>,
    /// The upstream account withdrew the app's authorization: the cause and next step.
    deauthorized: Option<String>,
}

/// Every cause that stands between a cache without data and its data, each with what
/// clears it, in the order an operator would fix them: a tier that cannot be read, a
/// corrupt file moved aside, an upstream that fails. `None` when nothing is known to be
/// wrong (a cache that simply has no data yet).
fn causes(name: &CacheName, trouble: &Trouble, refresh_error: Option<&str>) -> Option<String> {
    let mut causes: Vec<String> = Vec::new();
    causes.extend(trouble.read_error.clone());
    if trouble.quarantined {
        causes.push(format!(
            "the file of cache {name} was found corrupt and moved to data_dir/corrupt/ (see the log); \
             the next save or successful refresh replaces it"
        ));
    }
    causes.extend(refresh_error.map(|e| format!("the last refresh failed: {e}")));
    (!causes.is_empty()).then(|| causes.join("; "))
}

/// The next refresh: the refresher's plan when it knows the document held (it counts
/// from the same `last_fetch` or a later one); else the schedule counted from the
/// document, or, while refreshes fail, the retry if that is later.
fn next_refresh(
    found: Option<&ReadOutcome>,
    policy: &CachePolicy,
    planned: Option<Planned>,
    failure: Option<&RefreshFailure>,
) -> Option<DateTime<Utc>> {
    let held_fetch = found.map(|o| fetched_at(&o.doc));
    let from_doc = found.and_then(|o| next_refresh_at(&o.doc, policy));
    if !policy.has_source {
        return from_doc;
    }
    if let Some(plan) = planned.filter(|p| held_fetch.is_none_or(|held| p.after_fetch.is_some_and(|f| f >= held))) {
        return Some(plan.at);
    }
    from_doc.max(failure.and_then(|f| f.retry_at))
}

fn meta_json(
    name: &CacheName,
    found: Option<&ReadOutcome>,
    policy: &CachePolicy,
    synced: Value,
    trouble: Trouble,
) -> Value {
    // A failure older than the document held was overtaken by a later save (a PUT,
    // another instance's refresh): it no longer says anything about this data.
    let held_fetch = found.map(|o| fetched_at(&o.doc));
    let failure = trouble.refresh.as_ref().filter(|f| held_fetch.is_none_or(|held| f.at > held));
    let refresh_error = failure.map(|f| f.error.clone());
    // `error`: why nothing is served. A deauthorization is the whole story (the data was purged, refreshes stopped);
    // otherwise every cause between a cache without data and its data.
    let error = match &trouble.deauthorized {
        Some(deauthorized) => Some(deauthorized.clone()),
        None => found.is_none().then(|| causes(name, &trouble, refresh_error.as_deref())).flatten(),
    };
    let mut meta = match found {
        None => json!({
            "name": name.as_str(), "version": null, "checksum": null, "size": null,
            "last_fetch": null, "last_rich_fetch": null, "saved_at": null, "tier": null,
            "stale": null, "next_refresh_at": null, "postgres_synced": synced,
        }),
        Some(ReadOutcome { doc, tier }) => json!({
            "name": name.as_str(),
            "version": doc.version,
            "checksum": doc.checksum.to_string(),
            "size": doc.body.len(),
            "last_fetch": doc.last_fetch.as_ref().map(rfc3339),
            "last_rich_fetch": doc.last_rich_fetch.as_ref().map(rfc3339),
            "saved_at": rfc3339(&doc.saved_at),
            "tier": tier.as_str(),
            "stale": *tier == ServedFrom::Stale,
            "next_refresh_at": null,
            "postgres_synced": synced,
        }),
    };
    meta["next_refresh_at"] = next_refresh(found, policy, trouble.planned, failure).as_ref().map(rfc3339).into();
    meta["source"] = policy.source.into();
    meta["last_refresh_error"] = refresh_error.into();
    meta["last_refresh_error_at"] = failure.map(|f| rfc3339(&f.at)).into();
    meta["error"] = error.into();
    meta["deauthorized"] = trouble.deauthorized.is_some().into();
    if trouble.deauthorized.is_some() {
        meta["next_refresh_at"] = Value::Null;
    }
    meta["last_refresh"] =
        trouble.last.map_or(Value::Null, |l| json!({"reason": l.reason, "result": l.result, "at": rfc3339(&l.at)}));
    meta
}

/// What the tiers hold about `name`, judged like a read (stale past its schedule) but
/// never refreshing from upstream and never failing: a broken cache shows its error.
async fn meta_of(state: &AppState, name: &CacheName, policy: &CachePolicy) -> Value {
    let view = state.tiers.refresh_view();
    let mut trouble = Trouble {
        read_error: None,
        quarantined: false,
        refresh: view.and_then(|v| v.failure(name)),
        last: view.and_then(|v| v.last(name)),
        planned: view.and_then(|v| v.planned(name)),
        deauthorized: view.and_then(|v| v.deauthorized(name)).map(|d| d.explain(name)),
    };
    let found = match state.tiers.peek(name).await {
        Ok(Some(mut outcome)) => {
            if past_schedule(&outcome.doc, policy) {
                outcome.tier = ServedFrom::Stale;
            }
            Some(outcome)
        }
        Ok(None) => None,
        Err(e) => {
            trouble.read_error = Some(format!("cache {name} could not be read: {e}"));
            None
        }
    };
    if found.is_none() {
        trouble.quarantined = state.tiers.quarantined(name).await;
    }
    let synced = postgres_synced(state, name, found.as_ref());
    meta_json(name, found.as_ref(), policy, synced, trouble)
}

/// `GET /v1/caches/{name}/meta`.
pub(super) async fn meta(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (name, policy) = lookup(&state, &path)?;
    Ok(HttpResponse::Ok().content_type("application/json").body(json_line(&meta_of(&state, &name, &policy).await)))
}

/// `GET /v1/caches`: every configured cache with its meta, by name.
pub(super) async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let policy = state.policy.load_full();
    let mut names: Vec<&CacheName> = policy.caches.keys().collect();
    names.sort();
    let mut caches = Vec::with_capacity(names.len());
    for name in names {
        caches.push(meta_of(&state, name, &policy.caches[name]).await);
    }
    let status = state.tiers.postgres_status();
    let queue = status.as_ref().map(|(status, _)| {
        json!({
            "enabled": status.enabled,
            "depth": status.depth,
            "oldest_age_seconds": status.oldest_age_seconds,
        })
    });
    // Whether saves reach Postgres, and if not why and what to do.
    let postgres = status.as_ref().map(|(_, outage)| match outage {
        None => json!({"up": true, "error": null, "fix": null, "since": null}),
        Some(o) => json!({"up": false, "error": o.error, "fix": o.fix, "since": rfc3339(&o.since)}),
    });
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(json_line(&json!({ "caches": caches, "retry_queue": queue, "postgres": postgres }))))
}

fn precondition(req: &HttpRequest) -> Precondition {
    let values: Vec<&str> = req.headers().get_all(header::IF_MATCH).filter_map(|v| v.to_str().ok()).collect();
    if values.is_empty() {
        return Precondition::None;
    }
    let tags: Vec<String> = values.iter().flat_map(|v| v.split(',')).map(|t| t.trim().to_owned()).collect();
    if tags.iter().any(|t| t == "*") {
        Precondition::Exists
    } else {
        Precondition::OneOf(tags)
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("the body exceeds the limit of {limit} bytes"))
}

/// The API's answer to a document the cache's rules refused (a schema refusal is
/// [`schema_rejection`]'s 422).
fn refusal_error(name: &CacheName, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::TooLarge { limit, .. } => too_large(limit),
        Refusal::TooDeep(e) => ApiError::new(StatusCode::BAD_REQUEST, "too_deep", e.to_string()),
        Refusal::InvalidJson(e) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("the body is not valid JSON: {e}"))
        }
        // Removed by a reload since the request was routed.
        Refusal::NotConfigured => ApiError::unknown_cache(name.as_str()),
        Refusal::Schema(errors) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "schema_mismatch", errors.join("; "))
        }
    }
}

/// `PUT /v1/caches/{name}`: validated, durable on disk, in memory, then 200.
pub(super) async fn put(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (name, policy) = lookup(&state, &path)?;
    let count = |result: &'static str| {
        state.metrics.saves.get_or_create(&CacheResult { cache: name.to_string(), result }).inc();
    };
    if !is_json(&req) {
        count("invalid");
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be sent as Content-Type: application/json",
        ));
    }
    let limit = policy.max_size.min(state.policy.load().max_body);
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        count("too_large");
        return Err(too_large(limit));
    }
    let body = match payload.to_bytes_limited(usize::try_from(limit).unwrap_or(usize::MAX)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            count("invalid");
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_body", format!("could not read the body: {e}")));
        }
        Err(_) => {
            count("too_large");
            return Err(too_large(limit));
        }
    };
    // The cache's rules decide; this only maps their refusal to the API's status and code.
    let saver = &state.saver;
    let doc = saver.admit(&name, &body).map_err(|refusal| {
        count(if matches!(refusal, Refusal::TooLarge { .. }) { "too_large" } else { "invalid" });
        refusal
    });
    let doc = match doc {
        Ok(doc) => doc,
        Err(Refusal::Schema(errors)) => return Ok(schema_rejection(&name, &errors)),
        Err(refusal) => return Err(refusal_error(&name, refusal)),
    };
    match saver.save_put(&name, doc, precondition(&req)).await {
        Ok(saved) => {
            count("ok");
            tracing::info!(cache = %name, version = saved.version, "saved");
            Ok(saved_response(&saved))
        }
        Err(SaveError::PreconditionFailed { current }) => {
            count("conflict");
            Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                format!("If-Match does not match the current version ({})", current.as_deref().unwrap_or("none")),
            ))
        }
        Err(e @ SaveError::Unavailable(_)) => {
            count("error");
            tracing::warn!(cache = %name, tier = "postgres", error = %e, "If-Match PUT not acknowledged: Postgres unreachable");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "precondition_unverifiable", e.to_string())
                .retry_after(5))
        }
        Err(e @ (SaveError::Storage(_) | SaveError::NotOnDisk(_) | SaveError::Changed)) => {
            count("error");
            tracing::error!(cache = %name, tier = "file", alert = true, error = %e, "save failed");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", e.to_string()).retry_after(5))
        }
    }
}

fn saved_response(saved: &Arc<Document>) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::ETAG, saved.etag.as_str())).content_type("application/json").body(
        json_line(&json!({
            "name": saved.name.as_str(),
            "version": saved.version,
            "checksum": saved.checksum.to_string(),
            "saved_at": rfc3339(&saved.saved_at),
        })),
    )
}

/// `DELETE /v1/caches/{name}`: purged from every tier.
pub(super) async fn delete(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (name, _) = lookup(&state, &path)?;
    match state.tiers.delete(&name).await {
        Ok(existed) => {
            tracing::info!(cache = %name, existed, "deleted");
            Ok(HttpResponse::NoContent().finish())
        }
        Err(e) => {
            tracing::error!(cache = %name, alert = true, error = %e, "delete failed");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", e.to_string()).retry_after(5))
        }
    }
}

/// `POST /v1/caches/{name}/refresh[?full=true]`.
pub(super) async fn refresh(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (name, policy) = lookup(&state, &path)?;
    let full = super::refresh_query::full(req.query_string())?;
    if !policy.has_source {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_source",
            format!("cache {name} has no source configured; it is filled by PUT"),
        ));
    }
    let Some(started) = state.tiers.refresh_on_request(&name, full).await else {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "refresher_unavailable", "no refresher is running")
            .retry_after(EMPTY_RETRY_AFTER));
    };
    match started {
        Ok(()) => Ok(HttpResponse::Accepted()
            .content_type("application/json")
            .body(json_line(&json!({ "name": name.as_str(), "refresh": "started", "full": full })))),
        Err(RefreshError::RateLimited(until)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "rate_limited",
            format!("the upstream rate limit for {name} resets at {until}"),
        )
        .retry_after((until - Utc::now()).num_seconds().max(1) as u64)),
        Err(RefreshError::Deauthorized(why)) => Err(ApiError::new(StatusCode::CONFLICT, "deauthorized", why)),
        Err(e) => Err(ApiError::new(StatusCode::CONFLICT, "no_source", e.to_string())),
    }
}
