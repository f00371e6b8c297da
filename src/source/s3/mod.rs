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

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use lambda_runtime::Context;

use aws_sdk_s3::operation::head_object::HeadObjectError;

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
        out.extend(self.records.iter().map(|record| {
            let mut incoming = Incoming::new(EventSource::S3);
            incoming.set_item_id(record.s3.object.sequencer.as_deref());
            incoming.set_source_arn(record.s3.bucket.arn.as_deref());
            incoming.read_context(context);
            incoming
        }));
    }
}

/// An S3 object a unit of work names, whose user metadata may carry the
/// unit's lineage (stamped by
/// [`stamp_s3_bucket`](crate::LoopGuardInterceptor::stamp_s3_bucket)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct S3ObjectRef {
    /// The bucket's name.
    pub bucket: String,
    /// The object key, decoded.
    pub key: String,
    /// The version, when the notification names one.
    pub version_id: Option<String>,
}

impl S3ObjectRef {
    /// Object `key` (decoded) of `bucket`.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        S3ObjectRef {
            bucket: bucket.into(),
            key: key.into(),
            version_id: None,
        }
    }
}

/// An event whose units can name S3 objects created for them, so that
/// [`with_s3_metadata`](crate::LoopGuardLayer::with_s3_metadata) reads each
/// unit's lineage from the metadata of its objects (one `HeadObject` each).
///
/// Implemented for `S3Event` (each `ObjectCreated` record), `SqsEvent`
/// (bodies that are S3 notifications: delivered straight to the queue, in
/// an SNS envelope, or as EventBridge `Object Created` events) and
/// `SnsEvent` (messages that are S3 notifications). A custom event can
/// implement it for its own records.
pub trait S3Notified: GuardedEvent {
    /// For each unit, in the order `read_incoming` hands them over, the
    /// objects it names (most units name none or one).
    fn created_objects(&self) -> Vec<Vec<S3ObjectRef>>;
}

impl S3Notified for S3Event {
    fn created_objects(&self) -> Vec<Vec<S3ObjectRef>> {
        self.records
            .iter()
            .map(|r| created_object(r).into_iter().collect())
            .collect()
    }
}

impl S3Notified for aws_lambda_events::event::sqs::SqsEvent {
    fn created_objects(&self) -> Vec<Vec<S3ObjectRef>> {
        self.records
            .iter()
            .map(|r| r.body.as_deref().map(objects_in_text).unwrap_or_default())
            .collect()
    }
}

impl S3Notified for aws_lambda_events::event::sns::SnsEvent {
    fn created_objects(&self) -> Vec<Vec<S3ObjectRef>> {
        self.records
            .iter()
            .map(|r| objects_in_text(&r.sns.message))
            .collect()
    }
}

/// The object an S3 notification names when `text` (an SQS body, an SNS
/// message) is one: an S3 notification (`{"Records":[...]}`, its first
/// record), an SNS envelope around one, or an EventBridge `Object Created`
/// event from `aws.s3`. Other text is passed over after a look at its first
/// bytes.
///
/// Whoever writes the body names the object, but its metadata carries the
/// lineage, written by the interceptor of whoever wrote the object: a body
/// can only point at an object the function may read (and with signing
/// keys, only a signed value counts).
pub(crate) fn objects_in_text(text: &str) -> Vec<S3ObjectRef> {
    use crate::source::nested::{opens_like_an_eventbridge_event, opens_with};
    if opens_with(text, &["{", "\"Records\"", ":", "["]) {
        // S3 sends one record per notification: a body naming more is not
        // S3's, and is not allowed to cost more lookups.
        return serde_json::from_str::<S3Event>(text)
            .map(|event| {
                event
                    .created_objects()
                    .into_iter()
                    .flatten()
                    .take(1)
                    .collect()
            })
            .unwrap_or_default();
    }
    if opens_with(text, &["{", "\"Type\""]) {
        #[derive(serde::Deserialize)]
        struct Envelope {
            #[serde(rename = "Type")]
            kind: String,
            #[serde(rename = "Message")]
            message: String,
        }
        return match serde_json::from_str::<Envelope>(text) {
            // The message of an envelope is not an envelope again.
            Ok(envelope)
                if envelope.kind == "Notification"
                    && !opens_with(&envelope.message, &["{", "\"Type\""]) =>
            {
                objects_in_text(&envelope.message)
            }
            _ => Vec::new(),
        };
    }
    if opens_like_an_eventbridge_event(text) {
        #[derive(serde::Deserialize)]
        struct Event {
            source: String,
            #[serde(rename = "detail-type")]
            detail_type: String,
            detail: Detail,
        }
        #[derive(serde::Deserialize)]
        struct Detail {
            bucket: Name,
            object: Object,
        }
        #[derive(serde::Deserialize)]
        struct Name {
            name: String,
        }
        #[derive(serde::Deserialize)]
        struct Object {
            key: String,
            #[serde(rename = "version-id")]
            version_id: Option<String>,
        }
        return match serde_json::from_str::<Event>(text) {
            // EventBridge's S3 events carry the key as it is (not encoded).
            Ok(event) if event.source == "aws.s3" && event.detail_type == "Object Created" => {
                vec![S3ObjectRef {
                    bucket: event.detail.bucket.name,
                    key: event.detail.object.key,
                    version_id: event.detail.object.version_id,
                }]
            }
            _ => Vec::new(),
        };
    }
    Vec::new()
}

/// An event with the lineage values found in the metadata of each unit's
/// objects (`lineages[i]`: unit `i`'s).
pub(crate) struct WithS3Lineages<'e, T> {
    pub(crate) event: &'e T,
    pub(crate) lineages: &'e [Vec<String>],
}

