//! A reserved key in a JSON object.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{Carrier, StampError, RESERVED_KEY};
use crate::event::Incoming;
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

impl Default for JsonKey {
    /// The key [`RESERVED_KEY`] (`loop-guard`).
    fn default() -> Self {
        JsonKey::new(RESERVED_KEY)
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
                object.insert(self.name().to_owned(), Value::String(lineage.to_string()));
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
    use crate::event::EventSource;
    use crate::lineage::FunctionId;
    use serde_json::json;

    fn read(value: &Value) -> Lineage {
        let mut incoming = Incoming::new(EventSource::Invoke);
        JsonKey::default().read(value, &mut incoming);
        *incoming.lineage()
    }

    #[test]
    fn objects_carry_the_key_other_values_do_not() {
        let lineage = Lineage::new().record_run(FunctionId::from_u32(3));
        let mut value = json!({"order": 1});
        JsonKey::default().write(&mut value, &lineage).unwrap();
        assert_eq!(value["loop-guard"], lineage.to_string());
        assert_eq!(value["order"], 1);
        assert_eq!(read(&value), lineage);
        assert_eq!(
            JsonKey::default().take(&mut value),
            Some(lineage.to_string())
        );
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

    proptest::proptest! {
        #[test]
        fn reading_any_string_value_never_panics(text in "\\PC{0,300}") {
            let value = json!({"loop-guard": text});
            let _ = read(&value);
        }
    }
}
