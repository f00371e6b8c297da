//! The SQS / SNS message attribute.

use std::borrow::Cow;
use std::collections::HashMap;

use aws_lambda_events::event::sns::MessageAttribute as SnsEventAttribute;
use aws_lambda_events::event::sqs::SqsMessageAttribute;

use super::{Carrier, StampError, KEY};
use crate::incoming::Incoming;
use crate::lineage::Lineage;

/// SQS and SNS accept at most this many message attributes per message.
pub const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// A `String` message attribute: read from `aws_lambda_events` SQS and SNS
/// records, written on `aws-sdk-sqs` / `aws-sdk-sns` requests (features `sqs`,
/// `sns`).
///
/// Writing never pushes a message over the 10-attribute limit
/// ([`StampError::NoRoom`]); the trace header still carries the lineage then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    name: Cow<'static, str>,
}

impl MessageAttribute {
    /// A carrier under `name` (names are `[A-Za-z0-9_.-]`, not starting with
    /// `AWS.` or `Amazon.`).
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        MessageAttribute { name: name.into() }
    }

    /// The attribute name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn check_room<V>(&self, map: &HashMap<String, V>) -> Result<(), StampError> {
        if map.len() < MAX_MESSAGE_ATTRIBUTES || map.contains_key(self.name()) {
            Ok(())
        } else {
            Err(StampError::NoRoom {
                limit: MAX_MESSAGE_ATTRIBUTES,
            })
        }
    }
}

/// What [`MessageAttribute::insert_lineage`] did: the bytes the attribute
/// it inserted counts (name, type and value), and the one it replaced with
/// its bytes.
#[cfg(any(feature = "sqs", feature = "sns"))]
struct Inserted<V> {
    size: usize,
    replaced: Option<(V, usize)>,
}

#[cfg(any(feature = "sqs", feature = "sns"))]
impl MessageAttribute {
    /// Sets this attribute to `lineage` in an SDK request's `map` (one hash
    /// of the name), unless the message has no room for it.
    fn insert_lineage<V: AttributeSize>(
        &self,
        map: &mut HashMap<String, V>,
        lineage: &Lineage,
    ) -> Result<Inserted<V>, StampError> {
        self.check_room(map)?;
        let attribute = V::of_lineage(lineage)?;
        let size = self.name().len() + attribute.size();
        let replaced = map.insert(self.name().to_owned(), attribute).map(|old| {
            let size = self.name().len() + old.size();
            (old, size)
        });
        Ok(Inserted { size, replaced })
    }
}

impl Default for MessageAttribute {
    /// The attribute [`KEY`] (`loop-guard`).
    fn default() -> Self {
        MessageAttribute::new(KEY)
    }
}

/// How a lineage read from an SQS message attribute is named in warnings.
pub(crate) const SQS_ATTRIBUTE_CARRIER: &str = "sqs message attribute";

impl MessageAttribute {
    /// The text value of this attribute of an SQS record, if it has one.
    #[inline]
    pub(crate) fn sqs_value<'a>(
        &self,
        map: &'a HashMap<String, SqsMessageAttribute>,
    ) -> Option<&'a str> {
        sqs_attribute_value(map, self.name())
    }
}

/// The string value of the SQS message attribute `name` in `map`.
#[inline(always)]
pub(crate) fn sqs_attribute_value<'a>(
    map: &'a HashMap<String, SqsMessageAttribute>,
    name: &str,
) -> Option<&'a str> {
    super::small_map_get(map, name).and_then(|a| a.string_value.as_deref())
}

impl Carrier<HashMap<String, SqsMessageAttribute>> for MessageAttribute {
    fn read<'a>(&self, map: &'a HashMap<String, SqsMessageAttribute>, incoming: &mut Incoming<'a>) {
        if let Some(value) = self.sqs_value(map) {
            incoming.read_lineage_value(value, SQS_ATTRIBUTE_CARRIER);
        }
    }

    fn write(
        &self,
        map: &mut HashMap<String, SqsMessageAttribute>,
        lineage: &Lineage,
    ) -> Result<(), StampError> {
        self.check_room(map)?;
        let mut attribute = SqsMessageAttribute::default();
        attribute.data_type = Some("String".into());
        attribute.string_value = Some(lineage.to_text());
        map.insert(self.name().to_owned(), attribute);
        Ok(())
    }
}

