//! A real `SendMessage` to moto on loopback, with and without the guard's
//! interceptor, as a ratio measured in the same run (docs/performance.md).
//! Starts its own moto (see tests/support).

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

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(30);
    targets = send_message_to_moto
}
criterion_main!(benches);
