//! Runs one hot path of the guard N times, for instruction counting under
//! `valgrind --tool=callgrind` (scripts/instructions.py runs it twice with
//! different N and divides the difference, so setup cancels out).
//!
//! ```text
//! cargo run --release --manifest-path probe/Cargo.toml -- header_150 1000
//! ```

#[path = "../../tests/support/fixtures.rs"]
mod fixtures;
#[path = "../../tests/support/floor.rs"]
mod floor;
mod hooks;
#[path = "../../tests/support/sdk_floor.rs"]
mod sdk_floor;

use std::hint::black_box;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_loop_guard::trace_header::TraceHeader;
use lambda_loop_guard::{FunctionId, Lineage, LoopGuardConfig, LoopGuardLayer};
use lambda_runtime::{Context, LambdaEvent};
use tower::{service_fn, Layer, ServiceExt};

use hooks::With;

use fixtures::{
    aws_shaped_sqs_event, json_body_4k, stamped_sqs_event, TYPICAL_TRACE_HEADER as TYPICAL,
};

fn lineage(entries: u32) -> Lineage {
    (0..entries).fold(Lineage::new(), |l, n| {
        l.record_run(FunctionId::from_u32(n * 7919))
    })
}

/// `event` with a trace `Parent` of its own in each record's header (an
/// instrumented producer: no two headers alike), and, with `alternate`,
/// every other record from another chain (`other`, in both carriers).
fn varied(mut event: SqsEvent, alternate: Option<&str>) -> SqsEvent {
    for (i, record) in event.records.iter_mut().enumerate() {
        let lineage = match alternate {
            Some(other) if i % 2 == 1 => other.to_owned(),
            _ => record.message_attributes["loop-guard"]
                .string_value
                .clone()
                .unwrap_or_default(),
        };
        record.attributes.insert(
            "AWSTraceHeader".into(),
            format!(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent={i:016x};Sampled=1;LoopGuard={lineage}"
            ),
        );
        if let Some(attribute) = record.message_attributes.get_mut("loop-guard") {
            attribute.string_value = Some(lineage);
        }
    }
    event
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let big = format!(
        "{};{}",
        TYPICAL,
        "Custom=abcdefghijklmnopqrstuvwxyz0123456789;".repeat(48)
    );
    let l1 = lineage(1).to_string();
    let l16 = lineage(16).to_string();
    let next = lineage(3);
    let mut out = String::with_capacity(4096);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let config = || {
        LoopGuardConfig::builder()
            .function_identity("probe")
            .build()
            .unwrap()
    };
    let direct = service_fn(|e: LambdaEvent<serde_json::Value>| async move {
        Ok::<_, lambda_runtime::Error>(e.payload.is_null())
    });
    let batch = service_fn(|e: LambdaEvent<SqsEvent>| async move {
        black_box(e.payload.records.len());
        Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
    });
    // Called by reference, as lambda_runtime calls its service (never
    // cloned per invocation).
    let mut guarded_direct = LoopGuardLayer::new(config()).metric_sink(()).layer(direct);
    let mut guarded_batch = LoopGuardLayer::new(config()).metric_sink(()).layer(batch);
    let context = || {
        let mut c = Context::default();
        c.xray_trace_id = Some(TYPICAL.to_owned());
        c
    };
    let event = stamped_sqs_event(100);
    // AWS-shaped records of a chain in which `probe` ran twice (clean) or
    // 10 times (looping at the default limit).
    let probe_at = |runs: u16| {
        (0..runs)
            .fold(Lineage::new(), |l, _| {
                l.record_run(FunctionId::from_identity("probe"))
            })
            .to_string()
    };
    let aws_small = aws_shaped_sqs_event(100, "{\"order\":1}", &probe_at(2));
    let aws_4k = aws_shaped_sqs_event(100, &json_body_4k(), &probe_at(2));
    // The same records, no two trace headers alike; and two chains, one
    // record each in turn.
    let aws_parents = varied(aws_shaped_sqs_event(100, "{\"order\":1}", &probe_at(2)), None);
    let other_chain = Lineage::new()
        .record_run(FunctionId::from_identity("upstream"))
        .record_run(FunctionId::from_identity("probe"))
        .to_string();
    let aws_two_chains = varied(
        aws_shaped_sqs_event(100, "{\"order\":1}", &probe_at(2)),
        Some(&other_chain),
    );
    let clean_1000 = aws_shaped_sqs_event(1000, "{\"order\":1}", &probe_at(2));
    let looping_1000 = aws_shaped_sqs_event(1000, "{\"order\":1}", &probe_at(10));
    let mut run_batch = |guarded: bool, event: &SqsEvent| {
        let event = LambdaEvent::new(event.clone(), context());
        if guarded {
            drop(rt.block_on((&mut guarded_batch).oneshot(event)))
        } else {
            drop(rt.block_on(batch.oneshot(event)))
        }
    };
    let mut floor_batch = floor::FloorGuard(batch);
    let mut run_floor = |event: &SqsEvent| {
        let event = LambdaEvent::new(event.clone(), context());
        drop(rt.block_on((&mut floor_batch).oneshot(event)))
    };
    let hooks = hooks::Hooks::new(TYPICAL);
    // The two stamps' values, ready: what the SDK alone costs to take them.
    let stamps = sdk_floor::Stamps::new(TYPICAL, &probe_at(2));
    // Each call from a header of its own (an instrumented SDK stamps a
    // `Parent` per call): the kept stamped header never matches.
    let hooks_new = hooks::Hooks::varying(TYPICAL);
    let aws_10 = aws_shaped_sqs_event(10, "{\"order\":1}", &probe_at(2));
    let aws_10_4k = aws_shaped_sqs_event(10, &json_body_4k(), &probe_at(2));
    for _ in 0..n {
        match case.as_str() {
            "hooks_bare" => hooks.run(With::Nothing),
            "hooks_guarded" => hooks.run(With::Interceptor),
            "hooks_sdk_floor" => hooks.run(With::SdkFloor(&stamps)),
            "aws10_bare" => run_batch(false, &aws_10),
            "aws10_guarded" => run_batch(true, &aws_10),
            "aws10_floor" => run_floor(&aws_10),
            "aws10_4k_bare" => run_batch(false, &aws_10_4k),
            "aws10_4k_guarded" => run_batch(true, &aws_10_4k),
            "aws10_4k_floor" => run_floor(&aws_10_4k),
            "aws100_floor" => run_floor(&aws_small),
            "header_150" => drop(black_box(
                TraceHeader::parse(black_box(TYPICAL))
                    .unwrap()
                    .root_and_lineage(),
            )),
            "header_2k" => drop(black_box(
                TraceHeader::parse(black_box(&big))
                    .unwrap()
                    .root_and_lineage(),
            )),
            "stamp_150" => TraceHeader::parse(black_box(TYPICAL))
                .unwrap()
                .write_with_lineage(&next, &mut out),
            "decode_1" => drop(black_box(Lineage::decode(black_box(&l1)))),
            "decode_16" => drop(black_box(Lineage::decode(black_box(&l16)))),
            "encode_16" => drop(black_box(black_box(&next).encode())),
            "direct_bare" => drop(
                rt.block_on(direct.oneshot(LambdaEvent::new(serde_json::Value::Null, context()))),
            ),
            "direct_guarded" => drop(
                rt.block_on(
                    (&mut guarded_direct)
                        .oneshot(LambdaEvent::new(serde_json::Value::Null, context())),
                ),
            ),
            "sqs100_bare" => run_batch(false, &event),
            "sqs100_guarded" => run_batch(true, &event),
            "aws100_bare" => run_batch(false, &aws_small),
            "aws100_guarded" => run_batch(true, &aws_small),
            "aws100_parents_bare" => run_batch(false, &aws_parents),
            "aws100_parents_guarded" => run_batch(true, &aws_parents),
            "aws100_two_chains_bare" => run_batch(false, &aws_two_chains),
            "aws100_two_chains_guarded" => run_batch(true, &aws_two_chains),
            "hooks_new_header" => hooks_new.run(With::Interceptor),
            "aws100_4k_bare" => run_batch(false, &aws_4k),
            "aws100_4k_guarded" => run_batch(true, &aws_4k),
            "clean1000_bare" => run_batch(false, &clean_1000),
            "clean1000_guarded" => run_batch(true, &clean_1000),
            "looping1000_guarded" => run_batch(true, &looping_1000),
            other => {
                eprintln!("unknown case {other:?}");
                std::process::exit(2);
            }
        }
    }
}
