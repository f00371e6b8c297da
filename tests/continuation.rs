//! Continuations on a real aws-sdk-lambda client whose asynchronous
//! self-invokes land on a loopback capture server, fed back into the guarded
//! handler hop by hop: a 40-step chain runs past the loop threshold of 16,
//! a runaway stops at its budget with its own metric and error.
#![cfg(feature = "continuation")]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_loop_guard::continuation::{
    Claim, ContinuationError, ContinuationEvent, ContinuationLedger, Continuations, InMemoryLedger,
    Outcome, Step, BUDGET_EXHAUSTED_METRIC, MAX_ASYNC_PAYLOAD_BYTES,
};
use lambda_loop_guard::{LoopGuardConfig, LoopGuardInterceptor, LoopGuardLayer};
use lambda_runtime::{Context, LambdaEvent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use support::CaptureServer;
use tower::{Layer, ServiceExt};

const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:long-job";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Countdown {
    number_of_calls: u32,
    processed: Vec<u32>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A context whose deadline has already passed: each run does one step.
fn context(deadline_ms: u64) -> Context {
    let mut c = Context::default();
    c.request_id = "req".into();
    c.invoked_function_arn = ARN.into();
    c.deadline = deadline_ms;
    c
}

async fn lambda_client(server: &CaptureServer) -> aws_sdk_lambda::Client {
    let sdk = server.sdk_config().await;
    aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&sdk)
            .interceptor(LoopGuardInterceptor::new())
            .build(),
    )
}

fn continuations(
    lambda: aws_sdk_lambda::Client,
    max: &str,
    lines: Arc<Mutex<Vec<String>>>,
) -> Continuations {
    let max = max.to_owned();
    Continuations::builder(lambda)
        .safety_margin(Duration::from_millis(0))
        .metric_sink(move |l: &str| lines.lock().unwrap().push(l.to_owned()))
        .build_from_env_source(move |k| match k {
            "LOOP_GUARD_MAX_CONTINUATIONS" => Some(max.clone()),
            "AWS_LAMBDA_FUNCTION_NAME" => Some("long-job".into()),
            _ => None,
        })
        .unwrap()
}

/// One step: process the next number of the countdown.
/// A guarded handler that runs the countdown job through `jobs`.
fn guarded_countdown(
    guard: LoopGuardLayer,
    jobs: Continuations,
) -> impl tower::Service<
    LambdaEvent<ContinuationEvent<Countdown>>,
    Response = Outcome<Countdown>,
    Error = lambda_loop_guard::LoopGuardError<lambda_runtime::Error>,
> + Clone {
    guard.layer(tower::service_fn(
        move |event: LambdaEvent<ContinuationEvent<Countdown>>| {
            let jobs = jobs.clone();
            async move {
                jobs.run(event, count_down)
                    .await
                    .map_err(lambda_runtime::Error::from)
            }
        },
    ))
}

async fn count_down(mut s: Countdown) -> Result<Step<Countdown>, lambda_runtime::Error> {
    s.processed.push(s.number_of_calls);
    s.number_of_calls -= 1;
    Ok(if s.number_of_calls == 0 {
        Step::Done(s)
    } else {
        Step::Continue(s)
    })
}

#[tokio::test]
async fn a_job_that_fits_finishes_without_invoking() {
    let server = CaptureServer::start("{}").await;
    let jobs = continuations(lambda_client(&server).await, "5", Arc::default());
    let event = ContinuationEvent::start(Countdown {
        number_of_calls: 5,
        processed: vec![],
    });
    let outcome = jobs
        .run(
            LambdaEvent::new(event, context(now_ms() + 3_600_000)),
            count_down,
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Finished(Countdown {
            number_of_calls: 0,
            processed: vec![5, 4, 3, 2, 1]
        })
    );
    assert!(server.take().is_empty());
}

