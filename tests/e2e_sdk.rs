//! The interceptor on real aws-sdk clients: 1,000 concurrent guarded
//! invocations sending to moto's SQS through one shared client, and a
//! Lambda -> Lambda invoke captured on loopback (no emulator forwards the
//! Invoke trace header or ClientContext) and fed back into the layer.
#![cfg(all(feature = "sqs", feature = "lambda"))]

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_sqs::types::{
    MessageSystemAttributeName, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
};
use aws_smithy_types::base64;
use lambda_loop_guard::chain::Chain;
use lambda_loop_guard::trace_header::TraceHeader;
use lambda_loop_guard::{FunctionId, Lineage, LoopGuardInterceptor};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use support::setup::guard;
use support::{start_moto, CaptureServer};
use tower::{Layer, ServiceExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_concurrent_invocations_each_stamp_their_own_lineage() {
    const N: usize = 1000;
    let moto = start_moto();
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(LoopGuardInterceptor::new())
            .build(),
    );
    // moto's queues slow down as they fill: spread the messages over 20.
    const QUEUES: usize = 20;
    let mut queue_urls = Vec::new();
    for q in 0..QUEUES {
        let url = sqs
            .create_queue()
            .queue_name(format!("fan-in-{q}"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        queue_urls.push(url);
    }
    let queue_urls = Arc::new(queue_urls);

    let me = FunctionId::from_identity("worker");
    // All 1,000 invocations run at once; at most 32 of them are inside an
    // SDK call at a time, so moto (one Python process) is not flooded with
    // connections. Invocations wait here while holding their own chain.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
    let service = guard("worker", 16).layer(tower::service_fn({
        let sqs = sqs.clone();
        let queue_urls = queue_urls.clone();
        move |event: LambdaEvent<Value>| {
            let sqs = sqs.clone();
            let queue_urls = queue_urls.clone();
            let in_flight = in_flight.clone();
            async move {
                tokio::task::yield_now().await;
                let _permit = in_flight.acquire().await?;
                let n = event.payload["n"].as_u64().unwrap();
                // The body says which lineage this invocation must stamp.
                let expected = Chain::current().unwrap().lineage().to_string();
                sqs.send_message()
                    .queue_url(&queue_urls[n as usize % QUEUES])
                    .message_body(json!({"n": n, "expected": expected}).to_string())
                    .message_system_attributes(
                        MessageSystemAttributeNameForSends::AwsTraceHeader,
                        MessageSystemAttributeValue::builder()
                            .data_type("String")
                            .string_value(format!("Root=1-00000000-{n:024x};Sampled=1"))
                            .build()?,
                    )
                    .send()
                    .await?;
                Ok::<_, lambda_runtime::Error>(())
            }
        }
    }));

    let invocations: Vec<_> = (0..N)
        .map(|n| {
            // Each invocation arrives with its own lineage: an upstream
            // function id that is unique to it, and `n % 10` earlier runs.
            let mut incoming = Lineage::new().record_run(FunctionId::from_u32(n as u32 + 1));
            for _ in 0..n % 10 {
                incoming = incoming.record_run(me);
            }
            let mut context = Context::default();
            context.request_id = format!("req-{n}");
            context.xray_trace_id = Some(
                TraceHeader::parse("Root=1-a-b")
                    .unwrap()
                    .with_lineage(&incoming),
            );
            let service = service.clone();
            tokio::spawn(async move {
                service
                    .oneshot(LambdaEvent::new(json!({ "n": n }), context))
                    .await
            })
        })
        .collect();
    for task in invocations {
        task.await.unwrap().unwrap();
    }

    let plain = aws_sdk_sqs::Client::new(&sdk);
    let mut seen = HashMap::new();
    let mut mismatches = Vec::new();
    let mut next_queue = 0;
    let mut empty_in_a_row = 0;
    while seen.len() < N {
        let queue_url = &queue_urls[next_queue % QUEUES];
        next_queue += 1;
        let messages = plain
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
            .visibility_timeout(600)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        empty_in_a_row = if messages.is_empty() {
            empty_in_a_row + 1
        } else {
            0
        };
        assert!(
            empty_in_a_row <= QUEUES,
            "only {} of {N} messages arrived",
            seen.len()
        );
        for m in messages {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            let n = body["n"].as_u64().unwrap();
            let expected = body["expected"].as_str().unwrap().to_owned();
            let attribute = m.message_attributes().unwrap()["loop-guard"]
                .string_value()
                .unwrap()
                .to_owned();
            let trace =
                m.attributes().unwrap()[&MessageSystemAttributeName::AwsTraceHeader].clone();
            let header = TraceHeader::parse(&trace).unwrap();
            let in_header = header.lineage().map(|l| l.to_string());
            if attribute != expected
                || in_header.as_deref() != Some(expected.as_str())
                || header.root() != Some(format!("1-00000000-{n:024x}").as_str())
            {
                mismatches.push((n, expected.clone(), attribute, trace.clone()));
            }
            assert!(
                seen.insert(n, expected).is_none(),
                "message {n} arrived twice"
            );
        }
    }
    assert_eq!(seen.len(), N);
    assert!(
        mismatches.is_empty(),
        "{} mismatches, e.g. {:?}",
        mismatches.len(),
        mismatches.first()
    );
    // Every expected lineage is distinct, so no two invocations could have
    // been confused without a mismatch.
    let distinct: std::collections::HashSet<_> = seen.values().collect();
    assert_eq!(distinct.len(), N);
}

/// Builds the `Context` the invoked function would get from what the
/// capture server saw.
fn context_from_captured(captured: &support::Captured) -> Context {
    let mut context = Context::default();
    context.xray_trace_id = captured.header("x-amzn-trace-id").map(str::to_owned);
    if let Some(encoded) = captured.header("x-amz-client-context") {
        let decoded: Value = serde_json::from_slice(&base64::decode(encoded).unwrap()).unwrap();
        context.client_context = Some(serde_json::from_value(decoded).unwrap());
    }
    context
}

#[tokio::test]
async fn lambda_invoke_carries_header_and_client_context_hop_by_hop() {
    let server = CaptureServer::start("{}").await;
    let sdk = server.sdk_config().await;
    let lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::config::Builder::from(&sdk)
            .interceptor(LoopGuardInterceptor::new())
            .build(),
    );
    let theirs =
        base64::encode(json!({"custom": {"tenant": "t-1"}, "env": {"stage": "test"}}).to_string());
    let me = FunctionId::from_identity("recursive-fn");
    let service = guard("recursive-fn", 3).layer(tower::service_fn({
        let lambda = lambda.clone();
        let theirs = theirs.clone();
        move |_: LambdaEvent<Value>| {
            let lambda = lambda.clone();
            let theirs = theirs.clone();
            async move {
                lambda
                    .invoke()
                    .function_name("recursive-fn")
                    .client_context(theirs)
                    .payload(aws_sdk_lambda::primitives::Blob::new("{}"))
                    .send()
                    .await?;
                Ok::<_, lambda_runtime::Error>(())
            }
        }
    }));

    // Hop 1 arrives with AWS's fields only (no env var: concurrent mode).
    let first = "Root=1-6740a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=1:fe460cdd:0";
    let mut context = Context::default();
    context.xray_trace_id = Some(first.to_owned());
    let mut runs = 0;
    let error = loop {
        match service
            .clone()
            .oneshot(LambdaEvent::new(json!({}), context))
            .await
        {
            Ok(()) => runs += 1,
            Err(e) => break e,
        }
        let captured = server.take();
        assert_eq!(captured.len(), 1);
        let request = &captured[0];
        assert!(
            request
                .request_line
                .contains("/functions/recursive-fn/invocations"),
            "{}",
            request.request_line
        );
        assert_eq!(request.header_count("x-amzn-trace-id"), 1);
        let header = request.header("x-amzn-trace-id").unwrap();
        // AWS's fields arrive unchanged; ours is appended once.
        assert!(header.starts_with(first), "{header}");
        assert_eq!(header.matches("LoopGuard=").count(), 1, "{header}");
        let stamped = TraceHeader::parse(header).unwrap().lineage().unwrap();
        assert_eq!(stamped.count(me), runs);
        let client_context: Value = serde_json::from_slice(
            &base64::decode(request.header("x-amz-client-context").unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(client_context["custom"]["tenant"], "t-1");
        assert_eq!(client_context["env"]["stage"], "test");
        assert_eq!(client_context["custom"]["loop-guard"], stamped.to_string());
        context = context_from_captured(request);
    };
    assert_eq!(runs, 3);
    assert_eq!(error.as_dropped().unwrap().depth(), 4);
    assert!(
        server.take().is_empty(),
        "a dropped invocation makes no call"
    );
}
