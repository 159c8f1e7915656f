//! The command line. Bad usage exits 64, not the usual parser's 2.

use crate::exit::{Fatal, USAGE};
use std::ffi::OsString;
use std::path::PathBuf;

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// The daemon in the foreground.
    Run,
    /// Validate and print the effective configuration.
    CheckConfig,
    /// Apply schema.sql.
    Migrate {
        /// How long to wait for the locks it needs (`--wait`; default
        /// [`crate::migrate::DEFAULT_LOCK_WAIT`]) before giving up with exit 75.
        wait: Option<std::time::Duration>,
    },
    /// Print one cache from a running daemon.
    Get {
        /// The cache.
        name: String,
        /// Print its meta instead.
        meta: bool,
    },
    /// One screen of status from a running daemon.
    Status {
        /// Machine-readable.
        json: bool,
    },
    /// Take a JSON document as a save.
    Import {
        /// The cache.
        name: String,
        /// The document.
        file: PathBuf,
    },
    /// Write every cache as envelope files to a directory.
    Export {
        /// Target directory.
        dir: PathBuf,
    },
    /// Restore envelope files.
    Restore {
        /// Source directory.
        dir: PathBuf,
        /// Allow going to a lower version.
        force: bool,
    },
    /// Manage the Strava push subscription.
    Strava(StravaCommand),
    /// Print usage.
    Help,
    /// Print the version.
    Version,
}

/// `tiercache strava ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StravaCommand {
    /// Create the subscription, pointing at `callback_url`.
    Subscribe {
        /// Where Strava posts events (this daemon's `/v1/webhooks/strava`).
        callback_url: String,
    },
    /// Show the application's subscriptions.
    List,
    /// Delete the subscription.
    Unsubscribe,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cli {
    /// The command.
    pub command: Command,
    /// `--config FILE`.
    pub config: Option<PathBuf>,
}

/// Usage text.
pub(crate) const USAGE_TEXT: &str = "\
usage: tiercache <command> [--config FILE]

commands:
  run                  run the daemon in the foreground
  check-config         validate the configuration and print it (secrets redacted)
  migrate [--wait 60s]  apply schema.sql to the configured Postgres (gives up with exit 75
                       when its locks stay held by other sessions that long)
  get NAME [--meta]    print a cache (or its meta) from the running daemon
  status [--json]      status of the running daemon
  import NAME FILE     save a JSON document as cache NAME
  export DIR           write every cache as envelope files into DIR
  restore DIR [--force]  restore envelope files from DIR
  strava subscribe --callback-url URL   create Strava's push subscription
  strava list          show Strava's push subscription
  strava unsubscribe   delete Strava's push subscription
";

fn usage(msg: impl std::fmt::Display) -> Fatal {
    Fatal::new(USAGE, format!("usage error: {msg} (try `tiercache help`)"))
}

/// Parses `args` (without the program name).
///
/// # Errors
/// A [`Fatal`] with exit code 64 for bad usage.
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, Fatal> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut config = None;
    let mut flags: Vec<String> = Vec::new();
    let mut callback_url: Option<String> = None;
    let mut wait: Option<std::time::Duration> = None;
    let mut words: Vec<String> = Vec::new();
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Short('c') | Long("config") => config = Some(PathBuf::from(parser.value().map_err(usage)?)),
            Short('h') | Long("help") => return Ok(Cli { command: Command::Help, config }),
            Short('V') | Long("version") => return Ok(Cli { command: Command::Version, config }),
            Long(flag @ ("meta" | "json" | "force")) => flags.push(flag.to_owned()),
            Long("wait") => {
                let value = parser.value().map_err(usage)?;
                let text = value.into_string().map_err(|_| usage("arguments must be UTF-8"))?;
                let parsed = humantime::parse_duration(&text)
                    .map_err(|_| usage(format!("--wait takes a duration such as \"60s\" or \"5m\", got {text:?}")))?;
                wait = Some(parsed);
                flags.push("wait".to_owned());
            }
            Long("callback-url") => {
                let value = parser.value().map_err(usage)?;
                callback_url = Some(value.into_string().map_err(|_| usage("arguments must be UTF-8"))?);
                flags.push("callback-url".to_owned());
            }
            Value(v) => words.push(v.into_string().map_err(|_| usage("arguments must be UTF-8"))?),
            other => return Err(usage(other.unexpected())),
        }
    }
    let mut words = words.into_iter();
    let verb = words.next().ok_or_else(|| usage("no command given"))?;
    let rest: Vec<String> = words.collect();
    let allow = |allowed: &[&str]| -> Result<(), Fatal> {
        match flags.iter().find(|f| !allowed.contains(&f.as_str())) {
            Some(f) => Err(usage(format!("--{f} does not apply to `{verb}`"))),
            None => Ok(()),
        }
    };
    let arity = |n: usize, what: &str| -> Result<(), Fatal> {
        if rest.len() == n {
            Ok(())
        } else {
            Err(usage(format!("`{verb}` takes {what}")))
        }
    };
    let command = match verb.as_str() {
        "run" | "check-config" | "help" | "version" => {
            allow(&[])?;
            arity(0, "no arguments")?;
            match verb.as_str() {
                "run" => Command::Run,
                "check-config" => Command::CheckConfig,
                "help" => Command::Help,
                _ => Command::Version,
            }
        }
        "migrate" => {
            allow(&["wait"])?;
            arity(0, "no arguments")?;
            Command::Migrate { wait }
        }
        "get" => {
            allow(&["meta"])?;
            arity(1, "NAME")?;
            Command::Get { name: rest[0].clone(), meta: flags.iter().any(|f| f == "meta") }
        }
        "status" => {
            allow(&["json"])?;
            arity(0, "no arguments")?;
            Command::Status { json: flags.iter().any(|f| f == "json") }
        }
        "import" => {
            allow(&[])?;
            arity(2, "NAME FILE")?;
            Command::Import { name: rest[0].clone(), file: rest[1].clone().into() }
        }
        "export" => {
            allow(&[])?;
            arity(1, "DIR")?;
            Command::Export { dir: rest[0].clone().into() }
        }
        "restore" => {
            allow(&["force"])?;
            arity(1, "DIR")?;
            Command::Restore { dir: rest[0].clone().into(), force: flags.iter().any(|f| f == "force") }
        }
        "strava" => strava(&rest, &flags, callback_url)?,
        other => return Err(usage(format!("unknown command `{other}`"))),
    };
    Ok(Cli { command, config })
}

