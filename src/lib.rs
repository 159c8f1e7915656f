//! tiercache: a supervised daemon that keeps named JSON documents fast, fresh and
//! durable in front of slow, rate-limited APIs.
//!
//! # Layout
//! - [`cli`]: the command line; bad usage exits 64.
//! - [`config`]: file, legacy variables and `TIERCACHE__` overrides → [`config::Settings`].
//! - [`daemon`]: `run`: actors, API, readiness, the signal-driven control loop.
//! - [`api`]: the HTTP API (docs/openapi.yaml).
//! - [`signals`]: Unix signals → control messages.
//! - [`reload`]: SIGHUP, key by key: applied, or logged as needing a restart.
//! - [`retention`]: the periodic purge of caches no longer configured.
//! - [`telemetry`]: JSON or pretty logs.
//! - [`liveness`]: the health loop's latest verdict, for `/healthz` and the watchdog.
//! - [`lock`]: the `data_dir` lock (exit 73).
//! - [`owner`]: the project a `data_dir` belongs to (exit 78 for another).
//! - [`sd_notify`]: systemd notifications and the watchdog's health loop.
//! - `commands`: `import`, `export` and `restore`, offline on the `data_dir`; `get` and
//!   `status`, clients of a running daemon's API.
//! - [`exit`]: exit codes.
//!
//! All runtime state lives in the `tiercache-actors` crate.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod api;
mod cli;
mod commands;
mod config;
mod daemon;
mod exit;
mod liveness;
mod lock;
mod migrate;
mod owner;
mod reload;
mod retention;
mod sd_notify;
mod signals;
mod status;
mod telemetry;
mod wiring;

use cli::Command;
use config::Settings;
use exit::Fatal;
use std::io::IsTerminal;

/// The whole program: returns the exit code.
pub fn main_with_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    match dispatch(args) {
        Ok(()) => exit::OK,
        Err(fatal) => {
            eprintln!("{fatal}");
            fatal.code
        }
    }
}

fn dispatch(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<(), Fatal> {
    let cli = cli::parse(args)?;
    let env = |k: &str| std::env::var(k).ok();
    match cli.command {
        Command::Help => {
            print!("{}", cli::USAGE_TEXT);
            Ok(())
        }
        Command::Version => {
            println!("tiercache {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::CheckConfig => {
            let settings = Settings::load(cli.config.as_deref(), &env)?;
            // The files the keys point at are checked too: tokens, schemas, certificates.
            let security = api::Security::load(&settings, None)?;
            wiring::cache_rules(&settings)?;
            api::security::tls_from(&settings)?;
            // What `run` would log at startup, on stderr so that stdout stays the config.
            for warning in settings.warnings.iter().chain(&security.warnings) {
                eprintln!("warning: {warning}");
            }
            print!("{}", settings.to_redacted_toml());
            Ok(())
        }
        Command::Run => {
            let settings = Settings::load(cli.config.as_deref(), &env)?;
            #[cfg(feature = "failpoints")]
            let _failpoints = fail::FailScenario::setup();
            let json = settings.log.format.is_json(std::io::stdout().is_terminal());
            let log = telemetry::init(json, &settings.log.level, env("RUST_LOG"));
            let source = daemon::ConfigSource { path: cli.config.clone() };
            let runner = actix_rt::System::new();
            let result = runner.block_on(daemon::run(source, settings, log));
            // Not dropped: its actors would restart outside a runtime, and its blocking
            // pool would wait for upstream fetches that the shutdown has abandoned. The
            // process ends in `main` with `_exit` while they still run; everything
            // acknowledged is on disk.
            std::mem::forget(runner);
            #[cfg(feature = "failpoints")]
            std::mem::forget(_failpoints);
            if let Err(fatal) = &result {
                // Once logging runs, the reason is a log line too (JSON with JSON logs,
                // for `journalctl -o cat | jq`); the one line on stderr stays.
                tracing::error!(exit_code = fatal.code, error = %fatal, "the daemon stops: {fatal}");
            }
            result
        }
        Command::Migrate { wait } => migrate::run(&Settings::load(cli.config.as_deref(), &env)?, wait),
        Command::Import { name, file } => commands::import(&Settings::load(cli.config.as_deref(), &env)?, &name, &file),
        Command::Export { dir } => commands::export(&Settings::load(cli.config.as_deref(), &env)?, &dir),
        Command::Restore { dir, force } => {
            commands::restore(&Settings::load(cli.config.as_deref(), &env)?, &dir, force)
        }
        Command::Get { name, meta } => {
            commands::get(&Settings::load(cli.config.as_deref(), &env)?, &origin(cli.config.as_deref()), &name, meta)
        }
        Command::Status { json } => {
            commands::status(&Settings::load(cli.config.as_deref(), &env)?, &origin(cli.config.as_deref()), json)
        }
        Command::Strava(sub) => commands::strava(&Settings::load(cli.config.as_deref(), &env)?, &sub),
    }
}

/// Where `get` and `status` found the daemon's address, as [`Settings::load`] decides:
/// the `TIERCACHE__` variable wins over the file.
fn origin(flag: Option<&std::path::Path>) -> commands::Origin {
    let variable = config::layers::override_var("api.listen");
    if std::env::var_os(&variable).is_some() {
        return commands::Origin::Variable(variable);
    }
    match flag {
        Some(path) => commands::Origin::Flag(path.to_owned()),
        None if std::path::Path::new(config::DEFAULT_FILE).exists() => commands::Origin::DefaultFile,
        None => commands::Origin::BuiltIn,
    }
}
