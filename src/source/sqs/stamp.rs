//! SQS: the `loop-guard` message attribute on `SendMessage` and every
//! `SendMessageBatch` entry, and our field in a caller-set `AWSTraceHeader`.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use aws_sdk_sqs::operation::send_message::SendMessageInput;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
};
use aws_smithy_runtime_api::client::interceptors::context::Input;

use crate::carrier::{log_skipped, stamp_attribute};
use crate::carrier::{Carrier, TraceField};
use crate::lineage::Lineage;

static FULL_LOGGED: AtomicBool = AtomicBool::new(false);

/// A queue's default maximum message size (body and attributes).
const DEFAULT_MAX_MESSAGE_BYTES: usize = 262_144;
/// The largest maximum a queue can be given.
const LARGEST_MAX_MESSAGE_BYTES: usize = 1_048_576;

/// What a message of `before` bytes may grow to: a queue's maximum is not
/// known here, so a message within the default (256 KiB) stays within it,
/// and a larger one (its queue allows more) within the largest (1 MiB).
fn max_message_bytes(before: usize) -> usize {
    if before <= DEFAULT_MAX_MESSAGE_BYTES {
        DEFAULT_MAX_MESSAGE_BYTES
    } else {
        LARGEST_MAX_MESSAGE_BYTES
    }
}

pub(crate) fn stamp(input: &mut Input, lineage: &Lineage) -> bool {
    if let Some(send) = input.downcast_mut::<SendMessageInput>() {
        stamp_message(
            &mut send.message_attributes,
            &mut send.message_system_attributes,
            send.message_body.as_deref(),
            lineage,
        );
        return true;
    }
    if let Some(batch) = input.downcast_mut::<SendMessageBatchInput>() {
        for entry in batch.entries.iter_mut().flatten() {
            stamp_message(
                &mut entry.message_attributes,
                &mut entry.message_system_attributes,
                Some(&entry.message_body),
                lineage,
            );
        }
        return true;
    }
    false
}

fn stamp_message(
    attributes: &mut Option<HashMap<String, MessageAttributeValue>>,
    system_attributes: &mut Option<
        HashMap<MessageSystemAttributeNameForSends, MessageSystemAttributeValue>,
    >,
    body: Option<&str>,
    lineage: &Lineage,
) {
    stamp_attribute(
        attributes.get_or_insert_with(HashMap::new),
        body.unwrap_or_default(),
        max_message_bytes,
        lineage,
        &FULL_LOGGED,
        "SQS message already has 10 message attributes: loop guard lineage sent in the trace header only",
    );
    if let Some(trace) = system_attributes
        .as_mut()
        .and_then(|m| m.get_mut(&MessageSystemAttributeNameForSends::AwsTraceHeader))
        .and_then(|v| v.string_value.as_mut())
    {
        if let Err(error) = TraceField.write(trace, lineage) {
            log_skipped("AWSTraceHeader", &error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier::KEY;
    use crate::interceptor::tests::{chain, run_serialization_hook};
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

    fn attr(v: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn send_message_gets_attribute_and_trace_field() {
        let c = chain(2, None);
        let input = SendMessageInput::builder()
            .queue_url("q")
            .message_body("b")
            .message_attributes("theirs", attr("kept"))
            .message_attributes(KEY, attr("v1.9.00000001-9"))
            .message_system_attributes(
                MessageSystemAttributeNameForSends::AwsTraceHeader,
                MessageSystemAttributeValue::builder()
                    .data_type("String")
                    .string_value("Root=1-a-b;Sampled=1")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let out = run_serialization_hook(input, Some(c.clone())).await;
        let attrs = out.message_attributes.unwrap();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs["theirs"].string_value.as_deref(), Some("kept"));
        assert_eq!(
            attrs[KEY].string_value.as_deref(),
            Some(c.lineage().to_string().as_str())
        );
        let trace = &out.message_system_attributes.unwrap()
            [&MessageSystemAttributeNameForSends::AwsTraceHeader];
        assert_eq!(
            trace.string_value.as_deref(),
            Some(format!("Root=1-a-b;Sampled=1;LoopGuard={}", c.lineage()).as_str())
        );
    }

    #[tokio::test]
    async fn full_messages_keep_their_attributes_and_batches_stamp_every_entry() {
        let c = chain(1, None);
        let mut full = SendMessageBatchRequestEntry::builder()
            .id("full")
            .message_body("b");
        for i in 0..10 {
            full = full.message_attributes(format!("a{i}"), attr("x"));
        }
        let input = SendMessageBatchInput::builder()
            .queue_url("q")
            .entries(full.build().unwrap())
            .entries(
                SendMessageBatchRequestEntry::builder()
                    .id("plain")
                    .message_body("b")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let out = run_serialization_hook(input, Some(c.clone())).await;
        let entries = out.entries.unwrap();
        let full = entries[0].message_attributes.as_ref().unwrap();
        assert_eq!(full.len(), 10);
        assert!(!full.contains_key(KEY));
        let plain = entries[1].message_attributes.as_ref().unwrap();
        assert_eq!(
            plain[KEY].string_value.as_deref(),
            Some(c.lineage().to_string().as_str())
        );
    }

    #[tokio::test]
    async fn nothing_is_added_outside_a_guarded_handler() {
        let input = SendMessageInput::builder()
            .queue_url("q")
            .message_body("b")
            .build()
            .unwrap();
        let out = run_serialization_hook(input, None).await;
        assert!(out.message_attributes.is_none());
    }

    #[tokio::test]
    async fn a_message_near_its_size_limit_keeps_its_attributes() {
        let send = |body: String| {
            SendMessageInput::builder()
                .queue_url("q")
                .message_body(body)
                .build()
                .unwrap()
        };
        let c = chain(1, None);
        // Room for our 31 bytes (name, type, value): stamped.
        let out = run_serialization_hook(send("x".repeat(262_100)), Some(c.clone())).await;
        assert!(out.message_attributes.unwrap().contains_key(KEY));
        // Just under the default 256 KiB: our attribute would push it over.
        let out = run_serialization_hook(send("x".repeat(262_120)), Some(c.clone())).await;
        assert!(!out.message_attributes.unwrap_or_default().contains_key(KEY));
        // Over the default already: its queue allows more, up to 1 MiB.
        let out = run_serialization_hook(send("x".repeat(300_000)), Some(c.clone())).await;
        assert!(out.message_attributes.unwrap().contains_key(KEY));
        let out = run_serialization_hook(send("x".repeat(1_048_560)), Some(c)).await;
        assert!(!out.message_attributes.unwrap_or_default().contains_key(KEY));
    }
}
