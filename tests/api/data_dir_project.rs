//! A `data_dir` belongs to one project (`data_dir/project`): a daemon or an offline
//! command started with another project is refused (exit 78, one line naming both)
//! and moves nothing; another project's cache file is never treated as corrupt.

use crate::helpers::BIN;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tiercache_testkit::cli::Output;
use tiercache_testkit::{Daemon, DaemonOptions};

const CONFIG: &str = "project = \"myapp\"\n\n[[caches]]\nname = \"strava\"\n";

/// A daemon of project `myapp` that has saved `strava` once, then stopped.
fn daemon_with_a_save() -> Daemon {
    let mut d = Daemon::new(Path::new(BIN), DaemonOptions::new(CONFIG));
    d.start_again();
    assert_eq!(d.put_json("strava", r#"{"runs": 3}"#).status, 200);
    d.stop();
    d
}

/// `tiercache ARGS --config FILE` with `PROJECT_ID=project`.
fn tiercache_as(d: &Daemon, project: &str, args: &[&str]) -> Output {
    let config = d.config_path();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.to_str().expect("UTF-8 path")]);
    d.run(&all, &[("PROJECT_ID", project)])
}

fn files_in(dir: PathBuf) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[track_caller]
fn assert_refused(out: &Output, what: &str) {
    assert_eq!(out.code, 78, "{what}: {out:?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{what}: one line on stderr: {out:?}");
    let line = lines[0];
    assert!(line.starts_with("config error: project: "), "{what}: {line}");
    assert!(line.contains("\"myapp\"") && line.contains("\"fundraising-app\""), "{what}: names both: {line}");
}

#[test]
fn commands_and_the_daemon_of_another_project_are_refused_and_move_nothing() {
    let mut d = daemon_with_a_save();
    let record = d.data_dir().join("project");
    assert_eq!(std::fs::read_to_string(&record).expect("data_dir/project"), "myapp\n");
    let before = std::fs::read(d.cache_file("strava")).expect("cache file");
    let backup = d.dir().join("backup");
    std::fs::create_dir(&backup).unwrap();
    std::fs::write(backup.join("strava.json"), &before).unwrap();
    let doc = d.dir().join("doc.json");
    std::fs::write(&doc, "{\"a\": 1}").unwrap();
    let out_dir = d.dir().join("out");

    for args in [
        vec!["export", out_dir.to_str().unwrap()],
        vec!["import", "strava", doc.to_str().unwrap()],
        vec!["restore", backup.to_str().unwrap(), "--force"],
    ] {
        let out = tiercache_as(&d, "fundraising-app", &args);
        assert_refused(&out, args[0]);
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    assert!(!out_dir.exists(), "export wrote nothing");

    d.set_env("PROJECT_ID", "fundraising-app");
    let refused = d.try_start();
    let err = refused.expect_err("a daemon of another project must not start");
    assert!(err.starts_with("exited with 78"), "{err}");
    let out = Output { code: 78, stdout: String::new(), stderr: d.stderr() };
    assert_refused(&out, "run");
    // The daemon's logs are JSON: the fatal error is a JSON line there too.
    let fatal = d.log_lines().into_iter().find(|l| l["exit_code"] == 78).unwrap_or_else(|| {
        panic!("no JSON log line with exit_code 78; stdout:\n{}", d.stdout());
    });
    assert_eq!(fatal["level"], "ERROR", "{fatal}");
    assert!(fatal.to_string().contains("belongs to project"), "{fatal}");

    assert_eq!(std::fs::read(d.cache_file("strava")).unwrap(), before, "the cache file is untouched");
    assert!(files_in(d.data_dir().join("corrupt")).is_empty(), "nothing moved aside");
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "myapp\n", "the record is unchanged");

    // The right project still finds everything.
    d.remove_env("PROJECT_ID");
    d.start_again();
    assert_eq!(d.get_cache("strava").json(), serde_json::json!({"runs": 3}));
}

#[test]
fn a_data_dir_without_the_record_adopts_the_project_unless_its_files_name_another() {
    let mut d = daemon_with_a_save();
    let record = d.data_dir().join("project");
    // An installation from before the record: the files say whose it is.
    std::fs::remove_file(&record).unwrap();
    let out = tiercache_as(&d, "fundraising-app", &["export", d.dir().join("out").to_str().unwrap()]);
    assert_refused(&out, "export without the record");
    assert!(!record.exists(), "nothing recorded for the wrong project");
    assert!(files_in(d.data_dir().join("corrupt")).is_empty(), "nothing moved aside");

    d.start_again();
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "myapp\n", "adopted on first start");
    assert_eq!(d.get_cache("strava").status, 200);
}

#[test]
fn another_projects_cache_file_is_left_in_place_not_served_and_not_counted_corrupt() {
    let mut d = daemon_with_a_save();
    let file = d.cache_file("strava");
    let text = std::fs::read_to_string(&file).unwrap();
    let foreign = text.replacen("\"project\":\"myapp\"", "\"project\":\"fundraising-app\"", 1);
    assert_ne!(foreign, text, "the envelope names its project: {text}");
    std::fs::write(&file, &foreign).unwrap();

    d.start_again();
    let r = d.get_cache("strava");
    assert_ne!(r.status, 200, "another project's document is not served: {r:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), foreign, "left in place");
    assert!(files_in(d.data_dir().join("corrupt")).is_empty(), "not moved to corrupt/");
    let moved = d.metric("tiercache_corrupt_files_total{cache=\"strava\",result=\"moved\"}").unwrap_or(0.0);
    assert!(moved == 0.0, "not counted as corrupt");
    let line = d.wait_for_log("the foreign file reported", Duration::from_secs(5), |l| {
        l.to_string().contains("belongs to another project")
    });
    assert!(line.to_string().contains("fundraising-app"), "{line}");
}
