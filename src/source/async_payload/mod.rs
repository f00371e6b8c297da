//! Async payloads: the lineage travels in the JSON payload of asynchronous
//! invokes and EventBridge details, and is moved out before the handler
//! deserializes them.
//!
//! Lambda drops the client context of asynchronous (`InvocationType::Event`)
//! invokes, so the interceptor can put the lineage in the payload instead
//! (`LoopGuardInterceptor::stamp_async_payloads`),
//! and in an EventBridge `detail`
//! (`LoopGuardInterceptor::stamp_eventbridge_detail`).
//! [`AsyncPayloadLayer`] runs on the raw invocation, before `lambda_runtime`
//! deserializes the payload: it removes the `loop-guard` key from a
//! top-level JSON object (and from the `detail` object of an EventBridge
//! event) and puts the value in the invocation's client context, where
//! [`LoopGuardLayer`](crate::LoopGuardLayer) reads it. Handlers whose types
//! deny unknown fields never see the key.
//!
//! Payloads without the key are passed on untouched (their bytes are not
//! re-serialized).
//!
//! ```no_run
//! use lambda_loop_guard::{AsyncPayloadLayer, LoopGuardLayer};
//! use lambda_runtime::{service_fn, Error, LambdaEvent, Runtime};
//! use tower::ServiceBuilder;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Job { id: u64 }
//! impl lambda_loop_guard::GuardedEvent for Job {}
//!
//! async fn handler(event: LambdaEvent<Job>) -> Result<(), Error> { Ok(()) }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let guarded = ServiceBuilder::new()
//!         .layer(LoopGuardLayer::from_env()?)
//!         .service_fn(handler);
//!     Runtime::new(guarded).layer(AsyncPayloadLayer::new()).run().await
//! }
//! ```

use std::task::{Context, Poll};

use lambda_runtime::{Context as LambdaContext, LambdaInvocation};
use tower::{Layer, Service};

use crate::carrier::{json_text, KEY, QUOTED_KEY};
use crate::lineage::Lineage;

#[cfg(feature = "lambda")]
pub(crate) mod stamp;

/// Applies [`AsyncPayload`] to a `lambda_runtime` [`Runtime`](lambda_runtime::Runtime)
/// (with `Runtime::layer`). See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct AsyncPayloadLayer {
    _private: (),
}

impl AsyncPayloadLayer {
    /// Moves the `loop-guard` key.
    pub fn new() -> Self {
        AsyncPayloadLayer::default()
    }
}

impl<S> Layer<S> for AsyncPayloadLayer {
    type Service = AsyncPayload<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AsyncPayload { inner }
    }
}

/// Moves the lineage key from the payload to the client context.
#[derive(Debug, Clone)]
pub struct AsyncPayload<S> {
    inner: S,
}

impl<S> Service<LambdaInvocation> for AsyncPayload<S>
where
    S: Service<LambdaInvocation>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> Self::Future {
        if let Some((body, value)) = take_lineage(&invocation.body) {
            invocation.body = body.into();
            put_in_client_context(&mut invocation.context, value);
        }
        self.inner.call(invocation)
    }
}

/// The payload without our key, and the key's value, if the payload (or its
/// EventBridge `detail`) is a JSON object that has the key.
pub(crate) fn take_lineage(body: &[u8]) -> Option<(Vec<u8>, String)> {
    // Cheap pre-check (a SIMD substring search): most payloads never
    // mention the key as the carrier writes it, and are passed on unparsed.
    if !has_string_valued_key(body) {
        return None;
    }
    // Cut out of the text, nothing re-serialized: every other byte stays.
    let text = std::str::from_utf8(body).ok()?;
    let (open, members) = json_text::object_members(text)?;
    let is =
        |text: &str, member: &json_text::Member, name: &str| json_text::key_is(text, member, name);
    let object = if members.iter().any(|m| is(text, m, KEY)) {
        open
    } else {
        let eventbridge = members.iter().any(|m| is(text, m, "detail-type"))
            && members.iter().any(|m| is(text, m, "source"));
        members
            .iter()
            .find(|m| eventbridge && is(text, m, "detail"))?
            .value
            .start
    };
    // Every occurrence goes, in one pass; the value is the last one's, as a
    // JSON reader of duplicate keys would have it.
    let (_, members) = json_text::members_at(text.as_bytes(), object)?;
    let ours: Vec<usize> = (0..members.len())
        .filter(|&i| is(text, &members[i], KEY))
        .collect();
    let value = json_text::string_value(text, &members[*ours.last()?])?;
    let rest = json_text::without(text, &members, &ours);
    Some((rest.into_bytes(), value))
}

/// Whether `body` holds our key with a string value (`"loop-guard": "`),
/// the only shape the carrier writes. The message attributes of a stamped
/// SQS batch (`"loop-guard": {`) and escaped text inside string values do
/// not match, so batch events are passed on without a parse.
fn has_string_valued_key(body: &[u8]) -> bool {
    memchr::memmem::find_iter(body, &QUOTED_KEY).any(|at| {
        let rest = body[at + QUOTED_KEY.len()..].trim_ascii_start();
        rest.strip_prefix(b":")
            .is_some_and(|value| value.trim_ascii_start().starts_with(b"\""))
    })
}

