//! A corrupt cache file is never served: the read falls through to Postgres, which
//! answers, and the file is rewritten from the row (valid again).

use crate::helpers::{cluster, get_ok, put_ok, wait_for_row, Conf, DB};
use serde_json::{json, Value};
use std::fs;

#[test]
fn a_corrupt_file_is_served_from_postgres_and_repaired() {
    let mut pg = cluster();
    let mut d = Conf::new(pg.url(DB, "postgres")).caches(&["x", "y"]).start();
    let doc = json!({"total": 12345, "items": ["a", "b"]});
    let (v, checksum) = put_ok(&d, "x", &doc);
    wait_for_row(&pg, "default", "x", v, &doc);
    // A restart empties memory; the file and the row agree.
    d.restart();

    // Change one digit of the document inside the envelope: still JSON, wrong checksum.
    let path = d.cache_file("x");
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("12345").count(), 1, "the envelope holds the number once: {text}");
    fs::write(&path, text.replace("12345", "12346")).unwrap();

    let r = d.get_cache("x");
    assert_eq!(r.status, 200, "{r:?}\nstdout:\n{}", d.stdout());
    assert_eq!(r.header("x-cache-tier"), Some("postgres"), "{r:?}");
    assert_eq!(r.json(), doc, "the row's document, not the tampered one");
    assert_eq!(r.etag_version(), Some(v));

    // The file is valid again: the row's version, data and checksum.
    let envelope: Value = serde_json::from_slice(&fs::read(&path).expect("the file was rewritten")).unwrap();
    assert_eq!(envelope["version"].as_u64(), Some(v), "{envelope}");
    assert_eq!(envelope["data"], doc, "{envelope}");
    assert_eq!(envelope["checksum"].as_str(), Some(checksum.as_str()), "{envelope}");
    assert!(!d.files_in("corrupt").is_empty(), "the tampered file is kept aside in corrupt/");
    d.wait_for_log("about the corrupt file", std::time::Duration::from_secs(5), |l| {
        l["level"] == "ERROR" && l.to_string().contains("corrupt")
    });

    // Proof that the repaired file verifies: with Postgres gone and memory empty, the
    // file alone answers.
    pg.stop();
    d.restart();
    let (version, tier, body) = get_ok(&d, "x");
    assert_eq!((version, body), (v, doc));
    assert_eq!(tier, "file");
    let corrupt = d.files_in("corrupt");
    assert_eq!(corrupt.len(), 1, "nothing else found corrupt: {corrupt:?}");
}
