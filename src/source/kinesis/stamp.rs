//! Kinesis: the `loop-guard` key in the JSON-object data of `PutRecord` and
//! `PutRecords` entries, for opted-in streams.

use aws_sdk_kinesis::operation::put_record::PutRecordInput;
use aws_sdk_kinesis::operation::put_records::PutRecordsInput;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_smithy_runtime_api::client::interceptors::context::Input;
use aws_smithy_types::Blob;

use crate::carrier::JsonKey;
use crate::lineage::Lineage;
use crate::source::StampOptions;

/// Kinesis refuses a record whose data and partition key are larger.
const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Kinesis refuses a `PutRecords` request whose records are larger.
const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;

/// Which streams are stamped.
#[derive(Debug, Clone, Default)]
pub(crate) struct KinesisStamping {
    pub(crate) streams: Vec<String>,
}

impl KinesisStamping {
    /// Whether the stream a call names (its name or ARN) was opted in.
    fn covers(&self, name: Option<&str>, arn: Option<&str>) -> bool {
        let from_arn = arn.and_then(|arn| arn.rsplit_once(":stream/").map(|(_, name)| name));
        self.streams.iter().any(|s| {
            Some(s.as_str()) == name || Some(s.as_str()) == arn || Some(s.as_str()) == from_arn
        })
    }
}

pub(crate) fn stamp(input: &mut Input, options: &StampOptions, lineage: &Lineage) -> bool {
    let stamping = &options.kinesis;
    if let Some(put) = input.downcast_mut::<PutRecordInput>() {
        if stamping.covers(put.stream_name.as_deref(), put.stream_arn.as_deref()) {
            let key = put.partition_key.as_deref().map_or(0, str::len);
            if let Some(data) = &mut put.data {
                stamp_data(data, MAX_RECORD_BYTES.saturating_sub(key), lineage);
            }
        }
        return true;
    }
    if let Some(put) = input.downcast_mut::<PutRecordsInput>() {
        if stamping.covers(put.stream_name.as_deref(), put.stream_arn.as_deref()) {
            let key = |r: &PutRecordsRequestEntry| r.partition_key.as_deref().map_or(0, str::len);
            // What the whole request may still grow by.
            let total: usize = put
                .records
                .iter()
                .flatten()
                .map(|r| r.data.as_ref().len() + key(r))
                .sum();
            let mut request_room = MAX_REQUEST_BYTES.saturating_sub(total);
            for entry in put.records.iter_mut().flatten() {
                let before = entry.data.as_ref().len();
                let room = MAX_RECORD_BYTES
                    .saturating_sub(key(entry))
                    .min(before + request_room);
                stamp_data(&mut entry.data, room, lineage);
                request_room -= entry.data.as_ref().len() - before;
            }
        }
        return true;
    }
    false
}

