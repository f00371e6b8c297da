//! SQS: one unit per record.
//!
//! * Read: per record, the `AWSTraceHeader` system attribute (our trace
//!   field), the `loop-guard` message attribute, and, for SNS notifications
//!   delivered to SQS without raw delivery, the `loop-guard` entry of the
//!   `MessageAttributes` object inside the JSON body, when the envelope's
//!   topic is trusted ([`TrustedTopics`](crate::config::TrustedTopics)).
//! * Batch: a standard queue is [`Batch::Unordered`], a FIFO queue (its ARN
//!   ends in `.fifo`) [`Batch::Ordered`]; looping records are reported in
//!   `SqsBatchResponse::batch_item_failures`.
//! * Stamp (feature `sqs`): the `loop-guard` message attribute on
//!   `SendMessage` and every `SendMessageBatch` entry (skipped, and logged
//!   once, on a message that already has 10 attributes), and our field in an
//!   `AWSTraceHeader` system attribute the caller set.

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{
    BatchItemFailure, SqsBatchResponse, SqsEvent, SqsEventObj, SqsMessage, SqsMessageAttribute,
    SqsMessageObj,
};
use lambda_runtime::Context;
use serde::{Deserialize, Serialize};

use crate::carrier::{
    sqs_attribute_value, LastHeader, TraceField, AWS_TRACE_HEADER_ATTRIBUTE, KEY,
    SQS_ATTRIBUTE_CARRIER,
};
use crate::config::LoopGuardConfig;
use crate::incoming::{EventSource, Incoming, Units};
use crate::source::nested::BodyKind;
use crate::source::{
    add_missing, retain_by_index, Batch, GuardedEvent, GuardedRecord, GuardedResponse,
};

#[cfg(feature = "sqs")]
pub(crate) mod stamp;

impl GuardedEvent for SqsEvent {
    fn read_incoming<'a>(
        &'a self,
        _context: &'a Context,
        config: &LoopGuardConfig,
        out: &mut Units<'a, '_>,
    ) {
        read_messages(&self.records, config, out);
    }

    fn batch(&self) -> Batch {
        queue_batch(self.records.iter().map(|r| r.event_source_arn.as_deref()))
    }

    fn remove_units(&mut self, remove: &mut dyn FnMut(usize) -> bool) {
        retain_by_index(&mut self.records, remove);
    }
}

impl<T: Serialize> GuardedEvent for SqsEventObj<T> {
    fn read_incoming<'a>(
        &'a self,
        _context: &'a Context,
        config: &LoopGuardConfig,
        out: &mut Units<'a, '_>,
    ) {
        read_messages(&self.records, config, out);
    }

    fn batch(&self) -> Batch {
        queue_batch(self.records.iter().map(|r| r.event_source_arn.as_deref()))
    }

    fn remove_units(&mut self, remove: &mut dyn FnMut(usize) -> bool) {
        retain_by_index(&mut self.records, remove);
    }
}

impl GuardedRecord for SqsMessage {
    fn read_record<'a>(&'a self, config: &LoopGuardConfig) -> Incoming<'a> {
        read_one(self.parts(), config)
    }
}

impl<T: Serialize> GuardedRecord for SqsMessageObj<T> {
    fn read_record<'a>(&'a self, config: &LoopGuardConfig) -> Incoming<'a> {
        read_one(self.parts(), config)
    }
}

/// One message on its own.
fn read_one<'a>(message: Parts<'a>, config: &LoopGuardConfig) -> Incoming<'a> {
    let carriers = Carriers::of(&message, config);
    read_message(message, carriers, config, &mut LastHeader::default())
}

/// What the guard reads of an SQS message, its body typed or not.
struct Parts<'a> {
    id: Option<&'a str>,
    attributes: &'a HashMap<String, String>,
    message_attributes: &'a HashMap<String, SqsMessageAttribute>,
    // The body as text (`None` when typed: then not read).
    body: Option<&'a str>,
    arn: Option<&'a str>,
}

trait SqsParts {
    fn parts(&self) -> Parts<'_>;
}

impl SqsParts for SqsMessage {
    fn parts(&self) -> Parts<'_> {
        Parts {
            id: self.message_id.as_deref(),
            attributes: &self.attributes,
            message_attributes: &self.message_attributes,
            body: self.body.as_deref(),
            arn: self.event_source_arn.as_deref(),
        }
    }
}

