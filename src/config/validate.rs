//! Raw mirror → [`Settings`]: every check that needs more than a type, each error
//! naming its key. The top-level keys and `[[caches]]` are checked here; each other
//! section by its own file's `check`, called here in the order errors are reported.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::ExposeSecret;
use tiercache_actors::refresher::sources::config::{JUSTGIVING_BASE_URL, STRAVA_BASE_URL, STRAVA_MAX_PER_PAGE};
use tiercache_actors::refresher::sources::{strava, SourceKind};

use super::paths::PathBase;
use super::raw::{non_empty, RawCache, RawSecret, RawSettings, RawSource};
use super::{
    exposure, secrets, CacheName, CacheSettings, ConfigError, Env, MemorySettings, RefreshSettings, Settings,
    ShutdownSettings, SourceConfig,
};

/// Longest accepted `project`.
const MAX_PROJECT_LEN: usize = 100;

/// Checks the merged raw settings and builds the typed ones.
/// `file`: the configuration file read, whose directory relative paths are taken from.
///
/// # Errors
/// The first problem, as a [`ConfigError`] naming its key.
pub(super) fn settings(
    raw: RawSettings,
    env: Env<'_>,
    file: Option<&Path>,
    warnings: Vec<String>,
) -> Result<Settings, ConfigError> {
    let base = PathBase::new(file, env);
    if raw.project.is_empty() {
        return Err(ConfigError::new("project", "must not be empty"));
    }
    if raw.project.chars().count() > MAX_PROJECT_LEN {
        return Err(ConfigError::new("project", format!("must be at most {MAX_PROJECT_LEN} characters")));
    }
    if raw.data_dir.is_empty() {
        return Err(ConfigError::new("data_dir", "must not be empty"));
    }
    let log = raw.log.check()?;
    let retry = raw.retry.check()?;
    let supervisor = raw.supervisor.check()?;
    // In the order errors are reported: api, postgres, webhooks, caches.
    let api = raw.api.check(&base)?;
    let postgres = raw.postgres.check(&base)?;
    let webhooks = raw.webhooks.check(&base)?;
    // With webhooks on, a Strava source learns its athlete id (for deauthorizations).
    let caches = caches(raw.caches, &base, webhooks.strava_verify_token.is_some())?;
    let mut settings = Settings {
        project: raw.project,
        data_dir: PathBuf::from(raw.data_dir),
        log,
        api,
        memory: MemorySettings::from(raw.memory),
        postgres,
        retry,
        shutdown: ShutdownSettings::from(raw.shutdown),
        refresh: RefreshSettings::from(raw.refresh),
        supervisor,
        webhooks,
        caches,
        warnings,
    };
    exposure::check(&mut settings)?;
    Ok(settings)
}

/// `learn_athlete`: `[webhooks]` has a Strava verify token.
fn caches(raw: Vec<RawCache>, base: &PathBase<'_>, learn_athlete: bool) -> Result<Vec<CacheSettings>, ConfigError> {
    let mut seen = HashSet::new();
    raw.into_iter()
        .enumerate()
        .map(|(i, cache)| {
            let key = |field: &str| format!("caches[{i}].{field}");
            let name = CacheName::parse(&cache.name)
                .map_err(|e| ConfigError::new(key("name"), format!("{:?}: {e}", cache.name)))?;
            if !seen.insert(name.clone()) {
                return Err(ConfigError::new(key("name"), format!("duplicate cache name \"{name}\"")));
            }
            for (field, every) in
                [("refresh_every", cache.refresh_every.0), ("rich_refresh_every", cache.rich_refresh_every.0)]
            {
                if every == Some(Duration::ZERO) {
                    return Err(ConfigError::new(key(field), "must be more than 0s (leave it unset for no schedule)"));
                }
            }
            if cache.max_size.0 == 0 {
                return Err(ConfigError::new(key("max_size"), "must be more than 0"));
            }
            // The row's CHECK: 0 would purge a removed cache at once.
            if !(1..=3650).contains(&cache.retention_days) {
                return Err(ConfigError::new(key("retention_days"), "must be between 1 and 3650"));
            }
            let (source, secret_files) = match cache.source {
                Some(raw) => source(raw, &key("source"), base, learn_athlete).map(|(s, files)| (Some(s), files))?,
                None => (None, BTreeMap::new()),
            };
            Ok(CacheSettings {
                name,
                refresh_every: cache.refresh_every.0,
                rich_refresh_every: cache.rich_refresh_every.0,
                max_size: cache.max_size.0,
                retention_days: cache.retention_days,
                schema: non_empty(cache.schema).map(|written| base.locate(&key("schema"), false, &written).path),
                source,
                secret_files,
            })
        })
        .collect()
}

