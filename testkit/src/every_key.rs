//! The "every key set" configuration of the reload tests (tests/fixtures/every-key.toml)
//! and the one way they change a single key in it: both the unit table test and the
//! black-box SIGHUP test start from the same file, so a key added to it is exercised by
//! both.

/// The fixture's text, with the placeholders `DIR` (the test's directory) and `PORT`.
pub const EVERY_KEY: &str = include_str!("../../tests/fixtures/every-key.toml");

/// One change of the reload suites (src/reload/tests.rs on the loaded configuration,
/// tests/api/reload_keys.rs on the running daemon): set `path` (a key as the reload
/// logs it, see [`edited`]) to the TOML `value` in [`EVERY_KEY`]; the reload must then
/// name `shows_as` as applied, or as needing a restart when `restart` is set. Every key
/// of the reload table is covered by a change of it or by a change that shows as it.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    /// What to edit.
    pub path: &'static str,
    /// Its new value; `DIR` and `PORT` are filled in as in the fixture.
    pub value: &'static str,
    /// The key the reload names: renaming a cache changes `caches`, replacing a source
    /// its kind, and a secret's `_file` the secret it holds.
    pub shows_as: &'static str,
    /// Needs a restart rather than applied.
    pub restart: bool,
    /// Also changed on the running daemon. Off where the daemon's fixture lacks what
    /// the change needs (a tokens file, a certificate, `[webhooks]`).
    pub daemon: bool,
}

const fn applied(path: &'static str, value: &'static str) -> Change {
    Change { path, value, shows_as: path, restart: false, daemon: true }
}

const fn restart(path: &'static str, value: &'static str) -> Change {
    Change { restart: true, ..applied(path, value) }
}

impl Change {
    const fn shows_as(self, key: &'static str) -> Self {
        Self { shows_as: key, ..self }
    }

    const fn in_file_only(self) -> Self {
        Self { daemon: false, ..self }
    }
}

/// A file whose contents differ from the fixture's `DIR/one`.
const TWO: &str = r#""DIR/two""#;

