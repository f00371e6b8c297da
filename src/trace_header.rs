//! The `X-Amzn-Trace-Id` header value, read without allocating and written
//! back with only our own field added or replaced.
//!
//! The header is a `;`-separated list of `Key=Value` fields: `Root`,
//! `Parent`, `Sampled`, `Self` (added by load balancers), `Lineage` (Lambda's
//! own recursion detection, undocumented and reformatted by AWS more than
//! once), `CalledFrom`, and any custom field. Field order varies, `Parent` and
//! `Sampled` may be absent, and strict parsers have broken on every change,
//! so this one is tolerant: it borrows from the input, never allocates to
//! read, and on write keeps every field except [`LOOP_GUARD_FIELD`] byte for
//! byte and in order.
//!
//! # Example
//!
//! ```
//! use lambda_loop_guard::trace_header::TraceHeader;
//! use lambda_loop_guard::{FunctionId, Lineage};
//!
//! let raw = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;\
//!            Sampled=1;Lineage=a87bd80c:1|68fd508a:5";
//! let header = TraceHeader::parse(raw)?;
//! assert_eq!(header.root(), Some("1-5759e988-bd862e3fe1be46a994272793"));
//! assert_eq!(header.get("Lineage"), Some("a87bd80c:1|68fd508a:5"));
//! assert!(header.lineage().is_none()); // no LoopGuard field yet
//!
//! let next = Lineage::new().record_run(FunctionId::from_identity("worker"));
//! let written = header.with_lineage(&next);
//! assert_eq!(written, format!("{raw};LoopGuard={next}"));
//! assert_eq!(TraceHeader::parse(&written)?.lineage(), Some(next));
//! # Ok::<(), lambda_loop_guard::trace_header::TraceHeaderError>(())
//! ```

use std::fmt;

use crate::lineage::Lineage;

/// The name of the field this crate adds to the trace header.
pub const LOOP_GUARD_FIELD: &str = "LoopGuard";

/// The HTTP header carrying the X-Ray trace context.
pub const TRACE_ID_HEADER: &str = "x-amzn-trace-id";

/// Header values longer than this are not parsed (and not rewritten).
pub const MAX_TRACE_HEADER_LEN: usize = 8 * 1024;

/// A borrowed, validated-for-size `X-Amzn-Trace-Id` value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceHeader<'a> {
    raw: &'a str,
}

/// One `Key=Value` field of a trace header, both sides trimmed of spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderField<'a> {
    /// The key, e.g. `Root`.
    pub key: &'a str,
    /// The value, possibly empty.
    pub value: &'a str,
}

impl<'a> TraceHeader<'a> {
    /// Wraps a header value. Never allocates. Only the size is checked here:
    /// any content is accepted, and fields that are not `Key=Value` are kept
    /// on write but not reported by [`fields`](Self::fields).
    pub fn parse(raw: &'a str) -> Result<Self, TraceHeaderError> {
        if raw.len() > MAX_TRACE_HEADER_LEN {
            return Err(TraceHeaderError { len: raw.len() });
        }
        Ok(TraceHeader { raw })
    }

