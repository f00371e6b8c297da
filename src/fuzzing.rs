//! The crate's parsers of untrusted input that are not public, for the fuzz
//! targets in `fuzz/` (feature `fuzzing`). Not a public API.

/// [`AsyncPayloadLayer`](crate::AsyncPayloadLayer)'s step: the payload
/// without our key, and the key's value.
pub fn take_lineage(body: &[u8]) -> Option<(Vec<u8>, String)> {
    crate::source::async_payload::take_lineage(body)
}

/// The `loop-guard` value inside an SNS envelope in an SQS body.
pub fn sns_envelope_lineage(body: &str) -> Option<&str> {
    crate::source::sqs::sns_envelope_lineage(body)
}
