//! End to end on ministack: loops AWS's own detection does not see, each run
//! by a real `bootstrap` built from `examples/loop_sources.rs`, triggered by
//! the emulator's own delivery (a DynamoDB stream event source mapping, an
//! EventBridge rule target, an S3 bucket notification, an asynchronous
//! invoke, a Kinesis stream event source mapping), looping through the real service, and stopped by the guard
//! after exactly `LOOP_GUARD_MAX_DEPTH` handler runs.
#![cfg(all(
    feature = "dynamodb",
    feature = "eventbridge",
    feature = "s3",
    feature = "lambda",
    feature = "kinesis",
    feature = "sqs",
    feature = "stepfunctions"
))]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_lambda::types::{EventSourcePosition, FunctionResponseType};
use lambda_loop_guard::{FunctionId, Lineage};
use support::functions::{deploy, invoke_async, wait_for_log, Clients};
use support::setup::create_streamed_table;
use support::{start_ministack, Emulator};

const MAX_DEPTH: u16 = 3;

/// What the function's log showed.
#[derive(Debug)]
struct Runs {
    /// The lineage each handler run saw, in order.
    lineages: Vec<Lineage>,
    /// The EMF drop lines.
    drops: Vec<serde_json::Value>,
    log: String,
}

impl Runs {
    fn parse(log: String) -> Runs {
        let lineages = log
            .lines()
            .filter(|l| l.contains("loop-guard-e2e run"))
            .map(|l| l.rsplit("lineage=").next().unwrap().trim().parse().unwrap())
            .collect();
        let drops = log
            .lines()
            .filter_map(|l| l.find("{\"").map(|i| &l[i..]))
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("_aws").is_some())
            .collect();
        Runs {
            lineages,
            drops,
            log,
        }
    }

    /// Exactly `MAX_DEPTH` runs, each one hop further than the last, then
    /// drops from `source` at depth `MAX_DEPTH + 1`.
    fn assert_stopped(&self, function: &str, source: &str) {
        let me = FunctionId::from_identity(function);
        let counts: Vec<u16> = self.lineages.iter().map(|l| l.count(me)).collect();
        let expected: Vec<u16> = (1..=MAX_DEPTH).collect();
        assert_eq!(counts, expected, "log:\n{}", self.log);
        assert!(!self.drops.is_empty(), "no drop; log:\n{}", self.log);
        for drop in &self.drops {
            assert_eq!(drop["RecursiveInvocationsDropped"], 1, "{drop}");
            assert_eq!(drop["FunctionName"], function);
            assert_eq!(drop["Source"], source);
            assert_eq!(drop["Depth"], u64::from(MAX_DEPTH) + 1);
        }
    }
}

/// Deploys `loop_sources` with `env` (plus the guard settings).
async fn deploy_looper(
    c: &Clients,
    emulator: &Emulator,
    function: &str,
    env: &[(&str, &str)],
) -> String {
    let mut vars: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.insert("LOOP_GUARD_MAX_DEPTH".into(), MAX_DEPTH.to_string());
    vars.insert("AWS_ENDPOINT_URL".into(), emulator.endpoint());
    vars.insert("RUST_BACKTRACE".into(), "1".into());
    deploy(c, function, "loop_sources", vars, 10).await
}

