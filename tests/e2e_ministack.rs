//! End to end on ministack: a real `bootstrap` built from
//! `examples/loop_function.rs`, deployed with aws-sdk-lambda, triggered by an
//! SQS event source mapping, looping through real SQS / SNS, stopped by the
//! guard at `LOOP_GUARD_MAX_DEPTH`.
#![cfg(all(feature = "sqs", feature = "sns", feature = "continuation-dynamodb"))]

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_lambda::types::FunctionResponseType;
use aws_sdk_sqs::types::QueueAttributeName;
use lambda_loop_guard::{FunctionId, Lineage};
use support::functions::{deploy, invoke_async, wait_for_log, Clients};
use support::{start_ministack, Emulator};

const MAX_RECEIVE_COUNT: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Topology {
    /// The function sends to the queue that triggers it.
    SqsSelfLoop,
    /// The function publishes to a topic that delivers to its queue.
    SnsToSqs { raw: bool },
}

#[derive(Debug)]
struct Outcome {
    handler_runs: Vec<String>,
    drop_lines: Vec<serde_json::Value>,
    dead_letters: Vec<aws_sdk_sqs::types::Message>,
    left_in_queue: usize,
}

/// A path-style S3 client on the emulator, with `text` put at `bucket/key`
/// and the `extra` buckets created.
#[cfg(feature = "continuation-s3")]
async fn s3_with_object(emulator: &Emulator, bucket: &str, key: &str, text: &str, extra: &[&str]) {
    let s3 = emulator.s3_client().await;
    for b in std::iter::once(bucket).chain(extra.iter().copied()) {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(
            text.as_bytes().to_vec(),
        ))
        .send()
        .await
        .unwrap();
}

async fn run_loop(topology: Topology, max_depth: u16) -> Outcome {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let function = format!("looper-{}", max_depth);

    let ((queue_url, queue_arn), (dlq_url, _)) =
        c.queue_with_dlq("loop-queue", MAX_RECEIVE_COUNT).await;

    let mut env = HashMap::from([
        ("LOOP_GUARD_MAX_DEPTH".to_string(), max_depth.to_string()),
        ("AWS_ENDPOINT_URL".to_string(), emulator.endpoint()),
        ("RUST_BACKTRACE".to_string(), "1".to_string()),
    ]);
    let mut topic_arn = None;
    match topology {
        Topology::SqsSelfLoop => {
            env.insert("LOOP_SEND_QUEUE_URL".into(), queue_url.clone());
        }
        Topology::SnsToSqs { raw } => {
            let arn = c.topic_to_queue("loop-topic", &queue_arn, raw).await;
            env.insert("LOOP_PUBLISH_TOPIC_ARN".into(), arn.clone());
            // Without raw delivery the lineage travels in the envelope,
            // which is read only from a topic the function trusts.
            env.insert("LOOP_GUARD_SNS_TOPICS".into(), arn.clone());
            topic_arn = Some(arn);
        }
    }

    deploy(&c, &function, "loop_function", env, 30).await;
    let mapping = c.map_queue(&queue_arn, &function, 1).await;

    // The first message, as a user request would send it: no lineage.
    match &topic_arn {
        None => {
            c.sqs
                .send_message()
                .queue_url(&queue_url)
                .message_body("first order")
                .send()
                .await
                .unwrap();
        }
        Some(arn) => {
            c.sns
                .publish()
                .topic_arn(arn)
                .message("first order")
                .send()
                .await
                .unwrap();
        }
    }

    // Wait until the looping message reaches the DLQ (or time runs out).
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut dead_letters = Vec::new();
    while dead_letters.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dead_letters = c.drain(&dlq_url).await;
    }
    // Stop the trigger first, so an unguarded loop could not run on.
    c.lambda
        .delete_event_source_mapping()
        .uuid(&mapping)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let logs = c.log_text(&function).await;
    let handler_runs: Vec<String> = logs
        .lines()
        .filter(|l| l.contains("loop-guard-e2e run"))
        .map(str::to_owned)
        .collect();
    let drop_lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| l.find("{\"").map(|i| &l[i..]))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    let left_in_queue = c.drain(&queue_url).await.len();
    if dead_letters.is_empty() {
        panic!(
            "nothing reached the DLQ in 120 s; {} handler runs, {} drops\nfunction logs:\n{}\nministack log:\n{}",
            handler_runs.len(),
            drop_lines.len(),
            &logs[logs.len().saturating_sub(3000)..],
            emulator.log_tail()
        );
    }
    Outcome {
        handler_runs,
        drop_lines,
        dead_letters,
        left_in_queue,
    }
}

