//! The exact chain budget through the real layer, with its store in memory:
//! a fan-out tree runs exactly its budget whatever its shape, batches claim
//! per record, ordered batches are cut, and a failing store never lets work
//! run silently. The DynamoDB store itself is tested on moto
//! (`tests/moto_sources/exact_budget.rs`).

#[path = "support/queue_loop.rs"]
mod queue_loop;
// One test binary for the in-process chain tests: each binary links the
// whole dependency tree.
#[path = "exact_budget/chain_ids.rs"]
mod chain_ids;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_loop_guard::error::{Limit, GUARD_UNAVAILABLE_ERROR_TYPE};
use lambda_loop_guard::exact_budget::{
    ChainBudgetStore, ClaimFuture, ExactBudget, OnStoreError, ReleaseFuture,
};
use lambda_loop_guard::metric::EXACT_BUDGET_UNAVAILABLE_METRIC;
use lambda_loop_guard::testing::{context, context_with, sqs_event, sqs_message, CapturedMetrics};
use lambda_loop_guard::{
    ChainId, FunctionId, Lineage, LoopGuardConfig, LoopGuardError, LoopGuardLayer, Mode,
};
use lambda_runtime::{Diagnostic, LambdaEvent};
use tower::{service_fn, Layer, ServiceExt};

use queue_loop::{run_queue_loop, run_queue_loop_counted, Attributes, Behaviour};

/// Chains' runs in memory: the same contract as the DynamoDB store.
#[derive(Debug, Clone, Default)]
struct MemoryStore {
    runs: Arc<Mutex<HashMap<ChainId, u32>>>,
    calls: Arc<AtomicU32>,
    failing: Arc<AtomicBool>,
}

impl ChainBudgetStore for MemoryStore {
    fn claim(&self, chain: ChainId, runs: u32, limit: u32) -> ClaimFuture<'_> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            assert!(runs >= 1 && limit >= 1, "claim({runs}, {limit})");
            if self.failing.load(Ordering::SeqCst) {
                return Err("the store is down".into());
            }
            let mut all = self.runs.lock().unwrap();
            let recorded = all.entry(chain).or_default();
            let granted = runs.min(limit.saturating_sub(*recorded));
            *recorded += granted;
            Ok(granted)
        })
    }

    fn release(&self, chain: ChainId, runs: u32) -> ReleaseFuture<'_> {
        Box::pin(async move {
            let mut all = self.runs.lock().unwrap();
            let recorded = all.get_mut(&chain).expect("released what was claimed");
            assert!(
                runs >= 1 && runs <= *recorded,
                "release({runs}) of {recorded}"
            );
            *recorded -= runs;
            Ok(())
        })
    }
}

impl MemoryStore {
    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }

    fn recorded(&self, chain: ChainId) -> u32 {
        self.runs.lock().unwrap().get(&chain).copied().unwrap_or(0)
    }
}

fn config(budget: u32) -> LoopGuardConfig {
    LoopGuardConfig::builder()
        .function_identity("fan-out")
        .max_depth(1000)
        .max_hops(65_535)
        .chain_budget(budget)
        .build()
        .unwrap()
}

const UNDECLARED: Behaviour = Behaviour {
    fan_out: 2,
    declare: false,
    scopes: 1,
};

#[tokio::test]
async fn an_undeclared_fan_out_runs_exactly_its_budget() {
    for budget in [1, 2, 7, 20, 100] {
        let store = MemoryStore::default();
        let exact = ExactBudget::new(store.clone());
        let outcome = run_queue_loop_counted(
            config(budget),
            Some(exact),
            UNDECLARED,
            vec![Attributes::new()],
            (),
        )
        .await;
        assert_eq!(outcome.runs.len() as u32, budget, "{outcome:?}");
        // Each run sent two: all beyond the budget were dropped.
        assert_eq!(outcome.sent, 2 * budget);
        assert_eq!(outcome.dropped, outcome.sent + 1 - budget);
        assert!(outcome.reasons.iter().all(|r| *r == Limit::ChainBudget));
        // One chain; every send carried the whole budget, not a share.
        let chain = outcome.runs[0].chain().unwrap();
        assert!(outcome
            .runs
            .iter()
            .all(|l| l.chain() == Some(chain) && l.budget() == Some(budget)));
        // The root run made no claim; every later invocation made one,
        // except with nothing to claim (a budget of 1).
        let delivered = outcome.runs.len() as u32 + outcome.dropped;
        let claims = if budget == 1 { 0 } else { delivered - 1 };
        assert_eq!(store.calls(), claims, "budget {budget}");
        assert_eq!(store.recorded(chain), budget - 1);
    }
}

