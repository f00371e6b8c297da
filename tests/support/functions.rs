//! Functions on ministack: SDK clients, deploying an example as a
//! `provided.al2023` function, invoking it, and reading its log.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime, State};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

use super::{bootstrap_zip, example_binary, Emulator};

pub struct Clients {
    pub lambda: aws_sdk_lambda::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

impl Clients {
    pub async fn new(emulator: &Emulator) -> Clients {
        let config = emulator.sdk_config().await;
        Clients {
            lambda: aws_sdk_lambda::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
        }
    }

    pub async fn queue(
        &self,
        name: &str,
        attributes: HashMap<QueueAttributeName, String>,
    ) -> (String, String) {
        let url = self
            .sqs
            .create_queue()
            .queue_name(name)
            .set_attributes(Some(attributes))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&QueueAttributeName::QueueArn]
            .clone();
        (url, arn)
    }

    /// A queue `name` (visibility timeout 1 s) whose messages move to
    /// `<name>-dlq` after `max_receive_count` receives: `((url, arn), (dlq
    /// url, dlq arn))`.
    pub async fn queue_with_dlq(
        &self,
        name: &str,
        max_receive_count: u32,
    ) -> ((String, String), (String, String)) {
        let dlq = self.queue(&format!("{name}-dlq"), HashMap::new()).await;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq.1,
            "maxReceiveCount": max_receive_count,
        })
        .to_string();
        let queue = self
            .queue(
                name,
                HashMap::from([
                    (QueueAttributeName::RedrivePolicy, redrive),
                    (QueueAttributeName::VisibilityTimeout, "1".to_string()),
                ]),
            )
            .await;
        (queue, dlq)
    }

    /// Maps `queue_arn` to `function` with `batch_size`, reporting batch
    /// item failures; returns the mapping's id.
    pub async fn map_queue(&self, queue_arn: &str, function: &str, batch_size: i32) -> String {
        self.lambda
            .create_event_source_mapping()
            .event_source_arn(queue_arn)
            .function_name(function)
            .batch_size(batch_size)
            .function_response_types(
                aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures,
            )
            .send()
            .await
            .unwrap()
            .uuid
            .unwrap()
    }

    /// A topic `name` subscribed by the queue `queue_arn` (`raw`: raw
    /// message delivery, else each message in an SNS envelope); its ARN.
    pub async fn topic_to_queue(&self, name: &str, queue_arn: &str, raw: bool) -> String {
        let topic = self
            .sns
            .create_topic()
            .name(name)
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap();
        self.sns
            .subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("RawMessageDelivery", raw.to_string())
            .send()
            .await
            .unwrap();
        topic
    }

    pub async fn drain(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        drain_queue(&self.sqs, url).await
    }

    pub async fn log_text(&self, function: &str) -> String {
        let mut text = String::new();
        let mut token = None;
        loop {
            let page = match self
                .logs
                .filter_log_events()
                .log_group_name(format!("/aws/lambda/{function}"))
                .set_next_token(token)
                .send()
                .await
            {
                Ok(page) => page,
                Err(_) => return text, // no group yet
            };
            for event in page.events.unwrap_or_default() {
                text.push_str(event.message.as_deref().unwrap_or_default());
                text.push('\n');
            }
            token = page.next_token;
            if token.is_none() {
                return text;
            }
        }
    }
}

/// Deploys `examples/<example>.rs` as a `provided.al2023` function, waits
/// until it is Active, and returns its ARN.
pub async fn deploy(
    c: &Clients,
    function: &str,
    example: &str,
    env: HashMap<String, String>,
    timeout: i32,
) -> String {
    let zip = bootstrap_zip(&example_binary(example));
    let arn = c
        .lambda
        .create_function()
        .function_name(function)
        .runtime(Runtime::Providedal2023)
        .role("arn:aws:iam::000000000000:role/loop-guard-e2e")
        .handler("bootstrap")
        .timeout(timeout)
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .environment(Environment::builder().set_variables(Some(env)).build())
        .send()
        .await
        .unwrap()
        .function_arn
        .expect("function ARN");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = c
            .lambda
            .get_function()
            .function_name(function)
            .send()
            .await
            .unwrap()
            .configuration
            .and_then(|c| c.state);
        if state == Some(State::Active) {
            return arn;
        }
        assert!(Instant::now() < deadline, "function not Active: {state:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Invokes `function` asynchronously (`InvocationType::Event`) with `payload`.
pub async fn invoke_async(c: &Clients, function: &str, payload: &serde_json::Value) {
    c.lambda
        .invoke()
        .function_name(function)
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .unwrap();
}

/// Polls `function`'s log until `done` holds for it, at most `limit`;
/// returns the last log read.
pub async fn wait_for_log(
    c: &Clients,
    function: &str,
    limit: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let logs = c.log_text(function).await;
        if done(&logs) || Instant::now() > deadline {
            return logs;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Receives (and leaves invisible for 30 s) every message of the queue at
/// `url`, with all its attributes.
pub async fn drain_queue(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .visibility_timeout(30)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
}
