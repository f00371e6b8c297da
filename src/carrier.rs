//! Where the lineage travels between hops (see `docs/wire-format.md`).
//!
//! 1. Our field ([`LOOP_GUARD_FIELD`](crate::LOOP_GUARD_FIELD)) in the
//!    `X-Amzn-Trace-Id` header, and in SQS's `AWSTraceHeader` system attribute.
//! 2. An SQS / SNS message attribute named [`MESSAGE_ATTRIBUTE`] (type `String`).
//! 3. Lambda `Invoke`: key [`CLIENT_CONTEXT_KEY`] in `ClientContext.custom`.
//!
//! A reader takes the maximum per function across every carrier it finds;
//! a malformed value is logged and ignored.

use crate::lineage::Lineage;

/// Name of the SQS/SNS message attribute that carries the lineage.
pub const MESSAGE_ATTRIBUTE: &str = "loop-guard";

/// Key in the Lambda client context's `custom` map that carries the lineage.
pub const CLIENT_CONTEXT_KEY: &str = "loop-guard";

/// The SQS message system attribute holding an X-Ray trace header.
pub const AWS_TRACE_HEADER_ATTRIBUTE: &str = "AWSTraceHeader";

/// Decodes a lineage value read from `carrier`, logging (at `warn`) and
/// returning `None` when it is malformed.
pub(crate) fn decode_logged(value: &str, carrier: &'static str) -> Option<Lineage> {
    match Lineage::decode(value) {
        Ok(lineage) => Some(lineage),
        Err(error) => {
            tracing::warn!(%error, carrier, value = %truncated(value), "ignoring malformed loop guard lineage");
            None
        }
    }
}

/// At most 64 bytes of an untrusted value, cut on a character boundary.
fn truncated(value: &str) -> &str {
    let mut end = value.len().min(64);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}
