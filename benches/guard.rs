//! What the guard costs, as ratios against a baseline measured in the same
//! run (see docs/performance.md):
//!
//! * `trace_header/*`: parse a header, read our field, write it back stamped;
//! * `lineage/*`: decode and encode at 1 and 16 entries;
//! * `layer/*`: the same handler bare and behind `LoopGuardLayer`, for a
//!   direct invocation and AWS-shaped SQS batches of 10 and 10,000 records
//!   (small and 4 KB JSON bodies), next to what lambda_runtime spends
//!   deserializing the same event and to the floor (`tests/support/floor.rs`:
//!   both carriers found and compared, the header in a task-local); 10,000
//!   looping records;
//! * `interceptor/*`: `SendMessage` on an in-process HTTP client (no
//!   network): bare, with the SDK's own recursion detection active, with ours,
//!   and with both; and the paired differences guarded - bare (median, IQR),
//!   next to those of the floor (`tests/support/sdk_floor.rs`: an interceptor
//!   that only writes both stamps, their values ready);
//! * `interceptor_hooks/*`: the two hooks alone, and the SDK's own cost of
//!   the two stamps.

mod common;
#[path = "../tests/support/fixtures.rs"]
mod fixtures;
#[path = "../tests/support/floor.rs"]
mod floor;
#[path = "../tests/support/sdk_floor.rs"]
mod sdk_floor;

use std::hint::black_box;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_smithy_types::body::SdkBody;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lambda_loop_guard::chain::Chain;
use lambda_loop_guard::trace_header::TraceHeader;
use lambda_loop_guard::{
    FunctionId, Lineage, LoopGuardConfig, LoopGuardInterceptor, LoopGuardLayer,
};
use lambda_runtime::{Context, LambdaEvent};
use tower::{service_fn, Layer, ServiceExt};

use common::{interleaved, paired_differences, paired_differences_with, print_paired};
use fixtures::{aws_shaped_sqs_event, json_body_4k, TYPICAL_TRACE_HEADER as TYPICAL};