impl Carrier<HashMap<String, SnsEventAttribute>> for MessageAttribute {
    fn read<'a>(&self, map: &'a HashMap<String, SnsEventAttribute>, incoming: &mut Incoming<'a>) {
        if let Some(attribute) = super::small_map_get(map, self.name()) {
            incoming.read_lineage_value(&attribute.value, "sns message attribute");
        }
    }

    fn write(
        &self,
        map: &mut HashMap<String, SnsEventAttribute>,
        lineage: &Lineage,
    ) -> Result<(), StampError> {
        self.check_room(map)?;
        let mut attribute = SnsEventAttribute::default();
        attribute.data_type = "String".into();
        attribute.value = lineage.to_text();
        map.insert(self.name().to_owned(), attribute);
        Ok(())
    }
}

/// `aws-sdk-sqs` / `aws-sdk-sns` request attribute maps: the same code over
/// two SDK types that share their shape.
macro_rules! sdk_attribute_carrier {
    ($feature:literal, $value:ty, $label:expr) => {
        #[cfg(feature = $feature)]
        impl Carrier<HashMap<String, $value>> for MessageAttribute {
            fn read<'a>(&self, map: &'a HashMap<String, $value>, incoming: &mut Incoming<'a>) {
                if let Some(value) = map.get(self.name()).and_then(|a| a.string_value()) {
                    incoming.read_lineage_value(value, $label);
                }
            }

            fn write(
                &self,
                map: &mut HashMap<String, $value>,
                lineage: &Lineage,
            ) -> Result<(), StampError> {
                self.insert_lineage(map, lineage).map(drop)
            }
        }
    };
}

sdk_attribute_carrier!(
    "sqs",
    aws_sdk_sqs::types::MessageAttributeValue,
    SQS_ATTRIBUTE_CARRIER
);
sdk_attribute_carrier!(
    "sns",
    aws_sdk_sns::types::MessageAttributeValue,
    "sns message attribute"
);

/// The bytes an SDK message attribute counts toward the message size (its
/// data type and value; the name is counted by the map).
#[cfg(any(feature = "sqs", feature = "sns"))]
pub(crate) trait AttributeSize: Sized {
    /// Bytes of the data type and the value.
    fn size(&self) -> usize;

    /// The `String` attribute whose value is `lineage`.
    fn of_lineage(lineage: &Lineage) -> Result<Self, StampError>;
}

macro_rules! attribute_size {
    ($feature:literal, $value:ty) => {
        #[cfg(feature = $feature)]
        impl AttributeSize for $value {
            fn size(&self) -> usize {
                self.data_type().len()
                    + self.string_value().map_or(0, str::len)
                    + self.binary_value().map_or(0, |b| b.as_ref().len())
            }

            fn of_lineage(lineage: &Lineage) -> Result<Self, StampError> {
                <$value>::builder()
                    .data_type("String")
                    .string_value(lineage.to_text())
                    .build()
                    .map_err(|error| StampError::Invalid {
                        reason: error.to_string(),
                    })
            }
        }
    };
}

attribute_size!("sqs", aws_sdk_sqs::types::MessageAttributeValue);
attribute_size!("sns", aws_sdk_sns::types::MessageAttributeValue);

