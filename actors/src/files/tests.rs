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
