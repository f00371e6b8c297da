//! `serde_json::Value` payloads: SQS, SNS and DynamoDB stream event shapes
//! are recognised by their `eventSource` / `EventSource`, EventBridge events
//! by `detail-type` and `detail`; anything else is a direct invocation.

use lambda_runtime::Context;
use serde_json::Value;

use super::sqs::queue_batch;
use crate::carrier::{Carrier, JsonKey, TraceField, AWS_TRACE_HEADER_ATTRIBUTE, KEY};
use crate::config::LoopGuardConfig;
use crate::incoming::{EventSource, Incoming, Units};
use crate::source::record::NOT_A_RECORD;
use crate::source::{retain_by_index, Batch, GuardedEvent, GuardedRecord};

/// The item attribute name a DynamoDB stream record is read from.
fn dynamodb_attribute(config: &LoopGuardConfig) -> &str {
    #[cfg(feature = "dynamodb")]
    return config.dynamodb_attribute().name();
    #[cfg(not(feature = "dynamodb"))]
    {
        let _ = config;
        KEY
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Sqs,
    Sns,
    DynamoDb,
    EventBridge,
    Other,
}

fn records(value: &Value) -> Option<&Vec<Value>> {
    value.get("Records")?.as_array()
}

fn shape(value: &Value) -> Shape {
    let Some(first) = records(value).and_then(|r| r.first()) else {
        if value.get("detail-type").is_some() && value.get("detail").is_some() {
            return Shape::EventBridge;
        }
        return Shape::Other;
    };
    record_shape(first)
}

/// Whether a stream record's old and new images differ in the stamp only
/// (the rule of the typed DynamoDB source, on JSON images).
fn only_the_stamp_changed(record: &Value, stamp: &str) -> bool {
    let image = |name: &str| record.get("dynamodb")?.get(name)?.as_object();
    let (Some(old), Some(new)) = (image("OldImage"), image("NewImage")) else {
        return false;
    };
    let others =
        |item: &serde_json::Map<String, Value>| item.keys().filter(|k| *k != stamp).count();
    old.get(stamp) != new.get(stamp)
        && others(old) == others(new)
        && new
            .iter()
            .filter(|(k, _)| *k != stamp)
            .all(|(k, v)| old.get(k) == Some(v))
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(*key))
        .and_then(Value::as_str)
}

/// The source of one record, by its `eventSource` (`EventSource` for SNS).
fn record_shape(record: &Value) -> Shape {
    match (
        record.get("eventSource").and_then(Value::as_str),
        record.get("EventSource").and_then(Value::as_str),
    ) {
        (Some("aws:sqs"), _) => Shape::Sqs,
        (_, Some("aws:sns")) => Shape::Sns,
        (Some("aws:dynamodb"), _) => Shape::DynamoDb,
        _ => Shape::Other,
    }
}

/// One SQS, SNS or DynamoDB stream record read on its own; `None` for
/// any other shape.
fn read_record<'a>(r: &'a Value, shape: Shape, config: &LoopGuardConfig) -> Option<Incoming<'a>> {
    let incoming = match shape {
        Shape::Sqs => {
            let mut incoming = Incoming::new(EventSource::Sqs);
            incoming.set_item_id(str_at(r, &["messageId"]));
            incoming.set_source_arn(str_at(r, &["eventSourceARN"]));
            if let Some(h) = str_at(r, &["attributes", AWS_TRACE_HEADER_ATTRIBUTE]) {
                TraceField.read_header(h, &mut incoming);
            }
            if let Some(v) = str_at(r, &["messageAttributes", KEY, "stringValue"]) {
                incoming.read_lineage_value(v, crate::carrier::SQS_ATTRIBUTE_CARRIER);
            }
            // Only a message without our attribute may be an envelope of
            // ours (as for typed events).
            if let Some(body) = str_at(r, &["body"]) {
                crate::source::nested::read_sqs_body(body, config, &mut incoming, || {
                    r.get("messageAttributes")
                        .and_then(|attributes| attributes.get(KEY))
                        .is_some()
                });
            }
            incoming
        }
        Shape::Sns => {
            let mut incoming = Incoming::new(EventSource::Sns);
            incoming.set_item_id(str_at(r, &["Sns", "MessageId"]));
            incoming.set_source_arn(str_at(r, &["Sns", "TopicArn"]));
            if let Some(v) = str_at(r, &["Sns", "MessageAttributes", KEY, "Value"]) {
                incoming.read_lineage_value(v, "sns message attribute");
            }
            // An EventBridge rule's SNS target: the event is the message.
            if let Some(message) = str_at(r, &["Sns", "Message"]) {
                crate::source::nested::read_eventbridge_event(message, &mut incoming);
            }
            incoming
        }
        Shape::DynamoDb => {
            let mut incoming = Incoming::new(EventSource::DynamoDb);
            incoming.set_item_id(str_at(r, &["dynamodb", "SequenceNumber"]));
            incoming.set_source_arn(str_at(r, &["eventSourceARN"]));
            let attribute = dynamodb_attribute(config);
            if let Some(v) = str_at(r, &["dynamodb", "NewImage", attribute, "S"]) {
                incoming.read_lineage_value(v, "dynamodb item attribute");
            }
            if str_at(r, &["eventName"]) == Some("MODIFY") && only_the_stamp_changed(r, attribute) {
                incoming.mark_unchanged();
            }
            incoming
        }
        Shape::EventBridge | Shape::Other => return None,
    };
    Some(incoming)
}

