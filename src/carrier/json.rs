//! A reserved key in a JSON object.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{json_text, Carrier, StampError, KEY};
use crate::incoming::Incoming;
use crate::lineage::Lineage;

/// A reserved key in a JSON object: an async `Invoke` payload, an
/// EventBridge `detail`, or a field of your own messages.
///
/// Writing a payload that is not a JSON object fails with
/// [`StampError::NotAnObject`]; a key that already holds a non-string value
/// is left alone ([`StampError::NameTaken`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonKey {
    name: Cow<'static, str>,
}

impl JsonKey {
    /// A carrier under `name`.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        JsonKey { name: name.into() }
    }

    /// The key.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Removes the key from `value` if it is an object, returning the string
    /// it held (a non-string value is removed too, and ignored).
    pub fn take(&self, value: &mut Value) -> Option<String> {
        match value.as_object_mut()?.remove(self.name())? {
            Value::String(text) => Some(text),
            _ => None,
        }
    }
}

impl JsonKey {
    /// The JSON text a call sends (an async payload, an EventBridge detail,
    /// Kinesis record data, a Step Functions input) with this key set to
    /// `lineage`; `None`, the text sent as it is, when it is not a JSON
    /// object (the trace header still carries the chain), the key holds
    /// something else, or the stamped text would pass `max_bytes` (the
    /// service would refuse the whole call). Refusals other than "not an
    /// object" are logged.
    #[cfg(any(
        feature = "lambda",
        feature = "eventbridge",
        feature = "kinesis",
        feature = "stepfunctions"
    ))]
    pub(crate) fn stamped_payload(
        &self,
        text: &str,
        lineage: &Lineage,
        max_bytes: usize,
        carrier: &'static str,
    ) -> Option<String> {
        match self.write_text(text, lineage) {
            Ok(stamped) if stamped.len() > max_bytes => {
                let reason = format!(
                    "{} bytes stamped, over the {max_bytes} the service accepts",
                    stamped.len()
                );
                super::log_skipped(carrier, &StampError::Invalid { reason });
                None
            }
            Ok(stamped) => Some(stamped),
            Err(StampError::NotAnObject) => {
                tracing::debug!(
                    carrier,
                    "not a JSON object: the trace header carries the chain"
                );
                None
            }
            Err(error) => {
                super::log_skipped(carrier, &error);
                None
            }
        }
    }

    /// The string value of this key in JSON *text* holding an object, as
    /// written (borrowed): `None` when the text is not valid JSON, not an
    /// object, has no such key, or its value is not a string without
    /// escapes (a lineage never needs one). Text that does not contain the
    /// quoted key is not parsed at all.
    pub fn read_text<'a>(&self, text: &'a str) -> Option<&'a str> {
        self.read_text_in(text, None)
    }

    /// [`read_text`](Self::read_text) of the object under key `outer` (an
    /// EventBridge event's `detail`), or of the top-level object.
    pub(crate) fn read_text_in<'a>(&self, text: &'a str, outer: Option<&str>) -> Option<&'a str> {
        let quoted = Value::String(self.name().to_owned()).to_string();
        memchr::memmem::find(text.as_bytes(), quoted.as_bytes())?;
        match outer {
            Some(outer) => json_text::string_at(text, &[outer, self.name()]),
            None => json_text::string_at(text, &[self.name()]),
        }
    }

    /// Writes `lineage` into JSON *text* that holds an object, returning the
    /// new text. Every other byte is kept: the key is spliced in right after
    /// the opening brace, or, when the object already has it (escaped or
    /// not), its string value is replaced in place (duplicates of it are
    /// removed). Nothing is re-serialized, so numbers, key order and escapes
    /// survive. Text that is not an object is refused
    /// ([`StampError::NotAnObject`]): always when it does not start with `{`
    /// and end with `}` (spaces aside), and when it may already hold the
    /// key, unless it is valid JSON; a key holding something other than a
    /// string is left alone ([`StampError::NameTaken`]).
    pub fn write_text(&self, text: &str, lineage: &Lineage) -> Result<String, StampError> {
        let body = text.trim_start();
        if !body.starts_with('{') || !body.trim_end().ends_with('}') {
            return Err(StampError::NotAnObject);
        }
        let quoted = Value::String(self.name().to_owned()).to_string();
        let found = |needle: &[u8]| memchr::memmem::find(text.as_bytes(), needle).is_some();
        // The key as written, or possibly in an escaped spelling.
        let may_hold_key = found(quoted.as_bytes())
            || found(b"\\u")
            || (self.name().contains('/') && found(b"\\/"));
        if !may_hold_key {
            // The common case: no parse, a splice after the brace.
            let open = text.len() - body.len();
            let empty = body[1..].trim_start().starts_with('}');
            return Ok(self.splice_after(text, open, empty, lineage));
        }
        let (open, members) = json_text::object_members(text).ok_or(StampError::NotAnObject)?;
        let ours: Vec<usize> = (0..members.len())
            .filter(|&i| json_text::key_is(text, &members[i], self.name()))
            .collect();
        let Some(&first) = ours.first() else {
            return Ok(self.splice_after(text, open, members.is_empty(), lineage));
        };
        if ours
            .iter()
            .any(|&i| !text[members[i].value.clone()].starts_with('"'))
        {
            // A value of the user's under our name: left alone.
            return Err(StampError::NameTaken {
                name: self.name().to_owned(),
            });
        }
        // The first occurrence becomes ours (spelled as readers look for
        // it: an escaped spelling would hide it from their substring
        // search); then duplicates (garbage) go, in one more pass.
        let mut out = text.to_owned();
        out.replace_range(
            members[first].key.start..members[first].value.end,
            &format!("{quoted}:\"{}\"", lineage.encode().as_str()),
        );
        if ours.len() > 1 {
            let (_, members) = json_text::object_members(&out).ok_or(StampError::NotAnObject)?;
            let duplicates: Vec<usize> = (0..members.len())
                .filter(|&i| json_text::key_is(&out, &members[i], self.name()))
                .skip(1)
                .collect();
            out = json_text::without(&out, &members, &duplicates);
        }
        Ok(out)
    }

    /// `text` with `"name":"lineage"` spliced in after the brace at `open`.
    fn splice_after(&self, text: &str, open: usize, empty: bool, lineage: &Lineage) -> String {
        let encoded = lineage.encode();
        let quoted = Value::String(self.name().to_owned()).to_string();
        let mut out = String::with_capacity(text.len() + quoted.len() + encoded.as_str().len() + 4);
        out.push_str(&text[..=open]);
        out.push_str(&quoted);
        out.push_str(":\"");
        out.push_str(encoded.as_str());
        out.push('"');
        if !empty {
            out.push(',');
        }
        out.push_str(&text[open + 1..]);
        out
    }
}