    /// The value as received.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// The `Key=Value` fields in order (duplicates included).
    pub fn fields(&self) -> Fields<'a> {
        Fields { rest: self.raw }
    }

    /// The value of the first field named `key` (exact, case-sensitive).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.fields().find(|f| f.key == key).map(|f| f.value)
    }

    /// The trace id (`Root`).
    pub fn root(&self) -> Option<&'a str> {
        self.get("Root")
    }

    /// The parent segment id (`Parent`), often absent.
    pub fn parent(&self) -> Option<&'a str> {
        self.get("Parent")
    }

    /// The sampling decision (`Sampled`: `0`, `1` or `?`), often absent.
    pub fn sampled(&self) -> Option<&'a str> {
        self.get("Sampled")
    }

    /// Every value of our own field, in order (normally zero or one).
    pub fn loop_guard_values(&self) -> impl Iterator<Item = &'a str> {
        self.fields()
            .filter(|f| f.key == LOOP_GUARD_FIELD)
            .map(|f| f.value)
    }

    /// The chain lineage carried in our field: the merge of every valid
    /// value, `None` if there is no valid one. Invalid values are logged at
    /// `debug` level and ignored.
    pub fn lineage(&self) -> Option<Lineage> {
        self.root_and_lineage().1
    }

    /// The `Root` and our lineage in one pass over the fields (what a reader
    /// of an incoming event needs).
    pub fn root_and_lineage(&self) -> (Option<&'a str>, Option<Lineage>) {
        let mut merged: Option<Lineage> = None;
        // One value (the usual case) is returned as decoded, its signature
        // included.
        let root = self.root_and_loop_guard_values(|value| match Lineage::decode(value) {
            Ok(l) => match &mut merged {
                None => merged = Some(l),
                Some(merged) => merged.merge(&l),
            },
            Err(error) => {
                tracing::debug!(%error, value, "ignoring malformed LoopGuard trace field")
            }
        });
        (root, merged)
    }

    /// Calls `on_value` with each value of our field, in order, found with
    /// a SIMD scan for a byte of its name (a header without our
    /// field is passed over in a few instructions per 16 bytes): the same values as
    /// [`loop_guard_values`](Self::loop_guard_values), without visiting the
    /// other fields.
    pub(crate) fn each_loop_guard_value(&self, mut on_value: impl FnMut(&'a str)) {
        self.each_loop_guard_segment(|_, value| on_value(value));
    }

    /// Calls `on_segment` with the byte range of each of our field's
    /// segments, in order, from the start of the segment (after the `;`,
    /// leading spaces included) to its separator, and with the field's
    /// value. Headers are short: a SIMD scan for one byte of the name, then
    /// a prefix test, costs less than setting up a substring search.
    #[inline]
    fn each_loop_guard_segment(&self, mut on_segment: impl FnMut(std::ops::Range<usize>, &'a str)) {
        // The scan looks for the `G` of `LoopGuard`: no other field of an
        // X-Ray header has one (`Lineage`, which Lambda adds, starts with
        // `L` too), so nearly every hit is ours.
        const ANCHOR: usize = 4;
        let raw = self.raw;
        let bytes = raw.as_bytes();
        let field = LOOP_GUARD_FIELD.as_bytes();
        for found in memchr::memchr_iter(field[ANCHOR], bytes) {
            let Some(at) = found.checked_sub(ANCHOR) else {
                continue;
            };
            if !bytes[at..].starts_with(field) {
                continue;
            }
            // Our field starts a segment: only spaces since the last `;`.
            let before = raw[..at].trim_ascii_end();
            if !(before.is_empty() || before.ends_with(';')) {
                continue;
            }
            let end = at + next_separator(&bytes[at..]);
            if let Some(value) = value_of(&raw[at..end], LOOP_GUARD_FIELD) {
                on_segment(before.len()..end, value);
            }
        }
    }

    /// One pass over the fields: calls `on_value` with each value of our
    /// field, in order, and returns the first `Root`. Only these two keys
    /// matter here, so each segment is classified by its first bytes instead
    /// of being searched for `=`.
    pub(crate) fn root_and_loop_guard_values(
        &self,
        mut on_value: impl FnMut(&'a str),
    ) -> Option<&'a str> {
        let mut root = None;
        for segment in segments(self.raw) {
            let segment = segment.trim_ascii_start();
            if let Some(value) = value_of(segment, "Root") {
                root = root.or(Some(value));
            } else if let Some(value) = value_of(segment, LOOP_GUARD_FIELD) {
                on_value(value);
            }
        }
        root
    }

    /// Writes this header with our field set to `lineage` into `out`
    /// (cleared first). Every other byte is kept, in order, separators
    /// included: the first `LoopGuard` field gets the new value in place,
    /// later ones are removed (each with one separator), and without one
    /// the field is appended (after a `;`, unless the header is empty or
    /// already ends with one).
    pub fn write_with_lineage(&self, lineage: &Lineage, out: &mut String) {
        let encoded = lineage.encode();
        let raw = self.raw;
        out.clear();
        // Room for the longest result: a header that ends without a
        // separator, plus `;LoopGuard=<value>` (one allocation, and a
        // string that becomes a header value without a copy to shrink it).
        out.reserve_exact(raw.len() + 1 + LOOP_GUARD_FIELD.len() + 1 + encoded.as_str().len());
        // The bytes up to `copied` are written (or dropped) already.
        let mut copied = 0;
        let mut replaced = false;
        self.each_loop_guard_segment(|segment, _| {
            if replaced {
                // A later field of ours goes, with the `;` before it.
                out.push_str(&raw[copied..segment.start - 1]);
            } else {
                // The key as written (`LoopGuard`, maybe with spaces), then ours.
                let key_end = raw[segment.clone()]
                    .find('=')
                    .map_or(segment.end, |i| segment.start + i + 1);
                out.push_str(&raw[copied..key_end]);
                out.push_str(encoded.as_str());
                replaced = true;
            }
            copied = segment.end;
        });
        out.push_str(&raw[copied..]);
        if !replaced {
            if !out.is_empty() && !out.ends_with(';') {
                out.push(';');
            }
            out.push_str(LOOP_GUARD_FIELD);
            out.push('=');
            out.push_str(encoded.as_str());
        }
    }

    /// This header without our field: every `LoopGuard` field is removed
    /// with one separator, every other byte is kept (what a redrive sends
    /// on, so that the message starts a fresh chain).
    pub fn without_loop_guard(&self) -> String {
        let mut out = String::with_capacity(self.raw.len());
        let mut first = true;
        for segment in segments(self.raw).filter(|s| !is_loop_guard_segment(s)) {
            if !first {
                out.push(';');
            }
            out.push_str(segment);
            first = false;
        }
        out
    }

    /// This header with our field set to `lineage`. See
    /// [`write_with_lineage`](Self::write_with_lineage).
    pub fn with_lineage(&self, lineage: &Lineage) -> String {
        let mut out = String::new();
        self.write_with_lineage(lineage, &mut out);
        out
    }
}

/// The trimmed value of `segment` (already trimmed at the start) if its key
/// is `key`.
fn value_of<'a>(segment: &'a str, key: &str) -> Option<&'a str> {
    let rest = segment.strip_prefix(key)?.trim_ascii_start();
    Some(rest.strip_prefix('=')?.trim_ascii())
}