fn big_header() -> String {
    let mut h =
        String::from("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
    let mut i = 0;
    while h.len() < 2000 {
        h.push_str(&format!(";Custom{i}=abcdefghijklmnopqrstuvwxyz0123456789"));
        i += 1;
    }
    h.push_str(";LoopGuard=v1.3.bb687fa2-2.eca4390e-1");
    h
}

fn lineage_with(entries: u32) -> Lineage {
    let mut l = Lineage::new();
    for n in 0..entries {
        let mut one = Lineage::new();
        for _ in 0..=n % 7 {
            one = one.record_run(FunctionId::from_u32(0x1000_0000 + n * 7919));
        }
        l.merge(&one);
    }
    l
}

fn trace_header(c: &mut Criterion) {
    let mut group = c.benchmark_group("trace_header");
    let big = big_header();
    let next = lineage_with(2).record_run(FunctionId::from_identity("me"));
    for (name, raw) in [("typical_150B", TYPICAL), ("large_2KiB", big.as_str())] {
        group.throughput(Throughput::Bytes(raw.len() as u64));
        group.bench_function(format!("parse_read/{name}"), |b| {
            b.iter(|| {
                let h = TraceHeader::parse(black_box(raw)).unwrap();
                black_box(h.root_and_lineage())
            })
        });
        let mut out = String::with_capacity(raw.len() + 64);
        group.bench_function(format!("parse_read_stamp/{name}"), |b| {
            b.iter(|| {
                let h = TraceHeader::parse(black_box(raw)).unwrap();
                let l = h.root_and_lineage();
                h.write_with_lineage(&next, &mut out);
                black_box((l, out.len()))
            })
        });
    }
    group.finish();
}

fn lineage(c: &mut Criterion) {
    let mut group = c.benchmark_group("lineage");
    for entries in [1, 16] {
        let l = lineage_with(entries);
        let text = l.to_string();
        group.bench_function(format!("decode/{entries}"), |b| {
            b.iter(|| Lineage::decode(black_box(&text)).unwrap())
        });
        group.bench_function(format!("encode/{entries}"), |b| {
            b.iter(|| black_box(&l).encode())
        });
    }
    group.finish();
}

fn context() -> Context {
    let mut ctx = Context::default();
    ctx.request_id = "req".into();
    ctx.xray_trace_id = Some(TYPICAL.into());
    ctx
}

fn guard() -> LoopGuardLayer {
    let config = LoopGuardConfig::builder()
        .function_identity("bench-fn")
        .build()
        .unwrap();
    LoopGuardLayer::new(config).metric_sink(())
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("layer");

    let handler = service_fn(|e: LambdaEvent<serde_json::Value>| async move {
        Ok::<_, lambda_runtime::Error>(black_box(e.payload).is_null())
    });
    let mut guarded = guard().layer(handler);
    let payload = serde_json::Value::Null;
    group.bench_function("direct/bare", |b| {
        b.iter_batched(
            || LambdaEvent::new(payload.clone(), context()),
            |e| rt.block_on(handler.oneshot(e)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("direct/guarded", |b| {
        b.iter_batched(
            || LambdaEvent::new(payload.clone(), context()),
            |e| rt.block_on((&mut guarded).oneshot(e)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    let batch_handler = service_fn(|e: LambdaEvent<SqsEvent>| async move {
        black_box(e.payload.records.len());
        Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
    });
    // Services are called by reference, once ready, as lambda_runtime
    // calls its own (never cloned per invocation).
    let mut guarded_batch = guard().layer(batch_handler);
    let mut floor_batch = floor::FloorGuard(batch_handler);
    // Records shaped as AWS delivers them (receipt handle, md5s, five
    // system attributes with a 150-byte AWSTraceHeader carrying our field,
    // our attribute), from a chain in which this function ran twice; with a
    // small body and with a 4 KB JSON body.
    let at = |runs: u16| {
        (0..runs)
            .fold(Lineage::new(), |l, _| {
                l.record_run(FunctionId::from_identity("bench-fn"))
            })
            .to_string()
    };
    let body_4k = json_body_4k();
    for (shape, body) in [("small", "{\"order\":1}"), ("body_4k", body_4k.as_str())] {
        for records in [10usize, 10_000] {
            let event = aws_shaped_sqs_event(records, body, &at(2));
            // What lambda_runtime spends before any handler (or guard) runs:
            // the event's bytes through serde_path_to_error, as it does.
            let json = serde_json::to_vec(&event).unwrap();
            group.throughput(Throughput::Elements(records as u64));
            group.sample_size(if records > 1000 { 20 } else { 100 });
            group.bench_function(format!("sqs_{shape}_{records}/runtime_deserialize"), |b| {
                b.iter(|| {
                    let jd = &mut serde_json::Deserializer::from_slice(black_box(&json));
                    let event: SqsEvent = serde_path_to_error::deserialize(jd).unwrap();
                    event
                })
            });
            // The floor: iterate the records and look one key up in each.
            group.bench_function(
                format!("sqs_{shape}_{records}/floor_iterate_and_lookup"),
                |b| {
                    b.iter(|| {
                        black_box(&event)
                            .records
                            .iter()
                            .filter(|r| r.message_attributes.contains_key("loop-guard"))
                            .count()
                    })
                },
            );
            group.bench_function(format!("sqs_{shape}_{records}/bare"), |b| {
                b.iter_batched(
                    || LambdaEvent::new(event.clone(), context()),
                    |e| rt.block_on(batch_handler.oneshot(e)).unwrap(),
                    BatchSize::LargeInput,
                )
            });
            group.bench_function(format!("sqs_{shape}_{records}/guarded"), |b| {
                b.iter_batched(
                    || LambdaEvent::new(event.clone(), context()),
                    |e| rt.block_on((&mut guarded_batch).oneshot(e)).unwrap(),
                    BatchSize::LargeInput,
                )
            });
            // The same difference as paired runs, back to back in
            // alternating order (drift hits both): per record.
            let paired = paired_differences_with(
                if records > 1000 { 200 } else { 4_000 },
                || LambdaEvent::new(event.clone(), context()),
                |e| drop(rt.block_on(batch_handler.oneshot(e)).unwrap()),
                |e| drop(rt.block_on((&mut guarded_batch).oneshot(e)).unwrap()),
            );
            // The floor, paired the same way.
            let floor = paired_differences_with(
                if records > 1000 { 200 } else { 4_000 },
                || LambdaEvent::new(event.clone(), context()),
                |e| drop(rt.block_on(batch_handler.oneshot(e)).unwrap()),
                |e| drop(rt.block_on((&mut floor_batch).oneshot(e)).unwrap()),
            );
            let n = records as f64;
            // The ratio to the bare run moves less than either time when the
            // machine speeds up or slows down between runs; taken pair by
            // pair, less than either median when it does so during the run.
            println!(
                "layer/sqs_{shape}_{records}/paired: bare median {:.1} ns per record (handler and event drop); \
                 guarded - bare: median {:.1} ns per record ({:.1} % of bare; per pair {:.1} %), IQR {:.1} .. {:.1}; \
                 floor - bare: median {:.1} ns per record ({:.1} % of bare; per pair {:.1} %), IQR {:.1} .. {:.1}",
                paired.bare_median / n,
                paired.added.median / n,
                100.0 * paired.added.median / paired.bare_median,
                100.0 * paired.share.median,
                paired.added.q1 / n,
                paired.added.q3 / n,
                floor.added.median / n,
                100.0 * floor.added.median / floor.bare_median,
                100.0 * floor.share.median,
                floor.added.q1 / n,
                floor.added.q3 / n,
            );
        }
    }
    // Linear everywhere: 10,000 records that all loop (each reported,
    // metric and log line included) against 10,000 clean ones.
    let looping = aws_shaped_sqs_event(10_000, "{\"order\":1}", &at(16));
    group.throughput(Throughput::Elements(10_000));
    group.sample_size(20);
    group.bench_function("sqs_looping_10000/guarded", |b| {
        b.iter_batched(
            || LambdaEvent::new(looping.clone(), context()),
            |e| rt.block_on((&mut guarded_batch).oneshot(e)).unwrap(),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn sqs_client(with_guard: bool) -> aws_sdk_sqs::Client {
    sqs_client_with(with_guard.then(LoopGuardInterceptor::new))
}

fn sqs_client_with(
    interceptor: Option<impl aws_smithy_runtime_api::client::interceptors::Intercept + 'static>,
) -> aws_sdk_sqs::Client {
    let http = aws_smithy_http_client::test_util::infallible_client_fn(|_req| {
        http::Response::builder()
            .status(200)
            .body(SdkBody::from(r#"{"MessageId":"5fea7756-0ea4-451a-a703-a558b933e274","MD5OfMessageBody":"fafb00f5732ab283681e124bf8747ed1"}"#))
            .unwrap()
    });
    let mut config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::for_tests())
        .endpoint_url("http://127.0.0.1:1")
        .http_client(http);
    if let Some(interceptor) = interceptor {
        config = config.interceptor(interceptor);
    }
    aws_sdk_sqs::Client::from_conf(config.build())
}

fn interceptor(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("interceptor");
    let chain = Chain::new(
        Lineage::new().record_run(FunctionId::from_identity("bench-fn")),
        Some(std::sync::Arc::from(TYPICAL)),
    );
    let send = |client: &aws_sdk_sqs::Client| {
        let client = client.clone();
        let chain = chain.clone();
        async move {
            chain
                .scope(
                    client
                        .send_message()
                        .queue_url("http://127.0.0.1:1/000000000000/q")
                        .message_body("hello")
                        .send(),
                )
                .await
                .unwrap()
        }
    };
    let bare = sqs_client(false);
    let ours = sqs_client(true);
    group.bench_function("send_message/bare", |b| {
        interleaved(
            b,
            || drop(rt.block_on(send(&bare))),
            || drop(rt.block_on(send(&ours))),
        )
    });
    group.bench_function("send_message/guarded", |b| {
        interleaved(
            b,
            || drop(rt.block_on(send(&ours))),
            || drop(rt.block_on(send(&bare))),
        )
    });
    // Everything the interceptor causes, as paired differences: each pair
    // runs both clients back to back, in alternating order, so drift hits
    // both; the median and IQR of (guarded - bare) are printed with the
    // median bare call for the ratio.
    print_paired(
        "interceptor/send_message/paired",
        paired_differences(
            2_000,
            || drop(rt.block_on(send(&bare))),
            || drop(rt.block_on(send(&ours))),
        ),
    );
    // The floor: an interceptor that only writes both stamps, ready.
    let floor = sqs_client_with(Some(sdk_floor::FloorInterceptor(sdk_floor::Stamps::new(
        TYPICAL,
        &chain.lineage().to_string(),
    ))));
    print_paired(
        "interceptor/send_message/paired_floor",
        paired_differences(
            2_000,
            || drop(rt.block_on(send(&bare))),
            || drop(rt.block_on(send(&floor))),
        ),
    );
    // The SDK's RecursionDetectionInterceptor works only with both variables
    // set; set them for the rest of this (single-threaded) benchmark run.
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "bench-fn");
    std::env::set_var("_X_AMZN_TRACE_ID", TYPICAL);
    let sdk_only = sqs_client(false);
    let both = sqs_client(true);
    group.bench_function("send_message/sdk_recursion_detection", |b| {
        interleaved(
            b,
            || drop(rt.block_on(send(&sdk_only))),
            || drop(rt.block_on(send(&both))),
        )
    });
    group.bench_function("send_message/sdk_recursion_detection_and_guard", |b| {
        interleaved(
            b,
            || drop(rt.block_on(send(&both))),
            || drop(rt.block_on(send(&sdk_only))),
        )
    });
    group.finish();
}

/// The interceptor's own work, without the rest of the SDK call: both hooks
/// on a `SendMessage` input and request, inside a guarded invocation.
fn interceptor_hooks(c: &mut Criterion) {
    use aws_sdk_sqs::operation::send_message::SendMessageInput;
    use aws_smithy_runtime_api::client::interceptors::context::{Input, InterceptorContext};
    use aws_smithy_runtime_api::client::interceptors::Intercept;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
    use aws_smithy_types::config_bag::ConfigBag;

    let rc = RuntimeComponentsBuilder::for_tests().build().unwrap();
    let interceptor = LoopGuardInterceptor::new();
    let chain = Chain::new(
        Lineage::new().record_run(FunctionId::from_identity("bench-fn")),
        Some(std::sync::Arc::from(TYPICAL)),
    );
    let input = SendMessageInput::builder()
        .queue_url("https://sqs.us-east-1.amazonaws.com/000000000000/q")
        .message_body("hello")
        .build()
        .unwrap();
    let setup = || {
        let mut context = InterceptorContext::new(Input::erase(input.clone()));
        let request = http::Request::builder()
            .header("x-amzn-trace-id", TYPICAL)
            .body(SdkBody::empty())
            .unwrap()
            .try_into()
            .unwrap();
        (context_with_request(&mut context, request), context)
    };
    fn context_with_request(
        context: &mut InterceptorContext,
        request: aws_smithy_runtime_api::http::Request,
    ) -> Option<Input> {
        let input = context.take_input();
        context.enter_serialization_phase();
        context.set_request(request);
        context.enter_before_transmit_phase();
        input
    }
    let mut group = c.benchmark_group("interceptor_hooks");
    group.bench_function("send_message/serialization_and_transmit", |b| {
        b.iter_batched(
            setup,
            |(input, mut context)| {
                let mut cfg = ConfigBag::base();
                let mut fresh = InterceptorContext::new(input.unwrap());
                chain.clone().sync_scope(|| {
                    let mut ctx = (&mut fresh).into();
                    interceptor
                        .modify_before_serialization(&mut ctx, &rc, &mut cfg)
                        .unwrap();
                    let mut ctx = (&mut context).into();
                    interceptor
                        .modify_before_transmit(&mut ctx, &rc, &mut cfg)
                        .unwrap();
                });
                black_box((fresh, context))
            },
            BatchSize::SmallInput,
        )
    });
    // The SDK's own cost of the same two stamps, their values ready.
    let stamps = sdk_floor::Stamps::new(TYPICAL, &chain.lineage().to_string());
    group.bench_function("send_message/sdk_floor", |b| {
        b.iter_batched(
            setup,
            |(input, mut context)| {
                let mut input = input.unwrap();
                stamps.stamp_input(&mut input);
                if let Some(request) = context.request_mut() {
                    stamps.stamp_request(request);
                }
                black_box((input, context))
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = trace_header, lineage, layer, interceptor, interceptor_hooks
}
criterion_main!(benches);
