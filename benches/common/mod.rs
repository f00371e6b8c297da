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

/// The median, first and third quartiles of a sample.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
}

impl Spread {
    fn of(mut sample: Vec<f64>) -> Spread {
        sample.sort_by(f64::total_cmp);
        let at = |q: f64| sample[((sample.len() - 1) as f64 * q).round() as usize];
        Spread {
            median: at(0.5),
            q1: at(0.25),
            q3: at(0.75),
        }
    }
}

/// What paired runs measured.
#[derive(Debug, Clone, Copy)]
pub struct Paired {
    /// The median `bare` run.
    pub bare_median: f64,
    /// The per-pair differences `guarded - bare`, in nanoseconds.
    pub added: Spread,
    /// The per-pair shares `(guarded - bare) / bare`: what `guarded` adds
    /// relative to the work around it at that moment, which a change of the
    /// machine's speed during the run moves less than either time.
    pub share: Spread,
}

/// Runs `pairs` pairs of `bare` and `guarded`, back to back in alternating
/// order, after a warm-up: the median `bare` call and the spread of the
/// per-pair differences `guarded - bare` (what `guarded` adds, with the
/// drift common to both cancelled pair by pair) and of their shares.
pub fn paired_differences(
    pairs: usize,
    mut bare: impl FnMut(),
    mut guarded: impl FnMut(),
) -> Paired {
    paired_differences_with(pairs, || (), |()| bare(), |()| guarded())
}

/// [`paired_differences`] of runs that each take an input `setup` makes
/// (untimed) just before the run.
pub fn paired_differences_with<I>(
    pairs: usize,
    mut setup: impl FnMut() -> I,
    mut bare: impl FnMut(I),
    mut guarded: impl FnMut(I),
) -> Paired {
    let mut time = |f: &mut dyn FnMut(I)| {
        let input = setup();
        let start = Instant::now();
        f(input);
        start.elapsed().as_nanos() as f64
    };
    for _ in 0..pairs / 10 {
        time(&mut bare);
        time(&mut guarded);
    }
    let mut bare_times = Vec::with_capacity(pairs);
    let mut differences = Vec::with_capacity(pairs);
    let mut shares = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let (b, g) = if i % 2 == 0 {
            let b = time(&mut bare);
            (b, time(&mut guarded))
        } else {
            let g = time(&mut guarded);
            (time(&mut bare), g)
        };
        bare_times.push(b);
        differences.push(g - b);
        shares.push((g - b) / b.max(1.0));
    }
    Paired {
        bare_median: Spread::of(bare_times).median,
        added: Spread::of(differences),
        share: Spread::of(shares),
    }
}

/// Prints what [`paired_differences`] measured, under `name`.
pub fn print_paired(name: &str, paired: Paired) {
    println!(
        "{name}: bare median {:.0} ns; guarded - bare: median {:.0} ns ({:.2} % of the bare median; \
         per pair {:.2} %), IQR {:.0} .. {:.0} ns",
        paired.bare_median,
        paired.added.median,
        100.0 * paired.added.median / paired.bare_median,
        100.0 * paired.share.median,
        paired.added.q1,
        paired.added.q3,
    );
}