#[tokio::test]
async fn a_forty_step_chain_runs_past_the_loop_threshold_and_a_runaway_stops_at_its_budget() {
    let server = CaptureServer::start("{}").await;
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let jobs = continuations(lambda_client(&server).await, "45", lines.clone());
    let guard = LoopGuardLayer::new(
        LoopGuardConfig::builder()
            .function_identity("long-job")
            .max_depth(16)
            .build()
            .unwrap(),
    )
    .metric_sink(());
    let service = guarded_countdown(guard, jobs);

    // The job arrives from a chain in which long-job already ran twice.
    let mut payload = json!({"state": {"number_of_calls": 40, "processed": []}});
    let arrived = "v1.2.".to_owned()
        + &lambda_loop_guard::FunctionId::from_identity("long-job").to_string()
        + "-2";
    payload["loopGuardContinuation"] = json!({"sequence": 0, "lineage": arrived});
    let mut runs = 0;
    let finished = loop {
        let event: ContinuationEvent<Countdown> = serde_json::from_value(payload.clone()).unwrap();
        let outcome = service
            .clone()
            .oneshot(LambdaEvent::new(event, context(now_ms() - 1)))
            .await
            .unwrap();
        runs += 1;
        match outcome {
            Outcome::Finished(state) => break state,
            Outcome::Continued { sequence } => {
                let captured = server.take();
                assert_eq!(captured.len(), 1);
                let request = &captured[0];
                assert!(
                    request.request_line.contains("/invocations"),
                    "{}",
                    request.request_line
                );
                assert!(
                    request.request_line.contains("long-job"),
                    "{}",
                    request.request_line
                );
                assert_eq!(request.header("x-amz-invocation-type"), Some("Event"));
                payload = serde_json::from_slice(&request.body).unwrap();
                assert_eq!(payload["loopGuardContinuation"]["sequence"], sequence);
                // The lineage the job arrived with travels unchanged, in the
                // payload and in the trace header alike.
                assert_eq!(
                    payload["loopGuardContinuation"]["lineage"],
                    arrived.as_str()
                );
                let header = request.header("x-amzn-trace-id").unwrap();
                let header = lambda_loop_guard::trace_header::TraceHeader::parse(header).unwrap();
                assert_eq!(header.lineage().unwrap().to_string(), arrived);
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        runs, 40,
        "one step per run, 40 runs: well past the loop threshold of 16"
    );
    assert_eq!(finished.processed, (1..=40).rev().collect::<Vec<_>>());
    assert!(lines.lock().unwrap().is_empty());

    // A runaway: never done. Continuations 1 to 3 run; continuation 4 is
    // refused before any step, with its own metric.
    let tight = continuations(lambda_client(&server).await, "3", lines.clone());
    let mut event = ContinuationEvent::start(0u64);
    let mut continued = 0;
    let error = loop {
        match tight
            .run(
                LambdaEvent::new(event.clone(), context(now_ms() - 1)),
                |n: u64| async move { Ok::<_, String>(Step::Continue(n + 1)) },
            )
            .await
        {
            Ok(Outcome::Continued { .. }) => {
                continued += 1;
                let body = server.take().pop().unwrap().body;
                event = serde_json::from_slice(&body).unwrap();
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(continued, 4, "runs 0 to 3 each handed over");
    assert_eq!(
        event.state,
        Some(4),
        "the refused event holds the state after four steps: the point to resume from"
    );
    assert!(matches!(
        error,
        ContinuationError::BudgetExhausted {
            sequence: 4,
            max_continuations: 3
        }
    ));
    assert!(error.to_string().contains("LOOP_GUARD_MAX_CONTINUATIONS"));
    let emitted = lines.lock().unwrap().clone();
    assert_eq!(emitted.len(), 1);
    let v: Value = serde_json::from_str(&emitted[0]).unwrap();
    assert_eq!(
        v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
        BUDGET_EXHAUSTED_METRIC
    );
    assert_eq!(v[BUDGET_EXHAUSTED_METRIC], 1);
    assert_eq!(v["FunctionName"], "long-job");
    assert!(
        server.take().is_empty(),
        "nothing is invoked past the budget"
    );
    // Every delivery of the refused event fails the same way (Lambda's
    // retries, then the DLQ), without a step.
    let again = tight
        .run(
            LambdaEvent::new(event.clone(), context(now_ms() - 1)),
            |_: u64| async move { Err::<Step<u64>, _>("no step may run".to_string()) },
        )
        .await
        .unwrap_err();
    assert!(matches!(again, ContinuationError::BudgetExhausted { .. }));
    // An operator resumes it with a larger budget: it goes on from 4.
    let resumed = continuations(lambda_client(&server).await, "10", Arc::default())
        .run(
            LambdaEvent::new(event, context(now_ms() - 1)),
            |n: u64| async move { Ok::<_, String>(Step::Done(n + 1)) },
        )
        .await
        .unwrap();
    assert_eq!(resumed, Outcome::Finished(5));
}

#[tokio::test]
async fn state_over_the_async_payload_limit_is_a_clear_error_and_nothing_is_sent() {
    let server = CaptureServer::start("{}").await;
    let jobs = continuations(lambda_client(&server).await, "5", Arc::default());
    let big = "x".repeat(MAX_ASYNC_PAYLOAD_BYTES);
    let event = ContinuationEvent::start(big);
    let err = jobs
        .run(
            LambdaEvent::new(event, context(now_ms() - 1)),
            |s: String| async move { Ok::<_, String>(Step::Continue(s)) },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ContinuationError::StateTooLarge { .. }));
    assert!(err.to_string().contains("1048576"), "{err}");
    assert!(server.take().is_empty());
}

#[tokio::test]
async fn a_bad_budget_names_the_variable() {
    let server = CaptureServer::start("{}").await;
    let lambda = lambda_client(&server).await;
    for bad in ["0", "-1", "many", "1000001"] {
        let err = Continuations::builder(lambda.clone())
            .build_from_env_source(|k| {
                (k == "LOOP_GUARD_MAX_CONTINUATIONS").then(|| bad.to_string())
            })
            .unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("LOOP_GUARD_MAX_CONTINUATIONS={bad:?}")),
            "{err}"
        );
    }
    let err = Continuations::builder(lambda.clone())
        .max_continuations(0)
        .build()
        .unwrap_err();
    assert_eq!(
        err.setting(),
        Some("max_continuations"),
        "the same bounds in code"
    );
    let err = Continuations::builder(lambda)
        .build_from_env_source(|k| (k == "LOOP_GUARD_METRIC_NAMESPACE").then(|| " ".to_string()))
        .unwrap_err();
    assert_eq!(
        err.setting(),
        Some("LOOP_GUARD_METRIC_NAMESPACE"),
        "the layer's namespace rule"
    );
}

#[tokio::test]
async fn a_duplicate_delivery_processes_nothing_twice() {
    let server = CaptureServer::start("{}").await;
    let jobs = continuations(lambda_client(&server).await, "10", Arc::default());
    let steps = Arc::new(Mutex::new(Vec::new()));
    let step = |steps: Arc<Mutex<Vec<u32>>>| {
        move |s: Countdown| {
            let steps = steps.clone();
            async move {
                steps.lock().unwrap().push(s.number_of_calls);
                count_down(s).await
            }
        }
    };
    let first = ContinuationEvent::start(Countdown {
        number_of_calls: 3,
        processed: vec![],
    });
    let outcome = jobs
        .run(
            LambdaEvent::new(first, context(now_ms() - 1)),
            step(steps.clone()),
        )
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Continued { sequence: 1 });
    let continuation: ContinuationEvent<Countdown> =
        serde_json::from_slice(&server.take()[0].body).unwrap();
    assert_eq!(
        continuation.meta.job_id.as_deref(),
        Some("req"),
        "the job is named by its first request"
    );

    // Lambda delivers the continuation twice.
    let once = jobs
        .run(
            LambdaEvent::new(continuation.clone(), context(now_ms() - 1)),
            step(steps.clone()),
        )
        .await
        .unwrap();
    let twice = jobs
        .run(
            LambdaEvent::new(continuation, context(now_ms() - 1)),
            step(steps.clone()),
        )
        .await
        .unwrap();
    assert_eq!(once, Outcome::Continued { sequence: 2 });
    assert_eq!(twice, Outcome::Duplicate { sequence: 1 });
    assert_eq!(
        *steps.lock().unwrap(),
        vec![3, 2],
        "position 2 was processed once"
    );
    assert_eq!(
        server.take().len(),
        1,
        "only the first delivery handed over"
    );
}

/// Steps executed, by the number each step processed.
type Executed = Arc<Mutex<Vec<u32>>>;

/// What a boxed countdown step returns.
type StepFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Step<Countdown>, String>> + Send>>;

/// A countdown step that records what it processes and fails the first
/// time it reaches `fail_at` (a transient error).
fn flaky_step(executed: Executed, fail_at: Option<u32>) -> impl FnMut(Countdown) -> StepFuture {
    let failed = Arc::new(Mutex::new(false));
    move |s: Countdown| {
        let (executed, failed) = (executed.clone(), failed.clone());
        Box::pin(async move {
            executed.lock().unwrap().push(s.number_of_calls);
            let fail_now = Some(s.number_of_calls) == fail_at
                && !std::mem::replace(&mut *failed.lock().unwrap(), true);
            if fail_now {
                return Err(format!("transient failure at {}", s.number_of_calls));
            }
            count_down(s).await.map_err(|e| e.to_string())
        })
    }
}

/// Feeds the job to `jobs` the way Lambda would: each hand-off captured by
/// the server becomes the next event; a failed run is retried with the same
/// event (Lambda's asynchronous retry), up to `retries` times in all.
async fn drive(
    jobs: &Continuations,
    server: &CaptureServer,
    mut event: ContinuationEvent<Countdown>,
    executed: &Executed,
    fail_at: Option<u32>,
    retries: usize,
) -> (Countdown, usize) {
    let mut step = flaky_step(executed.clone(), fail_at);
    let mut failures = 0;
    loop {
        match jobs
            .run(
                LambdaEvent::new(event.clone(), context(now_ms() - 1)),
                &mut step,
            )
            .await
        {
            Ok(Outcome::Finished(state)) => return (state, failures),
            Ok(Outcome::Continued { .. }) => {
                let captured = server.take();
                assert_eq!(captured.len(), 1);
                event = serde_json::from_slice(&captured[0].body).unwrap();
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(error) => {
                failures += 1;
                assert!(failures <= retries, "gave up after {error}");
            }
        }
    }
}

fn countdown(n: u32) -> ContinuationEvent<Countdown> {
    ContinuationEvent::start(Countdown {
        number_of_calls: n,
        processed: vec![],
    })
}

#[tokio::test]
async fn a_step_error_releases_the_run_and_lambdas_retry_runs_it_again() {
    let server = CaptureServer::start("{}").await;
    let jobs = continuations(lambda_client(&server).await, "10", Arc::default());
    let executed = Executed::default();
    let (done, failures) = drive(&jobs, &server, countdown(3), &executed, Some(2), 2).await;
    assert_eq!(failures, 1);
    assert_eq!(done.processed, vec![3, 2, 1], "each number processed once");
    assert_eq!(
        *executed.lock().unwrap(),
        vec![3, 2, 2, 1],
        "the failed step ran again on the retry, nothing else twice"
    );
    assert!(server.take().is_empty());
}

#[tokio::test]
async fn a_throttled_hand_off_releases_the_run_and_lambdas_retry_hands_off() {
    let server = CaptureServer::start("{}").await;
    let sdk = server.sdk_config().await;
    // No SDK retries: the first Invoke fails as a throttled one would after
    // the SDK gave up.
    let lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&sdk)
            .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
            .build(),
    );
    let jobs = continuations(lambda, "10", Arc::default());
    let executed = Executed::default();
    server.throttle_next(1);
    let first = jobs
        .run(
            LambdaEvent::new(countdown(2), context(now_ms() - 1)),
            flaky_step(executed.clone(), None),
        )
        .await
        .unwrap_err();
    assert!(matches!(first, ContinuationError::Invoke(_)), "{first}");
    assert!(first.to_string().contains("TooManyRequests"), "{first}");
    assert_eq!(server.take().len(), 1, "the throttled Invoke");
    let (done, failures) = drive(&jobs, &server, countdown(2), &executed, None, 0).await;
    assert_eq!(failures, 0);
    assert_eq!(done.processed, vec![2, 1]);
    assert_eq!(
        *executed.lock().unwrap(),
        vec![2, 2, 1],
        "the retry ran the step again and handed off"
    );
}

