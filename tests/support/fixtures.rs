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

/// An SQS batch shaped as AWS delivers it: a UUID message id, a long receipt
/// handle, the md5s, five system attributes with a 150-byte `AWSTraceHeader`
/// carrying our field, our message attribute, the source fields, and `body`.
/// The lineage of every record is `lineage` (in the header and attribute).
pub fn aws_shaped_sqs_event(records: usize, body: &str, lineage: &str) -> SqsEvent {
    let header = format!(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;LoopGuard={lineage}"
    );
    let mut event = SqsEvent::default();
    event.records = (0..records)
        .map(|i| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("{i:08x}-3b5b-4e4f-9a0b-2f8ec0a6d3c1"));
            m.receipt_handle = Some(format!("AQEB{}", "x7Kq9ZpL".repeat(48)));
            m.body = Some(body.to_owned());
            m.md5_of_body = Some("e4e68fb7bd0e697a0ae8f1bb342846b3".into());
            m.md5_of_message_attributes = Some("00484c68...59e48fb7".into());
            for (k, v) in [
                ("ApproximateReceiveCount", "1"),
                ("SentTimestamp", "1545082649183"),
                ("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
                ("ApproximateFirstReceiveTimestamp", "1545082649185"),
            ] {
                m.attributes.insert(k.into(), v.into());
            }
            m.attributes.insert("AWSTraceHeader".into(), header.clone());
            let mut a = SqsMessageAttribute::default();
            a.data_type = Some("String".into());
            a.string_value = Some(lineage.to_owned());
            m.message_attributes.insert("loop-guard".into(), a);
            m.event_source = Some("aws:sqs".into());
            m.event_source_arn = Some("arn:aws:sqs:us-east-2:123456789012:my-queue".into());
            m.aws_region = Some("us-east-2".into());
            m
        })
        .collect();
    event
}

/// A 4 KB JSON object, as an order or a domain event might be.
pub fn json_body_4k() -> String {
    let items: Vec<String> = (0..40)
        .map(|i| format!("{{\"sku\":\"SKU-{i:06}\",\"quantity\":{i},\"price\":{}.99,\"note\":\"a line item\"}}", i * 3))
        .collect();
    let body = format!("{{\"orderId\":\"o-123\",\"items\":[{}]}}", items.join(","));
    body
}
