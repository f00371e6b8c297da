//! How the guard reads the incoming chain from an event.
//!
//! [`GuardedEvent`] is implemented for the payloads a guarded handler can
//! take: `aws_lambda_events` SQS and SNS events (typed bodies too),
//! `serde_json::Value` (SQS and SNS shapes are recognised), `String` and `()`.
//! Any other payload type opts in with one line, and is then read like a
//! direct invocation (trace header and client context of the [`Context`]):
//!
//! ```
//! #[derive(serde::Deserialize)]
//! struct OrderPlaced { order_id: String }
//!
//! impl lambda_loop_guard::GuardedEvent for OrderPlaced {}
//! ```
//!
//! A batch event yields one [`Incoming`] per record, and the guard decides per
//! record.

use std::fmt;

use lambda_runtime::Context;

use crate::carrier::{decode_logged, Carrier, MapKey, TraceField, CLIENT_CONTEXT_KEY};
use crate::lineage::Lineage;
use crate::trace_header::TraceHeader;

#[cfg(feature = "dynamodb")]
mod dynamodb;
#[cfg(feature = "eventbridge")]
mod eventbridge;
#[cfg(feature = "http")]
mod http;
mod json;
#[cfg(feature = "s3")]
pub(crate) mod s3;
mod sns;
mod sqs;

/// Layer settings that change how events are read (passed to
/// [`GuardedEvent::read_incoming_with`]).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ReadOptions {
    /// The DynamoDB item attribute that carries the lineage.
    #[cfg(feature = "dynamodb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dynamodb")))]
    pub dynamodb_attribute: crate::carrier::ItemAttribute,
}

/// Where an invocation or record came from (the metric's `Source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventSource {
    /// A direct `Invoke` (or any payload read through the [`Context`]).
    Invoke,
    /// An SQS record (including SNS notifications delivered through SQS).
    Sqs,
    /// An SNS record.
    Sns,
    /// A DynamoDB stream record.
    DynamoDb,
    /// An EventBridge event.
    EventBridge,
    /// An S3 event notification record.
    S3,
    /// An HTTP request (API Gateway v1/v2, Function URL, ALB). Its lineage
    /// only counts when the layer trusts HTTP sources.
    Http,
    /// A source named by a custom [`GuardedEvent`] implementation.
    Custom(&'static str),
}

impl EventSource {
    /// Lowercase name: `invoke`, `sqs`, `sns`, `dynamodb`, `eventbridge`,
    /// `s3`, `http`, or the custom name.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventSource::Invoke => "invoke",
            EventSource::Sqs => "sqs",
            EventSource::Sns => "sns",
            EventSource::DynamoDb => "dynamodb",
            EventSource::EventBridge => "eventbridge",
            EventSource::S3 => "s3",
            EventSource::Http => "http",
            EventSource::Custom(name) => name,
        }
    }
}

impl fmt::Display for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The chain one unit of work (a record, or the whole invocation) arrived with.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    lineage: Lineage,
    source: EventSource,
    item_id: Option<&'a str>,
    chain_root: Option<&'a str>,
    source_arn: Option<&'a str>,
    // The last value decoded: carriers of one hop usually hold the same
    // text, which is then decoded once.
    last_value: Option<&'a str>,
}

impl<'a> Incoming<'a> {
    /// Nothing read yet: an empty lineage from `source`.
    pub fn new(source: EventSource) -> Self {
        Incoming {
            lineage: Lineage::new(),
            source,
            item_id: None,
            chain_root: None,
            source_arn: None,
            last_value: None,
        }
    }

    /// A direct invocation: reads the [`Context`]'s trace header and client
    /// context. This is what the default [`GuardedEvent`] methods do.
    pub fn from_context(context: &'a Context) -> Self {
        let mut incoming = Incoming::new(EventSource::Invoke);
        incoming.read_context(context);
        incoming
    }

    /// Merges the [`Context`]'s carriers (trace header, client context) in.
    pub fn read_context(&mut self, context: &'a Context) -> &mut Self {
        if let Some(header) = &context.xray_trace_id {
            self.read_carrier(&TraceField, header);
        }
        if let Some(client_context) = &context.client_context {
            self.read_carrier(&MapKey::new(CLIENT_CONTEXT_KEY), &client_context.custom);
        }
        self
    }

    /// Merges what `carrier` finds on `medium` (see [`Carrier`]).
    pub fn read_carrier<M: ?Sized, C: Carrier<M> + ?Sized>(
        &mut self,
        carrier: &C,
        medium: &'a M,
    ) -> &mut Self {
        carrier.read(medium, self);
        self
    }

    /// Merges the lineage in an `X-Amzn-Trace-Id` value, and takes its `Root`
    /// as the chain root if none is known yet.
    pub fn read_trace_header(&mut self, raw: &'a str) -> &mut Self {
        match TraceHeader::parse(raw) {
            Ok(header) => {
                let root = header.root_and_loop_guard_values(|value| {
                    self.read_lineage_value(value, "trace header");
                });
                if self.chain_root.is_none() {
                    self.chain_root = root;
                }
            }
            Err(error) => tracing::warn!(%error, "ignoring oversized trace header"),
        }
        self
    }

