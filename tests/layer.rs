//! The layer end to end in-process: real `LambdaEvent`s, real
//! `aws_lambda_events` types, `oneshot` through `ServiceBuilder`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sns::{MessageAttribute, SnsEvent, SnsRecord};
use aws_lambda_events::event::sqs::{
    BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute,
};
use lambda_loop_guard::carrier::KEY;
use lambda_loop_guard::chain::Chain;
use lambda_loop_guard::metric::{DROPPED_METRIC, OBSERVED_METRIC};
use lambda_loop_guard::trace_header::TraceHeader;
use lambda_loop_guard::{
    BatchDropPolicy, EventSource, FunctionId, GuardedEvent, Lineage, LoopGuardConfig,
    LoopGuardError, LoopGuardLayer, Mode,
};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use serde_json::Value;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};

const ME: &str = "self-looping-fn";

fn me() -> FunctionId {
    FunctionId::from_identity(ME)
}

/// A lineage in which this function already ran `n` times.
fn ran(n: u16) -> Lineage {
    ran_as(me(), n)
}

/// A lineage in which `id` already ran `n` times.
fn ran_as(id: FunctionId, n: u16) -> Lineage {
    (0..n).fold(Lineage::new(), |l, _| l.record_run(id))
}

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn sink(&self) -> impl Fn(&str) + Send + Sync + 'static {
        let lines = self.0.clone();
        move |line: &str| lines.lock().unwrap().push(line.to_owned())
    }
    fn json(&self) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn layer(mode: Mode, max_depth: u32, lines: &Lines) -> LoopGuardLayer {
    let config = LoopGuardConfig::builder()
        .function_identity(ME)
        .max_depth(max_depth)
        .mode(mode)
        .build()
        .unwrap();
    LoopGuardLayer::new(config).metric_sink(lines.sink())
}

fn context_with(lineage: Option<Lineage>) -> Context {
    let mut ctx = Context::default();
    ctx.request_id = "req-42".into();
    let header = TraceHeader::parse(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    )
    .unwrap();
    ctx.xray_trace_id = Some(match lineage {
        Some(l) => header.with_lineage(&l),
        None => header.as_str().to_owned(),
    });
    ctx
}

fn sqs_record(id: &str, lineage: Option<Lineage>) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.into());
    m.event_source = Some("aws:sqs".into());
    m.body = Some(format!("payload {id}"));
    if let Some(l) = lineage {
        let mut a = SqsMessageAttribute::default();
        a.data_type = Some("String".into());
        a.string_value = Some(l.to_string());
        m.message_attributes.insert(KEY.into(), a);
    }
    m
}

/// `a` looping, a looping record without a message id, and a fresh `b`.
fn looping_batch_with_an_anonymous_record() -> SqsEvent {
    let mut anonymous = sqs_record("x", Some(ran(5)));
    anonymous.message_id = None;
    sqs_event(vec![
        sqs_record("a", Some(ran(7))),
        anonymous,
        sqs_record("b", None),
    ])
}

fn sqs_event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = records;
    e
}

#[tokio::test]
async fn direct_invoke_runs_10_times_then_drops_at_default_threshold() {
    let lines = Lines::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let config = LoopGuardConfig::builder()
        .build_from_env_source(|k| (k == "AWS_LAMBDA_FUNCTION_NAME").then(|| ME.to_string()))
        .unwrap();
    assert_eq!(config.max_depth(), 10, "below AWS's ~16");
    let guard = LoopGuardLayer::new(config).metric_sink(lines.sink());
    let svc = ServiceBuilder::new().layer(guard).service_fn({
        let calls = calls.clone();
        move |_: LambdaEvent<Value>| {
            calls.fetch_add(1, Ordering::SeqCst);
            // Hand the outgoing lineage back, as the next hop would receive it.
            async {
                Ok::<_, lambda_runtime::Error>(Chain::current().unwrap().lineage().to_string())
            }
        }
    });

    // A real self-loop: each run's outgoing lineage is the next run's input.
    let mut incoming: Option<Lineage> = None;
    let mut drops = 0;
    for _ in 0..20 {
        match svc
            .clone()
            .oneshot(LambdaEvent::new(Value::Null, context_with(incoming)))
            .await
        {
            Ok(outgoing) => incoming = Some(outgoing.parse().unwrap()),
            Err(e) => {
                let dropped = e.as_dropped().expect("a drop, not a handler error");
                assert_eq!(dropped.depth(), 11);
                assert_eq!(dropped.max_depth(), 10);
                assert_eq!(dropped.source(), EventSource::Invoke);
                assert_eq!(
                    dropped.chain_root(),
                    Some("1-5759e988-bd862e3fe1be46a994272793")
                );
                drops += 1;
            }
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    assert_eq!(drops, 10);
    assert_eq!(incoming.unwrap().count(me()), 10);
    assert_eq!(incoming.unwrap().hops(), 10);

    let emitted = lines.json();
    assert_eq!(emitted.len(), 10, "one EMF line per drop");
    for v in &emitted {
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "LoopGuard");
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            DROPPED_METRIC
        );
        assert_eq!(v[DROPPED_METRIC], 1);
        assert_eq!(v["FunctionName"], ME);
        assert_eq!(v["Source"], "invoke");
        assert_eq!(v["Depth"], 11);
        assert_eq!(v["RequestId"], "req-42");
        assert_eq!(v["ChainRoot"], "1-5759e988-bd862e3fe1be46a994272793");
        assert!(v["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    }
}

#[tokio::test]
async fn drop_error_becomes_a_recursive_invocation_diagnostic() {
    let lines = Lines::default();
    let svc = layer(Mode::Terminate, 3, &lines).layer(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<_, lambda_runtime::Error>(())
    }));
    let err = svc
        .oneshot(LambdaEvent::new(Value::Null, context_with(Some(ran(3)))))
        .await
        .unwrap_err();
    let diagnostic: Diagnostic = err.into();
    assert_eq!(
        diagnostic.error_type,
        lambda_loop_guard::error::RECURSIVE_INVOCATION_ERROR_TYPE
    );
    assert!(diagnostic.error_message.contains("run 4"));
    assert!(diagnostic.error_message.contains("LOOP_GUARD_MAX_DEPTH"));
}

#[tokio::test]
async fn handler_errors_pass_through_untouched() {
    let lines = Lines::default();
    let svc = layer(Mode::Terminate, 3, &lines).layer(service_fn(|_: LambdaEvent<Value>| async {
        Err::<(), _>(String::from("handler says no"))
    }));
    let err = svc
        .oneshot(LambdaEvent::new(Value::Null, context_with(None)))
        .await
        .unwrap_err();
    assert_eq!(err.into_handler_error().as_deref(), Some("handler says no"));
    assert!(lines.json().is_empty());
}

type Seen = Arc<Mutex<Vec<Vec<String>>>>;

fn recording_batch_handler(
    seen: &Seen,
) -> impl Service<
    LambdaEvent<SqsEvent>,
    Response = SqsBatchResponse,
    Error = lambda_runtime::Error,
    Future = impl Send,
> + Clone {
    let seen = seen.clone();
    service_fn(move |e: LambdaEvent<SqsEvent>| {
        let seen = seen.clone();
        async move {
            let ids: Vec<String> = e
                .payload
                .records
                .iter()
                .filter_map(|r| r.message_id.clone())
                .collect();
            seen.lock().unwrap().push(ids);
            let mut resp = SqsBatchResponse::default();
            // The handler reports a failure of its own, which must be kept.
            if e.payload
                .records
                .iter()
                .any(|r| r.message_id.as_deref() == Some("ok-2"))
            {
                let mut f = BatchItemFailure::default();
                f.item_identifier = "ok-2".into();
                resp.batch_item_failures.push(f);
            }
            Ok(resp)
        }
    })
}

fn failure_ids(resp: &SqsBatchResponse) -> Vec<&str> {
    let mut ids: Vec<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn sqs_batch_drops_only_looping_records_and_reports_them() {
    let lines = Lines::default();
    let seen: Seen = Default::default();
    let svc = layer(Mode::Terminate, 5, &lines).layer(recording_batch_handler(&seen));
    let event = sqs_event(vec![
        sqs_record("ok-1", None),
        sqs_record("loop-1", Some(ran(5))),
        sqs_record("ok-2", Some(ran(4))),
        sqs_record("loop-2", Some(ran(9))),
    ]);
    let resp = svc
        .oneshot(LambdaEvent::new(event, context_with(None)))
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![vec!["ok-1".to_string(), "ok-2".to_string()]]
    );
    assert_eq!(failure_ids(&resp), vec!["loop-1", "loop-2", "ok-2"]);
    let emitted = lines.json();
    assert_eq!(emitted.len(), 2);
    let mut drops: Vec<(String, u64)> = emitted
        .iter()
        .map(|v| {
            (
                v["MessageId"].as_str().unwrap().to_string(),
                v["Depth"].as_u64().unwrap(),
            )
        })
        .collect();
    drops.sort();
    assert_eq!(drops, vec![("loop-1".into(), 6), ("loop-2".into(), 10)]);
    assert!(emitted.iter().all(|v| v["Source"] == "sqs"));
}

#[tokio::test]
async fn sqs_batch_of_only_looping_records_never_reaches_the_handler() {
    let lines = Lines::default();
    let seen: Seen = Default::default();
    let svc = layer(Mode::Terminate, 2, &lines).layer(recording_batch_handler(&seen));
    let event = sqs_event(vec![
        sqs_record("l1", Some(ran(2))),
        sqs_record("l2", Some(ran(3))),
    ]);
    let resp = svc
        .oneshot(LambdaEvent::new(event, context_with(None)))
        .await
        .unwrap();
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(failure_ids(&resp), vec!["l1", "l2"]);
}

#[tokio::test]
async fn sqs_batch_without_batch_response_fails_the_invocation_by_default() {
    let lines = Lines::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        service_fn(move |_: LambdaEvent<SqsEvent>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, lambda_runtime::Error>(()) }
        })
    };
    let svc = layer(Mode::Terminate, 2, &lines).layer(handler);
    let event = sqs_event(vec![
        sqs_record("ok", None),
        sqs_record("loop", Some(ran(2))),
    ]);
    let err = svc
        .oneshot(LambdaEvent::new(event, context_with(None)))
        .await
        .unwrap_err();
    assert!(matches!(err, LoopGuardError::Dropped(_)));
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing half-processed");
}

