//! Continuation state over the 1 MB asynchronous payload limit, offloaded to
//! real (moto) S3, passed by reference, loaded by the next run and deleted
//! once consumed: nothing is left when the chain finishes.
#![cfg(feature = "continuation-s3")]

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use lambda_loop_guard::continuation::{
    ContinuationEvent, Continuations, Outcome, S3Ledger, Step, MAX_ASYNC_PAYLOAD_BYTES,
};
use lambda_runtime::{Context, LambdaEvent};
use support::{start_moto, CaptureServer};

fn context(deadline_ms: u64) -> Context {
    let mut c = Context::default();
    c.request_id = "big-job".into();
    c.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:big".into();
    c.deadline = deadline_ms;
    c
}

fn past() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 1
}

async fn keys(s3: &aws_sdk_s3::Client) -> Vec<String> {
    objects(s3, "job-state").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_state_travels_through_s3_and_is_deleted_when_the_chain_finishes() {
    let moto = start_moto();
    let s3 = moto.s3_client().await;
    s3.create_bucket().bucket("job-state").send().await.unwrap();
    let lambda_capture = CaptureServer::start("{}").await;
    let lambda = aws_sdk_lambda::Client::new(&lambda_capture.sdk_config().await);
    let jobs = Continuations::builder(lambda)
        .safety_margin(std::time::Duration::ZERO)
        .metric_sink(())
        .offload_to_s3(s3.clone(), "job-state", "continuations/")
        .build()
        .unwrap();

    // 1.8 MB of state: three chunks of work left.
    let state: Vec<String> = (0..3).map(|i| format!("{i}").repeat(600_000)).collect();
    let step = |mut chunks: Vec<String>| async move {
        chunks.pop();
        Ok::<_, String>(if chunks.is_empty() {
            Step::Done(chunks)
        } else {
            Step::Continue(chunks)
        })
    };

    // Run 0: one chunk done, 1.2 MB left: over the payload limit, so offloaded.
    let outcome = jobs
        .run(
            LambdaEvent::new(ContinuationEvent::start(state), context(past())),
            step,
        )
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Continued { sequence: 1 });
    let body = lambda_capture.take().pop().unwrap().body;
    assert!(
        body.len() < 4096,
        "the payload carries a reference, not the state ({} bytes)",
        body.len()
    );
    let event: ContinuationEvent<Vec<String>> = serde_json::from_slice(&body).unwrap();
    assert!(event.state.is_none());
    let state_ref = event.meta.state_ref.clone().unwrap();
    assert_eq!(state_ref.bucket, "job-state");
    assert_eq!(keys(&s3).await, vec![state_ref.key.clone()]);

    // Run 1: loads the state from S3; 0.6 MB left fits inline; the consumed object is deleted.
    let outcome = jobs
        .run(LambdaEvent::new(event, context(past())), step)
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Continued { sequence: 2 });
    let body = lambda_capture.take().pop().unwrap().body;
    assert!(body.len() > 600_000 && body.len() < MAX_ASYNC_PAYLOAD_BYTES);
    let event: ContinuationEvent<Vec<String>> = serde_json::from_slice(&body).unwrap();
    assert_eq!(event.state.as_ref().map(Vec::len), Some(1));
    assert!(keys(&s3).await.is_empty(), "consumed state is deleted");

    // Run 2 finishes.
    let outcome = jobs
        .run(LambdaEvent::new(event, context(past())), step)
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Finished(vec![]));
    assert!(keys(&s3).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_ledger_recognises_a_duplicate_in_any_environment() {
    let moto = start_moto();
    let s3 = moto.s3_client().await;
    s3.create_bucket()
        .bucket("job-ledger")
        .send()
        .await
        .unwrap();
    // Two separate runners (two execution environments) share the ledger.
    let lambda_capture = CaptureServer::start("{}").await;
    let runner = |ledger: S3Ledger, lambda: aws_sdk_lambda::Client| {
        Continuations::builder(lambda)
            .safety_margin(std::time::Duration::ZERO)
            .metric_sink(())
            .ledger(ledger)
            .build()
            .unwrap()
    };
    let lambda = aws_sdk_lambda::Client::new(&lambda_capture.sdk_config().await);
    let first = runner(
        S3Ledger::new(s3.clone(), "job-ledger", "claims/"),
        lambda.clone(),
    );
    let second = runner(S3Ledger::new(s3.clone(), "job-ledger", "claims/"), lambda);
    let mut event = ContinuationEvent::start(5u32);
    event.meta.sequence = 3;
    event.meta.job_id = Some("job-3".into());
    let step = |n: u32| async move { Ok::<_, String>(Step::Continue(n - 1)) };
    let a = first
        .run(LambdaEvent::new(event.clone(), context(past())), step)
        .await
        .unwrap();
    let b = second
        .run(LambdaEvent::new(event, context(past())), step)
        .await
        .unwrap();
    assert_eq!(a, Outcome::Continued { sequence: 4 });
    assert_eq!(b, Outcome::Duplicate { sequence: 3 });
    assert_eq!(
        lambda_capture.take().len(),
        1,
        "only one environment handed over"
    );
}

/// The objects of `bucket`.
async fn objects(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    s3.list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .contents
        .unwrap_or_default()
        .into_iter()
        .filter_map(|o| o.key)
        .collect()
}

/// Anyone who can invoke the function can write a state reference: one
/// outside the offload bucket and prefix, or to another job's object, is
/// refused, and nothing is read or deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_state_reference_is_refused_and_nothing_is_read_or_deleted() {
    let moto = start_moto();
    let s3 = moto.s3_client().await;
    for bucket in ["job-state", "payroll"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    let put = |bucket: &'static str, key: &'static str| {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"[\"x\"]"))
            .send()
    };
    put("payroll", "salaries.json").await.unwrap();
    put("job-state", "continuations/other-job/4.json")
        .await
        .unwrap();
    let lambda_capture = CaptureServer::start("{}").await;
    let jobs = Continuations::builder(aws_sdk_lambda::Client::new(
        &lambda_capture.sdk_config().await,
    ))
    .safety_margin(std::time::Duration::ZERO)
    .metric_sink(())
    .offload_to_s3(s3.clone(), "job-state", "continuations/")
    .build()
    .unwrap();
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for (bucket, key) in [
        ("payroll", "salaries.json"),
        ("job-state", "continuations/other-job/4.json"),
        ("job-state", "elsewhere/my-job/4.json"),
    ] {
        let mut event: ContinuationEvent<Vec<String>> = ContinuationEvent::start(vec![]);
        event.state = None;
        event.meta.sequence = 4;
        event.meta.job_id = Some("my-job".into());
        event.meta.state_ref = Some(lambda_loop_guard::continuation::StateRef {
            bucket: bucket.into(),
            key: key.into(),
        });
        let ran = ran.clone();
        let err = jobs
            .run(LambdaEvent::new(event, context(past())), move |s| {
                ran.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move { Ok::<_, String>(Step::Done(s)) }
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("refused state reference"), "{err}");
    }
    // A reference next to inline state is never read, so never deleted.
    let mut both: ContinuationEvent<Vec<String>> = ContinuationEvent::start(vec![]);
    both.meta.state_ref = Some(lambda_loop_guard::continuation::StateRef {
        bucket: "payroll".into(),
        key: "salaries.json".into(),
    });
    let err = jobs
        .run(LambdaEvent::new(both, context(past())), |s| async move {
            Ok::<_, String>(Step::Done(s))
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("both"), "{err}");
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(objects(&s3, "payroll").await, ["salaries.json"]);
    assert_eq!(
        objects(&s3, "job-state").await,
        ["continuations/other-job/4.json"]
    );
    assert!(lambda_capture.take().is_empty());
}

/// Offloaded state on every path: a failed hand-off deletes the object it
/// put; a failed step keeps the loaded state for the retry; an exhausted
/// budget keeps the refused event's state for the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offloaded_state_is_deleted_or_kept_on_purpose_on_every_path() {
    let moto = start_moto();
    let s3 = moto.s3_client().await;
    s3.create_bucket().bucket("job-state").send().await.unwrap();
    let lambda_capture = CaptureServer::start("{}").await;
    let sdk = lambda_capture.sdk_config().await;
    let lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&sdk)
            .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
            .build(),
    );
    let jobs = Continuations::builder(lambda)
        .safety_margin(std::time::Duration::ZERO)
        .max_continuations(2)
        .metric_sink(())
        .offload_to_s3(s3.clone(), "job-state", "continuations/")
        .build()
        .unwrap();
    let big =
        |n: usize| -> Vec<String> { (0..n).map(|i| format!("{i}").repeat(600_000)).collect() };
    let pop = |mut chunks: Vec<String>| async move {
        chunks.pop();
        Ok::<_, String>(Step::Continue(chunks))
    };

    // A throttled hand-off: the object put for it is deleted at once.
    lambda_capture.throttle_next(1);
    let err = jobs
        .run(
            LambdaEvent::new(ContinuationEvent::start(big(4)), context(past())),
            pop,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invoke failed"), "{err}");
    assert_eq!(lambda_capture.take().len(), 1);
    assert!(keys(&s3).await.is_empty(), "nothing refers to it");

    // The retry hands off: its state is in S3.
    let outcome = jobs
        .run(
            LambdaEvent::new(ContinuationEvent::start(big(4)), context(past())),
            pop,
        )
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Continued { sequence: 1 });
    let event: ContinuationEvent<Vec<String>> =
        serde_json::from_slice(&lambda_capture.take()[0].body).unwrap();
    let loaded = event.meta.state_ref.clone().unwrap().key;
    assert_eq!(keys(&s3).await, std::slice::from_ref(&loaded));

    // A failed step keeps the loaded state: the retry needs it.
    let err = jobs
        .run(
            LambdaEvent::new(event.clone(), context(past())),
            |_| async { Err::<Step<Vec<String>>, _>("transient".to_string()) },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("transient"), "{err}");
    assert_eq!(keys(&s3).await, std::slice::from_ref(&loaded));

    // The retry succeeds: its loaded object goes, the next one is put.
    jobs.run(LambdaEvent::new(event, context(past())), pop)
        .await
        .unwrap();
    let event: ContinuationEvent<Vec<String>> =
        serde_json::from_slice(&lambda_capture.take()[0].body).unwrap();
    let next = event.meta.state_ref.clone().unwrap().key;
    assert_eq!(keys(&s3).await, std::slice::from_ref(&next));
    assert_ne!(next, loaded);

    // Run 2 hands off to 3, which the budget of 2 refuses: its state stays
    // for the operator who resumes the job from the DLQ.
    jobs.run(
        LambdaEvent::new(event, context(past())),
        |chunks| async move { Ok::<_, String>(Step::Continue(chunks)) },
    )
    .await
    .unwrap();
    let refused: ContinuationEvent<Vec<String>> =
        serde_json::from_slice(&lambda_capture.take()[0].body).unwrap();
    let kept = refused.meta.state_ref.clone().unwrap().key;
    let err = jobs
        .run(LambdaEvent::new(refused, context(past())), pop)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        lambda_loop_guard::continuation::ContinuationError::BudgetExhausted { sequence: 3, .. }
    ));
    assert_eq!(keys(&s3).await, [kept]);
}
