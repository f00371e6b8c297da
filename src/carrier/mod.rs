//! Where the lineage travels between hops, and the [`Carrier`] trait that
//! reads and writes it (the wire format is in `docs/wire-format.md`).
//!
//! Every built-in source is a [`Carrier`] over some medium: a map of message
//! attributes, a JSON object, a header map, a DynamoDB item. One carrier type
//! can implement the trait for several media (the SQS message attribute reads
//! an `aws_lambda_events` record and writes an `aws-sdk-sqs` request), and the
//! same trait is how you add a transport of your own:
//!
//! | carrier | medium | used for |
//! | --- | --- | --- |
//! | [`TraceField`] | `String` (an `X-Amzn-Trace-Id` value) | Lambda context, SQS `AWSTraceHeader`, EventBridge `TraceHeader` |
//! | [`MapKey`] | `HashMap<String, String>` | Lambda `ClientContext.custom`, S3 user metadata |
//! | [`JsonKey`] | `serde_json::Map` / `Value` | async `Invoke` payloads, EventBridge `detail`, custom JSON fields |
//! | [`MessageAttribute`] | SQS / SNS message attribute maps | SQS, SNS, SNS→SQS |
//! | `HttpHeader` (feature `http`) | `http::HeaderMap` | API Gateway, Function URLs, ALB, outgoing HTTP |
//! | `ItemAttribute` (feature `dynamodb`) | a DynamoDB item | DynamoDB streams |
//!
//! A reader takes the maximum per function across every carrier it finds;
//! a malformed value is logged and ignored, never a panic.
//!
//! # Adding a transport
//!
//! A carrier for Kafka-style record headers (a list of name/bytes pairs):
//!
//! ```
//! use lambda_loop_guard::carrier::{Carrier, StampError, KEY};
//! use lambda_loop_guard::{EventSource, FunctionId, Incoming, Lineage};
//!
//! struct Headers(Vec<(String, Vec<u8>)>);
//!
//! struct KafkaHeader;
//!
//! impl Carrier<Headers> for KafkaHeader {
//!     fn read<'a>(&self, headers: &'a Headers, incoming: &mut Incoming<'a>) {
//!         for (name, value) in &headers.0 {
//!             if name == KEY {
//!                 if let Ok(text) = std::str::from_utf8(value) {
//!                     incoming.read_lineage_value(text, "kafka header");
//!                 }
//!             }
//!         }
//!     }
//!
//!     fn write(&self, headers: &mut Headers, lineage: &Lineage) -> Result<(), StampError> {
//!         headers.0.retain(|(name, _)| name != KEY);
//!         headers.0.push((KEY.into(), lineage.encode().as_str().into()));
//!         Ok(())
//!     }
//! }
//!
//! // The producer side stamps (inside a guarded handler, use
//! // `lambda_loop_guard::chain::stamp_current`)...
//! let me = FunctionId::from_identity("orders");
//! let mut headers = Headers(vec![]);
//! KafkaHeader.write(&mut headers, &Lineage::new().record_run(me)).unwrap();
//!
//! // ...and a consumer's `GuardedEvent` impl reads it per record (the
//! // guide's "A source of your own" puts this behind the layer).
//! let mut incoming = Incoming::new(EventSource::Custom("kafka"));
//! KafkaHeader.read(&headers, &mut incoming);
//! assert_eq!(incoming.lineage().count(me), 1);
//! ```

use std::error::Error;
use std::fmt;

use crate::incoming::Incoming;
use crate::lineage::Lineage;

mod attribute;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "dynamodb")]
mod item;
mod json;
pub(crate) mod json_text;
mod map;
pub(crate) mod trace;

#[cfg(any(feature = "sqs", feature = "sns"))]
pub(crate) use attribute::stamp_attribute;
pub(crate) use attribute::{sqs_attribute_value, SQS_ATTRIBUTE_CARRIER};
pub use attribute::{MessageAttribute, MAX_MESSAGE_ATTRIBUTES};
#[cfg(feature = "http")]
pub use http::{HttpHeader, HTTP_HEADER};
#[cfg(feature = "dynamodb")]
pub use item::ItemAttribute;
pub use json::JsonKey;
pub use map::MapKey;
pub(crate) use trace::LastHeader;
pub use trace::TraceField;

/// The one name of the lineage in every keyed carrier: the SQS/SNS message
/// attribute, the Lambda client context key, the JSON payload and EventBridge
/// `detail` key, the S3 user metadata key (`x-amz-meta-loop-guard`) and the
/// DynamoDB item attribute.
pub const KEY: &str = "loop-guard";

/// [`KEY`] as it appears in JSON text, quotes included (derived from it).
pub(crate) const QUOTED_KEY: [u8; KEY.len() + 2] = {
    let key = KEY.as_bytes();
    let mut quoted = [b'"'; KEY.len() + 2];
    let mut i = 0;
    while i < key.len() {
        quoted[i + 1] = key[i];
        i += 1;
    }
    quoted
};

/// The SQS message system attribute holding an X-Ray trace header.
pub const AWS_TRACE_HEADER_ATTRIBUTE: &str = "AWSTraceHeader";