#[tokio::test]
async fn discard_policy_runs_the_rest_and_is_explicit() {
    let lines = Lines::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let seen = seen.clone();
        service_fn(move |e: LambdaEvent<SqsEvent>| {
            seen.lock().unwrap().extend(
                e.payload
                    .records
                    .iter()
                    .filter_map(|r| r.message_id.clone()),
            );
            async { Ok::<_, lambda_runtime::Error>(()) }
        })
    };
    let svc = layer(Mode::Terminate, 2, &lines)
        .batch_drop_policy(BatchDropPolicy::DiscardLoopingRecords)
        .layer(handler);
    let event = sqs_event(vec![
        sqs_record("ok", None),
        sqs_record("loop", Some(ran(2))),
    ]);
    svc.oneshot(LambdaEvent::new(event, context_with(None)))
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), vec!["ok".to_string()]);
    assert_eq!(
        lines.json().len(),
        1,
        "the discarded record is still counted"
    );
}

/// A handler response of the test's own: the lineage the handler ran under.
struct RanUnder(Lineage);

impl lambda_loop_guard::GuardedResponse for RanUnder {}

#[tokio::test]
async fn handler_sees_the_max_lineage_of_the_records_it_runs() {
    let lines = Lines::default();
    let svc =
        layer(Mode::Terminate, 5, &lines).layer(service_fn(|_: LambdaEvent<SqsEvent>| async {
            Ok::<_, lambda_runtime::Error>(RanUnder(*Chain::current().unwrap().lineage()))
        }));
    let other = FunctionId::from_identity("upstream");
    let mut upstream = Lineage::new().record_run(other).record_run(other);
    upstream.merge(&ran(1));
    let event = sqs_event(vec![
        sqs_record("a", Some(upstream)),
        sqs_record("b", Some(ran(3))),
        sqs_record("c", Some(ran(7))),
    ]);
    // Record c loops and is removed (SqsBatchResponse is not used, so the
    // invocation would fail): use the discard policy to see the chain.
    let svc = svc;
    let err = svc
        .clone()
        .oneshot(LambdaEvent::new(event.clone(), context_with(None)))
        .await;
    assert!(err.is_err());
    let svc = layer(Mode::Terminate, 5, &lines)
        .batch_drop_policy(BatchDropPolicy::DiscardLoopingRecords)
        .layer(service_fn(|_: LambdaEvent<SqsEvent>| async {
            Ok::<_, lambda_runtime::Error>(RanUnder(*Chain::current().unwrap().lineage()))
        }));
    let outgoing = svc
        .oneshot(LambdaEvent::new(event, context_with(None)))
        .await
        .unwrap();
    let RanUnder(outgoing) = outgoing;
    assert_eq!(outgoing.count(me()), 4, "max of 1 and 3, plus this run");
    assert_eq!(outgoing.count(other), 2);
    assert_eq!(outgoing.hops(), 4);
}

fn sns_event(lineage: Option<Lineage>) -> SnsEvent {
    let mut record = SnsRecord::default();
    record.event_source = "aws:sns".into();
    record.sns.message_id = "sns-msg".into();
    if let Some(l) = lineage {
        let mut a = MessageAttribute::default();
        a.data_type = "String".into();
        a.value = l.to_string();
        record.sns.message_attributes.insert(KEY.into(), a);
    }
    let mut e = SnsEvent::default();
    e.records = vec![record];
    e
}

#[tokio::test]
async fn sns_invocation_fails_when_looping() {
    let lines = Lines::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        service_fn(move |_: LambdaEvent<SnsEvent>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, lambda_runtime::Error>(()) }
        })
    };
    let svc = layer(Mode::Terminate, 4, &lines).layer(handler);
    svc.clone()
        .oneshot(LambdaEvent::new(
            sns_event(Some(ran(3))),
            Context::default(),
        ))
        .await
        .unwrap();
    let err = svc
        .clone()
        .oneshot(LambdaEvent::new(
            sns_event(Some(ran(4))),
            Context::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.as_dropped().unwrap().source(), EventSource::Sns);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(lines.json()[0]["Source"], "sns");
    assert_eq!(lines.json()[0]["MessageId"], "sns-msg");
}