impl<T: Serialize> SqsParts for SqsMessageObj<T> {
    fn parts(&self) -> Parts<'_> {
        Parts {
            id: self.message_id.as_deref(),
            attributes: &self.attributes,
            message_attributes: &self.message_attributes,
            body: None,
            arn: self.event_source_arn.as_deref(),
        }
    }
}

/// One unit per message, in order. A trace header equal to the one before
/// it is not scanned again; messages whose carriers are byte for byte
/// those of the one before them, which ran, are handed over as repeats of
/// it, a run of them at once (nothing to read or decide again).
fn read_messages<'a, M: SqsParts>(
    messages: &'a [M],
    config: &LoopGuardConfig,
    out: &mut Units<'a, '_>,
) {
    let mut last = LastHeader::default();
    // The carriers of the last message read in full, when it ran and its
    // body carried nothing; where the run of messages like it since, not
    // handed over yet, starts.
    let mut repeatable: Option<Carriers<'a>> = None;
    let mut run_from = None;
    for (index, message) in messages.iter().enumerate() {
        let carriers = Carriers::of(&message.parts(), config);
        if repeatable == Some(carriers) {
            run_from.get_or_insert(index);
            continue;
        }
        if let Some(from) = run_from.take() {
            hand_over_repeats(&messages[from..index], config, out, &mut last);
        }
        // Built again rather than kept: the loop then keeps only what the
        // comparison needs.
        let ran = out.push_unit(read_message(message.parts(), carriers, config, &mut last));
        repeatable = (ran && carriers.body == BodyKind::Plain).then_some(carriers);
    }
    if let Some(from) = run_from {
        hand_over_repeats(&messages[from..], config, out, &mut last);
    }
}

/// Hands over `messages`, repeats of the last message handed over, at
/// once; read in full if they are not taken as such.
fn hand_over_repeats<'a, M: SqsParts>(
    messages: &'a [M],
    config: &LoopGuardConfig,
    out: &mut Units<'a, '_>,
    last: &mut LastHeader<'a>,
) {
    if !out.push_repeats(messages.len()) {
        read_in_full(messages, config, out, last);
    }
}

/// Hands over `messages` read in full, one by one: a run of repeats the
/// decision did not take (it takes every run it can, so this is kept out
/// of the usual path's code).
#[cold]
#[inline(never)]
fn read_in_full<'a, M: SqsParts>(
    messages: &'a [M],
    config: &LoopGuardConfig,
    out: &mut Units<'a, '_>,
    last: &mut LastHeader<'a>,
) {
    for message in messages {
        let parts = message.parts();
        let carriers = Carriers::of(&parts, config);
        out.push_unit(read_message(parts, carriers, config, last));
    }
}

/// What the guard's decision on an SQS message depends on, found but not
/// read: two messages equal in these, whose bodies carry nothing, are
/// decided alike (only their ids differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Carriers<'a> {
    header: Option<&'a str>,
    attribute: Option<&'a str>,
    // What the body may carry (a typed body is not read: plain).
    body: BodyKind,
    // Only when it can change the decision.
    arn: Option<&'a str>,
}

impl<'a> Carriers<'a> {
    #[inline(always)]
    fn of(message: &Parts<'a>, config: &LoopGuardConfig) -> Self {
        Carriers {
            header: crate::carrier::small_map_get(message.attributes, AWS_TRACE_HEADER_ATTRIBUTE)
                .map(String::as_str),
            attribute: sqs_attribute_value(message.message_attributes, KEY),
            body: message.body.map_or(BodyKind::Plain, BodyKind::of),
            arn: config.deciding_source(message.arn),
        }
    }
}

