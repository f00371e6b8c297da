//! Signed lineages through the real layer (`LOOP_GUARD_SIGNING_KEYS`): the
//! guard's own chain still stops at max depth, and lineages nobody with the
//! key wrote (forged, transplanted, truncated, signed with a dropped key)
//! are counted as absent, reported in `UnverifiedLineages`, and drop no work.

#[path = "support/queue_loop.rs"]
mod queue_loop;

use lambda_loop_guard::signing::SigningKeys;
use lambda_loop_guard::testing::CapturedMetrics;
use lambda_loop_guard::{FunctionId, Lineage, LoopGuardConfig};

use queue_loop::{carrying, run_queue_loop, Attributes, Behaviour};

const OLD: &str = "an-old-secret-of-32-bytes-000000";
const NEW: &str = "a-new-secret-of-32-bytes-1111111";
const ONCE: Behaviour = Behaviour {
    fan_out: 1,
    declare: false,
    scopes: 1,
};

fn config(keys: &[&str]) -> LoopGuardConfig {
    keys.iter()
        .fold(
            LoopGuardConfig::builder()
                .function_identity("signed")
                .max_depth(3),
            |b, k| b.signing_key(*k),
        )
        .build()
        .unwrap()
}

fn deep(runs: u16) -> Lineage {
    let me = FunctionId::from_identity("signed");
    (0..runs).fold(Lineage::new(), |l, _| l.record_run(me))
}

fn unverified(metrics: &CapturedMetrics) -> u64 {
    metrics
        .json()
        .iter()
        .filter_map(|line| line.get("UnverifiedLineages")?.as_u64())
        .sum()
}

#[tokio::test]
async fn a_signed_self_loop_stops_at_max_depth() {
    let metrics = CapturedMetrics::default();
    let outcome = run_queue_loop(
        config(&[NEW]),
        ONCE,
        vec![Attributes::new()],
        metrics.clone(),
    )
    .await;
    let me = FunctionId::from_identity("signed");
    let counts: Vec<u16> = outcome.runs.iter().map(|l| l.count(me)).collect();
    assert_eq!(counts, [1, 2, 3]);
    assert!(
        outcome.runs.iter().all(|l| l.tag().is_some()),
        "{outcome:?}"
    );
    assert_eq!(outcome.dropped, 1);
    assert_eq!(metrics.drops(), 1);
    assert_eq!(unverified(&metrics), 0);
}

#[tokio::test]
async fn lineages_without_a_valid_signature_drop_no_work() {
    let keys = SigningKeys::new([NEW]).unwrap().unwrap();
    let wrong = SigningKeys::new(["a-key-nobody-here-has-0123456789"])
        .unwrap()
        .unwrap();
    let signed = keys.sign(&deep(1)).to_string();
    let (body, _) = Lineage::split_tag(&signed);
    let other = keys.sign(&deep(2)).to_string();
    let (_, other_tag) = Lineage::split_tag(&other);
    let forged = [
        // A count past the limit, unsigned.
        deep(50).to_string(),
        // The same, signed with a key the function does not have.
        wrong.sign(&deep(50)).to_string(),
        // A real signature moved onto a higher count.
        format!(
            "{}.s{:016x}",
            deep(50),
            Lineage::split_tag(&signed).1.unwrap()
        ),
        // Another value's tag on this value.
        format!("{body}.s{:016x}", other_tag.unwrap()),
        // Truncated.
        signed[..signed.len() - 3].to_owned(),
    ];
    let metrics = CapturedMetrics::default();
    let seeds: Vec<Attributes> = forged.iter().map(|v| carrying(v)).collect();
    // One message each, the function sending nothing back.
    let silent = Behaviour {
        fan_out: 0,
        declare: false,
        scopes: 1,
    };
    let outcome = run_queue_loop(config(&[NEW]), silent, seeds, metrics.clone()).await;
    let me = FunctionId::from_identity("signed");
    assert_eq!(outcome.runs.len(), forged.len(), "{outcome:?}");
    // Each counted from zero: this is run 1 of a fresh chain.
    assert!(outcome.runs.iter().all(|l| l.count(me) == 1), "{outcome:?}");
    assert_eq!(outcome.dropped, 0);
    assert_eq!(unverified(&metrics), forged.len() as u64);
}

#[tokio::test]
async fn keys_rotate_without_a_flag_day() {
    let me = FunctionId::from_identity("signed");
    // Sent by a function still on the old key, read by one with both.
    let old = SigningKeys::new([OLD]).unwrap().unwrap();
    let at_two = old.sign(&deep(2)).to_string();
    let metrics = CapturedMetrics::default();
    let outcome = run_queue_loop(
        config(&[NEW, OLD]),
        ONCE,
        vec![carrying(&at_two)],
        metrics.clone(),
    )
    .await;
    let counts: Vec<u16> = outcome.runs.iter().map(|l| l.count(me)).collect();
    assert_eq!(
        counts,
        [3],
        "run 3 continues the chain: the old key still verifies"
    );
    assert_eq!((outcome.dropped, unverified(&metrics)), (1, 0));
    // Once the old key is dropped, its signatures count as absent.
    let metrics = CapturedMetrics::default();
    let outcome = run_queue_loop(
        config(&[NEW]),
        ONCE,
        vec![carrying(&at_two)],
        metrics.clone(),
    )
    .await;
    let counts: Vec<u16> = outcome.runs.iter().map(|l| l.count(me)).collect();
    assert_eq!(counts, [1, 2, 3]);
    assert_eq!(unverified(&metrics), 1);
}
