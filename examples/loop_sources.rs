//! A Lambda function (`provided.al2023` `bootstrap`) with a recursive-loop
//! bug through a source AWS's own loop detection does not see. `LOOP_SOURCE`
//! picks the loop:
//!
//! * `dynamodb`: triggered by the stream of table `LOOP_TABLE`, it updates
//!   the item of every record it receives (`SET n = n + :one`), which writes
//!   a new stream record;
//! * `eventbridge`: triggered by a rule on the default bus that matches
//!   `source = loop.guard.e2e`, it puts an event with that source;
//! * `s3`: triggered by `ObjectCreated` notifications of bucket
//!   `LOOP_BUCKET`, it writes the next object into that bucket;
//! * `invoke`: invoked asynchronously, it invokes itself asynchronously
//!   again with a JSON payload;
//! * `kinesis`: triggered by Kinesis stream `LOOP_STREAM`, it puts the next
//!   record (JSON data) into that stream;
//! * `eventbridge-sqs`: triggered by an SQS queue that a rule matching
//!   `source = loop.guard.e2e` targets, it puts an event with that source
//!   (the event reaches it as the SQS body);
//! * `stepfunctions`: the Lambda task of state machine `LOOP_STATE_MACHINE`,
//!   it starts a new execution of that state machine;
//! * `s3-sqs`: triggered by an SQS queue that receives the `ObjectCreated`
//!   notifications of bucket `LOOP_BUCKET` (straight, through an SNS topic,
//!   or through EventBridge), it writes the next object into that bucket.
//!
//! It is guarded: `lambda_loop_guard::run_with` around the handler (the S3
//! loop with the `HeadObject` lookup), which puts
//! `AsyncPayloadLayer` on the runtime (so the
//! typed, `deny_unknown_fields` payloads never see the lineage key), and
//! `LoopGuardInterceptor` with the opt-in carriers on every SDK client.
//!
//! Each handler run prints `loop-guard-e2e run source=.. lineage=..`; each
//! drop prints the EMF line.

use aws_config::BehaviorVersion;
use aws_lambda_events::event::dynamodb::Event as DynamoDbEvent;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::event::streams::{DynamoDbEventResponse, KinesisEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use lambda_loop_guard::chain::Chain;
use lambda_loop_guard::interceptor::LoopGuardSdkExt;
use lambda_loop_guard::{GuardedEvent, LoopGuardInterceptor, LoopGuardLayer};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::{Deserialize, Serialize};

/// The EventBridge `source` the function's own rule matches.
const EVENT_SOURCE: &str = "loop.guard.e2e";

/// The detail of the looping events. Unknown fields are an error: the
/// lineage key must be gone before deserialization.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tick {
    hop: u32,
}

/// The payload of the async self-invoke.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Job {
    hop: u32,
}

impl GuardedEvent for Job {}

/// The looping event: source `EVENT_SOURCE`, detail `tick`.
fn tick(detail: &Tick) -> Result<aws_sdk_eventbridge::types::PutEventsRequestEntry, Error> {
    Ok(aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source(EVENT_SOURCE)
        .detail_type("tick")
        .detail(serde_json::to_string(detail)?)
        .build())
}

fn log_run(source: &str) {
    let lineage = Chain::current()
        .map(|c| c.lineage().to_string())
        .unwrap_or_default();
    println!("loop-guard-e2e run source={source} lineage={lineage}");
}

