//! Kinesis data streams: one unit per record.
//!
//! A Kinesis record has only data and a partition key: no attributes, no
//! header. The chain travels in the data, opt-in, as the `loop-guard` key of
//! a JSON object (the partition key is never touched: it decides the shard).
//!
//! * Read: the `loop-guard` key of each record's data when it is a JSON
//!   object (data that does not contain the quoted key is not parsed; other
//!   data carries no chain). The key stays in the data the handler sees.
//! * Batch: [`Batch::Ordered`] (a shard is
//!   checkpointed): the batch is cut at its first looping record, which and
//!   every later one are reported as `KinesisEventResponse` batch item
//!   failures by sequence number (the mapping needs
//!   `FunctionResponseTypes: [ReportBatchItemFailures]`); Lambda retries
//!   from there, then hands them to the mapping's on-failure destination.
//! * Stamp (feature `kinesis`), opt-in per stream
//!   ([`stamp_kinesis_stream`](crate::LoopGuardInterceptor::stamp_kinesis_stream)):
//!   the key in the data of `PutRecord` and of every `PutRecords` entry that
//!   is a JSON object; other data is sent as it is. A record stamped past
//!   Kinesis's 1 MiB (data and partition key) is sent unstamped.

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use lambda_runtime::Context;

use crate::config::LoopGuardConfig;
use crate::incoming::{EventSource, Incoming, Units};
use crate::source::record::read_records;
use crate::source::{retain_by_index, Batch, GuardedEvent, GuardedRecord};

pub(crate) mod stamp;

/// The carrier's name in reports.
const CARRIER: &str = "kinesis data";

impl GuardedEvent for KinesisEvent {
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

impl GuardedRecord for KinesisEventRecord {
    fn read_record<'a>(&'a self, _config: &LoopGuardConfig) -> Incoming<'a> {
        let mut incoming = Incoming::new(EventSource::Kinesis);
        incoming.set_item_id(Some(self.kinesis.sequence_number.as_str()));
        incoming.set_source_arn(self.event_source_arn.as_deref());
        if let Some(value) = read_data(&self.kinesis.data.0) {
            incoming.read_lineage_value(value, CARRIER);
        }
        incoming
    }
}

/// Our key's value in record `data`, if the data is a JSON object that has
/// it.
fn read_data(data: &[u8]) -> Option<&str> {
    // Data without the key (binary data, most of it) is not checked for
    // UTF-8 or parsed.
    memchr::memmem::find(data, br#""loop-guard""#)?;
    crate::carrier::json_text::string_at(std::str::from_utf8(data).ok()?, &[crate::carrier::KEY])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_config;
    use crate::{FunctionId, Lineage};
    use proptest::prelude::*;
    use serde_json::json;

    fn event(data: &[&[u8]]) -> KinesisEvent {
        let records: Vec<_> = data
            .iter()
            .enumerate()
            .map(|(i, data)| {
                json!({
                    "eventSource": "aws:kinesis",
                    "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
                    "kinesis": {
                        "partitionKey": "p",
                        "sequenceNumber": format!("4959{i}"),
                        "approximateArrivalTimestamp": 1_700_000_000.0,
                        "data": base64(data),
                    }
                })
            })
            .collect();
        serde_json::from_value(json!({ "Records": records })).unwrap()
    }

    fn base64(data: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
            out.extend(std::iter::repeat_n('=', 3 - chunk.len()));
        }
        out
    }

    #[test]
    fn each_record_reads_the_key_of_its_json_data() {
        let one = FunctionId::from_u32(1);
        let event = event(&[
            br#"{"order":1,"loop-guard":"v1.3.00000001-3"}"#,
            br#"{"order":2}"#,
            b"\x00\x01binary \"loop-guard\"",
            br#"["loop-guard","v1.3.00000001-3"]"#,
            br#"{"loop-guard":{"nested":"v1.3.00000001-3"}}"#,
        ]);
        let context = Context::default();
        let units = crate::source::read_units(&event, &context, &test_config());
        assert_eq!(units.len(), 5);
        assert!(units.iter().all(|u| u.source() == EventSource::Kinesis));
        assert_eq!(units[0].item_id(), Some("49590"));
        assert_eq!(
            units[0].source_arn(),
            Some("arn:aws:kinesis:us-east-1:123456789012:stream/orders")
        );
        let counts: Vec<u16> = units.iter().map(|u| u.lineage().count(one)).collect();
        assert_eq!(counts, [3, 0, 0, 0, 0]);
        assert_eq!(event.batch(), Batch::Ordered);
    }

    proptest! {
        /// Whatever the data, reading never panics and finds a lineage
        /// only where a JSON object holds our key; data stamped by the
        /// writer reads back the lineage it was stamped with, every other
        /// member intact.
        #[test]
        fn stamped_data_reads_back_and_other_data_reads_nothing(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            members in proptest::collection::btree_map("[a-z]{1,8}", any::<i64>(), 0..6),
            count in 1u16..1000,
        ) {
            if let Some(value) = read_data(&data) {
                let text = std::str::from_utf8(&data).unwrap();
                let parsed: serde_json::Value = serde_json::from_str(text).unwrap();
                prop_assert_eq!(parsed["loop-guard"].as_str(), Some(value));
            }
            let lineage = (0..count).fold(Lineage::new(), |l, _| l.record_run(FunctionId::from_u32(9)));
            let object = serde_json::to_string(&members).unwrap();
            let stamped = crate::carrier::JsonKey::default().write_text(&object, &lineage).unwrap();
            let read = read_data(stamped.as_bytes()).map(|v| v.parse::<Lineage>().unwrap());
            prop_assert_eq!(read, Some(lineage));
            let mut back: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&stamped).unwrap();
            back.remove("loop-guard");
            prop_assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&members).unwrap());
        }
    }
}
