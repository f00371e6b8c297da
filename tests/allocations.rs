//! Heap allocations on the hot paths, counted with a counting global
//! allocator. Reading a trace header, decoding or encoding a lineage, and a
//! guarded invocation (direct or a batch of any size) must not allocate at
//! all beyond what the bare handler does; the numbers are printed for
//! docs/performance.md.
//!
//! One test in this binary: the counters are process-wide.

mod support;

use std::alloc::System;
use std::hint::black_box;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_loop_guard::trace_header::TraceHeader;
use lambda_loop_guard::{FunctionId, Lineage, LoopGuardConfig, LoopGuardLayer};
use lambda_runtime::{Context, LambdaEvent};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::{service_fn, Layer, ServiceExt};

use support::fixtures::{stamped_sqs_event, TYPICAL_TRACE_HEADER as TYPICAL};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocations(f: impl FnOnce()) -> usize {
    let region = Region::new(GLOBAL);
    f();
    region.change().allocations
}

#[test]
fn hot_paths_allocate_nothing() {
    // Reading: zero allocations.
    let parse = allocations(|| {
        let h = TraceHeader::parse(black_box(TYPICAL)).unwrap();
        black_box((
            h.root(),
            h.parent(),
            h.sampled(),
            h.get("Lineage"),
            h.lineage(),
        ));
    });
    let lineage: Lineage = "v1.17.bb687fa2-16.eca4390e-1".parse().unwrap();
    let codec = allocations(|| {
        let l = Lineage::decode(black_box("v1.17.bb687fa2-16.eca4390e-1")).unwrap();
        black_box(l.record_run(FunctionId::from_u32(7)).encode());
    });
    // Writing into a reused buffer: zero once it has grown.
    let mut out = String::with_capacity(512);
    let header = TraceHeader::parse(TYPICAL).unwrap();
    let stamp = allocations(|| header.write_with_lineage(black_box(&lineage), &mut out));

    // A guarded invocation, against the same handler bare.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let config = LoopGuardConfig::builder()
        .function_identity("alloc-fn")
        .build()
        .unwrap();
    let guard = LoopGuardLayer::new(config).metric_sink(());
    let handler = service_fn(|e: LambdaEvent<serde_json::Value>| async move {
        Ok::<_, lambda_runtime::Error>(black_box(e.payload).is_null())
    });
    let guarded = guard.layer(handler);
    let context = || {
        let mut c = Context::default();
        c.xray_trace_id = Some(TYPICAL.to_owned());
        c
    };
    let per_invocation = |svc: &dyn Fn(LambdaEvent<serde_json::Value>) -> bool| {
        let event = LambdaEvent::new(serde_json::Value::Null, context());
        allocations(|| {
            black_box(svc(event));
        })
    };
    let bare_direct = per_invocation(&|e| rt.block_on(handler.oneshot(e)).unwrap());
    let guarded_direct = per_invocation(&|e| rt.block_on(guarded.clone().oneshot(e)).unwrap());
    let guarded_direct_again =
        per_invocation(&|e| rt.block_on(guarded.clone().oneshot(e)).unwrap());

    let batch_handler = service_fn(|e: LambdaEvent<SqsEvent>| async move {
        black_box(e.payload.records.len());
        Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
    });
    let guarded_batch = guard.layer(batch_handler);
    let batch = |records: usize, guarded: bool| {
        let event = LambdaEvent::new(stamped_sqs_event(records), context());
        allocations(|| {
            let response = if guarded {
                rt.block_on(guarded_batch.clone().oneshot(event)).unwrap()
            } else {
                rt.block_on(batch_handler.oneshot(event)).unwrap()
            };
            black_box(response);
        })
    };
    let (bare_10, guarded_10) = (batch(10, false), batch(10, true));
    let (bare_1000, guarded_1000) = (batch(1000, false), batch(1000, true));

    // A handler that scopes each record's own chain (`for_record`): its
    // chains reuse the thread's spare states too, once warm.
    let per_record_handler = service_fn(|e: LambdaEvent<SqsEvent>| async move {
        for record in &e.payload.records {
            lambda_loop_guard::for_record(record, async { black_box(record) }).await;
        }
        Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
    });
    let guarded_per_record = guard.layer(per_record_handler);
    let per_record = |guarded: bool| {
        let event = LambdaEvent::new(stamped_sqs_event(10), context());
        allocations(|| {
            let response = if guarded {
                rt.block_on(guarded_per_record.clone().oneshot(event))
                    .unwrap()
            } else {
                rt.block_on(per_record_handler.oneshot(event)).unwrap()
            };
            black_box(response);
        })
    };
    let (bare_scoped, _warm) = (per_record(false), per_record(true));
    let guarded_scoped = per_record(true);

    println!("allocations: trace header parse+read = {parse}");
    println!("allocations: lineage decode+record_run+encode = {codec}");
    println!("allocations: stamp into a reused buffer = {stamp}");
    println!(
        "allocations: direct invocation bare = {bare_direct}, guarded = {guarded_direct}, \
         guarded again = {guarded_direct_again}"
    );
    println!("allocations: sqs batch of 10 bare = {bare_10}, guarded = {guarded_10}");
    println!("allocations: sqs batch of 1000 bare = {bare_1000}, guarded = {guarded_1000}");
    println!(
        "allocations: sqs batch of 10, each record's chain scoped: bare = {bare_scoped}, \
         guarded = {guarded_scoped}"
    );

    assert_eq!(parse, 0, "reading a trace header must not allocate");
    assert_eq!(codec, 0, "the lineage codec must not allocate");
    assert_eq!(
        stamp, 0,
        "stamping into a buffer with room must not allocate"
    );
    // Per invocation: none. The chain's state (its copy of the trace
    // header too) is one the guard made when it was built, reused by each
    // invocation once the one before is done (units are decided as they
    // are read, not buffered).
    assert_eq!(guarded_direct, bare_direct);
    assert_eq!(guarded_direct_again, bare_direct);
    // Nor per record, whatever the batch's size.
    assert_eq!(guarded_10, bare_10);
    assert_eq!(guarded_1000, bare_1000);
    // Records' own chains, made and dropped in turn, reuse states as well.
    assert_eq!(guarded_scoped, bare_scoped);
}
