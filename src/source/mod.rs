//! The event sources: one module per integration, each holding its read
//! side (a [`GuardedEvent`] impl for its `aws_lambda_events` types), its
//! batch semantics ([`Batch`] and the [`GuardedResponse`] impl of its batch
//! response), and, behind its feature, its stamp side (what the SDK
//! interceptor writes on its outgoing calls).
//!
//! | module | reads | batch response | stamps (feature) |
//! | --- | --- | --- | --- |
//! | `invoke` | direct invokes: trace header and client context of the `Context`; `()`, `String` | none | `Invoke` client context (`lambda`) |
//! | `async_payload` | the key moved out of async payloads ([`AsyncPayloadLayer`]) | none | async `Invoke` payloads, opt-in (`lambda`) |
//! | `sqs` | `SqsEvent`, `SqsEventObj<T>`: attribute, `AWSTraceHeader`, SNS envelope, EventBridge event in the body | `SqsBatchResponse` | `SendMessage(Batch)` (`sqs`) |
//! | `sns` | `SnsEvent`, `SnsEventObj<T>`; an EventBridge event as the message | none | `Publish(Batch)` (`sns`) |
//! | `dynamodb` | `DynamoDbEvent` (feature `dynamodb`) | `DynamoDbEventResponse`, ordered | item writes, opt-in per table |
//! | `kinesis` | `KinesisEvent` (feature `kinesis`) | `KinesisEventResponse`, ordered | `PutRecord(s)` data, opt-in per stream |
//! | `kafka` | `KafkaEvent` headers (feature `kafka`) | none (the batch drop policy), ordered | producers: `header_value` |
//! | `eventbridge` | `EventBridgeEvent<T>` (feature `eventbridge`) | none | `PutEvents` (`eventbridge`) |
//! | `stepfunctions` | a Lambda task's payload, through [`AsyncPayloadLayer`] | none | `StartExecution`, `StartSyncExecution` (`stepfunctions`) |
//! | `s3` | `S3Event`, and S3 notifications in `SqsEvent` bodies and `SnsEvent` messages, through `HeadObject` (feature `s3`) | as their event's | object writes, opt-in per bucket |
//! | `http` | API Gateway, Function URL, ALB events, when trusted (feature `http`) | none | `http::HttpStampLayer` |
//! | `json` | `serde_json::Value` in any of the shapes above | none | - |
//!
//! The full table (carrier, cost, limits, drop semantics, what you
//! configure) is in the guide, `docs/guide.md` section 8.
//!
//! # A source of your own
//!
//! Implement [`GuardedEvent`] for the event type (read each record's
//! carriers into an [`Incoming`], say how its units may be dropped) and,
//! for a batch, [`GuardedResponse`] for its response type. The guide's
//! section 9 walks through a complete Amazon MQ (RabbitMQ) source, tested
//! through the layer.
//!
//! [`AsyncPayloadLayer`]: crate::AsyncPayloadLayer

use lambda_runtime::Context;

use crate::config::LoopGuardConfig;
use crate::incoming::{Incoming, Units};

pub mod async_payload;
#[cfg(feature = "dynamodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "dynamodb")))]
pub mod dynamodb;
#[cfg(feature = "eventbridge")]
#[cfg_attr(docsrs, doc(cfg(feature = "eventbridge")))]
pub mod eventbridge;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod invoke;
mod json;
#[cfg(feature = "kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
pub mod kafka;
#[cfg(feature = "kinesis")]
#[cfg_attr(docsrs, doc(cfg(feature = "kinesis")))]
pub mod kinesis;
mod nested;
mod record;
#[cfg(feature = "s3")]
#[cfg_attr(docsrs, doc(cfg(feature = "s3")))]
pub mod s3;
pub mod sns;
pub mod sqs;
pub mod stepfunctions;

pub use record::{for_record, GuardedRecord};

#[cfg(feature = "interceptor")]
mod stamp;
#[cfg(feature = "interceptor")]
pub(crate) use stamp::{clear_sdk_input, messages_sent, stamp_sdk_input, StampOptions};

/// How the units of an event may be dropped, one by one or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Batch {
    /// One unit (a direct invoke, an SNS or EventBridge delivery): a drop
    /// fails the invocation.
    Single,
    /// Independent records (an SQS standard queue): looping records are
    /// removed and reported as batch item failures, the others run.
    Unordered,
    /// Ordered, checkpointed records (an SQS FIFO queue, a DynamoDB or
    /// Kinesis stream): Lambda resumes a failed batch at the lowest
    /// reported item, so with a response that reports failures the batch is
    /// cut at its first looping record, which and every later one are
    /// reported: order holds and nothing runs twice.
    Ordered,
}

