//! Bad configuration exits 78 with one line `config error: KEY: ...`; bad usage exits 64;
//! `check-config` prints the effective configuration without secrets.

use crate::helpers::run_cmd;
use std::fs;
use std::path::Path;
use tiercache_testkit::cli::Output;
use tiercache_testkit::daemon::free_port;

/// A valid base configuration on a free port, to which a case adds its mistake.
fn base(dir: &Path) -> String {
    format!(
        "data_dir = \"{}\"\n[log]\nformat = \"json\"\n[api]\nlisten = [\"127.0.0.1:{}\"]\n",
        dir.join("data").display(),
        free_port()
    )
}

/// Runs `command --config FILE` where FILE holds `text`.
fn with_config(command: &str, text: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiercache.toml");
    fs::write(&path, text).unwrap();
    run_cmd(dir.path(), &[command, "--config", path.to_str().unwrap()], env)
}

/// Asserts exit 78 and a single stderr line `config error: KEY: ...`; returns the line.
fn assert_config_error(out: &Output, key: &str) -> String {
    assert_eq!(out.code, 78, "exit code; stderr:\n{}", out.stderr);
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "exactly one stderr line: {:?}", out.stderr);
    let line = lines[0];
    let prefix = format!("config error: {key}: ");
    assert!(line.starts_with(&prefix), "expected {prefix:?}..., got {line:?}");
    assert!(line.len() > prefix.len(), "no problem stated: {line:?}");
    line.to_owned()
}

/// Runs the case through both `run` and `check-config`.
fn case(text_after_base: &str, env: &[(&str, &str)], key: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}{text_after_base}", base(dir.path()));
    let line = assert_config_error(&with_config("run", &text, env), key);
    let again = assert_config_error(&with_config("check-config", &text, env), key);
    assert_eq!(line, again, "run and check-config disagree");
    assert!(!dir.path().join("data").exists(), "run created data_dir before validating the config");
    line
}

/// The same mistake written at the very top of the file (top-level keys must come first).
fn case_top(top: &str, key: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{top}\n{}", base(dir.path()));
    let line = assert_config_error(&with_config("run", &text, &[]), key);
    assert_config_error(&with_config("check-config", &text, &[]), key);
    line
}

#[test]
fn unknown_top_level_key() {
    case_top("colour = \"blue\"", "colour");
}

#[test]
fn unknown_key_in_api() {
    case("frobnicate = true\n", &[], "api.frobnicate");
}

#[test]
fn unknown_section() {
    case("[frobnicator]\nenabled = true\n", &[], "frobnicator");
}

#[test]
fn bad_duration_in_the_second_cache() {
    let line = case(
        "[[caches]]\nname = \"one\"\n[[caches]]\nname = \"two\"\nrefresh_every = \"6 hours\"\n",
        &[],
        "caches[1].refresh_every",
    );
    assert!(line.contains(r#"invalid duration "6 hours""#), "the bad value is quoted: {line}");
    assert!(line.contains(r#""15m""#) && line.contains(r#""6h""#), "the expected form is shown: {line}");
}

#[test]
fn a_bad_duration_from_the_environment_says_what_is_expected() {
    let line = case("", &[("TIERCACHE__MEMORY__TTL", "10 minutes")], "memory.ttl");
    assert!(line.contains(r#"invalid duration "10 minutes" (expected a number and a unit"#), "{line}");
}

#[test]
fn bad_size() {
    case("max_body = \"lots\"\n", &[], "api.max_body");
}

#[test]
fn duplicate_cache_names() {
    case("[[caches]]\nname = \"same\"\n[[caches]]\nname = \"same\"\n", &[], "caches[1].name");
}

#[test]
fn invalid_cache_name() {
    case("[[caches]]\nname = \"Bad Name\"\n", &[], "caches[0].name");
    case(&format!("[[caches]]\nname = \"{}\"\n", "a".repeat(51)), &[], "caches[0].name");
    case("[[caches]]\nname = \"../etc\"\n", &[], "caches[0].name");
}

#[test]
fn bad_legacy_variable() {
    case("", &[("STRAVA_CACHE_HOURS", "abc")], "STRAVA_CACHE_HOURS");
}

#[test]
fn bad_override_variable() {
    let line = case("", &[("TIERCACHE__API__MAX_BODY", "lots")], "api.max_body");
    assert!(line.contains("lots"), "{line}");
}

#[test]
fn bad_database_url_does_not_leak_the_secret() {
    let line = case("", &[("SUPABASE_DB_URL", "mysql://u:hunter2@db.example/x")], "SUPABASE_DB_URL");
    assert!(!line.contains("hunter2"), "secret in the error: {line}");
}

#[test]
fn missing_config_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let out = run_cmd(dir.path(), &["run", "--config", missing.to_str().unwrap()], &[]);
    assert_eq!(out.code, 78, "{out:?}");
    assert_eq!(out.stderr_lines().len(), 1, "{out:?}");
    assert!(out.stderr.starts_with("config error: "), "{out:?}");
}

#[test]
fn check_config_prints_the_effective_config_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{}[postgres]\nurl = \"postgres://u:hunter2@db.example/x\"\n", base(dir.path()));
    let out = with_config("check-config", &text, &[("STRAVA_CACHE_HOURS", "3")]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("hunter2"), "secret printed:\n{}", out.stdout);
    assert!(!out.stderr.contains("hunter2"), "secret printed:\n{}", out.stderr);
    let printed: toml::Table =
        toml::from_str(&out.stdout).unwrap_or_else(|e| panic!("not TOML ({e}):\n{}", out.stdout));
    assert!(printed.contains_key("api") && printed.contains_key("caches"), "{}", out.stdout);
    let caches = printed["caches"].as_array().expect("caches array");
    let strava = caches.iter().find(|c| c["name"].as_str() == Some("strava")).expect("strava is configured");
    assert_eq!(strava["refresh_every"].as_str(), Some("3h"), "STRAVA_CACHE_HOURS applied: {}", out.stdout);
    assert!(!dir.path().join("data").exists(), "check-config created data_dir");

    // The same through the environment.
    let out = with_config(
        "check-config",
        &base(dir.path()),
        &[("SUPABASE_DB_URL", "postgres://u:hunter2@db.example/x"), ("SUPABASE_ENABLED", "true")],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("hunter2"), "secret printed:\n{}", out.stdout);
}

#[test]
fn bad_usage_exits_64_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["frobnicate"][..], &["run", "extra"], &[], &["run", "--bogus"], &["run", "--config"]] {
        let out = run_cmd(dir.path(), args, &[]);
        assert_eq!(out.code, 64, "{args:?}: {out:?}");
        assert_eq!(out.stderr_lines().len(), 1, "{args:?}: one stderr line: {:?}", out.stderr);
    }
}

/// An address this host does not have is the configuration's mistake (a port another
/// process holds is not: `port_in_use.rs`).
#[test]
fn listen_address_not_on_this_host_is_one_config_error_line() {
    // TEST-NET-1 (RFC 5737): never assigned to a host.
    let text = "data_dir = \"data\"\n[api]\nlisten = [\"192.0.2.1:8077\"]\nallow_unauthenticated = true\n";
    let line = assert_config_error(&with_config("run", text, &[]), "api.listen[0]");
    assert!(line.contains("cannot listen on 192.0.2.1:8077"), "{line}");
}