fn is_loop_guard_segment(segment: &str) -> bool {
    // A prefix test, not a search for `=`: this runs on every segment of
    // every stamped header.
    value_of(segment.trim_ascii_start(), LOOP_GUARD_FIELD).is_some()
}

impl fmt::Debug for TraceHeader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TraceHeader").field(&self.raw).finish()
    }
}

impl fmt::Display for TraceHeader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.raw)
    }
}

/// Iterator over the `Key=Value` fields of a [`TraceHeader`].
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Fields<'a> {
    type Item = HeaderField<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.rest.is_empty() {
            let end = next_separator(self.rest.as_bytes());
            // `;` and `=` are ASCII, so these are character boundaries.
            let segment = &self.rest[..end];
            self.rest = self.rest.get(end + 1..).unwrap_or_default();
            if let Some(eq) = segment.bytes().position(|b| b == b'=') {
                let key = segment[..eq].trim_ascii();
                if !key.is_empty() {
                    return Some(HeaderField {
                        key,
                        value: segment[eq + 1..].trim_ascii(),
                    });
                }
            }
        }
        None
    }
}

/// The `;`-separated segments of `raw`, as `str::split(';')` would give them.
fn segments(raw: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(raw);
    std::iter::from_fn(move || {
        let current = rest?;
        let end = next_separator(current.as_bytes());
        rest = current.get(end + 1..);
        Some(&current[..end])
    })
}

/// Index of the first `;` in `bytes`, or its length. Scans 8 bytes at a
/// time (SWAR): headers are short, so this beats a per-call `memchr` setup.
fn next_separator(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const SEMICOLONS: u64 = ONES * b';' as u64;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ SEMICOLONS;
        // The lowest flagged byte is always a real `;` (borrows only move up).
        let found = x.wrapping_sub(ONES) & !x & HIGH;
        if found != 0 {
            return offset + (found.trailing_zeros() / 8) as usize;
        }
        offset += 8;
    }
    match chunks.remainder().iter().position(|&b| b == b';') {
        Some(i) => offset + i,
        None => bytes.len(),
    }
}