fn var(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_ansi(false)
        .without_time()
        .init();
    let guard = LoopGuardLayer::from_env()?;
    let sdk_config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let interceptor = || {
        // From the guard's configuration: the DynamoDB attribute is set once.
        let mut interceptor = LoopGuardInterceptor::from_config(guard.config())
            .stamp_async_payloads()
            .stamp_eventbridge_detail()
            .stamp_stepfunctions_input();
        if let Ok(table) = std::env::var("LOOP_TABLE") {
            interceptor = interceptor.stamp_dynamodb_table(table);
        }
        if let Ok(bucket) = std::env::var("LOOP_BUCKET") {
            interceptor = interceptor.stamp_s3_bucket(bucket);
        }
        if let Ok(stream) = std::env::var("LOOP_STREAM") {
            interceptor = interceptor.stamp_kinesis_stream(stream);
        }
        interceptor
    };

    let s3_client = || {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk_config)
                .force_path_style(true)
                .loop_guard_with(interceptor())
                .build(),
        )
    };

    match var("LOOP_SOURCE")?.as_str() {
        "dynamodb" => {
            let table = var("LOOP_TABLE")?;
            let dynamodb = aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&sdk_config)
                    .loop_guard_with(interceptor())
                    .build(),
            );
            let handler = move |event: LambdaEvent<DynamoDbEvent>| {
                let (dynamodb, table) = (dynamodb.clone(), table.clone());
                async move {
                    for record in &event.payload.records {
                        log_run("dynamodb");
                        dynamodb
                            .update_item()
                            .table_name(&table)
                            .set_key(Some(
                                record
                                    .change
                                    .keys
                                    .iter()
                                    .filter_map(|(k, v)| match v {
                                        serde_dynamo::AttributeValue::S(s) => {
                                            Some((k.clone(), AttributeValue::S(s.clone())))
                                        }
                                        _ => None,
                                    })
                                    .collect(),
                            ))
                            .update_expression("SET n = n + :one")
                            .expression_attribute_values(":one", AttributeValue::N("1".into()))
                            .send()
                            .await?;
                    }
                    Ok::<_, Error>(DynamoDbEventResponse::default())
                }
            };
            lambda_loop_guard::run_with(guard, service_fn(handler)).await
        }
        "eventbridge" => {
            let events = aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(&sdk_config)
                    .loop_guard_with(interceptor())
                    .build(),
            );
            let handler = move |event: LambdaEvent<EventBridgeEvent<Tick>>| {
                let events = events.clone();
                async move {
                    log_run("eventbridge");
                    let next = Tick {
                        hop: event.payload.detail.hop + 1,
                    };
                    events.put_events().entries(tick(&next)?).send().await?;
                    Ok::<_, Error>(())
                }
            };
            lambda_loop_guard::run_with(guard, service_fn(handler)).await
        }
        "s3" => {
            let bucket = var("LOOP_BUCKET")?;
            let s3 = s3_client();
            let lookup = s3.clone();
            let handler = move |event: LambdaEvent<S3Event>| {
                let (s3, bucket) = (s3.clone(), bucket.clone());
                async move {
                    for record in &event.payload.records {
                        log_run("s3");
                        let key = record.s3.object.key.as_deref().unwrap_or("seed");
                        s3.put_object()
                            .bucket(&bucket)
                            .key(format!("{key}.next"))
                            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"again"))
                            .send()
                            .await?;
                    }
                    Ok::<_, Error>(())
                }
            };
            lambda_loop_guard::run_with(guard.with_s3_metadata(lookup), service_fn(handler)).await
        }
        "eventbridge-sqs" => {
            let events = aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(&sdk_config)
                    .loop_guard_with(interceptor())
                    .build(),
            );
            let handler = move |event: LambdaEvent<SqsEvent>| {
                let events = events.clone();
                async move {
                    for _ in &event.payload.records {
                        log_run("eventbridge-sqs");
                        events
                            .put_events()
                            .entries(tick(&Tick { hop: 1 })?)
                            .send()
                            .await?;
                    }
                    Ok::<_, Error>(SqsBatchResponse::default())
                }
            };
            lambda_loop_guard::run_with(guard, service_fn(handler)).await
        }
        "s3-sqs" => {
            let bucket = var("LOOP_BUCKET")?;
            let s3 = s3_client();
            let lookup = s3.clone();
            let handler = move |event: LambdaEvent<SqsEvent>| {
                let (s3, bucket) = (s3.clone(), bucket.clone());
                async move {
                    for record in &event.payload.records {
                        // S3 tests a queue it is given with a test event
                        // (no object): nothing to do for it.
                        let body = record.body.as_deref().unwrap_or_default();
                        if body.contains("s3:TestEvent") {
                            continue;
                        }
                        log_run("s3-sqs");
                        let id = record.message_id.as_deref().unwrap_or("seed");
                        s3.put_object()
                            .bucket(&bucket)
                            .key(format!("next-{id}"))
                            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"again"))
                            .send()
                            .await?;
                    }
                    Ok::<_, Error>(SqsBatchResponse::default())
                }
            };
            lambda_loop_guard::run_with(guard.with_s3_metadata(lookup), service_fn(handler)).await
        }
        "stepfunctions" => {
            let state_machine = var("LOOP_STATE_MACHINE")?;
            let sfn = aws_sdk_sfn::Client::from_conf(
                aws_sdk_sfn::config::Builder::from(&sdk_config)
                    .loop_guard_with(interceptor())
                    .build(),
            );
            let handler = move |event: LambdaEvent<Job>| {
                let (sfn, state_machine) = (sfn.clone(), state_machine.clone());
                async move {
                    log_run("stepfunctions");
                    let next = Job {
                        hop: event.payload.hop + 1,
                    };
                    sfn.start_execution()
                        .state_machine_arn(state_machine)
                        .input(serde_json::to_string(&next)?)
                        .send()
                        .await?;
                    Ok::<_, Error>(serde_json::to_value(next)?)
                }
            };
            lambda_loop_guard::run_with(guard, service_fn(handler)).await
        }
        "kinesis" => {
            let stream = var("LOOP_STREAM")?;
            let kinesis = aws_sdk_kinesis::Client::from_conf(
                aws_sdk_kinesis::config::Builder::from(&sdk_config)
                    .loop_guard_with(interceptor())
                    .build(),
            );
            let handler = move |event: LambdaEvent<KinesisEvent>| {
                let (kinesis, stream) = (kinesis.clone(), stream.clone());
                async move {
                    for record in &event.payload.records {
                        log_run("kinesis");
                        // The data keeps the lineage key: read what we need.
                        let data: serde_json::Value =
                            serde_json::from_slice(&record.kinesis.data.0)?;
                        let next =
                            serde_json::json!({ "hop": data["hop"].as_u64().unwrap_or(0) + 1 });
                        kinesis
                            .put_record()
                            .stream_name(&stream)
                            .partition_key("loop")
                            .data(aws_sdk_kinesis::primitives::Blob::new(serde_json::to_vec(
                                &next,
                            )?))
                            .send()
                            .await?;
                    }
                    Ok::<_, Error>(KinesisEventResponse::default())
                }
            };
            lambda_loop_guard::run_with(guard, service_fn(handler)).await
        }
        "invoke" => {
            let lambda = aws_sdk_lambda::Client::from_conf(
                aws_sdk_lambda::config::Builder::from(&sdk_config)
                    .loop_guard_with(interceptor())
                    .build(),
            );
            let me = var("AWS_LAMBDA_FUNCTION_NAME")?;
            let handler = move |event: LambdaEvent<Job>| {
                let (lambda, me) = (lambda.clone(), me.clone());
                async move {
                    log_run("invoke");
                    let next = Job {
                        hop: event.payload.hop + 1,
                    };
                    lambda
                        .invoke()
                        .function_name(me)
                        .invocation_type(InvocationType::Event)
                        .payload(Blob::new(serde_json::to_vec(&next)?))
                        .send()
                        .await?;
                    Ok::<_, Error>(())
                }
            };
            lambda_loop_guard::run_with(guard, service_fn(handler)).await
        }
        other => Err(format!("unknown LOOP_SOURCE `{other}`").into()),
    }
}
