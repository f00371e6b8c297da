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
use crate::lineage::{Lineage, LineageError, MAX_ENCODED_LEN};
use crate::signing::{SigningKeys, Verified};

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
    /// A Kinesis data stream record.
    Kinesis,
    /// A Kafka record (Amazon MSK or self-managed).
    Kafka,
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
    /// `s3`, `kinesis`, `kafka`, `http`, or the custom name.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventSource::Invoke => "invoke",
            EventSource::Sqs => "sqs",
            EventSource::Sns => "sns",
            EventSource::DynamoDb => "dynamodb",
            EventSource::EventBridge => "eventbridge",
            EventSource::S3 => "s3",
            EventSource::Kinesis => "kinesis",
            EventSource::Kafka => "kafka",
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
    sink: Sink<'a, 's>,
}

enum Sink<'a, 's> {
    // Units collected, or handed to code outside the guard.
    Plain(&'s mut dyn FnMut(Incoming<'a>)),
    // The guard's decision, which can also take a repeat.
    Deciding(&'s mut dyn Decide<'a>),
}

/// The guard's decision, unit by unit, as a batch reader hands them over.
pub(crate) trait Decide<'a> {
    /// Decides a unit read in full; whether a record like it may follow as
    /// a [`repeat`](Self::repeat) (it ran as the latest kind of unit).
    fn unit(&mut self, unit: Incoming<'a>) -> bool;

    /// Decides `count` records in a row whose carriers are byte for byte
    /// the last unit's, for which [`unit`](Self::unit) answered true, as
    /// that one was: whether they were taken (else they are handed over in
    /// full).
    fn repeat(&mut self, count: usize) -> bool;
}

impl<'a, 's> Units<'a, 's> {
    /// Units handed to `sink`, one call per unit.
    pub fn new(sink: &'s mut dyn FnMut(Incoming<'a>)) -> Self {
        Units {
            sink: Sink::Plain(sink),
        }
    }

    /// Units handed to the guard's decision, which answers each with
    /// whether a unit like it may be handed over as a repeat.
    pub(crate) fn deciding(sink: &'s mut dyn Decide<'a>) -> Self {
        Units {
            sink: Sink::Deciding(sink),
        }
    }

    /// Hands over the next unit.
    pub fn push(&mut self, unit: Incoming<'a>) {
        self.push_unit(unit);
    }

    /// Hands over the next unit; whether the next one may be handed over as
    /// a [`push_repeats`](Self::push_repeats) of it, when its carriers are the
    /// same.
    pub(crate) fn push_unit(&mut self, unit: Incoming<'a>) -> bool {
        match &mut self.sink {
            Sink::Plain(sink) => {
                sink(unit);
                false
            }
            Sink::Deciding(decide) => decide.unit(unit),
        }
    }

    /// Hands over `count` units in a row whose carriers are byte for byte
    /// those of the last one handed over, for which
    /// [`push_unit`](Self::push_unit) answered true: whether they were taken
    /// (decided as that one). When they were not, the caller hands them
    /// over in full.
    pub(crate) fn push_repeats(&mut self, count: usize) -> bool {
        match &mut self.sink {
            Sink::Plain(_) => false,
            Sink::Deciding(decide) => decide.repeat(count),
        }
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
    // The lineage texts read (and their carriers, for the warning when one
    // is malformed), decoded only when the lineage is asked for: the guard
    // decodes the text a batch's records share once per batch, and checks
    // signatures then. The carriers of one hop usually hold one text.
    texts: [Option<(&'a str, &'static str)>; 3],
    // Lineages decoded on the way in: a fourth distinct text, or one merged
    // already decoded. A signed reader cannot check them: it rejects them.
    // Rare, so boxed: a unit stays small to move.
    decoded: Option<Box<Lineage>>,
    source: EventSource,
    item_id: Option<&'a str>,
    chain_root: Option<&'a str>,
    // A trace header whose `Root` is the chain root, parsed only when asked
    // (on a drop): most units never need it.
    root_header: Option<&'a str>,
    source_arn: Option<&'a str>,
    unchanged: bool,
}

impl<'a> Incoming<'a> {
    /// Nothing read yet: an empty lineage from `source`.
    pub fn new(source: EventSource) -> Self {
        Incoming {
            texts: [None; 3],
            decoded: None,
            source,
            item_id: None,
            chain_root: None,
            root_header: None,
            source_arn: None,
            unchanged: false,
        }
    }

