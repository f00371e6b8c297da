//! The members of a JSON object, found in its text: how the payload carriers
//! add, replace or remove their key without re-serializing anything else
//! (numbers, key order, escapes and spacing survive byte for byte).

use std::ops::Range;

/// One `"key": value` member: byte ranges of the key (quotes included) and
/// of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) key: Range<usize>,
    pub(crate) value: Range<usize>,
}

/// The top-level object of `text`: the index of its `{` and its members in
/// order; `None` unless `text` is valid JSON holding an object.
pub(crate) fn object_members(text: &str) -> Option<(usize, Vec<Member>)> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    members_at(text.as_bytes(), skip_ws(text.as_bytes(), 0))
}

/// The members of the object that starts at `open` in valid JSON `bytes`.
pub(crate) fn members_at(bytes: &[u8], open: usize) -> Option<(usize, Vec<Member>)> {
    if bytes.get(open) != Some(&b'{') {
        return None;
    }
    let mut members = Vec::new();
    let mut at = skip_ws(bytes, open + 1);
    if bytes.get(at) == Some(&b'}') {
        return Some((open, members));
    }
    loop {
        let key = at..string_end(bytes, at);
        let colon = skip_ws(bytes, key.end);
        let start = skip_ws(bytes, colon + 1);
        let value = start..value_end(bytes, start);
        members.push(Member { key, value });
        at = skip_ws(bytes, members.last()?.value.end);
        match bytes.get(at)? {
            b',' => at = skip_ws(bytes, at + 1),
            _ => return Some((open, members)),
        }
    }
}

/// Whether the member's key, unescaped, is `name`.
pub(crate) fn key_is(text: &str, member: &Member, name: &str) -> bool {
    let raw = &text[member.key.clone()];
    if raw.contains('\\') {
        serde_json::from_str::<String>(raw).is_ok_and(|key| key == name)
    } else {
        raw.len() == name.len() + 2 && &raw[1..raw.len() - 1] == name
    }
}

/// The member's value as a string, if it is one.
pub(crate) fn string_value(text: &str, member: &Member) -> Option<String> {
    let raw = &text[member.value.clone()];
    raw.starts_with('"')
        .then(|| serde_json::from_str::<String>(raw).ok())
        .flatten()
}

/// The string at `path` (keys of nested objects, outermost first) in JSON
/// `text`, as written (borrowed): `None` when the text is not valid JSON,
/// a key on the path is missing or not an object, or the value is not a
/// string without escapes (a lineage never needs one). A repeated key
/// counts at its first place.
pub(crate) fn string_at<'a>(text: &'a str, path: &[&str]) -> Option<&'a str> {
    let (_, mut members) = object_members(text)?;
    let (last, objects) = path.split_last()?;
    for name in objects {
        let member = members.iter().find(|m| key_is(text, m, name))?;
        members = members_at(text.as_bytes(), member.value.start)?.1;
    }
    let member = members.iter().find(|m| key_is(text, m, last))?;
    let value = text[member.value.clone()]
        .strip_prefix('"')?
        .strip_suffix('"')?;
    (!value.contains('\\')).then_some(value)
}

/// The range to cut to remove `members[index]` of `text` and one
/// separator: the member and the comma after it, or, when it is last, the
/// comma before it. Spacing goes with the member when it is spaced like its
/// neighbours (space before it), and stays when the member was spliced in
/// without any (as the carriers write it), so stamping then removing gives
/// back every byte.
pub(crate) fn removal(text: &str, members: &[Member], index: usize) -> Range<usize> {
    let member = &members[index];
    match (members.get(index + 1), index.checked_sub(1)) {
        (Some(next), _) => {
            let spaced = text[..member.key.start].ends_with(|c: char| c.is_ascii_whitespace());
            let between = &text[member.value.end..next.key.start];
            match between.find(',') {
                Some(at) if !spaced => member.key.start..member.value.end + at + 1,
                _ => member.key.start..next.key.start,
            }
        }
        (None, Some(previous)) => members[previous].value.end..member.value.end,
        (None, None) => member.key.start..member.value.end,
    }
}

