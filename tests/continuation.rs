//! Continuations on a real aws-sdk-lambda client whose asynchronous
//! self-invokes land on a loopback capture server, fed back into the guarded
//! handler hop by hop: a 40-step chain runs past the loop threshold of 16,
//! a runaway stops at its budget with its own metric and error.
#![cfg(feature = "continuation")]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_loop_guard::continuation::{
    ContinuationError, ContinuationEvent, Continuations, Outcome, Step, BUDGET_EXHAUSTED_METRIC,
    MAX_ASYNC_PAYLOAD_BYTES,
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
    let service = guard.layer(tower::service_fn(
        move |event: LambdaEvent<ContinuationEvent<Countdown>>| {
            let jobs = jobs.clone();
            async move {
                jobs.run(event, count_down)
                    .await
                    .map_err(lambda_runtime::Error::from)
            }
        },
    ));

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

    // A runaway: never done. It stops at the budget, with its own metric.
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
    assert_eq!(continued, 3);
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
