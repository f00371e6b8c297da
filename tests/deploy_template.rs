//! `deploy/template.yaml`, the deploy recipe, proven on an emulator: linted
//! with cfn-lint, deployed to ministack (which applies the SAM transform
//! with aws-sam-translator) with a `bootstrap` built from
//! `examples/loop_function.rs` (a function that writes back to its own
//! queue), then a loop is seeded: it stops at the template's max depth, the
//! looping message is in the template's DLQ, and the alarms exist.
#![cfg(all(feature = "sqs", feature = "sns"))]

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};
use lambda_loop_guard::{FunctionId, Lineage};
use support::functions::Clients;

const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/template.yaml");

#[test]
fn the_template_passes_cfn_lint() {
    let out = Command::new(support::venv().join("bin/cfn-lint"))
        .arg(TEMPLATE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cfn-lint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_template_stops_a_loop_at_max_depth_with_the_message_in_its_dlq() {
    const MAX_DEPTH: u16 = 3;
    let emulator = support::start_ministack();
    let config = emulator.sdk_config().await;
    let c = Clients::new(&emulator).await;
    let s3 = emulator.s3_client().await;
    let cloudformation = aws_sdk_cloudformation::Client::new(&config);

    // `sam deploy` uploads the code; here, by hand.
    s3.create_bucket().bucket("artifacts").send().await.unwrap();
    let zip = support::bootstrap_zip(&support::example_binary("loop_function"));
    s3.put_object()
        .bucket("artifacts")
        .key("loop_function.zip")
        .body(aws_sdk_s3::primitives::ByteStream::from(zip))
        .send()
        .await
        .unwrap();

    let parameter = |key: &str, value: &str| {
        Parameter::builder()
            .parameter_key(key)
            .parameter_value(value)
            .build()
    };
    cloudformation
        .create_stack()
        .stack_name("guarded")
        .template_body(std::fs::read_to_string(TEMPLATE).unwrap())
        .parameters(parameter("CodeBucket", "artifacts"))
        .parameters(parameter("CodeKey", "loop_function.zip"))
        .parameters(parameter("LoopGuardMode", "terminate"))
        .parameters(parameter("LoopGuardMaxDepth", &MAX_DEPTH.to_string()))
        .parameters(parameter("EndpointUrl", &emulator.endpoint()))
        // Redeliveries within the test's patience, room for cold starts.
        .parameters(parameter("FunctionTimeout", "6"))
        .parameters(parameter("QueueVisibilityTimeout", "6"))
        // ministack refuses metric-math alarms (cfn-lint checks this one):
        // the default, false.
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityAutoExpand)
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let stack = loop {
        let stack = cloudformation
            .describe_stacks()
            .stack_name("guarded")
            .send()
            .await
            .unwrap()
            .stacks
            .unwrap()
            .remove(0);
        match stack.stack_status() {
            Some(StackStatus::CreateComplete) => break stack,
            Some(StackStatus::CreateInProgress) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            other => {
                let events = cloudformation
                    .describe_stack_events()
                    .stack_name("guarded")
                    .send()
                    .await
                    .unwrap();
                let failed: Vec<String> = events
                    .stack_events()
                    .iter()
                    .filter(|e| e.resource_status_reason().is_some_and(|r| !r.is_empty()))
                    .map(|e| {
                        format!(
                            "{:?} {:?}: {:?}",
                            e.logical_resource_id(),
                            e.resource_status(),
                            e.resource_status_reason()
                        )
                    })
                    .collect();
                panic!(
                    "stack {other:?}: {:?}\n{failed:#?}\n{}",
                    stack.stack_status_reason(),
                    emulator.log_tail()
                )
            }
        }
    };
    let outputs: HashMap<String, String> = stack
        .outputs()
        .iter()
        .map(|o| {
            (
                o.output_key().unwrap().to_owned(),
                o.output_value().unwrap().to_owned(),
            )
        })
        .collect();
    let function = &outputs["FunctionName"];

    // The alarms of the recipe exist.
    let resources = cloudformation
        .describe_stack_resources()
        .stack_name("guarded")
        .send()
        .await
        .unwrap();
    let alarms: Vec<&str> = resources
        .stack_resources()
        .iter()
        .filter(|r| r.resource_type() == Some("AWS::CloudWatch::Alarm"))
        .filter_map(|r| r.logical_resource_id())
        .collect();
    for alarm in ["DropsAlarm", "WouldDropAlarm", "DeadLettersAlarm"] {
        assert!(alarms.contains(&alarm), "{alarm} in {alarms:?}");
    }
    // The event source mapping reports batch item failures.
    let mappings = c
        .lambda
        .list_event_source_mappings()
        .function_name(function)
        .send()
        .await
        .unwrap();
    let mapping = &mappings.event_source_mappings()[0];
    assert_eq!(
        mapping.function_response_types(),
        [aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures]
    );

    // A user request starts the loop.
    c.sqs
        .send_message()
        .queue_url(&outputs["QueueUrl"])
        .message_body("first order")
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut dead = Vec::new();
    while dead.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        dead = c.drain(&outputs["DeadLetterQueueUrl"]).await;
    }
    c.lambda
        .delete_event_source_mapping()
        .uuid(mapping.uuid().unwrap())
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let logs = c.log_text(function).await;
    let me = FunctionId::from_identity(function);
    let counts: Vec<u16> = logs
        .lines()
        .filter(|l| l.contains("loop-guard-e2e run"))
        .map(|l| {
            let lineage: Lineage = l.rsplit("lineage=").next().unwrap().trim().parse().unwrap();
            lineage.count(me)
        })
        .collect();
    assert_eq!(counts, [1, 2, 3], "runs 1 to max depth\n{logs}");
    assert_eq!(dead.len(), 1, "the looping message is in the DLQ");
    assert_eq!(
        logs.matches("\"RecursiveInvocationsDropped\":1").count(),
        3,
        "dropped on each of the queue's maxReceiveCount deliveries"
    );
    assert!(c.drain(&outputs["QueueUrl"]).await.is_empty());
}