/// Reads the lineage from, and writes it on, one kind of medium `M`.
///
/// `read` merges whatever the medium carries into an [`Incoming`] (use
/// [`Incoming::read_lineage_value`], which logs and ignores malformed
/// values, or another carrier such as [`TraceField`]). `write` sets the lineage on an outgoing
/// medium, replacing an earlier value of its own, and reports why it could
/// not rather than failing the caller's request.
pub trait Carrier<M: ?Sized> {
    /// Merges the lineage `medium` carries, if any, into `incoming`.
    fn read<'a>(&self, medium: &'a M, incoming: &mut Incoming<'a>);

    /// Writes `lineage` on `medium`.
    fn write(&self, medium: &mut M, lineage: &Lineage) -> Result<(), StampError>;
}

/// Why a [`Carrier`] could not write the lineage. The request goes out
/// without that carrier; others may still carry the lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StampError {
    /// The medium already holds as many entries as it may (10 SQS/SNS message
    /// attributes).
    NoRoom {
        /// The service's limit.
        limit: usize,
    },
    /// The medium is not a JSON object, so it has no place for a key.
    NotAnObject,
    /// The medium already uses the carrier's name for something else (a
    /// non-string value under the reserved key).
    NameTaken {
        /// The name in use.
        name: String,
    },
    /// The stamped value is not valid for the medium (an HTTP header value,
    /// a trace header over 8 KiB).
    Invalid {
        /// What was wrong.
        reason: String,
    },
}

impl fmt::Display for StampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StampError::NoRoom { limit } => {
                write!(f, "no room for the lineage: the limit is {limit} entries")
            }
            StampError::NotAnObject => f.write_str("the payload is not a JSON object"),
            StampError::NameTaken { name } => {
                write!(f, "`{name}` already holds a value that is not ours")
            }
            StampError::Invalid { reason } => write!(f, "cannot stamp the lineage: {reason}"),
        }
    }
}

impl Error for StampError {}

/// Logs a carrier that could not be written (the call goes on without it).
#[cfg(any(
    feature = "sqs",
    feature = "sns",
    feature = "lambda",
    feature = "eventbridge",
    feature = "dynamodb",
    feature = "s3",
    feature = "kinesis",
    feature = "stepfunctions"
))]
pub(crate) fn log_skipped(carrier: &'static str, error: &StampError) {
    tracing::warn!(%error, carrier, "loop guard stamp skipped; the call goes on without it");
}

/// `map[key]` for the small maps of events (message attributes, system
/// attributes: ten entries at most): a walk comparing lengths first costs
/// less than hashing the key. Inlined, and the key compared first (its
/// length is the comparison's), so that a constant key is compared in
/// place, without a call to `memcmp`.
#[inline(always)]
pub(crate) fn small_map_get<'a, V, S>(
    map: &'a std::collections::HashMap<String, V, S>,
    key: &str,
) -> Option<&'a V>
where
    S: std::hash::BuildHasher,
{
    if map.len() > 16 {
        return map.get(key);
    }
    map.iter().find(|(k, _)| key == k.as_str()).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incoming::EventSource;
    use std::collections::HashMap;

    /// What every carrier must read from `value`: its lineage when it is a
    /// valid one, nothing otherwise.
    fn expected(value: &str) -> Lineage {
        Lineage::decode(value).unwrap_or_default()
    }

    fn read_with<M: ?Sized, C: Carrier<M>>(carrier: &C, medium: &M) -> Lineage {
        let mut incoming = Incoming::new(EventSource::Custom("test"));
        carrier.read(medium, &mut incoming);
        incoming.lineage()
    }

    proptest::proptest! {
        #[test]
        fn every_carrier_reads_any_value_without_panicking(
            value in proptest::prop_oneof![
                "\\PC{0,300}",
                "v1\\.[0-9]{1,5}(\\.[0-9a-f]{8}-[0-9]{1,5}){0,20}",
                "v[0-9]\\.[0-9a-z.\\-]{0,40}",
            ]
        ) {
            let want = expected(&value);
            let map = HashMap::from([(KEY.to_owned(), value.clone())]);
            proptest::prop_assert_eq!(read_with(&MapKey::default(), &map), want);
            let json = serde_json::json!({ KEY: value.clone() });
            proptest::prop_assert_eq!(read_with(&JsonKey::default(), &json), want);

            let mut sqs = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
            sqs.string_value = Some(value.clone());
            let sqs = HashMap::from([(KEY.to_owned(), sqs)]);
            proptest::prop_assert_eq!(read_with(&MessageAttribute::default(), &sqs), want);

            // In a trace header the value ends at the first `;`.
            let header = format!("Root=1-a-b;{}={value}", crate::trace_header::LOOP_GUARD_FIELD);
            let in_header = read_with(&TraceField, &header);
            if !value.contains(';') && header.len() <= 8192 {
                proptest::prop_assert_eq!(in_header, want);
            }

            #[cfg(feature = "dynamodb")]
            {
                let item = serde_dynamo::Item::from(HashMap::from([(
                    KEY.to_owned(),
                    serde_dynamo::AttributeValue::S(value.clone()),
                )]));
                proptest::prop_assert_eq!(read_with(&ItemAttribute::default(), &item), want);
            }
            #[cfg(feature = "http")]
            if let Ok(header_value) = ::http::HeaderValue::from_str(&value) {
                let mut headers = ::http::HeaderMap::new();
                headers.insert(HTTP_HEADER, header_value);
                proptest::prop_assert_eq!(read_with(&HttpHeader::default(), &headers), want);
            }
        }
    }
}
