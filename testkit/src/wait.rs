//! Waiting for something a daemon does in the background.
//!
//! A check gives either what the test waits for or what it saw instead; when the wait
//! times out, the panic prints the last thing seen, so a failure under load says how
//! far the daemon got rather than only "timed out".
//!
//! ```
//! use std::time::Duration;
//! use tiercache_testkit::wait::{seen, wait_for};
//! let mut n = 0;
//! let v = wait_for("n to reach 3", Duration::from_secs(1), || {
//!     n += 1;
//!     seen(n, n >= 3)
//! });
//! assert_eq!(v, 3);
//! ```

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// What one check of [`wait_for`] gives: `Ok` ends the wait, `Err` is what was seen.
pub trait Check {
    /// What the wait returns.
    type Ready;
    /// `Ok` when the wait is over, else a description of what was seen.
    fn check(self) -> Result<Self::Ready, String>;
}

/// `Err(observation)` is printed when the wait times out.
impl<T, E: Debug> Check for Result<T, E> {
    type Ready = T;
    fn check(self) -> Result<T, String> {
        self.map_err(|seen| format!("{seen:?}"))
    }
}

/// A check that observes nothing worth printing (prefer a `Result` with what was seen).
impl<T> Check for Option<T> {
    type Ready = T;
    fn check(self) -> Result<T, String> {
        self.ok_or_else(|| "None (this check keeps what it saw to itself)".to_owned())
    }
}

/// `Ok(value)` when `done`, else `Err(value)`: the usual body of a check that waits for
/// an observed value to satisfy a condition.
pub fn seen<T>(value: T, done: bool) -> Result<T, T> {
    if done {
        Ok(value)
    } else {
        Err(value)
    }
}

/// Polls `f` every 20 ms until it gives `Ok`/`Some`, and returns that; panics naming
/// `what` and the last thing `f` saw after `timeout`.
#[track_caller]
pub fn wait_for<C: Check>(what: &str, timeout: Duration, mut f: impl FnMut() -> C) -> C::Ready {
    let deadline = Instant::now() + timeout;
    loop {
        match f().check() {
            Ok(v) => return v,
            Err(last) => {
                assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_prints_the_last_observation() {
        let err = std::panic::catch_unwind(|| {
            let mut n = 0;
            wait_for("n to reach 1000", Duration::from_millis(50), || {
                n += 1;
                seen(format!("n = {n}"), false)
            })
        })
        .expect_err("the wait must time out");
        let text = err.downcast_ref::<String>().expect("a formatted panic message");
        assert!(text.contains("waiting for n to reach 1000; last seen: \"n = "), "{text}");
    }

    #[test]
    fn options_still_wait() {
        let mut n = 0;
        let v = wait_for("n to reach 2", Duration::from_secs(1), || {
            n += 1;
            (n >= 2).then_some(n)
        });
        assert_eq!(v, 2);
    }
}