impl Default for JsonKey {
    /// The key [`KEY`] (`loop-guard`).
    fn default() -> Self {
        JsonKey::new(KEY)
    }
}

impl Carrier<Map<String, Value>> for JsonKey {
    fn read<'a>(&self, object: &'a Map<String, Value>, incoming: &mut Incoming<'a>) {
        if let Some(value) = object.get(self.name()).and_then(Value::as_str) {
            incoming.read_lineage_value(value, "json key");
        }
    }

    fn write(&self, object: &mut Map<String, Value>, lineage: &Lineage) -> Result<(), StampError> {
        match object.get(self.name()) {
            None | Some(Value::String(_)) => {
                object.insert(self.name().to_owned(), Value::String(lineage.to_text()));
                Ok(())
            }
            Some(_) => Err(StampError::NameTaken {
                name: self.name().to_owned(),
            }),
        }
    }
}

impl Carrier<Value> for JsonKey {
    fn read<'a>(&self, value: &'a Value, incoming: &mut Incoming<'a>) {
        if let Some(object) = value.as_object() {
            self.read(object, incoming);
        }
    }

    fn write(&self, value: &mut Value, lineage: &Lineage) -> Result<(), StampError> {
        match value.as_object_mut() {
            Some(object) => self.write(object, lineage),
            None => Err(StampError::NotAnObject),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incoming::EventSource;
    use crate::lineage::FunctionId;
    use serde_json::json;

    fn read(value: &Value) -> Lineage {
        let mut incoming = Incoming::new(EventSource::Invoke);
        JsonKey::default().read(value, &mut incoming);
        incoming.lineage()
    }

    #[test]
    fn objects_carry_the_key_other_values_do_not() {
        let lineage = Lineage::new().record_run(FunctionId::from_u32(3));
        let mut value = json!({"order": 1});
        JsonKey::default().write(&mut value, &lineage).unwrap();
        assert_eq!(value["loop-guard"], lineage.to_text());
        assert_eq!(value["order"], 1);
        assert_eq!(read(&value), lineage);
        assert_eq!(JsonKey::default().take(&mut value), Some(lineage.to_text()));
        assert_eq!(value, json!({"order": 1}));

        for mut other in [json!([1]), json!("x"), json!(null), json!(3)] {
            assert_eq!(
                JsonKey::default().write(&mut other, &lineage),
                Err(StampError::NotAnObject)
            );
            assert!(read(&other).is_empty());
        }
        let mut taken = json!({"loop-guard": {"mine": true}});
        assert_eq!(
            JsonKey::default().write(&mut taken, &lineage),
            Err(StampError::NameTaken {
                name: "loop-guard".into()
            })
        );
        assert_eq!(taken, json!({"loop-guard": {"mine": true}}));
        assert!(read(&taken).is_empty());
    }

    #[test]
    fn text_stamping_splices_or_replaces() {
        let lineage = Lineage::new().record_run(FunctionId::from_u32(3));
        let v = lineage.to_text();
        let key = JsonKey::default();
        assert_eq!(
            key.write_text(r#"{"a":1}"#, &lineage).unwrap(),
            format!(r#"{{"loop-guard":"{v}","a":1}}"#)
        );
        assert_eq!(
            key.write_text(" { } ", &lineage).unwrap(),
            format!(r#" {{"loop-guard":"{v}" }} "#)
        );
        let replaced = key
            .write_text(r#"{"a":1,"loop-guard":"v1.1.00000009-1"}"#, &lineage)
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&replaced).unwrap(),
            json!({"a": 1, "loop-guard": v})
        );
        assert_eq!(
            key.write_text("[1]", &lineage),
            Err(StampError::NotAnObject)
        );
        assert_eq!(key.write_text("", &lineage), Err(StampError::NotAnObject));
        assert_eq!(
            key.write_text(r#"{"loop-guard": 5}"#, &lineage),
            Err(StampError::NameTaken {
                name: "loop-guard".into()
            })
        );
    }

    #[test]
    fn text_stamping_keeps_numbers_order_and_escapes_byte_for_byte() {
        let lineage = Lineage::new().record_run(FunctionId::from_u32(3));
        let v = lineage.to_text();
        let key = JsonKey::default();
        // Replacing: the u128 id, the long decimal, the order and the
        // escapes are kept exactly.
        let text = r#"{"z":1,"id":340282366920938463463374607431768211455,"loop-guard":"old","pi":3.14159265358979323846264338327950288,"s":"caf\u00e9"}"#;
        assert_eq!(
            key.write_text(text, &lineage).unwrap(),
            text.replace("\"old\"", &format!("\"{v}\""))
        );
        // An escaped spelling of the key is the key: replaced (spelled as
        // readers look for it), not duplicated.
        let escaped = r#"{"loop\u002dguard":"old","a":1}"#;
        assert_eq!(
            key.write_text(escaped, &lineage).unwrap(),
            format!(r#"{{"loop-guard":"{v}","a":1}}"#)
        );
        // Mentioned deeper only: spliced at the top, the rest untouched.
        let nested = r#"{"inner":{"loop-guard":"theirs"},"n":1e400}"#;
        assert_eq!(
            key.write_text(nested, &lineage).unwrap(),
            format!(r#"{{"loop-guard":"{v}","inner":{{"loop-guard":"theirs"}},"n":1e400}}"#)
        );
        // A duplicate of the key is removed, the first replaced.
        let twice = r#"{"loop-guard":"a","x":1,"loop-guard":"b"}"#;
        assert_eq!(
            key.write_text(twice, &lineage).unwrap(),
            format!(r#"{{"loop-guard":"{v}","x":1}}"#)
        );
        // A name with `/` also has the spelling `\/`.
        let slash = JsonKey::new("loop/guard");
        assert_eq!(
            slash
                .write_text(r#"{"loop\/guard":"old","a":1}"#, &lineage)
                .unwrap(),
            format!(r#"{{"loop/guard":"{v}","a":1}}"#)
        );
    }

    #[test]
    fn text_that_cannot_be_an_object_is_refused_not_spliced() {
        let lineage = Lineage::new().record_run(FunctionId::from_u32(3));
        let key = JsonKey::default();
        for text in ["{", " {\"a\":1", "{\"a\":[1}]", "{} x"] {
            assert_eq!(
                key.write_text(text, &lineage),
                Err(StampError::NotAnObject),
                "{text}"
            );
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
            Just(Value::from("loop-guard")),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(("[a-z-]{1,10}", inner), 0..4)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn text_stamping_equals_the_value_path(value in arb_json(), pretty in proptest::bool::ANY) {
            let lineage = Lineage::new().record_run(FunctionId::from_u32(3));
            let text = if pretty { serde_json::to_string_pretty(&value).unwrap() } else { value.to_string() };
            let mut expected = value.clone();
            let by_value = JsonKey::default().write(&mut expected, &lineage);
            match JsonKey::default().write_text(&text, &lineage) {
                Ok(out) => {
                    proptest::prop_assert!(by_value.is_ok());
                    proptest::prop_assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), expected);
                }
                Err(error) => proptest::prop_assert_eq!(Err(error), by_value),
            }
        }

        #[test]
        fn text_stamping_never_panics(text in "\\PC{0,80}") {
            let _ = JsonKey::default().write_text(&text, &Lineage::new());
        }

        #[test]
        fn reading_any_string_value_never_panics(text in "\\PC{0,300}") {
            let value = json!({"loop-guard": text});
            let _ = read(&value);
        }
    }
}
