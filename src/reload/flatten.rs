//! The configuration as a flat map `key → value`, the form in which two configurations
//! are compared on reload.
//!
//! Every struct is destructured field by field, so adding a setting without deciding
//! how a reload treats it does not compile. Secrets are reduced to a fingerprint: the
//! map says that a secret changed, never what it is.

use crate::config::{self, CacheSettings, Settings, SourceConfig};
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use tiercache_actors::refresher::sources::strava;

/// Key (as in the file, caches as `caches[NAME].KEY`) → comparable value.
pub(crate) type Flat = BTreeMap<String, String>;

/// The keys of a section with a file of its own under `config/`, as its `flat` gives them.
fn section<const N: usize>(map: &mut Flat, keys: [(&'static str, String); N]) {
    map.extend(keys.map(|(key, value)| (key.to_owned(), value)));
}

fn put(map: &mut Flat, key: impl Into<String>, value: impl Debug) {
    map.insert(key.into(), format!("{value:?}"));
}

/// A fingerprint that changes with the secret and cannot be turned back into it.
pub(crate) fn secret(s: &SecretString) -> String {
    fingerprint(s.expose_secret())
}

/// [`secret`] for the sources' secrets, which the refresher's own type holds as text.
fn fingerprint(s: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    format!("secret:{:016x}", h.finish())
}

/// Flattens `s`.
pub(crate) fn flatten(s: &Settings) -> Flat {
    let Settings {
        project,
        data_dir,
        log,
        api,
        memory,
        postgres,
        retry,
        shutdown,
        refresh,
        supervisor,
        webhooks,
        caches,
        warnings: _,
    } = s;
    let mut m = Flat::new();
    put(&mut m, "project", project);
    put(&mut m, "data_dir", data_dir);
    section(&mut m, config::log::flat(log));
    section(&mut m, config::api::flat(api));
    section(&mut m, config::memory::flat(memory));
    section(&mut m, config::postgres::flat(postgres));
    section(&mut m, config::retry::flat(retry));
    section(&mut m, config::shutdown::flat(shutdown));
    section(&mut m, config::refresh::flat(refresh));
    section(&mut m, config::supervisor::flat(supervisor));
    section(&mut m, config::webhooks::flat(webhooks));
    let names: Vec<&str> = caches.iter().map(|c| c.name.as_str()).collect();
    put(&mut m, "caches", names);
    for cache in caches {
        cache_keys(&mut m, cache);
    }
    m
}

fn cache_keys(m: &mut Flat, cache: &CacheSettings) {
    let CacheSettings {
        name,
        refresh_every,
        rich_refresh_every,
        max_size,
        retention_days,
        schema,
        source,
        secret_files,
    } = cache;
    let key = |k: &str| format!("caches[{name}].{k}");
    put(m, key("refresh_every"), refresh_every);
    put(m, key("rich_refresh_every"), rich_refresh_every);
    put(m, key("max_size"), max_size);
    put(m, key("retention_days"), retention_days);
    put(m, key("schema"), schema);
    let Some(source) = source else { return };
    let mut src = |k: &str, v: String| m.insert(key(&format!("source.{k}")), v);
    src("kind", source.kind().to_owned());
    match source {
        SourceConfig::Strava(strava::Settings {
            client_id,
            client_secret,
            refresh_token,
            refresh_token_file,
            base_url,
            per_page,
            full_refresh_every,
            // Follows `webhooks.strava_verify_token`, compared there.
            learn_athlete: _,
        }) => {
            src("client_id", client_id.clone());
            src("client_secret", fingerprint(client_secret));
            src("refresh_token", fingerprint(refresh_token));
            src("refresh_token_file", format!("{refresh_token_file:?}"));
            src("base_url", base_url.clone());
            src("per_page", per_page.to_string());
            src("full_refresh_every", format!("{full_refresh_every:?}"));
        }
        SourceConfig::Justgiving { app_id, page_short_name, base_url } => {
            src("app_id", fingerprint(app_id));
            src("page_short_name", page_short_name.clone());
            src("base_url", base_url.clone());
        }
        SourceConfig::Http { url, headers, bearer_token } => {
            src("url", url.clone());
            let headers: Vec<(&String, String)> = headers.iter().map(|(k, v)| (k, fingerprint(v))).collect();
            src("headers", format!("{headers:?}"));
            src("bearer_token", bearer_token.as_deref().map(fingerprint).unwrap_or_default());
        }
        SourceConfig::Command { argv, timeout } => {
            src("argv", format!("{argv:?}"));
            src("timeout", format!("{timeout:?}"));
        }
    }
    // The file names as written (their contents are compared as the secrets above).
    for (field, written) in secret_files {
        m.entry(key(&format!("source.{field}_file"))).or_insert_with(|| format!("{written:?}"));
    }
}
