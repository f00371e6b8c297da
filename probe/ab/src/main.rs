//! The same AWS-shaped SQS batch through no guard, the guard of another
//! revision (`base`) and the guard of the working tree (`new`), in turn and
//! in rotating order, many times in one process: a difference between two
//! revisions is read off paired runs made in the same moments, which the
//! machine's changes of speed between processes cannot move.
//!
//! ```text
//! bash scripts/ab.sh <revision> [small|4k] [records] [processes] [rounds]
//! ```

#[path = "../../../tests/support/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;

use std::hint::black_box;
use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Context, LambdaEvent};
use tower::{service_fn, Layer, ServiceExt};

fn main() {
    let mut args = std::env::args().skip(1);
    let shape = args.next().unwrap_or_else(|| "small".into());
    let records: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);
    let rounds: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(8000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let handler = service_fn(|e: LambdaEvent<SqsEvent>| async move {
        black_box(e.payload.records.len());
        Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
    });
    // The same guard from either copy of the crate (two crates: two types).
    macro_rules! guarded {
        ($krate:ident) => {
            $krate::LoopGuardLayer::new(
                $krate::LoopGuardConfig::builder()
                    .function_identity("bench-fn")
                    .build()
                    .expect("a configuration"),
            )
            .metric_sink(())
            .layer(handler)
        };
    }
    let mut new = guarded!(guard_new);
    let mut base = guarded!(guard_base);
    // A chain in which this function ran twice, in both carriers.
    let lineage = (0..2)
        .fold(guard_new::Lineage::new(), |l, _| {
            l.record_run(guard_new::FunctionId::from_identity("bench-fn"))
        })
        .to_string();
    let body = match shape.as_str() {
        "4k" => fixtures::json_body_4k(),
        _ => "{\"order\":1}".to_owned(),
    };
    let event = fixtures::aws_shaped_sqs_event(records, &body, &lineage);
    let context = || {
        let mut c = Context::default();
        c.request_id = "req".into();
        c.xray_trace_id = Some(fixtures::TYPICAL_TRACE_HEADER.into());
        c
    };
    // Called as lambda_runtime calls a service: by reference, once ready.
    let mut time = |which: usize| {
        let e = LambdaEvent::new(event.clone(), context());
        let start = Instant::now();
        match which {
            0 => drop(rt.block_on(handler.oneshot(e))),
            1 => drop(rt.block_on((&mut base).oneshot(e))),
            _ => drop(rt.block_on((&mut new).oneshot(e))),
        }
        start.elapsed().as_nanos() as f64
    };
    let orders = [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1], [0, 2, 1], [1, 2, 0]];
    let (mut bare, mut base_added, mut new_added, mut new_minus_base) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut t = [0.0; 3];
        for which in orders[round % orders.len()] {
            t[which] = time(which);
        }
        bare.push(t[0]);
        base_added.push(t[1] - t[0]);
        new_added.push(t[2] - t[0]);
        new_minus_base.push(t[2] - t[1]);
    }
    let per_record = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] / records as f64
    };
    let bare = per_record(bare);
    let (base_added, new_added) = (per_record(base_added), per_record(new_added));
    println!(
        "{shape} x {records}: bare {bare:.1} ns/record; base - bare {base_added:.1} ({:.1} % of bare); \
         new - bare {new_added:.1} ({:.1} %); new - base {:+.1} ns/record",
        100.0 * base_added / bare,
        100.0 * new_added / bare,
        per_record(new_minus_base),
    );
}
