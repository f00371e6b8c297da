//! Unit-test your own guarded handlers (feature `testing`): events at a
//! given depth (SQS, SNS, direct and asynchronous invokes through the
//! context, DynamoDB streams), a capture of the EMF lines, a configuration
//! without environment, and a fake chain for code that stamps calls.
//!
//! ```
//! use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
//! use lambda_loop_guard::testing::{self, CapturedMetrics};
//! use lambda_loop_guard::LoopGuardLayer;
//! use lambda_runtime::LambdaEvent;
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let metrics = CapturedMetrics::default();
//! let guarded = LoopGuardLayer::new(testing::config("orders", 3))
//!     .metric_sink(metrics.clone())
//!     .layer(service_fn(|e: LambdaEvent<SqsEvent>| async move {
//!         assert_eq!(e.payload.records.len(), 1, "only the fresh record runs");
//!         Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default())
//!     }));
//!
//! // A record that already ran `orders` 3 times, and a fresh one.
//! let event = testing::sqs_event(vec![
//!     testing::sqs_message("looping", Some(&testing::lineage_at("orders", 3))),
//!     testing::sqs_message("fresh", None),
//! ]);
//! let response = guarded
//!     .oneshot(LambdaEvent::new(event, testing::context()))
//!     .await
//!     .unwrap();
//! assert_eq!(response.batch_item_failures[0].item_identifier, "looping");
//! assert_eq!(metrics.drops(), 1);
//! # }
//! ```

use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sns::{SnsEvent, SnsMessage, SnsRecord};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use lambda_runtime::Context;

use crate::carrier::KEY;
use crate::chain::Chain;
use crate::config::LoopGuardConfig;
use crate::lineage::{FunctionId, Lineage};
use crate::metric::{MetricSink, DROPPED_METRIC, OBSERVED_METRIC};
use crate::trace_header::LOOP_GUARD_FIELD;

/// A lineage in which `function` (an identity) already ran `depth` times.
pub fn lineage_at(function: &str, depth: u16) -> Lineage {
    let id = FunctionId::from_identity(function);
    (0..depth).fold(Lineage::new(), |l, _| l.record_run(id))
}

/// A configuration for `function` with `max_depth`, read from no
/// environment (`terminate` mode, every other setting at its default).
///
/// # Panics
///
/// When `function` is not a valid identity or `max_depth` is out of range
/// (a test's own mistake).
pub fn config(function: &str, max_depth: u32) -> LoopGuardConfig {
    LoopGuardConfig::builder()
        .function_identity(function)
        .max_depth(max_depth)
        .build()
        .expect("a valid test configuration")
}

/// A Lambda context with a request id and a far deadline, and no carrier.
pub fn context() -> Context {
    let mut context = Context::default();
    context.request_id = "test-request".to_owned();
    context.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test".to_owned();
    context.deadline = u64::MAX / 2;
    context
}

/// A context whose trace header carries `lineage`, as a direct or
/// asynchronous invoke (and SNS) delivers it.
pub fn context_with(lineage: &Lineage) -> Context {
    let mut context = context();
    context.xray_trace_id = Some(format!(
        "Root=1-5759e988-bd862e3fe1be46a994272793;{LOOP_GUARD_FIELD}={lineage}"
    ));
    context
}

/// An SQS message `id` (also its body) carrying `lineage` in the
/// `loop-guard` message attribute, as a stamped `SendMessage` delivers it.
pub fn sqs_message(id: &str, lineage: Option<&Lineage>) -> SqsMessage {
    let mut message = SqsMessage::default();
    message.message_id = Some(id.to_owned());
    message.body = Some(id.to_owned());
    message.event_source = Some("aws:sqs".to_owned());
    message.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:test".to_owned());
    if let Some(lineage) = lineage {
        let mut attribute = SqsMessageAttribute::default();
        attribute.data_type = Some("String".to_owned());
        attribute.string_value = Some(lineage.to_string());
        message.message_attributes.insert(KEY.to_owned(), attribute);
    }
    message
}

/// An SQS event of `records`.
pub fn sqs_event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