fn assert_stopped_at(outcome: &Outcome, max_depth: u16, function: &str) {
    let me = FunctionId::from_identity(function);
    assert_eq!(
        outcome.handler_runs.len(),
        max_depth as usize,
        "handler runs: {:#?}",
        outcome.handler_runs
    );
    // Each run saw one more hop than the one before.
    for (i, line) in outcome.handler_runs.iter().enumerate() {
        let lineage: Lineage = line
            .rsplit("lineage=")
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(lineage.count(me), i as u16 + 1, "{line}");
    }
    // One EMF line per dropped delivery: the looping message was delivered
    // (and dropped) maxReceiveCount times before SQS moved it to the DLQ.
    assert_eq!(
        outcome.drop_lines.len(),
        MAX_RECEIVE_COUNT as usize,
        "{:#?}",
        outcome.drop_lines
    );
    for line in &outcome.drop_lines {
        assert_eq!(line["RecursiveInvocationsDropped"], 1);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "RecursiveInvocationsDropped"
        );
        assert_eq!(line["FunctionName"], function);
        assert_eq!(line["Depth"], max_depth as u64 + 1);
        assert_eq!(line["Source"], "sqs");
    }
    // Nothing lost: the seed plus one message per run = the runs that
    // consumed a message + the one message in the DLQ.
    assert_eq!(outcome.dead_letters.len(), 1, "{:#?}", outcome.dead_letters);
    assert_eq!(outcome.left_in_queue, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_self_loop_stops_at_max_depth_3() {
    let outcome = run_loop(Topology::SqsSelfLoop, 3).await;
    assert_stopped_at(&outcome, 3, "looper-3");
    let dead = &outcome.dead_letters[0];
    let attribute = dead.message_attributes.as_ref().unwrap()["loop-guard"]
        .string_value
        .clone()
        .unwrap();
    let lineage: Lineage = attribute.parse().unwrap();
    assert_eq!(lineage.count(FunctionId::from_identity("looper-3")), 3);
}

/// A deep message and nine fresh ones, delivered in batches of up to 10 with
/// a batching window: each record's follow-up continues its own chain, so
/// every fresh chain gets its full depth and the deep one stops on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_record_of_a_batch_keeps_its_own_chain() {
    const MAX_DEPTH: u16 = 6;
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let function = "batcher";
    let me = FunctionId::from_identity(function);
    let ((queue_url, queue_arn), (dlq_url, _)) =
        c.queue_with_dlq("batch-queue", MAX_RECEIVE_COUNT).await;
    let env = HashMap::from([
        ("LOOP_GUARD_MAX_DEPTH".to_string(), MAX_DEPTH.to_string()),
        ("AWS_ENDPOINT_URL".to_string(), emulator.endpoint()),
        ("LOOP_SEND_QUEUE_URL".to_string(), queue_url.clone()),
    ]);
    deploy(&c, function, "loop_function", env, 30).await;

    // Seed before the mapping exists, so the first batch holds all ten.
    let deep = (0..4).fold(Lineage::new(), |l, _| l.record_run(me));
    let mut entries = Vec::new();
    for n in 0..10 {
        let mut entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
            .id(format!("seed-{n}"))
            .message_body(format!("seed {n}"));
        if n == 0 {
            entry = entry.message_attributes(
                "loop-guard",
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(deep.to_string())
                    .build()
                    .unwrap(),
            );
        }
        entries.push(entry.build().unwrap());
    }
    c.sqs
        .send_message_batch()
        .queue_url(&queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .unwrap();
    let mapping = c
        .lambda
        .create_event_source_mapping()
        .event_source_arn(&queue_arn)
        .function_name(function)
        .batch_size(10)
        .maximum_batching_window_in_seconds(2)
        .function_response_types(FunctionResponseType::ReportBatchItemFailures)
        .send()
        .await
        .unwrap()
        .uuid
        .unwrap();

    // Every chain ends with one message in the DLQ.
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut dead_letters = Vec::new();
    while dead_letters.len() < 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dead_letters.extend(c.drain(&dlq_url).await);
    }
    c.lambda
        .delete_event_source_mapping()
        .uuid(&mapping)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    dead_letters.extend(c.drain(&dlq_url).await);

    let logs = c.log_text(function).await;
    let runs: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("loop-guard-e2e run"))
        .collect();
    let mut by_count = std::collections::BTreeMap::new();
    let mut largest_batch = 0;
    for line in &runs {
        let lineage: Lineage = line
            .rsplit("lineage=")
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        *by_count.entry(lineage.count(me)).or_insert(0) += 1;
        let batch: usize = line
            .split("batch=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        largest_batch = largest_batch.max(batch);
    }
    let drops = logs
        .lines()
        .filter_map(|l| l.find("{\"").map(|i| &l[i..]))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["RecursiveInvocationsDropped"] == 1)
        .inspect(|v| assert_eq!(v["Depth"], u64::from(MAX_DEPTH) + 1))
        .count();
    let left_in_queue = c.drain(&queue_url).await.len();
    eprintln!("largest batch delivered by ministack: {largest_batch}");
    // Runs 1-4 of the nine fresh chains, runs 5-6 of all ten.
    assert_eq!(
        by_count,
        std::collections::BTreeMap::from([(1, 9), (2, 9), (3, 9), (4, 9), (5, 10), (6, 10)]),
        "runs by count; logs:\n{}",
        &logs[logs.len().saturating_sub(4000)..]
    );
    assert_eq!(runs.len(), 56);
    // Every message accounted for: 10 seeds + 56 follow-ups = 56 runs that
    // consumed a message + 10 in the DLQ; each of those was dropped on each
    // of its deliveries.
    assert_eq!(dead_letters.len(), 10);
    assert_eq!(left_in_queue, 0);
    assert_eq!(drops, 10 * MAX_RECEIVE_COUNT as usize);
    assert!(
        largest_batch > 1,
        "ministack delivered no batch of more than one record"
    );
}

/// The lineages of a function's handler runs, from its log.
fn runs_of(logs: &str) -> Vec<Lineage> {
    logs.lines()
        .filter(|l| l.contains("loop-guard-e2e run"))
        .map(|l| l.rsplit("lineage=").next().unwrap().trim().parse().unwrap())
        .collect()
}

