//! `[log]`, the one place of the config layer that knows its keys: the type the binary
//! sets up logging with, its defaults, the file's form, its check, what `check-config`
//! prints, what a reload compares and how it treats each key.

use std::io::IsTerminal;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::reload::table::Reload::{self, Applied, Restart};

/// `[log]`.
#[derive(Debug, Clone)]
pub(crate) struct LogSettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG`, when set, wins.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { format: LogFormat::Auto, level: "info".into() }
    }
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Json,
    Pretty,
    /// Not set: lines for people when stdout is a terminal, JSON otherwise (the journal,
    /// a container's log driver, a pipe).
    Auto,
}

impl LogFormat {
    /// Whether to write JSON lines, given whether stdout is a terminal.
    pub(crate) fn is_json(self, stdout_is_terminal: bool) -> bool {
        match self {
            Self::Json => true,
            Self::Pretty => false,
            Self::Auto => !stdout_is_terminal,
        }
    }

    /// As the file writes it; unset is `""`.
    fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Pretty => "pretty",
            Self::Auto => "",
        }
    }
}

/// The section as written; also what `check-config` prints of it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawLog {
    format: String,
    level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self::from(&LogSettings::default())
    }
}

impl From<&LogSettings> for RawLog {
    fn from(s: &LogSettings) -> Self {
        let LogSettings { format, level } = s;
        Self { format: format.as_str().to_owned(), level: level.clone() }
    }
}

impl RawLog {
    /// `format` one of the three spellings.
    pub(crate) fn check(self) -> Result<LogSettings, ConfigError> {
        let Self { format, level } = self;
        let Some(format) =
            [LogFormat::Json, LogFormat::Pretty, LogFormat::Auto].into_iter().find(|f| f.as_str() == format)
        else {
            return Err(ConfigError::new(
                "log.format",
                format!("expected \"json\", \"pretty\" or \"\" (unset: by the terminal), got {format:?}"),
            ));
        };
        Ok(LogSettings { format, level })
    }

    /// What `check-config` prints: an unset format as what `run` would pick with the
    /// same stdout as this output's.
    pub(crate) fn printed(s: &LogSettings) -> Self {
        let json = s.format.is_json(std::io::stdout().is_terminal());
        let format = if json { LogFormat::Json } else { LogFormat::Pretty };
        Self::from(&LogSettings { format, level: s.level.clone() })
    }
}

/// What a reload compares: each key and its value (`Debug`).
pub(crate) fn flat(s: &LogSettings) -> [(&'static str, String); 2] {
    let LogSettings { format, level } = s;
    [("log.format", format!("{format:?}")), ("log.level", format!("{level:?}"))]
}

/// How a reload treats each key.
pub(crate) const RELOAD: &[(&str, Reload)] =
    &[("log.format", Restart), ("log.level", Applied("the log filter (unless RUST_LOG is set)"))];
