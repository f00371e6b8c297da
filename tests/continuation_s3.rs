//! Continuation state over the 1 MB asynchronous payload limit, offloaded to
//! real (moto) S3, passed by reference, loaded by the next run and deleted
//! once consumed: nothing is left when the chain finishes.
#![cfg(feature = "continuation-s3")]

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use lambda_loop_guard::continuation::{
    ContinuationEvent, ContinuationLedger, Continuations, Outcome, S3Ledger, Step,
    MAX_ASYNC_PAYLOAD_BYTES,
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
    s3.list_objects_v2()
        .bucket("job-state")
        .send()
        .await
        .unwrap()
        .contents
        .unwrap_or_default()
        .into_iter()
        .filter_map(|o| o.key)
        .collect()
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
    let ledger = S3Ledger::new(s3.clone(), "job-ledger", "claims/");
    assert!(ledger.claim("job-1", 1).await.unwrap());
    assert!(
        !ledger.claim("job-1", 1).await.unwrap(),
        "second claim of the same continuation"
    );
    assert!(ledger.claim("job-1", 2).await.unwrap());
    assert!(ledger.claim("job-2", 1).await.unwrap());

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
