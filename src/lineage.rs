//! The chain state that travels with every hop: how many times each guarded
//! function has run in this chain, plus the total number of hops.
//!
//! A [`Lineage`] is a fixed-size value (no heap), so it can be copied into
//! task-locals and interceptors freely. Its text form is specified in
//! `docs/wire-format.md`:
//!
//! ```text
//! v1.<hops>.<id>-<count>.<id>-<count>...
//! v2.<hops>.<chain>.<budget>.<id>-<count>...
//! ```
//!
//! * `v1` or `v2` is the version. Any other version is rejected (and
//!   therefore ignored by readers), so a future format can be rolled out side
//!   by side. `v2` is written for a chain with a [`ChainId`] (a budgeted
//!   chain, `LOOP_GUARD_CHAIN_BUDGET`, or any with `LOOP_GUARD_CHAIN_IDS`):
//!   the id (16 hex digits) and the runs left to the subtree (decimal, or
//!   `-` for none); `v1` otherwise.
//! * `<hops>` is the total number of hops, decimal, `0..=65535`.
//! * each entry is a [`FunctionId`] (8 hex digits) and how many times that
//!   function ran in the chain, decimal, `1..=65535`.
//!
//! At most [`MAX_ENTRIES`] entries, so an encoded value is never longer than
//! [`MAX_ENCODED_LEN`] bytes. Counts saturate instead of wrapping.
//!
//! # Example
//!
//! ```
//! use lambda_loop_guard::{FunctionId, Lineage};
//!
//! let me = FunctionId::from_identity("order-processor");
//! let incoming: Lineage = "v1.3.5d4e0a6c-2".parse()?;
//! let outgoing = incoming.record_run(me);
//! assert_eq!(outgoing.count(me), incoming.count(me) + 1);
//! assert_eq!(outgoing.hops(), 4);
//! // Decoding never allocates; encoding goes to a stack buffer.
//! assert_eq!(outgoing.encode().as_str().parse::<Lineage>()?, outgoing);
//! # Ok::<(), lambda_loop_guard::lineage::LineageError>(())
//! ```

use std::fmt;
use std::str::FromStr;

/// At most this many functions are tracked in one lineage.
pub const MAX_ENTRIES: usize = 16;

/// An encoded lineage is never longer than this many bytes, and longer input
/// is rejected by the decoder without being scanned.
pub const MAX_ENCODED_LEN: usize = 320;

const VERSION: &str = "v1";
/// `.s` and 16 hex digits: a signature at the end of a value.
const TAG_LEN: usize = 18;
const VERSION_2: &str = "v2";

/// The smaller of two optional values, `None` only when both are.
/// The chain (and its budget) a merge of two lineages continues: see
/// [`Lineage::merge`].
fn chain_of_merge(
    a: (Option<ChainId>, Option<u32>),
    b: (Option<ChainId>, Option<u32>),
) -> (Option<ChainId>, Option<u32>) {
    // Smallest first: a budget, then the smaller one; an id, then the
    // smaller one.
    let rank = |(chain, budget): (Option<ChainId>, Option<u32>)| {
        (budget.is_none(), budget, chain.is_none(), chain)
    };
    if rank(b) < rank(a) {
        b
    } else {
        a
    }
}

/// A short, stable, non-reversible identifier of a guarded function.
///
/// It is the 32-bit FNV-1a hash of the function's identity
/// (`LOOP_GUARD_FUNCTION_ID`, else `AWS_LAMBDA_FUNCTION_NAME`), written as 8
/// lowercase hex digits on the wire. Function names never appear on the wire.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionId(u32);

impl FunctionId {
    /// Hashes a function identity (FNV-1a, 32 bits). Stable across versions,
    /// platforms and processes: it is part of the wire format.
    pub const fn from_identity(identity: &str) -> Self {
        let bytes = identity.as_bytes();
        let mut hash: u32 = 0x811c_9dc5;
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u32;
            hash = hash.wrapping_mul(0x0100_0193);
            i += 1;
        }
        FunctionId(hash)
    }

    /// Wraps a raw 32-bit id, as read from the wire.
    pub const fn from_u32(raw: u32) -> Self {
        FunctionId(raw)
    }

    /// The raw 32-bit id.
    pub const fn as_u32(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for FunctionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FunctionId({:08x})", self.0)
    }
}

impl fmt::Display for FunctionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// Per-function run counts and the total hop count of one chain of invocations.
///
/// Entries are kept sorted by [`FunctionId`], so equal lineages encode to the
/// same bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lineage {
    ids: [FunctionId; MAX_ENTRIES],
    counts: [u16; MAX_ENTRIES],
    len: u8,
    hops: u16,
    chain: Option<ChainId>,
    budget: Option<u32>,
    // A MAC over the rest of the encoded value (`.s<16 hex>` on the wire),
    // set only by signing and by decoding a signed value; any change to the
    // lineage drops it. Kept as a value and a flag (zero when absent), not
    // an `Option<u64>`: a lineage of at most 128 bytes is moved inline,
    // without a call to `memcpy`, and it is moved on every invocation.
    tag: u64,
    tagged: bool,
}

