//! Events shaped like the ones the guard sees in production, shared by the
//! allocation test, the benchmarks and the instruction probe.

#![allow(dead_code)]

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};

/// A typical Lambda trace header (about 150 bytes) carrying our field.
pub const TYPICAL_TRACE_HEADER: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=1:fe460cdd:3;LoopGuard=v1.3.bb687fa2-2.eca4390e-1";

/// An SQS batch as the guard's interceptor writes it: every record carries
/// the same lineage in `AWSTraceHeader` and in the `loop-guard` attribute.
pub fn stamped_sqs_event(records: usize) -> SqsEvent {
    let lineage = TYPICAL_TRACE_HEADER
        .rsplit("LoopGuard=")
        .next()
        .unwrap_or_default();
    let mut event = SqsEvent::default();
    event.records = (0..records)
        .map(|i| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m-{i}"));
            m.body = Some(format!("{{\"order\":{i}}}"));
            m.event_source = Some("aws:sqs".into());
            m.attributes
                .insert("AWSTraceHeader".into(), TYPICAL_TRACE_HEADER.into());
            let mut a = SqsMessageAttribute::default();
            a.data_type = Some("String".into());
            a.string_value = Some(lineage.to_owned());
            m.message_attributes.insert("loop-guard".into(), a);
            m
        })
        .collect();
    event
}