    /// Merges an encoded lineage (a message attribute value, a client context
    /// entry, a custom field). `carrier` names it in the warning logged when
    /// the value is malformed (and then ignored).
    pub fn read_lineage_value(&mut self, value: &'a str, carrier: &'static str) -> &mut Self {
        if self.last_value == Some(value) {
            return self;
        }
        self.last_value = Some(value);
        if let Some(lineage) = decode_logged(value, carrier) {
            self.lineage.merge(&lineage);
        }
        self
    }

    /// Merges an already decoded lineage (for carriers that cannot lend the
    /// encoded text, e.g. one read from a value built on the fly).
    pub fn merge_lineage(&mut self, lineage: &Lineage) -> &mut Self {
        self.lineage.merge(lineage);
        self
    }

    /// Sets the id used to report this unit as a batch item failure (the SQS
    /// `messageId`, the DynamoDB stream sequence number).
    pub fn set_item_id(&mut self, id: Option<&'a str>) -> &mut Self {
        self.item_id = id;
        self
    }

    /// Sets the ARN of the event source (SQS queue, SNS topic), which selects
    /// a per-source limit (`LOOP_GUARD_SOURCE_MAX_DEPTH`).
    pub fn set_source_arn(&mut self, arn: Option<&'a str>) -> &mut Self {
        self.source_arn = arn;
        self
    }

    /// The event source ARN, if known.
    pub fn source_arn(&self) -> Option<&'a str> {
        self.source_arn
    }

    /// The lineage merged from every carrier read so far.
    pub fn lineage(&self) -> &Lineage {
        &self.lineage
    }

    /// Where this unit came from.
    pub fn source(&self) -> EventSource {
        self.source
    }

    /// The batch item identifier, if any.
    pub fn item_id(&self) -> Option<&'a str> {
        self.item_id
    }

    /// The trace `Root` of the chain, if a trace header was read.
    pub fn chain_root(&self) -> Option<&'a str> {
        self.chain_root
    }
}

/// A Lambda payload the guard knows how to read.
///
/// The defaults treat the payload as one direct invocation read from the
/// [`Context`], so `impl GuardedEvent for MyEvent {}` is a complete opt-in.
/// Batch sources override all three methods.
pub trait GuardedEvent {
    /// Appends one [`Incoming`] per unit of work, in order.
    fn read_incoming<'a>(&'a self, context: &'a Context, out: &mut Vec<Incoming<'a>>) {
        out.push(Incoming::from_context(context));
    }

    /// [`read_incoming`](Self::read_incoming) with the layer's
    /// [`ReadOptions`]. Only sources with settings (DynamoDB streams)
    /// override it; the layer calls this one.
    fn read_incoming_with<'a>(
        &'a self,
        context: &'a Context,
        options: &ReadOptions,
        out: &mut Vec<Incoming<'a>>,
    ) {
        let _ = options;
        self.read_incoming(context, out);
    }

    /// Whether units can be removed one by one (SQS batches): then only the
    /// looping records are dropped.
    fn is_batch(&self) -> bool {
        false
    }

    /// Removes the units for which `remove(index)` is true, keeping the order
    /// of the rest. Only called when [`is_batch`](Self::is_batch) is true.
    fn remove_units(&mut self, remove: &mut dyn FnMut(usize) -> bool) {
        let _ = remove;
    }
}

impl GuardedEvent for () {}
impl GuardedEvent for String {}

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
    fn context_carriers_are_merged() {
        let mut ctx = Context::default();
        ctx.xray_trace_id = Some("Root=1-a-b;LoopGuard=v1.5.00000001-2".into());
        ctx.client_context = Some(
            serde_json::from_value(serde_json::json!({
                "custom": { CLIENT_CONTEXT_KEY: "v1.3.00000001-3.00000002-1", "theirs": "kept" }
            }))
            .unwrap(),
        );
        let incoming = Incoming::from_context(&ctx);
        let l = incoming.lineage();
        assert_eq!(l.count(crate::FunctionId::from_u32(1)), 3);
        assert_eq!(l.count(crate::FunctionId::from_u32(2)), 1);
        assert_eq!(l.hops(), 5);
        assert_eq!(incoming.chain_root(), Some("1-a-b"));
        assert_eq!(incoming.source(), EventSource::Invoke);
    }

    #[test]
    fn malformed_context_values_are_ignored() {
        let mut ctx = Context::default();
        ctx.xray_trace_id = Some("Root=1-a-b;LoopGuard=v1.zz".into());
        ctx.client_context = Some(
            serde_json::from_value(
                serde_json::json!({"custom": { CLIENT_CONTEXT_KEY: "\u{0}\u{ff}" }}),
            )
            .unwrap(),
        );
        assert!(Incoming::from_context(&ctx).lineage().is_empty());
    }

    #[test]
    fn retain_by_index_removes_exactly_the_chosen() {
        let mut v = vec!['a', 'b', 'c', 'd'];
        retain_by_index(&mut v, &mut |i| i % 2 == 1);
        assert_eq!(v, vec!['a', 'c']);
    }
}
