//! SNS: one unit per record. SNS invokes a function asynchronously with one
//! record ([`Batch::Single`](crate::Batch::Single)), so a looping SNS
//! delivery fails the whole invocation (Lambda retries it, then sends it to
//! the function's DLQ or on-failure destination).
//!
//! * Read: the `loop-guard` message attribute of each record, plus the
//!   [`Context`]'s trace header and client context. SNS notifications
//!   delivered through SQS are read by the [`sqs`](super::sqs) source.
//! * Stamp (feature `sns`): the `loop-guard` message attribute on `Publish`
//!   and every `PublishBatch` entry.

use std::collections::HashMap;

use aws_lambda_events::event::sns::{MessageAttribute as SnsAttribute, SnsEvent, SnsEventObj};
use lambda_runtime::Context;
use serde::Serialize;

use crate::carrier::{Carrier, MessageAttribute};
use crate::config::LoopGuardConfig;
use crate::incoming::{EventSource, Incoming, Units};
use crate::source::GuardedEvent;

#[cfg(feature = "sns")]
pub(crate) mod stamp;

impl GuardedEvent for SnsEvent {
    fn read_incoming<'a>(
        &'a self,
        context: &'a Context,
        _config: &LoopGuardConfig,
        out: &mut Units<'a, '_>,
    ) {
        out.extend(self.records.iter().map(|r| {
            let mut incoming = read_record(
                context,
                &r.sns.message_id,
                &r.sns.topic_arn,
                &r.sns.message_attributes,
            );
            // An EventBridge rule's SNS target: the event is the message.
            crate::source::nested::read_eventbridge_event(&r.sns.message, &mut incoming);
            incoming
        }));
    }
}

impl<T: Serialize> GuardedEvent for SnsEventObj<T> {
    fn read_incoming<'a>(
        &'a self,
        context: &'a Context,
        _config: &LoopGuardConfig,
        out: &mut Units<'a, '_>,
    ) {
        out.extend(self.records.iter().map(|r| {
            read_record(
                context,
                &r.sns.message_id,
                &r.sns.topic_arn,
                &r.sns.message_attributes,
            )
        }));
    }
}

fn read_record<'a>(
    context: &'a Context,
    message_id: &'a str,
    topic_arn: &'a str,
    attributes: &'a HashMap<String, SnsAttribute>,
) -> Incoming<'a> {
    let mut incoming = Incoming::new(EventSource::Sns);
    incoming.set_item_id(Some(message_id));
    incoming.set_source_arn(Some(topic_arn).filter(|arn| !arn.is_empty()));
    MessageAttribute::default().read(attributes, &mut incoming);
    incoming.read_context(context);
    incoming
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::carrier::KEY;
    use crate::config::test_config;
    use crate::FunctionId;
    use aws_lambda_events::event::sns::SnsRecord;

    pub(crate) fn sns_event(attribute: Option<&str>) -> SnsEvent {
        let mut record = SnsRecord::default();
        record.event_source = "aws:sns".into();
        record.sns.message_id = "sns-1".into();
        if let Some(value) = attribute {
            let mut a = SnsAttribute::default();
            a.data_type = "String".into();
            a.value = value.into();
            record.sns.message_attributes.insert(KEY.into(), a);
        }
        let mut event = SnsEvent::default();
        event.records = vec![record];
        event
    }

    #[test]
    fn attribute_and_context_are_merged() {
        let event = sns_event(Some("v1.2.00000001-2"));
        let mut ctx = Context::default();
        ctx.xray_trace_id = Some("Root=1-s-1;LoopGuard=v1.3.00000002-3".into());
        let out = crate::source::read_units(&event, &ctx, &test_config());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].source(), EventSource::Sns);
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(1)), 2);
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(2)), 3);
        assert_eq!(out[0].chain_root(), Some("1-s-1"));
        assert_eq!(out[0].item_id(), Some("sns-1"));
        assert!(!event.batch().drops_per_record());
    }

    #[test]
    fn an_eventbridge_event_as_the_message_is_read_from_its_detail() {
        let mut event = sns_event(None);
        event.records[0].sns.message =
            r#"{"version":"0","id":"e","detail":{"loop-guard":"v1.5.00000001-5"}}"#.into();
        let ctx = Context::default();
        let out = crate::source::read_units(&event, &ctx, &test_config());
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(1)), 5);
    }
}
