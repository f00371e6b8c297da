//! A DynamoDB item attribute.

use std::borrow::Cow;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue as SdkAttributeValue;
use serde_dynamo::{AttributeValue as StreamAttributeValue, Item as StreamItem};

use super::{Carrier, StampError, KEY};
use crate::incoming::Incoming;
use crate::lineage::Lineage;

/// A string attribute of a DynamoDB item: written on `aws-sdk-dynamodb`
/// items (`PutItem`, `BatchWriteItem`, `TransactWriteItems`), read from the
/// `NewImage` of `aws_lambda_events` stream records.
///
/// Stamping changes stored data (one more attribute, ~30 bytes per item), so
/// the interceptor only does it for the tables you name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemAttribute {
    name: Cow<'static, str>,
}

impl ItemAttribute {
    /// A carrier under `name`.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        ItemAttribute { name: name.into() }
    }

    /// The attribute name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Default for ItemAttribute {
    /// The attribute [`KEY`] (`loop-guard`).
    fn default() -> Self {
        ItemAttribute::new(KEY)
    }
}

impl Carrier<StreamItem> for ItemAttribute {
    fn read<'a>(&self, item: &'a StreamItem, incoming: &mut Incoming<'a>) {
        if let Some(StreamAttributeValue::S(value)) = item.get(self.name()) {
            incoming.read_lineage_value(value, "dynamodb item attribute");
        }
    }

    fn write(&self, item: &mut StreamItem, lineage: &Lineage) -> Result<(), StampError> {
        item.insert(
            self.name().to_owned(),
            StreamAttributeValue::S(lineage.to_text()),
        );
        Ok(())
    }
}

impl Carrier<HashMap<String, SdkAttributeValue>> for ItemAttribute {
    fn read<'a>(&self, item: &'a HashMap<String, SdkAttributeValue>, incoming: &mut Incoming<'a>) {
        if let Some(SdkAttributeValue::S(value)) = item.get(self.name()) {
            incoming.read_lineage_value(value, "dynamodb item attribute");
        }
    }

    fn write(
        &self,
        item: &mut HashMap<String, SdkAttributeValue>,
        lineage: &Lineage,
    ) -> Result<(), StampError> {
        item.insert(
            self.name().to_owned(),
            SdkAttributeValue::S(lineage.to_text()),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incoming::EventSource;
    use crate::lineage::FunctionId;

    #[test]
    fn both_item_types_round_trip_and_other_types_are_ignored() {
        let lineage = Lineage::new().record_run(FunctionId::from_u32(3));
        let mut sdk = HashMap::new();
        ItemAttribute::default().write(&mut sdk, &lineage).unwrap();
        let mut incoming = Incoming::new(EventSource::DynamoDb);
        ItemAttribute::default().read(&sdk, &mut incoming);
        assert_eq!(incoming.lineage(), lineage);

        let mut stream = StreamItem::from(HashMap::<String, StreamAttributeValue>::new());
        ItemAttribute::default()
            .write(&mut stream, &lineage)
            .unwrap();
        let mut incoming = Incoming::new(EventSource::DynamoDb);
        ItemAttribute::default().read(&stream, &mut incoming);
        assert_eq!(incoming.lineage(), lineage);

        stream.insert("loop-guard".into(), StreamAttributeValue::N("3".into()));
        let mut incoming = Incoming::new(EventSource::DynamoDb);
        ItemAttribute::default().read(&stream, &mut incoming);
        assert!(incoming.lineage().is_empty());
    }
}
