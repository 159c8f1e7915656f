//! The store's writes as a project role, through the schema's functions: the version
//! guard and the compare-and-set (`Store::write_conditional`), the rebase above a
//! higher row (`Store::write`), and a role that is not the project's, which is an
//! outage (its saves wait), never a refusal of the data.

use bytes::Bytes;
use chrono::Utc;
use std::sync::Arc;
use tiercache_actors::domain::{canonical, CacheName, Checksum, Document};
use tiercache_actors::store::{ConnectConfig, Store, StoreConfig, StoreError, StoreHandle, WriteOutcome};
use tiercache_actors::supervisor::FailureReporter;
use tiercache_testkit::PgCluster;

fn doc(name: &str, version: u64, json: &str) -> Arc<Document> {
    let body = canonical::canonicalize_str(json).unwrap();
    let checksum = Checksum::of(&body);
    Arc::new(Document::new(
        CacheName::parse(name).unwrap(),
        version,
        checksum,
        Some(Utc::now()),
        None,
        Utc::now(),
        Bytes::from(body),
    ))
}

fn store(url: String, project: &str) -> StoreHandle {
    let mut connect = ConnectConfig::new(url);
    connect.options.pool_size = 2;
    let store =
        Store::new(StoreConfig { connect, project: project.into() }, FailureReporter::detached(), Default::default())
            .unwrap();
    StoreHandle::new(actix::Supervisor::start(move |_| store))
}

#[test]
fn a_project_role_writes_through_the_functions_in_both_modes() {
    let pg = PgCluster::start();
    pg.create_database("app").unwrap();
    pg.psql_file("app", concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.sql")).unwrap();
    pg.psql(
        "app",
        "CREATE ROLE role_a LOGIN IN ROLE tiercache_app; CREATE ROLE role_b LOGIN IN ROLE tiercache_app;
         INSERT INTO projects (project_name, db_role) VALUES ('a', 'role_a'), ('b', 'role_b');",
    )
    .unwrap();
    let (url_a, url_b) = (pg.url("app", "role_a"), pg.url("app", "role_b"));
    actix_rt::System::new().block_on(async move {
        let a = store(url_a, "a");
        let v3 = doc("c", 3, r#"{"n":3}"#);
        // The guard: written, then an equal version with other data is not.
        let written = a.write_conditional(v3.clone(), 3, 30, None).await.unwrap();
        assert!(written.written && written.row_version == 3, "{written:?}");
        let other = doc("c", 3, r#"{"n":"other"}"#);
        let refused = a.write_conditional(other.clone(), 3, 30, None).await.unwrap();
        assert!(!refused.written, "{refused:?}");
        assert_eq!((refused.row_version, refused.row_checksum), (3, Some(v3.checksum.to_string())));
        // ... and `write` rebases it above the row.
        assert_eq!(a.write(other.clone(), 30, None).await.unwrap(), WriteOutcome::Rebased { version: 4 });
        // Sent again (its answer lost): the row holds it already, nothing is written.
        assert_eq!(a.write(other, 30, Some(3)).await.unwrap(), WriteOutcome::Rebased { version: 4 });

        // Compare-and-set: only over exactly the expected version; no row counts as 0.
        let v9 = doc("c", 9, r#"{"n":9}"#);
        let stale = a.write_conditional(v9.clone(), 9, 30, Some(3)).await.unwrap();
        assert!(!stale.written && stale.row_version == 4, "{stale:?}");
        let cas = a.write_conditional(v9, 9, 30, Some(4)).await.unwrap();
        assert!(cas.written && cas.row_version == 9, "{cas:?}");
        let fresh = a.write_conditional(doc("fresh", 1, "[]"), 1, 30, Some(0)).await.unwrap();
        assert!(fresh.written, "{fresh:?}");
        let again = a.write_conditional(doc("fresh", 2, "[]"), 2, 30, Some(0)).await.unwrap();
        assert!(!again.written && again.row_version == 1, "{again:?}");
        assert_eq!(a.read(CacheName::parse("c").unwrap()).await.unwrap().unwrap().version, 9);
        // A save made knowing version 4, the row since moved to 9: a compare-and-set on 4
        // fails, and the save goes above the row (last acknowledged save wins).
        let late = doc("c", 5, r#"{"n":"late"}"#);
        assert_eq!(a.write(late, 30, Some(4)).await.unwrap(), WriteOutcome::Rebased { version: 10 });
        // Known and current: written at its own version.
        assert_eq!(a.write(doc("c", 11, r#"{"n":11}"#), 30, Some(10)).await.unwrap(), WriteOutcome::Written);
        // Sent again once Postgres confirmed it: nothing new is written.
        assert_eq!(a.write(doc("c", 11, r#"{"n":11}"#), 30, Some(11)).await.unwrap(), WriteOutcome::Written);
        assert_eq!(a.read(CacheName::parse("c").unwrap()).await.unwrap().unwrap().version, 11);
        // A save whose answer was lost (it went through), then another instance's write
        // built on it: sending the save again must not overwrite that write.
        let lost = doc("c", 12, r#"{"n":"lost"}"#);
        assert!(a.write_conditional(lost.clone(), 12, 30, Some(11)).await.unwrap().written);
        assert!(a.write_conditional(doc("c", 13, r#"{"n":13}"#), 13, 30, Some(12)).await.unwrap().written);
        assert_eq!(a.write(lost, 30, Some(11)).await.unwrap(), WriteOutcome::Superseded { version: 13 });
        assert_eq!(a.read(CacheName::parse("c").unwrap()).await.unwrap().unwrap().version, 13);

        // B's role configured with project a: not a's, so nothing is written, and the
        // error is an outage (saves wait), not the data's refusal.
        let b_as_a = store(url_b, "a");
        let e = b_as_a.write_conditional(doc("c", 20, "{}"), 20, 30, None).await.unwrap_err();
        assert!(e.is_outage() && e.is_transient(), "{e:?}");
        assert!(matches!(e, StoreError::NoProject(_)), "{e:?}");
        assert_eq!(a.read(CacheName::parse("c").unwrap()).await.unwrap().unwrap().version, 13);
    });
    // The audit names the calling role, not the functions' owner.
    assert_eq!(pg.psql("app", "SELECT string_agg(DISTINCT db_user, ',') FROM cache_audit").unwrap(), "role_a");
}
