//! The durable write: the content is replaced whole, and a failure at any step leaves
//! the old content and no temporary file.

use super::*;

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn replaces_content_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.json");
    write_atomic(&p, b"one").unwrap();
    write_atomic(&p, b"two").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"two");
    assert_eq!(names_in(dir.path()), ["a.json"]);
}

#[test]
fn a_failed_rename_removes_the_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    // A non-empty directory where the file should go: the rename over it fails.
    let p = dir.path().join("a.json");
    fs::create_dir(&p).unwrap();
    fs::write(p.join("inside"), b"x").unwrap();
    let err = write_atomic(&p, b"new content").unwrap_err();
    let failure = failure_of(&err).expect("a WriteFailure inside");
    assert_eq!(failure.step, Step::Rename, "{err}");
    assert!(err.to_string().contains("at rename"), "{err}");
    assert_eq!(names_in(dir.path()), ["a.json"], "the temporary file remained");
    assert_eq!(names_in(&p), ["inside"]);
}

#[test]
fn error_kinds_become_bounded_labels() {
    let label = |e: io::Error| kind_label(&failed(Step::Write, e));
    assert_eq!(label(io::Error::from_raw_os_error(28)), "no_space"); // ENOSPC
    assert_eq!(label(io::Error::from_raw_os_error(122)), "no_space"); // EDQUOT
    assert_eq!(label(io::Error::from_raw_os_error(30)), "read_only"); // EROFS
    assert_eq!(label(io::Error::from_raw_os_error(13)), "permission"); // EACCES
    assert_eq!(label(io::Error::from_raw_os_error(5)), "io"); // EIO
    assert_eq!(kind_label(&io::Error::from_raw_os_error(28)), "no_space");
}

/// Each step made to fail in turn with its failpoint, for one file name only.
#[cfg(feature = "failpoints")]
#[test]
fn a_failure_at_any_step_keeps_the_old_content_and_no_temp_file() {
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("durable-steps.json");
    let other = dir.path().join("other.json");
    write_atomic(&p, b"old").unwrap();
    for at in [Step::Create, Step::Write, Step::Sync, Step::Rename] {
        fail::cfg(at.failpoint(), "return(durable-steps.json)").unwrap();
        let err = write_atomic(&p, b"new").unwrap_err();
        assert_eq!(failure_of(&err).map(|f| f.step), Some(at), "{err}");
        assert_eq!(fs::read(&p).unwrap(), b"old", "{at:?} changed the file");
        // Another file is not affected by the failpoint.
        write_atomic(&other, at.as_str().as_bytes()).unwrap();
        assert_eq!(names_in(dir.path()), ["durable-steps.json", "other.json"], "after {at:?}");
        fail::remove(at.failpoint());
    }
    // After the rename the new content is in place; there is no temporary file to remove.
    fail::cfg(Step::SyncDir.failpoint(), "return(durable-steps.json)").unwrap();
    let err = write_atomic(&p, b"new").unwrap_err();
    assert_eq!(failure_of(&err).map(|f| f.step), Some(Step::SyncDir), "{err}");
    assert_eq!(fs::read(&p).unwrap(), b"new");
    assert_eq!(names_in(dir.path()), ["durable-steps.json", "other.json"]);
    scenario.teardown();
}

#[test]
fn a_batch_replaces_every_file_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    write_atomic(&a, b"old a").unwrap();
    let results = write_atomic_all(dir.path(), &[(a.as_path(), b"new a"), (b.as_path(), b"new b")]);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!((fs::read(&a).unwrap(), fs::read(&b).unwrap()), (b"new a".to_vec(), b"new b".to_vec()));
    assert_eq!(names_in(dir.path()), ["a.json", "b.json"]);
}

#[test]
fn a_file_of_a_batch_that_cannot_be_renamed_keeps_its_place_and_the_others_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let (a, blocked, c) = (dir.path().join("a.json"), dir.path().join("blocked.json"), dir.path().join("c.json"));
    // A non-empty directory where the file should go: the rename over it fails.
    fs::create_dir(&blocked).unwrap();
    fs::write(blocked.join("inside"), b"x").unwrap();
    let results =
        write_atomic_all(dir.path(), &[(a.as_path(), b"a"), (blocked.as_path(), b"new"), (c.as_path(), b"c")]);
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(failure_of(err).map(|f| f.step), Some(Step::Rename), "{err}");
    assert!(!in_place(err));
    assert_eq!(names_in(dir.path()), ["a.json", "blocked.json", "c.json"], "a temporary file remained");
    assert_eq!(names_in(&blocked), ["inside"]);
    assert_eq!((fs::read(&a).unwrap(), fs::read(&c).unwrap()), (b"a".to_vec(), b"c".to_vec()));
}

#[test]
fn an_empty_batch_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert!(write_atomic_all(dir.path(), &[]).is_empty());
    assert!(names_in(dir.path()).is_empty());
}

#[test]
fn a_temp_file_left_by_a_crash_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    fs::write(dir.path().join("a.json.tmp"), b"half a write").unwrap();
    fs::write(dir.path().join("b.json.tmp"), b"half a write").unwrap();
    write_atomic(&a, b"new a").unwrap();
    assert!(write_atomic_all(dir.path(), &[(b.as_path(), b"new b")]).iter().all(Result::is_ok));
    assert_eq!((fs::read(&a).unwrap(), fs::read(&b).unwrap()), (b"new a".to_vec(), b"new b".to_vec()));
    assert_eq!(names_in(dir.path()), ["a.json", "b.json"]);
}
