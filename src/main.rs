//! The `tiercache` binary: everything happens in the library.

use std::io::Write;

fn main() {
    let code = tiercache::main_with_args(std::env::args_os().skip(1));
    exit_now(code)
}

/// Ends the process with `_exit`, not libc's `exit`: after `run`, the actors' threads
/// are still running (one may be panicking), and `exit`'s handlers (thread-local
/// destructors, shared objects' finalisers) racing them once left the daemon hanging
/// after it had logged its exit code. Whatever must survive is on disk by now; what is
/// left is buffered output, flushed here.
fn exit_now(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes a plain integer and ends the process at once; no Rust
    // state is touched after it.
    unsafe { libc::_exit(code) }
}