/// F in `allow` mode and G in `terminate` mode loop through each other's
/// queue: F never drops, but it counts and passes the chain on, so the loop
/// stops at G's limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_through_a_function_in_allow_mode_stops_at_the_guarded_one() {
    const G_MAX: u16 = 3;
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let ((f_url, f_arn), (f_dlq, _)) = c.queue_with_dlq("f-queue", MAX_RECEIVE_COUNT).await;
    let ((g_url, g_arn), (g_dlq, _)) = c.queue_with_dlq("g-queue", MAX_RECEIVE_COUNT).await;
    let env = |mode: &str, send_to: &str| {
        HashMap::from([
            ("LOOP_GUARD_MODE".to_string(), mode.to_string()),
            ("LOOP_GUARD_MAX_DEPTH".to_string(), G_MAX.to_string()),
            ("AWS_ENDPOINT_URL".to_string(), emulator.endpoint()),
            ("LOOP_SEND_QUEUE_URL".to_string(), send_to.to_string()),
        ])
    };
    deploy(&c, "f-allow", "loop_function", env("allow", &g_url), 30).await;
    deploy(
        &c,
        "g-terminate",
        "loop_function",
        env("terminate", &f_url),
        30,
    )
    .await;
    let mappings = [
        c.map_queue(&f_arn, "f-allow", 1).await,
        c.map_queue(&g_arn, "g-terminate", 1).await,
    ];
    c.sqs
        .send_message()
        .queue_url(&f_url)
        .message_body("first order")
        .send()
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut dead = Vec::new();
    while dead.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dead = c.drain(&g_dlq).await;
    }
    for mapping in mappings {
        c.lambda
            .delete_event_source_mapping()
            .uuid(mapping)
            .send()
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (f_logs, g_logs) = (c.log_text("f-allow").await, c.log_text("g-terminate").await);
    let (f_runs, g_runs) = (runs_of(&f_logs), runs_of(&g_logs));
    let (f, g) = (
        FunctionId::from_identity("f-allow"),
        FunctionId::from_identity("g-terminate"),
    );
    // F runs before every G run and once more: its 4th message is dropped by G.
    assert_eq!(g_runs.len(), G_MAX as usize, "G: {g_runs:?}\n{g_logs}");
    assert_eq!(f_runs.len(), G_MAX as usize + 1, "F: {f_runs:?}");
    for (i, lineage) in f_runs.iter().enumerate() {
        assert_eq!(
            lineage.count(f),
            i as u16 + 1,
            "F counts its runs in allow mode"
        );
        assert_eq!(lineage.count(g), i as u16);
    }
    assert!(
        !f_logs.contains("RecursiveInvocations"),
        "allow emits no metric"
    );
    assert_eq!(
        g_logs.matches("\"RecursiveInvocationsDropped\":1").count(),
        MAX_RECEIVE_COUNT as usize
    );
    // Every message accounted for: the seed and 7 follow-ups = 7 runs that
    // consumed one + 1 in G's DLQ.
    assert_eq!(dead.len(), 1);
    assert!(c.drain(&f_dlq).await.is_empty());
    assert!(c.drain(&f_url).await.is_empty() && c.drain(&g_url).await.is_empty());
}

/// A seed message carrying a forged lineage of 16 made-up functions (as
/// anyone who can write to the queue could send): the self-loop still
/// counts itself and stops at its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_full_lineage_does_not_keep_a_self_loop_from_stopping() {
    const MAX_DEPTH: u16 = 3;
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let ((url, arn), (dlq, _)) = c.queue_with_dlq("forged-queue", MAX_RECEIVE_COUNT).await;
    let env = HashMap::from([
        ("LOOP_GUARD_MAX_DEPTH".to_string(), MAX_DEPTH.to_string()),
        ("AWS_ENDPOINT_URL".to_string(), emulator.endpoint()),
        ("LOOP_SEND_QUEUE_URL".to_string(), url.clone()),
    ]);
    deploy(&c, "forged", "loop_function", env, 30).await;
    let mut forged = Lineage::new();
    for n in 0..16 {
        let id = FunctionId::from_identity(&format!("made-up-{n}"));
        forged.merge(&(0..40).fold(Lineage::new(), |l, _| l.record_run(id)));
    }
    let dead = seed_until_dead_letter(&c, (&url, &arn), &dlq, "forged", &forged.to_string()).await;
    let runs = runs_of(&c.log_text("forged").await);
    let me = FunctionId::from_identity("forged");
    let counts: Vec<u16> = runs.iter().map(|l| l.count(me)).collect();
    assert_eq!(counts, vec![1, 2, 3]);
    assert_eq!(dead.len(), 1);
    assert!(c.drain(&url).await.is_empty());
}

/// Sends one message carrying `lineage` in our attribute to the queue
/// (`url`, `arn`), maps it to `function`, and waits for the first message in
/// `dlq` (two minutes at most); returns the dead letters, the mapping gone.
async fn seed_until_dead_letter(
    c: &Clients,
    (url, arn): (&str, &str),
    dlq: &str,
    function: &str,
    lineage: &str,
) -> Vec<aws_sdk_sqs::types::Message> {
    c.sqs
        .send_message()
        .queue_url(url)
        .message_body("forged")
        .message_attributes(
            "loop-guard",
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(lineage)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let mapping = c.map_queue(arn, function, 1).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut dead = Vec::new();
    while dead.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dead = c.drain(dlq).await;
    }
    c.lambda
        .delete_event_source_mapping()
        .uuid(mapping)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    dead
}

