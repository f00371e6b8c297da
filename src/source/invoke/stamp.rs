//! The stamp side of direct invokes (feature `lambda`): `loop-guard` merged
//! into the `ClientContext.custom` map of `Invoke` and
//! `InvokeWithResponseStream`.
//!
//! The client context is base64-encoded JSON of at most 3,583 bytes, and it
//! reaches the function only for synchronous invocations. The caller's keys
//! are kept; when adding ours would break the limit, or the caller's value is
//! not base64 JSON, the caller's value is left as is and ours is skipped.
//!
//! The opt-in payload key of asynchronous invokes is the
//! [`async_payload`](crate::source::async_payload) source's.

use aws_sdk_lambda::operation::invoke::InvokeInput;
use aws_sdk_lambda::operation::invoke_with_response_stream::InvokeWithResponseStreamInput;
use aws_smithy_runtime_api::client::interceptors::context::Input;
use aws_smithy_types::base64;
use serde_json::{Map, Value};

use super::MAX_CLIENT_CONTEXT_LEN;
use crate::carrier::KEY;
use crate::lineage::Lineage;
use crate::source::StampOptions;

pub(crate) fn stamp(input: &mut Input, options: &StampOptions, lineage: &Lineage) -> bool {
    if let Some(invoke) = input.downcast_mut::<InvokeInput>() {
        stamp_client_context(&mut invoke.client_context, lineage);
        crate::source::async_payload::stamp::stamp(invoke, options, lineage);
        return true;
    }
    if let Some(invoke) = input.downcast_mut::<InvokeWithResponseStreamInput>() {
        stamp_client_context(&mut invoke.client_context, lineage);
        return true;
    }
    false
}

fn stamp_client_context(client_context: &mut Option<String>, lineage: &Lineage) {
    match merged_client_context(client_context.as_deref(), lineage) {
        Ok(merged) => *client_context = Some(merged),
        Err(reason) => tracing::warn!(
            reason,
            "loop guard client context not added; the caller's is kept"
        ),
    }
}

/// The caller's client context (if any) with our key added to `custom`.
pub(crate) fn merged_client_context(
    existing: Option<&str>,
    lineage: &Lineage,
) -> Result<String, &'static str> {
    let mut document = match existing {
        None => Map::new(),
        Some(encoded) => {
            let bytes = base64::decode(encoded).map_err(|_| "client context is not base64")?;
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => map,
                _ => return Err("client context is not a JSON object"),
            }
        }
    };
    let custom = document
        .entry("custom")
        .or_insert_with(|| Value::Object(Map::new()));
    match custom {
        Value::Object(custom) => {
            custom.insert(KEY.to_owned(), Value::String(lineage.to_text()));
        }
        _ => return Err("client context `custom` is not a JSON object"),
    }
    let encoded = base64::encode(Value::Object(document).to_string());
    if encoded.len() > MAX_CLIENT_CONTEXT_LEN {
        return Err("client context would exceed 3,583 bytes");
    }
    Ok(encoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interceptor::tests::{chain, run_serialization_hook};
    use serde_json::json;

    fn decode(s: &str) -> Value {
        serde_json::from_slice(&base64::decode(s).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn invoke_without_context_gets_one() {
        let c = chain(3, None);
        let out = run_serialization_hook(
            InvokeInput::builder().function_name("f").build().unwrap(),
            Some(c.clone()),
        )
        .await;
        assert_eq!(
            decode(out.client_context.as_deref().unwrap()),
            json!({"custom": {"loop-guard": c.lineage().to_string()}})
        );
    }

    #[tokio::test]
    async fn caller_keys_are_kept() {
        let c = chain(1, None);
        let theirs = base64::encode(
            json!({"client": {"app_title": "x"}, "custom": {"tenant": "t-1"}, "env": {"a": "b"}})
                .to_string(),
        );
        let out = run_serialization_hook(
            InvokeWithResponseStreamInput::builder()
                .function_name("f")
                .client_context(theirs)
                .build()
                .unwrap(),
            Some(c.clone()),
        )
        .await;
        assert_eq!(
            decode(out.client_context.as_deref().unwrap()),
            json!({"client": {"app_title": "x"}, "custom": {"tenant": "t-1", "loop-guard": c.lineage().to_string()}, "env": {"a": "b"}})
        );
    }

    proptest::proptest! {
        #[test]
        fn merging_any_client_context_never_panics(theirs in proptest::option::of("\\PC{0,200}"), json in "\\PC{0,200}") {
            let l = crate::Lineage::new().record_run(crate::FunctionId::from_u32(1));
            let _ = merged_client_context(theirs.as_deref(), &l);
            let encoded = base64::encode(json);
            if let Ok(merged) = merged_client_context(Some(&encoded), &l) {
                proptest::prop_assert!(merged.len() <= MAX_CLIENT_CONTEXT_LEN);
                let v = decode(&merged);
                proptest::prop_assert_eq!(&v["custom"]["loop-guard"], &Value::String(l.to_string()));
            }
        }
    }

    #[tokio::test]
    async fn over_the_limit_or_invalid_keeps_theirs() {
        let c = chain(1, None);
        let big = base64::encode(json!({"custom": {"blob": "x".repeat(2660)}}).to_string());
        assert!(big.len() <= MAX_CLIENT_CONTEXT_LEN);
        for theirs in [
            big,
            "%%%not base64".to_string(),
            base64::encode("[1,2]"),
            base64::encode("{\"custom\": 5}"),
        ] {
            let out = run_serialization_hook(
                InvokeInput::builder()
                    .function_name("f")
                    .client_context(theirs.clone())
                    .build()
                    .unwrap(),
                Some(c.clone()),
            )
            .await;
            assert_eq!(out.client_context.as_deref(), Some(theirs.as_str()));
        }
    }
}
