//! The fuzz targets' invariants (`fuzz/src/checks.rs`) on their seed corpora
//! (`fuzz/corpus/<target>/`), with the stable toolchain: every test run
//! checks them; `scripts/fuzz.sh` explores further with cargo-fuzz.
#![cfg(feature = "fuzzing")]

#[path = "../fuzz/src/checks.rs"]
mod checks;

fn each_seed(target: &str, check: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seeds = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        check(&std::fs::read(&path).unwrap());
        seeds += 1;
    }
    assert!(seeds > 0, "no seeds in {}", dir.display());
    seeds
}

#[test]
fn every_seed_keeps_every_invariant() {
    for (target, check) in [
        ("lineage", checks::lineage as fn(&[u8])),
        ("trace_header", checks::trace_header),
        ("async_payload", checks::async_payload),
        ("json_key_text", checks::json_key_text),
        ("sns_envelope", checks::sns_envelope),
        ("sqs_verdicts", checks::sqs_verdicts),
    ] {
        each_seed(target, check);
    }
}