/// Issue 15, signed lineages: with `LOOP_GUARD_SIGNING_KEYS`, a message
/// whose lineage claims this function already ran 50 times, but carries no
/// valid signature, is counted from zero (without the keys it would be
/// dropped at once); the loop it starts then stops at max depth through
/// signed values that round-trip through SQS: runs 1, 2, 3, one message in
/// the DLQ, none left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_count_drops_no_work_when_lineages_are_signed() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let ((url, arn), (dlq, _)) = c.queue_with_dlq("signed-queue", MAX_RECEIVE_COUNT).await;
    let env = HashMap::from([
        ("LOOP_GUARD_MAX_DEPTH".to_string(), "3".to_string()),
        (
            "LOOP_GUARD_SIGNING_KEYS".to_string(),
            "a-new-secret-of-32-bytes-1111111,an-old-secret-of-32-bytes-000000".to_string(),
        ),
        ("AWS_ENDPOINT_URL".to_string(), emulator.endpoint()),
        ("LOOP_SEND_QUEUE_URL".to_string(), url.clone()),
    ]);
    deploy(&c, "signed", "loop_function", env, 30).await;
    let me = FunctionId::from_identity("signed");
    let forged = (0..50).fold(Lineage::new(), |l, _| l.record_run(me));
    let dead = seed_until_dead_letter(&c, (&url, &arn), &dlq, "signed", &forged.to_string()).await;
    let logs = c.log_text("signed").await;
    let runs = runs_of(&logs);
    let counts: Vec<u16> = runs.iter().map(|l| l.count(me)).collect();
    assert_eq!(counts, vec![1, 2, 3]);
    assert!(runs.iter().all(|l| l.tag().is_some()), "{runs:?}");
    assert_eq!(dead.len(), 1);
    assert!(c.drain(&url).await.is_empty());
    assert!(logs.contains("\"UnverifiedLineages\":1"), "{logs}");
}

/// What the x2 fan-out loop with a chain budget of 20 did on ministack.
struct FanOut {
    runs: Vec<Lineage>,
    dead: usize,
    budget_drops: usize,
}

/// Seeds the x2 fan-out loop (chain budget 20) and waits until every
/// message sent has either run or reached the DLQ; with `budget_table`,
/// the budget is counted exactly in that DynamoDB table.
async fn fan_out_loop(emulator: &Emulator, c: &Clients, budget_table: Option<&str>) -> FanOut {
    let ((url, arn), (dlq, _)) = c.queue_with_dlq("fan-out-queue", MAX_RECEIVE_COUNT).await;
    let mut env = HashMap::from([
        ("LOOP_GUARD_MAX_DEPTH".to_string(), "100".to_string()),
        ("LOOP_GUARD_CHAIN_BUDGET".to_string(), "20".to_string()),
        ("LOOP_FAN_OUT".to_string(), "2".to_string()),
        ("AWS_ENDPOINT_URL".to_string(), emulator.endpoint()),
        ("LOOP_SEND_QUEUE_URL".to_string(), url.clone()),
    ]);
    if let Some(table) = budget_table {
        env.insert("LOOP_BUDGET_TABLE".to_string(), table.to_string());
    }
    deploy(c, "fan-out", "loop_function", env, 30).await;
    c.sqs
        .send_message()
        .queue_url(&url)
        .message_body("seed")
        .send()
        .await
        .unwrap();
    let mapping = c.map_queue(&arn, "fan-out", 1).await;
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut dead = Vec::new();
    // Until every message sent has either run or reached the DLQ.
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        dead.extend(c.drain(&dlq).await);
        let runs = runs_of(&c.log_text("fan-out").await).len();
        if runs > 0 && dead.len() > runs {
            break;
        }
    }
    // Anything still in flight would show up by now (visibility: 1 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    c.lambda
        .delete_event_source_mapping()
        .uuid(mapping)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    dead.extend(c.drain(&dlq).await);
    assert!(c.drain(&url).await.is_empty());
    let log = c.log_text("fan-out").await;
    let runs = runs_of(&log);
    // One chain, and every run's budget came out of it.
    let chains: std::collections::HashSet<_> = runs.iter().map(|l| l.chain()).collect();
    assert_eq!(chains.len(), 1, "{chains:?}");
    assert!(runs
        .iter()
        .all(|l| l.chain().is_some() && l.budget().is_some()));
    FanOut {
        runs,
        dead: dead.len(),
        budget_drops: log.matches("\"Reason\":\"chain_budget\"").count(),
    }
}

