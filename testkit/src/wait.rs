//! Waiting for something a daemon does in the background.

use std::time::{Duration, Instant};

/// Polls `f` every 20 ms until it gives `Some`, and returns that; panics naming `what`
/// after `timeout` (put the last value seen in `f`'s own output when it helps).
#[track_caller]
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
