//! The fuzz targets' invariants, one function per parser of untrusted input.
//! `tests/fuzz_corpus.rs` runs the same functions on the seed corpora with
//! the stable toolchain, so they are checked on every test run.

pub mod checks;
