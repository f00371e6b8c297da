//! A long job split across invocations with `Continuations`: a countdown of
//! `remaining` steps, one batch of work per step, handing over to a new
//! asynchronous invocation of itself when its time is up. Deployed as a
//! `provided.al2023` `bootstrap` by the end-to-end tests.
//!
//! Env: `LOOP_GUARD_MAX_CONTINUATIONS` (the job's budget), `JOB_SAFETY_MARGIN_MS`
//! (time kept in reserve before the deadline; default 10000), `JOB_STEP_PAUSE_MS`
//! (how long one step's work takes; default 20), `JOB_LEDGER_TABLE` (a
//! DynamoDB table, partition key `id`, to know which runs are in progress or
//! done across execution environments; without it, the per-process ledger).
//!
//! Fault injection for the end-to-end tests: `JOB_FAIL_ONCE_AT=n` makes the
//! step at `remaining == n` fail the first time (a transient error; Lambda
//! retries the run), `JOB_HANG_ONCE_AT=n` makes it hang the first time (the
//! invocation times out). "The first time" is recorded in the ledger table.
//!
//! Payload of the first invocation: `{"state": {"remaining": 40, "done": 0}}`.
//!
//! The two classic hand-rolled patterns, as configurations of this one:
//! * the `numberOfCalls` countdown from 5 to 0: `{"state": {"remaining": 5, "done": 0}}`;
//! * an iteration loop with `recursionLimit` 5 and a 2-second pause per
//!   iteration: `LOOP_GUARD_MAX_CONTINUATIONS=5`, `JOB_STEP_PAUSE_MS=2000`,
//!   `{"state": {"remaining": 1000, "done": 0}}` (stops at the limit with
//!   `ContinuationBudgetExhausted`).

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_loop_guard::continuation::{
    ContinuationEvent, Continuations, DynamoDbLedger, Outcome, Step,
};
use lambda_loop_guard::interceptor::LoopGuardSdkExt;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Countdown {
    remaining: u32,
    done: u32,
}

/// Injected faults: each happens once per job, recorded in the ledger table.
#[derive(Clone)]
struct Faults {
    table: Option<(aws_sdk_dynamodb::Client, String)>,
    fail_at: Option<u32>,
    hang_at: Option<u32>,
}

impl Faults {
    /// Whether the fault `kind` at `remaining` happens now: the first time only.
    async fn first_time(&self, kind: &str, remaining: u32) -> bool {
        let Some((client, table)) = &self.table else {
            return false;
        };
        client
            .put_item()
            .table_name(table)
            .item("id", AttributeValue::S(format!("fault#{kind}#{remaining}")))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await
            .is_ok()
    }
}

async fn handler(
    jobs: Continuations,
    pause: Duration,
    faults: Faults,
    event: LambdaEvent<ContinuationEvent<Countdown>>,
) -> Result<String, Error> {
    let sequence = event.payload.meta.sequence;
    let outcome = jobs
        .run(event, move |mut job: Countdown| {
            let faults = faults.clone();
            async move {
                println!("job step sequence={sequence} remaining={}", job.remaining);
                if faults.fail_at == Some(job.remaining)
                    && faults.first_time("fail", job.remaining).await
                {
                    println!(
                        "job step failed sequence={sequence} remaining={}",
                        job.remaining
                    );
                    return Err(Error::from("injected transient failure"));
                }
                if faults.hang_at == Some(job.remaining)
                    && faults.first_time("hang", job.remaining).await
                {
                    println!(
                        "job step hangs sequence={sequence} remaining={}",
                        job.remaining
                    );
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(pause).await; // the work
                job.remaining -= 1;
                job.done += 1;
                Ok::<_, Error>(if job.remaining == 0 {
                    Step::Done(job)
                } else {
                    Step::Continue(job)
                })
            }
        })
        .await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            println!("job run failed sequence={sequence}: {error}");
            return Err(error.into());
        }
    };
    Ok(match outcome {
        Outcome::Finished(job) => {
            println!("job finished done={} sequence={sequence}", job.done);
            format!("finished after {} steps", job.done)
        }
        Outcome::Continued { sequence } => format!("continued as {sequence}"),
        Outcome::Duplicate { sequence } => format!("duplicate delivery of {sequence}: skipped"),
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
    let margin = std::env::var("JOB_SAFETY_MARGIN_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let pause = std::env::var("JOB_STEP_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_millis(20), Duration::from_millis);
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let mut jobs = Continuations::builder(lambda).safety_margin(Duration::from_millis(margin));
    let mut faults = Faults {
        table: None,
        fail_at: number("JOB_FAIL_ONCE_AT"),
        hang_at: number("JOB_HANG_ONCE_AT"),
    };
    if let Ok(table) = std::env::var("JOB_LEDGER_TABLE") {
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk_config);
        jobs = jobs.ledger(DynamoDbLedger::new(dynamodb.clone(), &table));
        faults.table = Some((dynamodb, table));
    }
    let jobs = jobs.build_from_env()?;
    lambda_loop_guard::run(service_fn(move |event| {
        handler(jobs.clone(), pause, faults.clone(), event)
    }))
    .await
}
