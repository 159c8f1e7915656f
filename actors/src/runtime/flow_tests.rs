//! The flows with no Postgres, in process: a files-only runtime booted inside the test
//! and driven through the save flow and the read flow as the API drives them. Each test
//! takes milliseconds; nothing waits on a clock (memory's TTL is either long or zero).

use super::tests::files_only;
use super::Runtime;
use crate::cache_rules::{CacheRules, Rules};
use crate::domain::{CacheName, Document, DocumentSchema, Precondition};
use crate::memory::ServedFrom;
use crate::metrics::Metrics;
use crate::save_flow::{InMemory, SaveError};
use crate::tiers::{ReadError, Tiers};
use chrono::Utc;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A running files-only runtime whose rules admit `names`, and its data directory.
struct Running {
    runtime: Runtime,
    dir: tempfile::TempDir,
}

impl Running {
    async fn boot(names: &[&CacheName], memory_ttl: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = files_only(dir.path());
        config.memory_ttl = memory_ttl;
        config.rules = rules(names, None);
        let runtime = Runtime::boot(&config, Arc::new(Metrics::new())).expect("boots");
        runtime.startup().await.expect("starts");
        Self { runtime, dir }
    }

    fn tiers(&self) -> &Tiers {
        self.runtime.tiers()
    }

    /// Where the file tier keeps `name`.
    fn file_of(&self, name: &CacheName) -> PathBuf {
        self.dir.path().join("data").join("caches").join(format!("{name}.json"))
    }

    async fn save(&self, name: &CacheName, json: &str, precondition: Precondition) -> Result<Arc<Document>, SaveError> {
        let admitted = self.runtime.saver().admit(name, json.as_bytes()).expect("admitted");
        self.runtime.saver().save(name, admitted, precondition, 0).await
    }

    /// The version and tier a read answers with.
    async fn read(&self, name: &CacheName) -> (u64, ServedFrom) {
        let found = self.tiers().read(name).await.expect("served");
        (found.doc.version, found.tier)
    }
}

fn rules(names: &[&CacheName], schema: Option<serde_json::Value>) -> Rules {
    let schema = schema.map(|s| Arc::new(DocumentSchema::from_value(&s).unwrap()));
    let rules = CacheRules { max_size: 1 << 20, schema };
    Rules::new(names.iter().map(|n| ((*n).clone(), rules.clone())).collect::<HashMap<_, _>>())
}

fn name(s: &str) -> CacheName {
    CacheName::parse(s).unwrap()
}

/// Version `version` of `name` as another instance wrote it.
fn made_elsewhere(name: &CacheName, version: u64, json: &str) -> Arc<Document> {
    let new = crate::domain::NewDocument::from_json(json.as_bytes()).unwrap();
    Arc::new(Document::new(name.clone(), version, new.checksum, None, None, Utc::now(), new.body))
}

/// A non-empty directory where `file` should be: reading it fails, and so does a rename
/// over it.
fn directory_in_the_way(file: &Path) {
    std::fs::remove_file(file).unwrap();
    std::fs::create_dir(file).unwrap();
    std::fs::write(file.join("inside"), b"x").unwrap();
}

