//! The opt-in carriers written by real SDK clients (with the interceptor) to
//! moto, read back the way a function receives them, into real
//! `aws_lambda_events` records, and fed to the layer:
//!
//! * DynamoDB: `PutItem`, `UpdateItem` (expression and legacy
//!   `AttributeUpdates`), `BatchWriteItem`, `TransactWriteItems`, read from
//!   the table's stream (`GetRecords`) as a `DynamoDbEvent`;
//! * EventBridge: `PutEvents` through a rule to an SQS target, read as an
//!   `EventBridgeEvent`;
//! * S3: `PutObject`, `CopyObject`, multipart uploads, read by the layer's
//!   own `HeadObject`, including an object that is already gone.
#![cfg(all(feature = "dynamodb", feature = "eventbridge", feature = "s3"))]

#[path = "support/queue_loop.rs"]
mod queue_loop;
mod support;
// The exact budget's DynamoDB store: one moto test binary.
#[path = "moto_sources/exact_budget.rs"]
mod exact_budget;

use std::collections::HashMap;

use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodb::types::{
    AttributeAction, AttributeValue, AttributeValueUpdate, Put, PutRequest, TransactWriteItem,
    Update, WriteRequest,
};
use aws_sdk_dynamodbstreams::types::AttributeValue as StreamValue;
use lambda_loop_guard::chain::Chain;
use lambda_loop_guard::{FunctionId, GuardedEvent, Lineage, LoopGuardError, LoopGuardInterceptor};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use support::setup::{create_streamed_table, guard};
use support::start_moto;
use tower::{Layer, ServiceExt};

/// The upstream function whose chain the writes carry: it ran twice.
fn upstream() -> (FunctionId, Chain) {
    let me = FunctionId::from_identity("writer");
    let lineage = Lineage::new().record_run(me).record_run(me);
    (
        me,
        Chain::new(
            lineage,
            Some("Root=1-67890abc-def0123456789abcdef01234".into()),
        ),
    )
}

/// The tests of this file run one at a time: a DynamoDB stamp is cleared
/// only by a write made while no guarded invocation runs in the process.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn counts<E: GuardedEvent>(event: &E, me: FunctionId) -> Vec<u16> {
    let ctx = Context::default();
    let out = lambda_loop_guard::read_units(event, &ctx, &test_config());
    out.iter().map(|i| i.lineage().count(me)).collect()
}

fn test_config() -> lambda_loop_guard::LoopGuardConfig {
    lambda_loop_guard::LoopGuardConfig::builder()
        .function_identity("moto-sources")
        .build()
        .unwrap()
}

/// DynamoDB JSON of a stream attribute value, as Lambda delivers it.
fn stream_value_json(value: &StreamValue) -> Value {
    match value {
        StreamValue::S(s) => json!({ "S": s }),
        StreamValue::N(n) => json!({ "N": n }),
        StreamValue::Bool(b) => json!({ "BOOL": b }),
        StreamValue::Null(_) => json!({ "NULL": true }),
        StreamValue::M(m) => json!({ "M": image_json(m) }),
        StreamValue::L(l) => json!({ "L": l.iter().map(stream_value_json).collect::<Vec<_>>() }),
        StreamValue::Ss(ss) => json!({ "SS": ss }),
        StreamValue::Ns(ns) => json!({ "NS": ns }),
        other => panic!("attribute type not used by this test: {other:?}"),
    }
}

fn image_json(image: &HashMap<String, StreamValue>) -> Value {
    Value::Object(
        image
            .iter()
            .map(|(k, v)| (k.clone(), stream_value_json(v)))
            .collect(),
    )
}

/// Every record of the table's stream, as the `DynamoDbEvent` an event
/// source mapping would deliver.
async fn stream_event(
    streams: &aws_sdk_dynamodbstreams::Client,
    stream_arn: &str,
) -> DynamoDbEvent {
    let shards = streams
        .describe_stream()
        .stream_arn(stream_arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap()
        .shards
        .unwrap_or_default();
    let mut records = Vec::new();
    for shard in shards {
        let iterator = streams
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard.shard_id.unwrap())
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        let got = streams
            .get_records()
            .shard_iterator(iterator)
            .send()
            .await
            .unwrap();
        for record in got.records.unwrap_or_default() {
            let change = record.dynamodb.unwrap();
            records.push(json!({
                "eventID": record.event_id,
                "eventName": record.event_name.map(|n| n.as_str().to_owned()),
                "eventSource": "aws:dynamodb",
                "eventVersion": "1.1",
                "awsRegion": "us-east-1",
                "eventSourceARN": stream_arn,
                "dynamodb": {
                    "Keys": image_json(change.keys.as_ref().unwrap()),
                    "NewImage": change.new_image.as_ref().map(image_json),
                    "OldImage": change.old_image.as_ref().map(image_json),
                    "SequenceNumber": change.sequence_number,
                    "SizeBytes": change.size_bytes.unwrap_or(0),
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
            }));
        }
    }
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn key(id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("id".to_owned(), AttributeValue::S(id.to_owned()))])
}

