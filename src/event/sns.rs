//! SNS events. SNS invokes a function asynchronously with one record, so a
//! looping SNS delivery fails the whole invocation (Lambda retries it, then
//! sends it to the function's DLQ or on-failure destination).
//!
//! Carriers: the `loop-guard` message attribute of each record, plus the
//! [`Context`]'s trace header and client context.

use std::collections::HashMap;

use aws_lambda_events::event::sns::{MessageAttribute as SnsAttribute, SnsEvent, SnsEventObj};
use lambda_runtime::Context;
use serde::Serialize;

use super::{EventSource, GuardedEvent, Incoming};
use crate::carrier::MessageAttribute;

impl GuardedEvent for SnsEvent {
    fn read_incoming<'a>(&'a self, context: &'a Context, out: &mut Vec<Incoming<'a>>) {
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

impl<T: Serialize> GuardedEvent for SnsEventObj<T> {
    fn read_incoming<'a>(&'a self, context: &'a Context, out: &mut Vec<Incoming<'a>>) {
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
    incoming.read_carrier(&MessageAttribute::default(), attributes);
    incoming.read_context(context);
    incoming
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::carrier::MESSAGE_ATTRIBUTE;
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
            record
                .sns
                .message_attributes
                .insert(MESSAGE_ATTRIBUTE.into(), a);
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
        let mut out = Vec::new();
        event.read_incoming(&ctx, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].source(), EventSource::Sns);
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(1)), 2);
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(2)), 3);
        assert_eq!(out[0].chain_root(), Some("1-s-1"));
        assert_eq!(out[0].item_id(), Some("sns-1"));
        assert!(!event.is_batch());
    }
}
