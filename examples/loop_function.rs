//! A Lambda function (`provided.al2023` `bootstrap`) with a recursive-loop
//! bug: for every SQS record it receives it writes one message (or
//! `LOOP_FAN_OUT` messages) back into the loop, either to an SQS queue (`LOOP_SEND_QUEUE_URL`, else `QUEUE_URL` as
//! `deploy/template.yaml` sets it; a FIFO queue gets the record's message group) or to an SNS topic (`LOOP_PUBLISH_TOPIC_ARN`) that
//! delivers to its own queue.
//!
//! It is guarded the shortest way: `lambda_loop_guard::run` around the
//! handler, and `.loop_guard()` on both SDK client configurations. The end-to-end tests deploy
//! this binary to a local emulator and watch the guard stop the loop.
//!
//! With `LOOP_BUDGET_TABLE` set, the chain budget is counted exactly in that
//! DynamoDB table (`with_exact_budget`).
//!
//! Each handler run prints one line `loop-guard-e2e run message_id=.. lineage=..`;
//! each drop prints the EMF line.

use aws_config::BehaviorVersion;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_loop_guard::exact_budget::{DynamoDbBudgetStore, ExactBudget};
use lambda_loop_guard::interceptor::LoopGuardSdkExt;
use lambda_loop_guard::{Chain, LoopGuardLayer};
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[derive(Clone)]
struct Clients {
    sqs: aws_sdk_sqs::Client,
    sns: aws_sdk_sns::Client,
}

async fn handler(
    clients: Clients,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let batch = event.payload.records.len();
    for record in &event.payload.records {
        // Work for one record carries that record's own chain.
        lambda_loop_guard::for_record(record, async {
            let id = record.message_id.as_deref().unwrap_or("-");
            let lineage = Chain::current()
                .map(|c| c.lineage().to_string())
                .unwrap_or_default();
            println!("loop-guard-e2e run message_id={id} batch={batch} lineage={lineage}");
            let body = format!("follow-up of {id}");
            // `QUEUE_URL` is what deploy/template.yaml sets: its own queue.
            let queue =
                std::env::var("LOOP_SEND_QUEUE_URL").or_else(|_| std::env::var("QUEUE_URL"));
            // `LOOP_FAN_OUT` messages per record (default 1): a fan-out loop.
            let fan_out: usize = std::env::var("LOOP_FAN_OUT")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            if let Ok(queue_url) = queue {
                for copy in 0..fan_out {
                    let mut send = clients.sqs.send_message().message_body(&body);
                    if queue_url.ends_with(".fifo") {
                        // A FIFO queue: the follow-up joins the record's group.
                        let group = record.attributes.get("MessageGroupId");
                        send = send
                            .message_group_id(group.map_or("loop", String::as_str))
                            .message_deduplication_id(format!("after-{id}-{copy}"));
                    }
                    send.queue_url(&queue_url).send().await?;
                }
            }
            if let Ok(topic_arn) = std::env::var("LOOP_PUBLISH_TOPIC_ARN") {
                clients
                    .sns
                    .publish()
                    .topic_arn(topic_arn)
                    .message(&body)
                    .send()
                    .await?;
            }
            Ok::<_, Error>(())
        })
        .await?;
    }
    Ok(SqsBatchResponse::default())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_ansi(false)
        .without_time()
        .init();
    let sdk_config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let clients = Clients {
        sqs: aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&sdk_config)
                .loop_guard()
                .build(),
        ),
        sns: aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&sdk_config)
                .loop_guard()
                .build(),
        ),
    };
    let handler = service_fn(move |event| handler(clients.clone(), event));
    // `LOOP_BUDGET_TABLE`: the chain budget counted exactly in this
    // DynamoDB table instead of shared out among sends.
    match std::env::var("LOOP_BUDGET_TABLE") {
        Ok(table) => {
            let store = DynamoDbBudgetStore::new(aws_sdk_dynamodb::Client::new(&sdk_config), table);
            let guard = LoopGuardLayer::from_env()?.with_exact_budget(ExactBudget::new(store));
            lambda_loop_guard::run_with(guard, handler).await
        }
        Err(_) => lambda_loop_guard::run(handler).await,
    }
}
