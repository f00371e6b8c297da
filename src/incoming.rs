//! What one unit of work arrived with: the accumulator every [`Carrier`]
//! reads into, and the [`EventSource`] it came from.
//!
//! A [`GuardedEvent`](crate::GuardedEvent) yields one [`Incoming`] per unit
//! (the invocation, or each record of a batch); carriers merge what they find
//! into it, taking the maximum per function, and the guard decides on it.
//!
//! [`Carrier`]: crate::Carrier

use std::cell::RefCell;
use std::fmt;

use crate::excerpt;
use crate::lineage::{Lineage, MAX_ENCODED_LEN};

/// Where an invocation or record came from (the metric's `Source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventSource {
    /// A direct `Invoke` (or any payload read through the Lambda `Context`).
    Invoke,
    /// An SQS record (including SNS notifications delivered through SQS).
    Sqs,
    /// An SNS record.
    Sns,
    /// A DynamoDB stream record.
    DynamoDb,
    /// An EventBridge event.
    EventBridge,
    /// An S3 event notification record.
    S3,
    /// An HTTP request (API Gateway v1/v2, Function URL, ALB), or any unit a
    /// custom source tags so. Its lineage only counts when HTTP sources are
    /// trusted (`LOOP_GUARD_TRUST_HTTP`).
    Http,
    /// A source named by a custom [`GuardedEvent`](crate::GuardedEvent)
    /// implementation.
    Custom(&'static str),
}

impl EventSource {
    /// Lowercase name: `invoke`, `sqs`, `sns`, `dynamodb`, `eventbridge`,
    /// `s3`, `http`, or the custom name.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventSource::Invoke => "invoke",
            EventSource::Sqs => "sqs",
            EventSource::Sns => "sns",
            EventSource::DynamoDb => "dynamodb",
            EventSource::EventBridge => "eventbridge",
            EventSource::S3 => "s3",
            EventSource::Http => "http",
            EventSource::Custom(name) => name,
        }
    }
}

impl fmt::Display for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where a [`GuardedEvent`](crate::GuardedEvent) hands its units, in order.
/// The guard decides on each unit as it arrives, so a batch of any size is
/// read without a buffer of its units.
pub struct Units<'a, 's> {
    sink: &'s mut dyn FnMut(Incoming<'a>),
}

impl<'a, 's> Units<'a, 's> {
    /// Units handed to `sink`, one call per unit.
    pub fn new(sink: &'s mut dyn FnMut(Incoming<'a>)) -> Self {
        Units { sink }
    }

    /// Hands over the next unit.
    pub fn push(&mut self, unit: Incoming<'a>) {
        (self.sink)(unit);
    }
}

impl<'a> Extend<Incoming<'a>> for Units<'a, '_> {
    fn extend<I: IntoIterator<Item = Incoming<'a>>>(&mut self, units: I) {
        units.into_iter().for_each(|unit| self.push(unit));
    }
}

impl fmt::Debug for Units<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Units").finish_non_exhaustive()
    }
}

/// The chain one unit of work (a record, or the whole invocation) arrived with.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    lineage: Lineage,
    source: EventSource,
    item_id: Option<&'a str>,
    chain_root: Option<&'a str>,
    // A trace header whose `Root` is the chain root, parsed only when asked
    // (on a drop): most units never need it.
    root_header: Option<&'a str>,
    source_arn: Option<&'a str>,
    unchanged: bool,
    // The last value decoded: carriers of one hop usually hold the same
    // text, which is then decoded once.
    last_value: Option<&'a str>,
}

impl<'a> Incoming<'a> {
    /// Nothing read yet: an empty lineage from `source`.
    pub fn new(source: EventSource) -> Self {
        Incoming {
            lineage: Lineage::new(),
            source,
            item_id: None,
            chain_root: None,
            root_header: None,
            source_arn: None,
            unchanged: false,
            last_value: None,
        }
    }

    /// Merges an encoded lineage (a message attribute value, a client context
    /// entry, a custom field). `carrier` names it in the warning logged when
    /// the value is malformed (and then ignored).
    pub fn read_lineage_value(&mut self, value: &'a str, carrier: &'static str) -> &mut Self {
        if self.last_value == Some(value) {
            return self;
        }
        self.last_value = Some(value);
        if let Some(lineage) = decode_logged(value, carrier) {
            self.lineage.merge(&lineage);
        }
        self
    }

    /// Merges an already decoded lineage (for carriers that cannot lend the
    /// encoded text, e.g. one read from a value built on the fly).
    pub fn merge_lineage(&mut self, lineage: &Lineage) -> &mut Self {
        self.lineage.merge(lineage);
        self
    }

    /// Takes `root` (an X-Ray trace `Root`) as the chain root, unless one is
    /// already known: the first carrier read wins.
    pub fn set_chain_root(&mut self, root: Option<&'a str>) -> &mut Self {
        if self.chain_root.is_none() && self.root_header.is_none() {
            self.chain_root = root;
        }
        self
    }

    /// Takes the `Root` of the trace header `header` as the chain root,
    /// unless one is already known; it is parsed only when asked for.
    pub(crate) fn set_chain_root_header(&mut self, header: &'a str) -> &mut Self {
        if self.chain_root.is_none() && self.root_header.is_none() {
            self.root_header = Some(header);
        }
        self
    }