/// Adds `value` under our key to the context's client context (created if
/// absent). If a synchronous caller also sent one, the two are merged (the
/// maximum per function, as with any two carriers).
fn put_in_client_context(context: &mut LambdaContext, value: String) {
    if context.client_context.is_none() {
        // `ClientContext` is not exported by name; every field has a default.
        context.client_context = serde_json::from_str("{}").ok();
    }
    let Some(client_context) = context.client_context.as_mut() else {
        return;
    };
    let merged = match client_context.custom.get(KEY) {
        Some(existing) if *existing != value => {
            match (Lineage::decode(existing), Lineage::decode(&value)) {
                (Ok(mut a), Ok(b)) => {
                    a.merge(&b);
                    a.to_string()
                }
                (Ok(_), Err(_)) => return,
                _ => value,
            }
        }
        _ => value,
    };
    client_context.custom.insert(KEY.to_owned(), merged);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn takes_the_key_from_objects_and_eventbridge_details_only() {
        let (body, value) = take_lineage(br#"{"id": 7, "loop-guard": "v1.1.00000001-1"}"#).unwrap();
        assert_eq!(value, "v1.1.00000001-1");
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"id": 7})
        );

        let event = json!({"detail-type": "t", "source": "s", "detail": {"n": 1, "loop-guard": "v1.1.00000001-2"}});
        let (body, value) = take_lineage(event.to_string().as_bytes()).unwrap();
        assert_eq!(value, "v1.1.00000001-2");
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"detail-type": "t", "source": "s", "detail": {"n": 1}})
        );

        for untouched in [
            &br#"{"id": 7}"#[..],
            br#"["loop-guard"]"#,
            br#""loop-guard""#,
            br#"{"nested": {"loop-guard": "v1.1.00000001-1"}}"#,
            b"not json loop-guard",
            // A stamped SQS batch: the key is a message attribute, not ours to move.
            br#"{"Records": [{"eventSource": "aws:sqs", "messageAttributes": {"loop-guard": {"stringValue": "v1.1.00000001-1", "dataType": "String"}}}]}"#,
        ] {
            assert_eq!(take_lineage(untouched), None);
        }
        let batch =
            br#"{"Records": [{"messageAttributes": {"loop-guard": {"stringValue": "x"}}}]}"#;
        assert!(!has_string_valued_key(batch), "decided without a parse");
        assert!(has_string_valued_key(br#"{"loop-guard" : "v1"}"#));
    }

    #[test]
    fn taking_the_key_keeps_every_other_byte() {
        let body = br#"{ "id": 340282366920938463463374607431768211455, "loop-guard": "v1.1.00000001-1", "pi": 3.14159265358979323846264338327950288 }"#;
        let (rest, value) = take_lineage(body).unwrap();
        assert_eq!(value, "v1.1.00000001-1");
        assert_eq!(
            String::from_utf8(rest).unwrap(),
            r#"{ "id": 340282366920938463463374607431768211455, "pi": 3.14159265358979323846264338327950288 }"#
        );
        let escaped = br#"{"a":"caf\u00e9","loop-guard":"v1.1.00000001-1"}"#;
        let (rest, _) = take_lineage(escaped).unwrap();
        assert_eq!(rest, br#"{"a":"caf\u00e9"}"#);
    }

    #[test]
    fn the_quoted_key_is_derived_from_the_key() {
        assert_eq!(QUOTED_KEY, format!("\"{KEY}\"").as_bytes());
    }

    #[test]
    fn the_value_lands_in_the_client_context_merged_with_a_callers() {
        let mut ctx = LambdaContext::default();
        put_in_client_context(&mut ctx, "v1.2.00000001-2".into());
        assert_eq!(
            ctx.client_context.as_ref().unwrap().custom[KEY],
            "v1.2.00000001-2"
        );
        put_in_client_context(&mut ctx, "v1.3.00000002-3".into());
        let merged = Lineage::decode(&ctx.client_context.as_ref().unwrap().custom[KEY]).unwrap();
        assert_eq!(merged.count(crate::FunctionId::from_u32(1)), 2);
        assert_eq!(merged.count(crate::FunctionId::from_u32(2)), 3);
        put_in_client_context(&mut ctx, "garbage".into());
        assert_eq!(
            Lineage::decode(&ctx.client_context.as_ref().unwrap().custom[KEY]).unwrap(),
            merged
        );
    }

    proptest::proptest! {
        #[test]
        fn any_body_is_handled_without_panicking(prefix in "\\PC{0,40}", suffix in "\\PC{0,40}") {
            let body = format!("{prefix}\"loop-guard\"{suffix}");
            if let Some((rest, _)) = take_lineage(body.as_bytes()) {
                proptest::prop_assert!(serde_json::from_slice::<Value>(&rest).is_ok());
            }
        }
    }
}
