//! Source state (Strava's rotated refresh token) is kept on disk and in Postgres, so a
//! lost `data_dir` does not strand the daemon with a dead token.

use std::sync::Arc;
use tiercache_actors::refresher::sources::StateStore;
use tiercache_actors::refresher::state_store::FileStateStore;
use tiercache_actors::store::{ConnectConfig, Store, StoreConfig, StoreHandle};
use tiercache_actors::supervisor::FailureReporter;
use tiercache_testkit::PgCluster;

#[test]
fn state_survives_the_loss_of_the_data_dir_through_postgres() {
    let pg = PgCluster::start();
    pg.create_database("app").unwrap();
    pg.psql_file("app", concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.sql")).unwrap();
    let url = pg.url("app", "postgres");
    let data = tempfile::tempdir().unwrap();
    actix_rt::System::new().block_on(async move {
        let mut connect = ConnectConfig::new(url);
        connect.options.pool_size = 2;
        let store =
            Store::new(StoreConfig { connect, project: "p".into() }, FailureReporter::detached(), Default::default())
                .unwrap();
        let handle = StoreHandle::new(actix::Supervisor::start(move |_| store));
        let states: Arc<dyn StateStore> = Arc::new(FileStateStore::new(data.path(), Some(handle.clone())));
        let token = serde_json::json!({"refresh_token": "rotated-7"});
        states.save("strava:strava", token.clone()).await.unwrap();

        let file = data.path().join("sources").join("strava_strava.json");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "secret file mode");
        assert_eq!(handle.load_state("strava:strava".into()).await.unwrap(), Some(token.clone()));

        std::fs::remove_dir_all(data.path().join("sources")).unwrap();
        assert_eq!(states.load("strava:strava").await, Some(token), "read back from Postgres");
        assert_eq!(states.load("strava:other").await, None);
    });
}