    /// Sets the id used to report this unit as a batch item failure (the SQS
    /// `messageId`, the DynamoDB stream sequence number).
    pub fn set_item_id(&mut self, id: Option<&'a str>) -> &mut Self {
        self.item_id = id;
        self
    }

    /// Sets the ARN of the event source (SQS queue, SNS topic), which selects
    /// a per-source limit (`LOOP_GUARD_SOURCE_MAX_DEPTH`).
    pub fn set_source_arn(&mut self, arn: Option<&'a str>) -> &mut Self {
        self.source_arn = arn;
        self
    }

    /// Marks this unit as a write that changed nothing but our stamp (a
    /// DynamoDB stream record whose old and new images differ only in the
    /// stamp attribute): it does not reach the handler and is not a drop.
    pub fn mark_unchanged(&mut self) -> &mut Self {
        self.unchanged = true;
        self
    }

    /// Whether this unit changed nothing but our stamp.
    pub fn is_unchanged(&self) -> bool {
        self.unchanged
    }

    /// The event source ARN, if known.
    pub fn source_arn(&self) -> Option<&'a str> {
        self.source_arn
    }

    /// The lineage merged from every carrier read so far.
    pub fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// Where this unit came from.
    pub fn source(&self) -> EventSource {
        self.source
    }

    /// The batch item identifier, if any.
    pub fn item_id(&self) -> Option<&'a str> {
        self.item_id
    }

    /// The trace `Root` of the chain, if a trace header was read.
    pub fn chain_root(&self) -> Option<&'a str> {
        self.chain_root.or_else(|| {
            let header = crate::trace_header::TraceHeader::parse(self.root_header?).ok()?;
            header.root()
        })
    }
}

/// Decodes a lineage value read from `carrier`, logging (at `warn`) and
/// returning `None` when it is malformed.
pub(crate) fn decode_logged(value: &str, carrier: &'static str) -> Option<Lineage> {
    if let Some(lineage) = last_decoded(value) {
        return Some(lineage);
    }
    match Lineage::decode(value) {
        Ok(lineage) => {
            remember_decoded(value, &lineage);
            Some(lineage)
        }
        Err(error) => {
            tracing::warn!(%error, carrier, value = %excerpt::head(value), "ignoring malformed loop guard lineage");
            None
        }
    }
}

/// The last lineage text this thread decoded, and its lineage. The records
/// of one batch usually carry the same text (one producer run stamped them
/// all), so a batch decodes it once: a hit costs a length test and a
/// comparison of at most [`MAX_ENCODED_LEN`] bytes, a fraction of a decode.
/// Decoding is a pure function of the text, so the memo cannot change a
/// result; it holds no heap memory.
struct LastDecoded {
    text: [u8; MAX_ENCODED_LEN],
    len: usize,
    lineage: Lineage,
}

thread_local! {
    static LAST_DECODED: RefCell<LastDecoded> = const {
        RefCell::new(LastDecoded {
            text: [0; MAX_ENCODED_LEN],
            len: 0,
            lineage: Lineage::new(),
        })
    };
}

fn last_decoded(value: &str) -> Option<Lineage> {
    LAST_DECODED.with(|memo| {
        let memo = memo.borrow();
        (memo.len != 0 && memo.text[..memo.len] == *value.as_bytes()).then_some(memo.lineage)
    })
}

fn remember_decoded(value: &str, lineage: &Lineage) {
    if value.is_empty() || value.len() > MAX_ENCODED_LEN {
        return;
    }
    LAST_DECODED.with(|memo| {
        let mut memo = memo.borrow_mut();
        memo.text[..value.len()].copy_from_slice(value.as_bytes());
        memo.len = value.len();
        memo.lineage = *lineage;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::FunctionId;

    #[test]
    fn values_merge_by_maximum_and_garbage_is_ignored() {
        let mut incoming = Incoming::new(EventSource::Custom("test"));
        incoming
            .read_lineage_value("v1.3.00000001-3.00000002-1", "a")
            .read_lineage_value("v1.5.00000001-2", "b")
            .read_lineage_value("\u{0}\u{ff}", "c")
            .set_chain_root(Some("1-a"))
            .set_chain_root(Some("1-b"));
        let l = incoming.lineage();
        assert_eq!(l.count(FunctionId::from_u32(1)), 3);
        assert_eq!(l.count(FunctionId::from_u32(2)), 1);
        assert_eq!(l.hops(), 5);
        assert_eq!(incoming.chain_root(), Some("1-a"));
    }

    #[test]
    fn the_decode_memo_never_changes_a_result() {
        let texts = [
            "v1.3.00000001-3.00000002-1",
            "v1.3.00000001-3.00000002-2",
            "v1.3.00000001-3",
            "v1.3.00000001-3.00000002-1",
            "v1.3.00000001-3.00000002-1",
            "garbage",
            "v1.3.00000001-3.00000002-1",
            "",
            "v1.9.00000001-3.00000002-1",
        ];
        for text in texts.iter().chain(texts.iter().rev()) {
            assert_eq!(
                decode_logged(text, "test"),
                Lineage::decode(text).ok(),
                "{text}"
            );
        }
    }
}