/// Identifies one chain of invocations across every hop: a random 64-bit
/// value minted where a budgeted chain starts (16 hex digits on the wire).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainId(std::num::NonZeroU64);

impl ChainId {
    /// A fresh random id (never zero). Not a secret: it names a chain in
    /// logs and metrics, it does not authenticate one.
    pub fn random() -> Self {
        use std::hash::BuildHasher;
        use std::sync::atomic::{AtomicU64, Ordering};
        static MINTED: AtomicU64 = AtomicU64::new(0);
        // RandomState draws its keys from the operating system once per
        // thread and varies them per instance: hashing a process-wide
        // counter and the time with it gives ids no two chains share.
        let n = MINTED.fetch_add(1, Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = std::collections::hash_map::RandomState::new().hash_one((n, now));
        ChainId(std::num::NonZeroU64::MIN.saturating_add(id.saturating_sub(1)))
    }

    /// The id `raw`, as read from the wire; `None` for zero, which no chain has.
    pub const fn from_u64(raw: u64) -> Option<Self> {
        match std::num::NonZeroU64::new(raw) {
            Some(id) => Some(ChainId(id)),
            None => None,
        }
    }

    /// The raw 64-bit id.
    pub const fn as_u64(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Debug for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainId({:016x})", self.0.get())
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0.get())
    }
}

impl Default for Lineage {
    fn default() -> Self {
        Self::new()
    }
}

impl Lineage {
    /// An empty lineage: no function has run, zero hops.
    pub const fn new() -> Self {
        Lineage {
            ids: [FunctionId(0); MAX_ENTRIES],
            counts: [0; MAX_ENTRIES],
            len: 0,
            hops: 0,
            chain: None,
            budget: None,
            tag: 0,
            tagged: false,
        }
    }

    /// The signature this lineage carries (decoded from a signed value, or
    /// set by [`SigningKeys::sign`](crate::signing::SigningKeys::sign)), if
    /// any. Any change to the lineage drops it.
    pub const fn tag(&self) -> Option<u64> {
        if self.tagged {
            Some(self.tag)
        } else {
            None
        }
    }

    const fn set_tag(&mut self, tag: Option<u64>) {
        match tag {
            Some(tag) => {
                self.tag = tag;
                self.tagged = true;
            }
            None => {
                self.tag = 0;
                self.tagged = false;
            }
        }
    }

    /// This lineage with `tag` as its signature: what signing sets.
    pub(crate) const fn with_tag(mut self, tag: u64) -> Self {
        self.set_tag(Some(tag));
        self
    }

    /// This lineage without its signature: what a signature covers.
    #[must_use]
    pub const fn unsigned(mut self) -> Self {
        self.set_tag(None);
        self
    }

    /// Total number of hops in the chain so far.
    pub const fn hops(&self) -> u16 {
        self.hops
    }

    /// How many times `function` has run in this chain (0 if never).
    pub fn count(&self, function: FunctionId) -> u16 {
        match self.position(function) {
            Ok(i) => self.counts[i],
            Err(_) => 0,
        }
    }

    /// The chain's id, if it has one (a budgeted chain: `v2` on the wire).
    pub const fn chain(&self) -> Option<ChainId> {
        self.chain
    }

    /// The runs left to the subtree this lineage starts, this one
    /// included, if the chain has a budget: `Some(0)` is a message its
    /// sender had no budget left for, which the receiver drops.
    pub const fn budget(&self) -> Option<u32> {
        self.budget
    }

    /// This lineage as the start of a chain `chain` with `budget` runs for
    /// the whole tree (this run included).
    #[must_use]
    pub const fn with_budget(mut self, chain: ChainId, budget: u32) -> Self {
        self.chain = Some(chain);
        self.budget = Some(budget);
        self.set_tag(None);
        self
    }

    /// This lineage in chain `chain`, its budget (if any) unchanged.
    #[must_use]
    pub const fn in_chain(mut self, chain: ChainId) -> Self {
        self.chain = Some(chain);
        self.set_tag(None);
        self
    }

    /// This lineage with `budget` runs for the subtree of one message (a
    /// share of what its sender had left); the chain is kept.
    #[must_use]
    pub(crate) const fn with_share(mut self, budget: u32) -> Self {
        if self.chain.is_some() {
            self.budget = Some(budget);
            self.set_tag(None);
        }
        self
    }