#[tokio::test]
async fn a_run_that_timed_out_is_taken_over_once_its_claim_expires() {
    let server = CaptureServer::start("{}").await;
    let ledger = Arc::new(InMemoryLedger::default());
    let jobs = Continuations::builder(lambda_client(&server).await)
        .safety_margin(Duration::ZERO)
        .claim_poll_interval(Duration::from_millis(20))
        .metric_sink(())
        .ledger(ledger.clone())
        .build_from_env_source(|k| (k == "AWS_LAMBDA_FUNCTION_NAME").then(|| "long-job".into()))
        .unwrap();
    let mut continuation = countdown(2);
    continuation.meta.sequence = 1;
    continuation.meta.job_id = Some("timed-out-job".into());

    // A first delivery took the run, then its invocation was killed at its
    // deadline (no code runs on a kill: the claim stays in progress).
    let dead_deadline = UNIX_EPOCH + Duration::from_millis(now_ms() + 300);
    let held = ledger
        .begin(
            "long-job/timed-out-job",
            1,
            "killed-delivery",
            dead_deadline,
            SystemTime::now(),
        )
        .await
        .unwrap();
    assert!(matches!(held, Claim::Acquired(_)));

    // Lambda's retry waits for the claim to expire, then takes the run over.
    let executed = Executed::default();
    let mut taken_over_at = None;
    let retried = jobs
        .run(LambdaEvent::new(continuation, context(now_ms() + 5_000)), {
            let (executed, taken_over_at) = (executed.clone(), &mut taken_over_at);
            move |s: Countdown| {
                taken_over_at.get_or_insert_with(SystemTime::now);
                let executed = executed.clone();
                async move {
                    executed.lock().unwrap().push(s.number_of_calls);
                    count_down(s).await.map_err(|e| e.to_string())
                }
            }
        })
        .await
        .unwrap();
    assert!(
        taken_over_at.unwrap() >= dead_deadline,
        "taken over at the expiry, not before"
    );
    assert!(matches!(retried, Outcome::Finished(_)), "{retried:?}");
    assert_eq!(*executed.lock().unwrap(), vec![2, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_step_releases_its_claim_at_once() {
    let server = CaptureServer::start("{}").await;
    let jobs = Continuations::builder(lambda_client(&server).await)
        .safety_margin(Duration::ZERO)
        .claim_poll_interval(Duration::from_millis(20))
        .metric_sink(())
        .build()
        .unwrap();
    let mut continuation = countdown(1);
    continuation.meta.sequence = 1;
    continuation.meta.job_id = Some("panicking-job".into());
    // lambda_runtime catches a handler's panic; the run's future is gone.
    let panicked = tokio::spawn({
        let (jobs, continuation) = (jobs.clone(), continuation.clone());
        async move {
            jobs.run(
                LambdaEvent::new(continuation, context(now_ms() + 60_000)),
                |_: Countdown| async move {
                    panic!("a bug in a step");
                    #[allow(unreachable_code)]
                    Ok::<Step<Countdown>, String>(Step::Continue(countdown(0).state.unwrap()))
                },
            )
            .await
        }
    })
    .await;
    assert!(panicked.unwrap_err().is_panic());
    // The retry, a minute before the dead claim's deadline, runs at once.
    let retried = tokio::time::timeout(
        Duration::from_secs(5),
        jobs.run(
            LambdaEvent::new(continuation, context(now_ms() + 60_000)),
            |s: Countdown| async move { count_down(s).await.map_err(|e| e.to_string()) },
        ),
    )
    .await
    .expect("the released run is taken at once, not after the deadline")
    .unwrap();
    assert!(matches!(retried, Outcome::Finished(_)), "{retried:?}");
}

#[tokio::test]
async fn a_run_of_several_steps_that_fails_is_run_again_from_its_start() {
    // One run does all the steps it has time for; when one fails, the
    // retry starts the run again from the state the run began with: every
    // step of the failed run runs again (steps must be idempotent), and
    // nothing of the runs before it.
    let server = CaptureServer::start("{}").await;
    let jobs = continuations(lambda_client(&server).await, "10", Arc::default());
    let executed = Executed::default();
    let mut step = flaky_step(executed.clone(), Some(2));
    let event = || LambdaEvent::new(countdown(4), context(now_ms() + 60_000));
    let failed = jobs.run(event(), &mut step).await.unwrap_err();
    assert!(
        failed.to_string().contains("transient failure at 2"),
        "{failed}"
    );
    let done = jobs.run(event(), &mut step).await.unwrap();
    assert!(matches!(done, Outcome::Finished(ref c) if c.processed == [4, 3, 2, 1]));
    assert_eq!(*executed.lock().unwrap(), vec![4, 3, 2, 4, 3, 2, 1]);
    assert!(server.take().is_empty(), "one run, no hand-off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_during_the_run_waits_for_it_and_never_runs_a_step() {
    let server = CaptureServer::start("{}").await;
    let jobs = Continuations::builder(lambda_client(&server).await)
        .safety_margin(Duration::from_millis(1_500))
        .claim_poll_interval(Duration::from_millis(20))
        .metric_sink(())
        .build()
        .unwrap();
    let mut continuation = countdown(1_000);
    continuation.meta.sequence = 1;
    continuation.meta.job_id = Some("busy-job".into());
    let steps = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let step = |who: &'static str| {
        let steps = steps.clone();
        move |s: Countdown| {
            let steps = steps.clone();
            async move {
                steps.lock().unwrap().push(who);
                tokio::time::sleep(Duration::from_millis(100)).await;
                count_down(s).await.map_err(|e| e.to_string())
            }
        }
    };
    let start = now_ms();
    // The first delivery steps until 1.5 s before its deadline (~0.5 s).
    let first = jobs.run(
        LambdaEvent::new(continuation.clone(), context(start + 2_000)),
        step("first"),
    );
    // A duplicate that can wait until 1.5 s before its own later deadline.
    let patient = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        jobs.run(
            LambdaEvent::new(continuation.clone(), context(start + 4_000)),
            step("patient"),
        )
        .await
    };
    // A duplicate whose own margin is reached before the run is done.
    let hurried = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        jobs.run(
            LambdaEvent::new(continuation.clone(), context(start + 1_700)),
            step("hurried"),
        )
        .await
    };
    let (first, patient, hurried) = tokio::join!(first, patient, hurried);
    assert_eq!(first.unwrap(), Outcome::Continued { sequence: 2 });
    assert_eq!(patient.unwrap(), Outcome::Duplicate { sequence: 1 });
    let hurried = hurried.unwrap_err();
    assert!(
        matches!(hurried, ContinuationError::InProgress { sequence: 1, .. }),
        "fails, so that Lambda retries it later: {hurried}"
    );
    let steps = steps.lock().unwrap();
    assert!(
        !steps.is_empty() && steps.iter().all(|who| *who == "first"),
        "{steps:?}"
    );
    assert_eq!(server.take().len(), 1, "one hand-off");
}

/// With signing keys, a job's hops carry the signed lineage it arrived
/// with, unchanged and still verifying, in the payload and the trace header
/// alike; the guard of each hop reads it as signed (nothing unverified).
#[tokio::test]
async fn a_signed_job_passes_its_signed_lineage_on_unchanged() {
    const KEY: &str = "a-continuation-key-of-32-bytes-0";
    let server = CaptureServer::start("{}").await;
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let jobs = continuations(lambda_client(&server).await, "45", lines.clone());
    let metrics = lambda_loop_guard::testing::CapturedMetrics::default();
    let guard = LoopGuardLayer::new(
        LoopGuardConfig::builder()
            .function_identity("long-job")
            .max_depth(16)
            .signing_key(KEY)
            .build()
            .unwrap(),
    )
    .metric_sink(metrics.clone());
    let service = guarded_countdown(guard, jobs);
    let keys = lambda_loop_guard::signing::SigningKeys::new([KEY])
        .unwrap()
        .unwrap();
    let me = lambda_loop_guard::FunctionId::from_identity("long-job");
    let arrived = keys
        .sign(
            &lambda_loop_guard::Lineage::new()
                .record_run(me)
                .record_run(me),
        )
        .to_string();
    let mut payload = json!({"state": {"number_of_calls": 3, "processed": []}});
    payload["loopGuardContinuation"] = json!({"sequence": 0, "lineage": arrived});
    let mut hops = 0;
    loop {
        let event: ContinuationEvent<Countdown> = serde_json::from_value(payload.clone()).unwrap();
        let outcome = service
            .clone()
            .oneshot(LambdaEvent::new(event, context(now_ms() - 1)))
            .await
            .unwrap();
        match outcome {
            Outcome::Finished(_) => break,
            Outcome::Continued { .. } => {
                hops += 1;
                let request = server.take().remove(0);
                payload = serde_json::from_slice(&request.body).unwrap();
                assert_eq!(
                    payload["loopGuardContinuation"]["lineage"],
                    arrived.as_str()
                );
                let header = request.header("x-amzn-trace-id").unwrap();
                let header = lambda_loop_guard::trace_header::TraceHeader::parse(header).unwrap();
                assert_eq!(header.lineage().unwrap().to_string(), arrived);
                assert!(matches!(
                    keys.verify(&arrived),
                    lambda_loop_guard::signing::Verified::Signed(_)
                ));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(hops, 2);
    assert!(
        metrics
            .lines()
            .iter()
            .all(|l| !l.contains("UnverifiedLineages")),
        "{:?}",
        metrics.lines()
    );
}
