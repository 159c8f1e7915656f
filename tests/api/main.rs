//! Black-box tests of the tiercache binary through HTTP, signals and files.
