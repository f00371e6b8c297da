//! A small SQS-triggered function without the guard: the baseline for the
//! cold start and binary size numbers in docs/performance.md.
const GUARDED: bool = false;
include!("cold_start/common.rs");
