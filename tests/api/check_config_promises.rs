//! What the configuration promises must be keepable: a `max_size` above what Postgres
//! stores is refused when Postgres is enabled, and `check-config` shows on stderr the
//! warnings `run` logs at startup, with stdout left as the effective configuration.

use crate::helpers::{run_cmd, spawn_app_with, Options};
use std::fs;
use tiercache_testkit::cli::Output;
use tiercache_testkit::daemon::free_port;

fn base() -> String {
    format!("data_dir = \"data\"\n[log]\nformat = \"json\"\n[api]\nlisten = [\"127.0.0.1:{}\"]\n", free_port())
}

fn with_config(command: &str, text: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiercache.toml");
    fs::write(&path, text).unwrap();
    run_cmd(dir.path(), &[command, "--config", path.to_str().unwrap()], env)
}

const CACHES: &str =
    "[[caches]]\nname = \"small\"\nmax_size = \"64MiB\"\n[[caches]]\nname = \"huge\"\nmax_size = \"100MiB\"\n";
/// Unreachable on purpose: the check must come before any connection.
const PG: &str = "[postgres]\nenabled = true\nurl = \"postgres://tiercache@127.0.0.1:1/postgres\"\n";

#[test]
fn max_size_above_the_postgres_bound_is_a_config_error_with_postgres() {
    for (text, env) in [
        (format!("{}{PG}{CACHES}", base()), vec![]),
        (
            format!("{}{CACHES}", base()),
            vec![("SUPABASE_ENABLED", "true"), ("SUPABASE_DB_URL", "postgres://t@127.0.0.1:1/p")],
        ),
    ] {
        for command in ["run", "check-config"] {
            let out = with_config(command, &text, &env);
            assert_eq!(out.code, 78, "{command}: {out:?}");
            let lines = out.stderr_lines();
            assert_eq!(lines.len(), 1, "{command}: {out:?}");
            assert!(lines[0].starts_with("config error: caches[1].max_size: "), "{command}: {}", lines[0]);
            assert!(lines[0].contains("100MiB") && lines[0].contains("64MiB"), "{}", lines[0]);
        }
    }
    // Memory and files alone hold any size.
    let out = with_config("check-config", &format!("{}{CACHES}", base()), &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("max_size = \"100MiB\""), "{}", out.stdout);
}

#[test]
fn check_config_prints_the_warnings_run_logs() {
    let key = "sk-not-used-5e7f9a1b3c";
    let env = [("SUPABASE_SERVICE_KEY", key)];
    let out = with_config("check-config", &base(), &env);
    assert_eq!(out.code, 0, "{out:?}");
    let warnings: Vec<&str> = out.stderr_lines().into_iter().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 1, "{out:?}");
    assert!(warnings[0].contains("SUPABASE_SERVICE_KEY"), "{}", warnings[0]);
    assert!(!out.stderr.contains(key) && !out.stdout.contains(key), "the key's value was printed: {out:?}");
    // stdout is still the effective configuration, and nothing else.
    let printed: toml::Table =
        toml::from_str(&out.stdout).unwrap_or_else(|e| panic!("not TOML ({e}):\n{}", out.stdout));
    assert!(printed.contains_key("api"), "{}", out.stdout);

    // `run` logs the very same text.
    let app = spawn_app_with(Options::new().env("SUPABASE_SERVICE_KEY", key));
    let line = app.wait_for_message("configuration warning");
    let logged = line["warning"].as_str().unwrap_or_default();
    assert_eq!(format!("warning: {logged}"), warnings[0]);

    // The files' warnings too: clear tokens readable by every user.
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    fs::write(&tokens, "write:tk-readable-0a9b8c7d\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&tokens, fs::Permissions::from_mode(0o644)).unwrap();
    let text = format!("{}tokens_file = \"{}\"\n", base(), tokens.display());
    let out = with_config("check-config", &text, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("warning: api.tokens_file holds tokens in clear"), "{out:?}");
    assert!(!out.stderr.contains("tk-readable"), "{out:?}");
}
