//! The API tests' configuration builder: the config file a test's daemon gets (its
//! TOML, cache entries and environment), turned into a `tiercache_testkit::Daemon`.
//!
//! The daemon itself (temp dir, free port, HTTP, signals, logs) is testkit's
//! [`Daemon`], shared with `tests/postgres`. Every daemon owns a temp dir that is its
//! working directory and the parent of its `data_dir` (`./data`), a config file
//! `tiercache.toml` in it, and a free TCP port, so tests run in parallel without
//! sharing anything. Set `TEST_LOG=1` to have the daemons' output echoed when they are
//! dropped (use `--nocapture`).

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use tiercache_testkit::cli::Output;
use tiercache_testkit::daemon::{DaemonOptions, EXIT_TIMEOUT};
use tiercache_testkit::Daemon;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tiercache");

/// A command for the binary in `cwd` with a clean, predictable environment.
pub fn command(cwd: &Path) -> Command {
    tiercache_testkit::cli::command(Path::new(BIN), cwd)
}

/// Runs the binary with `args` in `cwd` and `env`, killing it after [`EXIT_TIMEOUT`]
/// (a command that should end but starts a daemon instead is a failure, not a hang).
pub fn run_cmd(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    tiercache_testkit::cli::run(Path::new(BIN), cwd, args, env, EXIT_TIMEOUT)
}

/// Starts a daemon on the built-in caches and waits until it is ready.
pub fn spawn_app() -> Daemon {
    spawn_app_with(Options::new())
}

/// Starts a daemon with `options` and waits until it is ready.
pub fn spawn_app_with(options: Options) -> Daemon {
    Daemon::start(Path::new(BIN), options.daemon_options())
}

/// A temp dir with the config file written, nothing started (`start_again` starts it).
pub fn new_app(options: Options) -> Daemon {
    Daemon::new(Path::new(BIN), options.daemon_options())
}

/// The parts of the config file a test can add to. The builder always writes
/// `data_dir = "data"`, `[log] format = "json"` and `[api]`, where testkit puts
/// `listen = ["127.0.0.1:PORT", extra...]` on the line after `[api]`.
#[derive(Clone, Default, Debug)]
pub struct Options {
    /// Top-level keys (before any table).
    pub top: String,
    /// Lines inside `[log]`.
    pub log: String,
    /// Lines inside `[api]`.
    pub api: String,
    /// More entries of `api.listen` (e.g. `unix:api.sock`).
    pub extra_listen: Vec<String>,
    /// Further tables: `[supervisor]`, `[[caches]]`...
    pub tables: String,
    /// Environment of the daemon.
    pub env: Vec<(String, String)>,
}

impl Options {
    /// The defaults (the built-in caches `strava` and `fundraising`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds top-level keys.
    pub fn top(mut self, lines: &str) -> Self {
        self.top.push_str(lines);
        self.top.push('\n');
        self
    }

    /// Adds lines to `[log]`.
    pub fn log(mut self, lines: &str) -> Self {
        self.log.push_str(lines);
        self.log.push('\n');
        self
    }

    /// Adds lines to `[api]`.
    pub fn api(mut self, lines: &str) -> Self {
        self.api.push_str(lines);
        self.api.push('\n');
        self
    }

    /// Adds a listener.
    pub fn listen(mut self, addr: &str) -> Self {
        self.extra_listen.push(addr.to_owned());
        self
    }

    /// Adds tables after the fixed ones.
    pub fn tables(mut self, text: &str) -> Self {
        self.tables.push_str(text);
        self.tables.push('\n');
        self
    }

    /// Sets an environment variable of the daemon.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Declares caches (replacing the built-in two) without a schedule: `[[caches]] name = ...`.
    pub fn caches(mut self, names: &[&str]) -> Self {
        for name in names {
            self.tables.push_str(&format!("[[caches]]\nname = \"{name}\"\n"));
        }
        self
    }

    /// The config file's text (testkit adds `listen` after `[api]`).
    pub fn config_text(&self) -> String {
        format!(
            "data_dir = \"data\"\n{top}\n[log]\nformat = \"json\"\n{log}\n[api]\n{api}\n{tables}",
            top = self.top,
            log = self.log,
            api = self.api,
            tables = self.tables,
        )
    }

    /// The daemon's options: this config, environment and extra listeners.
    pub fn daemon_options(&self) -> DaemonOptions {
        let mut opts = DaemonOptions::new(self.config_text());
        opts.env = self.env.clone();
        opts.listen = self.extra_listen.clone();
        opts
    }
}