/// `strava subscribe --callback-url URL`, `strava list`, `strava unsubscribe`.
fn strava(rest: &[String], flags: &[String], callback_url: Option<String>) -> Result<Command, Fatal> {
    let sub = match rest {
        [one] => one.as_str(),
        _ => return Err(usage("`strava` takes one of subscribe, list, unsubscribe")),
    };
    let wants_url = sub == "subscribe";
    if let Some(f) = flags.iter().find(|f| !(wants_url && f.as_str() == "callback-url")) {
        return Err(usage(format!("--{f} does not apply to `strava {sub}`")));
    }
    Ok(Command::Strava(match sub {
        "subscribe" => {
            let url = callback_url.ok_or_else(|| usage("`strava subscribe` needs --callback-url URL"))?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(usage(format!("--callback-url must be an http(s) URL, got {url:?}")));
            }
            StravaCommand::Subscribe { callback_url: url }
        }
        "list" => StravaCommand::List,
        "unsubscribe" => StravaCommand::Unsubscribe,
        other => return Err(usage(format!("unknown `strava` command `{other}`"))),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cli, Fatal> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn parses_commands_and_config_anywhere() {
        assert_eq!(p(&["run"]).unwrap().command, Command::Run);
        let cli = p(&["--config", "a.toml", "get", "strava", "--meta"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("a.toml")));
        assert_eq!(cli.command, Command::Get { name: "strava".into(), meta: true });
        assert_eq!(p(&["restore", "d", "--force"]).unwrap().command, Command::Restore { dir: "d".into(), force: true });
        let sub =
            p(&["strava", "subscribe", "--callback-url", "https://cache.example.com/v1/webhooks/strava"]).unwrap();
        let want = StravaCommand::Subscribe { callback_url: "https://cache.example.com/v1/webhooks/strava".into() };
        assert_eq!(sub.command, Command::Strava(want));
        assert_eq!(p(&["strava", "list"]).unwrap().command, Command::Strava(StravaCommand::List));
        assert_eq!(p(&["strava", "unsubscribe"]).unwrap().command, Command::Strava(StravaCommand::Unsubscribe));
        assert_eq!(p(&["migrate"]).unwrap().command, Command::Migrate { wait: None });
        let wait = Some(std::time::Duration::from_secs(5));
        assert_eq!(p(&["migrate", "--wait", "5s"]).unwrap().command, Command::Migrate { wait });
    }

    #[test]
    fn bad_usage_is_64() {
        for bad in [
            &[][..],
            &["frobnicate"],
            &["run", "extra"],
            &["get"],
            &["run", "--bogus"],
            &["run", "--meta"],
            &["run", "--config"],
            &["strava"],
            &["strava", "subscribe"],
            &["strava", "subscribe", "--callback-url", "ftp://x"],
            &["strava", "list", "--callback-url", "https://x/"],
            &["strava", "frob"],
            &["run", "--callback-url", "https://x/"],
            &["migrate", "--wait", "soon"],
            &["run", "--wait", "5s"],
        ] {
            assert_eq!(p(bad).unwrap_err().code, 64, "{bad:?}");
        }
    }
}