/// `text` without the members at `remove` (indices into `members`, in
/// order), in one pass: one removal keeps every other byte; several (a key
/// repeated, garbage) rebuild the object's members with `,` between them.
pub(crate) fn without(text: &str, members: &[Member], remove: &[usize]) -> String {
    match remove {
        [] => text.to_owned(),
        [one] => {
            let cut = removal(text, members, *one);
            format!("{}{}", &text[..cut.start], &text[cut.end..])
        }
        _ => {
            let (Some(first), Some(last)) = (members.first(), members.last()) else {
                return text.to_owned();
            };
            let mut removed = crate::sorted_indices::sorted_membership(remove.iter().copied());
            let kept: Vec<&str> = (0..members.len())
                .filter(|&i| !removed(i))
                .map(|i| &text[members[i].key.start..members[i].value.end])
                .collect();
            format!(
                "{}{}{}",
                &text[..first.key.start],
                kept.join(","),
                &text[last.value.end..]
            )
        }
    }
}

fn skip_ws(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The end (after the closing quote) of the string starting at `at`.
fn string_end(bytes: &[u8], at: usize) -> usize {
    let mut i = at + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The end of the value starting at `at` (valid JSON).
fn value_end(bytes: &[u8], at: usize) -> usize {
    match bytes.get(at) {
        Some(b'"') => string_end(bytes, at),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = at;
            while let Some(&b) = bytes.get(i) {
                match b {
                    b'"' => {
                        i = string_end(bytes, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            bytes.len()
        }
        _ => {
            let mut i = at;
            while bytes
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                i += 1;
            }
            i
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_found_with_their_exact_text() {
        let text = r#" { "a" : 1 , "l\u002dg":{"x":[1,"]"]}, "n": 340282366920938463463374607431768211455 } "#;
        let (open, members) = object_members(text).unwrap();
        assert_eq!(open, 1);
        let spans: Vec<(&str, &str)> = members
            .iter()
            .map(|m| (&text[m.key.clone()], &text[m.value.clone()]))
            .collect();
        assert_eq!(
            spans,
            [
                (r#""a""#, "1"),
                (r#""l\u002dg""#, r#"{"x":[1,"]"]}"#),
                (r#""n""#, "340282366920938463463374607431768211455"),
            ]
        );
        assert!(key_is(text, &members[1], "l-g"));
        assert!(object_members("[1]").is_none());
        assert!(object_members("{").is_none());
        assert_eq!(object_members("{}").unwrap().1, []);
    }

    #[test]
    fn removing_a_member_keeps_valid_json() {
        for (text, index, want) in [
            (r#"{"a":1,"b":2,"c":3}"#, 0, r#"{"b":2,"c":3}"#),
            (r#"{"a":1,"b":2,"c":3}"#, 1, r#"{"a":1,"c":3}"#),
            (r#"{"a":1,"b":2,"c":3}"#, 2, r#"{"a":1,"b":2}"#),
            (r#"{ "a" : 1 }"#, 0, r#"{  }"#),
            // Spaced like its neighbours: its spacing goes with it.
            ("{\n  \"a\": 1,\n  \"b\": 2\n}", 0, "{\n  \"b\": 2\n}"),
            (r#"{ "x": 0, "a": 1, "b": 2 }"#, 1, r#"{ "x": 0, "b": 2 }"#),
            // Spliced in without spacing: the text's own spacing stays.
            (r#"{"a":1, "b":2}"#, 0, r#"{ "b":2}"#),
            ("{\"a\":1,\n  \"b\":2}", 0, "{\n  \"b\":2}"),
        ] {
            let (_, members) = object_members(text).unwrap();
            let cut = removal(text, &members, index);
            let out = format!("{}{}", &text[..cut.start], &text[cut.end..]);
            assert_eq!(out, want);
        }
    }
}