fn item(id: &str) -> HashMap<String, AttributeValue> {
    let mut item = key(id);
    item.insert("v".into(), AttributeValue::N("1".into()));
    item
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_writes_of_every_kind_are_read_back_per_stream_record() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let moto = start_moto();
    let sdk = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(LoopGuardInterceptor::new().stamp_dynamodb_table("orders"))
            .build(),
    );
    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    let orders_stream = create_streamed_table(&dynamodb, "orders").await;
    let audit_stream = create_streamed_table(&dynamodb, "audit").await;

    // Items the updates below modify, written outside any chain: unstamped.
    for id in ["upd-expr", "upd-legacy", "tx-upd"] {
        dynamodb
            .put_item()
            .table_name("orders")
            .set_item(Some(item(id)))
            .item("gone", AttributeValue::S("x".into()))
            .send()
            .await
            .unwrap();
    }

    let (me, chain) = upstream();
    let d = dynamodb.clone();
    chain
        .scope(async move {
            d.put_item()
                .table_name("orders")
                .set_item(Some(item("put")))
                .send()
                .await
                .unwrap();
            // The guard joins the caller's SET clause; REMOVE stays valid.
            d.update_item()
                .table_name("orders")
                .set_key(Some(key("upd-expr")))
                .update_expression("SET v = v + :one REMOVE gone")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .send()
                .await
                .unwrap();
            d.update_item()
                .table_name("orders")
                .set_key(Some(key("upd-legacy")))
                .attribute_updates(
                    "v",
                    AttributeValueUpdate::builder()
                        .action(AttributeAction::Put)
                        .value(AttributeValue::N("5".into()))
                        .build(),
                )
                .send()
                .await
                .unwrap();
            d.batch_write_item()
                .request_items(
                    "orders",
                    ["batch-1", "batch-2"]
                        .map(|id| {
                            WriteRequest::builder()
                                .put_request(
                                    PutRequest::builder()
                                        .set_item(Some(item(id)))
                                        .build()
                                        .unwrap(),
                                )
                                .build()
                        })
                        .to_vec(),
                )
                .send()
                .await
                .unwrap();
            d.transact_write_items()
                .transact_items(
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name("orders")
                                .set_item(Some(item("tx-put")))
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .transact_items(
                    TransactWriteItem::builder()
                        .update(
                            Update::builder()
                                .table_name("orders")
                                .set_key(Some(key("tx-upd")))
                                .update_expression("REMOVE gone")
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap();
            // A table that was not opted in keeps its data as written.
            d.put_item()
                .table_name("audit")
                .set_item(Some(item("put")))
                .send()
                .await
                .unwrap();
        })
        .await;

    // A later write outside any guarded handler (a user request) must not
    // deliver the old stamp again: the interceptor removes it.
    dynamodb
        .update_item()
        .table_name("orders")
        .set_key(Some(key("upd-expr")))
        .update_expression("SET v = v + :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();

    let event = stream_event(&streams, &orders_stream).await;
    let by_id: Vec<(String, String, u16)> = event
        .records
        .iter()
        .zip(counts(&event, me))
        .map(|(r, count)| {
            let id = match &r.change.keys["id"] {
                serde_dynamo::AttributeValue::S(s) => s.clone(),
                other => panic!("{other:?}"),
            };
            (r.event_name.clone(), id, count)
        })
        .collect();
    let expected: Vec<(String, String, u16)> = [
        ("INSERT", "upd-expr", 0),
        ("INSERT", "upd-legacy", 0),
        ("INSERT", "tx-upd", 0),
        ("INSERT", "put", 2),
        ("MODIFY", "upd-expr", 2),
        ("MODIFY", "upd-legacy", 2),
        ("INSERT", "batch-1", 2),
        ("INSERT", "batch-2", 2),
        ("INSERT", "tx-put", 2),
        ("MODIFY", "tx-upd", 2),
        ("MODIFY", "upd-expr", 0),
    ]
    .map(|(e, id, n)| (e.to_owned(), id.to_owned(), n))
    .to_vec();
    assert_eq!(by_id, expected);

    // The caller's update still did what it said.
    let updated = dynamodb
        .get_item()
        .table_name("orders")
        .set_key(Some(key("upd-expr")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(updated["v"], AttributeValue::N("3".into()));
    assert!(!updated.contains_key("gone"));
    assert!(
        !updated.contains_key("loop-guard"),
        "cleared by the unguarded write"
    );

    let audit = stream_event(&streams, &audit_stream).await;
    assert_eq!(counts(&audit, me), vec![0]);
    assert!(!audit.records[0].change.new_image.contains_key("loop-guard"));

    // The writer's next run through the stream: with a limit of 2, the
    // stamped records loop. A stream is ordered: the batch is cut at the
    // first of them, which and every later record are batch item failures
    // (the shard resumes there); only the records before it run.
    let handled = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = handled.clone();
    let service = guard("writer", 2).layer(tower::service_fn(
        move |event: LambdaEvent<DynamoDbEvent>| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .extend(event.payload.records.iter().map(|r| r.event_id.clone()));
                Ok::<_, lambda_runtime::Error>(DynamoDbEventResponse::default())
            }
        },
    ));
    let response = service
        .oneshot(LambdaEvent::new(event.clone(), Context::default()))
        .await
        .unwrap();
    let failed: Vec<Option<String>> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert!(counts(&event, me)[3] > 0 && counts(&event, me)[..3].iter().all(|&c| c == 0));
    let from_first_stamped: Vec<Option<String>> = event.records[3..]
        .iter()
        .map(|r| r.change.sequence_number.clone())
        .collect();
    assert_eq!(failed, from_first_stamped);
    let before_it: Vec<String> = event.records[..3]
        .iter()
        .map(|r| r.event_id.clone())
        .collect();
    assert_eq!(*handled.lock().unwrap(), before_it);
}

/// DynamoDB emits no record for a write that changes nothing: idempotent
/// stream handlers converge that way. A write that changes only the stamp
/// does make a record; it must not reach the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_changes_nothing_but_the_stamp_does_not_reach_the_handler() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let moto = start_moto();
    let sdk = moto.sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(LoopGuardInterceptor::new().stamp_dynamodb_table("idem"))
            .build(),
    );
    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    let stream = create_streamed_table(&dynamodb, "idem").await;
    let (me, chain) = upstream();
    let d = dynamodb.clone();
    chain
        .clone()
        .scope(async move {
            d.put_item()
                .table_name("idem")
                .set_item(Some(item("a")))
                .send()
                .await
                .unwrap();
        })
        .await;
    // The handler's next run writes the same value back.
    let d = dynamodb.clone();
    Chain::new(chain.lineage().record_run(me), None)
        .scope(async move {
            d.update_item()
                .table_name("idem")
                .set_key(Some(key("a")))
                .update_expression("SET v = :v")
                .expression_attribute_values(":v", AttributeValue::N("1".into()))
                .send()
                .await
                .unwrap();
        })
        .await;
    let event = stream_event(&streams, &stream).await;
    let names: Vec<&str> = event
        .records
        .iter()
        .map(|r| r.event_name.as_str())
        .collect();
    assert_eq!(names, ["INSERT", "MODIFY"]);
    assert_ne!(
        event.records[1].change.old_image.get("loop-guard"),
        event.records[1].change.new_image.get("loop-guard"),
        "the stamp changed"
    );

    let handled = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = handled.clone();
    let service = guard("writer", 10).layer(tower::service_fn(
        move |event: LambdaEvent<DynamoDbEvent>| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .extend(event.payload.records.iter().map(|r| r.event_name.clone()));
                Ok::<_, lambda_runtime::Error>(DynamoDbEventResponse::default())
            }
        },
    ));
    let response = service
        .oneshot(LambdaEvent::new(event, Context::default()))
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty(), "done, not failed");
    assert_eq!(
        *handled.lock().unwrap(),
        ["INSERT"],
        "the no-op write stays a no-op"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_events_carry_the_chain_to_their_targets() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let moto = start_moto();
    let sdk = moto.sdk_config().await;
    let events = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&sdk)
            .interceptor(LoopGuardInterceptor::new().stamp_eventbridge_detail())
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name("rule-target")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    events
        .put_rule()
        .name("orders")
        .event_pattern(r#"{"source":["orders"]}"#)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("orders")
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("q")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let (me, chain) = upstream();
    let e = events.clone();
    let response = chain
        .scope(async move {
            e.put_events()
                .entries(
                    aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                        .source("orders")
                        .detail_type("placed")
                        .detail(r#"{"order":7}"#)
                        .build(),
                )
                .send()
                .await
                .unwrap()
        })
        .await;
    assert_eq!(response.failed_entry_count, 0);

    let message = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap()
        .remove(0);
    let body = message.body.unwrap();
    let event: EventBridgeEvent = serde_json::from_str(&body).unwrap();
    assert_eq!(event.detail["order"], 7);
    assert_eq!(counts(&event, me), vec![2]);

    // A function target with a typed detail gets it without the key: the
    // runtime layer moves it into the context before deserialization.
    let invocation = lambda_runtime::LambdaInvocation {
        parts: http::Response::new(()).into_parts().0,
        body: body.into_bytes().into(),
        context: Context::default(),
    };
    let seen = lambda_loop_guard::AsyncPayloadLayer::new()
        .layer(tower::service_fn(
            |i: lambda_runtime::LambdaInvocation| async move {
                Ok::<_, std::convert::Infallible>((i.body, i.context))
            },
        ))
        .oneshot(invocation)
        .await
        .unwrap();
    let cleaned: Value = serde_json::from_slice(&seen.0).unwrap();
    assert_eq!(cleaned["detail"], json!({"order": 7}));
    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Order {
        order: u32,
    }
    let typed: EventBridgeEvent<Order> = serde_json::from_value(cleaned).unwrap();
    assert_eq!(typed.detail.order, 7);
    let units = lambda_loop_guard::read_units(&typed, &seen.1, &test_config());
    assert_eq!(units[0].lineage().count(me), 2);
}

fn s3_event(bucket: &str, key: &str) -> S3Event {
    serde_json::from_value(json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-22T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "x"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "x"}, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key, "size": 1, "eTag": "e", "sequencer": "0055"}}
    }]}))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_carry_the_chain_in_user_metadata() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let moto = start_moto();
    let plain = moto.s3_client().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto.sdk_config().await)
            .force_path_style(true)
            .interceptor(LoopGuardInterceptor::new().stamp_s3_bucket("loop"))
            .build(),
    );
    for bucket in ["loop", "elsewhere"] {
        plain.create_bucket().bucket(bucket).send().await.unwrap();
    }
    let body = || aws_sdk_s3::primitives::ByteStream::from_static(b"data");

    let (me, chain) = upstream();
    let s = s3.clone();
    chain
        .scope(async move {
            s.put_object()
                .bucket("loop")
                .key("in/put file.txt")
                .body(body())
                .send()
                .await
                .unwrap();
            s.copy_object()
                .bucket("loop")
                .key("copy-replace")
                .copy_source("loop/in/put file.txt")
                .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
                .send()
                .await
                .unwrap();
            let upload = s
                .create_multipart_upload()
                .bucket("loop")
                .key("multi")
                .send()
                .await
                .unwrap()
                .upload_id
                .unwrap();
            let part = s
                .upload_part()
                .bucket("loop")
                .key("multi")
                .upload_id(&upload)
                .part_number(1)
                .body(body())
                .send()
                .await
                .unwrap();
            s.complete_multipart_upload()
                .bucket("loop")
                .key("multi")
                .upload_id(&upload)
                .multipart_upload(
                    aws_sdk_s3::types::CompletedMultipartUpload::builder()
                        .parts(
                            aws_sdk_s3::types::CompletedPart::builder()
                                .part_number(1)
                                .set_e_tag(part.e_tag)
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap();
            s.put_object()
                .bucket("elsewhere")
                .key("x")
                .body(body())
                .send()
                .await
                .unwrap();
        })
        .await;

    for key in ["in/put file.txt", "copy-replace", "multi"] {
        let metadata = plain
            .head_object()
            .bucket("loop")
            .key(key)
            .send()
            .await
            .unwrap()
            .metadata
            .unwrap();
        let lineage: Lineage = metadata["loop-guard"].parse().unwrap();
        assert_eq!(lineage.count(me), 2, "{key}");
    }
    let untouched = plain
        .head_object()
        .bucket("elsewhere")
        .key("x")
        .send()
        .await
        .unwrap();
    assert!(untouched.metadata.unwrap_or_default().is_empty());

    // The layer reads the metadata with its own HeadObject: the writer's
    // third run is dropped at a limit of 2 (the notification's key is URL
    // encoded, as S3 sends it).
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = ran.clone();
    let service = guard("writer", 2)
        .with_s3_metadata(plain.clone())
        .layer(tower::service_fn(move |_: LambdaEvent<S3Event>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok::<_, lambda_runtime::Error>(())
            }
        }));
    let result = service
        .clone()
        .oneshot(LambdaEvent::new(
            s3_event("loop", "in/put+file.txt"),
            Context::default(),
        ))
        .await;
    match result {
        Err(LoopGuardError::Dropped(error)) => {
            assert_eq!(error.depth(), 3);
            assert_eq!(error.source_arn(), Some("arn:aws:s3:::loop"));
        }
        other => panic!("expected a drop, got {other:?}"),
    }
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 0);

    // An object deleted before the notification arrives: read without its
    // metadata, with a warning; the handler still runs.
    plain
        .delete_object()
        .bucket("loop")
        .key("multi")
        .send()
        .await
        .unwrap();
    service
        .oneshot(LambdaEvent::new(
            s3_event("loop", "multi"),
            Context::default(),
        ))
        .await
        .unwrap();
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
}