#[tokio::test]
async fn shared_out_the_same_tree_stops_early() {
    // The comparison the guide makes: without the store, undeclared sends
    // halve the budget and the same loop stops well short of it.
    let outcome = run_queue_loop(config(20), UNDECLARED, vec![Attributes::new()], ()).await;
    assert!(outcome.runs.len() < 20, "{outcome:?}");
}

/// A lineage arriving in `chain` with `budget`, after one run upstream.
fn in_chain(chain: u64, budget: u32) -> Lineage {
    Lineage::new()
        .with_budget(ChainId::from_u64(chain).unwrap(), budget)
        .record_run(FunctionId::from_identity("upstream"))
        .with_budget(ChainId::from_u64(chain).unwrap(), budget)
}

/// Runs `event` through a guard with `store`; returns the response (or
/// error), the ids the handler saw, and the drops reported.
async fn guard_batch(
    store: &MemoryStore,
    policy: OnStoreError,
    mode: Mode,
    event: SqsEvent,
) -> (
    Result<SqsBatchResponse, LoopGuardError<lambda_runtime::Error>>,
    Vec<String>,
    Vec<Limit>,
    CapturedMetrics,
) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let reasons: Arc<Mutex<Vec<Limit>>> = Arc::default();
    let metrics = CapturedMetrics::default();
    let config = LoopGuardConfig::builder()
        .function_identity("worker")
        .chain_budget(10)
        .mode(mode)
        .build()
        .unwrap();
    let hook = reasons.clone();
    let layer = LoopGuardLayer::new(config)
        .metric_sink(metrics.clone())
        .on_drop(move |d| hook.lock().unwrap().push(d.reason))
        .with_exact_budget(ExactBudget::new(store.clone()).on_store_error(policy));
    let handler = {
        let seen = seen.clone();
        service_fn(move |event: LambdaEvent<SqsEvent>| {
            let seen = seen.clone();
            async move {
                let ids = event.payload.records.iter();
                seen.lock()
                    .unwrap()
                    .extend(ids.map(|r| r.message_id.clone().unwrap()));
                Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
            }
        })
    };
    let result = layer
        .layer(handler)
        .oneshot(LambdaEvent::new(event, context()))
        .await;
    let seen = seen.lock().unwrap().clone();
    let reasons = reasons.lock().unwrap().clone();
    (result, seen, reasons, metrics)
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<String> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn a_batch_claims_one_run_per_record_in_one_call_per_chain() {
    let store = MemoryStore::default();
    let (a, b) = (in_chain(0xa, 4), in_chain(0xb, 10));
    // Chain a has 3 runs left in the store (its budget of 4 minus its root).
    let event = sqs_event(vec![
        sqs_message("a1", Some(&a)),
        sqs_message("b1", Some(&b)),
        sqs_message("a2", Some(&a)),
        sqs_message("fresh", None),
        sqs_message("a3", Some(&a)),
        sqs_message("a4", Some(&a)),
        sqs_message("a5", Some(&a)),
    ]);
    let (result, seen, reasons, metrics) =
        guard_batch(&store, OnStoreError::Retry, Mode::Terminate, event).await;
    let response = result.unwrap();
    assert_eq!(seen, ["a1", "b1", "a2", "fresh", "a3"]);
    assert_eq!(failed_ids(&response), ["a4", "a5"]);
    assert_eq!(reasons, [Limit::ChainBudget, Limit::ChainBudget]);
    assert_eq!(metrics.drops(), 2);
    assert_eq!(store.calls(), 2, "one claim per chain");
    assert_eq!(store.recorded(ChainId::from_u64(0xa).unwrap()), 3);
    assert_eq!(store.recorded(ChainId::from_u64(0xb).unwrap()), 1);
}

/// `records` as a FIFO queue delivers them.
fn fifo(mut records: Vec<aws_lambda_events::event::sqs::SqsMessage>) -> SqsEvent {
    for record in &mut records {
        record.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:orders.fifo".into());
    }
    sqs_event(records)
}