impl GuardedEvent for Value {
    fn read_incoming<'a>(
        &'a self,
        context: &'a Context,
        config: &LoopGuardConfig,
        out: &mut Units<'a, '_>,
    ) {
        let records = records(self).map(Vec::as_slice).unwrap_or_default();
        match shape(self) {
            shape @ (Shape::Sqs | Shape::DynamoDb) => {
                out.extend(records.iter().filter_map(|r| read_record(r, shape, config)));
            }
            Shape::Sns => out.extend(records.iter().filter_map(|r| {
                let mut incoming = read_record(r, Shape::Sns, config)?;
                incoming.read_context(context);
                Some(incoming)
            })),
            Shape::EventBridge => {
                let mut incoming = Incoming::new(EventSource::EventBridge);
                incoming.set_item_id(str_at(self, &["id"]));
                if let Some(detail) = self.get("detail") {
                    JsonKey::default().read(detail, &mut incoming);
                }
                incoming.read_context(context);
                out.push(incoming);
            }
            Shape::Other => out.push(Incoming::from_context(context)),
        }
    }

    fn batch(&self) -> Batch {
        match shape(self) {
            Shape::Sqs => {
                let arns = records(self).into_iter().flatten();
                queue_batch(arns.map(|r| str_at(r, &["eventSourceARN"])))
            }
            Shape::DynamoDb => Batch::Ordered,
            _ => Batch::Single,
        }
    }

    fn remove_units(&mut self, remove: &mut dyn FnMut(usize) -> bool) {
        if let Some(Value::Array(records)) = self.get_mut("Records") {
            retain_by_index(records, remove);
        }
    }
}