    /// Number of functions tracked.
    pub const fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether no function is tracked.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tracked functions and their run counts, sorted by id.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (FunctionId, u16)> + '_ {
        self.ids[..self.len()]
            .iter()
            .copied()
            .zip(self.counts[..self.len()].iter().copied())
    }

    /// The lineage after one more run of `function`: its count and the hop
    /// count each go up by one (saturating).
    ///
    /// The running function is always recorded: if the lineage is full and
    /// `function` is new, the other entry with the smallest count makes room
    /// (a function that ran least is the least likely part of a loop), so no
    /// lineage, forged or merely long, can keep a function from counting.
    #[must_use]
    pub fn record_run(mut self, function: FunctionId) -> Self {
        // One search when the function has an entry (the usual case).
        match self.position(function) {
            Ok(i) => self.counts[i] = self.counts[i].saturating_add(1),
            Err(_) => {
                if self.len() == MAX_ENTRIES {
                    self.evict_smallest();
                }
                self.set_at_least(function, 1);
            }
        }
        self.hops = self.hops.saturating_add(1);
        // The run consumes one of its chain's budget.
        self.budget = self.budget.map(|b| b.saturating_sub(1));
        self.set_tag(None);
        self
    }

    /// The lineage one hop further, with no function's run recorded (a hop
    /// through a function that does not count itself).
    #[must_use]
    pub fn add_hop(mut self) -> Self {
        self.hops = self.hops.saturating_add(1);
        self.set_tag(None);
        self
    }

    /// Merges `other` into `self`: the maximum count per function, the
    /// maximum hop count. This is how disagreeing carriers are reconciled.
    pub fn merge(&mut self, other: &Lineage) {
        // The chain and its budget go together: the pair with the smaller
        // budget (a budget never lets a subtree grow), a budgeted chain
        // before one without, the smaller id on a tie (any order of merging
        // agrees). The same value again (carriers of one hop): nothing
        // changes, and its signature still covers it.
        if *self == *other {
            return;
        }
        let (chain, budget) =
            chain_of_merge((self.chain, self.budget), (other.chain, other.budget));
        // A merge is a new value: no signature covers it.
        self.set_tag(None);
        if self.is_empty() {
            let hops = self.hops.max(other.hops);
            *self = *other;
            self.hops = hops;
            self.chain = chain;
            self.budget = budget;
            self.set_tag(None);
            return;
        }
        self.chain = chain;
        self.budget = budget;
        if self.ids[..self.len()] == other.ids[..other.len()] {
            // Same functions (the usual case: carriers of one chain, records
            // of one batch): an element-wise maximum.
            for (mine, theirs) in self.counts.iter_mut().zip(&other.counts[..other.len()]) {
                *mine = (*mine).max(*theirs);
            }
        } else {
            for (id, count) in other.entries() {
                self.set_at_least(id, count);
            }
        }
        self.hops = self.hops.max(other.hops);
    }

    /// The encoded value in a `String` of its own, sized exactly (what a
    /// carrier stores).
    pub fn to_text(&self) -> String {
        // Without a chain budget the calls of one invocation carry its one
        // lineage: the last one encoded on this thread is kept, and a
        // repeat is a copy (a miss encodes, as without it).
        thread_local! {
            static LAST: std::cell::RefCell<Option<(Lineage, EncodedLineage)>> =
                const { std::cell::RefCell::new(None) };
        }
        LAST.try_with(|last| {
            let mut last = last.borrow_mut();
            match &*last {
                Some((lineage, encoded)) if lineage == self => encoded.as_str().to_owned(),
                _ => {
                    let encoded = self.encode();
                    *last = Some((*self, encoded));
                    encoded.as_str().to_owned()
                }
            }
        })
        // The thread is ending: encode without the memo.
        .unwrap_or_else(|_| self.encode().as_str().to_owned())
    }

    /// Encodes into a stack buffer (no heap allocation).
    pub fn encode(&self) -> EncodedLineage {
        let mut out = EncodedLineage {
            buf: [0; MAX_ENCODED_LEN],
            len: 0,
        };
        match self.chain {
            None => {
                out.push_str(VERSION);
                out.push_byte(b'.');
                out.push_decimal(u32::from(self.hops));
            }
            Some(chain) => {
                out.push_str(VERSION_2);
                out.push_byte(b'.');
                out.push_decimal(u32::from(self.hops));
                out.push_byte(b'.');
                out.push_hex((chain.as_u64() >> 32) as u32);
                out.push_hex(chain.as_u64() as u32);
                out.push_byte(b'.');
                match self.budget {
                    Some(budget) => out.push_decimal(budget),
                    None => out.push_byte(b'-'),
                }
            }
        }
        for (id, count) in self.entries() {
            out.push_byte(b'.');
            out.push_hex(id.0);
            out.push_byte(b'-');
            out.push_decimal(u32::from(count));
        }
        if let Some(tag) = self.tag() {
            out.push_str(".s");
            out.push_hex((tag >> 32) as u32);
            out.push_hex(tag as u32);
        }
        out
    }

    /// The part of an encoded value a signature covers (all of it but a
    /// final `.s<16 hex>`), and the signature, if there is one.
    pub fn split_tag(text: &str) -> (&str, Option<u64>) {
        let bytes = text.as_bytes();
        let Some(at) = bytes.len().checked_sub(TAG_LEN) else {
            return (text, None);
        };
        // `.s` then 16 hex digits, all ASCII: `at` is a character boundary.
        if bytes[at] != b'.' || bytes[at + 1] != b's' {
            return (text, None);
        }
        let mut cursor = Cursor {
            bytes: &bytes[at + 2..],
            at: 0,
        };
        match (cursor.hex8(), cursor.hex8()) {
            (Some(high), Some(low)) => (&text[..at], Some(u64::from(high) << 32 | u64::from(low))),
            _ => (text, None),
        }
    }

    /// Decodes the text form in one pass, without allocating.
    pub fn decode(text: &str) -> Result<Self, LineageError> {
        if text.len() > MAX_ENCODED_LEN {
            return Err(LineageError(ErrorKind::TooLong));
        }
        let (text, tag) = Self::split_tag(text);
        let mut lineage = Self::decode_unsigned(text)?;
        lineage.set_tag(tag);
        Ok(lineage)
    }

    fn decode_unsigned(text: &str) -> Result<Self, LineageError> {
        let bytes = text.as_bytes();
        let (v2, rest) = match (bytes.strip_prefix(b"v1."), bytes.strip_prefix(b"v2.")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(LineageError(ErrorKind::UnknownVersion)),
        };
        let mut cursor = Cursor { bytes: rest, at: 0 };
        let hops = cursor.decimal().ok_or(LineageError(ErrorKind::BadHops))?;
        let mut lineage = Lineage::new();
        lineage.hops = hops;
        if v2 {
            if !cursor.eat(b'.') {
                return Err(LineageError(ErrorKind::BadChain));
            }
            let high = cursor.hex8();
            let low = cursor.hex8();
            let chain = high
                .zip(low)
                .and_then(|(high, low)| ChainId::from_u64(u64::from(high) << 32 | u64::from(low)))
                .ok_or(LineageError(ErrorKind::BadChain))?;
            lineage.chain = Some(chain);
            if !cursor.eat(b'.') {
                return Err(LineageError(ErrorKind::BadBudget));
            }
            if !cursor.eat(b'-') {
                lineage.budget = Some(
                    cursor
                        .decimal_u32()
                        .ok_or(LineageError(ErrorKind::BadBudget))?,
                );
            }
            if !cursor.done() && cursor.peek() != Some(b'.') {
                return Err(LineageError(ErrorKind::BadBudget));
            }
        }
        let mut seen = 0usize;
        while !cursor.done() {
            if !cursor.eat(b'.') {
                return Err(LineageError(ErrorKind::BadHops));
            }
            seen += 1;
            if seen > MAX_ENTRIES {
                return Err(LineageError(ErrorKind::TooManyEntries));
            }
            let id = cursor.hex8().ok_or(LineageError(ErrorKind::BadEntry))?;
            if !cursor.eat(b'-') {
                return Err(LineageError(ErrorKind::BadEntry));
            }
            let count = cursor
                .decimal()
                .filter(|&c| c > 0)
                .ok_or(LineageError(ErrorKind::BadEntry))?;
            if !cursor.done() && cursor.peek() != Some(b'.') {
                return Err(LineageError(ErrorKind::BadEntry));
            }
            lineage.set_at_least(FunctionId(id), count);
        }
        Ok(lineage)
    }

    fn position(&self, function: FunctionId) -> Result<usize, usize> {
        self.ids[..self.len()].binary_search(&function)
    }

    fn set_at_least(&mut self, function: FunctionId, count: u16) {
        // Canonical input arrives sorted: append without searching.
        let len = self.len();
        if len < MAX_ENTRIES && (len == 0 || self.ids[len - 1] < function) {
            self.ids[len] = function;
            self.counts[len] = count;
            self.len += 1;
            return;
        }
        match self.position(function) {
            Ok(i) => self.counts[i] = self.counts[i].max(count),
            Err(at) if self.len() < MAX_ENTRIES => self.insert(at, function, count),
            Err(_) => {
                if count > self.counts[self.smallest()] {
                    self.evict_smallest();
                    if let Err(at) = self.position(function) {
                        self.insert(at, function, count);
                    }
                }
            }
        }
    }

    /// Index of the first entry with the smallest count (the lineage is not
    /// empty).
    fn smallest(&self) -> usize {
        (0..self.len())
            .min_by_key(|&i| self.counts[i])
            .unwrap_or_default()
    }

    fn evict_smallest(&mut self) {
        if !self.is_empty() {
            self.remove(self.smallest());
        }
    }

    fn insert(&mut self, at: usize, function: FunctionId, count: u16) {
        let len = self.len();
        self.ids.copy_within(at..len, at + 1);
        self.counts.copy_within(at..len, at + 1);
        self.ids[at] = function;
        self.counts[at] = count;
        self.len += 1;
    }

    fn remove(&mut self, at: usize) {
        let len = self.len();
        self.ids.copy_within(at + 1..len, at);
        self.counts.copy_within(at + 1..len, at);
        // Unused slots stay zero, so that equal lineages compare equal.
        self.ids[len - 1] = FunctionId(0);
        self.counts[len - 1] = 0;
        self.len -= 1;
    }
}

