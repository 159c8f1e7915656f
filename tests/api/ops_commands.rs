//! `import`, `export` and `restore` on a daemon's `data_dir`, without Postgres: the old
//! app's cache file comes in through `import`; an export restores into an empty
//! `data_dir`; a restore never moves a cache backwards without `--force`.

use crate::helpers::BIN;
use serde_json::{json, Value};
use std::path::Path;
use tiercache_testkit::cli::Output;
use tiercache_testkit::{Daemon, DaemonOptions};

const CONFIG: &str = "[[caches]]\nname = \"strava\"\n\n[[caches]]\nname = \"notes\"\n";

/// A daemon directory with [`CONFIG`], not started.
fn daemon() -> Daemon {
    Daemon::new(Path::new(BIN), DaemonOptions::new(CONFIG))
}

/// `tiercache ARGS --config FILE` in the daemon's directory.
fn tiercache(d: &Daemon, args: &[&str]) -> Output {
    let config = d.config_path();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.to_str().expect("UTF-8 path")]);
    d.run(&all, &[])
}

#[track_caller]
fn ok(out: &Output) {
    assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
}

/// GET that must answer 200: (version, body).
#[track_caller]
fn get_ok(d: &Daemon, name: &str) -> (u64, Value) {
    let r = d.get_cache(name);
    assert_eq!(r.status, 200, "GET {name}: {r:?}");
    (r.etag_version().expect("ETag"), r.json())
}