/// Issue 15: a function that sends two messages back to its own queue per
/// record grows as 2^depth; with a chain budget of 20 the whole tree runs
/// at most 20 times. Undeclared sends each take half of what is left, so
/// the tree runs exactly 12 times here (20 -> 1 + runs of 10 and 5 -> ...),
/// and every message is accounted for: the seed and the 24 sent either ran
/// or reached the DLQ (13), none is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_loop_runs_at_most_its_chain_budget() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let fan_out = fan_out_loop(&emulator, &c, None).await;
    // Undeclared sends halve the budget: 12 runs of 20, 13 dead letters.
    assert_eq!(fan_out.runs.len(), 12, "{:?}", fan_out.runs);
    assert_eq!(fan_out.dead, 13);
    assert!(
        fan_out.budget_drops >= 13,
        "{} budget drop lines",
        fan_out.budget_drops
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_budget_on_dynamodb_runs_the_fan_out_loop_exactly_20_times() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&emulator.sdk_config().await);
    support::create_table(&dynamodb, "loop-budgets", "id").await;
    let fan_out = fan_out_loop(&emulator, &c, Some("loop-budgets")).await;
    // Counted in the table: exactly the budget ran, every other message
    // (2 x 20 sent + the seed - 20 runs) is in the DLQ.
    assert_eq!(fan_out.runs.len(), 20, "{:?}", fan_out.runs);
    assert_eq!(fan_out.dead, 21);
    assert!(
        fan_out.budget_drops >= 21,
        "{} budget drop lines",
        fan_out.budget_drops
    );
    // Every message carried the whole budget; the table holds the 19 runs
    // after the chain's root.
    assert!(fan_out.runs.iter().all(|l| l.budget() == Some(20)));
    let chain = fan_out.runs[0].chain().unwrap();
    let item = dynamodb
        .get_item()
        .table_name("loop-budgets")
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("chain#{chain}")),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        item.get("runs"),
        Some(&aws_sdk_dynamodb::types::AttributeValue::N("19".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_self_loop_stops_at_max_depth_5() {
    let outcome = run_loop(Topology::SqsSelfLoop, 5).await;
    assert_stopped_at(&outcome, 5, "looper-5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_to_sqs_loop_stops_with_raw_delivery() {
    let outcome = run_loop(Topology::SnsToSqs { raw: true }, 4).await;
    assert_stopped_at(&outcome, 4, "looper-4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_to_sqs_loop_stops_without_raw_delivery() {
    let outcome = run_loop(Topology::SnsToSqs { raw: false }, 2).await;
    assert_stopped_at(&outcome, 2, "looper-2");
    // The lineage travelled inside the SNS envelope in the body.
    let body = outcome.dead_letters[0].body.clone().unwrap();
    assert!(body.contains("\"loop-guard\""), "{body}");
}

/// Runs `examples/continuation_job.rs` on ministack from one asynchronous
/// invoke until `done` says so (or 120 s pass); returns the function's log.
async fn run_job(steps: u32, max_continuations: u32, done: impl Fn(&str) -> bool) -> String {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let env = HashMap::from([(
        "LOOP_GUARD_MAX_CONTINUATIONS".to_string(),
        max_continuations.to_string(),
    )]);
    let payload = serde_json::json!({"state": {"remaining": steps, "done": 0}});
    let function = format!("job-{steps}-{max_continuations}");
    run_continuations(
        &emulator,
        &c,
        &function,
        "continuation_job",
        env,
        payload,
        done,
    )
    .await
}

/// Deploys `example` (one step per run: the timeout is the safety margin),
/// invokes it asynchronously with `payload`, and waits until `done` holds
/// for its log (at most 120 s).
async fn run_continuations(
    emulator: &Emulator,
    c: &Clients,
    function: &str,
    example: &str,
    mut env: HashMap<String, String>,
    payload: serde_json::Value,
    done: impl Fn(&str) -> bool,
) -> String {
    env.insert("JOB_SAFETY_MARGIN_MS".into(), "5000".into());
    env.insert("AWS_ENDPOINT_URL".into(), emulator.endpoint());
    deploy(c, function, example, env, 5).await;
    invoke_async(c, function, &payload).await;
    let logs = wait_for_log(c, function, Duration::from_secs(120), &done).await;
    assert!(
        done(&logs),
        "job did not end in 120 s:\n{}\n{}",
        &logs[logs.len().saturating_sub(3000)..],
        emulator.log_tail()
    );
    // Let retries of a failed last run show up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.log_text(function).await
}

#[cfg(feature = "continuation-s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_processes_nothing_twice() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let text: String = (0..1000).map(|i| format!("row {i}\n")).collect();
    s3_with_object(&emulator, "dup-objects", "rows.txt", &text, &["dup-ledger"]).await;
    let env = HashMap::from([
        ("S3_FORCE_PATH_STYLE".to_string(), "true".to_string()),
        ("JOB_LEDGER_BUCKET".to_string(), "dup-ledger".to_string()),
    ]);
    // Continuation 1 of a job, delivered twice (Lambda delivers at least once).
    let payload = serde_json::json!({
        "loopGuardContinuation": {"sequence": 1, "jobId": "dup-job"},
        "state": {"bucket": "dup-objects", "key": "rows.txt", "offset": 0, "chunk": 2000, "lines": 0}
    });
    let _first = run_continuations(
        &emulator,
        &c,
        "deduper",
        "continuation_s3_chunks",
        env,
        payload.clone(),
        |l| l.contains("chunks finished"),
    )
    .await;
    // The second delivery, after the first has started.
    invoke_async(&c, "deduper", &payload).await;
    let logs = wait_for_log(&c, "deduper", Duration::from_secs(60), |l| {
        l.contains("chunks duplicate sequence=1")
    })
    .await;
    assert_eq!(logs.matches("chunk sequence=1 ").count(), 1, "{logs}");
    assert_eq!(
        logs.matches("chunks duplicate sequence=1 skipped").count(),
        1,
        "{logs}"
    );
    assert_eq!(
        logs.matches("chunks finished lines=1000").count(),
        1,
        "{logs}"
    );
}

#[cfg(feature = "continuation-s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_s3_object_is_processed_in_chunks_with_a_revalidated_warm_cache() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let text: String = (0..5000)
        .map(|i| format!("line {i} of the big object\n"))
        .collect();
    s3_with_object(&emulator, "big-objects", "big.txt", &text, &[]).await;
    let env = HashMap::from([("S3_FORCE_PATH_STYLE".to_string(), "true".to_string())]);
    let payload = serde_json::json!({"state": {"bucket": "big-objects", "key": "big.txt", "offset": 0, "chunk": 20000, "lines": 0}});
    let logs = run_continuations(
        &emulator,
        &c,
        "chunker",
        "continuation_s3_chunks",
        env,
        payload,
        |l| l.contains("chunks finished"),
    )
    .await;
    assert!(
        logs.contains(&format!("chunks finished lines=5000 bytes={}", text.len())),
        "{logs}"
    );
    let chunks: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("chunk sequence="))
        .collect();
    assert_eq!(chunks.len(), text.len().div_ceil(20000), "{chunks:#?}");
    assert!(chunks[0].ends_with("cache=miss"));
    // Later runs in the warm environment revalidate with If-None-Match: 304.
    assert!(
        chunks.iter().skip(1).any(|l| l.ends_with("cache=hit")),
        "{chunks:#?}"
    );
}

fn step_sequences(logs: &str) -> Vec<u32> {
    let mut seen: Vec<u32> = logs
        .lines()
        .filter(|l| l.contains("job step sequence="))
        .filter_map(|l| l.split("sequence=").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forty_step_continuation_chain_completes_past_the_loop_threshold() {
    let logs = run_job(40, 50, |l| l.contains("job finished")).await;
    assert!(logs.contains("job finished done=40 sequence=39"), "{logs}");
    assert_eq!(step_sequences(&logs), (0..40).collect::<Vec<_>>());
    assert!(
        !logs.contains("RecursiveInvocationsDropped"),
        "continuations must not trip the loop guard"
    );
}

/// A continuation job with a durable ledger on ministack: what ran.
struct JobRun {
    logs: String,
    /// The events Lambda gave up on (the DLQ), as sent to the function.
    dead: Vec<serde_json::Value>,
}

impl JobRun {
    fn count(&self, text: &str) -> usize {
        self.logs.matches(text).count()
    }
}

/// Deploys `examples/continuation_job.rs` as `function` (a safety margin of
/// 5 s: with a `timeout` of 5 s, one step per run) with a DynamoDB ledger
/// table and an SQS DLQ, invokes each payload asynchronously, and waits
/// until `done` holds for its log (at most 120 s), then a little longer for
/// late retries.
async fn run_ledgered_job(
    emulator: &Emulator,
    c: &Clients,
    function: &str,
    timeout: i32,
    extra_env: &[(&str, &str)],
    payloads: &[serde_json::Value],
    done: impl Fn(&str) -> bool,
) -> JobRun {
    let dynamodb = aws_sdk_dynamodb::Client::new(&emulator.sdk_config().await);
    let table = format!("{function}-ledger");
    support::create_table(&dynamodb, &table, "id").await;
    let (dlq_url, dlq_arn) = c.queue(&format!("{function}-dlq"), HashMap::new()).await;
    let mut env: HashMap<String, String> = extra_env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.insert("JOB_LEDGER_TABLE".into(), table);
    env.insert("JOB_SAFETY_MARGIN_MS".into(), "5000".into());
    env.insert("AWS_ENDPOINT_URL".into(), emulator.endpoint());
    deploy(c, function, "continuation_job", env, timeout).await;
    c.lambda
        .update_function_configuration()
        .function_name(function)
        .dead_letter_config(
            aws_sdk_lambda::types::DeadLetterConfig::builder()
                .target_arn(dlq_arn)
                .build(),
        )
        .send()
        .await
        .unwrap();
    for payload in payloads {
        invoke_async(c, function, payload).await;
    }
    let logs = wait_for_log(c, function, Duration::from_secs(120), &done).await;
    assert!(
        done(&logs),
        "job did not end in 120 s:\n{}\n{}",
        &logs[logs.len().saturating_sub(3000)..],
        emulator.log_tail()
    );
    // Let retries of a failed last run show up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let dead = c
        .drain(&dlq_url)
        .await
        .iter()
        .map(|m| {
            let body: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
            // ministack sends the on-failure destination's envelope to a DLQ
            // too; AWS sends the event itself.
            body.get("requestPayload").cloned().unwrap_or(body)
        })
        .collect();
    JobRun {
        logs: c.log_text(function).await,
        dead,
    }
}

/// A step fails once (a transient error): the run releases its claim and
/// fails, Lambda retries it, the step runs again, the job finishes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_is_retried_by_lambda_and_the_job_finishes_exactly_once() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let payload = serde_json::json!({"state": {"remaining": 4, "done": 0}});
    let run = run_ledgered_job(
        &emulator,
        &c,
        "flaky-job",
        5,
        &[("JOB_FAIL_ONCE_AT", "2")],
        &[payload],
        |l| l.contains("job finished"),
    )
    .await;
    assert_eq!(
        run.count("job step sequence="),
        5,
        "4 steps + 1 retried\n{}",
        run.logs
    );
    assert_eq!(run.count("job step sequence=2 remaining=2"), 2);
    assert_eq!(run.count("job step failed sequence=2"), 1);
    assert_eq!(run.count("job finished done=4 sequence=3"), 1);
    assert!(run.dead.is_empty());
}

/// A step hangs until the function times out: Lambda's retry takes the run
/// over once the claim expires (at the dead invocation's deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_times_out_is_taken_over_by_lambdas_retry() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let payload = serde_json::json!({"state": {"remaining": 3, "done": 0}});
    let run = run_ledgered_job(
        &emulator,
        &c,
        "hung-job",
        5,
        &[("JOB_HANG_ONCE_AT", "2")],
        &[payload],
        |l| l.contains("job finished"),
    )
    .await;
    assert_eq!(run.count("job step hangs sequence=1"), 1, "{}", run.logs);
    assert_eq!(run.count("job step sequence=1 remaining=2"), 2);
    assert_eq!(run.count("job step sequence="), 4, "3 steps + 1 taken over");
    assert_eq!(run.count("job finished done=3 sequence=2"), 1);
    assert!(run.dead.is_empty());
}

/// The same continuation delivered twice at once: one delivery runs it (both
/// steps, in one 10 s invocation); the other finds it in progress, waits,
/// and finds it done. Every step runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_during_the_run_runs_no_step() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let payload = serde_json::json!({
        "loopGuardContinuation": {"sequence": 1, "jobId": "twice-job"},
        "state": {"remaining": 2, "done": 0}
    });
    let run = run_ledgered_job(
        &emulator,
        &c,
        "twice-job",
        10,
        &[("JOB_STEP_PAUSE_MS", "1500")],
        &[payload.clone(), payload],
        |l| l.contains("job finished") && l.contains("duplicate continuation delivery"),
    )
    .await;
    assert_eq!(run.count("job step sequence=1 "), 2, "{}", run.logs);
    assert_eq!(run.count("job step sequence="), 2);
    assert_eq!(run.count("duplicate continuation delivery"), 1);
    assert_eq!(
        run.count("is in progress in another delivery"),
        0,
        "it waited"
    );
    assert_eq!(run.count("job finished done=2 sequence=1"), 1);
    assert!(run.dead.is_empty());
}

