//! Events delivered inside other events: an EventBridge event that a rule
//! sent to an SQS queue or an SNS topic is the record's body or message,
//! and an SNS notification without raw delivery is an SQS body (its
//! envelope). Their lineage is read like their direct forms' (S3
//! notifications, whose lineage is in the object's metadata, are looked up
//! by [`with_s3_metadata`](crate::LoopGuardLayer::with_s3_metadata)).
//!
//! Every check starts with a look at the text's first bytes: a body that
//! does not open like one of these events is not scanned or parsed.

use crate::carrier::JsonKey;
use crate::config::LoopGuardConfig;
use crate::incoming::Incoming;

/// What an SQS body may carry, from one look at its opening: most bodies
/// are passed over there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// Neither an SNS envelope nor an EventBridge event: nothing to read.
    Plain,
    SnsEnvelope,
    EventBridgeEvent,
}

impl BodyKind {
    /// The kind `body` opens like.
    pub(crate) fn of(body: &str) -> BodyKind {
        // The usual body, text or JSON (`{"` then a key), is told apart by
        // its first bytes alone: only `"Type"` and `"version"` can open one
        // of these events.
        match body.as_bytes() {
            [b'{', b'"', b'T' | b'v', ..] => {}
            [b'{', b'"', ..] => return BodyKind::Plain,
            [first, ..] if *first != b'{' && !first.is_ascii_whitespace() => {
                return BodyKind::Plain
            }
            _ => {}
        }
        BodyKind::by_first_key(body)
    }

    /// The kind `body`'s first key (after `{` and any whitespace) says.
    fn by_first_key(body: &str) -> BodyKind {
        let Some(first_key) = body
            .trim_ascii_start()
            .strip_prefix('{')
            .map(str::trim_ascii_start)
        else {
            return BodyKind::Plain;
        };
        if first_key.starts_with("\"Type\"") {
            BodyKind::SnsEnvelope
        } else if first_key.starts_with("\"version\"") {
            BodyKind::EventBridgeEvent
        } else {
            BodyKind::Plain
        }
    }
}

/// Reads what an SQS body carries: an SNS envelope's attribute (from a
/// trusted topic, when the message has no attribute of ours:
/// `has_attribute`, asked only of envelopes), or an EventBridge event's
/// `detail` key.
#[inline]
pub(crate) fn read_sqs_body<'a>(
    body: &'a str,
    config: &LoopGuardConfig,
    incoming: &mut Incoming<'a>,
    has_attribute: impl FnOnce() -> bool,
) {
    read_body_of_kind(BodyKind::of(body), body, config, incoming, has_attribute);
}

/// [`read_sqs_body`] of a body whose kind is known.
#[inline]
pub(crate) fn read_body_of_kind<'a>(
    kind: BodyKind,
    body: &'a str,
    config: &LoopGuardConfig,
    incoming: &mut Incoming<'a>,
    has_attribute: impl FnOnce() -> bool,
) {
    match kind {
        BodyKind::Plain => {}
        BodyKind::SnsEnvelope => {
            super::sqs::read_sns_envelope(body, config, incoming, has_attribute)
        }
        BodyKind::EventBridgeEvent => read_eventbridge_event(body, incoming),
    }
}

/// Reads the `loop-guard` key of the `detail` of `text`, if it is an
/// EventBridge event.
pub(crate) fn read_eventbridge_event<'a>(text: &'a str, incoming: &mut Incoming<'a>) {
    if let Some(value) = eventbridge_detail_lineage(text) {
        incoming.read_lineage_value(value, "eventbridge detail in body");
    }
}

/// The `loop-guard` key of an EventBridge event's `detail`, in the event's
/// JSON text, if `text` is one (it opens with `{"version":"0","id":`, as
/// EventBridge writes every event, whitespace aside).
pub(crate) fn eventbridge_detail_lineage(text: &str) -> Option<&str> {
    if !opens_like_an_eventbridge_event(text) {
        return None;
    }
    JsonKey::default().read_text_in(text, Some("detail"))
}

