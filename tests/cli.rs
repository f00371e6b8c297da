//! The `loop-guard` command-line tool, run as a process: `id`, `forge` and
//! `decode` against the library's own wire format and drop lines, and
//! `redrive` against moto's SQS, killed halfway and run again: every
//! message accounted for, our lineage gone, everything else kept.
#![cfg(feature = "cli")]

mod support;

use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use lambda_loop_guard::{FunctionId, Lineage};

const BIN: &str = env!("CARGO_BIN_EXE_loop-guard");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn id_prints_the_wire_ids() {
    assert_eq!(
        stdout(&["id", "orders", "billing"]),
        format!(
            "orders {}\nbilling {}\n",
            FunctionId::from_identity("orders"),
            FunctionId::from_identity("billing")
        )
    );
}

#[test]
fn forge_makes_a_lineage_at_the_given_depth_in_every_form() {
    let lineage: Lineage = stdout(&[
        "forge",
        "--depth",
        "9",
        "--function",
        "orders",
        "--as",
        "lineage",
    ])
    .trim()
    .parse()
    .unwrap();
    assert_eq!(lineage.count(FunctionId::from_identity("orders")), 9);
    assert_eq!(lineage.hops(), 9);
    let header = stdout(&[
        "forge",
        "--depth",
        "9",
        "--function",
        "orders",
        "--as",
        "header",
    ]);
    assert_eq!(header.trim(), format!("LoopGuard={lineage}"));
    let attribute: serde_json::Value =
        serde_json::from_str(&stdout(&["forge", "--depth", "9", "--function", "orders"])).unwrap();
    assert_eq!(attribute["loop-guard"]["StringValue"], lineage.to_string());
    assert_eq!(attribute["loop-guard"]["DataType"], "String");
}

#[test]
fn decode_reads_lineages_headers_and_log_lines() {
    let orders = FunctionId::from_identity("orders");
    let billing = FunctionId::from_identity("billing");
    let lineage = Lineage::new()
        .record_run(orders)
        .record_run(billing)
        .record_run(orders);
    let expected = format!("hops: 3\norders ({orders}): 2 run(s)\nbilling ({billing}): 1 run(s)\n");
    let names = "--names=orders,billing";
    assert_eq!(stdout(&["decode", &lineage.to_string(), names]), expected);
    let header = format!("Root=1-67891233-abcdef012345678912345678;LoopGuard={lineage};Sampled=1");
    assert_eq!(
        stdout(&["decode", &header, names]),
        expected.replacen(
            "hops: 3\n",
            "hops: 3\nchain root: 1-67891233-abcdef012345678912345678\n",
            1
        )
    );
    let text_log = format!("WARN recursive loop stopped Lineage={lineage} Depth=3");
    assert_eq!(stdout(&["decode", &text_log, names]), expected);
    // A budgeted chain (wire v2): its id and the budget left.
    let chain = lambda_loop_guard::lineage::ChainId::from_u64(0xc0ffee).unwrap();
    let budgeted = Lineage::new().with_budget(chain, 20).record_run(orders);
    assert_eq!(
        stdout(&["decode", &budgeted.to_string(), names]),
        format!(
            "hops: 1\nchain id: 0000000000c0ffee\nbudget left for this subtree: 19 run(s)\n\
             orders ({orders}): 1 run(s)\n"
        )
    );
    // Unnamed ids are shown as ids.
    assert!(stdout(&["decode", &lineage.to_string()])
        .contains(&format!("function {billing}: 1 run(s)")));
    let nothing = run(&["decode", "no lineage in here"]);
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("no lineage found"));
}