impl Batch {
    /// Whether records can be dropped one by one (not [`Batch::Single`]).
    pub const fn drops_per_record(self) -> bool {
        !matches!(self, Batch::Single)
    }
}

/// A Lambda payload the guard knows how to read.
///
/// The defaults treat the payload as one direct invocation read from the
/// [`Context`], so `impl GuardedEvent for MyEvent {}` is a complete opt-in.
/// Batch sources override all three methods.
pub trait GuardedEvent {
    /// Hands one [`Incoming`] per unit of work to `out`, in order. `config`
    /// holds the settings some sources read with (the DynamoDB attribute,
    /// whether HTTP is trusted). [`read_units`] collects them, for tests.
    fn read_incoming<'a>(
        &'a self,
        context: &'a Context,
        config: &LoopGuardConfig,
        out: &mut Units<'a, '_>,
    ) {
        let _ = config;
        out.push(Incoming::from_context(context));
    }

    /// How units may be dropped. Default: [`Batch::Single`].
    fn batch(&self) -> Batch {
        Batch::Single
    }

    /// Removes the units for which `remove(index)` is true, keeping the order
    /// of the rest. Only called when [`batch`](Self::batch) is a batch.
    fn remove_units(&mut self, remove: &mut dyn FnMut(usize) -> bool) {
        let _ = remove;
    }
}

/// Every unit of `event`, in order, collected into a vector: what the guard
/// decides on one by one. For tests of a custom [`GuardedEvent`].
pub fn read_units<'a, E: GuardedEvent + ?Sized>(
    event: &'a E,
    context: &'a Context,
    config: &LoopGuardConfig,
) -> Vec<Incoming<'a>> {
    let mut units = Vec::new();
    event.read_incoming(
        context,
        config,
        &mut Units::new(&mut |unit| units.push(unit)),
    );
    units
}

impl GuardedEvent for () {}
impl GuardedEvent for String {}

/// A handler response the guard can hand back: the batch responses add the
/// records it dropped as batch item failures; every other response passes
/// through untouched.
///
/// Implemented for the batch responses of `aws_lambda_events`
/// (`SqsBatchResponse`; with feature `dynamodb` the `streams` ones:
/// `DynamoDbEventResponse`, `KinesisEventResponse`, `SqsEventResponse`), for
/// `()`, the primitive types, `String`, `&'static str`, `serde_json::Value`,
/// `Vec<T>`, `Option<T>`, `Box<T>`, pairs, triples, maps, `lambda_runtime`'s
/// `FunctionResponse` and `StreamResponse` and, with feature `http`, the HTTP
/// and authorizer responses. A response type of your own opts in with one
/// line (a type of another crate, through a newtype of yours):
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Receipt { stored: bool }
///
/// impl lambda_loop_guard::GuardedResponse for Receipt {}
/// ```
pub trait GuardedResponse: Sized {
    /// An empty batch response, when this type reports batch item failures
    /// (then looping records are reported one by one); `None` (the default)
    /// when it cannot, and a batch with looping records follows the
    /// [`BatchDropPolicy`](crate::BatchDropPolicy).
    fn empty_batch_response() -> Option<Self> {
        None
    }

    /// Reports `ids` as failed items, each once. Only called on types whose
    /// [`empty_batch_response`](Self::empty_batch_response) is `Some`.
    fn add_batch_item_failures(&mut self, ids: Vec<String>) {
        let _ = ids;
    }

    /// The response for a batch that has no record left to run (each was a
    /// write that changed only the stamp, or a looping record discarded by
    /// [`BatchDropPolicy::DiscardLoopingRecords`](crate::BatchDropPolicy)),
    /// so that the handler is not called with an empty batch: by default
    /// the [`empty_batch_response`](Self::empty_batch_response); `()` and
    /// `None` for those types. A type without one (`None`) runs the handler
    /// on the empty batch.
    fn response_without_records() -> Option<Self> {
        Self::empty_batch_response()
    }
}

impl GuardedResponse for () {
    fn response_without_records() -> Option<Self> {
        Some(())
    }
}