impl<T: GuardedEvent> GuardedEvent for WithS3Lineages<'_, T> {
    fn read_incoming<'a>(
        &'a self,
        context: &'a Context,
        config: &LoopGuardConfig,
        out: &mut Units<'a, '_>,
    ) {
        let mut index = 0;
        self.event.read_incoming(
            context,
            config,
            &mut Units::new(&mut |mut unit| {
                for value in self.lineages.get(index).into_iter().flatten() {
                    unit.read_lineage_value(value, "s3 metadata");
                }
                index += 1;
                out.push(unit);
            }),
        );
    }

    fn batch(&self) -> crate::source::Batch {
        self.event.batch()
    }
}

/// Objects looked up at once.
const CONCURRENT_LOOKUPS: usize = 8;

/// The `loop-guard` metadata values of each unit's objects, in unit order,
/// looked up with `client` (a few at a time). An object that is gone or
/// cannot be read is logged and adds nothing.
pub(crate) async fn look_up_lineages(
    client: &aws_sdk_s3::Client,
    objects: Vec<Vec<S3ObjectRef>>,
) -> Vec<Vec<String>> {
    use futures_util::StreamExt;
    let mut lineages = vec![Vec::new(); objects.len()];
    let lookups = objects
        .into_iter()
        .enumerate()
        .flat_map(|(unit, objects)| objects.into_iter().map(move |object| (unit, object)))
        .map(|(unit, object)| async move { (unit, head(client, &object).await) });
    let mut found = futures_util::stream::iter(lookups).buffered(CONCURRENT_LOOKUPS);
    while let Some((unit, value)) = found.next().await {
        lineages[unit].extend(value);
    }
    lineages
}

/// The object's `loop-guard` metadata value, if it has one.
async fn head(client: &aws_sdk_s3::Client, object: &S3ObjectRef) -> Option<String> {
    let request = client
        .head_object()
        .bucket(&object.bucket)
        .key(&object.key)
        .set_version_id(object.version_id.clone());
    let (bucket, key) = (object.bucket.as_str(), object.key.as_str());
    match request.send().await {
        Ok(head) => head.metadata?.remove(crate::carrier::KEY),
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
    }
}

/// The object of a record whose object can carry metadata (an
/// `ObjectCreated:*` record), its key decoded, else `None`.
pub(crate) fn created_object(record: &S3EventRecord) -> Option<S3ObjectRef> {
    let created = record
        .event_name
        .as_deref()
        .is_none_or(|name| name.starts_with("ObjectCreated"));
    if !created {
        return None;
    }
    let bucket = record.s3.bucket.name.as_deref()?;
    let key = decode_key(record.s3.object.key.as_deref()?)?;
    Some(S3ObjectRef {
        bucket: bucket.to_owned(),
        key,
        version_id: record.s3.object.version_id.clone(),
    })
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
            Some(S3ObjectRef::new("b", "in/a file.json"))
        );
        let removed = event("in/x", "ObjectRemoved:Delete");
        assert_eq!(created_object(&removed.records[0]), None);

        let lineages = [vec!["v1.2.00000001-2".to_owned()]];
        let view = WithS3Lineages {
            event: &created,
            lineages: &lineages,
        };
        let ctx = Context::default();
        let out = crate::source::read_units(&view, &ctx, &test_config());
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(1)), 2);
        assert_eq!(out[0].source(), EventSource::S3);
        assert_eq!(out[0].source_arn(), Some("arn:aws:s3:::b"));
        let out = crate::source::read_units(&created, &ctx, &test_config());
        assert!(out[0].lineage().is_empty());
    }

    /// The notification as S3 delivers it to a queue, and as an SNS topic
    /// and EventBridge deliver it.
    #[test]
    fn s3_notifications_inside_bodies_name_their_objects() {
        let direct = serde_json::to_string(&event("in/a+b.json", "ObjectCreated:Put")).unwrap();
        let object = S3ObjectRef::new("b", "in/a b.json");
        assert_eq!(objects_in_text(&direct), std::slice::from_ref(&object));
        let envelope = json!({
            "Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t",
            "Message": direct,
        });
        let envelope = serde_json::to_string_pretty(&envelope).unwrap();
        assert_eq!(objects_in_text(&envelope), [object]);
        let bridged = json!({
            "version": "0", "id": "e", "detail-type": "Object Created", "source": "aws.s3",
            "account": "1", "time": "t", "region": "us-east-1", "resources": [],
            "detail": {"version": "0", "bucket": {"name": "b"},
                       "object": {"key": "raw key:1", "version-id": "v7"}},
        });
        let mut expected = S3ObjectRef::new("b", "raw key:1");
        expected.version_id = Some("v7".into());
        assert_eq!(objects_in_text(&bridged.to_string()), [expected]);
        // Not S3's: other events, other sources, removals, test events.
        let mut other = bridged.clone();
        other["source"] = json!("orders");
        assert!(objects_in_text(&other.to_string()).is_empty());
        let removed = serde_json::to_string(&event("k", "ObjectRemoved:Delete")).unwrap();
        assert!(objects_in_text(&removed).is_empty());
        assert!(objects_in_text(r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#).is_empty());
        assert!(objects_in_text("hello").is_empty());
    }

    proptest::proptest! {
        /// Any text: never panics, and names objects only when it parses.
        #[test]
        fn any_body_names_objects_only_when_it_is_a_notification(text in "\\PC{0,200}") {
            let objects = objects_in_text(&text);
            if !objects.is_empty() {
                proptest::prop_assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
            }
        }

        #[test]
        fn decoding_never_panics_and_round_trips_plain_text(raw in "\\PC{0,64}", plain in "[a-zA-Z0-9/._-]{0,64}") {
            let _ = decode_key(&raw);
            proptest::prop_assert_eq!(decode_key(&plain), Some(plain.clone()));
        }
    }
}
