//! `LOOP_GUARD_CHAIN_IDS`: every chain gets an id where it starts, carried
//! by every hop (one id for a whole self-loop, its drop lines included),
//! and the records of a batch that arrived without one share their
//! invocation's. Off, unbudgeted chains carry none (wire format `v1`).

use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_loop_guard::exact_budget::{ChainBudgetStore, ClaimFuture, ExactBudget, ReleaseFuture};
use lambda_loop_guard::testing::{context, sqs_event, sqs_message, CapturedMetrics};
use lambda_loop_guard::{for_record, Chain, ChainId, LoopGuardConfig, LoopGuardLayer};
use lambda_runtime::LambdaEvent;
use tower::{service_fn, Layer, ServiceExt};

use super::queue_loop::{run_queue_loop, run_queue_loop_counted, Attributes, Behaviour};

fn config(chain_ids: bool) -> LoopGuardConfig {
    LoopGuardConfig::builder()
        .function_identity("self-loop")
        .max_depth(5)
        .chain_ids(chain_ids)
        .build()
        .unwrap()
}

const SELF_LOOP: Behaviour = Behaviour {
    fan_out: 1,
    declare: false,
    scopes: 1,
};

#[tokio::test]
async fn a_self_loop_carries_one_chain_id_into_its_drop_line() {
    let metrics = CapturedMetrics::default();
    let outcome = run_queue_loop(
        config(true),
        SELF_LOOP,
        vec![Attributes::new()],
        metrics.clone(),
    )
    .await;
    assert_eq!((outcome.runs.len(), outcome.dropped), (5, 1));
    let chain = outcome.runs[0]
        .chain()
        .expect("an id where the chain started");
    assert!(outcome
        .runs
        .iter()
        .all(|l| l.chain() == Some(chain) && l.budget().is_none()));
    assert!(outcome
        .runs
        .iter()
        .all(|l| l.to_string().starts_with("v2.")));
    let drops: Vec<_> = metrics
        .json()
        .into_iter()
        .filter(|line| line.get("RecursiveInvocationsDropped").is_some())
        .collect();
    assert_eq!(drops.len(), 1);
    assert_eq!(drops[0]["ChainId"], chain.to_string());

    // Off (the default): no id, v1 on the wire.
    let outcome = run_queue_loop(config(false), SELF_LOOP, vec![Attributes::new()], ()).await;
    assert_eq!(outcome.runs.len(), 5);
    assert!(outcome
        .runs
        .iter()
        .all(|l| l.chain().is_none() && l.to_string().starts_with("v1.")));
}

#[tokio::test]
async fn fresh_records_of_a_batch_share_their_invocations_chain() {
    let seen: Arc<Mutex<Vec<Option<ChainId>>>> = Arc::default();
    let handler = {
        let seen = seen.clone();
        service_fn(move |event: LambdaEvent<SqsEvent>| {
            let seen = seen.clone();
            async move {
                let invocation = Chain::current().and_then(|c| c.lineage().chain());
                seen.lock().unwrap().push(invocation);
                for record in &event.payload.records {
                    let chain = for_record(record, async {
                        Chain::current().and_then(|c| c.lineage().chain())
                    })
                    .await;
                    seen.lock().unwrap().push(chain);
                }
                Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
            }
        })
    };
    let upstream = lambda_loop_guard::Lineage::new()
        .in_chain(ChainId::from_u64(0xfeed).unwrap())
        .record_run(lambda_loop_guard::FunctionId::from_identity("upstream"));
    let event = sqs_event(vec![
        sqs_message("fresh-1", None),
        sqs_message("chained", Some(&upstream)),
        sqs_message("fresh-2", None),
    ]);
    LoopGuardLayer::new(config(true))
        .metric_sink(())
        .layer(handler)
        .oneshot(LambdaEvent::new(event, context()))
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let feed = ChainId::from_u64(0xfeed);
    // The invocation's merged chain is the arriving one; fresh records run
    // in it too, the chained record in its own.
    assert_eq!(seen, [feed, feed, feed, feed]);
}

/// A store no claim may reach: chains without a budget make none.
#[derive(Debug)]
struct Unreachable;

impl ChainBudgetStore for Unreachable {
    fn claim(&self, chain: ChainId, _: u32, _: u32) -> ClaimFuture<'_> {
        panic!("claimed for {chain}, which has no budget")
    }

    fn release(&self, chain: ChainId, _: u32) -> ReleaseFuture<'_> {
        panic!("released for {chain}, which has no budget")
    }
}

#[tokio::test]
async fn an_exact_budget_leaves_chains_without_a_budget_alone() {
    let outcome = run_queue_loop_counted(
        config(true),
        Some(ExactBudget::new(Unreachable)),
        SELF_LOOP,
        vec![Attributes::new()],
        (),
    )
    .await;
    // Stopped by depth, as without the store; nothing dropped for a budget.
    assert_eq!((outcome.runs.len(), outcome.dropped), (5, 1));
    assert!(outcome.runs.iter().all(|l| l.budget().is_none()));
}
