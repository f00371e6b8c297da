//! The same function as `cold_start_bare`, with `LoopGuardLayer` and
//! `LoopGuardInterceptor`: see docs/performance.md.
const GUARDED: bool = true;
include!("cold_start/common.rs");