/// An SNS event of one notification carrying `lineage` in its `loop-guard`
/// message attribute.
pub fn sns_event(lineage: Option<&Lineage>) -> SnsEvent {
    let mut message = SnsMessage::default();
    message.message_id = "test-notification".to_owned();
    message.topic_arn = "arn:aws:sns:us-east-1:123456789012:test".to_owned();
    if let Some(lineage) = lineage {
        let mut attribute = aws_lambda_events::event::sns::MessageAttribute::default();
        attribute.data_type = "String".to_owned();
        attribute.value = lineage.to_string();
        message.message_attributes.insert(KEY.to_owned(), attribute);
    }
    let mut record = SnsRecord::default();
    record.event_source = "aws:sns".to_owned();
    record.sns = message;
    let mut event = SnsEvent::default();
    event.records = vec![record];
    event
}

/// A DynamoDB stream `MODIFY` record with sequence number `sequence` whose
/// new image carries `lineage` in the `loop-guard` attribute.
#[cfg(feature = "dynamodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "dynamodb")))]
pub fn dynamodb_record(
    sequence: &str,
    lineage: Option<&Lineage>,
) -> aws_lambda_events::event::dynamodb::EventRecord {
    let mut image = serde_json::json!({"id": {"S": sequence}});
    if let Some(lineage) = lineage {
        image[KEY] = serde_json::json!({"S": lineage.to_string()});
    }
    serde_json::from_value(serde_json::json!({
        "eventID": sequence, "eventName": "MODIFY", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/test/stream/1",
        "dynamodb": {"Keys": {"id": {"S": sequence}}, "NewImage": image,
                     "SequenceNumber": sequence, "SizeBytes": 1, "StreamViewType": "NEW_IMAGE"}
    }))
    .expect("a valid stream record")
}

/// A chain to put in scope ([`Chain::scope`]) around code that makes SDK
/// calls, as if it ran inside a guarded handler whose outgoing lineage is
/// `lineage`: the interceptor stamps it.
pub fn fake_chain(lineage: Lineage) -> Chain {
    Chain::new(lineage, None)
}

/// A [`MetricSink`] that keeps every EMF line, for assertions. Clones share
/// the lines.
#[derive(Debug, Clone, Default)]
pub struct CapturedMetrics {
    lines: Arc<Mutex<Vec<String>>>,
}

impl CapturedMetrics {
    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        self.lock().clone()
    }

    /// The lines written so far, parsed.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.lock()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Drops reported (`RecursiveInvocationsDropped` lines).
    pub fn drops(&self) -> usize {
        self.count(DROPPED_METRIC)
    }

    /// Would-be drops reported in `observe` mode.
    pub fn observed(&self) -> usize {
        self.count(OBSERVED_METRIC)
    }

    fn count(&self, metric: &str) -> usize {
        self.json()
            .iter()
            .filter(|v| v.get(metric).is_some())
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        match self.lines.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl MetricSink for CapturedMetrics {
    fn write_line(&self, line: &str) {
        self.lock().push(line.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_the_lineage_they_were_built_with() {
        let deep = lineage_at("orders", 4);
        let me = FunctionId::from_identity("orders");
        let ctx = context();
        let sqs = sqs_event(vec![sqs_message("a", Some(&deep)), sqs_message("b", None)]);
        let units = crate::source::read_units(&sqs, &ctx, &config("orders", 5));
        assert_eq!(units[0].lineage().count(me), 4);
        assert!(units[1].lineage().is_empty());
        let sns = sns_event(Some(&deep));
        let units = crate::source::read_units(&sns, &ctx, &config("orders", 5));
        assert_eq!(units[0].lineage().count(me), 4);
        let direct = serde_json::json!({});
        let ctx = context_with(&deep);
        let units = crate::source::read_units(&direct, &ctx, &config("orders", 5));
        assert_eq!(units[0].lineage().count(me), 4);
        #[cfg(feature = "dynamodb")]
        {
            let mut stream = aws_lambda_events::event::dynamodb::Event::default();
            stream.records = vec![dynamodb_record("100", Some(&deep))];
            let ctx = context();
            let units = crate::source::read_units(&stream, &ctx, &config("orders", 5));
            assert_eq!(units[0].lineage().count(me), 4);
            assert_eq!(units[0].item_id(), Some("100"));
        }
    }

    #[test]
    fn captured_metrics_count_by_metric() {
        let metrics = CapturedMetrics::default();
        metrics.write_line(r#"{"RecursiveInvocationsDropped":1}"#);
        metrics.write_line(r#"{"RecursiveInvocationsObserved":1}"#);
        metrics
            .clone()
            .write_line(r#"{"RecursiveInvocationsDropped":1}"#);
        assert_eq!((metrics.drops(), metrics.observed()), (2, 1));
        assert_eq!(metrics.lines().len(), 3);
    }
}
