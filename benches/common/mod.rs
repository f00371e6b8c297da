//! Shared by the benchmarks.

use std::time::{Duration, Instant};

use criterion::Bencher;

/// Times `timed` while running `other` (untimed) before each call, so two
/// variants measured as a pair see the same drift (a growing emulator queue,
/// a busy neighbour core) and their ratio stays fair.
pub fn interleaved(b: &mut Bencher<'_>, mut timed: impl FnMut(), mut other: impl FnMut()) {
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            other();
            let start = Instant::now();
            timed();
            total += start.elapsed();
        }
        total
    })
}
