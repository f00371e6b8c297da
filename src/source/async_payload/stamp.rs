//! The stamp side of async payloads (feature `lambda`, opt-in with
//! [`stamp_async_payloads`](crate::LoopGuardInterceptor::stamp_async_payloads)):
//! the `loop-guard` key in the JSON-object payload of `InvocationType::Event`
//! invokes, whose client context Lambda drops.

use aws_sdk_lambda::operation::invoke::InvokeInput;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use crate::carrier::JsonKey;
use crate::lineage::Lineage;
use crate::source::StampOptions;

/// Adds the key to an asynchronous invoke's payload when opted in.
pub(crate) fn stamp(invoke: &mut InvokeInput, options: &StampOptions, lineage: &Lineage) {
    if let Some(key) = &options.async_payload {
        if invoke.invocation_type == Some(InvocationType::Event) {
            stamp_payload(&mut invoke.payload, key, lineage);
        }
    }
}

/// Adds `key` to a JSON-object payload. Other payloads (not JSON, not an
/// object) are sent as they are: the trace header still carries the chain.
fn stamp_payload(payload: &mut Option<Blob>, key: &JsonKey, lineage: &Lineage) {
    let Some(text) = payload
        .as_ref()
        .and_then(|p| std::str::from_utf8(p.as_ref()).ok())
    else {
        return;
    };
    if let Some(stamped) = key.stamped_payload(
        text,
        lineage,
        MAX_ASYNC_PAYLOAD_BYTES,
        "async invoke payload",
    ) {
        *payload = Some(Blob::new(stamped));
    }
}

/// Lambda refuses an asynchronous invocation whose payload is larger.
const MAX_ASYNC_PAYLOAD_BYTES: usize = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interceptor::tests::chain;
    use serde_json::json;
    use serde_json::Value;

    #[tokio::test]
    async fn async_payloads_get_the_key_only_when_opted_in_and_asynchronous() {
        use crate::interceptor::tests::run_serialization_hook_with;
        use crate::interceptor::LoopGuardInterceptor;
        let c = chain(2, None);
        let invoke = |kind: InvocationType, payload: &str| {
            InvokeInput::builder()
                .function_name("f")
                .invocation_type(kind)
                .payload(Blob::new(payload))
                .build()
                .unwrap()
        };
        let payload_of = |input: InvokeInput| -> Value {
            serde_json::from_slice(input.payload.unwrap().as_ref()).unwrap()
        };
        let opted = LoopGuardInterceptor::new().stamp_async_payloads();

        let out = run_serialization_hook_with(
            opted.clone(),
            invoke(InvocationType::Event, r#"{"job":1}"#),
            Some(c.clone()),
        )
        .await;
        assert_eq!(
            payload_of(out),
            json!({"job": 1, "loop-guard": c.lineage().to_string()})
        );

        let out = run_serialization_hook_with(
            opted.clone(),
            invoke(InvocationType::RequestResponse, r#"{"job":1}"#),
            Some(c.clone()),
        )
        .await;
        assert_eq!(
            payload_of(out),
            json!({"job": 1}),
            "sync invokes keep the client context carrier"
        );

        let out = run_serialization_hook_with(
            LoopGuardInterceptor::new(),
            invoke(InvocationType::Event, r#"{"job":1}"#),
            Some(c.clone()),
        )
        .await;
        assert_eq!(payload_of(out), json!({"job": 1}), "opt-in");

        let out =
            run_serialization_hook_with(opted, invoke(InvocationType::Event, "[1,2]"), Some(c))
                .await;
        assert_eq!(payload_of(out), json!([1, 2]));
    }
}