#[tokio::test]
async fn decode_reads_a_real_drop_line() {
    use lambda_loop_guard::{LoopGuardConfig, LoopGuardLayer};
    use tower::{Layer, ServiceExt};
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let guard = LoopGuardLayer::new(
        LoopGuardConfig::builder()
            .function_identity("orders")
            .max_depth(2)
            .build()
            .unwrap(),
    )
    .metric_sink(move |l: &str| sink.lock().unwrap().push(l.to_owned()));
    let svc = guard.layer(tower::service_fn(
        |_: lambda_runtime::LambdaEvent<serde_json::Value>| async {
            Ok::<_, lambda_runtime::Error>(())
        },
    ));
    let deep = (0..2).fold(Lineage::new(), |l, _| {
        l.record_run(FunctionId::from_identity("orders"))
    });
    let mut context = lambda_runtime::Context::default();
    context.xray_trace_id = Some(format!(
        "Root=1-5759e988-bd862e3fe1be46a994272793;LoopGuard={deep}"
    ));
    assert!(svc
        .oneshot(lambda_runtime::LambdaEvent::new(
            serde_json::json!({}),
            context
        ))
        .await
        .is_err());
    let line = lines.lock().unwrap()[0].clone();
    let decoded = stdout(&["decode", &line, "--names", "orders"]);
    assert_eq!(
        decoded,
        format!(
            "hops: 2\nchain root: 1-5759e988-bd862e3fe1be46a994272793\norders ({}): 2 run(s)\n",
            FunctionId::from_identity("orders")
        )
    );
}

/// The environment that points the tool's AWS configuration at `endpoint`.
fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_killed_halfway_loses_nothing_and_removes_only_our_lineage() {
    const N: usize = 20;
    let moto = support::start_moto();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let url = |name: &str| {
        let sqs = sqs.clone();
        let name = name.to_owned();
        async move {
            sqs.create_queue()
                .queue_name(name)
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap()
        }
    };
    let (dlq, queue) = (url("orders-dlq").await, url("orders").await);
    let deep = (0..10).fold(Lineage::new(), |l, _| {
        l.record_run(FunctionId::from_identity("orders"))
    });
    let string = |v: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(v)
            .build()
            .unwrap()
    };
    let header = format!("Root=1-5759e988-bd862e3fe1be46a994272793;LoopGuard={deep};Sampled=1");
    for n in 0..N {
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(format!("order {n}"))
            .message_attributes("loop-guard", string(&deep.to_string()))
            .message_attributes("tenant", string(&format!("tenant-{n}")))
            .message_attributes(
                "blob",
                MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(aws_sdk_sqs::primitives::Blob::new(vec![
                        0, 159, 146, n as u8,
                    ]))
                    .build()
                    .unwrap(),
            )
            .message_system_attributes(
                aws_sdk_sqs::types::MessageSystemAttributeNameForSends::AwsTraceHeader,
                aws_sdk_sqs::types::MessageSystemAttributeValue::builder()
                    .data_type("String")
                    .string_value(&header)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }

    // A dry run moves nothing.
    let dry = Command::new(BIN)
        .args(["redrive", "--from", &dlq, "--to", &queue, "--dry-run"])
        .envs(aws_env(&moto.endpoint()))
        .output()
        .unwrap();
    let dry_out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        dry_out.contains(&format!("would move {N} message(s)")),
        "{dry_out}"
    );
    assert!(
        dry_out.contains(&format!("lineage removed (attribute {deep}")),
        "{dry_out}"
    );

    // A gentle redrive, killed once a few messages have moved.
    let mut child = Command::new(BIN)
        .args([
            "redrive",
            "--from",
            &dlq,
            "--to",
            &queue,
            "--interval-ms",
            "150",
            "--visibility-timeout",
            "2",
        ])
        .envs(aws_env(&moto.endpoint()))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut moved_before_kill = 0;
    while moved_before_kill < 3 {
        assert!(started.elapsed() < Duration::from_secs(60), "nothing moved");
        tokio::time::sleep(Duration::from_millis(50)).await;
        moved_before_kill = count(&sqs, &queue).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(moved_before_kill < N, "killed halfway");

    // Run again to the end, once the message the killed run held (if any)
    // is visible again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = Command::new(BIN)
        .args(["redrive", "--from", &dlq, "--to", &queue])
        .envs(aws_env(&moto.endpoint()))
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let received = support::functions::drain_queue(&sqs, &queue).await;
    let mut bodies: HashMap<String, usize> = HashMap::new();
    for m in &received {
        *bodies.entry(m.body.clone().unwrap()).or_default() += 1;
        let n: usize = m.body.as_deref().unwrap()[6..].parse().unwrap();
        let attributes = m.message_attributes.as_ref().unwrap();
        assert!(
            !attributes.contains_key("loop-guard"),
            "our lineage is gone"
        );
        assert_eq!(
            attributes["tenant"].string_value.as_deref(),
            Some(format!("tenant-{n}").as_str())
        );
        assert_eq!(
            attributes["blob"].binary_value.as_ref().unwrap().as_ref(),
            [0, 159, 146, n as u8]
        );
        assert_eq!(
            m.attributes.as_ref().unwrap()[&MessageSystemAttributeName::AwsTraceHeader],
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            "the trace header without our field, every other byte kept"
        );
    }
    assert_eq!(bodies.len(), N, "every message arrived: {bodies:?}");
    let duplicates: usize = bodies.values().map(|c| c - 1).sum();
    assert!(
        duplicates <= 1,
        "at most the one in flight at the kill: {bodies:?}"
    );
    assert!(
        support::functions::drain_queue(&sqs, &dlq).await.is_empty(),
        "the DLQ is empty"
    );
}

