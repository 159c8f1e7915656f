//! A save reaches Postgres with the version and checksum it was acknowledged with, and
//! Postgres alone is enough to bring back a lost `data_dir`.

use crate::helpers::{cluster, get_ok, put_ok, row, wait_for_row, Conf, DB};
use serde_json::json;

#[test]
fn put_reaches_postgres_with_the_same_version_and_checksum() {
    let pg = cluster();
    let d = Conf::new(pg.url(DB, "postgres")).caches(&["a", "b"]).start();

    let doc_a = json!({"zeta": [1, 2.5, "x"], "alpha": {"nested": true}, "n": 12345});
    let (va, ca) = put_ok(&d, "a", &doc_a);
    let (vb, cb) = put_ok(&d, "b", &json!({"b": 1}));
    let ra = wait_for_row(&pg, "default", "a", va, &doc_a);
    assert_eq!(ra.checksum, ca, "the row's checksum is the acknowledged one");
    let rb = wait_for_row(&pg, "default", "b", vb, &json!({"b": 1}));
    assert_eq!(rb.checksum, cb);

    // A second save replaces the row with its own version and checksum.
    let doc_a2 = json!({"n": 2});
    let (va2, ca2) = put_ok(&d, "a", &doc_a2);
    assert!(va2 > va, "versions go up: {va} then {va2}");
    let ra2 = wait_for_row(&pg, "default", "a", va2, &doc_a2);
    assert_eq!(ra2.checksum, ca2);

    // The project was registered by the daemon (connected as postgres), with one row
    // per cache.
    let rows = pg
        .psql(DB, "SELECT count(*) FROM cache_storage c JOIN projects p ON p.id = c.project_id WHERE p.project_name = 'default'")
        .unwrap();
    assert_eq!(rows, "2");
    assert!(d.stdout().lines().all(|l| !l.contains("\"alert\":true")), "no alert expected:\n{}", d.stdout());
}

#[test]
fn a_lost_data_dir_is_rebuilt_from_postgres() {
    let pg = cluster();
    let mut d = Conf::new(pg.url(DB, "postgres")).caches(&["a", "b", "c"]).start();
    let docs =
        [("a", json!({"a": [1, 2, 3]})), ("b", json!({"b": "two"})), ("c", json!({"c": {"deep": [null, false]}}))];
    let mut versions = Vec::new();
    for (name, doc) in &docs {
        let (v, _) = put_ok(&d, name, doc);
        versions.push(v);
    }
    for ((name, doc), v) in docs.iter().zip(&versions) {
        wait_for_row(&pg, "default", name, *v, doc);
    }

    d.stop();
    std::fs::remove_dir_all(d.data_dir()).expect("remove data_dir");
    assert!(!d.data_dir().exists());
    d.start_again();

    for ((name, doc), v) in docs.iter().zip(&versions) {
        let (version, tier, body) = get_ok(&d, name);
        assert_eq!(&body, doc, "{name}: served document");
        assert_eq!(version, *v, "{name}: served version");
        assert!(
            tier == "file" || tier == "postgres",
            "{name}: tier {tier:?} (startup rewrites the files, or the read does)"
        );
        let file = d.cache_file(name);
        assert!(file.is_file(), "{name}: {} was not written back", file.display());
        let envelope: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(envelope["version"].as_u64(), Some(*v), "{name}: envelope {envelope}");
        assert_eq!(&envelope["data"], doc, "{name}: envelope {envelope}");
    }

    // The next save goes above what Postgres holds, though the files had been lost.
    let (v, _) = put_ok(&d, "a", &json!({"a": "after"}));
    assert!(v > versions[0], "new version {v} must be above the row's {}", versions[0]);
    wait_for_row(&pg, "default", "a", v, &json!({"a": "after"}));
    assert!(row(&pg, "b").is_some_and(|r| r.version == versions[1]));
}

/// A start with `data_dir` lost writes every row's file (more rows than are fetched at
/// once, so they arrive while earlier ones are written), except a row whose data does
/// not hash to its checksum: that one is logged, never written to disk nor served.
#[test]
fn a_lost_data_dir_is_rebuilt_without_a_corrupt_row() {
    let pg = cluster();
    let names = ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10"];
    let mut d = Conf::new(pg.url(DB, "postgres")).caches(&names).start();
    let mut versions = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let doc = json!({ "n": i, "pad": "x".repeat(1000 * i) });
        let (v, _) = put_ok(&d, name, &doc);
        wait_for_row(&pg, "default", name, v, &doc);
        versions.push((v, doc));
    }
    d.stop();
    // Other data under the same checksum: the row no longer verifies.
    pg.psql(DB, "UPDATE cache_storage SET data = '{\"tampered\": true}'::jsonb WHERE cache_type = 'r4'").unwrap();
    std::fs::remove_dir_all(d.data_dir()).expect("remove data_dir");
    d.start_again();

    for (name, (v, doc)) in names.iter().zip(&versions) {
        if *name == "r4" {
            continue;
        }
        assert!(d.cache_file(name).is_file(), "{name}: not written back before ready");
        let (version, _, body) = get_ok(&d, name);
        assert_eq!((version, &body), (*v, doc), "{name}");
    }
    assert!(!d.cache_file("r4").exists(), "the corrupt row was written to disk");
    let r = d.get_cache("r4");
    assert_ne!(r.status, 200, "the corrupt row was served: {r:?}");
    assert!(!r.body.contains("tampered"), "{r:?}");
    d.wait_for_log("the corrupt row's alert", std::time::Duration::from_secs(5), |l| {
        l["alert"] == true && l["message"].as_str().is_some_and(|m| m.contains("corrupt row"))
    });
}