/// Waits for the first drop, then a little longer: a loop the guard did not
/// stop would show more runs.
async fn watch(c: &Clients, function: &str) -> Runs {
    wait_for_log(c, function, Duration::from_secs(90), |log| {
        log.contains("RecursiveInvocationsDropped")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    Runs::parse(c.log_text(function).await)
}

/// Maps a stream (DynamoDB, Kinesis) to `function` from its oldest record,
/// one record per batch, one retry, batch item failures reported.
async fn map_stream(c: &Clients, stream_arn: &str, function: &str) -> String {
    c.lambda
        .create_event_source_mapping()
        .event_source_arn(stream_arn)
        .function_name(function)
        .starting_position(EventSourcePosition::TrimHorizon)
        .batch_size(1)
        .maximum_retry_attempts(1)
        .function_response_types(FunctionResponseType::ReportBatchItemFailures)
        .send()
        .await
        .unwrap()
        .uuid
        .unwrap()
}

/// [`watch`], then deletes the event source `mapping`.
async fn watch_then_unmap(c: &Clients, function: &str, mapping: &str) -> Runs {
    let runs = watch(c, function).await;
    c.lambda
        .delete_event_source_mapping()
        .uuid(mapping)
        .send()
        .await
        .unwrap();
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_stream_loop_stops_at_max_depth() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&emulator.sdk_config().await);
    let table = "loop-table";
    let stream_arn = create_streamed_table(&dynamodb, table).await;

    let function = "ddb-looper";
    deploy_looper(
        &c,
        &emulator,
        function,
        &[("LOOP_SOURCE", "dynamodb"), ("LOOP_TABLE", table)],
    )
    .await;
    let mapping = map_stream(&c, &stream_arn, function).await;

    // The first write, as a user request would make it: no lineage.
    dynamodb
        .put_item()
        .table_name(table)
        .item("id", AttributeValue::S("order-1".into()))
        .item("n", AttributeValue::N("0".into()))
        .send()
        .await
        .unwrap();

    let runs = watch_then_unmap(&c, function, &mapping).await;
    runs.assert_stopped(function, "dynamodb");

    // The item was updated once per run, and carries the last run's lineage.
    let item = dynamodb
        .get_item()
        .table_name(table)
        .key("id", AttributeValue::S("order-1".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["n"], AttributeValue::N(MAX_DEPTH.to_string()));
    let stamped: Lineage = item["loop-guard"].as_s().unwrap().parse().unwrap();
    assert_eq!(
        stamped.count(FunctionId::from_identity(function)),
        MAX_DEPTH
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_rule_loop_stops_at_max_depth() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let events = aws_sdk_eventbridge::Client::new(&emulator.sdk_config().await);
    let function = "eb-looper";
    let arn = deploy_looper(&c, &emulator, function, &[("LOOP_SOURCE", "eventbridge")]).await;
    events
        .put_rule()
        .name("loop-rule")
        .event_pattern(r#"{"source":["loop.guard.e2e"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("loop-rule")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("looper")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    events
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source("loop.guard.e2e")
                .detail_type("tick")
                .detail(r#"{"hop":0}"#)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let runs = watch(&c, function).await;
    events
        .remove_targets()
        .rule("loop-rule")
        .ids("looper")
        .send()
        .await
        .unwrap();
    runs.assert_stopped(function, "eventbridge");
    // The typed `deny_unknown_fields` detail never saw the lineage key.
    assert!(!runs.log.contains("unknown field"), "{}", runs.log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_notification_loop_stops_at_max_depth() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let s3 = emulator.s3_client().await;
    let bucket = "loop-bucket";
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let function = "s3-looper";
    let arn = deploy_looper(
        &c,
        &emulator,
        function,
        &[("LOOP_SOURCE", "s3"), ("LOOP_BUCKET", bucket)],
    )
    .await;
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            aws_sdk_s3::types::NotificationConfiguration::builder()
                .lambda_function_configurations(
                    aws_sdk_s3::types::LambdaFunctionConfiguration::builder()
                        .lambda_function_arn(arn)
                        .events(aws_sdk_s3::types::Event::from("s3:ObjectCreated:*"))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();

    s3.put_object()
        .bucket(bucket)
        .key("seed")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"first"))
        .send()
        .await
        .unwrap();

    let runs = watch(&c, function).await;
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(aws_sdk_s3::types::NotificationConfiguration::builder().build())
        .send()
        .await
        .unwrap();
    runs.assert_stopped(function, "s3");

    // Every object the loop wrote carries the run that wrote it.
    let me = FunctionId::from_identity(function);
    let mut key = "seed".to_owned();
    for run in 1..=MAX_DEPTH {
        key.push_str(".next");
        let head = s3
            .head_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        let lineage: Lineage = head.metadata.unwrap()["loop-guard"].parse().unwrap();
        assert_eq!(lineage.count(me), run, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_self_invoke_loop_stops_at_max_depth() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let function = "async-looper";
    deploy_looper(&c, &emulator, function, &[("LOOP_SOURCE", "invoke")]).await;
    // ministack forwards neither the trace header nor the client context:
    // the payload key is the only carrier that reaches the next run.
    invoke_async(&c, function, &serde_json::json!({"hop": 0})).await;
    let runs = watch(&c, function).await;
    runs.assert_stopped(function, "invoke");
    assert!(!runs.log.contains("unknown field"), "{}", runs.log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_stream_loop_stops_at_max_depth() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let kinesis = aws_sdk_kinesis::Client::new(&emulator.sdk_config().await);
    let stream = "loop-stream";
    kinesis
        .create_stream()
        .stream_name(stream)
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let summary = loop {
        let summary = kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .unwrap()
            .stream_description_summary
            .unwrap();
        if summary.stream_status == aws_sdk_kinesis::types::StreamStatus::Active {
            break summary;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let function = "kinesis-looper";
    deploy_looper(
        &c,
        &emulator,
        function,
        &[("LOOP_SOURCE", "kinesis"), ("LOOP_STREAM", stream)],
    )
    .await;
    let mapping = map_stream(&c, &summary.stream_arn, function).await;

    // The first record, as a producer without the guard writes it.
    kinesis
        .put_record()
        .stream_name(stream)
        .partition_key("loop")
        .data(aws_sdk_kinesis::primitives::Blob::new(r#"{"hop":0}"#))
        .send()
        .await
        .unwrap();

    let runs = watch_then_unmap(&c, function, &mapping).await;
    runs.assert_stopped(function, "kinesis");

    // Every record accounted for: the seed and one per run, each run's
    // carrying its lineage in the data (partition key untouched); the
    // dropped record's handler never ran, so there is no record after it.
    let shard = kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .shards
        .unwrap()
        .remove(0)
        .shard_id;
    let iterator = kinesis
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let records = kinesis
        .get_records()
        .shard_iterator(iterator)
        .send()
        .await
        .unwrap()
        .records;
    assert_eq!(records.len(), usize::from(MAX_DEPTH) + 1, "{records:?}");
    let me = FunctionId::from_identity(function);
    for (hop, record) in records.iter().enumerate() {
        assert_eq!(record.partition_key.as_deref(), Some("loop"));
        let data: serde_json::Value = serde_json::from_slice(record.data.as_ref()).unwrap();
        assert_eq!(data["hop"], hop as u64);
        let count = data
            .get("loop-guard")
            .map(|v| v.as_str().unwrap().parse::<Lineage>().unwrap().count(me));
        assert_eq!(count, (hop > 0).then_some(hop as u16));
    }
}

/// An EventBridge rule whose target is `target_arn`, matching `source`.
async fn rule_to(events: &aws_sdk_eventbridge::Client, source: &str, target_arn: &str) {
    events
        .put_rule()
        .name("to-queue")
        .event_pattern(serde_json::json!({ "source": [source] }).to_string())
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("to-queue")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(target_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// Every run of a loop through a queue, stopped and accounted for: the
/// runs counted 1 to `MAX_DEPTH`, the dropped message (reported, retried,
/// dropped again) in the DLQ, the queue empty.
async fn assert_queue_loop_stopped(
    c: &Clients,
    function: &str,
    mapping: &str,
    queue: &str,
    dlq: &str,
) {
    let runs = watch(c, function).await;
    // The dropped message reaches the DLQ after its second receive.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut dead = Vec::new();
    while dead.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dead.extend(c.drain(dlq).await);
    }
    c.lambda
        .delete_event_source_mapping()
        .uuid(mapping)
        .send()
        .await
        .unwrap();
    runs.assert_stopped(function, "sqs");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(c.drain(queue).await.is_empty());
    assert_eq!(
        Runs::parse(c.log_text(function).await).lineages.len(),
        usize::from(MAX_DEPTH),
        "no run after the drop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_to_sqs_loop_stops_at_max_depth() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let events = aws_sdk_eventbridge::Client::new(&emulator.sdk_config().await);
    let ((url, arn), (dlq, _)) = c.queue_with_dlq("events", 2).await;
    rule_to(&events, "loop.guard.e2e", &arn).await;
    let function = "eb-sqs-looper";
    deploy_looper(
        &c,
        &emulator,
        function,
        &[("LOOP_SOURCE", "eventbridge-sqs")],
    )
    .await;
    let mapping = c.map_queue(&arn, function, 1).await;
    // The first event, from a producer without the guard.
    events
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source("loop.guard.e2e")
                .detail_type("tick")
                .detail(r#"{"hop":0}"#)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // The lineage travels only in the event's detail, inside the SQS body.
    assert_queue_loop_stopped(&c, function, &mapping, &url, &dlq).await;
}

/// How S3's notifications reach the looping function's queue.
#[derive(Debug, Clone, Copy)]
enum S3ToQueue {
    Direct,
    ThroughSns,
    ThroughEventBridge,
}

/// A bucket whose `ObjectCreated` notifications reach a queue `via`, and a
/// function on that queue writing the next object: stopped by the guard
/// reading each body's object metadata (`with_s3_metadata` on `SqsEvent`).
async fn s3_queue_loop(via: S3ToQueue) {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let s3 = emulator.s3_client().await;
    let bucket = "loop-bucket";
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let ((url, arn), (dlq, _)) = c.queue_with_dlq("objects", 2).await;
    let notifications = aws_sdk_s3::types::NotificationConfiguration::builder();
    let created = || aws_sdk_s3::types::Event::from("s3:ObjectCreated:*");
    let notifications = match via {
        S3ToQueue::Direct => notifications.queue_configurations(
            aws_sdk_s3::types::QueueConfiguration::builder()
                .queue_arn(&arn)
                .events(created())
                .build()
                .unwrap(),
        ),
        S3ToQueue::ThroughSns => {
            // Not raw: the notification arrives in an SNS envelope.
            let topic = c.topic_to_queue("objects", &arn, false).await;
            notifications.topic_configurations(
                aws_sdk_s3::types::TopicConfiguration::builder()
                    .topic_arn(topic)
                    .events(created())
                    .build()
                    .unwrap(),
            )
        }
        S3ToQueue::ThroughEventBridge => {
            let events = aws_sdk_eventbridge::Client::new(&emulator.sdk_config().await);
            rule_to(&events, "aws.s3", &arn).await;
            notifications.event_bridge_configuration(
                aws_sdk_s3::types::EventBridgeConfiguration::builder().build(),
            )
        }
    };
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(notifications.build())
        .send()
        .await
        .unwrap();
    let function = "s3-sqs-looper";
    deploy_looper(
        &c,
        &emulator,
        function,
        &[("LOOP_SOURCE", "s3-sqs"), ("LOOP_BUCKET", bucket)],
    )
    .await;
    let mapping = c.map_queue(&arn, function, 1).await;
    s3.put_object()
        .bucket(bucket)
        .key("seed")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"first"))
        .send()
        .await
        .unwrap();
    assert_queue_loop_stopped(&c, function, &mapping, &url, &dlq).await;
    // The seed and one object per run, each run's stamped with its count.
    let keys = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .contents
        .unwrap_or_default();
    assert_eq!(keys.len(), usize::from(MAX_DEPTH) + 1, "{via:?}: {keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_to_sqs_loop_stops_at_max_depth() {
    s3_queue_loop(S3ToQueue::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_to_sns_to_sqs_loop_stops_at_max_depth() {
    s3_queue_loop(S3ToQueue::ThroughSns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_to_eventbridge_to_sqs_loop_stops_at_max_depth() {
    s3_queue_loop(S3ToQueue::ThroughEventBridge).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_functions_loop_stops_at_max_depth() {
    let emulator = start_ministack();
    let c = Clients::new(&emulator).await;
    let sfn = aws_sdk_sfn::Client::new(&emulator.sdk_config().await);
    let function = "sfn-looper";
    // The state machine's ARN is known before it exists: the function
    // needs it, and the state machine needs the function's.
    let state_machine = "arn:aws:states:us-east-1:000000000000:stateMachine:loop";
    let function_arn = deploy_looper(
        &c,
        &emulator,
        function,
        &[
            ("LOOP_SOURCE", "stepfunctions"),
            ("LOOP_STATE_MACHINE", state_machine),
        ],
    )
    .await;
    let definition = serde_json::json!({
        "StartAt": "Work",
        "States": {"Work": {"Type": "Task", "Resource": function_arn, "End": true}},
    });
    let created = sfn
        .create_state_machine()
        .name("loop")
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::000000000000:role/sfn")
        .send()
        .await
        .unwrap()
        .state_machine_arn;
    assert_eq!(created, state_machine);

    // The first execution, started by a caller without the guard.
    sfn.start_execution()
        .state_machine_arn(state_machine)
        .input(r#"{"hop":0}"#)
        .send()
        .await
        .unwrap();
    let runs = watch(&c, function).await;
    runs.assert_stopped(function, "invoke");

    // Every execution accounted for: one per run, and the one whose task
    // was dropped, failed with the guard's error; none after it.
    let executions = sfn
        .list_executions()
        .state_machine_arn(state_machine)
        .send()
        .await
        .unwrap()
        .executions;
    assert_eq!(
        executions.len(),
        usize::from(MAX_DEPTH) + 1,
        "{executions:?}"
    );
    let failed: Vec<_> = executions
        .iter()
        .filter(|e| e.status == aws_sdk_sfn::types::ExecutionStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{executions:?}");
    let history = sfn
        .describe_execution()
        .execution_arn(&failed[0].execution_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        history.error.as_deref(),
        Some("RecursiveInvocationException"),
        "{history:?}"
    );
}