/// Builds one source; `at` is its key, e.g. `caches[0].source`; `learn_athlete`:
/// webhooks are on, so a strava source learns its athlete id. Also returns the secrets
/// given as `_file` keys, with the file names as written.
fn source(
    raw: RawSource,
    at: &str,
    base: &PathBase<'_>,
    learn_athlete: bool,
) -> Result<(SourceConfig, BTreeMap<&'static str, String>), ConfigError> {
    let kind = check_kind_keys(&raw, at)?;
    let mut keys = SourceKeys { at, base, files: BTreeMap::new() };
    let config = match kind {
        SourceKind::Strava => strava(raw, &mut keys, learn_athlete)?,
        SourceKind::Justgiving => justgiving(raw, &mut keys)?,
        SourceKind::Http => http(raw, &mut keys)?,
        SourceKind::Command => command(raw, &keys)?,
    };
    Ok((config, keys.files))
}

/// The keys a source of `kind` may set, beside `kind`.
fn kind_keys(kind: SourceKind) -> &'static [&'static str] {
    match kind {
        SourceKind::Strava => &[
            "client_id",
            "client_secret",
            "client_secret_file",
            "refresh_token",
            "refresh_token_file",
            "base_url",
            "per_page",
            "full_refresh_every",
        ],
        SourceKind::Justgiving => &["app_id", "app_id_file", "page_short_name", "base_url"],
        SourceKind::Http => &["url", "headers", "bearer_token", "bearer_token_file"],
        SourceKind::Command => &["argv", "timeout"],
    }
}

/// Refuses a `kind` that does not exist and keys that do not belong to the source's kind.
fn check_kind_keys(raw: &RawSource, at: &str) -> Result<SourceKind, ConfigError> {
    let key = |field: &str| format!("{at}.{field}");
    let Some(kind) = SourceKind::parse(&raw.kind) else {
        let names: Vec<&str> = SourceKind::ALL.iter().map(|k| k.as_str()).collect();
        let (last, rest) = names.split_last().expect("at least one kind");
        return Err(ConfigError::new(
            key("kind"),
            format!("expected {} or {last}, got {:?}", rest.join(", "), raw.kind),
        ));
    };
    let allowed = kind_keys(kind);
    if let Some(field) = raw.set_keys().into_iter().find(|f| !allowed.contains(f)) {
        return Err(ConfigError::new(key(field), format!("unknown key for a source of kind \"{}\"", raw.kind)));
    }
    Ok(kind)
}

/// What the builders of each kind share: the source's key, where its files are, and the
/// secrets given as `_file` keys (field → file name as written) so far.
struct SourceKeys<'a> {
    at: &'a str,
    /// Where the `_file` keys' relative paths are taken from.
    base: &'a PathBase<'a>,
    files: BTreeMap<&'static str, String>,
}

impl SourceKeys<'_> {
    /// The full key of `field`, e.g. `caches[0].source.url`.
    fn key(&self, field: &str) -> String {
        format!("{}.{field}", self.at)
    }

    fn required(&self, field: &str) -> ConfigError {
        ConfigError::new(self.key(field), "required key is missing")
    }

    /// A required text key; `""` counts as missing.
    fn text(&self, value: Option<String>, field: &str) -> Result<String, ConfigError> {
        value.filter(|v| !v.is_empty()).ok_or_else(|| self.required(field))
    }

    /// A secret given inline as `field` or read from `field_file`, not both; with the
    /// file's resolved path when it came from one. `""` inline counts as unset.
    fn secret(
        &mut self,
        value: Option<RawSecret>,
        file: Option<String>,
        field: &'static str,
    ) -> Result<Option<(String, Option<PathBuf>)>, ConfigError> {
        let file_field = format!("{field}_file");
        match (value.and_then(RawSecret::into_option), file) {
            (Some(_), Some(_)) => {
                Err(ConfigError::new(self.key(&file_field), format!("set either {field} or {file_field}, not both")))
            }
            (Some(value), None) => Ok(Some((value.expose_secret().to_owned(), None))),
            (None, Some(written)) => {
                let key = self.key(&file_field);
                let located = self.base.locate(&key, false, &written);
                let value = secrets::read(&key, &located)?;
                self.files.insert(field, written);
                Ok(Some((value.expose_secret().to_owned(), Some(located.path))))
            }
            (None, None) => Ok(None),
        }
    }

    /// [`SourceKeys::secret`] for a secret the kind cannot do without.
    fn required_secret(
        &mut self,
        value: Option<RawSecret>,
        file: Option<String>,
        field: &'static str,
    ) -> Result<(String, Option<PathBuf>), ConfigError> {
        self.secret(value, file, field)?.ok_or_else(|| self.required(field))
    }
}

