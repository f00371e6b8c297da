//! An in-process queue loop through the real layer: each message a guarded
//! handler sends back (our attribute written by `stamp_current`, the carrier
//! a custom producer uses) is delivered as the next record, one record per
//! invocation, until none is left. Every message is accounted for.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use lambda_loop_guard::carrier::MessageAttribute;
use lambda_loop_guard::chain::{declare_sends, stamp_current};
use lambda_loop_guard::error::Limit;
use lambda_loop_guard::exact_budget::ExactBudget;
use lambda_loop_guard::metric::MetricSink;
use lambda_loop_guard::{for_record, Chain, Lineage, LoopGuardConfig, LoopGuardLayer};
use lambda_runtime::{Context, LambdaEvent};
use tower::{service_fn, Layer, Service, ServiceExt};

pub type Attributes = HashMap<String, SqsMessageAttribute>;

/// What one loop did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Handler runs, with the lineage each run sent on.
    pub runs: Vec<Lineage>,
    /// Messages the handler sent.
    pub sent: u32,
    /// Records the guard dropped (reported as batch item failures).
    pub dropped: u32,
    /// The reason of each drop.
    pub reasons: Vec<Limit>,
}

/// How the looping function behaves.
#[derive(Debug, Clone, Copy)]
pub struct Behaviour {
    /// Messages sent back per record.
    pub fan_out: u32,
    /// Whether each run declares its sends first.
    pub declare: bool,
    /// How many times the handler scopes each record (`for_record`), each
    /// scope sending `fan_out` messages.
    pub scopes: u32,
}

/// Delivers `seeds`, then whatever the guarded function sends back, until
/// the queue is empty.
pub async fn run_queue_loop(
    config: LoopGuardConfig,
    behaviour: Behaviour,
    seeds: Vec<Attributes>,
    sink: impl MetricSink,
) -> Outcome {
    run_queue_loop_counted(config, None, behaviour, seeds, sink).await
}

/// [`run_queue_loop`], with the chain budget counted exactly in `exact`'s
/// store when given.
pub async fn run_queue_loop_counted(
    config: LoopGuardConfig,
    exact: Option<ExactBudget>,
    behaviour: Behaviour,
    seeds: Vec<Attributes>,
    sink: impl MetricSink,
) -> Outcome {
    let queue: Arc<Mutex<VecDeque<Attributes>>> = Arc::new(Mutex::new(seeds.into()));
    let seeds = queue.lock().unwrap().len() as u32;
    let runs: Arc<Mutex<Vec<Lineage>>> = Arc::default();
    let sent = Arc::new(Mutex::new(0u32));
    let reasons: Arc<Mutex<Vec<Limit>>> = Arc::default();
    let seen = reasons.clone();
    let layer = LoopGuardLayer::new(config)
        .metric_sink(sink)
        .on_drop(move |drop| seen.lock().unwrap().push(drop.reason));
    let handler = {
        let (queue, runs, sent) = (queue.clone(), runs.clone(), sent.clone());
        service_fn(move |event: LambdaEvent<SqsEvent>| {
            let (queue, runs, sent) = (queue.clone(), runs.clone(), sent.clone());
            async move {
                for record in &event.payload.records {
                    for scope in 0..behaviour.scopes.max(1) {
                        for_record(record, async {
                            if scope == 0 {
                                let lineage =
                                    Chain::current().map(|c| *c.lineage()).unwrap_or_default();
                                runs.lock().unwrap().push(lineage);
                            }
                            if behaviour.declare && scope == 0 {
                                declare_sends(behaviour.fan_out * behaviour.scopes.max(1));
                            }
                            for _ in 0..behaviour.fan_out {
                                let mut attributes = Attributes::new();
                                stamp_current(&MessageAttribute::default(), &mut attributes)
                                    .unwrap();
                                queue.lock().unwrap().push_back(attributes);
                                *sent.lock().unwrap() += 1;
                            }
                        })
                        .await;
                    }
                }
                Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
            }
        })
    };
    let dropped = match exact {
        Some(exact) => deliver(layer.with_exact_budget(exact).layer(handler), &queue).await,
        None => deliver(layer.layer(handler), &queue).await,
    };
    let outcome = Outcome {
        runs: runs.lock().unwrap().clone(),
        sent: *sent.lock().unwrap(),
        dropped,
        reasons: reasons.lock().unwrap().clone(),
    };
    // Every message accounted for: each seed and each one sent either ran
    // or was dropped (reported for the DLQ).
    assert_eq!(
        outcome.runs.len() as u32 + outcome.dropped,
        outcome.sent + seeds,
        "{outcome:?}"
    );
    outcome
}

/// Delivers the queue's messages to `guarded`, one per invocation, until
/// none is left; returns how many it reported as batch item failures.
async fn deliver<G>(guarded: G, queue: &Mutex<VecDeque<Attributes>>) -> u32
where
    G: Service<LambdaEvent<SqsEvent>, Response = SqsBatchResponse> + Clone,
    G::Error: std::fmt::Debug,
{
    let mut dropped = 0;
    let mut delivered = 0u32;
    loop {
        let Some(attributes) = queue.lock().unwrap().pop_front() else {
            break;
        };
        delivered += 1;
        let mut message = SqsMessage::default();
        message.message_id = Some(format!("m-{delivered}"));
        message.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:loop".into());
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
    dropped
}

/// A message carrying `value` in our attribute.
pub fn carrying(value: &str) -> Attributes {
    let mut attribute = SqsMessageAttribute::default();
    attribute.data_type = Some("String".into());
    attribute.string_value = Some(value.to_owned());
    Attributes::from([("loop-guard".to_owned(), attribute)])
}