async fn count(sqs: &aws_sdk_sqs::Client, url: &str) -> usize {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    attributes[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages]
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_that_cannot_send_deletes_nothing() {
    const N: usize = 5;
    let moto = support::start_moto();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let dlq = sqs
        .create_queue()
        .queue_name("dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for n in 0..N {
        sqs.send_message()
            .queue_url(&dlq)
            .message_body(format!("order {n}"))
            .send()
            .await
            .unwrap();
    }
    let missing = dlq.replace("/dlq", "/no-such-queue");
    let out = Command::new(BIN)
        .args([
            "redrive",
            "--from",
            &dlq,
            "--to",
            &missing,
            "--visibility-timeout",
            "1",
        ])
        .envs(aws_env(&moto.endpoint()))
        .output()
        .unwrap();
    assert!(!out.status.success(), "a failed send is an error");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("it stays in the DLQ"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        support::functions::drain_queue(&sqs, &dlq).await.len(),
        N,
        "nothing deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_redrive_is_not_taken_for_a_duplicate_of_the_original() {
    let moto = support::start_moto();
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let fifo = |name: &'static str| {
        let sqs = sqs.clone();
        async move {
            sqs.create_queue()
                .queue_name(name)
                .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap()
        }
    };
    let (queue, dlq) = (fifo("orders.fifo").await, fifo("orders-dlq.fifo").await);
    // The original went through the queue seconds ago (and looped), its
    // copy is in the DLQ with the same deduplication id.
    for url in [&queue, &dlq] {
        sqs.send_message()
            .queue_url(url)
            .message_body("order 1")
            .message_group_id("g")
            .message_deduplication_id("order-1")
            .send()
            .await
            .unwrap();
    }
    // The original left the queue (moved to the DLQ: here, consumed).
    let original = support::functions::drain_queue(&sqs, &queue).await;
    sqs.delete_message()
        .queue_url(&queue)
        .receipt_handle(original[0].receipt_handle.clone().unwrap())
        .send()
        .await
        .unwrap();
    let out = Command::new(BIN)
        .args(["redrive", "--from", &dlq, "--to", &queue])
        .envs(aws_env(&moto.endpoint()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let arrived = support::functions::drain_queue(&sqs, &queue).await;
    assert_eq!(arrived.len(), 1, "the redriven copy arrived");
    // Its own deduplication id: the original's, within SQS's five-minute
    // window after the original was sent, would make SQS accept the send and
    // enqueue nothing (moto forgets deleted messages, so it is checked here).
    let dedup = &arrived[0].attributes.as_ref().unwrap()
        [&MessageSystemAttributeName::MessageDeduplicationId];
    assert!(dedup.starts_with("redrive-"), "{dedup}");
    assert_eq!(
        arrived[0].attributes.as_ref().unwrap()[&MessageSystemAttributeName::MessageGroupId],
        "g"
    );
}
