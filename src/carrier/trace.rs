//! Our field in an `X-Amzn-Trace-Id` value.

use super::{Carrier, StampError};
use crate::incoming::Incoming;
use crate::lineage::Lineage;
use crate::trace_header::TraceHeader;

/// Our `LoopGuard=` field in an X-Ray trace header value: the HTTP
/// `x-amzn-trace-id` header, the Lambda context's trace id, SQS's
/// `AWSTraceHeader` attribute, EventBridge's `TraceHeader`.
///
/// Writing keeps every other field byte for byte and replaces an earlier
/// `LoopGuard=` field; reading also takes the trace `Root` as the chain root.
#[derive(Debug, Default, Clone, Copy)]
pub struct TraceField;

impl TraceField {
    /// Merges every valid value of our field in the header value `header`
    /// and takes its `Root` as the chain root (if none is known yet): the
    /// read side for headers held as `&str`.
    pub fn read_header<'a>(&self, header: &'a str, incoming: &mut Incoming<'a>) {
        match TraceHeader::parse(header) {
            Ok(header) => {
                let root = header.root_and_loop_guard_values(|value| {
                    incoming.read_lineage_value(value, "trace header");
                });
                incoming.set_chain_root(root);
            }
            Err(error) => tracing::warn!(%error, "ignoring oversized trace header"),
        }
    }
}

impl Carrier<String> for TraceField {
    fn read<'a>(&self, header: &'a String, incoming: &mut Incoming<'a>) {
        self.read_header(header, incoming);
    }

    fn write(&self, header: &mut String, lineage: &Lineage) -> Result<(), StampError> {
        let stamped = TraceHeader::parse(header)
            .map_err(|error| StampError::Invalid {
                reason: error.to_string(),
            })?
            .with_lineage(lineage);
        *header = stamped;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incoming::EventSource;
    use crate::lineage::FunctionId;

    #[test]
    fn round_trip_keeps_other_fields() {
        let lineage = Lineage::new().record_run(FunctionId::from_u32(3));
        let mut header = String::from("Root=1-a-b;Sampled=1;LoopGuard=v1.1.00000009-1");
        TraceField.write(&mut header, &lineage).unwrap();
        assert_eq!(header, format!("Root=1-a-b;Sampled=1;LoopGuard={lineage}"));
        let mut incoming = Incoming::new(EventSource::Invoke);
        TraceField.read(&header, &mut incoming);
        assert_eq!(incoming.lineage(), &lineage);
        assert_eq!(incoming.chain_root(), Some("1-a-b"));
        let mut huge = "x".repeat(9000);
        assert!(matches!(
            TraceField.write(&mut huge, &lineage),
            Err(StampError::Invalid { .. })
        ));
        assert_eq!(huge.len(), 9000);
    }
}
