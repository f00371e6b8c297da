//! Our field in an `X-Amzn-Trace-Id` value.

use super::{Carrier, StampError};
use crate::incoming::Incoming;
use crate::lineage::Lineage;
use crate::trace_header::{TraceHeader, MAX_TRACE_HEADER_LEN};

/// Our `LoopGuard=` field in an X-Ray trace header value: the HTTP
/// `x-amzn-trace-id` header, the Lambda context's trace id, SQS's
/// `AWSTraceHeader` attribute, EventBridge's `TraceHeader`.
///
/// Writing keeps every other field byte for byte and replaces an earlier
/// `LoopGuard=` field; reading also takes the trace `Root` as the chain root.
#[derive(Debug, Default, Clone, Copy)]
pub struct TraceField;

/// Merges every value of our field in `header` into `incoming` and takes
/// the header's `Root` as the chain root; returns where the value is when
/// there is at most one (`Some(None)`: none), what [`LastHeader`] keeps. An
/// oversized header is warned about and read as empty.
fn scan_header<'a>(header: &'a str, incoming: &mut Incoming<'a>) -> Option<Option<(usize, usize)>> {
    let parsed = match TraceHeader::parse(header) {
        Ok(parsed) => parsed,
        Err(error) => {
            tracing::warn!(%error, "ignoring oversized trace header");
            return None;
        }
    };
    let (mut values, mut only) = (0, None);
    parsed.each_loop_guard_value(|value| {
        values += 1;
        only = Some(value);
        incoming.read_lineage_value(value, "trace header");
    });
    incoming.set_chain_root_header(header);
    // Where the only value sits, to slice it out of an equal header.
    let range = only.map(|value| {
        let start = value.as_ptr() as usize - header.as_ptr() as usize;
        (start, start + value.len())
    });
    (values <= 1).then_some(range)
}

/// The last trace header of a batch [`TraceField::read_batch_header`] read,
/// and where our field's value is in it.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LastHeader<'a> {
    header: &'a str,
    // `Some(None)`: no value; `Some(Some((start, end)))`: one value, at
    // these byte offsets; `None`: no header kept yet. A header with two
    // values or more, or an oversized one, is not kept: it is read again.
    value: Option<Option<(usize, usize)>>,
}

impl TraceField {
    /// Merges every valid value of our field in the header value `header`
    /// and takes its `Root` as the chain root (if none is known yet): the
    /// read side for headers held as `&str`.
    pub fn read_header<'a>(&self, header: &'a str, incoming: &mut Incoming<'a>) {
        scan_header(header, incoming);
    }

    /// [`read_header`](Self::read_header) for the headers of one batch, in
    /// order: a header equal byte for byte to `last` (the records one
    /// producer run sent carry one header) is compared, not scanned again.
    pub(crate) fn read_batch_header<'a>(
        &self,
        header: &'a str,
        incoming: &mut Incoming<'a>,
        last: &mut LastHeader<'a>,
    ) {
        if let Some(value) = last.value.filter(|_| last.header == header) {
            if let Some(value) = value.and_then(|(start, end)| header.get(start..end)) {
                incoming.read_lineage_value(value, "trace header");
            }
            incoming.set_chain_root_header(header);
            return;
        }
        if let Some(value) = scan_header(header, incoming) {
            *last = LastHeader {
                header,
                value: Some(value),
            };
        }
    }

    /// `header` with our field set to `lineage`, in a string of its own
    /// (what [`Carrier::write`] stores, without copying `header` first);
    /// the same refusals.
    pub(crate) fn stamped(&self, header: &str, lineage: &Lineage) -> Result<String, StampError> {
        let stamped = TraceHeader::parse(header)
            .map_err(|error| StampError::Invalid {
                reason: error.to_string(),
            })?
            .with_lineage(lineage);
        if stamped.len() > MAX_TRACE_HEADER_LEN {
            return Err(StampError::Invalid {
                reason: format!(
                    "the stamped trace header would be {} bytes, over the {MAX_TRACE_HEADER_LEN} the next hop reads",
                    stamped.len()
                ),
            });
        }
        Ok(stamped)
    }
}

/// The trace header a call's own parameter should carry (EventBridge
/// `TraceHeader`, Step Functions `traceHeader`): the caller's `own`
/// header, else the invocation's `incoming` one, with our field set to
/// `lineage`. With neither there is no trace to continue (`None`: a header
/// of ours alone is not sent); a stamped header over `max_chars` (the
/// service refuses the whole call past it) is logged and `None`.
#[cfg(any(feature = "eventbridge", feature = "stepfunctions"))]
pub(crate) fn stamped_call_header(
    own: Option<&str>,
    incoming: Option<&str>,
    lineage: &Lineage,
    max_chars: usize,
    carrier: &'static str,
) -> Option<String> {
    let header = own.or(incoming)?;
    match TraceField.stamped(header, lineage) {
        Err(error) => {
            super::log_skipped(carrier, &error);
            None
        }
        Ok(stamped) if stamped.chars().count() > max_chars => {
            let reason = format!(
                "{} characters, over the {max_chars} the service accepts",
                stamped.chars().count()
            );
            super::log_skipped(carrier, &StampError::Invalid { reason });
            None
        }
        Ok(stamped) => Some(stamped),
    }
}

impl Carrier<String> for TraceField {
    fn read<'a>(&self, header: &'a String, incoming: &mut Incoming<'a>) {
        self.read_header(header, incoming);
    }

    /// Refuses ([`StampError::Invalid`], the header unchanged) a header
    /// that is, or would become, longer than the next hop reads
    /// ([`MAX_TRACE_HEADER_LEN`]).
    fn write(&self, header: &mut String, lineage: &Lineage) -> Result<(), StampError> {
        *header = self.stamped(header, lineage)?;
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
        assert_eq!(incoming.lineage(), lineage);
        assert_eq!(incoming.chain_root(), Some("1-a-b"));
        let mut huge = "x".repeat(9000);
        assert!(matches!(
            TraceField.write(&mut huge, &lineage),
            Err(StampError::Invalid { .. })
        ));
        assert_eq!(huge.len(), 9000);
        // Readable now (8,100 bytes), but not once a 16-entry lineage is
        // added: left as it is, never a header the next hop refuses.
        let big = (0..16u32).fold(Lineage::new(), |l, n| {
            l.record_run(crate::lineage::FunctionId::from_u32(n))
        });
        let mut near = format!("Root=1-a-b;Pad={}", "x".repeat(8100 - 15));
        let before = near.clone();
        assert!(matches!(
            TraceField.write(&mut near, &big),
            Err(StampError::Invalid { .. })
        ));
        assert_eq!(near, before);
    }
}
