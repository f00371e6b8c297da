//! S3 event notifications: one unit per record.
//!
//! * Read: the lineage is in the object's user metadata, which the
//!   notification does not include: the
//!   [`S3MetadataGuard`](crate::layer::S3MetadataGuard)
//!   ([`LoopGuardLayer::with_s3_metadata`](crate::LoopGuardLayer::with_s3_metadata))
//!   reads it with one `HeadObject` per `ObjectCreated` record before the
//!   guard decides. Read without it, a record carries only the
//!   [`Context`]'s carriers.
//! * Stamp: opt-in per bucket
//!   ([`stamp_s3_bucket`](crate::LoopGuardInterceptor::stamp_s3_bucket)),
//!   the `loop-guard` user metadata key on `PutObject`,
//!   `CreateMultipartUpload` and `CopyObject` with
//!   `MetadataDirective::Replace` (a `COPY` keeps the source's metadata).

use std::collections::HashMap;

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use lambda_runtime::Context;

use aws_sdk_s3::operation::head_object::HeadObjectError;

use crate::carrier::{Carrier, MapKey};
use crate::config::LoopGuardConfig;
use crate::incoming::{EventSource, Incoming, Units};
use crate::source::GuardedEvent;

pub(crate) mod stamp;

impl GuardedEvent for S3Event {
    fn read_incoming<'a>(
        &'a self,
        context: &'a Context,
        _config: &LoopGuardConfig,
        out: &mut Units<'a, '_>,
    ) {
        out.extend(self.records.iter().map(|r| read_record(r, None, context)));
    }
}

/// An [`S3Event`] with the user metadata found for each record (`None`:
/// not looked up, or the object is gone).
pub(crate) struct WithMetadata<'e> {
    pub(crate) event: &'e S3Event,
    pub(crate) metadata: &'e [Option<HashMap<String, String>>],
}

impl GuardedEvent for WithMetadata<'_> {
    fn read_incoming<'a>(
        &'a self,
        context: &'a Context,
        _config: &LoopGuardConfig,
        out: &mut Units<'a, '_>,
    ) {
        out.extend(
            self.event.records.iter().enumerate().map(|(i, r)| {
                read_record(r, self.metadata.get(i).and_then(Option::as_ref), context)
            }),
        );
    }
}

fn read_record<'a>(
    record: &'a S3EventRecord,
    metadata: Option<&'a HashMap<String, String>>,
    context: &'a Context,
) -> Incoming<'a> {
    let mut incoming = Incoming::new(EventSource::S3);
    incoming.set_item_id(record.s3.object.sequencer.as_deref());
    incoming.set_source_arn(record.s3.bucket.arn.as_deref());
    if let Some(metadata) = metadata {
        MapKey::default().read(metadata, &mut incoming);
    }
    incoming.read_context(context);
    incoming
}

/// The user metadata of each record's object, in record order, looked up
/// with `client` (`None`: not an `ObjectCreated` record, or unreadable).
pub(crate) async fn look_up_metadata(
    client: &aws_sdk_s3::Client,
    event: &S3Event,
) -> Vec<Option<HashMap<String, String>>> {
    let mut found = Vec::with_capacity(event.records.len());
    for record in &event.records {
        let Some((bucket, key)) = created_object(record) else {
            found.push(None);
            continue;
        };
        let request = client
            .head_object()
            .bucket(bucket)
            .key(&key)
            .set_version_id(record.s3.object.version_id.clone());
        found.push(match request.send().await {
            Ok(head) => Some(head.metadata.unwrap_or_default()),
            Err(error) => {
                match error.as_service_error() {
                    Some(HeadObjectError::NotFound(_)) => tracing::warn!(
                        bucket,
                        key,
                        "S3 object already gone: record read without its loop guard metadata"
                    ),
                    _ => tracing::warn!(
                        bucket,
                        key,
                        error = %aws_smithy_types::error::display::DisplayErrorContext(&error),
                        "HeadObject failed: record read without its loop guard metadata"
                    ),
                }
                None
            }
        });
    }
    found
}

/// The bucket and the decoded object key of a record whose object can carry
/// metadata (an `ObjectCreated:*` record), else `None`.
pub(crate) fn created_object(record: &S3EventRecord) -> Option<(&str, String)> {
    let created = record
        .event_name
        .as_deref()
        .is_none_or(|name| name.starts_with("ObjectCreated"));
    if !created {
        return None;
    }
    let bucket = record.s3.bucket.name.as_deref()?;
    let key = decode_key(record.s3.object.key.as_deref()?)?;
    Some((bucket, key))
}

/// Decodes an object key as S3 writes it into notifications (form URL
/// encoding: `+` for a space, `%XX` for other bytes). A `%` not followed by
/// two hex digits is kept as is; `None` if the bytes are not UTF-8.
pub(crate) fn decode_key(encoded: &str) -> Option<String> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let pair = bytes
                    .get(i + 1)
                    .copied()
                    .and_then(hex)
                    .zip(bytes.get(i + 2).copied().and_then(hex));
                if let Some((high, low)) = pair {
                    out.push(high << 4 | low);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_config;
    use crate::FunctionId;
    use serde_json::json;

    pub(crate) fn event(key: &str, event_name: &str) -> S3Event {
        serde_json::from_value(json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-11-22T00:00:00.000Z", "eventName": event_name,
            "userIdentity": {"principalId": "x"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
                   "bucket": {"name": "b", "ownerIdentity": {"principalId": "x"}, "arn": "arn:aws:s3:::b"},
                   "object": {"key": key, "size": 1, "eTag": "e", "sequencer": "0055"}}
        }]}))
        .unwrap()
    }

    #[test]
    fn keys_are_decoded_like_s3_encodes_them() {
        assert_eq!(decode_key("a+b%2Fc%3D.txt").as_deref(), Some("a b/c=.txt"));
        assert_eq!(decode_key("caf%C3%A9").as_deref(), Some("caf\u{e9}"));
        assert_eq!(decode_key("100%").as_deref(), Some("100%"));
        assert_eq!(decode_key("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(decode_key("%FF"), None);
    }

    #[test]
    fn created_records_name_their_object_and_metadata_is_read() {
        let created = event("in/a+file.json", "ObjectCreated:Put");
        assert_eq!(
            created_object(&created.records[0]),
            Some(("b", "in/a file.json".to_owned()))
        );
        let removed = event("in/x", "ObjectRemoved:Delete");
        assert_eq!(created_object(&removed.records[0]), None);

        let metadata = [Some(HashMap::from([(
            "loop-guard".to_owned(),
            "v1.2.00000001-2".to_owned(),
        )]))];
        let view = WithMetadata {
            event: &created,
            metadata: &metadata,
        };
        let ctx = Context::default();
        let out = crate::source::read_units(&view, &ctx, &test_config());
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(1)), 2);
        assert_eq!(out[0].source(), EventSource::S3);
        assert_eq!(out[0].source_arn(), Some("arn:aws:s3:::b"));
        let out = crate::source::read_units(&created, &ctx, &test_config());
        assert!(out[0].lineage().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics_and_round_trips_plain_text(raw in "\\PC{0,64}", plain in "[a-zA-Z0-9/._-]{0,64}") {
            let _ = decode_key(&raw);
            proptest::prop_assert_eq!(decode_key(&plain), Some(plain.clone()));
        }
    }
}
