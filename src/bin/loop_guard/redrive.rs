//! `loop-guard redrive`: messages from a DLQ back to their queue, without
//! the lineage that got them dropped.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_sqs::types::{
    Message, MessageAttributeValue, MessageSystemAttributeName, MessageSystemAttributeNameForSends,
    MessageSystemAttributeValue,
};
use lambda_loop_guard::carrier::KEY;
use lambda_loop_guard::trace_header::TraceHeader;

/// What to move, and how.
pub(crate) struct Options {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) max: Option<usize>,
    pub(crate) dry_run: bool,
    pub(crate) interval: Duration,
    pub(crate) visibility_timeout: i32,
}

/// Moves messages until the DLQ is empty or `max` moved; the count moved.
/// Each message is sent first and deleted from the DLQ only after the send
/// succeeded: a redrive killed between the two leaves the message in both
/// queues (at least once), never in neither.
pub(crate) async fn run(options: &Options) -> Result<usize, String> {
    if options.from == options.to {
        return Err("--from and --to are the same queue".to_owned());
    }
    let config = aws_config::load_from_env().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    // A dry run hides what it lists (SQS has no other way to page through a
    // queue) and shows it all again at the end, whatever happened.
    let mut listed = Vec::new();
    let result = move_messages(&sqs, options, &mut listed).await;
    show_again(&sqs, &options.from, &listed).await;
    result
}

async fn move_messages(
    sqs: &aws_sdk_sqs::Client,
    options: &Options,
    listed: &mut Vec<Message>,
) -> Result<usize, String> {
    let fifo = options.to.ends_with(".fifo");
    let limit = options.max.unwrap_or(usize::MAX);
    let mut seen = HashSet::new();
    let mut moved = 0;
    while moved < limit {
        // A gentle redrive takes one message at a time: none waits hidden.
        let batch = if options.interval.is_zero() { 10 } else { 1 };
        let wanted = (limit - moved).min(batch) as i32;
        let received = sqs
            .receive_message()
            .queue_url(&options.from)
            .max_number_of_messages(wanted)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .visibility_timeout(options.visibility_timeout)
            .send()
            .await
            .map_err(|e| format!("receiving from {}: {}", options.from, show(e)))?;
        let messages = received.messages.unwrap_or_default();
        let fresh: Vec<Message> = messages
            .into_iter()
            .filter(|m| seen.insert(m.message_id.clone().unwrap_or_default()))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for message in fresh.into_iter().take(limit - moved) {
            let id = message.message_id.clone().unwrap_or_default();
            if options.dry_run {
                println!("would move {id}: {}", what_changes(&message));
                listed.push(message);
            } else {
                send_back(sqs, &options.to, fifo, &message).await?;
                let receipt = message.receipt_handle.as_deref().unwrap_or_default();
                sqs.delete_message()
                    .queue_url(&options.from)
                    .receipt_handle(receipt)
                    .send()
                    .await
                    .map_err(|e| {
                        format!("deleting {id} from the DLQ (it was sent): {}", show(e))
                    })?;
                println!("moved {id}");
            }
            moved += 1;
            if !options.interval.is_zero() {
                tokio::time::sleep(options.interval).await;
            }
        }
    }
    Ok(moved)
}

/// Makes `messages` (listed by a dry run) visible again; a failure is a
/// warning (they come back after the visibility timeout anyway).
async fn show_again(sqs: &aws_sdk_sqs::Client, queue: &str, messages: &[Message]) {
    for message in messages {
        let Some(receipt) = message.receipt_handle.as_deref() else {
            continue;
        };
        let shown = sqs
            .change_message_visibility()
            .queue_url(queue)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await;
        if let Err(e) = shown {
            eprintln!(
                "warning: a listed message stays hidden for the visibility timeout: {}",
                show(e)
            );
        }
    }
}

/// Sends `message` to `to` as it was, but for our attribute and our trace
/// field.
async fn send_back(
    sqs: &aws_sdk_sqs::Client,
    to: &str,
    fifo: bool,
    message: &Message,
) -> Result<(), String> {
    let id = message.message_id.as_deref().unwrap_or_default();
    let attributes: HashMap<String, MessageAttributeValue> = message
        .message_attributes
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _)| name != KEY)
        .collect();
    let system = |name: MessageSystemAttributeName| {
        message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&name))
            .cloned()
    };
    let mut send = sqs
        .send_message()
        .queue_url(to)
        .message_body(message.body.clone().unwrap_or_default())
        .set_message_attributes((!attributes.is_empty()).then_some(attributes));
    if let Some(header) = system(MessageSystemAttributeName::AwsTraceHeader) {
        let kept = TraceHeader::parse(&header)
            .map(|h| h.without_loop_guard())
            .unwrap_or_default();
        if !kept.is_empty() {
            let value = MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(kept)
                .build()
                .map_err(|e| e.to_string())?;
            send = send.message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                value,
            );
        }
    }
    if fifo {
        let group = system(MessageSystemAttributeName::MessageGroupId)
            .ok_or_else(|| format!("{id} has no MessageGroupId for the FIFO queue {to}"))?;
        // Not the original's id: SQS would take the send, within five
        // minutes of the original, for a duplicate and enqueue nothing. The
        // same id on a re-run (after a kill) keeps a redrive at most once.
        let dedup = format!("redrive-{id}");
        send = send.message_group_id(group).message_deduplication_id(dedup);
    }
    send.send()
        .await
        .map(|_| ())
        .map_err(|e| format!("sending {id} to {to} (it stays in the DLQ): {}", show(e)))
}

/// What a redrive would change in `message`.
fn what_changes(message: &Message) -> String {
    let attribute = message
        .message_attributes
        .as_ref()
        .and_then(|a| a.get(KEY))
        .and_then(|a| a.string_value.as_deref());
    let header = message
        .attributes
        .as_ref()
        .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader))
        .and_then(|h| TraceHeader::parse(h).ok())
        .and_then(|h| h.lineage());
    let envelope = message.body.as_deref().is_some_and(|b| {
        b.trim_start().starts_with('{') && b.contains("\"MessageAttributes\"") && b.contains(KEY)
    });
    if envelope {
        return "its body looks like an SNS envelope with our lineage inside: that lineage is \
                NOT removed (a trusted topic's envelope is read again); send it by hand"
            .to_owned();
    }
    match (attribute, header) {
        (None, None) => "no lineage: sent as it is".to_owned(),
        (attribute, header) => format!(
            "lineage removed (attribute {}, trace field {})",
            attribute.unwrap_or("-"),
            header.map_or_else(|| "-".to_owned(), |l| l.to_string())
        ),
    }
}

fn show<E: std::error::Error + 'static>(e: aws_sdk_sqs::error::SdkError<E>) -> String {
    aws_sdk_sqs::error::DisplayErrorContext(e).to_string()
}
