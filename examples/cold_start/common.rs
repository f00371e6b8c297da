// Shared by examples/cold_start_bare.rs and examples/cold_start_guarded.rs:
// the same function, built with and without the guard, for the cold start
// and binary size measurements in docs/performance.md. With
// `COLD_START_EXIT=1` the process exits right where `lambda_runtime::run`
// would start polling for the first event ("first handler ready").

use aws_config::BehaviorVersion;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent};
use tower::ServiceBuilder;

async fn handler(sqs: aws_sdk_sqs::Client, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    for record in &event.payload.records {
        let body = record.body.clone().unwrap_or_default();
        sqs.send_message().queue_url("https://sqs.us-east-1.amazonaws.com/0/q").message_body(body).send().await?;
    }
    Ok(SqsBatchResponse::default())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let sdk_config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let mut sqs_config = aws_sdk_sqs::config::Builder::from(&sdk_config);
    if GUARDED {
        sqs_config = sqs_config.interceptor(lambda_loop_guard::LoopGuardInterceptor::new());
    }
    let sqs = aws_sdk_sqs::Client::from_conf(sqs_config.build());
    let handler = tower::service_fn(move |event| handler(sqs.clone(), event));
    if GUARDED {
        let service = ServiceBuilder::new().layer(lambda_loop_guard::LoopGuardLayer::from_env()?).service(handler);
        if std::env::var_os("COLD_START_EXIT").is_some() {
            return Ok(());
        }
        lambda_runtime::run(service).await
    } else {
        if std::env::var_os("COLD_START_EXIT").is_some() {
            return Ok(());
        }
        lambda_runtime::run(handler).await
    }
}