/// A record of a `Value` batch (SQS, DynamoDB stream), for
/// [`for_record`](crate::for_record); any other value keeps the chain in
/// scope, an SNS record too (one per invocation: the invocation's chain,
/// which also holds what the context carried, is already its own).
impl GuardedRecord for Value {
    fn read_record<'a>(&'a self, config: &LoopGuardConfig) -> Incoming<'a> {
        match record_shape(self) {
            shape @ (Shape::Sqs | Shape::DynamoDb) => read_record(self, shape, config),
            _ => None,
        }
        .unwrap_or(Incoming::new(NOT_A_RECORD))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_config;
    use crate::FunctionId;
    use serde_json::json;

    fn read(value: &Value, ctx: &Context) -> Vec<(EventSource, u16, Option<String>)> {
        read_with(value, ctx, &test_config())
    }

    fn read_with(
        value: &Value,
        ctx: &Context,
        config: &LoopGuardConfig,
    ) -> Vec<(EventSource, u16, Option<String>)> {
        let out = crate::source::read_units(value, ctx, config);
        out.iter()
            .map(|i| {
                (
                    i.source(),
                    i.lineage().count(FunctionId::from_u32(1)),
                    i.item_id().map(String::from),
                )
            })
            .collect()
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            prop_oneof![
                Just("aws:sqs".to_string()),
                Just("aws:sns".to_string()),
                Just("aws:dynamodb".to_string()),
                Just("v1.1.00000001-1".to_string()),
                "\\PC{0,20}"
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let keys = prop_oneof![
                Just("Records".to_string()),
                Just("eventSource".to_string()),
                Just("EventSource".to_string()),
                Just("messageAttributes".to_string()),
                Just("loop-guard".to_string()),
                Just("stringValue".to_string()),
                Just("attributes".to_string()),
                Just("AWSTraceHeader".to_string()),
                Just("Sns".to_string()),
                Just("MessageAttributes".to_string()),
                Just("Value".to_string()),
                Just("body".to_string()),
                Just("dynamodb".to_string()),
                Just("NewImage".to_string()),
                Just("S".to_string()),
                Just("detail".to_string()),
                Just("detail-type".to_string()),
                "[a-z]{1,5}"
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((keys, inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_json_payload_is_read_without_panicking(mut v in arb_json()) {
            let ctx = Context::default();
            let out = crate::source::read_units(&v, &ctx, &test_config());
            let units = out.len();
            drop(out);
            let expected = match shape(&v) {
                Shape::Other | Shape::EventBridge => 1,
                _ => records(&v).map_or(0, Vec::len),
            };
            proptest::prop_assert_eq!(units, expected);
            if v.batch().drops_per_record() {
                v.remove_units(&mut |i| i % 2 == 0);
            }
        }
    }

    #[test]
    fn recognises_sqs_records() {
        let mut v = json!({"Records": [
            {"eventSource": "aws:sqs", "messageId": "a", "messageAttributes": {"loop-guard": {"stringValue": "v1.1.00000001-4", "dataType": "String"}}},
            {"eventSource": "aws:sqs", "messageId": "b", "attributes": {"AWSTraceHeader": "Root=1-x;LoopGuard=v1.1.00000001-2"}},
            {"eventSource": "aws:sqs", "messageId": "c", "body": "{\"Type\":\"Notification\",\"TopicArn\":\"arn:aws:sns:us-east-1:1:t\",\"MessageAttributes\":{\"loop-guard\":{\"Type\":\"String\",\"Value\":\"v1.1.00000001-9\"}}}"}
        ]});
        let ctx = Context::default();
        let trusting = LoopGuardConfig::builder()
            .function_identity("test")
            .trust_sns_topic("arn:aws:sns:us-east-1:1:t")
            .build()
            .unwrap();
        assert_eq!(
            read_with(&v, &ctx, &trusting),
            vec![
                (EventSource::Sqs, 4, Some("a".into())),
                (EventSource::Sqs, 2, Some("b".into())),
                (EventSource::Sqs, 9, Some("c".into())),
            ]
        );
        assert_eq!(
            read(&v, &ctx)[2],
            (EventSource::Sqs, 0, Some("c".into())),
            "an envelope from a topic not trusted is not read"
        );
        assert_eq!(v.batch(), Batch::Unordered);
        v["Records"][0]["eventSourceARN"] = json!("arn:aws:sqs:us-east-1:1:q.fifo");
        assert_eq!(v.batch(), Batch::Ordered, "a FIFO queue");
        v.remove_units(&mut |i| i == 1);
        assert_eq!(v["Records"].as_array().unwrap().len(), 2);
        assert_eq!(v["Records"][1]["messageId"], "c");
    }

    #[test]
    fn recognises_sns_records_and_falls_back_to_context() {
        let v = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": "s",
            "MessageAttributes": {"loop-guard": {"Type": "String", "Value": "v1.1.00000001-3"}}}}]});
        let ctx = Context::default();
        assert_eq!(
            read(&v, &ctx),
            vec![(EventSource::Sns, 3, Some("s".into()))]
        );
        assert!(!v.batch().drops_per_record());

        let mut ctx = Context::default();
        ctx.xray_trace_id = Some("Root=1-x;LoopGuard=v1.1.00000001-5".into());
        for other in [
            json!({"hello": "world"}),
            json!([1, 2]),
            json!({"Records": []}),
            json!(null),
        ] {
            assert_eq!(read(&other, &ctx), vec![(EventSource::Invoke, 5, None)]);
            assert!(!other.batch().drops_per_record());
        }
    }

    #[test]
    fn recognises_dynamodb_stream_records_and_eventbridge_events() {
        let mut v = json!({"Records": [
            {"eventSource": "aws:dynamodb", "eventID": "1", "dynamodb": {"SequenceNumber": "100",
             "NewImage": {"id": {"S": "a"}, "loop-guard": {"S": "v1.6.00000001-6"}}}},
            {"eventSource": "aws:dynamodb", "eventID": "2", "dynamodb": {"SequenceNumber": "200",
             "NewImage": {"id": {"S": "b"}}}}
        ]});
        let ctx = Context::default();
        assert_eq!(
            read(&v, &ctx),
            vec![
                (EventSource::DynamoDb, 6, Some("100".into())),
                (EventSource::DynamoDb, 0, Some("200".into())),
            ]
        );
        assert!(v.batch().drops_per_record());
        v.remove_units(&mut |i| i == 0);
        assert_eq!(v["Records"][0]["eventID"], "2");

        // A write that changed only the stamp is marked, as in the typed source.
        let modify = json!({"Records": [{"eventSource": "aws:dynamodb", "eventName": "MODIFY",
            "dynamodb": {"SequenceNumber": "1",
                "OldImage": {"id": {"S": "a"}, "loop-guard": {"S": "v1.1.00000001-1"}},
                "NewImage": {"id": {"S": "a"}, "loop-guard": {"S": "v1.2.00000001-2"}}}}]});
        let out = crate::source::read_units(&modify, &ctx, &test_config());
        assert!(out[0].is_unchanged());

        let event = json!({"detail-type": "t", "source": "s", "id": "e-1",
            "detail": {"loop-guard": "v1.2.00000001-2"}});
        assert_eq!(
            read(&event, &ctx),
            vec![(EventSource::EventBridge, 2, Some("e-1".into()))]
        );
        assert!(!event.batch().drops_per_record());
    }
}
