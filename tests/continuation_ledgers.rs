//! One test suite, every continuation ledger: the in-memory one, the S3
//! ledger on moto's S3 (conditional writes with `If-None-Match` /
//! `If-Match`) and the DynamoDB ledger on moto's DynamoDB (condition
//! expressions). In progress, done, released, expired and taken over;
//! only the holder completes or releases; one winner in a race.
#![cfg(feature = "continuation")]

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_loop_guard::continuation::{Claim, ClaimToken, ContinuationLedger, InMemoryLedger};

/// Now, to the millisecond (what durable ledgers store).
fn t0() -> SystemTime {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

async fn acquire(
    ledger: &dyn ContinuationLedger,
    job: &str,
    sequence: u32,
    owner: &str,
    until: SystemTime,
    now: SystemTime,
) -> ClaimToken {
    match ledger
        .begin(job, sequence, owner, until, now)
        .await
        .unwrap()
    {
        Claim::Acquired(token) => token,
        other => panic!("{owner} should hold run {sequence} of {job}, found {other:?}"),
    }
}

/// The suite every ledger passes.
async fn suite(ledger: Arc<dyn ContinuationLedger>) {
    let l = &*ledger;
    let t0 = t0();
    let until = t0 + secs(60);

    // A free run is acquired; a second delivery finds it in progress.
    let a = acquire(l, "job", 1, "owner-a", until, t0).await;
    assert_eq!(
        l.begin("job", 1, "owner-b", t0 + secs(90), t0 + secs(1))
            .await
            .unwrap(),
        Claim::InProgress { until }
    );
    // Other runs and jobs are independent.
    acquire(l, "job", 2, "owner-c", until, t0).await;
    acquire(l, "other-job", 1, "owner-c", until, t0).await;

    // Only the holder releases; then a retry acquires it.
    let stranger = ClaimToken("not-a-holder".into());
    assert!(l.release("job", 1, &stranger).await.is_err());
    assert!(l.complete("job", 1, &stranger, t0).await.is_err());
    l.release("job", 1, &a).await.unwrap();
    let b = acquire(l, "job", 1, "owner-b", until, t0 + secs(2)).await;
    assert!(
        l.complete("job", 1, &a, t0).await.is_err(),
        "a released claim's old token completes nothing"
    );

    // Done is final, for every later delivery.
    l.complete("job", 1, &b, t0 + secs(3)).await.unwrap();
    assert_eq!(
        l.begin("job", 1, "owner-d", until, t0 + secs(4))
            .await
            .unwrap(),
        Claim::Done
    );
    assert!(l.release("job", 1, &b).await.is_err(), "done stays done");
    assert_eq!(
        l.begin("job", 1, "owner-e", until, t0 + secs(3600))
            .await
            .unwrap(),
        Claim::Done,
        "still done an hour later"
    );

    // An expired claim (its run timed out) is taken over; the expired
    // holder can then neither complete nor release.
    let c = acquire(l, "job", 3, "owner-c", t0 + secs(10), t0).await;
    let d = acquire(l, "job", 3, "owner-d", t0 + secs(100), t0 + secs(11)).await;
    assert!(l.complete("job", 3, &c, t0 + secs(12)).await.is_err());
    assert!(l.release("job", 3, &c).await.is_err());
    assert_eq!(
        l.begin("job", 3, "owner-e", until, t0 + secs(12))
            .await
            .unwrap(),
        Claim::InProgress {
            until: t0 + secs(100)
        }
    );
    l.complete("job", 3, &d, t0 + secs(13)).await.unwrap();

    // Expired means `until` is not after now: at that very instant too.
    acquire(l, "job", 4, "owner-e", t0 + secs(20), t0).await;
    acquire(l, "job", 4, "owner-f", t0 + secs(50), t0 + secs(20)).await;

    // A delivery whose claim was written but whose answer was lost (the SDK
    // retries the write) holds the run, rather than wait for itself.
    acquire(l, "job", 5, "owner-g", until, t0).await;
    let again = acquire(l, "job", 5, "owner-g", until, t0 + secs(1)).await;
    l.complete("job", 5, &again, t0 + secs(2)).await.unwrap();
}

/// Eight deliveries at once: exactly one holds the run. Run against the
/// in-memory ledger only: the emulators do not make their conditional
/// writes atomic under concurrent requests, and real S3 and DynamoDB do.
async fn race(ledger: Arc<dyn ContinuationLedger>) {
    let until = t0() + secs(60);
    let mut racers = tokio::task::JoinSet::new();
    for n in 0..8 {
        let ledger = ledger.clone();
        racers.spawn(async move {
            ledger
                .begin("race", 1, &format!("racer-{n}"), until, t0())
                .await
                .unwrap()
        });
    }
    let claims = racers.join_all().await;
    let held = claims
        .iter()
        .filter(|c| matches!(c, Claim::Acquired(_)))
        .count();
    assert_eq!(held, 1, "{claims:?}");
    assert!(
        claims
            .iter()
            .all(|c| matches!(c, Claim::Acquired(_) | Claim::InProgress { .. })),
        "{claims:?}"
    );
}

#[tokio::test]
async fn the_in_memory_ledger_passes_the_suite() {
    suite(Arc::new(InMemoryLedger::default())).await;
    race(Arc::new(InMemoryLedger::default())).await;
}

#[cfg(feature = "continuation-s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_ledger_passes_the_suite_on_moto() {
    let moto = support::start_moto();
    let s3 = moto.s3_client().await;
    s3.create_bucket().bucket("ledger").send().await.unwrap();
    let ledger = lambda_loop_guard::continuation::S3Ledger::new(s3.clone(), "ledger", "claims/");
    suite(Arc::new(ledger)).await;
    let listed = s3
        .list_objects_v2()
        .bucket("ledger")
        .send()
        .await
        .unwrap()
        .contents
        .unwrap_or_default();
    assert!(listed
        .iter()
        .all(|o| o.key().unwrap().starts_with("claims/")));
}

#[cfg(feature = "continuation-dynamodb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_ledger_passes_the_suite_on_moto() {
    let moto = support::start_moto();
    let dynamodb = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    support::create_table(&dynamodb, "ledger", "pk").await;
    let ledger = lambda_loop_guard::continuation::DynamoDbLedger::new(dynamodb.clone(), "ledger")
        .key_attribute("pk");
    suite(Arc::new(ledger)).await;
    let done = dynamodb
        .get_item()
        .table_name("ledger")
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("job#1".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(done["status"].as_s().unwrap(), "COMPLETED");
    assert!(done["expiration"].as_n().is_ok(), "a TTL attribute");
}
