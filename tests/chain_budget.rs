//! The chain budget through the real layer: a function that sends two
//! messages back to its own queue for every record it runs (a fan-out loop,
//! which a per-function depth lets grow to 2^depth runs) runs at most the
//! budget's number of times in total, every message accounted for.
//!
//! The "queue" is in-process: each message sent (our attribute written by
//! `stamp_current`, the carrier a custom producer uses) becomes the next
//! record delivered, one record per invocation, until none is left.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use lambda_loop_guard::carrier::MessageAttribute;
use lambda_loop_guard::chain::{declare_sends, stamp_current};
use lambda_loop_guard::error::Limit;
use lambda_loop_guard::{for_record, LoopGuardConfig, LoopGuardLayer};
use lambda_runtime::{Context, LambdaEvent};
use tower::{service_fn, Layer, ServiceExt};

type Attributes = HashMap<String, SqsMessageAttribute>;

#[derive(Debug, Default)]
struct Outcome {
    runs: u32,
    sent: u32,
    dropped: u32,
    reasons: Vec<Limit>,
}

/// Runs the fan-out loop from one seed message until the queue is empty.
async fn fan_out(budget: Option<u32>, max_depth: u32, fan_out: u32, declare: bool) -> Outcome {
    let queue: Arc<Mutex<VecDeque<Attributes>>> = Arc::default();
    let runs = Arc::new(Mutex::new(0u32));
    let sent = Arc::new(Mutex::new(0u32));
    let reasons: Arc<Mutex<Vec<Limit>>> = Arc::default();
    let mut config = LoopGuardConfig::builder()
        .function_identity("fan-out")
        .max_depth(max_depth)
        .max_hops(65_535);
    if let Some(budget) = budget {
        config = config.chain_budget(budget);
    }
    let config = config.build().unwrap();
    let seen = reasons.clone();
    let layer = LoopGuardLayer::new(config)
        .metric_sink(())
        .on_drop(move |drop| seen.lock().unwrap().push(drop.reason));
    let handler = {
        let (queue, runs, sent) = (queue.clone(), runs.clone(), sent.clone());
        service_fn(move |event: LambdaEvent<SqsEvent>| {
            let (queue, runs, sent) = (queue.clone(), runs.clone(), sent.clone());
            async move {
                for record in &event.payload.records {
                    for_record(record, async {
                        *runs.lock().unwrap() += 1;
                        if declare {
                            declare_sends(fan_out);
                        }
                        for _ in 0..fan_out {
                            let mut attributes = Attributes::new();
                            stamp_current(&MessageAttribute::default(), &mut attributes).unwrap();
                            queue.lock().unwrap().push_back(attributes);
                            *sent.lock().unwrap() += 1;
                        }
                    })
                    .await;
                }
                Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
            }
        })
    };
    let guarded = layer.layer(handler);
    // The seed: a message from outside any chain.
    queue.lock().unwrap().push_back(Attributes::new());
    let mut dropped = 0;
    let mut delivered = 0u32;
    loop {
        let Some(attributes) = queue.lock().unwrap().pop_front() else {
            break;
        };
        delivered += 1;
        let mut message = SqsMessage::default();
        message.message_id = Some(format!("m-{delivered}"));
        message.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:fan-out".into());
        message.message_attributes = attributes;
        let mut event = SqsEvent::default();
        event.records = vec![message];
        let response = guarded
            .clone()
            .oneshot(LambdaEvent::new(event, Context::default()))
            .await
            .unwrap();
        dropped += response.batch_item_failures.len() as u32;
        assert!(delivered < 1 << 18, "the loop did not stop");
    }
    let outcome = Outcome {
        runs: *runs.lock().unwrap(),
        sent: *sent.lock().unwrap(),
        dropped,
        reasons: reasons.lock().unwrap().clone(),
    };
    // Every message accounted for: the seed and each one sent either ran
    // or was dropped (reported for the DLQ).
    assert_eq!(
        outcome.runs + outcome.dropped,
        outcome.sent + 1,
        "{outcome:?}"
    );
    outcome
}

#[tokio::test]
async fn a_fan_out_loop_runs_at_most_its_budget() {
    for budget in [1, 2, 7, 20, 100] {
        let outcome = fan_out(Some(budget), 1000, 2, false).await;
        assert!(outcome.runs <= budget, "budget {budget}: {outcome:?}");
        assert!(outcome.runs >= 1);
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
        assert_eq!(outcome.runs, budget, "{outcome:?}");
        assert_eq!(outcome.dropped, budget + 1, "{outcome:?}");
    }
    // Ten sends per run, declared.
    let outcome = fan_out(Some(50), 1000, 10, true).await;
    assert_eq!(outcome.runs, 50, "{outcome:?}");
}

#[tokio::test]
async fn without_a_budget_only_depth_stops_the_fan_out() {
    // The same loop with the budget off and a depth of 4: 1 + 2 + 4 + 8 runs
    // and 16 drops, as measured on ministack; the budget of 20 beside it.
    let outcome = fan_out(None, 4, 2, false).await;
    assert_eq!((outcome.runs, outcome.dropped), (15, 16), "{outcome:?}");
    assert!(outcome.reasons.iter().all(|r| *r == Limit::Depth));
    let outcome = fan_out(None, 16, 2, false).await;
    assert_eq!(outcome.runs, (1 << 16) - 1, "{outcome:?}");
    let outcome = fan_out(Some(20), 16, 2, false).await;
    assert!(outcome.runs <= 20, "{outcome:?}");
}