impl fmt::Debug for Lineage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Lineage");
        debug.field("hops", &self.hops);
        if let Some(chain) = self.chain {
            debug.field("chain", &chain).field("budget", &self.budget);
        }
        debug.field("entries", &DebugEntries(self)).finish()
    }
}

struct DebugEntries<'a>(&'a Lineage);

impl fmt::Debug for DebugEntries<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.entries()).finish()
    }
}

impl fmt::Display for Lineage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encode().as_str())
    }
}

impl FromStr for Lineage {
    type Err = LineageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lineage::decode(s)
    }
}

/// A forward-only reader over the bytes of an encoded lineage.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// 1 to 5 decimal digits, at most 65535.
    fn decimal(&mut self) -> Option<u16> {
        self.digits(5).and_then(|value| u16::try_from(value).ok())
    }

    /// 1 to 10 decimal digits, at most 4294967295.
    fn decimal_u32(&mut self) -> Option<u32> {
        self.digits(10).and_then(|value| u32::try_from(value).ok())
    }

    /// 1 to `max` decimal digits.
    fn digits(&mut self, max: usize) -> Option<u64> {
        let mut value: u64 = 0;
        let start = self.at;
        while let Some(b @ b'0'..=b'9') = self.peek() {
            if self.at - start == max {
                return None;
            }
            value = value * 10 + u64::from(b - b'0');
            self.at += 1;
        }
        if self.at == start {
            return None;
        }
        Some(value)
    }

    /// Exactly 8 hex digits, either case.
    fn hex8(&mut self) -> Option<u32> {
        let digits: [u8; 8] = self.bytes.get(self.at..self.at + 8)?.try_into().ok()?;
        let value = hex8_value(u64::from_be_bytes(digits))?;
        self.at += 8;
        Some(value)
    }
}