    /// Merges an encoded lineage (a message attribute value, a client context
    /// entry, a custom field). `carrier` names it in the warning logged when
    /// the value is malformed (and then ignored). The carriers of one hop
    /// usually hold the same text, which is then decoded once.
    pub fn read_lineage_value(&mut self, value: &'a str, carrier: &'static str) -> &mut Self {
        for slot in &mut self.texts {
            match slot {
                Some((text, _)) if *text == value => return self,
                Some(_) => {}
                None => {
                    *slot = Some((value, carrier));
                    return self;
                }
            }
        }
        if let Some(lineage) = decode_logged(value, carrier) {
            self.merge_lineage(&lineage);
        }
        self
    }

    /// Merges an already decoded lineage (for carriers that cannot lend the
    /// encoded text, e.g. one read from a value built on the fly).
    ///
    /// With signed lineages (`LOOP_GUARD_SIGNING_KEYS`) a lineage merged
    /// this way cannot be checked and is ignored: carriers that can lend
    /// the text use [`read_lineage_value`](Self::read_lineage_value).
    pub fn merge_lineage(&mut self, lineage: &Lineage) -> &mut Self {
        self.decoded.get_or_insert_with(Box::default).merge(lineage);
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

    /// The lineage merged from every carrier read so far (the first text
    /// read is decoded now: the guard decodes it once per batch).
    pub fn lineage(&self) -> Lineage {
        self.resolve(&mut DecodeCache::default())
    }

    /// [`lineage`](Self::lineage), decoding the pending texts through
    /// `cache` (which checks signatures when it has keys): the guard passes
    /// one cache through a whole batch.
    pub(crate) fn resolve(&self, cache: &mut DecodeCache<'a, '_>) -> Lineage {
        // One value read (the usual case) is returned as decoded, its
        // signature included, so that it can be passed on unchanged.
        let mut lineage = None;
        if let Some(decoded) = &self.decoded {
            if cache.keys.is_none() {
                lineage = Some(**decoded);
            } else {
                cache.rejected += 1;
            }
        }
        for (text, carrier) in self.texts.iter().flatten() {
            if let Some(decoded) = cache.decode(text, carrier) {
                match &mut lineage {
                    None => lineage = Some(*decoded),
                    Some(merged) => merged.merge(decoded),
                }
            }
        }
        lineage.unwrap_or_default()
    }

    /// What the guard's decision on this unit depends on, besides
    /// `config`: `None` for a unit that holds a lineage decoded on the way
    /// in, or that changed nothing but our stamp (decided otherwise). The
    /// source ARN counts only when it can ([`deciding_source`]).
    ///
    /// [`deciding_source`]: crate::config::LoopGuardConfig::deciding_source
    pub(crate) fn decision_inputs(
        &self,
        config: &crate::config::LoopGuardConfig,
    ) -> Option<DecisionInputs<'a>> {
        (self.decoded.is_none() && !self.unchanged).then(|| DecisionInputs {
            texts: self.texts.map(|text| text.map(|(text, _)| text)),
            source: self.source,
            source_arn: config.deciding_source(self.source_arn),
        })
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

/// The lineage texts, source and source ARN of a unit: two units equal in
/// these are decided alike (only their item ids and chain roots differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DecisionInputs<'a> {
    texts: [Option<&'a str>; 3],
    source: EventSource,
    source_arn: Option<&'a str>,
}

/// Decodes a lineage value read from `carrier`, logging (at `warn`) and
/// returning `None` when it is malformed.
pub(crate) fn decode_logged(value: &str, carrier: &'static str) -> Option<Lineage> {
    match Lineage::decode(value) {
        Ok(lineage) => Some(lineage),
        Err(error) => {
            warn_malformed(&error, value, carrier);
            None
        }
    }
}

/// Warns about a malformed lineage value (out of the hot path's code).
#[cold]
#[inline(never)]
fn warn_malformed(error: &LineageError, value: &str, carrier: &'static str) {
    tracing::warn!(%error, carrier, value = %excerpt::head(value), "ignoring malformed loop guard lineage");
}

/// Logs a lineage whose signature did not verify (out of the hot path's
/// code).
#[cold]
#[inline(never)]
fn debug_rejected(text: &str, carrier: &'static str) {
    tracing::debug!(
        carrier,
        value = %excerpt::head(text),
        "loop guard lineage without a valid signature: counted as absent"
    );
}

/// A valid lineage text this thread decoded last, and what it decoded to.
struct Remembered {
    text: [u8; MAX_ENCODED_LEN],
    len: usize,
    lineage: Lineage,
}

thread_local! {
    // The invocations one producer feeds usually carry one text (its runs
    // stamp what they received, one hop further): the next invocation
    // compares instead of decoding. No heap: a text that decodes fits.
    static REMEMBERED: RefCell<Option<Remembered>> = const { RefCell::new(None) };
}

/// [`decode_logged`], through the text this thread decoded last: a
/// comparison instead of a decode when it is the same. Only valid texts
/// are remembered (a malformed one is warned about each time it is read).
fn decode_remembered(text: &str, carrier: &'static str) -> Option<Lineage> {
    let same = |r: &Remembered| r.text.get(..r.len) == Some(text.as_bytes());
    let known = REMEMBERED
        .try_with(|slot| {
            let remembered = slot.try_borrow().ok()?;
            remembered.as_ref().filter(|r| same(r)).map(|r| r.lineage)
        })
        .ok()
        .flatten();
    if known.is_some() {
        return known;
    }
    let lineage = decode_logged(text, carrier)?;
    let _ = REMEMBERED.try_with(|slot| {
        // A text that decodes is at most MAX_ENCODED_LEN bytes.
        let (Ok(mut slot), true) = (slot.try_borrow_mut(), text.len() <= MAX_ENCODED_LEN) else {
            return;
        };
        let remembered = slot.get_or_insert(Remembered {
            text: [0; MAX_ENCODED_LEN],
            len: 0,
            lineage,
        });
        remembered.text[..text.len()].copy_from_slice(text.as_bytes());
        remembered.len = text.len();
        remembered.lineage = lineage;
    });
    Some(lineage)
}

/// The last lineage text decoded and what it decoded to (a malformed text
/// too: it is then warned about once). The records of a batch usually carry
/// the text one producer run stamped on all of them: a hit costs a
/// comparison of the texts instead of a decode. With signing keys a text
/// counts only when its signature verifies; the others are counted in
/// `rejected`, every time one is read.
#[derive(Debug, Default)]
pub(crate) struct DecodeCache<'a, 'k> {
    last: Option<(&'a str, Option<Lineage>)>,
    keys: Option<&'k SigningKeys>,
    pub(crate) rejected: u32,
}

impl<'a, 'k> DecodeCache<'a, 'k> {
    /// A cache that checks signatures with `keys`, if there are keys.
    pub(crate) fn with_keys(keys: Option<&'k SigningKeys>) -> Self {
        DecodeCache {
            last: None,
            keys,
            rejected: 0,
        }
    }

    /// The lineage `text` decodes to (`None` when it is malformed or, with
    /// keys, does not verify), kept until the next text: lent, not copied
    /// (a lineage is 128 bytes).
    pub(crate) fn decode(&mut self, text: &'a str, carrier: &'static str) -> Option<&Lineage> {
        if !matches!(self.last, Some((last, _)) if last == text) {
            let lineage = match self.keys {
                None => decode_remembered(text, carrier),
                Some(keys) => match keys.verify(text) {
                    Verified::Signed(lineage) => Some(lineage),
                    Verified::Rejected => {
                        debug_rejected(text, carrier);
                        None
                    }
                },
            };
            self.last = Some((text, lineage));
        }
        let lineage = self.last.as_ref().and_then(|(_, lineage)| lineage.as_ref());
        if lineage.is_none() && self.keys.is_some() {
            self.rejected += 1;
        }
        lineage
    }
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
    fn a_remembered_text_decodes_as_it_always_does() {
        let long = format!("v1.1.{}", ["00000001-1"; 40].join("."));
        let texts = [
            "v1.3.00000001-3",
            "v1.3.00000001-3",
            "v1.3.00000001-4",
            "garbage",
            "v1.3.00000001-4",
            long.as_str(),
            "v1.3.00000001-4",
            "v1.3.00000001-3",
            "",
            "v1.3.00000001-3.00000002-1",
        ];
        for text in texts.iter().chain(texts.iter().rev()) {
            assert_eq!(
                decode_remembered(text, "test"),
                Lineage::decode(text).ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn the_decode_cache_never_changes_a_result() {
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
        let mut cache = DecodeCache::default();
        for text in texts.iter().chain(texts.iter().rev()) {
            assert_eq!(
                cache.decode(text, "test").copied(),
                Lineage::decode(text).ok(),
                "{text}"
            );
            let mut incoming = Incoming::new(EventSource::Sqs);
            incoming.read_lineage_value(text, "a");
            assert_eq!(incoming.resolve(&mut cache), incoming.lineage(), "{text}");
        }
    }
}
