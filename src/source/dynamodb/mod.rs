//! DynamoDB streams: one unit per record.
//!
//! * Read: the item attribute (`loop-guard`, or
//!   [`LoopGuardConfig::dynamodb_attribute`]) in each record's `NewImage`.
//!   Streams need `NEW_IMAGE` or `NEW_AND_OLD_IMAGES`; a `REMOVE` record has
//!   no new image, so it carries no chain. With `NEW_AND_OLD_IMAGES`, a
//!   `MODIFY` record whose images differ only in the stamp (a write that
//!   changed nothing else, which without the stamp would have made no record
//!   at all) does not reach the handler: idempotent handlers that write an
//!   item back still converge.
//! * Batch: [`Batch::Ordered`] (a stream shard is checkpointed); looping
//!   records are reported as `DynamoDbEventResponse` batch item failures, by
//!   sequence number (its [`GuardedResponse`](crate::GuardedResponse) impl is
//!   with the other `streams` responses in [`source`](crate::source)).
//! * Stamp: opt-in per table
//!   ([`stamp_dynamodb_table`](crate::LoopGuardInterceptor::stamp_dynamodb_table)),
//!   the item attribute on `PutItem`, `UpdateItem`, `BatchWriteItem` puts
//!   and `TransactWriteItems` puts and updates (an `UpdateItem` gets one
//!   more `SET` action with the placeholders [`NAME_PLACEHOLDER`] and
//!   [`VALUE_PLACEHOLDER`]). Writes to opted-in tables outside any chain,
//!   while no guarded invocation runs, remove the attribute, so an old count
//!   is never read again.

use aws_lambda_events::event::dynamodb::{Event as DynamoDbEvent, EventRecord, StreamRecord};
use lambda_runtime::Context;

use crate::carrier::Carrier;
use crate::config::LoopGuardConfig;
use crate::incoming::{EventSource, Incoming, Units};
use crate::source::record::read_records;
use crate::source::{retain_by_index, Batch, GuardedEvent, GuardedRecord};

pub(crate) mod stamp;

pub use stamp::{NAME_PLACEHOLDER, VALUE_PLACEHOLDER};

impl GuardedEvent for DynamoDbEvent {
    fn read_incoming<'a>(
        &'a self,
        _context: &'a Context,
        config: &LoopGuardConfig,
        out: &mut Units<'a, '_>,
    ) {
        read_records(&self.records, config, out);
    }

    fn batch(&self) -> Batch {
        Batch::Ordered
    }

    fn remove_units(&mut self, remove: &mut dyn FnMut(usize) -> bool) {
        retain_by_index(&mut self.records, remove);
    }
}

impl GuardedRecord for EventRecord {
    fn read_record<'a>(&'a self, config: &LoopGuardConfig) -> Incoming<'a> {
        let mut incoming = Incoming::new(EventSource::DynamoDb);
        incoming.set_item_id(self.change.sequence_number.as_deref());
        incoming.set_source_arn(self.event_source_arn.as_deref());
        let attribute = config.dynamodb_attribute();
        attribute.read(&self.change.new_image, &mut incoming);
        if self.event_name == "MODIFY" && only_the_stamp_changed(&self.change, attribute.name()) {
            incoming.mark_unchanged();
        }
        incoming
    }
}