/// The records a call sends to an opted-in stream (others carry no chain,
/// so they take no share of a budget).
pub(crate) fn records(options: &StampOptions, input: &Input) -> Option<u32> {
    let stamping = &options.kinesis;
    if let Some(put) = input.downcast_ref::<PutRecordInput>() {
        return Some(u32::from(
            stamping.covers(put.stream_name.as_deref(), put.stream_arn.as_deref()),
        ));
    }
    let put = input.downcast_ref::<PutRecordsInput>()?;
    if !stamping.covers(put.stream_name.as_deref(), put.stream_arn.as_deref()) {
        return Some(0);
    }
    let n = put.records.as_ref().map_or(0, Vec::len);
    Some(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Writes the key into `data` when it is a JSON object and the stamped data
/// is at most `room` bytes.
fn stamp_data(data: &mut Blob, room: usize, lineage: &Lineage) {
    let Ok(text) = std::str::from_utf8(data.as_ref()) else {
        return;
    };
    if let Some(stamped) =
        JsonKey::default().stamped_payload(text, lineage, room, "Kinesis record data")
    {
        *data = Blob::new(stamped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interceptor::tests::{chain, run_serialization_hook_with};
    use crate::interceptor::LoopGuardInterceptor;
    use serde_json::Value;

    fn entry(data: &[u8]) -> PutRecordsRequestEntry {
        PutRecordsRequestEntry::builder()
            .data(Blob::new(data))
            .partition_key("customer-7")
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn opted_in_streams_get_the_key_in_json_object_data_only() {
        let c = chain(3, None);
        let value = c.lineage().to_string();
        let input = PutRecordsInput::builder()
            .stream_arn("arn:aws:kinesis:us-east-1:123456789012:stream/orders")
            .records(entry(br#"{"order":1}"#))
            .records(entry(b"\x00binary"))
            .records(entry(b"[1,2]"))
            .build()
            .unwrap();
        let plain = run_serialization_hook_with(
            LoopGuardInterceptor::new(),
            input.clone(),
            Some(c.clone()),
        )
        .await;
        assert_eq!(
            plain.records.unwrap()[0].data.as_ref(),
            br#"{"order":1}"#,
            "opt-in"
        );

        let opted = LoopGuardInterceptor::new().stamp_kinesis_stream("orders");
        let out = run_serialization_hook_with(opted, input, Some(c.clone())).await;
        let records = out.records.unwrap();
        let data: Value = serde_json::from_slice(records[0].data.as_ref()).unwrap();
        assert_eq!(data["order"], 1);
        assert_eq!(data["loop-guard"], value.as_str());
        assert_eq!(records[1].data.as_ref(), b"\x00binary");
        assert_eq!(records[2].data.as_ref(), b"[1,2]");
        assert!(records
            .iter()
            .all(|r| r.partition_key.as_deref() == Some("customer-7")));

        let single = PutRecordInput::builder()
            .stream_name("orders")
            .partition_key("customer-7")
            .data(Blob::new(
                br#"{"loop-guard":"v1.1.00000001-1","order":2}"#.to_vec(),
            ))
            .build()
            .unwrap();
        let out = run_serialization_hook_with(
            LoopGuardInterceptor::new().stamp_kinesis_stream("orders"),
            single,
            Some(c.clone()),
        )
        .await;
        let data: Value = serde_json::from_slice(out.data.unwrap().as_ref()).unwrap();
        assert_eq!(
            data["loop-guard"],
            value.as_str(),
            "an old value is replaced"
        );
        assert_eq!(out.partition_key.as_deref(), Some("customer-7"));

        let other = PutRecordInput::builder()
            .stream_name("audit")
            .partition_key("k")
            .data(Blob::new(br#"{"a":1}"#.to_vec()))
            .build()
            .unwrap();
        let out = run_serialization_hook_with(
            LoopGuardInterceptor::new().stamp_kinesis_stream("orders"),
            other,
            Some(c),
        )
        .await;
        assert_eq!(out.data.unwrap().as_ref(), br#"{"a":1}"#);
    }

    #[test]
    fn records_to_opted_in_streams_take_shares() {
        let options = StampOptions {
            kinesis: KinesisStamping {
                streams: vec!["orders".into()],
            },
            ..StampOptions::default()
        };
        let batch = PutRecordsInput::builder()
            .stream_name("orders")
            .records(entry(b"{}"))
            .records(entry(b"{}"))
            .build()
            .unwrap();
        assert_eq!(records(&options, &Input::erase(batch)), Some(2));
        let elsewhere = PutRecordsInput::builder()
            .stream_name("audit")
            .records(entry(b"{}"))
            .build()
            .unwrap();
        assert_eq!(records(&options, &Input::erase(elsewhere)), Some(0));
    }

    #[tokio::test]
    async fn a_request_stamped_past_five_mebibytes_stamps_only_what_fits() {
        // Five records with 40 bytes of room each (data and partition key
        // 1 MiB - 40), and a small one: 50 bytes of room in the request,
        // enough for one stamp (about 32 bytes) and not two.
        let record = |i: usize| {
            let pad = MAX_RECORD_BYTES - 40 - "customer-7".len() - r#"{"i":0,"pad":""}"#.len();
            entry(format!(r#"{{"i":{i},"pad":"{}"}}"#, "x".repeat(pad)).as_bytes())
        };
        let mut builder = PutRecordsInput::builder().stream_name("orders");
        for i in 0..5 {
            builder = builder.records(record(i));
        }
        let small = format!(r#"{{"i":5,"pad":"{}"}}"#, "x".repeat(150 - 10 - 16));
        builder = builder.records(entry(small.as_bytes()));
        let out = run_serialization_hook_with(
            LoopGuardInterceptor::new().stamp_kinesis_stream("orders"),
            builder.build().unwrap(),
            Some(chain(3, None)),
        )
        .await;
        let records = out.records.unwrap();
        let total: usize = records
            .iter()
            .map(|r| r.data.as_ref().len() + r.partition_key.as_deref().map_or(0, str::len))
            .sum();
        assert!(total <= MAX_REQUEST_BYTES, "{total}");
        let stamped = records
            .iter()
            .filter(|r| memchr::memmem::find(r.data.as_ref(), b"loop-guard").is_some())
            .count();
        assert_eq!(stamped, 1, "{total} bytes");
        assert!(records
            .iter()
            .all(|r| r.data.as_ref().len() + 10 <= MAX_RECORD_BYTES));
    }

    #[test]
    fn data_stamped_past_one_mebibyte_is_sent_as_it_was() {
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_RECORD_BYTES - 20));
        let mut data = Blob::new(big.clone());
        stamp_data(
            &mut data,
            MAX_RECORD_BYTES - 10,
            &chain(1, None).lineage().clone(),
        );
        assert_eq!(data.as_ref(), big.as_bytes());
    }
}