#[tokio::test]
async fn a_source_with_its_own_limit_runs_deeper_while_others_keep_the_default() {
    const REQUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:deliberate-requeue";
    const OTHER: &str = "arn:aws:sqs:us-east-1:123456789012:orders";
    let lines = Lines::default();
    let seen: Seen = Default::default();
    let config = LoopGuardConfig::builder()
        .function_identity(ME)
        .max_depth(16)
        .source_max_depth(REQUEUE, 40)
        .build()
        .unwrap();
    // Runs triggered through the requeue queue count under an id of their own.
    let requeue_id = config.limit_for(Some(REQUEUE)).0;
    assert_ne!(requeue_id, me());
    let svc = LoopGuardLayer::new(config)
        .metric_sink(lines.sink())
        .layer(recording_batch_handler(&seen));
    let from = |id: &str, arn: &str, runs: u16| {
        let runner = if arn == REQUEUE { requeue_id } else { me() };
        let mut r = sqs_record(id, Some(ran_as(runner, runs)));
        r.event_source_arn = Some(arn.into());
        r
    };
    let event = sqs_event(vec![
        from("requeue-30", REQUEUE, 30),
        from("requeue-40", REQUEUE, 40),
        from("orders-16", OTHER, 16),
        from("orders-15", OTHER, 15),
    ]);
    let resp = svc
        .oneshot(LambdaEvent::new(event, context_with(None)))
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![vec!["requeue-30".to_string(), "orders-15".to_string()]]
    );
    assert_eq!(failure_ids(&resp), vec!["orders-16", "requeue-40"]);
    let mut limits: Vec<(String, u64, u64)> = lines
        .json()
        .iter()
        .map(|v| {
            (
                v["MessageId"].as_str().unwrap().to_owned(),
                v["Depth"].as_u64().unwrap(),
                v["MaxDepth"].as_u64().unwrap(),
            )
        })
        .collect();
    limits.sort();
    assert_eq!(
        limits,
        vec![("orders-16".into(), 17, 16), ("requeue-40".into(), 41, 40)]
    );
}

#[tokio::test]
async fn observe_mode_runs_the_handler_and_counts_under_its_own_name() {
    let lines = Lines::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        service_fn(move |_: LambdaEvent<Value>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Ok::<_, lambda_runtime::Error>(Chain::current().unwrap().lineage().count(me()))
            }
        })
    };
    let svc = layer(Mode::Observe, 2, &lines).layer(handler);
    let count = svc
        .oneshot(LambdaEvent::new(Value::Null, context_with(Some(ran(5)))))
        .await
        .unwrap();
    assert_eq!(count, 6, "counting goes on in observe mode");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let emitted = lines.json();
    assert_eq!(emitted.len(), 1);
    assert_eq!(
        emitted[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
        OBSERVED_METRIC
    );
    assert_eq!(emitted[0]["Mode"], "observe");
}

#[tokio::test]
async fn a_requeued_job_does_not_use_up_the_default_limit() {
    // A job requeued 50 times on its own queue (limit 200), then a normal
    // message from it to the same function's default queue (limit 10).
    const REQUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:job-requeue";
    const DEFAULT: &str = "arn:aws:sqs:us-east-1:123456789012:orders";
    let lines = Lines::default();
    let config = LoopGuardConfig::builder()
        .function_identity(ME)
        .source_max_depth(REQUEUE, 200)
        .build()
        .unwrap();
    let svc = LoopGuardLayer::new(config)
        .metric_sink(lines.sink())
        .layer(service_fn(|e: LambdaEvent<SqsEvent>| async move {
            let _ = e;
            Ok::<_, lambda_runtime::Error>(RanUnder(*Chain::current().unwrap().lineage()))
        }));
    let mut lineage = Lineage::new();
    for lap in 0..50 {
        let mut r = sqs_record(&format!("lap-{lap}"), Some(lineage));
        r.event_source_arn = Some(REQUEUE.into());
        let RanUnder(out) = svc
            .clone()
            .oneshot(LambdaEvent::new(sqs_event(vec![r]), context_with(None)))
            .await
            .unwrap();
        lineage = out;
    }
    let mut normal = sqs_record("normal", Some(lineage));
    normal.event_source_arn = Some(DEFAULT.into());
    let RanUnder(out) = svc
        .oneshot(LambdaEvent::new(
            sqs_event(vec![normal]),
            context_with(None),
        ))
        .await
        .unwrap();
    assert_eq!(out.count(me()), 1, "its first run on the default queue");
    assert!(lines.json().is_empty(), "nothing dropped");
}

#[tokio::test]
async fn allow_mode_counts_and_passes_the_chain_on_but_never_drops() {
    let lines = Lines::default();
    let svc =
        layer(Mode::Allow, 1, &lines).layer(service_fn(|e: LambdaEvent<SqsEvent>| async move {
            Ok::<_, lambda_runtime::Error>((
                e.payload.records.len(),
                Chain::current().map(|c| *c.lineage()),
            ))
        }));
    let event = sqs_event(vec![
        sqs_record("a", Some(ran(50))),
        sqs_record("b", Some(ran(50))),
    ]);
    let (len, chain) = svc
        .oneshot(LambdaEvent::new(event, context_with(Some(ran(99)))))
        .await
        .unwrap();
    assert_eq!(len, 2, "nothing dropped");
    let chain = chain.expect("the chain is passed on");
    assert_eq!(chain.count(me()), 51, "this run is recorded");
    assert!(lines.json().is_empty(), "no drop metric");
}

