//! The `tiercache` binary: everything happens in the library.

fn main() {
    std::process::exit(tiercache::main_with_args(std::env::args_os().skip(1)));
}