#[actix_rt::test]
async fn a_save_is_served_from_memory_and_a_purge_removes_it_from_every_tier() {
    let cache = name("flow-save");
    let running = Running::boot(&[&cache], Duration::from_secs(3600)).await;
    let saved = running.save(&cache, r#"{"n":1}"#, Precondition::None).await.unwrap();
    assert_eq!(saved.version, 1);
    assert!(running.file_of(&cache).is_file(), "durable before it is acknowledged");
    let found = running.tiers().read(&cache).await.unwrap();
    assert_eq!((found.doc.version, found.tier, &found.doc.body[..]), (1, ServedFrom::Memory, &br#"{"n":1}"#[..]));

    assert!(running.runtime.saver().purge(&cache).await.unwrap(), "the file tier had it");
    assert!(running.tiers().view().get(&cache).is_none(), "memory no longer holds it");
    assert!(!running.file_of(&cache).exists());
    assert!(matches!(running.tiers().read(&cache).await, Err(ReadError::Missing)));
    // Saved again after the purge, the version goes on above the deleted one.
    assert_eq!(running.save(&cache, r#"{"n":2}"#, Precondition::None).await.unwrap().version, 2);
}

#[actix_rt::test]
async fn an_adopt_is_taken_only_while_the_version_it_expects_is_current() {
    let cache = name("flow-adopt");
    let running = Running::boot(&[&cache], Duration::from_secs(3600)).await;
    let saver = running.runtime.saver();
    running.save(&cache, r#"{"n":1}"#, Precondition::None).await.unwrap();

    // Compared against "nothing held", but version 1 is: refused, version 1 still served.
    let refused = saver.adopt(made_elsewhere(&cache, 5, r#"{"n":5}"#), Some(0), InMemory::Fill).await.unwrap();
    assert!(!refused);
    assert_eq!(running.read(&cache).await, (1, ServedFrom::Memory));

    // Compared against version 1, which is still current: taken by the file and memory.
    let taken = saver.adopt(made_elsewhere(&cache, 6, r#"{"n":6}"#), Some(1), InMemory::Fill).await.unwrap();
    assert!(taken);
    assert_eq!(running.read(&cache).await, (6, ServedFrom::Memory));

    // A local save made meanwhile (above every adopted version) is never replaced: not by
    // an adopt that compared an older version, nor by an older row without expectation.
    let local = running.save(&cache, r#"{"n":7}"#, Precondition::None).await.unwrap();
    assert_eq!(local.version, 7);
    assert!(!saver.adopt(made_elsewhere(&cache, 8, r#"{"n":8}"#), Some(6), InMemory::Fill).await.unwrap());
    assert!(!saver.adopt(made_elsewhere(&cache, 4, r#"{"n":4}"#), None, InMemory::Fill).await.unwrap());
    let found = running.tiers().read(&cache).await.unwrap();
    assert_eq!((found.doc.version, &found.doc.body[..]), (7, &br#"{"n":7}"#[..]));
}

#[actix_rt::test]
async fn adopting_what_disk_already_holds_puts_it_in_memory() {
    // A compare-and-set's own adopt can find the listener there first: the file already
    // holds the row, and memory must hold it before the PUT is acknowledged.
    let cache = name("flow-adopt-again");
    let running = Running::boot(&[&cache], Duration::from_secs(3600)).await;
    let saver = running.runtime.saver();
    running.save(&cache, r#"{"n":1}"#, Precondition::None).await.unwrap();
    let row = made_elsewhere(&cache, 2, r#"{"n":2}"#);
    // The file takes the row while memory goes on serving version 1 (as when the
    // listener has written the file and not yet told memory).
    assert!(running.runtime.saver().files().adopt(row.clone(), Some(1)).await.unwrap());
    assert_eq!(running.read(&cache).await, (1, ServedFrom::Memory));

    assert!(saver.adopt(row.clone(), None, InMemory::Fill).await.unwrap(), "disk holds it: taken");
    assert_eq!(running.read(&cache).await, (2, ServedFrom::Memory));
    // Another document at that version is not "already held".
    assert!(!saver.adopt(made_elsewhere(&cache, 2, r#"{"n":"other"}"#), None, InMemory::Fill).await.unwrap());
    assert_eq!(running.tiers().read(&cache).await.unwrap().doc.body[..], br#"{"n":2}"#[..]);
}

#[actix_rt::test]
async fn a_save_whose_base_is_no_longer_current_is_refused() {
    let cache = name("flow-base");
    let running = Running::boot(&[&cache], Duration::from_secs(3600)).await;
    let v1 = running.save(&cache, r#"{"n":1}"#, Precondition::None).await.unwrap();
    let v2 = running.save(&cache, r#"{"n":2}"#, Precondition::based_on(Some(&v1))).await.unwrap();
    assert_eq!(v2.version, 2);

    // Built on version 1, which version 2 replaced meanwhile.
    match running.save(&cache, r#"{"n":3}"#, Precondition::based_on(Some(&v1))).await {
        Err(SaveError::PreconditionFailed { current }) => assert_eq!(current.as_deref(), Some(v2.etag.as_str())),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Built on nothing, while version 2 is held.
    assert!(matches!(
        running.save(&cache, r#"{"n":3}"#, Precondition::based_on(None)).await,
        Err(SaveError::PreconditionFailed { .. })
    ));
    assert_eq!(running.read(&cache).await, (2, ServedFrom::Memory));
}

#[actix_rt::test]
async fn a_not_modified_answer_moves_the_last_fetch_of_the_held_version_only() {
    let cache = name("flow-304");
    let running = Running::boot(&[&cache], Duration::from_secs(3600)).await;
    let saver = running.runtime.saver();
    let v1 = running.save(&cache, r#"{"n":1}"#, Precondition::None).await.unwrap();
    let fetched = Utc::now() + chrono::Duration::hours(1);
    let touched = saver.refetched(&v1, fetched).await.unwrap();
    assert_eq!((touched.version, touched.etag.as_str(), touched.last_fetch), (1, v1.etag.as_str(), Some(fetched)));
    let found = running.tiers().read(&cache).await.unwrap();
    assert_eq!((found.doc.version, found.doc.last_fetch), (1, Some(fetched)));

    // A save landed during the fetch: the 304 was about version 1 and changes nothing.
    let v2 = running.save(&cache, r#"{"n":2}"#, Precondition::None).await.unwrap();
    assert!(matches!(saver.refetched(&v1, fetched).await, Err(SaveError::Changed)));
    let found = running.tiers().read(&cache).await.unwrap();
    assert_eq!((found.doc.version, found.doc.last_fetch), (2, v2.last_fetch));
}

#[actix_rt::test]
async fn the_loader_refuses_a_file_that_fails_the_schema_now_in_force() {
    let cache = name("flow-schema");
    let running = Running::boot(&[&cache], Duration::from_secs(3600)).await;
    running.save(&cache, r#"{"n":"text"}"#, Precondition::None).await.unwrap();
    running.runtime.actors.memory.evict(&cache).await.unwrap();
    assert_eq!(running.read(&cache).await, (1, ServedFrom::File), "the file conforms to the rules it was saved by");

    running.runtime.actors.memory.evict(&cache).await.unwrap();
    let schema = serde_json::json!({"type": "object", "properties": {"n": {"type": "integer"}}});
    running.runtime.actors.rules.replace(rules(&[&cache], Some(schema)));
    assert!(matches!(running.tiers().read(&cache).await, Err(ReadError::Missing)));
    assert!(running.tiers().view().get(&cache).is_none(), "nothing was loaded into memory");
}

#[actix_rt::test]
async fn an_expired_copy_is_served_stale_when_every_tier_below_memory_fails() {
    let cache = name("flow-stale");
    // A TTL of zero: every copy memory holds is expired at once.
    let running = Running::boot(&[&cache], Duration::ZERO).await;
    running.save(&cache, r#"{"n":1}"#, Precondition::None).await.unwrap();
    assert_eq!(running.read(&cache).await, (1, ServedFrom::File), "expired in memory, read again from the file");

    directory_in_the_way(&running.file_of(&cache));
    assert_eq!(running.read(&cache).await, (1, ServedFrom::Stale));
}

#[actix_rt::test]
async fn a_failed_rename_keeps_memory_serving_the_version_still_on_disk() {
    let cache = name("flow-rename");
    let running = Running::boot(&[&cache], Duration::from_secs(3600)).await;
    running.save(&cache, r#"{"n":1}"#, Precondition::None).await.unwrap();
    directory_in_the_way(&running.file_of(&cache));
    let failed = running.save(&cache, r#"{"n":2}"#, Precondition::None).await;
    assert!(matches!(&failed, Err(SaveError::Storage(e)) if e.to_string().contains("rename")), "{failed:?}");
    assert_eq!(running.read(&cache).await, (1, ServedFrom::Memory));
}

/// After the rename only the directory's `fsync` failed: the new version is on disk and
/// memory, which still held the old one, is evicted so that the file serves.
#[cfg(feature = "failpoints")]
#[actix_rt::test]
async fn a_write_failing_after_its_rename_evicts_memory_for_the_new_file() {
    let scenario = fail::FailScenario::setup();
    let cache = name("flow-in-place");
    let running = Running::boot(&[&cache], Duration::from_secs(3600)).await;
    running.save(&cache, r#"{"n":1}"#, Precondition::None).await.unwrap();
    fail::cfg("durable::fsync_dir", "return(flow-in-place.json)").unwrap();
    let failed = running.save(&cache, r#"{"n":2}"#, Precondition::None).await;
    fail::remove("durable::fsync_dir");
    assert!(matches!(failed, Err(SaveError::Storage(_))), "{failed:?}");
    assert!(running.tiers().view().get(&cache).is_none(), "memory was evicted");
    assert_eq!(running.read(&cache).await, (2, ServedFrom::File));
    scenario.teardown();
}

/// Work the refresher runs in its own context (reading the fetch times back once live)
/// panics: the panic is counted as the refresher's, and the restarted refresher answers.
#[cfg(feature = "failpoints")]
#[actix_rt::test]
async fn a_panic_in_the_refreshers_own_context_is_counted_and_it_restarts() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let mut runtime = Runtime::boot(&files_only(dir.path()), metrics.clone()).expect("boots");
    runtime.startup().await.expect("starts");
    fail::cfg("refresher::load_times", "1*panic").unwrap();
    runtime.go_live(Duration::from_secs(3600));
    let counted = r#"tiercache_actor_restarts_total{actor="refresher"} 1"#;
    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        while !metrics.encode().contains(counted) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    fail::remove("refresher::load_times");
    assert!(seen.is_ok(), "no restart counted:\n{}", metrics.encode());
    assert_eq!(runtime.refresh_all().await, 0, "the restarted refresher answers");
    assert!(runtime.mailboxes().open(crate::supervisor::ActorId::Refresher) == Some(true));
    assert_eq!(runtime.gave_up().await, None);
    scenario.teardown();
}

/// A load read the file, then a DELETE removed it while the load was still running:
/// what the load read is not stored back into memory, and its readers are answered
/// as after the delete.
#[cfg(feature = "failpoints")]
#[actix_rt::test]
async fn a_load_that_read_before_a_delete_does_not_bring_it_back() {
    let scenario = fail::FailScenario::setup();
    let cache = name("flow-load-delete");
    let running = Running::boot(&[&cache], Duration::from_secs(3600)).await;
    running.save(&cache, r#"{"n":1}"#, Precondition::None).await.unwrap();
    running.runtime.actors.memory.evict(&cache).await.unwrap();
    // The load's reads are done long before it reports; the delete lands in between.
    fail::cfg("memory::loaded", "1*return(1500)").unwrap();
    let (read, purged) = tokio::join!(running.tiers().read(&cache), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        running.runtime.saver().purge(&cache).await.unwrap()
    });
    fail::remove("memory::loaded");
    assert!(purged);
    assert!(matches!(read, Err(ReadError::Missing)), "{:?}", read.map(|r| (r.doc.version, r.tier)));
    assert!(running.tiers().view().get(&cache).is_none(), "memory does not hold the deleted version");
    assert!(matches!(running.tiers().read(&cache).await, Err(ReadError::Missing)));
    scenario.teardown();
}

/// A version adopted from elsewhere reached the file, then a DELETE removed it before
/// memory followed it, while a load of the cache was in flight: memory does not follow
/// it, and the load answers as after the delete.
#[cfg(feature = "failpoints")]
#[actix_rt::test]
async fn a_version_adopted_before_a_delete_is_not_followed_into_a_load_in_flight() {
    let scenario = fail::FailScenario::setup();
    let cache = name("flow-follow-delete");
    let running = Running::boot(&[&cache], Duration::from_secs(3600)).await;
    let saver = running.runtime.saver();
    running.save(&cache, r#"{"n":1}"#, Precondition::None).await.unwrap();
    running.runtime.actors.memory.evict(&cache).await.unwrap();
    fail::cfg("memory::loaded", "1*return(2000)").unwrap();
    fail::cfg("adopt::memory", "1*return(1000)").unwrap();
    let (read, adopted, ()) = tokio::join!(
        running.tiers().read(&cache),
        saver.adopt(made_elsewhere(&cache, 2, r#"{"n":2}"#), None, InMemory::Follow),
        async {
            // Once the file holds version 2 (its adoption now paused before memory).
            while saver.files().read(cache.clone()).await.unwrap().doc.map(|d| d.version) != Some(2) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(saver.purge(&cache).await.unwrap());
        }
    );
    fail::remove("adopt::memory");
    fail::remove("memory::loaded");
    assert!(adopted.unwrap(), "the file took version 2 before the delete");
    assert!(matches!(read, Err(ReadError::Missing)), "{:?}", read.map(|r| (r.doc.version, r.tier)));
    assert!(running.tiers().view().get(&cache).is_none(), "memory does not hold the deleted version");
    assert!(matches!(running.tiers().read(&cache).await, Err(ReadError::Missing)));
    scenario.teardown();
}

#[actix_rt::test]
async fn a_delete_made_elsewhere_drops_only_the_version_it_was_made_at() {
    let cache = name("flow-drop");
    let running = Running::boot(&[&cache], Duration::from_secs(3600)).await;
    let saver = running.runtime.saver();
    running.save(&cache, r#"{"n":1}"#, Precondition::None).await.unwrap();
    running.save(&cache, r#"{"n":2}"#, Precondition::None).await.unwrap();

    // Deleted elsewhere at version 1: the save made here since is newer and stays.
    assert!(!saver.drop_deleted(&cache, 1).await.unwrap());
    assert_eq!(running.read(&cache).await, (2, ServedFrom::Memory));

    assert!(saver.drop_deleted(&cache, 2).await.unwrap());
    assert!(running.tiers().view().get(&cache).is_none(), "memory no longer holds it");
    assert!(!running.file_of(&cache).exists(), "no tombstone: the delete is in Postgres already");
    assert!(matches!(running.tiers().read(&cache).await, Err(ReadError::Missing)));
}

#[actix_rt::test]
async fn retention_expires_a_copy_saved_before_the_cutoff_from_file_and_memory() {
    let cache = name("flow-expire");
    let running = Running::boot(&[&cache], Duration::from_secs(3600)).await;
    let saver = running.runtime.saver();
    let saved = running.save(&cache, r#"{"n":1}"#, Precondition::None).await.unwrap();

    let before = saved.saved_at - chrono::Duration::days(1);
    assert_eq!(saver.expire(&cache, before).await.unwrap(), None, "saved after the cutoff: kept");
    assert_eq!(running.read(&cache).await, (1, ServedFrom::Memory));

    let after = saved.saved_at + chrono::Duration::seconds(1);
    let expired = saver.expire(&cache, after).await.unwrap();
    // As the envelope stores it, to the microsecond.
    assert_eq!(expired.map(|at| at.timestamp_micros()), Some(saved.saved_at.timestamp_micros()));
    assert!(running.tiers().view().get(&cache).is_none(), "memory no longer holds it");
    assert!(matches!(running.tiers().read(&cache).await, Err(ReadError::Missing)));
}

#[actix_rt::test]
async fn every_writer_shares_the_one_save_flow_and_the_probe_sees_the_running_mailboxes() {
    use crate::supervisor::health::probe;
    use crate::supervisor::ActorId;
    let cache = name("flow-one");
    let running = Running::boot(&[&cache], Duration::from_secs(3600)).await;
    // Every writer (the API, the commands) is handed the runtime's one flow, which tells the refresher.
    assert!(running.runtime.saver().observed());
    let mailboxes = running.runtime.mailboxes();
    assert_eq!(mailboxes.open(ActorId::File), Some(true));
    assert_eq!(mailboxes.open(ActorId::Refresher), Some(true));
    assert_eq!(mailboxes.open(ActorId::Store), None, "no Postgres: not judged");
    let files = running.runtime.saver().files().clone();
    assert_eq!(probe(files.list(), &mailboxes, Duration::from_secs(5)).await, Ok(()));
}

#[test]
fn a_save_error_reads_as_before_and_a_changed_cache_is_no_storage_failure() {
    use crate::files::FileTierError;
    use crate::store::StoreError;
    let disk = || FileTierError::Io(std::io::Error::other("disk full"));
    assert_eq!(
        SaveError::Storage(disk()).to_string(),
        "could not write the cache durably: file tier I/O error: disk full"
    );
    assert_eq!(
        SaveError::NotOnDisk(disk()).to_string(),
        "could not write the cache durably: in Postgres, but not on disk: file tier I/O error: disk full"
    );
    assert_eq!(SaveError::Changed.to_string(), "the cache changed during the fetch");
    assert_eq!(
        SaveError::Unavailable(StoreError::Unavailable("refused".into())).to_string(),
        "the precondition cannot be checked against the other instances now: postgres unavailable: refused"
    );
}
