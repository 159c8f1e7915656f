//! Stacks the layers (defaults < file < legacy variables < `TIERCACHE__` overrides)
//! and deserializes the result with each error naming its key.

use std::path::{Path, PathBuf};

use ::config::{Config, Environment, File, FileFormat, Map};

use super::env_compat::Legacy;
use super::raw::RawSettings;
use super::{ConfigError, Env};

/// The file read when no `--config` is given, relative to the working directory.
pub(crate) const DEFAULT_FILE: &str = "./tiercache.toml";

/// Every key a `TIERCACHE__SECTION__KEY` variable may set: the reload table's keys
/// outside `[[caches]]` (which cannot be addressed by a variable). Listed because the
/// lookup is a function that cannot enumerate the environment.
pub(crate) fn overridable_keys() -> Vec<&'static str> {
    crate::reload::table::table().map(|(key, _)| key).filter(|key| !key.starts_with("caches")).collect()
}

/// The environment variable that overrides `key`, e.g. `TIERCACHE__API__LISTEN`.
pub(crate) fn override_var(key: &str) -> String {
    format!("TIERCACHE__{}", key.replace('.', "__").to_ascii_uppercase())
}

/// Reads the configuration file: the `--config` path, else [`DEFAULT_FILE`] if it
/// exists, else none (built-in defaults).
///
/// # Errors
/// A [`ConfigError`] keyed by the path when a given file cannot be read.
pub(crate) fn read_file(file: Option<&Path>) -> Result<Option<(PathBuf, String)>, ConfigError> {
    let path = match file {
        Some(path) => path.to_path_buf(),
        None if Path::new(DEFAULT_FILE).exists() => PathBuf::from(DEFAULT_FILE),
        None => return Ok(None),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read: {e}")))?;
    Ok(Some((path, text)))
}

/// Merges the layers and deserializes them into the raw mirror.
///
/// # Errors
/// A [`ConfigError`] naming the key path (`caches[1].refresh_every`, `api.foo`),
/// or the file when its TOML does not parse.
pub(crate) fn merge(
    file: Option<&(PathBuf, String)>,
    legacy: &Legacy,
    env: Env<'_>,
) -> Result<RawSettings, ConfigError> {
    let mut builder = Config::builder();
    if let Some((_, text)) = file {
        builder = builder.add_source(File::from_str(text, FileFormat::Toml));
    }
    let overrides: Map<String, String> = overridable_keys()
        .into_iter()
        .filter_map(|key| {
            let var = override_var(key);
            env(&var).map(|value| (var, value))
        })
        .collect();
    let merged = builder
        .add_source(legacy.source())
        .add_source(Environment::with_prefix("TIERCACHE").separator("__").try_parsing(true).source(Some(overrides)))
        .build()
        .map_err(|e| build_error(file.map(|(path, _)| path.as_path()), e))?;
    serde_path_to_error::deserialize(merged).map_err(path_error)
}

/// Reports a failure to build the layers: in practice, TOML that does not parse.
fn build_error(file: Option<&Path>, err: ::config::ConfigError) -> ConfigError {
    let key = file.map_or_else(|| "configuration".to_owned(), |p| p.display().to_string());
    let text = match &err {
        ::config::ConfigError::FileParse { cause, .. } => cause.to_string(),
        other => other.to_string(),
    };
    ConfigError::new(key, one_line(&text))
}

/// The TOML parser draws a multi-line snippet; the error must be one line on stderr,
/// so keep its location line and its message.
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.contains(" | ") && *l != "^")
        .filter(|l| !l.chars().all(|c| c == '^' || c == ' '))
        .collect();
    match lines.as_slice() {
        [] => text.trim().to_owned(),
        [only] => (*only).to_owned(),
        [first, .., last] => format!("{first}: {last}"),
    }
}

/// Turns a deserialization error into `key: problem`, using the path that
/// `serde_path_to_error` tracked.
fn path_error(err: serde_path_to_error::Error<::config::ConfigError>) -> ConfigError {
    let path = err.path().to_string();
    let problem = describe(err.inner());
    // serde reports a missing field at the enclosing table, and an unknown one at
    // the table or at the key depending on the deserializer; the error must name the key.
    let join = |field: &str| {
        if path == "." || path == field {
            field.to_owned()
        } else if path.ends_with(&format!(".{field}")) {
            path.clone()
        } else {
            format!("{path}.{field}")
        }
    };
    if let Some((field, rest)) = backticked(&problem, "unknown field `") {
        let rest = rest.trim_start_matches(',').trim();
        let problem = if rest.is_empty() { "unknown key".to_owned() } else { format!("unknown key; {rest}") };
        return ConfigError::new(join(field), problem);
    }
    if let ::config::ConfigError::NotFound(at) = innermost(err.inner()) {
        // The config crate reports a missing field with its own, run-together path
        // (`caches[0]name`); the field is the identifier at its end.
        let start = at.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
        return ConfigError::new(join(&at[start..]), "required key is missing");
    }
    let key = if path == "." { "configuration".to_owned() } else { path };
    ConfigError::new(key, problem)
}

/// Splits `"<prefix>name`<rest>"` into `(name, rest)`.
fn backticked<'a>(text: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    text.strip_prefix(prefix)?.split_once('`')
}

/// The error inside the config crate's `At` wrappers.
fn innermost(err: &::config::ConfigError) -> &::config::ConfigError {
    match err {
        ::config::ConfigError::At { error, .. } => innermost(error),
        other => other,
    }
}

/// The config crate's error without the key and origin it appends itself (we
/// report the key from the tracked path instead).
fn describe(err: &::config::ConfigError) -> String {
    match innermost(err) {
        ::config::ConfigError::Type { unexpected, expected, .. } => {
            format!("invalid type: {unexpected}, expected {expected}")
        }
        ::config::ConfigError::Message(message) => message.clone(),
        other => other.to_string(),
    }
}
