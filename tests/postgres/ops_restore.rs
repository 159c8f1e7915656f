//! `import`, `export` and `restore` with Postgres: their saves reach Postgres before
//! the command exits, an export brings back both a lost `data_dir` and lost rows, and a
//! restore never moves a cache below what Postgres holds without `--force`.

use crate::helpers::{cluster, get_ok, put_ok, row, wait_for_row, Conf, BIN, DB};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use tiercache_testkit::{Daemon, DaemonOptions};

/// `tiercache ARGS --config FILE` in the daemon's directory, with a clean environment;
/// returns (exit code, stdout, stderr).
fn tiercache(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--config").arg(d.config_path()).current_dir(d.dir()).stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("TIERCACHE__")
            || k.starts_with("SUPABASE_")
            || ["DATABASE_URL", "PROJECT_ID", "RUST_LOG", "FAILPOINTS", "NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY"]
                .contains(&k.as_ref())
        {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().expect("run tiercache");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[track_caller]
fn ok(d: &Daemon, args: &[&str]) -> String {
    let (code, stdout, stderr) = tiercache(d, args);
    assert_eq!(code, 0, "tiercache {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    stdout
}

#[test]
fn export_then_restore_brings_back_a_lost_data_dir_and_lost_rows() {
    let pg = cluster();
    let mut d = Conf::new(pg.url(DB, "postgres")).caches(&["a", "b"]).start();
    let doc_a = json!({"a": [1, 2.5, "x"], "nested": {"k": null}});
    let doc_b = json!({"b": "two"});
    put_ok(&d, "a", &json!({"first": true}));
    let (va, ca) = put_ok(&d, "a", &doc_a);
    let (vb, _) = put_ok(&d, "b", &doc_b);
    wait_for_row(&pg, "default", "a", va, &doc_a);
    wait_for_row(&pg, "default", "b", vb, &doc_b);
    d.stop();

    let backup = d.dir().join("backup");
    let out = ok(&d, &["export", backup.to_str().unwrap()]);
    assert!(out.contains(&format!("exported a version {va}")), "{out}");

    // Everything lost: the data directory and the project's rows.
    std::fs::remove_dir_all(d.data_dir()).unwrap();
    pg.psql(DB, "DELETE FROM cache_storage").unwrap();
    assert!(row(&pg, "a").is_none() && row(&pg, "b").is_none());

    let out = ok(&d, &["restore", backup.to_str().unwrap()]);
    assert!(out.contains(&format!("restored a version {va} (backup version {va})")), "{out}");
    // The restore drained its saves before it exited: the rows are back already.
    let ra = row(&pg, "a").unwrap_or_else(|| panic!("row a not restored; restore said:\n{out}"));
    assert_eq!((ra.version, &ra.data, &ra.checksum), (va, &doc_a, &ca));
    assert!(row(&pg, "b").is_some_and(|r| r.version == vb && r.data == doc_b));

    d.start_again();
    let (version, _, body) = get_ok(&d, "a");
    assert_eq!((version, body), (va, doc_a));
    let (version, _, body) = get_ok(&d, "b");
    assert_eq!((version, body), (vb, doc_b));
}

#[test]
fn import_reaches_postgres_and_restore_respects_the_rows() {
    let pg = cluster();
    let conf = Conf::new(pg.url(DB, "postgres")).caches(&["strava"]);
    let d = Daemon::new(Path::new(BIN), DaemonOptions::new(conf.text()));
    let file = d.dir().join("strava_cache.json");
    let old = json!({"timestamp": "2026-11-20T10:00:00Z", "activities": [{"id": 1}]});
    std::fs::write(&file, old.to_string()).unwrap();

    let out = ok(&d, &["import", "strava", file.to_str().unwrap()]);
    assert_eq!(out.trim(), "imported strava version 1");
    assert!(row(&pg, "strava").is_some_and(|r| r.version == 1 && r.data == old), "the import reached Postgres");

    let backup = d.dir().join("backup");
    ok(&d, &["export", backup.to_str().unwrap()]);
    let newer = json!({"timestamp": "2026-11-21T10:00:00Z", "activities": []});
    std::fs::write(&file, newer.to_string()).unwrap();
    assert_eq!(ok(&d, &["import", "strava", file.to_str().unwrap()]).trim(), "imported strava version 2");

    // data_dir lost, Postgres kept: the restore sees Postgres's version 2 and skips.
    std::fs::remove_dir_all(d.data_dir()).unwrap();
    let out = ok(&d, &["restore", backup.to_str().unwrap()]);
    assert!(out.contains("strava: current version 2 >= backup 1, skipped (use --force)"), "{out}");
    assert!(row(&pg, "strava").is_some_and(|r| r.version == 2 && r.data == newer));

    // --force: the old content as version 3, in Postgres too.
    let out = ok(&d, &["restore", backup.to_str().unwrap(), "--force"]);
    assert!(out.contains("restored strava version 3 (backup version 1)"), "{out}");
    assert!(row(&pg, "strava").is_some_and(|r| r.version == 3 && r.data == old));
}
