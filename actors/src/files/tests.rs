//! The file tier after a failed durable write: its index still matches the disk, the old
//! version is still served, the failure is counted, and the next write works.

use super::*;
use crate::domain::{NewDocument, Precondition};

fn tier(dir: &Path, metrics: &Arc<Metrics>) -> FileTier {
    let config = FileTierConfig { data_dir: dir.to_owned(), project: "p".into() };
    let mut tier = FileTier::new(config, FailureReporter::detached(), metrics.clone());
    tier.rebuild_index().unwrap();
    tier
}

fn doc(json: &str) -> NewDocument {
    NewDocument::from_json(json.as_bytes()).unwrap()
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("caches"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tmp"))
        .collect()
}

#[test]
fn a_failed_write_leaves_the_index_equal_to_the_disk() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let mut tier = tier(dir.path(), &metrics);
    let name = CacheName::parse("tierfault").unwrap();
    let v1 = tier.write(&name, doc(r#"{"n":1}"#), &Precondition::None, 0).unwrap();
    let if_v1 = Precondition::OneOf(vec![v1.etag.clone()]);
    for at in ["durable::create", "durable::write", "durable::fsync", "durable::rename"] {
        fail::cfg(at, "return(tierfault.json)").unwrap();
        let err = tier.write(&name, doc(r#"{"n":2}"#), &if_v1, 0).unwrap_err();
        fail::remove(at);
        assert!(matches!(err, FileTierError::Io(_)), "{at}: {err}");
        assert_eq!(tier.index()[&name], OnDisk::of(&v1), "{at}");
        let on_disk = tier.read_verified(&name).unwrap().expect("the old version is still there");
        assert_eq!((on_disk.version, &on_disk.body), (v1.version, &v1.body), "{at}");
        assert!(temp_files(dir.path()).is_empty(), "{at}: {:?}", temp_files(dir.path()));
    }
    let text = metrics.encode();
    assert!(text.contains(r#"tiercache_file_write_errors_total{cache="tierfault",kind="io"} 4"#), "{text}");

    // Failing after the rename, the new version is on disk: the index follows it.
    fail::cfg("durable::fsync_dir", "return(tierfault.json)").unwrap();
    tier.write(&name, doc(r#"{"n":2}"#), &if_v1, 0).unwrap_err();
    fail::remove("durable::fsync_dir");
    let v2 = tier.read_verified(&name).unwrap().expect("the new version");
    assert_eq!(v2.version, v1.version + 1);
    let indexed = &tier.index()[&name];
    assert_eq!((indexed.version, indexed.etag.as_ref()), (v2.version, Some(&v2.etag)));

    // And the next write works, above both.
    let v3 = tier.write(&name, doc(r#"{"n":3}"#), &Precondition::OneOf(vec![v2.etag.clone()]), 0).unwrap();
    assert_eq!(v3.version, v2.version + 1);
    scenario.teardown();
}

#[test]
fn a_failed_tombstone_write_deletes_nothing() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let mut tier = tier(dir.path(), &metrics);
    let name = CacheName::parse("tombfault").unwrap();
    let v1 = tier.write(&name, doc(r#"{"n":1}"#), &Precondition::None, 0).unwrap();
    fail::cfg("durable::write", "return(tombfault.json)").unwrap();
    tier.remove(&name).unwrap_err();
    fail::remove("durable::write");
    assert_eq!(tier.index()[&name], OnDisk::of(&v1));
    assert!(!tier.is_deleted(&name));
    assert!(tier.read_verified(&name).unwrap().is_some());
    assert!(std::fs::read_dir(dir.path().join("tombstones")).unwrap().next().is_none());
    assert!(metrics.encode().contains(r#"tiercache_file_write_errors_total{cache="tombfault",kind="io"} 1"#));
    scenario.teardown();
}

/// `doc` of `name` at `version`, as a row read from Postgres would bring it.
fn row(name: &str, version: u64, json: &str) -> Arc<Document> {
    let new = doc(json);
    Arc::new(Document::new(CacheName::parse(name).unwrap(), version, new.checksum, None, None, Utc::now(), new.body))
}

#[test]
fn a_batch_of_adoptions_writes_the_newer_rows_and_skips_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let mut tier = tier(dir.path(), &metrics);
    let held = CacheName::parse("held").unwrap();
    let v1 = tier.write(&held, doc(r#"{"n":1}"#), &Precondition::None, 0).unwrap();
    let rows =
        [row("fresh", 7, r#"{"f":1}"#), row("held", v1.version, r#"{"other":1}"#), row("fresh", 9, r#"{"f":2}"#)];
    let rows = rows.map(|r| (r, None));
    let answers: Vec<bool> = tier.adopt_all(&rows).into_iter().map(Result::unwrap).collect();
    assert_eq!(answers, [true, false, false], "written, not over the same version, a cache named twice");
    let fresh = tier.read_verified(&rows[0].0.name).unwrap().expect("written");
    assert_eq!((fresh.version, &fresh.body), (7, &rows[0].0.body));
    assert_eq!(tier.read_verified(&held).unwrap().map(|d| d.body), Some(v1.body));
    assert_eq!(tier.index()[&rows[0].0.name], OnDisk::of(&rows[0].0));
    assert!(temp_files(dir.path()).is_empty());
    // Later saves go above every version seen, the one answered `false` included.
    let next = tier.write(&rows[0].0.name, doc(r#"{"f":3}"#), &Precondition::None, 0).unwrap();
    assert_eq!(next.version, 10);
}

#[test]
fn a_batched_adoption_keeps_a_save_made_since_the_comparison() {
    // The startup sync compared "held" at its first version and found it older than the
    // row; a save acknowledged meanwhile must stay (the queue sends it above the row).
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let mut tier = tier(dir.path(), &metrics);
    let held = CacheName::parse("held").unwrap();
    let v1 = tier.write(&held, doc(r#"{"n":1}"#), &Precondition::None, 0).unwrap();
    let v2 = tier.write(&held, doc(r#"{"n":2}"#), &Precondition::None, 0).unwrap();
    let rows = [(row("held", 9, r#"{"row":1}"#), Some(v1.version)), (row("new", 3, r#"{"new":1}"#), Some(0))];
    let answers: Vec<bool> = tier.adopt_all(&rows).into_iter().map(Result::unwrap).collect();
    assert_eq!(answers, [false, true], "the save made since stays; a cache still missing is written");
    assert_eq!(tier.read_verified(&held).unwrap().map(|d| d.body), Some(v2.body));
    let rows = [(row("held", 9, r#"{"row":1}"#), Some(v2.version))];
    assert_eq!(tier.adopt_all(&rows).into_iter().map(Result::unwrap).collect::<Vec<_>>(), [true]);
}

#[test]
fn a_failed_write_in_a_batch_fails_only_its_cache() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let mut tier = tier(dir.path(), &metrics);
    let name = CacheName::parse("batchfault").unwrap();
    let v1 = tier.write(&name, doc(r#"{"n":1}"#), &Precondition::None, 0).unwrap();
    for (at, version) in [("durable::create", 5), ("durable::write", 6), ("durable::fsync", 7), ("durable::rename", 8)]
    {
        fail::cfg(at, "return(batchfault.json)").unwrap();
        let rows =
            [(row("batchfault", version, r#"{"n":2}"#), None), (row(&format!("ok{version}"), 1, r#"{"ok":1}"#), None)];
        let answers = tier.adopt_all(&rows);
        fail::remove(at);
        assert!(matches!(answers[0], Err(ref e) if !durable::in_place(e)), "{at}: {answers:?}");
        assert!(matches!(answers[1], Ok(true)), "{at}: {answers:?}");
        assert_eq!(tier.index()[&name], OnDisk::of(&v1), "{at}");
        assert_eq!(tier.read_verified(&name).unwrap().map(|d| d.version), Some(v1.version), "{at}");
        assert!(tier.read_verified(&rows[1].0.name).unwrap().is_some(), "{at}");
        assert!(temp_files(dir.path()).is_empty(), "{at}: {:?}", temp_files(dir.path()));
    }
    // Failing after the rename, the new version is on disk: the index follows it.
    fail::cfg("durable::fsync_dir", "return(batchfault.json)").unwrap();
    let answers = tier.adopt_all(&[(row("batchfault", 9, r#"{"n":3}"#), None), (row("ok9", 1, r#"{"ok":1}"#), None)]);
    fail::remove("durable::fsync_dir");
    assert!(matches!(answers[0], Err(ref e) if durable::in_place(e)), "{answers:?}");
    assert!(matches!(answers[1], Ok(true)), "{answers:?}");
    assert_eq!(tier.index()[&name].version, 9);
    let text = metrics.encode();
    assert!(text.contains(r#"tiercache_file_write_errors_total{cache="batchfault",kind="io"} 5"#), "{text}");
    scenario.teardown();
}

#[test]
fn a_save_after_a_delete_from_elsewhere_never_takes_the_deleted_version_again() {
    // Another instance deleted "feed" at the version held here; the listener drops the
    // copy and its tombstone. The next save must go above: at the same version another
    // instance that knew the deleted document would write over the new one.
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let mut tier = tier(dir.path(), &metrics);
    let feed = CacheName::parse("feed").unwrap();
    let held = tier.write(&feed, doc(r#"{"w":1}"#), &Precondition::None, 0).unwrap();
    assert!(tier.remove(&feed).unwrap());
    assert!(tier.forget_tombstone(&feed).unwrap());
    assert!(!tier.index().contains_key(&feed));
    let next = tier.write(&feed, doc(r#"{"w":2}"#), &Precondition::None, 0).unwrap();
    assert!(next.version > held.version, "version {} again after deleting {}", next.version, held.version);
}

#[test]
fn the_version_of_a_document_deleted_in_postgres_stays_a_floor_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let feed = CacheName::parse("feed").unwrap();
    let held = {
        let mut tier = tier(dir.path(), &metrics);
        tier.write(&feed, doc(r#"{"w":1}"#), &Precondition::None, 0).unwrap();
        let held = tier.write(&feed, doc(r#"{"w":2}"#), &Precondition::None, 0).unwrap();
        assert!(tier.remove(&feed).unwrap());
        assert!(tier.forget_tombstone(&feed).unwrap());
        held
    };
    // A new start: no envelope, no tombstone (Postgres has the delete), no row to learn from.
    let mut tier = tier(dir.path(), &metrics);
    assert!(!tier.index().contains_key(&feed), "the cache reads as absent, not as deleted here");
    assert!(!tier.is_deleted(&feed));
    let next = tier.write(&feed, doc(r#"{"w":3}"#), &Precondition::None, 0).unwrap();
    assert!(next.version > held.version, "version {} after a restart; {} was deleted", next.version, held.version);
}

#[test]
fn a_tombstone_whose_version_cannot_be_kept_stays() {
    // The deleted version is written before the tombstone goes; when it cannot be (a
    // full disk), the tombstone stays and nothing is forgotten.
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let mut tier = tier(dir.path(), &metrics);
    let name = CacheName::parse("floorfault").unwrap();
    let held = tier.write(&name, doc(r#"{"n":1}"#), &Precondition::None, 0).unwrap();
    assert!(tier.remove(&name).unwrap());
    fail::cfg("durable::write", "return(floorfault.json)").unwrap();
    tier.forget_tombstone(&name).unwrap_err();
    fail::remove("durable::write");
    assert!(tier.is_deleted(&name), "the tombstone stays in the index");
    assert!(dir.path().join("tombstones/floorfault.json").exists());
    assert!(tier.forget_tombstone(&name).unwrap(), "forgotten once the version can be kept");
    let next = tier.write(&name, doc(r#"{"n":2}"#), &Precondition::None, 0).unwrap();
    assert!(next.version > held.version);
    scenario.teardown();
}
