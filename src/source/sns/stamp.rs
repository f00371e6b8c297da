//! SNS: the `loop-guard` message attribute on `Publish` and every
//! `PublishBatch` entry.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use aws_sdk_sns::operation::publish::PublishInput;
use aws_sdk_sns::operation::publish_batch::PublishBatchInput;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_smithy_runtime_api::client::interceptors::context::Input;

use crate::carrier::stamp_attribute;
use crate::lineage::Lineage;

static FULL_LOGGED: AtomicBool = AtomicBool::new(false);

/// SNS's maximum message size (body and attributes).
const MAX_MESSAGE_BYTES: usize = 262_144;

pub(crate) fn stamp(input: &mut Input, lineage: &Lineage) -> bool {
    if let Some(publish) = input.downcast_mut::<PublishInput>() {
        stamp_message(
            &mut publish.message_attributes,
            publish.message.as_deref(),
            lineage,
        );
        return true;
    }
    if let Some(batch) = input.downcast_mut::<PublishBatchInput>() {
        for entry in batch.publish_batch_request_entries.iter_mut().flatten() {
            stamp_message(&mut entry.message_attributes, Some(&entry.message), lineage);
        }
        return true;
    }
    false
}

fn stamp_message(
    attributes: &mut Option<HashMap<String, MessageAttributeValue>>,
    body: Option<&str>,
    lineage: &Lineage,
) {
    stamp_attribute(
        attributes.get_or_insert_with(HashMap::new),
        body.unwrap_or_default(),
        |_| MAX_MESSAGE_BYTES,
        lineage,
        &FULL_LOGGED,
        "SNS message already has 10 message attributes: loop guard lineage sent in the trace header only",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier::KEY;
    use crate::interceptor::tests::{chain, run_serialization_hook};
    use aws_sdk_sns::types::PublishBatchRequestEntry;

    fn attr(v: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn publish_and_batch_entries_get_the_attribute() {
        let c = chain(4, None);
        let expected = c.lineage().to_string();
        let out = run_serialization_hook(
            PublishInput::builder()
                .topic_arn("t")
                .message("m")
                .message_attributes("theirs", attr("x"))
                .build()
                .unwrap(),
            Some(c.clone()),
        )
        .await;
        let attrs = out.message_attributes.unwrap();
        assert_eq!(attrs["theirs"].string_value.as_deref(), Some("x"));
        assert_eq!(attrs[KEY].string_value.as_deref(), Some(expected.as_str()));

        let mut full = PublishBatchRequestEntry::builder().id("full").message("m");
        for i in 0..10 {
            full = full.message_attributes(format!("a{i}"), attr("x"));
        }
        let out = run_serialization_hook(
            PublishBatchInput::builder()
                .topic_arn("t")
                .publish_batch_request_entries(
                    PublishBatchRequestEntry::builder()
                        .id("1")
                        .message("m")
                        .build()
                        .unwrap(),
                )
                .publish_batch_request_entries(full.build().unwrap())
                .build()
                .unwrap(),
            Some(c),
        )
        .await;
        let entries = out.publish_batch_request_entries.unwrap();
        assert_eq!(
            entries[0].message_attributes.as_ref().unwrap()[KEY]
                .string_value
                .as_deref(),
            Some(expected.as_str())
        );
        assert!(!entries[1]
            .message_attributes
            .as_ref()
            .unwrap()
            .contains_key(KEY));
    }

    #[tokio::test]
    async fn a_message_near_the_256_kib_limit_keeps_its_attributes() {
        let out = run_serialization_hook(
            PublishInput::builder()
                .topic_arn("t")
                .message("x".repeat(262_120))
                .build()
                .unwrap(),
            Some(chain(1, None)),
        )
        .await;
        assert!(!out.message_attributes.unwrap_or_default().contains_key(KEY));
    }
}
