//! A full disk, for real: `data_dir` on a small tmpfs that one oversized save fills. The
//! save is refused (503, JSON error) without leaving its temporary file, so the space it
//! took is free again at once and the next saves work without a restart.
//!
//! Mounting needs root (as in CI); otherwise the test says so and does nothing. The
//! other steps of the write (fsync, the directory's fsync) fail by failpoint.

use crate::helpers::{new_app, Options};
use std::path::{Path, PathBuf};
use std::process::Command;
use tiercache_testkit::Daemon;

/// Size of the tmpfs: room for the small documents, not for the big one.
const FS_SIZE: &str = "2m";

/// Unmounts the tmpfs when the test ends, passed or not (lazily: the daemon may still
/// hold files there while a failed test unwinds).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={FS_SIZE},mode=0755"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount tmpfs on {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
        Self(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Every file under `dir`, with its size.
fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").map(|e| e.expect("dir entry")) {
        let meta = entry.metadata().expect("metadata");
        if meta.is_dir() {
            out.extend(files_under(&entry.path()));
        } else {
            out.push((entry.path(), meta.len()));
        }
    }
    out
}

fn metric(app: &Daemon, sample: &str) -> Option<f64> {
    app.metrics().lines().find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn a_save_that_fills_the_disk_leaves_no_temp_file_and_later_saves_work() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: mounting a tmpfs for data_dir needs root (CI runs this test as root)");
        return;
    }
    let mut app = new_app(Options::new().api(r#"max_body = "8MiB""#));
    let _tmpfs = Tmpfs::mount(&app.data_dir());
    app.start_again();

    let v1 = app.put_ok("strava", r#"{"n": 1}"#);
    let big = format!(r#"{{"blob": "{}"}}"#, "x".repeat(3 << 20));
    let full = app.put_json("strava", &big);
    assert_eq!(full.status, 503, "{full:?}");
    assert_eq!(full.assert_json_error(), "storage_unavailable");
    assert!(full.json()["error"].as_str().unwrap().contains("No space left on device"), "{full:?}");

    // Nothing left behind: the temporary file and the space it held are gone.
    let files = files_under(&app.data_dir());
    assert!(files.iter().all(|(p, _)| p.extension().is_none_or(|x| x != "tmp")), "temporary file left: {files:?}");
    let used: u64 = files.iter().map(|(_, len)| len).sum();
    assert!(used < 64 << 10, "{used} bytes still used in data_dir: {files:?}");

    // The old version is still what is served and what is on disk.
    let read = app.get_cache("strava");
    assert_eq!((read.status, read.json()), (200, serde_json::json!({"n": 1})));
    assert_eq!(read.header("etag"), v1.header("etag"));
    let on_disk: serde_json::Value = serde_json::from_slice(&std::fs::read(app.cache_file("strava")).unwrap()).unwrap();
    assert_eq!(on_disk["version"], v1.etag_version().expect("ETag"));

    // Without a restart: a sizeable save of another cache, then of the same one.
    let other = format!(r#"{{"blob": "{}"}}"#, "y".repeat(512 << 10));
    assert_eq!(app.put_json("fundraising", &other).status, 200);
    let v2 = app.put_ok("strava", r#"{"n": 2}"#);
    assert_eq!(v2.etag_version().expect("ETag"), v1.etag_version().expect("ETag") + 1);
    assert_eq!(app.get_cache("strava").json(), serde_json::json!({"n": 2}));

    assert_eq!(metric(&app, r#"tiercache_file_write_errors_total{cache="strava",kind="no_space"}"#), Some(1.0));
    assert_eq!(metric(&app, r#"tiercache_saves_total{cache="strava",result="error"}"#), Some(1.0));
    app.stop();
}

/// The other steps of the write, by failpoint: failing before the rename changes
/// nothing; failing after it (the directory's fsync) leaves the new version in place,
/// and that is then what is served, not the old one still in memory.
#[cfg(feature = "failpoints")]
#[test]
fn a_write_failing_before_or_after_its_rename_leaves_what_is_served_equal_to_the_disk() {
    use crate::helpers::spawn_app_with;
    // Counted per durable write: the first is the retention pass's record at startup
    // (`retention.json`), then the PUTs: the second PUT fails its fsync, the fourth its
    // directory's.
    let failpoints = "durable::fsync=2*off->1*return(strava.json)->off;\
                      durable::fsync_dir=3*off->1*return(strava.json)->off";
    let app = spawn_app_with(Options::new().env("FAILPOINTS", failpoints));
    crate::refresh_support::wait_for("the retention pass's record", std::time::Duration::from_secs(10), || {
        app.data_dir().join("retention.json").exists().then_some(())
    });
    let v1 = app.put_ok("strava", r#"{"n": 1}"#);

    let failed = app.put_json("strava", r#"{"n": 2}"#);
    assert_eq!(failed.status, 503, "{failed:?}");
    assert_eq!(failed.assert_json_error(), "storage_unavailable");
    assert!(failed.body.contains("at fsync"), "{failed:?}");
    let read = app.get_cache("strava");
    assert_eq!((read.json(), read.header("etag")), (serde_json::json!({"n": 1}), v1.header("etag")));
    assert!(
        app.files_in("caches").iter().all(|p| p.extension().is_none_or(|x| x != "tmp")),
        "{:?}",
        app.files_in("caches")
    );

    let v2 = app.put_ok("strava", r#"{"n": 2}"#);
    assert_eq!(v2.etag_version().expect("ETag"), v1.etag_version().expect("ETag") + 1);

    let in_place = app.put_json("strava", r#"{"n": 3}"#);
    assert_eq!(in_place.status, 503, "{in_place:?}");
    assert!(in_place.body.contains("at fsync_dir"), "{in_place:?}");
    let read = app.get_cache("strava");
    assert_eq!(
        (read.json(), read.etag_version().expect("ETag")),
        (serde_json::json!({"n": 3}), v2.etag_version().expect("ETag") + 1)
    );
    let v4 = app.put(
        "/v1/caches/strava",
        br#"{"n": 4}"#,
        &[("Content-Type", "application/json"), ("If-Match", read.header("etag").unwrap())],
    );
    assert_eq!((v4.status, v4.etag_version().expect("ETag")), (200, v2.etag_version().expect("ETag") + 2), "{v4:?}");
    assert_eq!(metric(&app, r#"tiercache_file_write_errors_total{cache="strava",kind="io"}"#), Some(2.0));
}