#[tokio::test]
async fn an_ordered_batch_is_cut_at_its_first_record_past_the_budget() {
    let store = MemoryStore::default();
    // Chain a: a budget of 3, so 2 runs after its root; three records.
    let a = in_chain(0xa, 3);
    let event = fifo(vec![
        sqs_message("m1", Some(&a)),
        sqs_message("m2", None),
        sqs_message("m3", Some(&a)),
        sqs_message("m4", Some(&a)),
        sqs_message("m5", None),
    ]);
    let (result, seen, reasons, _) =
        guard_batch(&store, OnStoreError::Retry, Mode::Terminate, event).await;
    assert_eq!(seen, ["m1", "m2", "m3"]);
    assert_eq!(failed_ids(&result.unwrap()), ["m4", "m5"]);
    assert_eq!(reasons, [Limit::ChainBudget], "only m4 is past the budget");
    assert_eq!(store.calls(), 1);
    assert_eq!(store.recorded(ChainId::from_u64(0xa).unwrap()), 2);
}

#[tokio::test]
async fn runs_claimed_for_records_cut_or_never_run_are_given_back() {
    // Cut: m3 was granted a run of chain b, but comes after m2, whose chain
    // is spent: b gets m3's run back, so its retry does not spend it twice.
    let store = MemoryStore::default();
    let (b, spent) = (in_chain(0xb, 10), in_chain(0xc, 2));
    store
        .runs
        .lock()
        .unwrap()
        .insert(ChainId::from_u64(0xc).unwrap(), 1);
    let event = fifo(vec![
        sqs_message("m1", Some(&b)),
        sqs_message("m2", Some(&spent)),
        sqs_message("m3", Some(&b)),
    ]);
    let (result, seen, _, _) =
        guard_batch(&store, OnStoreError::Retry, Mode::Terminate, event).await;
    assert_eq!(seen, ["m1"]);
    assert_eq!(failed_ids(&result.unwrap()), ["m2", "m3"]);
    assert_eq!(
        store.recorded(ChainId::from_u64(0xb).unwrap()),
        1,
        "m1's run only"
    );

    // Never run: a response that cannot report records fails the whole
    // invocation (the default policy), and every claimed run goes back.
    let store = MemoryStore::default();
    store
        .runs
        .lock()
        .unwrap()
        .insert(ChainId::from_u64(0xc).unwrap(), 1);
    let layer = LoopGuardLayer::new(config(10))
        .metric_sink(())
        .with_exact_budget(ExactBudget::new(store.clone()));
    let handler =
        service_fn(|_: LambdaEvent<SqsEvent>| async { Ok::<(), lambda_runtime::Error>(()) });
    let event = sqs_event(vec![
        sqs_message("m1", Some(&b)),
        sqs_message("m2", Some(&spent)),
    ]);
    let error = layer
        .layer(handler)
        .oneshot(LambdaEvent::new(event, context()))
        .await
        .unwrap_err();
    assert!(error.as_dropped().is_some());
    assert_eq!(store.recorded(ChainId::from_u64(0xb).unwrap()), 0);
    assert_eq!(
        store.recorded(ChainId::from_u64(0xc).unwrap()),
        1,
        "nothing granted to c"
    );
}

#[tokio::test]
async fn a_failing_store_cuts_an_ordered_batch_for_retry() {
    let store = MemoryStore::default();
    store.failing.store(true, Ordering::SeqCst);
    let a = in_chain(0xa, 10);
    let event = fifo(vec![
        sqs_message("m1", None),
        sqs_message("m2", Some(&a)),
        sqs_message("m3", None),
    ]);
    let (result, seen, reasons, metrics) =
        guard_batch(&store, OnStoreError::Retry, Mode::Terminate, event).await;
    assert_eq!(seen, ["m1"]);
    assert_eq!(failed_ids(&result.unwrap()), ["m2", "m3"]);
    assert!(reasons.is_empty(), "not loops");
    assert_eq!((metrics.drops(), unavailable_lines(&metrics)), (0, vec![1]));
}

