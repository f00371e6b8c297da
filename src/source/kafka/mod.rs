//! Kafka (Amazon MSK and self-managed Apache Kafka): one unit per record.
//!
//! * Read: the `loop-guard` record header ([`KafkaHeader`]) of each record,
//!   in every topic-partition of the event. Headers arrive as bytes; the
//!   value is read in place, and a malformed one is ignored.
//! * Batch: [`Batch::Ordered`] (partitions are
//!   consumed in offset order). `aws_lambda_events` has no Kafka batch
//!   response type yet, so looping records follow the
//!   [`BatchDropPolicy`](crate::BatchDropPolicy): by default the invocation
//!   fails and Lambda retries the batch. Give the event source mapping
//!   `MaximumRetryAttempts` and an on-failure destination, or the partition
//!   is retried without end; or choose
//!   [`DiscardLoopingRecords`](crate::BatchDropPolicy::DiscardLoopingRecords).
//! * Stamp: producers are not AWS SDK calls (rdkafka, or any Kafka client):
//!   write the header with [`header_value`] inside the guarded handler (see
//!   the guide, "Kafka").

use std::collections::HashMap;

use aws_lambda_events::event::kafka::KafkaEvent;
use lambda_runtime::Context;

use crate::carrier::{Carrier, StampError, KEY};
use crate::chain::Chain;
use crate::config::LoopGuardConfig;
use crate::incoming::{EventSource, Incoming, Units};
use crate::lineage::Lineage;
use crate::source::{Batch, GuardedEvent};

/// Kafka record headers as Lambda delivers them: a list of one-entry maps,
/// the bytes as `i8`.
pub type KafkaHeaders = Vec<HashMap<String, Vec<i8>>>;

/// Our lineage in the `loop-guard` record header. Reading takes the value
/// in place; writing (for tests, and for records built in Lambda's own
/// shape) replaces any earlier `loop-guard` header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KafkaHeader;

impl Carrier<KafkaHeaders> for KafkaHeader {
    fn read<'a>(&self, headers: &'a KafkaHeaders, incoming: &mut Incoming<'a>) {
        for value in headers.iter().filter_map(|header| header.get(KEY)) {
            let bytes: &[u8] = bytemuck::cast_slice(value);
            match std::str::from_utf8(bytes) {
                Ok(text) => {
                    incoming.read_lineage_value(text, "kafka header");
                }
                Err(_) => tracing::warn!("loop guard kafka header is not UTF-8: ignored"),
            }
        }
    }

    fn write(&self, headers: &mut KafkaHeaders, lineage: &Lineage) -> Result<(), StampError> {
        headers.retain(|header| !header.contains_key(KEY));
        let text = lineage.to_text();
        let bytes: &[i8] = bytemuck::cast_slice(text.as_bytes());
        headers.push(HashMap::from([(KEY.to_owned(), bytes.to_vec())]));
        Ok(())
    }
}

/// The `loop-guard` header a Kafka producer adds to one record it sends
/// from a guarded handler: its name and value, or `None` outside one.
/// Each call is one message sent (in a budgeted chain it takes that
/// message's share), so call it once per record:
///
/// ```
/// # fn send(_: &str, _: &[u8]) {}
/// if let Some((name, value)) = lambda_loop_guard::source::kafka::header_value() {
///     // rdkafka: OwnedHeaders::new().insert(Header { key: name, value: Some(value.as_bytes()) })
///     send(name, value.as_bytes());
/// }
/// ```
pub fn header_value() -> Option<(&'static str, String)> {
    Chain::with_current(|chain| chain.map(|chain| (KEY, chain.lineage_for_send(1).to_text())))
}

