//! The crate's parsers of untrusted input that are not public, for the fuzz
//! targets in `fuzz/` (feature `fuzzing`). Not a public API.

/// [`AsyncPayloadLayer`](crate::AsyncPayloadLayer)'s step: the payload
/// without our key, and the key's value.
pub fn take_lineage(body: &[u8]) -> Option<(Vec<u8>, String)> {
    crate::source::async_payload::take_lineage(body)
}

/// The topic ARN and the `loop-guard` value of an SNS envelope in an SQS
/// body.
pub fn sns_envelope_lineage(body: &str) -> Option<(&str, &str)> {
    crate::source::sqs::sns_envelope_lineage(body).map(|e| (e.topic_arn, e.lineage))
}