/// Responses that pass through untouched.
macro_rules! plain_responses {
    ($($ty:ty),* $(,)?) => {$( impl GuardedResponse for $ty {} )*};
}

plain_responses!(
    bool,
    char,
    String,
    &'static str,
    serde_json::Value,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    f32,
    f64,
);
impl<B, S> GuardedResponse for lambda_runtime::FunctionResponse<B, S> {}
impl<S> GuardedResponse for lambda_runtime::StreamResponse<S> {}

impl<T: GuardedResponse> GuardedResponse for Box<T> {
    fn empty_batch_response() -> Option<Self> {
        T::empty_batch_response().map(Box::new)
    }

    fn add_batch_item_failures(&mut self, ids: Vec<String>) {
        (**self).add_batch_item_failures(ids);
    }

    fn response_without_records() -> Option<Self> {
        T::response_without_records().map(Box::new)
    }
}

/// [`GuardedResponse`] for an `aws_lambda_events` batch response whose
/// failures are `{ item_identifier: Option<String> }` (the `streams` ones).
#[cfg(any(feature = "dynamodb", feature = "kinesis"))]
macro_rules! stream_batch_response {
    ($($response:ty => $failure:ty),* $(,)?) => {$(
        impl GuardedResponse for $response {
            fn empty_batch_response() -> Option<Self> {
                Some(<$response>::default())
            }

            fn add_batch_item_failures(&mut self, ids: Vec<String>) {
                let reported = self
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.clone());
                let mut added = Vec::new();
                add_missing(reported, ids, |id| added.push(id));
                self.batch_item_failures.extend(added.into_iter().map(|id| {
                    let mut failure = <$failure>::default();
                    failure.item_identifier = Some(id);
                    failure
                }));
            }
        }
    )*};
}

// `aws_lambda_events`' `streams` module comes with `dynamodb` and `kinesis`.
#[cfg(any(feature = "dynamodb", feature = "kinesis"))]
stream_batch_response!(
    aws_lambda_events::event::streams::DynamoDbEventResponse
        => aws_lambda_events::event::streams::DynamoDbBatchItemFailure,
    aws_lambda_events::event::streams::KinesisEventResponse
        => aws_lambda_events::event::streams::KinesisBatchItemFailure,
    aws_lambda_events::event::streams::SqsEventResponse
        => aws_lambda_events::event::streams::SqsBatchItemFailure,
);

impl<A, B> GuardedResponse for (A, B) {}
impl<A, B, C> GuardedResponse for (A, B, C) {}
impl<T> GuardedResponse for Vec<T> {}
impl<T, const N: usize> GuardedResponse for [T; N] {}
impl<T> GuardedResponse for Option<T> {
    fn response_without_records() -> Option<Self> {
        Some(None)
    }
}
impl<K, V, H> GuardedResponse for std::collections::HashMap<K, V, H> {}
impl<K, V> GuardedResponse for std::collections::BTreeMap<K, V> {}

/// Adds each of `ids` that `reported` does not already hold, through `push`.
pub(crate) fn add_missing(
    reported: impl Iterator<Item = Option<String>>,
    ids: Vec<String>,
    mut push: impl FnMut(String),
) {
    let reported: std::collections::HashSet<String> = reported.flatten().collect();
    // Which of `ids` to add, decided on borrowed ids (none is copied).
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    let add: Vec<bool> = ids
        .iter()
        .map(|id| !reported.contains(id) && seen.insert(id.as_str()))
        .collect();
    for (id, add) in ids.into_iter().zip(add) {
        if add {
            push(id);
        }
    }
}

/// `Vec::retain` by position.
pub(crate) fn retain_by_index<T>(items: &mut Vec<T>, remove: &mut dyn FnMut(usize) -> bool) {
    let mut index = 0;
    items.retain(|_| {
        let keep = !remove(index);
        index += 1;
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retain_by_index_removes_exactly_the_chosen() {
        let mut v = vec!['a', 'b', 'c', 'd'];
        retain_by_index(&mut v, &mut |i| i % 2 == 1);
        assert_eq!(v, vec!['a', 'c']);
    }

    #[test]
    fn failures_are_added_once() {
        let mut out = Vec::new();
        add_missing(
            [Some("a".to_owned()), None].into_iter(),
            vec!["a".into(), "b".into(), "b".into()],
            |id| out.push(id),
        );
        assert_eq!(out, vec!["b".to_owned()]);
    }
}