#[tokio::test]
async fn observe_mode_runs_everything_when_the_store_fails() {
    let store = MemoryStore::default();
    store.failing.store(true, Ordering::SeqCst);
    let a = in_chain(0xa, 10);
    let event = fifo(vec![
        sqs_message("m1", Some(&a)),
        sqs_message("m2", Some(&a)),
    ]);
    let (result, seen, _, metrics) =
        guard_batch(&store, OnStoreError::Retry, Mode::Observe, event).await;
    assert!(failed_ids(&result.unwrap()).is_empty());
    assert_eq!(seen, ["m1", "m2"]);
    assert_eq!(unavailable_lines(&metrics), [1], "still reported");
}

#[tokio::test]
async fn observe_mode_reports_a_spent_budget_and_runs_the_record() {
    let store = MemoryStore::default();
    let spent = in_chain(0xc, 1);
    let event = sqs_event(vec![sqs_message("m1", Some(&spent))]);
    let (result, seen, reasons, metrics) =
        guard_batch(&store, OnStoreError::Retry, Mode::Observe, event).await;
    assert!(failed_ids(&result.unwrap()).is_empty());
    assert_eq!(seen, ["m1"]);
    assert_eq!(reasons, [Limit::ChainBudget]);
    assert_eq!((metrics.drops(), metrics.observed()), (0, 1));
}

fn unavailable_lines(metrics: &CapturedMetrics) -> Vec<u64> {
    metrics
        .json()
        .iter()
        .filter_map(|v| v.get(EXACT_BUDGET_UNAVAILABLE_METRIC)?.as_u64())
        .collect()
}

#[tokio::test]
async fn a_failing_store_leaves_the_chains_records_to_be_retried() {
    let store = MemoryStore::default();
    store.failing.store(true, Ordering::SeqCst);
    let a = in_chain(0xa, 10);
    let event = sqs_event(vec![
        sqs_message("a1", Some(&a)),
        sqs_message("fresh", None),
        sqs_message("a2", Some(&a)),
    ]);
    let (result, seen, reasons, metrics) =
        guard_batch(&store, OnStoreError::Retry, Mode::Terminate, event).await;
    // Reported for retry, not run, not counted as loops.
    assert_eq!(failed_ids(&result.unwrap()), ["a1", "a2"]);
    assert_eq!(seen, ["fresh"]);
    assert!(reasons.is_empty());
    assert_eq!(metrics.drops(), 0);
    assert_eq!(unavailable_lines(&metrics), [1]);
}

#[tokio::test]
async fn a_failing_store_with_the_run_policy_runs_them_loudly() {
    let store = MemoryStore::default();
    store.failing.store(true, Ordering::SeqCst);
    let (a, b) = (in_chain(0xa, 10), in_chain(0xb, 10));
    let event = sqs_event(vec![
        sqs_message("a1", Some(&a)),
        sqs_message("b1", Some(&b)),
    ]);
    let (result, seen, _, metrics) =
        guard_batch(&store, OnStoreError::Run, Mode::Terminate, event).await;
    assert!(failed_ids(&result.unwrap()).is_empty());
    assert_eq!(seen, ["a1", "b1"]);
    assert_eq!(
        unavailable_lines(&metrics),
        [2],
        "two chains' claims failed"
    );
}

#[tokio::test]
async fn a_direct_invocation_fails_for_retry_when_the_store_fails() {
    let store = MemoryStore::default();
    store.failing.store(true, Ordering::SeqCst);
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let layer = LoopGuardLayer::new(config(10))
        .metric_sink(())
        .with_exact_budget(ExactBudget::new(store.clone()));
    let handler = service_fn(move |_: LambdaEvent<serde_json::Value>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, lambda_runtime::Error>(serde_json::Value::Null) }
    });
    let guarded = layer.layer(handler);
    let error = guarded
        .clone()
        .oneshot(LambdaEvent::new(
            serde_json::json!({}),
            context_with(&in_chain(0xa, 10)),
        ))
        .await
        .unwrap_err();
    let LoopGuardError::Unavailable(unavailable) = &error else {
        panic!("{error:?}");
    };
    assert!(unavailable.reason().contains("the store is down"));
    let diagnostic = Diagnostic::from(error);
    assert_eq!(diagnostic.error_type, GUARD_UNAVAILABLE_ERROR_TYPE);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    // A chain starting here needs no claim: it runs, store down or not.
    guarded
        .oneshot(LambdaEvent::new(serde_json::json!({}), context()))
        .await
        .unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(store.calls(), 1);
}