/// The changes, one table for both suites. Turning TLS on needs a restart (the unit
/// test sets both of its keys).
pub const CHANGES: &[Change] = &[
    restart("project", r#""p2""#),
    restart("data_dir", r#""data2""#),
    restart("log.format", r#""pretty""#),
    applied("log.level", r#""debug""#),
    restart("api.listen", r#"["127.0.0.1:PORT", "127.0.0.1:9"]"#),
    applied("api.max_body", r#""1MiB""#),
    applied("api.tokens_file", r#""DIR/tokens2""#).in_file_only(),
    applied("api.allow_unauthenticated", "true"),
    applied("api.allow", r#"["127.0.0.0/8"]"#),
    applied("api.rate_limit_per_second", "1000"),
    applied("api.rate_limit_burst", "1000"),
    restart("api.workers", "3"),
    restart("api.tls_cert", r#""DIR/cert2""#).in_file_only(),
    restart("api.tls_key", r#""DIR/key2""#).in_file_only(),
    restart("memory.ttl", r#""10m""#),
    restart("postgres.enabled", "true"),
    applied("postgres.url", r#""postgres://u@127.0.0.1:9/db2""#),
    applied("postgres.password_file", TWO),
    applied("postgres.sslmode", r#""require""#),
    applied("postgres.ssl_root_cert", r#""DIR/ca.pem""#),
    applied("postgres.pool_size", "4"),
    restart("postgres.statement_cache", "false"),
    applied("postgres.connect_timeout", r#""3s""#),
    applied("postgres.statement_timeout", r#""5s""#),
    restart("postgres.heads_poll_interval", r#""5s""#),
    restart("postgres.single_instance", "true"),
    applied("retry.enabled", "false"),
    applied("retry.initial_interval", r#""1s""#),
    applied("retry.max_interval", r#""2m""#),
    applied("retry.multiplier", "3.0"),
    applied("retry.max_attempts", "3"),
    applied("shutdown.graceful", "false"),
    applied("shutdown.timeout", r#""5s""#),
    applied("refresh.emergency", "false"),
    applied("refresh.fetch_timeout", r#""5s""#),
    applied("refresh.max_stale", r#""1h""#),
    applied("refresh.jitter", r#""30s""#),
    restart("supervisor.max_restarts", "9"),
    restart("supervisor.restart_window", r#""2m""#),
    applied("webhooks.strava_verify_token", r#""v2""#).in_file_only(),
    applied("webhooks.strava_verify_token_file", r#""DIR/one""#).in_file_only(),
    applied("caches[plain].name", r#""other""#).shows_as("caches"),
    applied("caches[plain].refresh_every", r#""1h""#),
    applied("caches[plain].rich_refresh_every", r#""2h""#),
    applied("caches[plain].max_size", r#""1MiB""#),
    applied("caches[plain].retention_days", "90"),
    applied("caches[plain].schema", r#""DIR/schema.json""#),
    applied("caches[strava].source.client_id", r#""2""#),
    applied("caches[strava].source.client_secret", r#""b""#),
    applied("caches[strava].source.refresh_token", r#""r2""#),
    applied("caches[strava].source.base_url", r#""http://127.0.0.1:10""#),
    applied("caches[strava].source.per_page", "50"),
    applied("caches[strava].source.full_refresh_every", r#""12h""#),
    applied("caches[strava-files].source.client_secret_file", TWO)
        .shows_as("caches[strava-files].source.client_secret"),
    applied("caches[strava-files].source.refresh_token_file", TWO),
    applied("caches[jg].source.app_id", r#""b""#),
    applied("caches[jg].source.page_short_name", r#""other""#),
    applied("caches[jg-file].source.app_id_file", TWO).shows_as("caches[jg-file].source.app_id"),
    applied("caches[web].source.url", r#""http://127.0.0.1:9/b""#),
    applied("caches[web].source.headers", r#"{ x-key = "v2" }"#),
    applied("caches[web].source.bearer_token", r#""t2""#),
    applied("caches[web-file].source.bearer_token_file", TWO).shows_as("caches[web-file].source.bearer_token"),
    applied("caches[cmd].source.argv", r#"["true"]"#),
    applied("caches[cmd].source.timeout", r#""20s""#),
    applied("caches[cmd].source", r#"{ kind = "http", url = "http://127.0.0.1:9/c" }"#)
        .shows_as("caches[cmd].source.kind"),
];

/// `text` (TOML) with `path` set to the TOML value `value`, or removed when `value` is
/// `None`. `path` is dotted as the reload logs keys: a `[[caches]]` entry is addressed
/// by its name, as in `caches[strava].source.client_id`.
///
/// # Panics
/// When `text` or `value` is not TOML, or `path` does not lead to a table.
pub fn edited(text: &str, path: &str, value: Option<&str>) -> String {
    let mut doc: toml::Table = text.parse().unwrap_or_else(|e| panic!("not TOML: {e}"));
    let parts: Vec<&str> = path.split('.').collect();
    let (last, parents) = parts.split_last().expect("a non-empty path");
    let mut at = &mut doc;
    for part in parents {
        at = match part.strip_suffix(']').and_then(|p| p.split_once('[')) {
            Some((array, name)) => entry(at, array, name).unwrap_or_else(|| panic!("{path}: no {part}")),
            None => match at.get_mut(*part) {
                Some(toml::Value::Table(t)) => t,
                other => panic!("{path}: {other:?} at {part} is not a table"),
            },
        };
    }
    match value {
        Some(value) => {
            let value = format!("v = {value}").parse::<toml::Table>().unwrap_or_else(|e| panic!("{value}: {e}"));
            at.insert((*last).to_owned(), value["v"].clone());
        }
        None => {
            at.remove(*last).unwrap_or_else(|| panic!("{path} is not set"));
        }
    }
    toml::to_string(&doc).expect("a table serializes")
}

/// The entry of the array of tables `array` whose `name` is `name`.
fn entry<'t>(at: &'t mut toml::Table, array: &str, name: &str) -> Option<&'t mut toml::Table> {
    let items = at.get_mut(array)?.as_array_mut()?;
    items
        .iter_mut()
        .filter_map(toml::Value::as_table_mut)
        .find(|t| t.get("name").and_then(|n| n.as_str()) == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_and_removes_keys_of_tables_and_named_entries() {
        let text = edited(EVERY_KEY, "caches[strava].source.per_page", Some("50"));
        let text = edited(&text, "api.tls_cert", None);
        let doc: toml::Table = text.parse().unwrap();
        let strava = doc["caches"].as_array().unwrap().iter().find(|c| c["name"].as_str() == Some("strava")).unwrap();
        assert_eq!(strava["source"]["per_page"].as_integer(), Some(50));
        assert!(!doc["api"].as_table().unwrap().contains_key("tls_cert"));
        assert_eq!(doc["api"]["max_body"].as_str(), Some("16MiB"), "the rest is kept");
    }
}