/// A trace header value over [`MAX_TRACE_HEADER_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeaderError {
    len: usize,
}

impl fmt::Display for TraceHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "trace header is {} bytes, over the {MAX_TRACE_HEADER_LEN}-byte limit",
            self.len
        )
    }
}

impl std::error::Error for TraceHeaderError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::FunctionId;
    use proptest::prelude::*;

    fn lineage() -> Lineage {
        Lineage::new().record_run(FunctionId::from_u32(0xabcdef01))
    }

    /// Headers whose segments are, or nearly are, our field (spaces around
    /// `=`, prefixes, fields that only start like ours, empty segments).
    fn headers_near_our_field() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            proptest::prop_oneof![
                "[ ]{0,2}LoopGuard[ ]{0,2}=[ ]{0,2}[a-z0-9.-]{0,12}",
                "[A-Za-z]{0,10}=[a-zA-Z0-9 =-]{0,12}",
                "x?LoopGuard[=a-z]{0,6}",
                "[ ;=]{0,3}",
            ],
            0..8,
        )
        .prop_map(|parts| parts.join(";"))
    }

    /// The stamping rule written as a walk over every segment: the
    /// reference the scan in `write_with_lineage` must match.
    fn stamped_by_field_walk(raw: &str, lineage: &Lineage) -> String {
        let encoded = lineage.to_string();
        let mut out = String::new();
        let mut replaced = false;
        let mut first = true;
        for segment in segments(raw) {
            if is_loop_guard_segment(segment) {
                if replaced {
                    continue;
                }
                replaced = true;
                if !first {
                    out.push(';');
                }
                let key_end = segment.find('=').map_or(segment.len(), |i| i + 1);
                out.push_str(&segment[..key_end]);
                out.push_str(&encoded);
            } else {
                if !first {
                    out.push(';');
                }
                out.push_str(segment);
            }
            first = false;
        }
        if !replaced {
            if !out.is_empty() && !out.ends_with(';') {
                out.push(';');
            }
            out.push_str(LOOP_GUARD_FIELD);
            out.push('=');
            out.push_str(&encoded);
        }
        out
    }

    /// (input, root, parent, sampled, Lambda's Lineage, expected output after stamping)
    type Case = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
    );
    const CASES: &[Case] = &[
        (
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5",
            Some("1-5759e988-bd862e3fe1be46a994272793"),
            Some("53995c3f42cd8ad8"),
            Some("1"),
            Some("a87bd80c:1|68fd508a:5"),
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5;LoopGuard=v1.1.abcdef01-1",
        ),
        (
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0;Lineage=1:fe460cdd:0",
            Some("1-5759e988-bd862e3fe1be46a994272793"),
            Some("53995c3f42cd8ad8"),
            Some("0"),
            Some("1:fe460cdd:0"),
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0;Lineage=1:fe460cdd:0;LoopGuard=v1.1.abcdef01-1",
        ),
        (
            "Self=1-67891233-12456789abcdef012345678;Root=1-67891233-abcdef012345678912345678;CalledFrom=app",
            Some("1-67891233-abcdef012345678912345678"),
            None,
            None,
            None,
            "Self=1-67891233-12456789abcdef012345678;Root=1-67891233-abcdef012345678912345678;CalledFrom=app;LoopGuard=v1.1.abcdef01-1",
        ),
        (
            "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=1:fe460cdd:3",
            Some("1-5759e988-bd862e3fe1be46a994272793"),
            None,
            None,
            Some("1:fe460cdd:3"),
            "Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=1:fe460cdd:3;LoopGuard=v1.1.abcdef01-1",
        ),
        (
            " Sampled=? ; Root=1-a-b ;;Parent=p; ",
            Some("1-a-b"),
            Some("p"),
            Some("?"),
            None,
            // Every byte kept, the trailing separator and space too.
            " Sampled=? ; Root=1-a-b ;;Parent=p; ;LoopGuard=v1.1.abcdef01-1",
        ),
        (
            "Root=1-a-b;LoopGuard=v1.5.00000001-5;Sampled=1;LoopGuard=garbage",
            Some("1-a-b"),
            None,
            Some("1"),
            None,
            // Replaced in place; the duplicate goes with its separator.
            "Root=1-a-b;LoopGuard=v1.1.abcdef01-1;Sampled=1",
        ),
        (
            "Root=1-58ed6027-2d8c1f4bb4e1a2c3d4e5f6a7;",
            Some("1-58ed6027-2d8c1f4bb4e1a2c3d4e5f6a7"),
            None,
            None,
            None,
            "Root=1-58ed6027-2d8c1f4bb4e1a2c3d4e5f6a7;LoopGuard=v1.1.abcdef01-1",
        ),
        (
            "Root=1-a-b;Sampled=1;;;",
            Some("1-a-b"),
            None,
            Some("1"),
            None,
            "Root=1-a-b;Sampled=1;;;LoopGuard=v1.1.abcdef01-1",
        ),
        (
            "Root=first;Root=second;Foo=bar=baz;novalue;=x",
            Some("first"),
            None,
            None,
            None,
            "Root=first;Root=second;Foo=bar=baz;novalue;=x;LoopGuard=v1.1.abcdef01-1",
        ),
        ("", None, None, None, None, "LoopGuard=v1.1.abcdef01-1"),
        (";;;", None, None, None, None, ";;;LoopGuard=v1.1.abcdef01-1"),
        ("garbage \u{1F980} \u{e9}", None, None, None, None, "garbage \u{1F980} \u{e9};LoopGuard=v1.1.abcdef01-1"),
        (
            "Root=1-a-b;Custom=\u{e9}t\u{e9}",
            Some("1-a-b"),
            None,
            None,
            None,
            "Root=1-a-b;Custom=\u{e9}t\u{e9};LoopGuard=v1.1.abcdef01-1",
        ),
    ];

    #[test]
    fn table_of_real_world_shapes() {
        for &(input, root, parent, sampled, lambda_lineage, written) in CASES {
            let h = TraceHeader::parse(input).unwrap();
            assert_eq!(h.root(), root, "{input:?}");
            assert_eq!(h.parent(), parent, "{input:?}");
            assert_eq!(h.sampled(), sampled, "{input:?}");
            assert_eq!(h.get("Lineage"), lambda_lineage, "{input:?}");
            assert_eq!(h.with_lineage(&lineage()), written, "{input:?}");
            // Stamping twice replaces, never duplicates.
            let again = TraceHeader::parse(written)
                .unwrap()
                .with_lineage(&lineage());
            assert_eq!(again, written, "{input:?}");
        }
    }

    #[test]
    fn reads_our_field_merging_duplicates_and_ignoring_garbage() {
        let h = TraceHeader::parse(
            "Root=1-a-b;LoopGuard=v1.3.00000001-2;LoopGuard=nope;LoopGuard= v1.2.00000001-1.00000002-1 ",
        )
        .unwrap();
        let l = h.lineage().unwrap();
        assert_eq!(l.count(FunctionId::from_u32(1)), 2);
        assert_eq!(l.count(FunctionId::from_u32(2)), 1);
        assert_eq!(l.hops(), 3);
        assert_eq!(h.loop_guard_values().count(), 3);
        assert!(TraceHeader::parse("LoopGuard=v9.1")
            .unwrap()
            .lineage()
            .is_none());
    }

    #[test]
    fn oversized_values_are_refused() {
        let big = format!("Root=1-a-b;Custom={}", "x".repeat(10 * 1024));
        let err = TraceHeader::parse(&big).unwrap_err();
        assert!(err.to_string().contains("8192"), "{err}");
        let at_limit = "x".repeat(MAX_TRACE_HEADER_LEN);
        assert!(TraceHeader::parse(&at_limit).is_ok());
    }

    proptest! {
        #[test]
        fn segments_match_str_split(s in "[;a=é ]{0,40}") {
            let ours: Vec<&str> = segments(&s).collect();
            let std: Vec<&str> = s.split(';').collect();
            prop_assert_eq!(ours, std);
        }

        #[test]
        fn never_panics_and_preserves_other_fields(s in "\\PC{0,400}") {
            if let Ok(h) = TraceHeader::parse(&s) {
                let _ = h.lineage();
                let written = h.with_lineage(&lineage());
                let reparsed = TraceHeader::parse(&written).unwrap();
                prop_assert_eq!(reparsed.lineage(), Some(lineage()));
                let before: Vec<_> = h.fields().filter(|f| f.key != LOOP_GUARD_FIELD).collect();
                let after: Vec<_> = reparsed.fields().filter(|f| f.key != LOOP_GUARD_FIELD).collect();
                prop_assert_eq!(before, after);
            }
        }

        #[test]
        fn a_header_without_our_field_keeps_every_byte(s in "[;=a-zA-Z0-9 .:|-]{0,200}") {
            prop_assume!(!s.contains(LOOP_GUARD_FIELD));
            let written = TraceHeader::parse(&s).unwrap().with_lineage(&lineage());
            let separator = if s.is_empty() || s.ends_with(';') { "" } else { ";" };
            prop_assert_eq!(written, format!("{s}{separator}LoopGuard={}", lineage()));
        }

        #[test]
        fn the_fast_search_finds_exactly_the_fields_values(
            raw in headers_near_our_field()
        ) {
            let h = TraceHeader::parse(&raw).unwrap();
            let mut fast = Vec::new();
            h.each_loop_guard_value(|v| fast.push(v));
            let by_fields: Vec<&str> = h.loop_guard_values().collect();
            prop_assert_eq!(fast, by_fields, "{:?}", raw);
        }

        #[test]
        fn stamping_by_scan_writes_what_the_field_walk_writes(
            raw in headers_near_our_field()
        ) {
            let mut fast = String::new();
            TraceHeader::parse(&raw).unwrap().write_with_lineage(&lineage(), &mut fast);
            prop_assert_eq!(fast, stamped_by_field_walk(&raw, &lineage()), "{:?}", raw);
        }

        #[test]
        fn removing_our_field_gives_back_every_other_byte(s in "[;=a-zA-Z0-9 .:|-]{0,200}") {
            prop_assume!(!s.contains(LOOP_GUARD_FIELD) && !s.ends_with(';'));
            let stamped = TraceHeader::parse(&s).unwrap().with_lineage(&lineage());
            let removed = TraceHeader::parse(&stamped).unwrap().without_loop_guard();
            prop_assert_eq!(&removed, &s);
            let in_the_middle = format!("{s};LoopGuard=v1.1.00000001-1;Sampled=1");
            let removed = TraceHeader::parse(&in_the_middle).unwrap().without_loop_guard();
            prop_assert_eq!(removed, format!("{s};Sampled=1"));
        }

        #[test]
        fn our_field_is_replaced_in_place(
            before in "[a-zA-Z0-9=;]{0,40}", after in "[a-zA-Z0-9=;]{0,40}", old in "[a-z0-9.-]{0,20}"
        ) {
            let raw = format!("{before};LoopGuard={old};{after}");
            prop_assume!(!before.contains(LOOP_GUARD_FIELD) && !after.contains(LOOP_GUARD_FIELD));
            let written = TraceHeader::parse(&raw).unwrap().with_lineage(&lineage());
            prop_assert_eq!(written, format!("{before};LoopGuard={};{after}", lineage()));
        }

        #[test]
        fn structured_headers_keep_every_field_in_order(
            fields in proptest::collection::vec(("[A-Za-z]{1,10}", "[ -:<-~]{0,20}"), 0..12)
        ) {
            let raw = fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";");
            let h = TraceHeader::parse(&raw).unwrap();
            let written = h.with_lineage(&lineage());
            let kept: Vec<_> = fields.iter()
                .filter(|(k, _)| k != LOOP_GUARD_FIELD)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let expected_prefix = kept.join(";");
            prop_assert!(written.starts_with(&expected_prefix));
            let suffix = format!("LoopGuard={}", lineage());
            prop_assert!(written.ends_with(&suffix));
            prop_assert_eq!(written.matches("LoopGuard=").count(), 1);
        }
    }
}
