//! The chain budget through the real layer: a function that sends two
//! messages back to its own queue for every record it runs (a fan-out loop,
//! which a per-function depth lets grow to 2^depth runs) runs at most the
//! budget's number of times in total, every message accounted for.
//!
//! The "queue" is in-process (`support/queue_loop.rs`).

#[path = "support/queue_loop.rs"]
mod queue_loop;

use lambda_loop_guard::error::Limit;
use lambda_loop_guard::LoopGuardConfig;

use queue_loop::{run_queue_loop, Attributes, Behaviour, Outcome};

/// Runs the fan-out loop from one seed message until the queue is empty.
async fn fan_out(budget: Option<u32>, max_depth: u32, fan_out: u32, declare: bool) -> Outcome {
    scoped_fan_out(budget, max_depth, fan_out, declare, 1).await
}

/// [`fan_out`], the handler scoping each record `scopes` times.
async fn scoped_fan_out(
    budget: Option<u32>,
    max_depth: u32,
    fan_out: u32,
    declare: bool,
    scopes: u32,
) -> Outcome {
    let mut config = LoopGuardConfig::builder()
        .function_identity("fan-out")
        .max_depth(max_depth)
        .max_hops(65_535);
    if let Some(budget) = budget {
        config = config.chain_budget(budget);
    }
    let behaviour = Behaviour {
        fan_out,
        declare,
        scopes,
    };
    run_queue_loop(
        config.build().unwrap(),
        behaviour,
        vec![Attributes::new()],
        (),
    )
    .await
}

#[tokio::test]
async fn a_fan_out_loop_runs_at_most_its_budget() {
    for budget in [1, 2, 7, 20, 100] {
        let outcome = fan_out(Some(budget), 1000, 2, false).await;
        assert!(
            outcome.runs.len() as u32 <= budget,
            "budget {budget}: {outcome:?}"
        );
        assert!(!outcome.runs.is_empty());
        assert!(outcome.dropped >= 1, "{outcome:?}");
        assert!(
            outcome.reasons.iter().all(|r| *r == Limit::ChainBudget),
            "{outcome:?}"
        );
    }
}

#[tokio::test]
async fn declared_sends_use_the_whole_budget() {
    // Each run declares its two sends: they share what is left exactly, so
    // the tree runs exactly the budget, and every leaf's sends are dropped.
    for budget in [1, 2, 7, 20, 100] {
        let outcome = fan_out(Some(budget), 1000, 2, true).await;
        assert_eq!(outcome.runs.len() as u32, budget, "{outcome:?}");
        assert_eq!(outcome.dropped, budget + 1, "{outcome:?}");
    }
    // Ten sends per run, declared.
    let outcome = fan_out(Some(50), 1000, 10, true).await;
    assert_eq!(outcome.runs.len(), 50, "{outcome:?}");
}

#[tokio::test]
async fn without_a_budget_only_depth_stops_the_fan_out() {
    // The same loop with the budget off and a depth of 4: 1 + 2 + 4 + 8 runs
    // and 16 drops, as measured on ministack; the budget of 20 beside it.
    let outcome = fan_out(None, 4, 2, false).await;
    assert_eq!(
        (outcome.runs.len(), outcome.dropped),
        (15, 16),
        "{outcome:?}"
    );
    assert!(outcome.reasons.iter().all(|r| *r == Limit::Depth));
    let outcome = fan_out(None, 16, 2, false).await;
    assert_eq!(outcome.runs.len(), (1 << 16) - 1, "{outcome:?}");
    let outcome = fan_out(Some(20), 16, 2, false).await;
    assert!(outcome.runs.len() <= 20, "{outcome:?}");
}

#[tokio::test]
async fn scoping_a_record_twice_does_not_hand_its_budget_out_twice() {
    // Each run scopes its record twice (`for_record`), sending one message
    // in each scope: both scopes share the run's budget.
    for budget in [2, 4, 20] {
        let outcome = scoped_fan_out(Some(budget), 1000, 1, false, 2).await;
        assert!(
            outcome.runs.len() as u32 <= budget,
            "budget {budget}: {outcome:?}"
        );
        let outcome = scoped_fan_out(Some(budget), 1000, 1, true, 2).await;
        assert_eq!(outcome.runs.len() as u32, budget, "declared: {outcome:?}");
    }
}