/// A runaway stops at its budget: continuation 3 of a budget of 2 is refused
/// on every delivery (with the metric), then Lambda sends it to the DLQ,
/// which holds the exact point to resume from. Resumed with a larger
/// budget, the job finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_budget_lands_in_the_dlq_and_the_job_resumes_from_there() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let payload = serde_json::json!({"state": {"remaining": 5, "done": 0}});
    let run = run_ledgered_job(
        &emulator,
        &c,
        "budget-job",
        5,
        &[("LOOP_GUARD_MAX_CONTINUATIONS", "2")],
        &[payload],
        |l| l.matches("\"ContinuationBudgetExhausted\":1").count() >= 3,
    )
    .await;
    assert_eq!(step_sequences(&run.logs), [0, 1, 2], "{}", run.logs);
    assert_eq!(run.count("job step sequence="), 3);
    // The first delivery and Lambda's two retries, each refused.
    assert_eq!(run.count("\"ContinuationBudgetExhausted\":1"), 3);
    assert_eq!(run.dead.len(), 1, "{:?}", run.dead);
    let resume = &run.dead[0];
    assert_eq!(resume["loopGuardContinuation"]["sequence"], 3);
    assert_eq!(
        resume["state"],
        serde_json::json!({"remaining": 2, "done": 3})
    );

    // The operator raises the budget and sends the event again.
    let current = c
        .lambda
        .get_function_configuration()
        .function_name("budget-job")
        .send()
        .await
        .unwrap();
    let mut env = current
        .environment
        .and_then(|e| e.variables)
        .unwrap_or_default();
    env.insert("LOOP_GUARD_MAX_CONTINUATIONS".into(), "10".into());
    c.lambda
        .update_function_configuration()
        .function_name("budget-job")
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .set_variables(Some(env))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let updated = Instant::now() + Duration::from_secs(30);
    while c
        .lambda
        .get_function_configuration()
        .function_name("budget-job")
        .send()
        .await
        .unwrap()
        .last_update_status
        != Some(aws_sdk_lambda::types::LastUpdateStatus::Successful)
    {
        assert!(Instant::now() < updated, "the update never completed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    invoke_async(&c, "budget-job", resume).await;
    let logs = wait_for_log(&c, "budget-job", Duration::from_secs(60), |l| {
        l.contains("job finished")
    })
    .await;
    assert_eq!(
        logs.matches("job finished done=5 sequence=4").count(),
        1,
        "{logs}"
    );
    assert_eq!(step_sequences(&logs), [0, 1, 2, 3, 4]);
}

/// A FIFO queue with its FIFO DLQ (`maxReceiveCount` 2, visibility 1 s,
/// content-based deduplication).
async fn fifo_queue_with_dlq(c: &Clients, name: &str) -> ((String, String), (String, String)) {
    let fifo = |mut attributes: HashMap<QueueAttributeName, String>| {
        attributes.insert(QueueAttributeName::FifoQueue, "true".into());
        attributes.insert(QueueAttributeName::ContentBasedDeduplication, "true".into());
        attributes
    };
    let dlq = c
        .queue(&format!("{name}-dlq.fifo"), fifo(HashMap::new()))
        .await;
    let redrive =
        serde_json::json!({ "deadLetterTargetArn": dlq.1, "maxReceiveCount": MAX_RECEIVE_COUNT })
            .to_string();
    let queue = c
        .queue(
            &format!("{name}.fifo"),
            fifo(HashMap::from([
                (QueueAttributeName::RedrivePolicy, redrive),
                (QueueAttributeName::VisibilityTimeout, "1".to_string()),
            ])),
        )
        .await;
    (queue, dlq)
}

/// Sends `body` to a FIFO queue in `group`, with `lineage` as its
/// `loop-guard` attribute when given; returns its message id.
async fn send_fifo(
    c: &Clients,
    url: &str,
    group: &str,
    body: &str,
    lineage: Option<&Lineage>,
) -> String {
    let mut send = c
        .sqs
        .send_message()
        .queue_url(url)
        .message_group_id(group)
        .message_body(body);
    if let Some(lineage) = lineage {
        send = send.message_attributes(
            "loop-guard",
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(lineage.to_string())
                .build()
                .unwrap(),
        );
    }
    send.send().await.unwrap().message_id.unwrap()
}

/// A self-loop through a FIFO queue (each follow-up in the record's message
/// group) stops at max depth, like a standard queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_self_loop_stops_at_max_depth() {
    const MAX_DEPTH: u16 = 3;
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let ((url, arn), (dlq, _)) = fifo_queue_with_dlq(&c, "fifo-loop").await;
    let env = HashMap::from([
        ("LOOP_GUARD_MAX_DEPTH".to_string(), MAX_DEPTH.to_string()),
        ("AWS_ENDPOINT_URL".to_string(), emulator.endpoint()),
        ("LOOP_SEND_QUEUE_URL".to_string(), url.clone()),
    ]);
    deploy(&c, "fifo-looper", "loop_function", env, 30).await;
    send_fifo(&c, &url, "g", "first order", None).await;
    let mapping = c.map_queue(&arn, "fifo-looper", 1).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut dead = Vec::new();
    while dead.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dead = c.drain(&dlq).await;
    }
    c.lambda
        .delete_event_source_mapping()
        .uuid(mapping)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let logs = c.log_text("fifo-looper").await;
    let me = FunctionId::from_identity("fifo-looper");
    let counts: Vec<u16> = runs_of(&logs).iter().map(|l| l.count(me)).collect();
    assert_eq!(counts, vec![1, 2, 3], "{logs}");
    assert_eq!(
        logs.matches("\"RecursiveInvocationsDropped\":1").count(),
        MAX_RECEIVE_COUNT as usize
    );
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0]
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId))
            .map(String::as_str),
        Some("g")
    );
    assert!(c.drain(&url).await.is_empty());
}

