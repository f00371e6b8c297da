//! The least any guard that reads every carrier of an SQS batch can do, for
//! the benchmarks and the instruction probe to measure the guard against:
//! per record, both carriers (the `AWSTraceHeader` system attribute and the
//! `loop-guard` message attribute) found and compared with the record
//! before's; per invocation, a value made visible to the handler's SDK
//! calls (a task-local around its future; a guard's holds the chain and a
//! copy of the trace header, which the floor does not make). No decoding,
//! no limits, no metric: on a batch of one chain nothing else is needed to
//! know every record is like the first.

#![allow(dead_code)]

use std::hint::black_box;
use std::task::{Context, Poll};

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::LambdaEvent;
use tokio::task::futures::TaskLocalFuture;
use tower::Service;

tokio::task_local! {
    static CHANGES: usize;
}

/// Per record, both carriers found (a walk of the small maps) and compared
/// with the record before's; how many records differ from the one before.
pub fn read_carriers(event: &SqsEvent) -> usize {
    let mut last: (Option<&str>, Option<&str>) = (None, None);
    let mut changes = 0;
    for record in &event.records {
        let header = record
            .attributes
            .iter()
            .find(|(k, _)| "AWSTraceHeader" == k.as_str())
            .map(|(_, v)| v.as_str());
        let attribute = record
            .message_attributes
            .iter()
            .find(|(k, _)| "loop-guard" == k.as_str())
            .and_then(|(_, v)| v.string_value.as_deref());
        if (header, attribute) != last {
            changes += 1;
            last = (header, attribute);
        }
    }
    changes
}

/// The floor as a service: [`read_carriers`], then the inner service with
/// its result in a task-local.
#[derive(Clone)]
pub struct FloorGuard<S>(pub S);

impl<S: Service<LambdaEvent<SqsEvent>>> Service<LambdaEvent<SqsEvent>> for FloorGuard<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<usize, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, event: LambdaEvent<SqsEvent>) -> Self::Future {
        let changes = read_carriers(black_box(&event.payload));
        CHANGES.scope(changes, self.0.call(event))
    }
}