/// `kind = "strava"`.
fn strava(raw: RawSource, keys: &mut SourceKeys<'_>, learn_athlete: bool) -> Result<SourceConfig, ConfigError> {
    let client_id = keys.text(raw.client_id, "client_id")?;
    let (client_secret, _) = keys.required_secret(raw.client_secret, raw.client_secret_file, "client_secret")?;
    let (refresh_token, refresh_token_file) =
        keys.required_secret(raw.refresh_token, raw.refresh_token_file, "refresh_token")?;
    let per_page = raw.per_page.unwrap_or(STRAVA_MAX_PER_PAGE);
    if per_page == 0 || per_page > STRAVA_MAX_PER_PAGE {
        return Err(ConfigError::new(keys.key("per_page"), format!("must be between 1 and {STRAVA_MAX_PER_PAGE}")));
    }
    Ok(SourceConfig::Strava(strava::Settings {
        client_id,
        client_secret,
        refresh_token,
        refresh_token_file,
        base_url: base_url(raw.base_url, STRAVA_BASE_URL, &keys.key("base_url"))?,
        per_page,
        full_refresh_every: full_refresh_every(raw.full_refresh_every, &keys.key("full_refresh_every"))?,
        learn_athlete,
    }))
}

/// `kind = "justgiving"`.
fn justgiving(raw: RawSource, keys: &mut SourceKeys<'_>) -> Result<SourceConfig, ConfigError> {
    let (app_id, _) = keys.required_secret(raw.app_id, raw.app_id_file, "app_id")?;
    Ok(SourceConfig::Justgiving {
        app_id,
        page_short_name: keys.text(raw.page_short_name, "page_short_name")?,
        base_url: base_url(raw.base_url, JUSTGIVING_BASE_URL, &keys.key("base_url"))?,
    })
}

/// `kind = "http"`.
fn http(raw: RawSource, keys: &mut SourceKeys<'_>) -> Result<SourceConfig, ConfigError> {
    let url = keys.text(raw.url, "url")?;
    if !is_http_url(&url) {
        return Err(ConfigError::new(keys.key("url"), "expected an http:// or https:// URL"));
    }
    let bearer_token = keys.secret(raw.bearer_token, raw.bearer_token_file, "bearer_token")?.map(|(token, _)| token);
    Ok(SourceConfig::Http { url, headers: raw.headers.unwrap_or_default(), bearer_token })
}

/// `kind = "command"`. A program named by a relative path (`./fetch.sh`, `bin/fetch`) is
/// taken from the configuration file's directory like every other path; a bare name
/// (`sh`) is looked up in `PATH` as usual, and the arguments are passed as written.
fn command(raw: RawSource, keys: &SourceKeys<'_>) -> Result<SourceConfig, ConfigError> {
    let mut argv = raw.argv.unwrap_or_default();
    if argv.first().is_none_or(String::is_empty) {
        return Err(ConfigError::new(keys.key("argv"), "needs at least the program to run"));
    }
    if argv[0].contains('/') {
        let program = keys.base.locate(&keys.key("argv"), false, &argv[0]).path;
        argv[0] = program.display().to_string();
    }
    Ok(SourceConfig::Command { argv, timeout: raw.timeout.map_or(Duration::from_secs(30), |t| t.0) })
}

/// Strava's `full_refresh_every`: default one day; zero would make every refresh full
/// and is refused as a likely mistake.
fn full_refresh_every(value: Option<super::durations::Dur>, key: &str) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(Duration::from_secs(24 * 3600)),
        Some(d) if d.0.is_zero() => Err(ConfigError::new(key, "must be above zero")),
        Some(d) => Ok(d.0),
    }
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// A source's `base_url`, defaulted; upstreams are only ever reached over HTTP(S).
fn base_url(value: Option<String>, default: &str, key: &str) -> Result<String, ConfigError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(default.to_owned()),
        Some(url) if is_http_url(&url) => Ok(url.trim_end_matches('/').to_owned()),
        Some(_) => Err(ConfigError::new(key, "expected an http:// or https:// URL")),
    }
}