/// What happened to the FIFO messages of [`fifo_outcome`].
#[derive(Debug)]
struct FifoOutcome {
    /// Bodies of the messages the handler ran, in order.
    ran: Vec<String>,
    /// Bodies in the DLQ, in order.
    dead: Vec<String>,
    left: usize,
    drops: usize,
}

/// Sends `a`, then `b` (which has already run the function to its limit),
/// `c` and `d` to group `g` of a FIFO queue, and `e` to group `h`; then maps
/// the queue to a function that does not loop, with `batch_size`, and
/// accounts for every message.
async fn fifo_outcome(batch_size: i32) -> FifoOutcome {
    const MAX_DEPTH: u16 = 3;
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let function = format!("fifo-cut-{batch_size}");
    let ((url, arn), (dlq, _)) = fifo_queue_with_dlq(&c, &function).await;
    let env = HashMap::from([
        ("LOOP_GUARD_MAX_DEPTH".to_string(), MAX_DEPTH.to_string()),
        ("AWS_ENDPOINT_URL".to_string(), emulator.endpoint()),
    ]);
    deploy(&c, &function, "loop_function", env, 30).await;
    let me = FunctionId::from_identity(&function);
    let deep = (0..MAX_DEPTH).fold(Lineage::new(), |l, _| l.record_run(me));
    let mut bodies = HashMap::new();
    for (group, body, lineage) in [
        ("g", "a", None),
        ("g", "b", Some(&deep)),
        ("g", "c", None),
        ("g", "d", None),
        ("h", "e", None),
    ] {
        let id = send_fifo(&c, &url, group, body, lineage).await;
        bodies.insert(id, body.to_string());
    }
    let mapping = c.map_queue(&arn, &function, batch_size).await;
    // Until all five are accounted for (or 60 s pass).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut dead = Vec::new();
    let mut logs = String::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dead.extend(c.drain(&dlq).await);
        logs = c.log_text(&function).await;
        if logs.matches("loop-guard-e2e run").count() + dead.len() == bodies.len() {
            break;
        }
    }
    c.lambda
        .delete_event_source_mapping()
        .uuid(mapping)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let latest = c.log_text(&function).await;
    let logs = if latest.len() >= logs.len() {
        latest
    } else {
        logs
    };
    let ran = logs
        .lines()
        .filter_map(|l| l.split("loop-guard-e2e run message_id=").nth(1))
        .map(|rest| bodies[rest.split(' ').next().unwrap()].clone())
        .collect();
    FifoOutcome {
        ran,
        dead: dead.iter().filter_map(|m| m.body.clone()).collect(),
        left: c.drain(&url).await.len(),
        drops: logs.matches("\"RecursiveInvocationsDropped\":1").count(),
    }
}