impl GuardedEvent for KafkaEvent {
    fn read_incoming<'a>(
        &'a self,
        _context: &'a Context,
        _config: &LoopGuardConfig,
        out: &mut Units<'a, '_>,
    ) {
        for record in self.records.values().flatten() {
            let mut incoming = Incoming::new(EventSource::Kafka);
            incoming.set_source_arn(self.event_source_arn.as_deref());
            KafkaHeader.read(&record.headers, &mut incoming);
            out.push(incoming);
        }
    }

    fn batch(&self) -> Batch {
        Batch::Ordered
    }

    fn remove_units(&mut self, remove: &mut dyn FnMut(usize) -> bool) {
        // The same order as `read_incoming`: the map is not changed in
        // between, so it iterates the same way.
        let mut index = 0;
        for records in self.records.values_mut() {
            records.retain(|_| {
                let keep = !remove(index);
                index += 1;
                keep
            });
        }
        self.records.retain(|_, records| !records.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_config;
    use crate::FunctionId;
    use proptest::prelude::*;
    use serde_json::json;

    fn event(partitions: &[(&str, Vec<KafkaHeaders>)]) -> KafkaEvent {
        let records: serde_json::Map<String, serde_json::Value> = partitions
            .iter()
            .map(|(name, records)| {
                let records: Vec<_> = records
                    .iter()
                    .enumerate()
                    .map(|(offset, headers)| {
                        json!({
                            "topic": "orders", "partition": 0, "offset": offset,
                            "timestamp": 0, "timestampType": "CREATE_TIME",
                            "key": null, "value": "e30=", "headers": headers,
                        })
                    })
                    .collect();
                ((*name).to_owned(), json!(records))
            })
            .collect();
        serde_json::from_value(json!({
            "eventSource": "aws:kafka",
            "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/c/1",
            "records": records,
        }))
        .unwrap()
    }

    fn stamped(count: u16) -> KafkaHeaders {
        let lineage = (0..count).fold(Lineage::new(), |l, _| l.record_run(FunctionId::from_u32(1)));
        let mut headers = vec![HashMap::from([("trace".to_owned(), vec![1i8, -2])])];
        KafkaHeader.write(&mut headers, &lineage).unwrap();
        headers
    }

    #[test]
    fn every_record_of_every_partition_reads_its_header() {
        let mut event = event(&[
            ("orders-0", vec![stamped(2), Vec::new()]),
            ("orders-1", vec![stamped(5)]),
        ]);
        let context = Context::default();
        let units = crate::source::read_units(&event, &context, &test_config());
        let mut counts: Vec<u16> = units
            .iter()
            .map(|u| u.lineage().count(FunctionId::from_u32(1)))
            .collect();
        assert!(units.iter().all(|u| u.source() == EventSource::Kafka));
        // Partition order is the map's; the same in both passes.
        let read_again: Vec<u16> = crate::source::read_units(&event, &context, &test_config())
            .iter()
            .map(|u| u.lineage().count(FunctionId::from_u32(1)))
            .collect();
        assert_eq!(counts, read_again);
        // Remove the unit that read 5: the record left are the others.
        let five = counts.iter().position(|&c| c == 5).unwrap();
        event.remove_units(&mut |i| i == five);
        let left: Vec<u16> = crate::source::read_units(&event, &context, &test_config())
            .iter()
            .map(|u| u.lineage().count(FunctionId::from_u32(1)))
            .collect();
        counts.remove(five);
        assert_eq!(left, counts);
        assert_eq!(event.records.len(), 1, "an emptied partition is gone");
    }

    #[test]
    fn other_headers_are_kept_and_an_old_stamp_is_replaced() {
        let mut headers = stamped(2);
        let lineage = Lineage::new().record_run(FunctionId::from_u32(9));
        KafkaHeader.write(&mut headers, &lineage).unwrap();
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[0]["trace"], vec![1i8, -2]);
        let mut incoming = Incoming::new(EventSource::Kafka);
        KafkaHeader.read(&headers, &mut incoming);
        assert_eq!(incoming.lineage(), lineage);
    }

    #[tokio::test]
    async fn header_value_is_the_running_chains_and_none_outside() {
        assert_eq!(header_value(), None);
        let lineage = Lineage::new().record_run(FunctionId::from_u32(4));
        let inside = Chain::new(lineage, None)
            .scope(async { header_value() })
            .await;
        assert_eq!(inside, Some((KEY, lineage.to_text())));
    }

    proptest! {
        /// Any header bytes: reading never panics, and finds a lineage only
        /// in a value that decodes as one.
        #[test]
        fn arbitrary_header_bytes(bytes in proptest::collection::vec(any::<i8>(), 0..80)) {
            let headers = vec![HashMap::from([(KEY.to_owned(), bytes.clone())])];
            let mut incoming = Incoming::new(EventSource::Kafka);
            KafkaHeader.read(&headers, &mut incoming);
            let as_text = std::str::from_utf8(bytemuck::cast_slice(&bytes)).ok();
            let expected = as_text.and_then(|t| t.parse::<Lineage>().ok()).unwrap_or_default();
            prop_assert_eq!(incoming.lineage(), expected);
        }
    }
}