#[test]
fn import_of_the_old_apps_cache_file_is_served_with_its_fetch_time() {
    let mut d = daemon();
    let old = json!({
        "timestamp": "2026-11-20T10:00:00Z",
        "activities": [{"id": 17, "name": "Morning Run", "distance": 5012.30, "moving_time": 1500}],
    });
    let file = d.dir().join("strava_cache.json");
    std::fs::write(&file, serde_json::to_string_pretty(&old).unwrap()).unwrap();

    let out = tiercache(&d, &["import", "strava", file.to_str().unwrap()]);
    ok(&out);
    assert_eq!(out.stdout.trim(), "imported strava version 1");

    d.start_again();
    let (version, body) = get_ok(&d, "strava");
    assert_eq!(version, 1);
    assert_eq!(body, old, "served as imported (canonical JSON, same values)");
    let meta = d.get("/v1/caches/strava/meta", &[]).json();
    let last_fetch = meta["last_fetch"].as_str().unwrap_or_else(|| panic!("meta: {meta}"));
    let parsed = chrono::DateTime::parse_from_rfc3339(last_fetch).expect("RFC 3339");
    assert_eq!(parsed, chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").unwrap(), "meta: {meta}");

    // A second import is the next version; `last_fetch` wins over `timestamp`, and a
    // Python `isoformat()` without an offset is UTC.
    d.stop();
    std::fs::write(&file, r#"{"timestamp": null, "last_fetch": "2026-11-21T08:30:00.250000", "activities": []}"#)
        .unwrap();
    let out = tiercache(&d, &["import", "strava", file.to_str().unwrap()]);
    ok(&out);
    assert_eq!(out.stdout.trim(), "imported strava version 2");
    d.start_again();
    let meta = d.get("/v1/caches/strava/meta", &[]).json();
    let parsed = chrono::DateTime::parse_from_rfc3339(meta["last_fetch"].as_str().unwrap()).unwrap();
    assert_eq!(parsed, chrono::DateTime::parse_from_rfc3339("2026-11-21T08:30:00.25Z").unwrap(), "meta: {meta}");
}

#[test]
fn import_refuses_bad_input_with_one_line() {
    let d = daemon();
    let good = d.dir().join("good.json");
    std::fs::write(&good, "{}").unwrap();
    let bad_json = d.dir().join("bad.json");
    std::fs::write(&bad_json, "{\"activities\": [").unwrap();
    let bad_time = d.dir().join("bad_time.json");
    std::fs::write(&bad_time, r#"{"timestamp": "last tuesday"}"#).unwrap();
    let cases: [(&[&str], i32, &str); 5] = [
        (&["import", "nope", good.to_str().unwrap()], 64, "not configured"),
        (&["import", "Bad/Name", good.to_str().unwrap()], 64, "not a cache name"),
        (&["import", "strava", "missing.json"], 66, "cannot read"),
        (&["import", "strava", bad_json.to_str().unwrap()], 65, "not valid JSON"),
        (&["import", "strava", bad_time.to_str().unwrap()], 65, "timestamp"),
    ];
    for (args, code, text) in cases {
        let out = tiercache(&d, args);
        assert_eq!(out.code, code, "{args:?}: {out:?}");
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), 1, "{args:?}: one line on stderr: {out:?}");
        assert!(lines[0].contains(text), "{args:?}: {out:?}");
    }
    assert!(!d.cache_file("strava").exists(), "nothing was saved");
}

#[test]
fn import_export_and_restore_are_refused_while_a_daemon_runs() {
    let mut d = daemon();
    let file = d.dir().join("doc.json");
    std::fs::write(&file, "{\"a\": 1}").unwrap();
    d.start_again();
    let backup = d.dir().join("backup");
    std::fs::create_dir(&backup).unwrap();
    std::fs::write(backup.join("x.json"), "{}").unwrap();
    for args in [
        vec!["import", "strava", file.to_str().unwrap()],
        vec!["export", "out"],
        vec!["restore", backup.to_str().unwrap()],
    ] {
        let out = tiercache(&d, &args);
        assert_eq!(out.code, 73, "{args:?}: {out:?}");
        let lines = out.stderr_lines();
        assert!(lines.len() == 1 && lines[0].contains("locked"), "{args:?}: {out:?}");
    }
    assert_eq!(d.get_cache("strava").status, 503, "the running daemon saw no import");
}

#[test]
fn export_then_restore_into_an_empty_data_dir_serves_the_same_documents() {
    let mut d = daemon();
    d.start_again();
    let strava = json!({"timestamp": "2026-11-20T10:00:00Z", "activities": [{"id": 1}, {"id": 2}]});
    let notes = json!({"text": "héllo", "n": [1.5, 2, null]});
    for (name, doc) in [("strava", &strava), ("notes", &notes), ("notes", &notes)] {
        assert_eq!(d.put_json(name, &doc.to_string()).status, 200);
    }
    let before: Vec<_> = ["strava", "notes"].iter().map(|n| d.get_cache(n)).collect();
    d.stop();

    let backup = d.dir().join("backup");
    let out = tiercache(&d, &["export", backup.to_str().unwrap()]);
    ok(&out);
    assert!(out.stdout.contains("exported notes version 2"), "{out:?}");
    assert!(out.stdout.contains("exported strava version 1"), "{out:?}");
    // An export never overwrites.
    let again = tiercache(&d, &["export", backup.to_str().unwrap()]);
    assert_eq!(again.code, 73, "{again:?}");
    assert!(again.stderr.contains("already holds"), "{again:?}");

    // A new instance, empty data_dir, same configuration.
    let mut fresh = daemon();
    let out = tiercache(&fresh, &["restore", backup.to_str().unwrap()]);
    ok(&out);
    assert!(out.stdout.contains("restored notes version 2 (backup version 2)"), "{out:?}");
    fresh.start_again();
    for (name, was) in ["strava", "notes"].iter().zip(before) {
        let now = fresh.get_cache(name);
        assert_eq!(now.status, 200, "{name}: {now:?}");
        assert_eq!(now.body, was.body, "{name}: the same canonical document");
        assert_eq!(now.header("etag"), was.header("etag"), "{name}: the same version and checksum");
    }
}

#[test]
fn restore_never_goes_backwards_unless_forced() {
    let mut d = daemon();
    d.start_again();
    let old = json!({"v": "old"});
    let new = json!({"v": "new"});
    assert_eq!(d.put_json("notes", &old.to_string()).status, 200);
    d.stop();
    let backup = d.dir().join("backup");
    ok(&tiercache(&d, &["export", backup.to_str().unwrap()]));
    d.start_again();
    assert_eq!(d.put_json("notes", &new.to_string()).status, 200);
    d.stop();

    let out = tiercache(&d, &["restore", backup.to_str().unwrap()]);
    ok(&out);
    assert!(out.stdout.contains("notes: current version 2 >= backup 1, skipped (use --force)"), "{out:?}");
    d.start_again();
    assert_eq!(get_ok(&d, "notes"), (2, new.clone()), "the newer version stays");
    d.stop();

    let out = tiercache(&d, &["restore", backup.to_str().unwrap(), "--force"]);
    ok(&out);
    assert!(out.stdout.contains("restored notes version 3 (backup version 1)"), "{out:?}");
    d.start_again();
    assert_eq!(get_ok(&d, "notes"), (3, old), "the older content, at a higher version");
}

#[test]
fn restore_refuses_damaged_envelopes_and_changes_nothing() {
    let mut d = daemon();
    d.start_again();
    assert_eq!(d.put_json("notes", r#"{"v": 1}"#).status, 200);
    assert_eq!(d.put_json("strava", r#"{"activities": []}"#).status, 200);
    d.stop();
    let backup = d.dir().join("backup");
    ok(&tiercache(&d, &["export", backup.to_str().unwrap()]));
    let path = backup.join("notes.json");
    let text = std::fs::read_to_string(&path).unwrap().replace("\"v\":1", "\"v\":2");
    std::fs::write(&path, text).unwrap();

    let fresh = daemon();
    let out = tiercache(&fresh, &["restore", backup.to_str().unwrap()]);
    assert_eq!(out.code, 65, "{out:?}");
    let lines = out.stderr_lines();
    assert!(
        lines.len() == 1 && lines[0].contains("checksum mismatch") && lines[0].contains("nothing restored"),
        "{out:?}"
    );
    assert!(!fresh.cache_file("strava").exists(), "the valid envelope was not restored either");

    let empty = d.dir().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = tiercache(&fresh, &["restore", empty.to_str().unwrap()]);
    assert_eq!(out.code, 66, "{out:?}");
}

#[test]
fn import_refuses_a_document_that_fails_the_caches_schema() {
    let schema = r#"{"type": "object", "required": ["activities"], "properties": {"activities": {"type": "array"}}}"#;
    let config = "[[caches]]\nname = \"strava\"\nschema = \"strava.schema.json\"\n";
    let mut d = Daemon::new(Path::new(BIN), DaemonOptions::new(config));
    std::fs::write(d.dir().join("strava.schema.json"), schema).unwrap();
    let bad = d.dir().join("bad.json");
    std::fs::write(&bad, r#"{"timestamp": "2026-11-20T10:00:00Z", "activities": "none"}"#).unwrap();
    let out = tiercache(&d, &["import", "strava", bad.to_str().unwrap()]);
    assert_eq!(out.code, 65, "{out:?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "one line on stderr: {out:?}");
    assert!(lines[0].contains("JSON Schema") && lines[0].contains("activities"), "names the schema error: {out:?}");
    assert!(!d.cache_file("strava").exists(), "nothing was written");

    let good = d.dir().join("good.json");
    std::fs::write(&good, r#"{"timestamp": "2026-11-20T10:00:00Z", "activities": []}"#).unwrap();
    ok(&tiercache(&d, &["import", "strava", good.to_str().unwrap()]));
    d.start_again();
    assert_eq!(get_ok(&d, "strava").1, json!({"timestamp": "2026-11-20T10:00:00Z", "activities": []}));
}

#[test]
fn restore_refuses_a_backup_that_fails_the_caches_rules_and_changes_nothing() {
    let mut d = daemon();
    d.start_again();
    assert_eq!(d.put_json("notes", r#"{"v": 1}"#).status, 200);
    assert_eq!(d.put_json("strava", r#"{"activities": "none"}"#).status, 200);
    d.stop();
    let backup = d.dir().join("backup");
    ok(&tiercache(&d, &["export", backup.to_str().unwrap()]));

    // The same caches, where strava now has a schema its backup fails.
    let schema = r#"{"type": "object", "properties": {"activities": {"type": "array"}}}"#;
    let config = "[[caches]]\nname = \"strava\"\nschema = \"strava.schema.json\"\n\n[[caches]]\nname = \"notes\"\n";
    let fresh = Daemon::new(Path::new(BIN), DaemonOptions::new(config));
    std::fs::write(fresh.dir().join("strava.schema.json"), schema).unwrap();
    let out = tiercache(&fresh, &["restore", backup.to_str().unwrap()]);
    assert_eq!(out.code, 65, "{out:?}");
    let lines = out.stderr_lines();
    assert!(
        lines.len() == 1
            && lines[0].contains("JSON Schema of cache strava")
            && lines[0].contains("activities")
            && lines[0].contains("nothing restored"),
        "{out:?}"
    );
    assert!(!fresh.cache_file("notes").exists(), "the valid envelope was not restored either");
    assert!(!fresh.cache_file("strava").exists());
}

#[test]
fn offline_commands_with_postgres_away_open_no_listen_connection() {
    let dir = tempfile::tempdir().unwrap();
    let closed = tiercache_testkit::port::free_port();
    let config = format!(
        "data_dir = \"data\"\n[log]\nformat = \"json\"\n[postgres]\nenabled = true\n\
         url = \"postgres://app@127.0.0.1:{closed}/app\"\nconnect_timeout = \"1s\"\n\
         [shutdown]\ntimeout = \"1s\"\n[[caches]]\nname = \"notes\"\n"
    );
    std::fs::write(dir.path().join("tiercache.toml"), config).unwrap();
    std::fs::write(dir.path().join("notes.json"), r#"{"n": 1}"#).unwrap();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", "tiercache.toml"]);
        let out = crate::helpers::run_cmd(dir.path(), &all, &[]);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        // Postgres being away is worth a line; a LISTEN connection the command never needed is not.
        let all_output = format!("{}{}", out.stdout, out.stderr);
        assert!(!all_output.contains("LISTEN"), "{args:?} talks about LISTEN:\n{all_output}");
        out
    };
    run(&["import", "notes", "notes.json"]);
    run(&["export", "backup"]);
    run(&["restore", "backup", "--force"]);
}