/// Writes a message attribute on a message whose body is `body`, never
/// taking the message past `max_bytes(size before)` (body plus attribute
/// names, types and values, as SQS and SNS count it): a stamp that does not
/// fit is skipped with a warning and the caller's attributes are left as
/// they were. A full message (10 attributes) is logged once (at `warn`,
/// then at `debug`: a producer that always sends 10 would flood the log),
/// other failures every time.
#[cfg(any(feature = "sqs", feature = "sns"))]
pub(crate) fn stamp_attribute<V: AttributeSize>(
    attributes: &mut HashMap<String, V>,
    body: &str,
    max_bytes: impl Fn(usize) -> usize,
    lineage: &Lineage,
    full_logged: &std::sync::atomic::AtomicBool,
    full_message: &'static str,
) {
    // One pass over the attributes and one hash of the key: the size after
    // is the size before, less the attribute replaced, plus ours.
    let stamp = |attributes: &mut HashMap<String, V>| {
        let before = body.len()
            + attributes
                .iter()
                .map(|(name, value)| name.len() + value.size())
                .sum::<usize>();
        let Inserted {
            size: added,
            replaced,
        } = MessageAttribute::default().insert_lineage(attributes, lineage)?;
        let removed = replaced.as_ref().map_or(0, |(_, size)| *size);
        if before - removed + added > max_bytes(before) {
            match replaced {
                Some((replaced, _)) => attributes.insert(KEY.to_owned(), replaced),
                None => attributes.remove(KEY),
            };
            tracing::warn!(
                bytes = before,
                "the loop guard attribute would take the message over its size limit: \
                 sent in the trace header only"
            );
        }
        Ok(())
    };
    match stamp(attributes) {
        Ok(()) => {}
        Err(StampError::NoRoom { .. }) => {
            if full_logged.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::debug!("{full_message}");
            } else {
                tracing::warn!("{full_message} (logged once)");
            }
        }
        Err(error) => super::log_skipped("message attribute", &error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incoming::EventSource;
    use crate::lineage::FunctionId;

    fn full<V: Default>() -> HashMap<String, V> {
        (0..MAX_MESSAGE_ATTRIBUTES)
            .map(|i| (format!("a{i}"), V::default()))
            .collect()
    }

    #[test]
    fn event_maps_round_trip_and_respect_the_limit() {
        let lineage = Lineage::new().record_run(FunctionId::from_u32(3));
        let carrier = MessageAttribute::default();

        let mut sqs = HashMap::<String, SqsMessageAttribute>::new();
        carrier.write(&mut sqs, &lineage).unwrap();
        let mut incoming = Incoming::new(EventSource::Sqs);
        carrier.read(&sqs, &mut incoming);
        assert_eq!(incoming.lineage(), lineage);

        let mut sns = HashMap::<String, SnsEventAttribute>::new();
        carrier.write(&mut sns, &lineage).unwrap();
        let mut incoming = Incoming::new(EventSource::Sns);
        carrier.read(&sns, &mut incoming);
        assert_eq!(incoming.lineage(), lineage);

        let mut sqs_full = full::<SqsMessageAttribute>();
        assert_eq!(
            carrier.write(&mut sqs_full, &lineage),
            Err(StampError::NoRoom { limit: 10 })
        );
        assert_eq!(sqs_full.len(), 10);
        let mut sns_full = full::<SnsEventAttribute>();
        sns_full.remove("a0");
        sns_full.insert(KEY.into(), SnsEventAttribute::default());
        assert_eq!(
            carrier.write(&mut sns_full, &lineage),
            Ok(()),
            "ours is replaced"
        );
    }

    #[cfg(feature = "sqs")]
    #[test]
    fn sdk_sqs_map_round_trips() {
        let lineage = Lineage::new().record_run(FunctionId::from_u32(3));
        let mut map = HashMap::<String, aws_sdk_sqs::types::MessageAttributeValue>::new();
        MessageAttribute::default()
            .write(&mut map, &lineage)
            .unwrap();
        assert_eq!(map[KEY].data_type(), "String");
        let mut incoming = Incoming::new(EventSource::Sqs);
        MessageAttribute::default().read(&map, &mut incoming);
        assert_eq!(incoming.lineage(), lineage);
    }
}