#[tokio::test]
async fn bad_config_is_an_error_naming_variable_and_value() {
    let env: HashMap<&str, &str> = HashMap::from([
        ("AWS_LAMBDA_FUNCTION_NAME", "f"),
        ("LOOP_GUARD_MODE", "kill"),
    ]);
    let err = LoopGuardConfig::builder()
        .build_from_env_source(|k| env.get(k).map(|v| v.to_string()))
        .unwrap_err();
    assert!(
        err.to_string().contains(r#"LOOP_GUARD_MODE="kill""#),
        "{err}"
    );
}

#[tokio::test]
async fn custom_payloads_opt_in_with_one_line() {
    #[derive(serde::Deserialize)]
    struct OrderPlaced {
        #[allow(dead_code)]
        order_id: String,
    }
    impl GuardedEvent for OrderPlaced {}

    let lines = Lines::default();
    let svc =
        layer(Mode::Terminate, 2, &lines).layer(service_fn(|_: LambdaEvent<OrderPlaced>| async {
            Ok::<_, lambda_runtime::Error>(())
        }));
    let payload = || OrderPlaced {
        order_id: "o-1".into(),
    };
    svc.clone()
        .oneshot(LambdaEvent::new(payload(), context_with(Some(ran(1)))))
        .await
        .unwrap();
    let mut ctx = Context::default();
    ctx.client_context = Some(
        serde_json::from_value(serde_json::json!({"custom": {"loop-guard": ran(2).to_string()}}))
            .unwrap(),
    );
    assert!(svc.oneshot(LambdaEvent::new(payload(), ctx)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invocations_see_only_their_own_chain() {
    let lines = Lines::default();
    let svc = layer(Mode::Terminate, 10_000, &lines).layer(service_fn(
        |e: LambdaEvent<Value>| async move {
            let expected = e.payload["n"].as_u64().unwrap() as u16;
            let mut mismatches = 0;
            for _ in 0..5 {
                tokio::task::yield_now().await;
                let seen = Chain::current().unwrap();
                if seen.lineage().count(me()) != expected + 1 {
                    mismatches += 1;
                }
                let carried =
                    tokio::spawn(lambda_loop_guard::chain::carry(async { Chain::current() }))
                        .await
                        .unwrap()
                        .unwrap();
                if carried != seen {
                    mismatches += 1;
                }
            }
            Ok::<_, lambda_runtime::Error>(mismatches)
        },
    ));
    let tasks: Vec<_> = (0..200u16)
        .map(|n| {
            let svc = svc.clone();
            tokio::spawn(async move {
                svc.oneshot(LambdaEvent::new(
                    serde_json::json!({ "n": n }),
                    context_with(Some(ran(n))),
                ))
                .await
                .unwrap()
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 0);
}

#[cfg(feature = "dynamodb")]
mod dynamodb_streams {
    use super::*;
    use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
    use aws_lambda_events::event::streams::DynamoDbEventResponse;
    use lambda_loop_guard::carrier::{Carrier, ItemAttribute};

    fn record(sequence: &str, lineage: Option<Lineage>) -> Value {
        let mut image = serde_json::json!({"id": {"S": sequence}});
        if let Some(l) = lineage {
            image["loop-guard"] = serde_json::json!({"S": l.to_string()});
        }
        serde_json::json!({
            "eventID": format!("e-{sequence}"), "eventName": "MODIFY", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/t/stream/s",
            "dynamodb": {"Keys": {"id": {"S": sequence}}, "NewImage": image,
                         "SequenceNumber": sequence, "SizeBytes": 1, "StreamViewType": "NEW_IMAGE"}
        })
    }

    fn event(records: Vec<Value>) -> DynamoDbEvent {
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    type Handled = Arc<Mutex<Vec<String>>>;

    fn handler(
        handled: &Handled,
    ) -> impl Service<
        LambdaEvent<DynamoDbEvent>,
        Response = DynamoDbEventResponse,
        Error = lambda_runtime::Error,
        Future = impl Send,
    > + Clone {
        let handled = handled.clone();
        service_fn(move |e: LambdaEvent<DynamoDbEvent>| {
            let handled = handled.clone();
            async move {
                handled
                    .lock()
                    .unwrap()
                    .extend(e.payload.records.iter().map(|r| r.event_id.clone()));
                Ok::<_, lambda_runtime::Error>(DynamoDbEventResponse::default())
            }
        })
    }

    fn failures(response: &DynamoDbEventResponse) -> Vec<&str> {
        response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.as_deref())
            .collect()
    }

    #[tokio::test]
    async fn looping_stream_records_become_batch_item_failures() {
        let lines = Lines::default();
        let handled = Handled::default();
        let svc = layer(Mode::Terminate, 2, &lines).layer(handler(&handled));
        let e = event(vec![
            record("100", Some(ran(1))),
            record("200", Some(ran(2))),
            record("300", None),
        ]);
        let response = svc
            .oneshot(LambdaEvent::new(e, context_with(None)))
            .await
            .unwrap();
        // A stream is ordered: the batch is cut at the first looping record,
        // which and every later one are reported (the shard resumes there),
        // so record 300 runs once, after 200, and never twice.
        assert_eq!(failures(&response), vec!["200", "300"]);
        assert_eq!(*handled.lock().unwrap(), vec!["e-100"]);
        let drops = lines.json();
        assert_eq!(drops.len(), 1);
        assert_eq!(drops[0]["Source"], "dynamodb");
        assert_eq!(drops[0]["MessageId"], "200");
    }

    #[tokio::test]
    async fn a_batch_of_only_looping_records_is_answered_without_the_handler() {
        let lines = Lines::default();
        let handled = Handled::default();
        let svc = layer(Mode::Terminate, 2, &lines).layer(handler(&handled));
        let e = event(vec![record("1", Some(ran(2))), record("2", Some(ran(5)))]);
        let response = svc
            .oneshot(LambdaEvent::new(e, context_with(None)))
            .await
            .unwrap();
        assert_eq!(failures(&response), vec!["1", "2"]);
        assert!(handled.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn writes_that_changed_only_the_stamp_never_reach_a_handler_returning_unit() {
        // Every record a no-op write (images differ in the stamp only), and
        // a handler whose response cannot report failures: it is not called
        // with an empty batch; the invocation answers `()`.
        let unchanged = |sequence: &str| {
            let mut r = record(sequence, Some(ran(1)));
            r["dynamodb"]["OldImage"] =
                serde_json::json!({"id": {"S": sequence}, "loop-guard": {"S": ran(3).to_string()}});
            r
        };
        let calls = Arc::new(Mutex::new(0));
        let lines = Lines::default();
        let svc = layer(Mode::Terminate, 5, &lines).layer(service_fn({
            let calls = calls.clone();
            move |_: LambdaEvent<DynamoDbEvent>| {
                *calls.lock().unwrap() += 1;
                async { Ok::<(), lambda_runtime::Error>(()) }
            }
        }));
        svc.clone()
            .oneshot(LambdaEvent::new(
                event(vec![unchanged("1"), unchanged("2")]),
                context_with(None),
            ))
            .await
            .unwrap();
        assert_eq!(*calls.lock().unwrap(), 0, "nothing left to run");
        svc.oneshot(LambdaEvent::new(
            event(vec![unchanged("1"), record("2", None)]),
            context_with(None),
        ))
        .await
        .unwrap();
        assert_eq!(*calls.lock().unwrap(), 1, "a real change still runs");
        assert!(lines.json().is_empty(), "no-op writes are not drops");
    }

    #[tokio::test]
    async fn a_custom_attribute_name_is_read_when_the_layer_is_told() {
        let lines = Lines::default();
        let handled = Handled::default();
        let mut looping = record("9", None);
        let mut image: serde_dynamo::Item =
            serde_json::from_value(looping["dynamodb"]["NewImage"].clone()).unwrap();
        ItemAttribute::new("lg").write(&mut image, &ran(2)).unwrap();
        looping["dynamodb"]["NewImage"] = serde_json::to_value(&image).unwrap();

        let default_name = layer(Mode::Terminate, 2, &lines).layer(handler(&handled));
        let response = default_name
            .oneshot(LambdaEvent::new(
                event(vec![looping.clone()]),
                context_with(None),
            ))
            .await
            .unwrap();
        assert!(failures(&response).is_empty(), "not our attribute name");

        let config = LoopGuardConfig::builder()
            .function_identity(ME)
            .max_depth(2)
            .dynamodb_attribute("lg")
            .build()
            .unwrap();
        let custom = LoopGuardLayer::new(config)
            .metric_sink(lines.sink())
            .layer(handler(&handled));
        let response = custom
            .oneshot(LambdaEvent::new(event(vec![looping]), context_with(None)))
            .await
            .unwrap();
        assert_eq!(failures(&response), vec!["9"]);
    }
}

mod count_correctness {
    //! The count cannot be escaped or misread: ordered batches, missing
    //! ids, the hop backstop, and the chain during `call`.
    use super::*;

    const FIFO: &str = "arn:aws:sqs:us-east-1:123456789012:orders.fifo";

    fn fifo_record(id: &str, lineage: Option<Lineage>) -> SqsMessage {
        let mut r = sqs_record(id, lineage);
        r.event_source_arn = Some(FIFO.into());
        r
    }

    #[tokio::test]
    async fn a_fifo_batch_is_cut_at_its_first_looping_record() {
        let lines = Lines::default();
        let seen: Seen = Default::default();
        let svc = layer(Mode::Terminate, 3, &lines).layer(recording_batch_handler(&seen));
        let event = sqs_event(vec![
            fifo_record("a", Some(ran(1))),
            fifo_record("b", Some(ran(3))),
            fifo_record("c", None),
            fifo_record("d", Some(ran(9))),
        ]);
        let resp = svc
            .oneshot(LambdaEvent::new(event, context_with(None)))
            .await
            .unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![vec!["a".to_string()]]);
        assert_eq!(
            failure_ids(&resp),
            vec!["b", "c", "d"],
            "in order, none runs early"
        );
        let drops = lines.json();
        assert_eq!(drops.len(), 1, "only the first looping record is a drop");
        assert_eq!(drops[0]["MessageId"], "b");
    }

    #[tokio::test]
    async fn a_standard_queue_batch_drops_only_its_looping_records() {
        let lines = Lines::default();
        let seen: Seen = Default::default();
        let svc = layer(Mode::Terminate, 3, &lines).layer(recording_batch_handler(&seen));
        let event = sqs_event(vec![
            sqs_record("a", Some(ran(1))),
            sqs_record("b", Some(ran(3))),
            sqs_record("c", None),
        ]);
        let resp = svc
            .oneshot(LambdaEvent::new(event, context_with(None)))
            .await
            .unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![vec!["a".to_string(), "c".to_string()]]
        );
        assert_eq!(failure_ids(&resp), vec!["b"]);
    }

    #[tokio::test]
    async fn discarding_in_a_fifo_batch_removes_only_the_looping_record() {
        let lines = Lines::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let svc = layer(Mode::Terminate, 3, &lines)
            .batch_drop_policy(BatchDropPolicy::DiscardLoopingRecords)
            .layer(service_fn({
                let seen = seen.clone();
                move |e: LambdaEvent<SqsEvent>| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().extend(
                            e.payload
                                .records
                                .iter()
                                .filter_map(|r| r.message_id.clone()),
                        );
                        Ok::<_, lambda_runtime::Error>(())
                    }
                }
            }));
        let event = sqs_event(vec![
            fifo_record("a", None),
            fifo_record("b", Some(ran(3))),
            fifo_record("c", None),
        ]);
        svc.oneshot(LambdaEvent::new(event, context_with(None)))
            .await
            .unwrap();
        assert_eq!(*seen.lock().unwrap(), vec!["a", "c"]);
    }

    #[tokio::test]
    async fn a_looping_record_without_an_id_fails_the_invocation_rather_than_vanish() {
        let lines = Lines::default();
        let seen: Seen = Default::default();
        let svc = layer(Mode::Terminate, 3, &lines).layer(recording_batch_handler(&seen));
        let event = looping_batch_with_an_anonymous_record();
        let err = svc
            .oneshot(LambdaEvent::new(event, context_with(None)))
            .await
            .unwrap_err();
        assert!(err.as_dropped().is_some());
        assert!(
            seen.lock().unwrap().is_empty(),
            "the batch is retried whole"
        );
    }

    #[tokio::test]
    async fn a_chain_through_many_functions_stops_at_the_hop_backstop() {
        let lines = Lines::default();
        let config = LoopGuardConfig::builder()
            .function_identity(ME)
            .max_hops(40)
            .build()
            .unwrap();
        assert_eq!(config.max_hops(), 40);
        let svc = LoopGuardLayer::new(config)
            .metric_sink(lines.sink())
            .layer(service_fn(|_: LambdaEvent<serde_json::Value>| async {
                Ok::<_, lambda_runtime::Error>(())
            }));
        // A cycle through 20 other functions, twice: more than a lineage
        // tracks, each of them (and this one) under its own depth limit.
        let mut lineage = Lineage::new();
        for lap in 0..2 {
            for f in 0..20u32 {
                lineage = lineage.record_run(FunctionId::from_identity(&format!("f{f}-{lap}")));
            }
        }
        assert_eq!(lineage.hops(), 40);
        let err = svc
            .oneshot(LambdaEvent::new(
                serde_json::json!({}),
                context_with(Some(lineage)),
            ))
            .await
            .unwrap_err();
        let dropped = err.as_dropped().unwrap();
        assert_eq!(dropped.limit(), lambda_loop_guard::error::Limit::Hops);
        assert_eq!(dropped.hops(), 41);
        assert!(err.to_string().contains("LOOP_GUARD_MAX_HOPS"), "{err}");
        let drops = lines.json();
        assert_eq!(drops[0]["Reason"], "hops");
        assert_eq!(drops[0]["Hops"], 41);
        assert_eq!(drops[0]["MaxHops"], 40);
    }

    #[test]
    fn the_hop_backstop_is_never_below_a_depth_limit() {
        let config = LoopGuardConfig::builder()
            .function_identity(ME)
            .max_depth(300)
            .source_max_depth("arn:aws:sqs:us-east-1:1:requeue", 900)
            .build()
            .unwrap();
        assert_eq!(
            config.max_hops(),
            900 + 256,
            "the largest limit keeps the default's headroom for earlier hops"
        );
        let err = LoopGuardConfig::builder()
            .function_identity(ME)
            .build_from_env_source(|k| (k == "LOOP_GUARD_MAX_HOPS").then(|| "0".to_string()))
            .unwrap_err();
        assert_eq!(err.setting(), Some("LOOP_GUARD_MAX_HOPS"));
    }

    #[tokio::test]
    async fn a_forged_full_lineage_cannot_keep_a_self_loop_from_stopping() {
        let lines = Lines::default();
        let svc = layer(Mode::Terminate, 4, &lines).layer(service_fn(
            |_: LambdaEvent<serde_json::Value>| async {
                Ok::<_, lambda_runtime::Error>(RanUnder(*Chain::current().unwrap().lineage()))
            },
        ));
        let mut lineage = Lineage::new();
        for n in 0..16 {
            lineage.merge(&ran_as(
                FunctionId::from_identity(&format!("forged-{n}")),
                60,
            ));
        }
        let mut runs = 0;
        loop {
            let event = LambdaEvent::new(serde_json::json!({}), context_with(Some(lineage)));
            match svc.clone().oneshot(event).await {
                Ok(RanUnder(out)) => {
                    runs += 1;
                    lineage = out;
                }
                Err(err) => {
                    assert_eq!(err.as_dropped().unwrap().depth(), 5);
                    break;
                }
            }
            assert!(runs <= 4, "the loop did not stop");
        }
        assert_eq!(runs, 4);
    }

    #[tokio::test]
    async fn the_chain_is_in_scope_while_the_inner_service_is_called() {
        #[derive(Clone)]
        struct SeesChainInCall;
        impl tower::Service<LambdaEvent<serde_json::Value>> for SeesChainInCall {
            type Response = bool;
            type Error = lambda_runtime::Error;
            type Future = std::future::Ready<Result<bool, lambda_runtime::Error>>;
            fn poll_ready(
                &mut self,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Self::Error>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: LambdaEvent<serde_json::Value>) -> Self::Future {
                // Work started in `call` itself, before any future is polled.
                std::future::ready(Ok(Chain::current().is_some()))
            }
        }
        let lines = Lines::default();
        let seen = layer(Mode::Terminate, 4, &lines)
            .layer(SeesChainInCall)
            .oneshot(LambdaEvent::new(serde_json::json!({}), context_with(None)))
            .await
            .unwrap();
        assert!(seen);
    }

    #[tokio::test]
    async fn records_of_a_json_value_batch_keep_their_own_chains() {
        // The same rule for handlers that take `serde_json::Value`: each
        // SQS record's work continues its own chain; a value that is not a
        // record keeps the batch's (merged, deepest) chain.
        let lines = Lines::default();
        let svc = layer(Mode::Terminate, 6, &lines).layer(service_fn(
            |e: LambdaEvent<serde_json::Value>| async move {
                let mut counts = Vec::new();
                for record in e.payload["Records"].as_array().unwrap() {
                    let count = lambda_loop_guard::for_record(record, async {
                        Chain::current().unwrap().lineage().count(me())
                    })
                    .await;
                    counts.push(count);
                }
                let not_a_record = serde_json::json!({"hello": "world"});
                let outside = lambda_loop_guard::for_record(&not_a_record, async {
                    Chain::current().unwrap().lineage().count(me())
                })
                .await;
                counts.push(outside);
                Ok::<_, lambda_runtime::Error>(serde_json::json!(counts))
            },
        ));
        let records = vec![sqs_record("deep", Some(ran(4))), sqs_record("fresh", None)];
        let event = serde_json::to_value(sqs_event(records)).unwrap();
        let counts = svc
            .oneshot(LambdaEvent::new(event, context_with(None)))
            .await
            .unwrap();
        assert_eq!(counts, serde_json::json!([5, 1, 5]));
    }

    #[tokio::test]
    async fn a_drop_hook_sees_every_drop_with_the_emf_lines_facts() {
        /// Metric name, depth, hops, incoming lineage, message id.
        type Seen = (String, u32, u32, String, Option<String>);
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let lines = Lines::default();
        let hook_seen = seen.clone();
        let svc = layer(Mode::Terminate, 2, &lines)
            .on_drop(move |drop| {
                hook_seen.lock().unwrap().push((
                    drop.metric_name().to_owned(),
                    drop.depth,
                    drop.hops,
                    drop.lineage.to_string(),
                    drop.message_id.map(str::to_owned),
                ))
            })
            .layer(service_fn(|_: LambdaEvent<SqsEvent>| async {
                Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
            }));
        let mut looping = sqs_record("m-1", Some(ran(2)));
        looping.event_source_arn = Some("arn:aws:sqs:eu-west-1:1:orders".into());
        let event = sqs_event(vec![looping, sqs_record("m-2", None)]);
        svc.oneshot(LambdaEvent::new(event, context_with(None)))
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(
            *seen,
            [(
                "RecursiveInvocationsDropped".to_owned(),
                3,
                3,
                ran(2).to_string(),
                Some("m-1".to_owned())
            )]
        );
        let emf = lines.json();
        assert_eq!(emf.len(), 1);
        assert_eq!(emf[0]["level"], "WARN");
        assert_eq!(emf[0]["SourceArn"], "arn:aws:sqs:eu-west-1:1:orders");
        assert_eq!(emf[0]["Lineage"], ran(2).to_string());
    }

    #[tokio::test]
    async fn each_record_of_a_batch_keeps_its_own_chain() {
        // One message that already ran 4 times, batched with nine fresh
        // ones, max depth 6: every message the handler sends continues its
        // own record's chain, so each fresh chain gets its full 6 runs.
        type Outbox = Arc<Mutex<Vec<(String, Lineage)>>>;
        let outbox: Outbox = Default::default();
        let runs: Arc<Mutex<HashMap<String, u32>>> = Default::default();
        let lines = Lines::default();
        let svc = layer(Mode::Terminate, 6, &lines).layer(service_fn({
            let (outbox, runs) = (outbox.clone(), runs.clone());
            move |e: LambdaEvent<SqsEvent>| {
                let (outbox, runs) = (outbox.clone(), runs.clone());
                async move {
                    for record in &e.payload.records {
                        let chain_name = record.body.clone().unwrap();
                        *runs.lock().unwrap().entry(chain_name.clone()).or_default() += 1;
                        lambda_loop_guard::for_record(record, async {
                            // "Send" one follow-up: what the interceptor would stamp.
                            let lineage = *Chain::current().unwrap().lineage();
                            outbox.lock().unwrap().push((chain_name, lineage));
                        })
                        .await;
                    }
                    Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
                }
            }
        }));
        let mut queue: std::collections::VecDeque<(String, Lineage)> =
            std::iter::once(("deep".to_string(), ran(4)))
                .chain((0..9).map(|n| (format!("fresh-{n}"), Lineage::new())))
                .collect();
        let (mut dropped, mut invocations) = (Vec::new(), 0);
        while !queue.is_empty() {
            let batch: Vec<_> = (0..10).filter_map(|_| queue.pop_front()).collect();
            let records = batch
                .iter()
                .enumerate()
                .map(|(i, (name, lineage))| {
                    let mut r = sqs_record(&format!("{invocations}-{i}"), Some(*lineage));
                    r.body = Some(name.clone());
                    r
                })
                .collect();
            let resp = svc
                .clone()
                .oneshot(LambdaEvent::new(sqs_event(records), context_with(None)))
                .await
                .unwrap();
            for failure in &resp.batch_item_failures {
                let (_, i) = failure.item_identifier.split_once('-').unwrap();
                dropped.push(batch[i.parse::<usize>().unwrap()].0.clone());
            }
            queue.extend(outbox.lock().unwrap().drain(..));
            invocations += 1;
            assert!(invocations < 100, "the loops did not stop");
        }
        let runs = runs.lock().unwrap();
        assert_eq!(runs["deep"], 2, "runs 5 and 6 of the deep chain");
        for n in 0..9 {
            assert_eq!(
                runs[&format!("fresh-{n}")],
                6,
                "fresh-{n} gets its full depth"
            );
        }
        assert_eq!(runs.values().sum::<u32>(), 56);
        dropped.sort();
        assert_eq!(
            dropped.len(),
            10,
            "one drop per chain, at run 7: {dropped:?}"
        );
        assert_eq!(lines.json().len(), 10);
    }

    #[tokio::test]
    async fn a_batch_record_without_a_trace_header_names_no_chain_root() {
        // The invocation's own trace is the event source mapping's, not the
        // looping record's chain: it is not reported as the chain's root.
        let lines = Lines::default();
        let seen: Seen = Default::default();
        let svc = layer(Mode::Terminate, 3, &lines).layer(recording_batch_handler(&seen));
        let resp = svc
            .oneshot(LambdaEvent::new(
                sqs_event(vec![sqs_record("a", Some(ran(3)))]),
                context_with(None),
            ))
            .await
            .unwrap();
        assert_eq!(failure_ids(&resp), vec!["a"]);
        assert!(
            lines.json()[0].get("ChainRoot").is_none(),
            "{:?}",
            lines.json()
        );
    }

    #[tokio::test]
    async fn discarding_reports_what_has_an_id_and_discards_only_what_has_none() {
        // The issue's case: with DiscardLoopingRecords and a reporting
        // response, a looping record without an id used to make every
        // looping record be discarded instead of reported.
        let lines = Lines::default();
        let seen: Seen = Default::default();
        let svc = layer(Mode::Terminate, 3, &lines)
            .batch_drop_policy(BatchDropPolicy::DiscardLoopingRecords)
            .layer(recording_batch_handler(&seen));
        let event = looping_batch_with_an_anonymous_record();
        let resp = svc
            .oneshot(LambdaEvent::new(event, context_with(None)))
            .await
            .unwrap();
        assert_eq!(failure_ids(&resp), vec!["a"], "reported, not discarded");
        assert_eq!(*seen.lock().unwrap(), vec![vec!["b".to_string()]]);
    }
}

/// Records of one batch that repeat one another (the usual shape: one
/// producer run stamps them all) are read and decided through shortcuts:
/// an equal trace header is compared instead of scanned, and a record with
/// the same lineage texts and source as one that ran is decided as it was.
/// Whatever the mix and order, each record's fate and the chain the handler
/// runs in are those of deciding each record on its own.
mod repeated_records {
    use super::*;
    use lambda_loop_guard::GuardedRecord;
    use proptest::prelude::*;

    const REQUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:requeue";
    const ORDERS: &str = "arn:aws:sqs:us-east-1:123456789012:orders";
    const ROOT: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8";
    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:events";

    /// A queue's ARN, of a FIFO queue with `fifo`.
    fn arn(queue: &str, fifo: bool) -> String {
        if fifo {
            format!("{queue}.fifo")
        } else {
            queue.to_owned()
        }
    }

    /// A limit of 4, and of 6 through the requeue queue (`per_source`).
    fn config(mode: Mode, per_source: bool, fifo: bool) -> LoopGuardConfig {
        let builder = LoopGuardConfig::builder()
            .function_identity(ME)
            .max_depth(4)
            .mode(mode)
            .trust_sns_topic(TOPIC);
        let builder = if per_source {
            builder.source_max_depth(arn(REQUEUE, fifo), 6)
        } else {
            builder
        };
        builder.build().unwrap()
    }

    fn requeue() -> FunctionId {
        config(Mode::Terminate, true, false)
            .limit_for(Some(REQUEUE))
            .0
    }

    /// Twelve other functions that each ran once: two of them in one chain
    /// hold more functions than a lineage keeps (16).
    fn others(first: u32) -> Lineage {
        (first..first + 12).fold(Lineage::new(), |l, n| l.record_run(FunctionId::from_u32(n)))
    }

    fn merged(a: Lineage, b: &Lineage) -> Lineage {
        let mut both = a;
        both.merge(b);
        both
    }

    /// The header (none, one value, two values, a value of another
    /// function, no value, more functions than a lineage keeps), the
    /// attribute, the body (plain, an EventBridge event, an SNS envelope
    /// from a trusted topic, each with a lineage) and the queue of one
    /// record.
    fn record(i: usize, header: u8, attribute: u8, body: u8, queue: u8, fifo: bool) -> SqsMessage {
        let mut m = sqs_record(&format!("r{i}"), None);
        let event =
            |l: Lineage| format!(r#"{{"version":"0","id":"e{i}","detail":{{"{KEY}":"{l}"}}}}"#);
        match body {
            1 => m.body = Some(event(ran(4))),
            2 => m.body = Some(event(ran(1))),
            3 => {
                m.body = Some(format!(
                    r#"{{"Type":"Notification","MessageId":"n{i}","TopicArn":"{TOPIC}","Message":"hi","MessageAttributes":{{"{KEY}":{{"Type":"String","Value":"{}"}}}}}}"#,
                    ran(4)
                ))
            }
            _ => {}
        }
        let header = match header {
            0 => None,
            1 => Some(format!("{ROOT};LoopGuard={}", ran(2))),
            2 => Some(format!("{ROOT};LoopGuard={}", ran(4))),
            // Two values: the first one loops on either queue.
            3 => Some(format!(
                "{ROOT};LoopGuard={};Sampled=1;LoopGuard={}",
                merged(ran(4), &ran_as(requeue(), 6)),
                ran_as(requeue(), 1)
            )),
            4 => Some(format!("{ROOT};LoopGuard={}", ran_as(requeue(), 3))),
            5 => Some(format!(
                "{ROOT};LoopGuard={}",
                merged(ran(1), &others(1000))
            )),
            _ => Some(format!("{ROOT};Sampled=0")),
        };
        if let Some(header) = header {
            m.attributes.insert("AWSTraceHeader".into(), header);
        }
        let attribute = match attribute {
            0 => None,
            1 => Some(ran(2).to_string()),
            2 => Some(ran(3).to_string()),
            3 => Some(others(2000).to_string()),
            _ => Some("not a lineage".to_owned()),
        };
        if let Some(value) = attribute {
            let mut a = SqsMessageAttribute::default();
            a.data_type = Some("String".into());
            a.string_value = Some(value);
            m.message_attributes.insert(KEY.into(), a);
        }
        m.event_source_arn = Some(arn(if queue == 0 { ORDERS } else { REQUEUE }, fifo));
        m
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn each_record_is_decided_as_if_alone(
            // Runs of alike records (one producer run's messages), of
            // random shapes.
            runs in proptest::collection::vec(((0u8..7, 0u8..5, 0u8..4, 0u8..2), 1usize..5), 1..12),
            mode in prop_oneof![Just(Mode::Terminate), Just(Mode::Observe), Just(Mode::Allow)],
            per_source in any::<bool>(),
            fifo in any::<bool>(),
        ) {
            let records: Vec<SqsMessage> = runs
                .iter()
                .flat_map(|&(shape, length)| std::iter::repeat_n(shape, length))
                .enumerate()
                .map(|(i, (h, a, b, q))| record(i, h, a, b, q, fifo))
                .collect();
            let config = config(mode, per_source, fifo);
            // Each record alone: its lineage, its limit, its fate; a FIFO
            // batch is cut at its first dropped record (the rest fail,
            // unreported, in order).
            let (mut expected_run, mut merged, mut runner, mut looping, mut cut) =
                (Vec::new(), Lineage::new(), None, 0, false);
            for r in &records {
                if cut {
                    continue;
                }
                let lineage = r.read_record(&config).lineage();
                let (id, max_depth) = config.limit_for(r.event_source_arn.as_deref());
                runner.get_or_insert(id);
                let loops = u32::from(lineage.count(id)) >= max_depth;
                looping += usize::from(loops);
                if !loops || mode != Mode::Terminate {
                    expected_run.push(r.message_id.clone().unwrap());
                    merged.merge(&lineage);
                } else {
                    cut = fifo;
                }
            }
            let runner = runner.unwrap();
            let lines = Lines::default();
            let seen: RanWith = Default::default();
            let handler = {
                let seen = seen.clone();
                service_fn(move |e: LambdaEvent<SqsEvent>| {
                    let seen = seen.clone();
                    async move {
                        let ids = e.payload.records.iter().filter_map(|r| r.message_id.clone()).collect();
                        *seen.lock().unwrap() = Some((ids, *Chain::current().unwrap().lineage()));
                        Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
                    }
                })
            };
            let svc = LoopGuardLayer::new(config).metric_sink(lines.sink()).layer(handler);
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let resp = rt
                .block_on(svc.oneshot(LambdaEvent::new(sqs_event(records.clone()), context_with(None))))
                .unwrap();
            prop_assert_eq!(resp.batch_item_failures.len(), records.len() - expected_run.len());
            let reported = if mode == Mode::Allow { 0 } else { looping };
            prop_assert_eq!(lines.json().len(), reported, "one line per looping record");
            let seen = seen.lock().unwrap().take();
            if expected_run.is_empty() {
                prop_assert!(seen.is_none(), "the handler never runs");
            } else {
                let (ran_ids, chain) = seen.unwrap();
                prop_assert_eq!(ran_ids, expected_run);
                let outgoing = merged.record_run(runner);
                let counts = |l: &Lineage| l.entries().collect::<Vec<_>>();
                prop_assert_eq!(counts(&chain), counts(&outgoing));
                prop_assert_eq!(chain.hops(), outgoing.hops());
            }
        }
    }

    /// Two records alike but for their queue: with a limit per queue, the
    /// one that runs through the requeue queue says nothing of the other.
    #[tokio::test]
    async fn a_record_like_the_last_from_another_queue_is_decided_anew() {
        // Header and attribute: this function ran 4 times (its limit on
        // orders); under the requeue queue it counts as another function.
        let records = vec![record(0, 2, 0, 0, 1, false), record(1, 2, 0, 0, 0, false)];
        let (failed, seen) = run_recorded(config(Mode::Terminate, true, false), records).await;
        assert_eq!(failed, ["r1"]);
        assert_eq!(seen, [vec!["r0".to_owned()]]);
    }

    /// Runs `records` through a guard with `config` around a recording
    /// handler: the ids reported as batch item failures, and the records
    /// each handler call saw.
    async fn run_recorded(
        config: LoopGuardConfig,
        records: Vec<SqsMessage>,
    ) -> (Vec<String>, Vec<Vec<String>>) {
        let seen: Seen = Default::default();
        let svc = LoopGuardLayer::new(config)
            .metric_sink(Lines::default().sink())
            .layer(recording_batch_handler(&seen));
        let response = svc
            .oneshot(LambdaEvent::new(sqs_event(records), context_with(None)))
            .await
            .unwrap();
        let failed = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        let seen = seen.lock().unwrap().clone();
        (failed, seen)
    }

    /// In a FIFO batch, a record like one that ran, after a looping one, is
    /// cut with the rest (not run as the one it repeats was).
    #[tokio::test]
    async fn a_repeat_after_a_fifo_drop_is_cut() {
        let runs = |i| record(i, 1, 1, 0, 0, true);
        let records = vec![runs(0), runs(1), record(2, 2, 0, 0, 0, true), runs(3)];
        let (failed, seen) = run_recorded(config(Mode::Terminate, false, true), records).await;
        assert_eq!(failed, ["r2", "r3"]);
        assert_eq!(seen, [vec!["r0".to_owned(), "r1".to_owned()]]);
    }

    /// Each body shape carries its lineage (else the property above would
    /// not test bodies at all).
    #[test]
    fn the_body_shapes_carry_their_lineage() {
        let config = config(Mode::Terminate, false, false);
        let body = |shape| {
            record(0, 0, 0, shape, 0, false)
                .read_record(&config)
                .lineage()
        };
        assert_eq!(body(0), Lineage::new());
        assert_eq!(body(1), ran(4));
        assert_eq!(body(2), ran(1));
        assert_eq!(body(3), ran(4));
    }

    /// The ids of the records the handler ran, and the chain it ran in.
    type RanWith = Arc<Mutex<Option<(Vec<String>, Lineage)>>>;

    /// With signing keys, each record whose lineage does not verify counts
    /// in `UnverifiedLineages`, repeats included.
    #[tokio::test]
    async fn every_repeated_unsigned_lineage_is_counted() {
        let config = LoopGuardConfig::builder()
            .function_identity(ME)
            .signing_key("0123456789abcdef0123456789abcdef")
            .build()
            .unwrap();
        let lines = Lines::default();
        let seen: Seen = Default::default();
        let svc = LoopGuardLayer::new(config)
            .metric_sink(lines.sink())
            .layer(recording_batch_handler(&seen));
        let records = (0..5).map(|i| record(i, 1, 2, 0, 0, false)).collect();
        svc.oneshot(LambdaEvent::new(sqs_event(records), context_with(None)))
            .await
            .unwrap();
        assert_eq!(
            seen.lock().unwrap()[0].len(),
            5,
            "counted as absent: all run"
        );
        let unverified: Vec<u64> = lines
            .json()
            .iter()
            .filter_map(|line| line.get("UnverifiedLineages")?.as_u64())
            .collect();
        // Two texts per record (header and attribute), each rejected.
        assert_eq!(unverified, vec![10]);
    }
}

/// The guard reuses chain states (and their header buffers) once their
/// last holder is gone: a chain kept past its invocation (a stored clone,
/// a spawned task) keeps its own header, and every invocation sees its
/// own, long ones included.
#[tokio::test]
async fn a_chain_kept_past_its_invocation_keeps_its_trace_header() {
    type Kept = Arc<Mutex<(Option<Chain>, Vec<String>)>>;
    let kept: Kept = Arc::default();
    let handler = {
        let kept = kept.clone();
        service_fn(move |_: LambdaEvent<Value>| {
            let kept = kept.clone();
            async move {
                let chain = Chain::current().unwrap();
                let mut kept = kept.lock().unwrap();
                kept.1
                    .push(chain.incoming_trace_header().unwrap().to_owned());
                // The first invocation's chain outlives it.
                kept.0.get_or_insert(chain);
                Ok::<_, lambda_runtime::Error>(())
            }
        })
    };
    let config = LoopGuardConfig::builder()
        .function_identity(ME)
        .build()
        .unwrap();
    let svc = LoopGuardLayer::new(config)
        .metric_sink(Lines::default().sink())
        .layer(handler);
    let root = "Root=1-5759e988-bd862e3fe1be46a994272793";
    let headers = [
        format!("{root};Parent=0000000000000001;Sampled=1"),
        format!("{root};Parent=0000000000000002;Sampled=1"),
        format!(
            "{root};Parent=0000000000000003;Custom={}",
            "x".repeat(2_000)
        ),
        format!("{root};Parent=0000000000000004"),
    ];
    for header in &headers {
        let mut context = Context::default();
        context.xray_trace_id = Some(header.clone());
        svc.clone()
            .oneshot(LambdaEvent::new(Value::Null, context))
            .await
            .unwrap();
    }
    let kept = kept.lock().unwrap();
    assert_eq!(kept.1, headers, "each invocation sees its own header");
    let first = kept.0.as_ref().unwrap();
    assert_eq!(first.incoming_trace_header(), Some(headers[0].as_str()));
}
