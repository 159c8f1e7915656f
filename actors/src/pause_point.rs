//! Failpoints that widen a race window in tests: `NAME=return(MS)` pauses the task
//! there for MS milliseconds without blocking its thread (the fail crate's own `sleep`
//! would stall every actor on that thread). Without the `failpoints` feature, nothing.

use std::time::Duration;

/// Pauses for as long as the failpoint `name` says (`return(MS)`); returns at once
/// otherwise.
pub(crate) async fn pause_point(name: &str) {
    let _ = name; // unused without the `failpoints` feature
    let ms = (|| {
        fail::fail_point!(name, |ms: Option<String>| ms.and_then(|ms| ms.parse::<u64>().ok()));
        None
    })();
    if let Some(ms) = ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
