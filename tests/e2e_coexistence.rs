//! Coexistence with the AWS SDK's own `RecursionDetectionInterceptor`: with
//! `AWS_LAMBDA_FUNCTION_NAME` and `_X_AMZN_TRACE_ID` set (Lambda's sequential
//! mode), the SDK sets `x-amzn-trace-id` from the variable; the guard keeps
//! Root/Parent/Sampled/Lineage byte for byte and adds its field exactly once.
//!
//! This file holds a single test because it sets process environment
//! variables, which no other test may observe.
#![cfg(feature = "sqs")]

mod support;

use lambda_loop_guard::trace_header::TraceHeader;
use lambda_loop_guard::{
    FunctionId, Lineage, LoopGuardConfig, LoopGuardInterceptor, LoopGuardLayer,
};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use support::CaptureServer;
use tower::{Layer, ServiceExt};

const ENV_TRACE: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5";

#[tokio::test]
async fn sdk_recursion_detection_header_is_kept_and_ours_appended_once() {
    // Set before any client exists; this test binary has no other test.
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "coexisting-fn");
    std::env::set_var("_X_AMZN_TRACE_ID", ENV_TRACE);

    let server = CaptureServer::start(r#"{"MessageId":"m-1","MD5OfMessageBody":"x"}"#).await;
    let sdk = server.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(LoopGuardInterceptor::new())
            .build(),
    );
    let config = LoopGuardConfig::builder().build_from_env().unwrap();
    assert_eq!(config.function_identity(), "coexisting-fn");
    let service = LoopGuardLayer::new(config)
        .metric_sink(())
        .layer(tower::service_fn(move |_: LambdaEvent<Value>| {
            let sqs = sqs.clone();
            async move {
                // The call's outcome does not matter: the request is what we check.
                let _ = sqs
                    .send_message()
                    .queue_url("http://queue")
                    .message_body("b")
                    .send()
                    .await;
                Ok::<_, lambda_runtime::Error>(())
            }
        }));

    // The invocation's own trace id differs from the env var on purpose:
    // the header must come from the SDK's interceptor (the env var).
    let me = FunctionId::from_identity("coexisting-fn");
    let incoming = Lineage::new().record_run(me).record_run(me);
    let mut context = Context::default();
    context.xray_trace_id = Some(
        TraceHeader::parse("Root=1-00000000-000000000000000000000000")
            .unwrap()
            .with_lineage(&incoming),
    );
    service
        .oneshot(LambdaEvent::new(json!({}), context))
        .await
        .unwrap();

    let captured = server.take();
    assert!(!captured.is_empty());
    for request in &captured {
        assert_eq!(request.header_count("x-amzn-trace-id"), 1);
        let header = request.header("x-amzn-trace-id").unwrap();
        let parsed = TraceHeader::parse(header).unwrap();
        assert!(header.starts_with(ENV_TRACE), "{header}");
        assert_eq!(parsed.root(), Some("1-5759e988-bd862e3fe1be46a994272793"));
        assert_eq!(parsed.parent(), Some("53995c3f42cd8ad8"));
        assert_eq!(parsed.sampled(), Some("1"));
        assert_eq!(parsed.get("Lineage"), Some("a87bd80c:1|68fd508a:5"));
        assert_eq!(header.matches("LoopGuard=").count(), 1, "{header}");
        assert_eq!(parsed.lineage().unwrap().count(me), 3);
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body["MessageAttributes"]["loop-guard"]["StringValue"],
            parsed.lineage().unwrap().to_string()
        );
    }
}