/// One message, its `carriers` found, of a batch whose previous trace
/// header was `last`; the unit is built in place (moved as few times as
/// possible).
fn read_message<'a>(
    message: Parts<'a>,
    carriers: Carriers<'a>,
    config: &LoopGuardConfig,
    last: &mut LastHeader<'a>,
) -> Incoming<'a> {
    let mut incoming = Incoming::new(EventSource::Sqs);
    incoming.set_item_id(message.id);
    if let Some(header) = carriers.header {
        TraceField.read_batch_header(header, &mut incoming, last);
    }
    if let Some(value) = carriers.attribute {
        incoming.read_lineage_value(value, SQS_ATTRIBUTE_CARRIER);
    }
    if let Some(body) = message.body {
        crate::source::nested::read_body_of_kind(
            carriers.body,
            body,
            config,
            &mut incoming,
            || {
                // A message with our attribute was sent by a guarded producer
                // (or delivered raw): its body is not an envelope of ours.
                crate::carrier::small_map_get(message.message_attributes, KEY).is_some()
            },
        );
    }
    incoming.set_source_arn(message.arn);
    incoming
}

/// [`Batch::Ordered`] for a FIFO queue (the records of one invocation all
/// come from one queue), else [`Batch::Unordered`].
pub(super) fn queue_batch<'a>(mut arns: impl Iterator<Item = Option<&'a str>>) -> Batch {
    match arns.next().flatten() {
        Some(arn) if arn.ends_with(".fifo") => Batch::Ordered,
        _ => Batch::Unordered,
    }
}

impl GuardedResponse for SqsBatchResponse {
    fn empty_batch_response() -> Option<Self> {
        Some(SqsBatchResponse::default())
    }

    fn add_batch_item_failures(&mut self, ids: Vec<String>) {
        let reported = self
            .batch_item_failures
            .iter()
            .map(|f| Some(f.item_identifier.clone()));
        let mut added = Vec::new();
        add_missing(reported, ids, |id| added.push(id));
        self.batch_item_failures.extend(added.into_iter().map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        }));
    }
}

/// Reads the lineage of the SNS notification envelope `body`, if it is one
/// from a topic `config` trusts (see
/// [`TrustedTopics`](crate::config::TrustedTopics)) and the message does not
/// carry our attribute (`has_attribute`, asked only of a body that is an
/// envelope); an envelope with a lineage from any other topic is ignored,
/// with a warning once per process.
pub(crate) fn read_sns_envelope<'a>(
    body: &'a str,
    config: &LoopGuardConfig,
    incoming: &mut Incoming<'a>,
    has_attribute: impl FnOnce() -> bool,
) {
    let Some(envelope) = sns_envelope_lineage(body) else {
        return;
    };
    if has_attribute() {
        return;
    }
    if config.sns_topics().trusts(envelope.topic_arn) {
        incoming.read_lineage_value(envelope.lineage, "sns envelope in sqs body");
    } else {
        crate::sns_trust::warn_untrusted(envelope.topic_arn);
    }
}

/// The lineage an SNS notification envelope carries, and its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnsEnvelopeLineage<'a> {
    /// The envelope's `TopicArn`.
    pub(crate) topic_arn: &'a str,
    /// The `Value` of its `loop-guard` message attribute.
    pub(crate) lineage: &'a str,
}