/// Batch size 1: the looping `b` is dropped on each of its deliveries and
/// reaches the DLQ alone; `c` and `d` run after it, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_looping_record_alone_reaches_the_dlq_with_batch_size_1() {
    let outcome = fifo_outcome(1).await;
    let in_group_g: Vec<&str> = outcome
        .ran
        .iter()
        .map(String::as_str)
        .filter(|b| *b != "e")
        .collect();
    assert_eq!(in_group_g, ["a", "c", "d"], "{outcome:?}");
    assert_eq!(outcome.ran.len(), 4, "{outcome:?}");
    assert_eq!(outcome.dead, ["b"], "{outcome:?}");
    assert_eq!(outcome.drops, MAX_RECEIVE_COUNT as usize, "{outcome:?}");
    assert_eq!(outcome.left, 0);
}

/// Batch size 10: the batch is cut at the looping `b`; the records after it
/// are reported with it (never run out of order, never run twice), and,
/// as SQS counts a receive for each of them too, they reach the DLQ with
/// it: the cost the guide's source table states for FIFO batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_batch_is_cut_at_the_looping_record() {
    let outcome = fifo_outcome(10).await;
    assert_eq!(outcome.ran, ["a"], "{outcome:?}");
    let mut dead = outcome.dead.clone();
    dead.sort();
    assert_eq!(dead, ["b", "c", "d", "e"], "{outcome:?}");
    assert_eq!(outcome.drops, MAX_RECEIVE_COUNT as usize, "{outcome:?}");
    assert_eq!(outcome.left, 0);
}