/// Whether `text` opens with `{"version":"0","id":`, JSON whitespace
/// anywhere between the tokens.
pub(crate) fn opens_like_an_eventbridge_event(text: &str) -> bool {
    opens_with(
        text,
        &["{", "\"version\"", ":", "\"0\"", ",", "\"id\"", ":"],
    )
}

/// Whether `text` starts with `tokens`, JSON whitespace anywhere between
/// them.
pub(crate) fn opens_with(text: &str, tokens: &[&str]) -> bool {
    let mut rest = text;
    for token in tokens {
        match rest.trim_ascii_start().strip_prefix(token) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EVENT: &str = r#"{"version":"0","id":"6a7e8feb","detail-type":"tick","source":"orders","account":"1","time":"2026-11-22T00:00:00Z","region":"us-east-1","resources":[],"detail":{"hop":3,"loop-guard":"v1.3.00000001-3"}}"#;

    #[test]
    fn an_eventbridge_event_is_read_from_its_detail_only() {
        assert_eq!(eventbridge_detail_lineage(EVENT), Some("v1.3.00000001-3"));
        // As Python and pretty printers write it.
        let spaced = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(EVENT).unwrap(),
        )
        .unwrap();
        assert!(spaced.contains('\n'));
        let reordered = format!("{{\"version\" : \"0\" , \"id\":\"x\",{}", &spaced[1..]);
        assert_eq!(
            eventbridge_detail_lineage(&reordered),
            Some("v1.3.00000001-3")
        );
        // The key outside `detail`, or a body that is not an event.
        let outside = r#"{"version":"0","id":"x","loop-guard":"v1.3.00000001-3","detail":{}}"#;
        assert_eq!(eventbridge_detail_lineage(outside), None);
        let not_an_event = r#"{"detail":{"loop-guard":"v1.3.00000001-3"}}"#;
        assert_eq!(eventbridge_detail_lineage(not_an_event), None);
        assert_eq!(
            eventbridge_detail_lineage(
                r#"{"version":"1","id":"x","detail":{"loop-guard":"v1.1.00000001-1"}}"#
            ),
            None
        );
    }

    #[test]
    fn a_body_is_told_apart_by_its_first_key() {
        for (body, kind) in [
            (r#"{"Type":"Notification"}"#, BodyKind::SnsEnvelope),
            (" \n{ \"Type\" : 1}", BodyKind::SnsEnvelope),
            (r#"{"version":"0"}"#, BodyKind::EventBridgeEvent),
            ("\t{\n\"version\"", BodyKind::EventBridgeEvent),
            (r#"{"Types":1}"#, BodyKind::Plain),
            (r#"{"TopicArn":"x","Type":"Notification"}"#, BodyKind::Plain),
            (r#"{"order":1}"#, BodyKind::Plain),
            ("hello", BodyKind::Plain),
            ("", BodyKind::Plain),
            ("{", BodyKind::Plain),
        ] {
            assert_eq!(BodyKind::of(body), kind, "{body:?}");
        }
    }

    proptest! {
        /// The look at the first bytes decides as the first key does.
        #[test]
        fn first_bytes_decide_as_the_first_key(
            opening in "[ \t\n\r\x0B\x0C{\"Tvé]{0,6}",
            key in prop::sample::select(vec!["\"Type\"", "\"version\"", "\"Typ", "\"v", "\"é\"", "\"\"", "x", ""]),
            rest in "\\PC{0,20}",
        ) {
            let body = format!("{opening}{key}{rest}");
            prop_assert_eq!(BodyKind::of(&body), BodyKind::by_first_key(&body));
        }

        /// Any text: never panics; a lineage only from a JSON event's detail.
        #[test]
        fn any_body(body in "\\PC{0,120}", tail in "[a-z0-9\" :,{}-]{0,60}") {
            for text in [body.clone(), format!(r#"{{"version":"0","id":"a",{tail}"#)] {
                if let Some(value) = eventbridge_detail_lineage(&text) {
                    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
                    prop_assert_eq!(parsed["detail"]["loop-guard"].as_str(), Some(value));
                }
            }
        }
    }
}
