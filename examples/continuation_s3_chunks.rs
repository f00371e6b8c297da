//! A large S3 object processed in chunks across invocations with
//! `Continuations`: each run counts the lines of one chunk and hands the
//! position over. The object is loaded once per warm execution environment
//! and cached; later runs revalidate the cache with `If-None-Match: <ETag>`
//! (S3 answers 304 Not Modified without sending the body again).
//!
//! First payload: `{"state": {"bucket": "b", "key": "k", "offset": 0, "chunk": 65536, "lines": 0}}`.
//! Env: `JOB_SAFETY_MARGIN_MS` (default 10000), `S3_FORCE_PATH_STYLE=true`
//! for emulators, `JOB_LEDGER_BUCKET` to recognise duplicate deliveries in
//! any execution environment (`S3Ledger`, claims under `claims/`).

use std::sync::Mutex;
use std::time::Duration;

use aws_config::BehaviorVersion;
use lambda_loop_guard::continuation::{ContinuationEvent, Continuations, Outcome, S3Ledger, Step};
use lambda_loop_guard::interceptor::LoopGuardSdkExt;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Scan {
    bucket: String,
    key: String,
    offset: usize,
    chunk: usize,
    lines: usize,
}

/// The object as last loaded in this execution environment: (ETag, bytes).
static CACHE: Mutex<Option<(String, Vec<u8>)>> = Mutex::new(None);

/// The object's bytes, from the warm cache when S3 says it has not changed.
async fn load(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<(Vec<u8>, bool), Error> {
    let cached_etag = CACHE.lock().unwrap().as_ref().map(|(etag, _)| etag.clone());
    let mut get = s3.get_object().bucket(bucket).key(key);
    if let Some(etag) = &cached_etag {
        get = get.if_none_match(etag);
    }
    match get.send().await {
        Ok(object) => {
            let etag = object.e_tag().unwrap_or_default().to_owned();
            let bytes = object.body.collect().await?.into_bytes().to_vec();
            *CACHE.lock().unwrap() = Some((etag, bytes.clone()));
            Ok((bytes, false))
        }
        Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(304) => {
            let cached = CACHE
                .lock()
                .unwrap()
                .as_ref()
                .map(|(_, b)| b.clone())
                .unwrap_or_default();
            Ok((cached, true))
        }
        Err(e) => Err(aws_sdk_s3::error::DisplayErrorContext(e).to_string().into()),
    }
}

async fn handler(
    jobs: Continuations,
    s3: aws_sdk_s3::Client,
    event: LambdaEvent<ContinuationEvent<Scan>>,
) -> Result<String, Error> {
    let sequence = event.payload.meta.sequence;
    let outcome = jobs
        .run(event, |mut scan: Scan| {
            let s3 = s3.clone();
            async move {
                let (bytes, cache_hit) = load(&s3, &scan.bucket, &scan.key).await?;
                let end = (scan.offset + scan.chunk).min(bytes.len());
                scan.lines += bytes[scan.offset..end]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count();
                println!(
                    "chunk sequence={sequence} offset={} end={end} cache={}",
                    scan.offset,
                    if cache_hit { "hit" } else { "miss" }
                );
                scan.offset = end;
                Ok::<_, Error>(if end == bytes.len() {
                    Step::Done(scan)
                } else {
                    Step::Continue(scan)
                })
            }
        })
        .await?;
    Ok(match outcome {
        Outcome::Finished(scan) => {
            println!("chunks finished lines={} bytes={}", scan.lines, scan.offset);
            format!("{} lines", scan.lines)
        }
        Outcome::Continued { sequence } => format!("continued as {sequence}"),
        Outcome::Duplicate { sequence } => {
            println!("chunks duplicate sequence={sequence} skipped");
            format!("duplicate {sequence} skipped")
        }
        _ => String::new(),
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_ansi(false)
        .without_time()
        .init();
    let sdk_config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&sdk_config)
            .loop_guard()
            .build(),
    );
    let path_style = std::env::var("S3_FORCE_PATH_STYLE").is_ok_and(|v| v == "true");
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk_config)
            .force_path_style(path_style)
            .build(),
    );
    let margin = std::env::var("JOB_SAFETY_MARGIN_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut jobs = Continuations::builder(lambda).safety_margin(Duration::from_millis(margin));
    if let Ok(bucket) = std::env::var("JOB_LEDGER_BUCKET") {
        jobs = jobs.ledger(S3Ledger::new(s3.clone(), bucket, "claims/"));
    }
    let jobs = jobs.build_from_env()?;
    lambda_loop_guard::run(service_fn(move |event| {
        handler(jobs.clone(), s3.clone(), event)
    }))
    .await
}