/// The number 8 hex digits (either case) write, the first in `digits`'s
/// highest byte; `None` unless every byte is one. All eight at once, in
/// one word (a loop costs a dozen instructions a digit).
fn hex8_value(digits: u64) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Each byte in `lo..=hi` (bytes under 0x80: no carry between bytes).
    let within = |v: u64, lo: u8, hi: u8| {
        (v + ONES * u64::from(0x80 - lo)) & !(v + ONES * u64::from(0x7f - hi)) & HIGH
    };
    if digits & HIGH != 0 {
        return None;
    }
    let decimal = within(digits, b'0', b'9');
    // `A`-`F` and `a`-`f` (only they land in `a`-`f` with bit 5 set).
    let letter = within(digits | (ONES * 0x20), b'a', b'f');
    if decimal | letter != HIGH {
        return None;
    }
    // Each byte's nibble: its low four bits, plus 9 for a letter.
    let nibbles = (digits & (ONES * 0x0f)) + (letter >> 7) * 9;
    let pairs = (nibbles | nibbles >> 4) & 0x00ff_00ff_00ff_00ff;
    let quads = (pairs | pairs >> 8) & 0x0000_ffff_0000_ffff;
    u32::try_from((quads | quads >> 16) & 0xffff_ffff).ok()
}

/// A lineage in its text form, held in a stack buffer.
///
/// Dereferences to `str`.
#[derive(Clone, Copy)]
pub struct EncodedLineage {
    buf: [u8; MAX_ENCODED_LEN],
    len: usize,
}

impl EncodedLineage {
    /// The encoded text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever pushed, so this never fails.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }

    fn push_byte(&mut self, b: u8) {
        // The bounds (16 entries of at most 15 bytes + 36 + an 18-byte tag)
        // keep us under 320.
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    fn push_str(&mut self, s: &str) {
        for b in s.bytes() {
            self.push_byte(b);
        }
    }

    fn push_decimal(&mut self, mut n: u32) {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &d in &digits[i..] {
            self.push_byte(d);
        }
    }

    fn push_hex(&mut self, n: u32) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for shift in (0..8).rev() {
            self.push_byte(HEX[((n >> (shift * 4)) & 0xf) as usize]);
        }
    }
}

impl std::ops::Deref for EncodedLineage {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for EncodedLineage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for EncodedLineage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A lineage value that could not be decoded. Readers ignore such values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineageError(ErrorKind);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    TooLong,
    UnknownVersion,
    BadHops,
    BadEntry,
    TooManyEntries,
    BadChain,
    BadBudget,
}

impl fmt::Display for LineageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self.0 {
            ErrorKind::TooLong => "lineage value is longer than 320 bytes",
            ErrorKind::UnknownVersion => {
                "lineage value does not start with a known version (v1, v2)"
            }
            ErrorKind::BadHops => "lineage hop count is not a number from 0 to 65535",
            ErrorKind::BadEntry => "lineage entry is not <8 hex digits>-<count from 1 to 65535>",
            ErrorKind::TooManyEntries => "lineage has more than 16 entries",
            ErrorKind::BadChain => "lineage chain id is not 16 hex digits (and not zero)",
            ErrorKind::BadBudget => "lineage budget is not `-` or a number from 0 to 4294967295",
        })
    }
}

