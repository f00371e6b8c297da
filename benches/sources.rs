//! What the opt-in carriers of the sources AWS cannot see add, each measured
//! against a baseline in the same run:
//!
//! * the interceptor's serialization hook on `UpdateItem` and on a 10-entry
//!   `PutEvents`, with the carrier opted in vs. not (the trace-header-only
//!   work and the hook's dispatch are in both);
//! * `AsyncPayloadLayer` on a 1 KiB raw invocation, without the key (the
//!   common case: a byte scan) and with it (parse, remove, re-serialize),
//!   vs. the same inner service without the layer.

use std::hint::black_box;
use std::time::Duration;

use aws_smithy_runtime_api::client::interceptors::context::{Input, InterceptorContext};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use lambda_loop_guard::chain::Chain;
use lambda_loop_guard::{AsyncPayloadLayer, FunctionId, Lineage, LoopGuardInterceptor};
use lambda_runtime::{Context, LambdaInvocation};
use tower::{Layer, Service};

fn chain() -> Chain {
    Chain::new(
        Lineage::new().record_run(FunctionId::from_identity("bench-fn")),
        Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into()),
    )
}

/// Runs the serialization hook on a fresh copy of `input`.
fn bench_hook<T: Clone + std::fmt::Debug + Send + Sync + 'static>(
    c: &mut Criterion,
    group: &str,
    input: T,
    opted_in: LoopGuardInterceptor,
) {
    let rc: RuntimeComponents = RuntimeComponentsBuilder::for_tests().build().unwrap();
    let chain = chain();
    let mut group = c.benchmark_group(group);
    for (name, interceptor) in [
        ("baseline", LoopGuardInterceptor::new()),
        ("opted_in", opted_in),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || InterceptorContext::new(Input::erase(input.clone())),
                |mut context| {
                    chain.clone().sync_scope(|| {
                        let mut ctx = (&mut context).into();
                        interceptor
                            .modify_before_serialization(&mut ctx, &rc, &mut ConfigBag::base())
                            .unwrap();
                    });
                    black_box(context)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn dynamodb_update_item(c: &mut Criterion) {
    use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
    use aws_sdk_dynamodb::types::AttributeValue;
    let input = UpdateItemInput::builder()
        .table_name("orders")
        .key("id", AttributeValue::S("order-1".into()))
        .update_expression("SET #s = :s, updated_at = :now REMOVE pending")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", AttributeValue::S("shipped".into()))
        .expression_attribute_values(":now", AttributeValue::N("1763769600".into()))
        .build()
        .unwrap();
    bench_hook(
        c,
        "dynamodb_update_item",
        input,
        LoopGuardInterceptor::new().stamp_dynamodb_table("orders"),
    );
}

fn eventbridge_put_events(c: &mut Criterion) {
    use aws_sdk_eventbridge::operation::put_events::PutEventsInput;
    use aws_sdk_eventbridge::types::PutEventsRequestEntry;
    let detail = serde_json::json!({
        "orderId": "order-1", "status": "shipped", "items": [1, 2, 3],
        "customer": {"id": "c-9", "tier": "gold"}
    })
    .to_string();
    let entries = (0..10)
        .map(|_| {
            PutEventsRequestEntry::builder()
                .source("orders")
                .detail_type("shipped")
                .detail(&detail)
                .build()
        })
        .collect();
    let input = PutEventsInput::builder()
        .set_entries(Some(entries))
        .build()
        .unwrap();
    bench_hook(
        c,
        "eventbridge_put_events_10",
        input,
        LoopGuardInterceptor::new().stamp_eventbridge_detail(),
    );
}

fn async_payload(c: &mut Criterion) {
    let filler: String = "x".repeat(900);
    let plain = serde_json::json!({"jobId": "j-1", "step": 7, "notes": filler}).to_string();
    let stamped = serde_json::json!({"jobId": "j-1", "step": 7, "notes": filler,
        "loop-guard": "v1.7.6a5ec1b1-7"})
    .to_string();
    let invocation = |body: &str| LambdaInvocation {
        parts: http::Response::new(()).into_parts().0,
        body: body.to_owned().into(),
        context: Context::default(),
    };
    let inner = || {
        tower::service_fn(|i: LambdaInvocation| async move { Ok::<_, ()>(black_box(i.body.len())) })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("async_payload_1k");
    for (name, body, layered) in [
        ("baseline", &plain, false),
        ("no_key", &plain, true),
        ("with_key", &stamped, true),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || invocation(body),
                |i| {
                    if layered {
                        rt.block_on(AsyncPayloadLayer::new().layer(inner()).call(i))
                    } else {
                        rt.block_on(inner().call(i))
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = dynamodb_update_item, eventbridge_put_events, async_payload
}
criterion_main!(benches);
