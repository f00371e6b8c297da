//! A real `SendMessage` to moto on loopback, with and without the guard's
//! interceptor, as a ratio measured in the same run; and the exact chain
//! budget's claim on moto's DynamoDB, per guarded invocation
//! (docs/performance.md). Starts its own moto (see tests/support).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use lambda_loop_guard::chain::Chain;
use lambda_loop_guard::{FunctionId, Lineage, LoopGuardInterceptor};

fn send_message_to_moto(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let moto = support::start_moto();
    let sdk = rt.block_on(moto.sdk_config());
    let bare = aws_sdk_sqs::Client::new(&sdk);
    let guarded = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(LoopGuardInterceptor::new())
            .build(),
    );
    let queue_url = rt
        .block_on(bare.create_queue().queue_name("bench").send())
        .unwrap()
        .queue_url
        .unwrap();
    let chain = Chain::new(
        Lineage::new().record_run(FunctionId::from_identity("bench-fn")),
        None,
    );
    let send = |client: &aws_sdk_sqs::Client| {
        let (client, chain, url) = (client.clone(), chain.clone(), queue_url.clone());
        async move {
            chain
                .scope(
                    client
                        .send_message()
                        .queue_url(url)
                        .message_body("hello")
                        .send(),
                )
                .await
                .unwrap()
        }
    };
    let mut group = c.benchmark_group("moto");
    // Interleaved: moto slows down as the queue fills, so each variant is
    // timed right after a call of the other.
    group.bench_function("send_message/bare", |b| {
        common::interleaved(
            b,
            || drop(rt.block_on(send(&bare))),
            || drop(rt.block_on(send(&guarded))),
        )
    });
    group.bench_function("send_message/guarded", |b| {
        common::interleaved(
            b,
            || drop(rt.block_on(send(&guarded))),
            || drop(rt.block_on(send(&bare))),
        )
    });
    group.finish();
    common::print_paired(
        "moto/send_message/paired",
        common::paired_differences(
            500,
            || drop(rt.block_on(send(&bare))),
            || drop(rt.block_on(send(&guarded))),
        ),
    );
    // Drain so the queue does not grow without bound between runs.
    let _ = rt.block_on(bare.purge_queue().queue_url(&queue_url).send());
}

/// One SQS record of a budgeted chain through the guard, with and without
/// the exact budget's `UpdateItem` on moto (a budget no run exhausts).
fn exact_budget_claim_on_moto(c: &mut Criterion) {
    use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
    use lambda_loop_guard::exact_budget::{DynamoDbBudgetStore, ExactBudget};
    use lambda_loop_guard::testing::{context, sqs_event, sqs_message};
    use lambda_loop_guard::{ChainId, LoopGuardConfig, LoopGuardLayer};
    use lambda_runtime::LambdaEvent;
    use tower::{service_fn, Layer, ServiceExt};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let moto = support::start_moto();
    let dynamodb = aws_sdk_dynamodb::Client::new(&rt.block_on(moto.sdk_config()));
    rt.block_on(support::create_table(&dynamodb, "budgets", "id"));
    let config = LoopGuardConfig::builder()
        .function_identity("bench-fn")
        .max_depth(10_000)
        .chain_budget(u32::MAX)
        .build()
        .unwrap();
    let handler = service_fn(|_: LambdaEvent<SqsEvent>| async {
        Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
    });
    let plain = LoopGuardLayer::new(config.clone())
        .metric_sink(())
        .layer(handler);
    let exact = LoopGuardLayer::new(config)
        .metric_sink(())
        .with_exact_budget(ExactBudget::new(DynamoDbBudgetStore::new(
            dynamodb, "budgets",
        )))
        .layer(handler);
    let lineage = Lineage::new()
        .with_budget(ChainId::from_u64(7).unwrap(), u32::MAX)
        .record_run(FunctionId::from_identity("upstream"));
    let event = || {
        LambdaEvent::new(
            sqs_event(vec![sqs_message("m-1", Some(&lineage))]),
            context(),
        )
    };
    let run_plain = || {
        let response = rt.block_on(plain.clone().oneshot(event())).unwrap();
        assert!(response.batch_item_failures.is_empty());
    };
    let run_exact = || {
        let response = rt.block_on(exact.clone().oneshot(event())).unwrap();
        assert!(response.batch_item_failures.is_empty());
    };
    let mut group = c.benchmark_group("moto");
    group.bench_function("exact_budget/plain_guard", |b| {
        common::interleaved(b, run_plain, run_exact)
    });
    group.bench_function("exact_budget/claimed", |b| {
        common::interleaved(b, run_exact, run_plain)
    });
    group.finish();
    common::print_paired(
        "moto/exact_budget/paired",
        common::paired_differences(500, run_plain, run_exact),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(30);
    targets = send_message_to_moto, exact_budget_claim_on_moto
}
criterion_main!(benches);