/// Whether a `MODIFY` record's images differ in the stamp attribute only:
/// the write changed nothing of the user's. DynamoDB emits no record for a
/// write that changes nothing, which is how idempotent handlers converge;
/// the stamp must not turn that fixed point into a loop. Needs
/// `NEW_AND_OLD_IMAGES` (without an old image, nothing is unchanged).
fn only_the_stamp_changed(change: &StreamRecord, stamp: &str) -> bool {
    let (old, new) = (&change.old_image, &change.new_image);
    if old.is_empty() || new.is_empty() || old.get(stamp) == new.get(stamp) {
        return false;
    }
    let others = |item: &serde_dynamo::Item| item.keys().filter(|k| *k != stamp).count();
    others(old) == others(new)
        && new
            .iter()
            .filter(|(k, _)| *k != stamp)
            .all(|(k, v)| old.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_config;
    use crate::FunctionId;
    use serde_json::json;

    fn event() -> DynamoDbEvent {
        serde_json::from_value(json!({"Records": [
            {"eventID": "1", "eventName": "INSERT", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
             "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x",
             "dynamodb": {"Keys": {"id": {"S": "a"}}, "NewImage": {"id": {"S": "a"}, "loop-guard": {"S": "v1.3.00000001-3"}},
                          "SequenceNumber": "100", "SizeBytes": 10, "StreamViewType": "NEW_IMAGE"}},
            {"eventID": "2", "eventName": "MODIFY", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
             "dynamodb": {"Keys": {"id": {"S": "b"}}, "NewImage": {"id": {"S": "b"}, "custom": {"S": "v1.1.00000001-9"}},
                          "SequenceNumber": "200", "SizeBytes": 10, "StreamViewType": "NEW_IMAGE"}},
            {"eventID": "3", "eventName": "REMOVE", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
             "dynamodb": {"Keys": {"id": {"S": "c"}}, "SequenceNumber": "300", "SizeBytes": 10, "StreamViewType": "NEW_IMAGE"}}
        ]}))
        .unwrap()
    }

    #[test]
    fn each_record_is_read_from_its_new_image() {
        let event = event();
        let ctx = Context::default();
        let out = crate::source::read_units(&event, &ctx, &test_config());
        let counts: Vec<_> = out
            .iter()
            .map(|i| (i.item_id(), i.lineage().count(FunctionId::from_u32(1))))
            .collect();
        assert_eq!(
            counts,
            vec![(Some("100"), 3), (Some("200"), 0), (Some("300"), 0)]
        );
        assert_eq!(
            out[0].source_arn(),
            Some("arn:aws:dynamodb:us-east-1:1:table/t/stream/x")
        );
        assert!(out.iter().all(|i| i.source() == EventSource::DynamoDb));

        let custom = LoopGuardConfig::builder()
            .function_identity("test")
            .dynamodb_attribute("custom")
            .build()
            .unwrap();
        let out = crate::source::read_units(&event, &ctx, &custom);
        assert_eq!(out[1].lineage().count(FunctionId::from_u32(1)), 9);
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(1)), 0);
        drop(out);

        let mut event = event;
        event.remove_units(&mut |i| i == 0);
        assert_eq!(event.records.len(), 2);
        assert_eq!(event.records[0].event_id, "2");
    }

    #[test]
    fn a_record_that_changed_only_the_stamp_is_unchanged() {
        let record = |old: serde_json::Value, new: serde_json::Value| -> DynamoDbEvent {
            serde_json::from_value(json!({"Records": [{
                "eventID": "1", "eventName": "MODIFY", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "dynamodb": {"Keys": {"id": {"S": "a"}}, "OldImage": old, "NewImage": new,
                             "SequenceNumber": "100", "SizeBytes": 10, "StreamViewType": "NEW_AND_OLD_IMAGES"}}
            ]}))
            .unwrap()
        };
        let unchanged = |e: &DynamoDbEvent| {
            let ctx = Context::default();
            let out = crate::source::read_units(e, &ctx, &test_config());
            out[0].is_unchanged()
        };
        let v = |n: &str, stamp: Option<&str>| {
            let mut image = json!({"id": {"S": "a"}, "v": {"N": n}});
            if let Some(stamp) = stamp {
                image["loop-guard"] = json!({"S": stamp});
            }
            image
        };
        assert!(unchanged(&record(
            v("1", Some("v1.1.00000001-1")),
            v("1", Some("v1.2.00000001-2"))
        )));
        assert!(unchanged(&record(
            v("1", None),
            v("1", Some("v1.1.00000001-1"))
        )));
        assert!(!unchanged(&record(
            v("1", Some("v1.1.00000001-1")),
            v("2", Some("v1.2.00000001-2"))
        )));
        assert!(
            !unchanged(&record(
                v("1", Some("v1.1.00000001-1")),
                v("1", Some("v1.1.00000001-1"))
            )),
            "nothing changed at all: a write DynamoDB reported for its own reasons"
        );
        assert!(
            !unchanged(&record(json!(null), v("1", Some("v1.1.00000001-1")))),
            "no old image"
        );
    }
}
