//! An `If-Match` PUT whose compare-and-set reached Postgres but whose file write then
//! failed: the client is told 503 (the save is not acknowledged), the instance goes on
//! serving the last document it has on disk (never a torn or half-adopted one), nothing
//! sends the older document back over the row, and once the disk takes writes again
//! (here: the next start) the instance serves what Postgres holds.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn an_if_match_put_in_postgres_but_not_on_disk_is_503_and_the_row_is_never_overwritten_by_the_older_file() {
    let pg = cluster();
    let mut d = Conf::new(pg.url(DB, "postgres")).caches(&["checked"]).start();
    let first = json!({"n": 1});
    let (v1, _) = put_ok(&d, "checked", &first);
    wait_for_row(&pg, "default", "checked", v1, &first);
    wait_queue_empty(&d, ARRIVAL);

    // Every durable write of this cache's file fails from now on (a full disk).
    d.set_env("FAILPOINTS", "durable::write=return(checked)");
    d.restart();
    let etag = d.get_cache("checked").header("etag").expect("an ETag").to_owned();
    let second = json!({"n": 2});
    let r = d.put(
        "/v1/caches/checked",
        second.to_string().as_bytes(),
        &[("Content-Type", "application/json"), ("If-Match", &etag)],
    );
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.assert_json_error(), "storage_unavailable", "{r:?}");
    // The compare-and-set did happen: Postgres holds the new document above v1.
    let written = row(&pg, "checked").expect("the row");
    assert_eq!(written.data, second, "{written:?}");
    assert!(written.version > v1, "{written:?}");
    // What this instance serves meanwhile is one whole document it held, never the
    // older one written back over the row (its listener saw the row, its queue held
    // nothing of this cache).
    for _ in 0..10 {
        let (version, _, body) = get_ok(&d, "checked");
        assert!((version, &body) == (v1, &first) || (version, &body) == (written.version, &second), "{version} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(row(&pg, "checked").expect("the row"), written, "the row stays the If-Match PUT's");
    // The instance keeps trying to take the row, at every read of the row heads, and
    // says so.
    wait_for("two attempts to adopt the row", ARRIVAL, || {
        let attempts =
            d.stdout().lines().filter(|l| l.contains("could not adopt the newer version in Postgres")).count();
        seen(attempts, attempts >= 2)
    });

    // The disk takes writes again: the instance comes to the row at its start.
    d.remove_env("FAILPOINTS");
    d.restart();
    let (version, _, body) = get_ok(&d, "checked");
    assert_eq!((version, body), (written.version, second.clone()), "served after the disk recovered");
    wait_queue_empty(&d, ARRIVAL);
    assert_eq!(row(&pg, "checked").expect("the row"), written, "the row stays the If-Match PUT's after the restart");
}