impl std::error::Error for LineageError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar reading [`hex8_value`] replaces, digit by digit.
    fn hex8_scalar(digits: [u8; 8]) -> Option<u32> {
        digits.iter().try_fold(0u32, |value, &b| {
            let nibble = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ => return None,
            };
            Some(value << 4 | u32::from(nibble))
        })
    }

    #[test]
    fn hex8_reads_every_byte_as_the_scalar_reading_does() {
        // Each position holding each of the 256 bytes, among valid digits
        // of both cases.
        for base in [*b"0123abcd", *b"ABCDEF09", *b"ffffffff", *b"00000000"] {
            for at in 0..8 {
                for byte in 0..=255u8 {
                    let mut digits = base;
                    digits[at] = byte;
                    assert_eq!(
                        hex8_value(u64::from_be_bytes(digits)),
                        hex8_scalar(digits),
                        "{digits:?}"
                    );
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn hex8_agrees_with_the_scalar_reading(
            digits in proptest::array::uniform8(proptest::prop_oneof![
                proptest::sample::select(b"0123456789abcdefABCDEF".to_vec()),
                proptest::num::u8::ANY,
            ])
        ) {
            proptest::prop_assert_eq!(hex8_value(u64::from_be_bytes(digits)), hex8_scalar(digits));
        }
    }
    use proptest::prelude::*;

    fn id(n: u32) -> FunctionId {
        FunctionId::from_u32(n)
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Reference values of 32-bit FNV-1a.
        assert_eq!(FunctionId::from_identity("").as_u32(), 0x811c9dc5);
        assert_eq!(FunctionId::from_identity("a").as_u32(), 0xe40c292c);
        assert_eq!(FunctionId::from_identity("foobar").as_u32(), 0xbf9cf968);
    }

    #[test]
    fn record_run_increments_own_count_and_hops() {
        let l = Lineage::new()
            .record_run(id(7))
            .record_run(id(9))
            .record_run(id(7));
        assert_eq!(l.count(id(7)), 2);
        assert_eq!(l.count(id(9)), 1);
        assert_eq!(l.count(id(1)), 0);
        assert_eq!(l.hops(), 3);
        assert_eq!(l.to_string(), "v1.3.00000007-2.00000009-1");
    }

    #[test]
    fn counts_and_hops_saturate() {
        let l: Lineage = "v1.65535.00000001-65535".parse().unwrap();
        let next = l.record_run(id(1));
        assert_eq!(next.count(id(1)), u16::MAX);
        assert_eq!(next.hops(), u16::MAX);
    }

    #[test]
    fn full_lineage_evicts_the_smallest_count() {
        let mut l = Lineage::new();
        for n in 0..MAX_ENTRIES as u32 {
            l = l.record_run(id(n)).record_run(id(n));
        }
        l = l.record_run(id(3)); // id 3 now has 3, everyone else 2
        let ran = l.record_run(id(100)); // the running function is always recorded
        assert_eq!(ran.len(), MAX_ENTRIES);
        assert_eq!(ran.count(id(100)), 1);
        assert_eq!(ran.count(id(0)), 0, "first of the smallest made room");
        assert_eq!(ran.count(id(3)), 3);
        let mut other = Lineage::new();
        other.merge(&"v1.1.00000065-5".parse().unwrap());
        let mut merged = ran;
        merged.merge(&other);
        assert_eq!(merged.len(), MAX_ENTRIES);
        assert_eq!(
            merged.count(id(101)),
            5,
            "a merged count above the smallest gets in"
        );
        assert_eq!(merged.count(id(3)), 3);
        let mut low = Lineage::new();
        low.merge(&"v1.1.00000066-1".parse().unwrap());
        let mut kept = merged;
        kept.merge(&low);
        assert_eq!(
            kept, merged,
            "a merged count at or below the smallest does not"
        );
    }

    #[test]
    fn a_forged_full_lineage_cannot_stop_a_self_loop_from_counting() {
        // Sixteen made-up functions with the largest counts.
        let mut forged = Lineage::new();
        for n in 1000..1000 + MAX_ENTRIES as u32 {
            forged.merge(&format!("v1.1.{:08x}-65535", n).parse().unwrap());
        }
        assert_eq!(forged.len(), MAX_ENTRIES);
        let me = id(7);
        let mut lap = forged;
        for expected in 1..=20u16 {
            lap = lap.record_run(me);
            assert_eq!(lap.count(me), expected, "lap {expected}");
            // Each hop goes out encoded and comes back decoded.
            lap = lap.to_string().parse().unwrap();
        }
    }

    #[test]
    fn merge_takes_maximum_per_function() {
        let mut a: Lineage = "v1.4.0000000a-3.0000000b-1".parse().unwrap();
        let b: Lineage = "v1.9.0000000a-1.0000000b-4.0000000c-2".parse().unwrap();
        a.merge(&b);
        assert_eq!(a.to_string(), "v1.9.0000000a-3.0000000b-4.0000000c-2");
    }

    #[test]
    fn a_merge_keeps_each_chain_with_its_own_budget() {
        let x = |budget| Lineage::new().with_budget(ChainId::from_u64(1).unwrap(), budget);
        let y = |budget| Lineage::new().with_budget(ChainId::from_u64(2).unwrap(), budget);
        let pair = |l: Lineage| (l.chain().map(ChainId::as_u64), l.budget());
        for (a, b) in [(x(1000), y(5)), (y(5), x(1000))] {
            let mut m = a;
            m.merge(&b);
            assert_eq!(
                pair(m),
                (Some(2), Some(5)),
                "the smaller budget, with its chain"
            );
        }
        // An id-only chain does not take another chain's budget.
        let id_only = Lineage::new().in_chain(ChainId::from_u64(1).unwrap());
        for (a, b) in [(id_only, y(20)), (y(20), id_only)] {
            let mut m = a;
            m.merge(&b);
            assert_eq!(pair(m), (Some(2), Some(20)));
        }
        let mut m = x(7);
        m.merge(&y(7));
        assert_eq!(pair(m), (Some(1), Some(7)), "a tie: the smaller id");
    }

    #[test]
    fn decoder_rejects_malformed_values() {
        for bad in [
            "",
            "v1",
            "v2.1",
            "V1.1",
            "v1.",
            "v1.x",
            "v1.-1",
            "v1.65536",
            "v1.1.",
            "v1.1.abc-1",
            "v1.1.0000000g-1",
            "v1.1.00000001-0",
            "v1.1.00000001-",
            "v1.1.00000001-65536",
            "v1.1.00000001",
            "v1.1.000000001-1",
            "v1.+1",
            "v1.1.00000001-+1",
            "v1.1..00000001-1",
        ] {
            assert!(Lineage::decode(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("v1.1{}", ".00000001-1".repeat(30));
        assert!(Lineage::decode(&long).is_err());
        let seventeen: String = (0..17).map(|n| format!(".{n:08x}-1")).collect();
        assert_eq!(
            Lineage::decode(&format!("v1.1{seventeen}"))
                .unwrap_err()
                .to_string(),
            "lineage has more than 16 entries"
        );
    }

    #[test]
    fn decoder_accepts_unsorted_duplicates_and_uppercase_hex() {
        let l: Lineage = "v1.5.0000000B-1.0000000a-2.0000000b-3".parse().unwrap();
        assert_eq!(l.to_string(), "v1.5.0000000a-2.0000000b-3");
    }

    #[test]
    fn largest_value_fits_the_bound() {
        let mut l = Lineage::new();
        for n in 0..MAX_ENTRIES as u32 {
            l.set_at_least(id(u32::MAX - n), u16::MAX);
        }
        l.hops = u16::MAX;
        let encoded = l.encode();
        assert!(encoded.len() <= MAX_ENCODED_LEN, "{}", encoded.len());
        assert_eq!(encoded.parse::<Lineage>().unwrap(), l);
    }

    /// A lineage of these entries, hops, chain and budget, and signature.
    fn lineage_of(
        entries: Vec<(u32, u16)>,
        hops: u16,
        chain: Option<(u64, Option<u32>)>,
        tag: Option<u64>,
    ) -> Lineage {
        let mut l = Lineage::new();
        for (i, c) in entries {
            l.set_at_least(id(i), c);
        }
        l.hops = hops;
        if let Some((chain, budget)) = chain {
            l.chain = ChainId::from_u64(chain);
            l.budget = budget;
        }
        l.set_tag(tag);
        l
    }

    /// Lineages over 24 functions with counts 1 to 3: they share entries,
    /// tie, and fill up; chains 1 and 2 with budgets 0 to 2; some signed.
    fn arb_dense_lineage() -> impl Strategy<Value = Lineage> {
        (
            proptest::collection::vec((0u32..24, 1u16..4), 0..24),
            0u16..4,
            proptest::option::of((1u64..3, proptest::option::of(0u32..3))),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(entries, hops, chain, tag)| lineage_of(entries, hops, chain, tag))
    }

    fn arb_lineage() -> impl Strategy<Value = Lineage> {
        (
            proptest::collection::vec((any::<u32>(), 1u16..), 0..40),
            any::<u16>(),
            // Half of them budgeted chains (`v2`), some without a budget.
            proptest::option::of((1u64.., proptest::option::of(any::<u32>()))),
        )
            .prop_map(|(entries, hops, chain)| lineage_of(entries, hops, chain, None))
    }

    #[test]
    fn a_lineage_stays_small_enough_to_move_inline() {
        assert!(
            std::mem::size_of::<Lineage>() <= 128,
            "{}",
            std::mem::size_of::<Lineage>()
        );
    }

    #[test]
    fn v2_carries_the_chain_and_its_budget() {
        let chain = ChainId::from_u64(0x00c0_ffee_0000_0001).unwrap();
        let start = Lineage::new().with_budget(chain, 20);
        let run = start.record_run(id(0xbb68_7fa2));
        assert_eq!(run.to_string(), "v2.1.00c0ffee00000001.19.bb687fa2-1");
        assert_eq!(run.budget(), Some(19));
        assert_eq!(run.chain(), Some(chain));
        assert_eq!(
            Lineage::decode("v2.1.00c0ffee00000001.-.bb687fa2-1")
                .unwrap()
                .budget(),
            None
        );
        // The budget never goes below zero; a run at zero stays at zero.
        assert_eq!(
            Lineage::new()
                .with_budget(chain, 0)
                .record_run(id(1))
                .budget(),
            Some(0)
        );
        // A v1 value (queues and DLQs hold them) is still read.
        assert_eq!(Lineage::decode("v1.3.bb687fa2-2").unwrap().chain(), None);
        for bad in [
            "v2.1",
            "v2.1.00c0ffee0000001.19",
            "v2.1.0000000000000000.19",
            "v2.1.00c0ffee00000001",
            "v2.1.00c0ffee00000001.",
            "v2.1.00c0ffee00000001.4294967296",
            "v2.1.00c0ffee00000001.1x",
            "v2.1.00c0ffee00000001.12345678901",
            "v3.1",
        ] {
            assert!(Lineage::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn merging_keeps_the_chain_of_the_smaller_budget() {
        let a = Lineage::new().with_budget(ChainId::from_u64(9).unwrap(), 5);
        let b = Lineage::new().with_budget(ChainId::from_u64(4).unwrap(), 8);
        let mut ab = a;
        ab.merge(&b);
        let mut ba = b;
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!((ab.chain(), ab.budget()), (ChainId::from_u64(9), Some(5)));
        let mut with_v1 = a;
        with_v1.merge(&Lineage::new().record_run(id(3)));
        assert_eq!((with_v1.chain(), with_v1.budget()), (a.chain(), Some(5)));
    }

    /// `to_text` keeps the last lineage it encoded on the thread: it must
    /// never answer for another one (a signature, a chain, a budget or one
    /// count apart), in any order.
    #[test]
    fn to_text_always_encodes_its_own_lineage() {
        let base = Lineage::new().record_run(id(1)).record_run(id(2));
        let keys = crate::signing::SigningKeys::new(["0123456789abcdef0123456789abcdef"])
            .unwrap()
            .unwrap();
        let lineages = [
            base,
            base.record_run(id(1)),
            keys.sign(&base),
            base.with_budget(ChainId::from_u64(7).unwrap(), 5),
            base.with_budget(ChainId::from_u64(7).unwrap(), 4),
            Lineage::new(),
        ];
        for (i, j) in (0..lineages.len()).flat_map(|i| (0..lineages.len()).map(move |j| (i, j))) {
            for lineage in [lineages[i], lineages[j], lineages[j]] {
                assert_eq!(lineage.to_text(), lineage.encode().as_str(), "{lineage:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(s in "\\PC{0,300}") {
            let _ = Lineage::decode(&s);
        }

        #[test]
        fn decode_never_panics_on_near_valid_input(s in "v[12]\\.[0-9]{0,6}(\\.[0-9a-fA-F]{15,17})?(\\.(-|[0-9]{0,11}))?(\\.[0-9a-fA-F]{0,9}-[0-9]{0,6}){0,18}") {
            if let Ok(l) = Lineage::decode(&s) {
                prop_assert!(l.len() <= MAX_ENTRIES);
                prop_assert_eq!(l.chain().is_some(), s.starts_with("v2."));
            }
        }

        #[test]
        fn round_trip(l in arb_lineage()) {
            let encoded = l.encode();
            prop_assert!(encoded.len() <= MAX_ENCODED_LEN);
            prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
            prop_assert_eq!(Lineage::decode(&encoded).unwrap(), l);
        }

        #[test]
        fn merge_is_an_upper_bound_of_both(a in arb_lineage(), b in arb_lineage()) {
            let mut m = a;
            m.merge(&b);
            prop_assert!(m.len() <= MAX_ENTRIES);
            prop_assert_eq!(m.hops(), a.hops().max(b.hops()));
            // The budget never grows; the chain comes with its budget, from
            // one of the two; the merge does not depend on the order.
            let min_budget = match (a.budget(), b.budget()) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
            prop_assert_eq!(m.budget(), min_budget);
            prop_assert!(
                (m.chain(), m.budget()) == (a.chain(), a.budget())
                    || (m.chain(), m.budget()) == (b.chain(), b.budget())
            );
            let mut n = b;
            n.merge(&a);
            prop_assert_eq!((n.chain(), n.budget()), (m.chain(), m.budget()));
            for (i, c) in m.entries() {
                prop_assert_eq!(c, a.count(i).max(b.count(i)));
            }
        }

        /// What the guard relies on to skip a repeated record's merge:
        /// merging a lineage again changes nothing, right after its merge
        /// or after others. Dense lineages: shared functions, tied counts,
        /// full lineages and evictions, small chain ids and budgets (zero
        /// included), signatures.
        #[test]
        fn merging_a_lineage_again_changes_nothing(
            seq in proptest::collection::vec(arb_dense_lineage(), 1..8),
        ) {
            let mut merged = Lineage::new();
            for (n, lineage) in seq.iter().enumerate() {
                merged.merge(lineage);
                for earlier in &seq[..=n] {
                    let mut again = merged;
                    again.merge(earlier);
                    prop_assert_eq!(again, merged, "{:?} merged again", earlier);
                }
            }
        }

        #[test]
        fn record_run_always_tracks_the_runner(l in arb_lineage(), f in any::<u32>()) {
            let next = l.record_run(id(f));
            prop_assert_eq!(next.count(id(f)), l.count(id(f)).saturating_add(1));
            prop_assert_eq!(next.hops(), l.hops().saturating_add(1));
            prop_assert!(next.len() <= MAX_ENTRIES);
            // Every other entry keeps its count, or was the one evicted.
            let dropped = l.entries().filter(|&(i, c)| i != id(f) && next.count(i) != c).count();
            prop_assert!(dropped <= 1);
            prop_assert_eq!(Lineage::decode(&next.encode()).unwrap(), next);
        }
    }
}