/// The `loop-guard` attribute value inside an SNS notification envelope (a
/// JSON object whose first member is `"Type": "Notification"`, with a
/// `TopicArn` and that attribute), if `body` is one. Cheap for other bodies:
/// a look at their first bytes, no scan and no JSON parse.
pub(crate) fn sns_envelope_lineage(body: &str) -> Option<SnsEnvelopeLineage<'_>> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "Type", borrow)]
        kind: Option<&'a str>,
        #[serde(rename = "TopicArn", borrow)]
        topic_arn: Option<&'a str>,
        #[serde(rename = "MessageAttributes", borrow)]
        attributes: Option<Attributes<'a>>,
    }
    #[derive(Deserialize)]
    struct Attributes<'a> {
        #[serde(rename = "loop-guard", borrow)]
        loop_guard: Option<Attribute<'a>>,
    }
    #[derive(Deserialize)]
    struct Attribute<'a> {
        #[serde(rename = "Value")]
        value: &'a str,
    }

    // SNS writes `{"Type" : ...` first (JSON whitespace, which is ASCII,
    // aside): any other body is passed over without a scan.
    if BodyKind::of(body) != BodyKind::SnsEnvelope || !body.contains(KEY) {
        return None;
    }
    let envelope = serde_json::from_str::<Envelope<'_>>(body).ok()?;
    if envelope.kind != Some("Notification") {
        return None;
    }
    Some(SnsEnvelopeLineage {
        topic_arn: envelope.topic_arn?,
        lineage: envelope.attributes?.loop_guard?.value,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::test_config;
    use crate::FunctionId;

    pub(crate) fn record(id: &str, attribute: Option<&str>, trace: Option<&str>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.to_owned());
        m.body = Some(format!("body of {id}"));
        if let Some(value) = attribute {
            let mut a = SqsMessageAttribute::default();
            a.data_type = Some("String".into());
            a.string_value = Some(value.into());
            m.message_attributes.insert(KEY.into(), a);
        }
        if let Some(trace) = trace {
            m.attributes
                .insert(AWS_TRACE_HEADER_ATTRIBUTE.into(), trace.into());
        }
        m
    }

    #[test]
    fn each_record_is_read_on_its_own_taking_the_max_of_its_carriers() {
        let mut event = SqsEvent::default();
        event.records = vec![
            record(
                "a",
                Some("v1.2.00000001-2"),
                Some("Root=1-r-a;LoopGuard=v1.4.00000001-1.00000002-3"),
            ),
            record("b", None, None),
            record("c", Some("broken"), Some("Root=1-r-c")),
        ];
        let ctx = Context::default();
        let out = crate::source::read_units(&event, &ctx, &test_config());
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(1)), 2);
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(2)), 3);
        assert_eq!(out[0].lineage().hops(), 4);
        assert_eq!(out[0].chain_root(), Some("1-r-a"));
        assert_eq!(out[0].item_id(), Some("a"));
        assert!(out[1].lineage().is_empty());
        assert!(out[2].lineage().is_empty());
        assert_eq!(out[2].chain_root(), Some("1-r-c"));
        assert!(out.iter().all(|i| i.source() == EventSource::Sqs));
    }

    /// A decision that takes repeats or not, and notes what it was given.
    struct Noting {
        take_repeats: bool,
        // Per unit read in full, its item id; per run of repeats, `*` each.
        seen: Vec<String>,
    }

    impl<'a> crate::incoming::Decide<'a> for Noting {
        fn unit(&mut self, unit: Incoming<'a>) -> bool {
            self.seen.push(unit.item_id().unwrap_or("").to_owned());
            true
        }

        fn repeat(&mut self, count: usize) -> bool {
            if self.take_repeats {
                self.seen.extend(std::iter::repeat_n("*".to_owned(), count));
            }
            self.take_repeats
        }
    }

    #[test]
    fn runs_of_like_messages_are_handed_over_at_once_or_read_in_full() {
        let like = |id| {
            record(
                id,
                Some("v1.2.00000001-2"),
                Some("Root=1-r;LoopGuard=v1.2.00000001-2"),
            )
        };
        let mut event = SqsEvent::default();
        event.records = vec![
            like("a"),
            like("b"),
            like("c"),
            record("d", None, None),
            like("e"),
            like("f"),
        ];
        let ctx = Context::default();
        for (take_repeats, expected) in [
            (true, vec!["a", "*", "*", "d", "e", "*"]),
            (false, vec!["a", "b", "c", "d", "e", "f"]),
        ] {
            let mut noting = Noting {
                take_repeats,
                seen: Vec::new(),
            };
            event.read_incoming(&ctx, &test_config(), &mut Units::deciding(&mut noting));
            assert_eq!(noting.seen, expected, "repeats taken: {take_repeats}");
        }
    }

    const TOPIC: &str = "arn:aws:sns:us-east-1:1:t";
    const ENVELOPE: &str = r#"{"Type":"Notification","MessageId":"x","TopicArn":"arn:aws:sns:us-east-1:1:t",
            "Message":"{\"escaped\":\"json\"}","MessageAttributes":{"other":{"Type":"String","Value":"1"},
            "loop-guard":{"Type":"String","Value":"v1.7.0000000a-7"}}}"#;

    /// The count of function 10 read from an SQS record with `body`.
    fn envelope_count(body: &str, config: &LoopGuardConfig) -> u16 {
        let mut m = record("e", None, None);
        m.body = Some(body.into());
        let mut event = SqsEvent::default();
        event.records = vec![m];
        let ctx = Context::default();
        let out = crate::source::read_units(&event, &ctx, config);
        let from_batch = out[0].lineage().count(FunctionId::from_u32(10));
        let from_record = event.records[0]
            .read_record(config)
            .lineage()
            .count(FunctionId::from_u32(10));
        assert_eq!(from_batch, from_record, "one reading per record");
        from_batch
    }

    fn trusting(topic: &str) -> LoopGuardConfig {
        LoopGuardConfig::builder()
            .function_identity("test")
            .trust_sns_topic(topic)
            .build()
            .unwrap()
    }

    #[test]
    fn sns_envelope_from_a_trusted_topic_is_read() {
        assert_eq!(
            sns_envelope_lineage(ENVELOPE),
            Some(SnsEnvelopeLineage {
                topic_arn: TOPIC,
                lineage: "v1.7.0000000a-7"
            })
        );
        assert_eq!(envelope_count(ENVELOPE, &trusting(TOPIC)), 7);
        assert_eq!(
            envelope_count(ENVELOPE, &trusting("arn:aws:sns:us-east-1:1:*")),
            7
        );
    }

    #[test]
    fn an_eventbridge_event_body_is_read_from_its_detail() {
        let one = FunctionId::from_u32(1);
        let mut event = SqsEvent::default();
        let mut bridged = record("m-1", None, None);
        bridged.body = Some(
            r#"{"version": "0", "id": "e-1", "detail-type": "tick", "source": "orders", "detail": {"loop-guard": "v1.4.00000001-4"}}"#
                .into(),
        );
        // Both carriers: the attribute (a later hop) and the body; the max.
        let mut both = bridged.clone();
        both.message_id = Some("m-2".into());
        both.message_attributes = record("x", Some("v1.2.00000001-2"), None).message_attributes;
        event.records = vec![bridged, both, record("m-3", None, None)];
        let context = Context::default();
        let units = crate::source::read_units(&event, &context, &test_config());
        let counts: Vec<u16> = units.iter().map(|u| u.lineage().count(one)).collect();
        assert_eq!(counts, [4, 4, 0]);
    }

    #[test]
    fn sns_envelope_shape_alone_is_not_trusted() {
        // Anyone who writes message bodies can write this JSON.
        assert_eq!(envelope_count(ENVELOPE, &test_config()), 0);
        assert_eq!(
            envelope_count(ENVELOPE, &trusting("arn:aws:sns:us-east-1:1:other")),
            0
        );
        assert_eq!(
            envelope_count(ENVELOPE, &trusting("arn:aws:sns:us-east-1:2:*")),
            0
        );
    }

    #[test]
    fn envelopes_need_the_notification_type_and_a_topic() {
        let config = trusting("*");
        for body in [
            ENVELOPE.replace("Notification", "SubscriptionConfirmation"),
            ENVELOPE.replace(r#""Type":"Notification","#, ""),
            ENVELOPE.replace(r#""TopicArn":"arn:aws:sns:us-east-1:1:t","#, ""),
        ] {
            assert_eq!(sns_envelope_lineage(&body), None, "{body}");
            assert_eq!(envelope_count(&body, &config), 0);
        }
    }

    #[test]
    fn other_bodies_are_not_envelopes() {
        for body in [
            "",
            "loop-guard",
            "{\"loop-guard\": 1}",
            "{\"MessageAttributes\": {\"loop-guard\": {\"Value\": 5}}}",
            "{not json loop-guard",
            "[\"loop-guard\"]",
        ] {
            assert_eq!(sns_envelope_lineage(body), None, "{body}");
        }
    }

    #[test]
    fn typed_bodies_are_read_and_removed_per_record() {
        let mut event: SqsEventObj<serde_json::Value> =
            serde_json::from_value(serde_json::json!({"Records": [
                {"messageId": "1", "body": "{\"n\": 1}", "messageAttributes": {"loop-guard": {"stringValue": "v1.1.00000001-1", "dataType": "String"}}},
                {"messageId": "2", "body": "{\"n\": 2}"}
            ]}))
            .unwrap();
        let ctx = Context::default();
        let out = crate::source::read_units(&event, &ctx, &test_config());
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(1)), 1);
        drop(out);
        event.remove_units(&mut |i| i == 0);
        assert_eq!(event.records.len(), 1);
        assert_eq!(event.records[0].message_id.as_deref(), Some("2"));
    }

    #[test]
    fn fifo_queues_are_ordered_standard_queues_are_not() {
        let with_arn = |arn: &str| {
            let mut m = record("a", None, None);
            m.event_source_arn = Some(arn.to_owned());
            let mut event = SqsEvent::default();
            event.records = vec![m];
            event
        };
        let fifo = with_arn("arn:aws:sqs:us-east-1:123456789012:orders.fifo");
        assert_eq!(fifo.batch(), Batch::Ordered);
        let standard = with_arn("arn:aws:sqs:us-east-1:123456789012:orders");
        assert_eq!(standard.batch(), Batch::Unordered);
        assert_eq!(SqsEvent::default().batch(), Batch::Unordered);
    }

    #[test]
    fn batch_item_failures_keep_the_handlers_own_and_add_each_id_once() {
        let mut response = SqsBatchResponse::empty_batch_response().unwrap();
        let mut own = BatchItemFailure::default();
        own.item_identifier = "b".into();
        response.batch_item_failures.push(own);
        response.add_batch_item_failures(vec!["a".into(), "b".into(), "a".into()]);
        let ids: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["b", "a"]);
    }

    /// A message of a small alphabet of carriers (so that two are often
    /// alike): header, attribute, body and queue choices.
    fn shaped(header: u8, attribute: u8, body: u8, queue: u8) -> SqsMessage {
        let lineage = |n: u16| {
            (0..n)
                .fold(crate::Lineage::new(), |l, _| {
                    l.record_run(FunctionId::from_identity("test"))
                })
                .to_string()
        };
        let header = match header {
            0 => None,
            1 => Some(format!(
                "Root=1-5759e988-bd862e3fe1be46a994272793;LoopGuard={}",
                lineage(2)
            )),
            2 => Some(format!(
                "Root=1-5759e988-bd862e3fe1be46a994272793;LoopGuard={}",
                lineage(5)
            )),
            _ => Some(format!(
                "Root=1-5759e988-bd862e3fe1be46a994272793;LoopGuard={};LoopGuard={}",
                lineage(1),
                lineage(3)
            )),
        };
        let attribute = match attribute {
            0 => None,
            1 => Some(lineage(2)),
            _ => Some("not a lineage".to_owned()),
        };
        let mut m = record("m", attribute.as_deref(), header.as_deref());
        m.body = Some(match body {
            0 => "plain".to_owned(),
            1 => "{\"order\":1}".to_owned(),
            _ => format!(
                r#"{{"version":"0","id":"e","detail":{{"{KEY}":"{}"}}}}"#,
                lineage(4)
            ),
        });
        m.event_source_arn = Some(format!("arn:aws:sqs:us-east-1:123456789012:q{queue}"));
        m
    }

    proptest::proptest! {
        /// Two messages whose carriers are alike (a repeat is handed over
        /// for the second) have the same decision inputs: the guard's
        /// shortcut for units decides them alike, with source limits or
        /// without.
        #[test]
        fn alike_carriers_mean_alike_decision_inputs(
            a in (0u8..4, 0u8..3, 0u8..3, 0u8..2),
            b in (0u8..4, 0u8..3, 0u8..3, 0u8..2),
            per_source in proptest::bool::ANY,
        ) {
            let config = if per_source {
                LoopGuardConfig::builder()
                    .function_identity("test")
                    .source_max_depth("arn:aws:sqs:us-east-1:123456789012:q1", 6)
                    .build()
                    .unwrap()
            } else {
                test_config()
            };
            let (a, b) = (shaped(a.0, a.1, a.2, a.3), shaped(b.0, b.1, b.2, b.3));
            let (pa, pb) = (a.parts(), b.parts());
            let (ca, cb) = (Carriers::of(&pa, &config), Carriers::of(&pb, &config));
            if ca == cb && ca.body == BodyKind::Plain {
                let (ua, ub) = (read_one(a.parts(), &config), read_one(b.parts(), &config));
                proptest::prop_assert!(ua.decision_inputs(&config).is_some());
                proptest::prop_assert_eq!(ua.decision_inputs(&config), ub.decision_inputs(&config));
            }
        }

        #[test]
        fn envelope_reader_never_panics(body in "\\PC{0,200}") {
            let _ = sns_envelope_lineage(&body);
            let wrapped = format!("{{\"MessageAttributes\":{{\"loop-guard\":{{\"Value\":{body:?}}}}}}}");
            let _ = sns_envelope_lineage(&wrapped);
        }
    }
}
