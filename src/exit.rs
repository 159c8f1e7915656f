//! Exit codes of SPEC §3 and the one-line error that goes with a non-zero exit.

use std::fmt;

/// A clean stop.
pub const OK: i32 = 0;
/// Bad command-line usage (EX_USAGE).
pub const USAGE: i32 = 64;
/// The supervisor gave up: the restart limit was hit (EX_SOFTWARE).
pub const SOFTWARE: i32 = 70;
/// Data directory not writable or locked by another instance (EX_CANTCREAT).
pub const CANTCREAT: i32 = 73;
/// Bad configuration (EX_CONFIG).
pub const CONFIG: i32 = 78;
/// Anything else that stops a command (EX_UNAVAILABLE).
pub const UNAVAILABLE: i32 = 69;

/// A reason to exit non-zero, printed as one line on stderr.
#[derive(Debug)]
pub struct Fatal {
    /// The process exit code.
    pub code: i32,
    /// The line to print.
    pub message: String,
}

impl Fatal {
    /// A fatal error with `code`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<crate::config::ConfigError> for Fatal {
    fn from(e: crate::config::ConfigError) -> Self {
        Self::new(CONFIG, e.to_string())
    }
}
