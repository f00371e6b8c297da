//! A key in a string-to-string map.

use std::borrow::Cow;
use std::collections::HashMap;

use super::{Carrier, StampError, KEY};
use crate::incoming::Incoming;
use crate::lineage::Lineage;

/// A key in a `HashMap<String, String>`: the Lambda `ClientContext.custom`
/// map, S3 user metadata (as the SDK and `HeadObject` expose it, without the
/// `x-amz-meta-` prefix), or any string map of your own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapKey {
    name: Cow<'static, str>,
}

impl MapKey {
    /// A carrier under `name`.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        MapKey { name: name.into() }
    }

    /// The key.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Default for MapKey {
    /// The key [`KEY`] (`loop-guard`).
    fn default() -> Self {
        MapKey::new(KEY)
    }
}

impl Carrier<HashMap<String, String>> for MapKey {
    fn read<'a>(&self, map: &'a HashMap<String, String>, incoming: &mut Incoming<'a>) {
        if let Some(value) = map.get(self.name()) {
            incoming.read_lineage_value(value, "map key");
        }
    }

    fn write(
        &self,
        map: &mut HashMap<String, String>,
        lineage: &Lineage,
    ) -> Result<(), StampError> {
        map.insert(self.name().to_owned(), lineage.to_text());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incoming::EventSource;
    use crate::lineage::FunctionId;

    #[test]
    fn writes_then_reads_and_ignores_garbage() {
        let lineage = Lineage::new().record_run(FunctionId::from_u32(3));
        let mut map = HashMap::from([("theirs".to_owned(), "kept".to_owned())]);
        MapKey::default().write(&mut map, &lineage).unwrap();
        assert_eq!(map["theirs"], "kept");
        let mut incoming = Incoming::new(EventSource::Invoke);
        MapKey::default().read(&map, &mut incoming);
        assert_eq!(incoming.lineage(), lineage);

        map.insert("loop-guard".into(), "v1.zz".into());
        let mut incoming = Incoming::new(EventSource::Invoke);
        MapKey::default().read(&map, &mut incoming);
        assert!(incoming.lineage().is_empty());
    }
}
