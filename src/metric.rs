//! The drop metric, written as CloudWatch Embedded Metric Format (EMF).
//!
//! One JSON line per drop on stdout: Lambda ships stdout to CloudWatch Logs,
//! which turns the line into a metric datapoint. No API call, no latency,
//! visible within a minute. The metric is `RecursiveInvocationsDropped`
//! (unit `Count`, dimension `FunctionName`) in the configured namespace. In
//! `observe` mode the same line names `RecursiveInvocationsObserved` instead,
//! so dashboards can tell would-be drops from real ones.
//!
//! Properties on every line (searchable in CloudWatch Logs Insights):
//! `ChainRoot`, `Source`, `Reason` (`depth` or `hops`), `Depth`, `MaxDepth`,
//! `Hops`, `MaxHops`, `RequestId`, `MessageId`, `Mode`.
//!
//! The writer is a [`MetricSink`]: [`StdoutSink`] by default, `()` to turn the
//! lines off, or any `Fn(&str)` (tests capture lines this way).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::config::Mode;
use crate::error::Limit;
use crate::incoming::EventSource;

/// Metric name for a dropped invocation.
pub const DROPPED_METRIC: &str = "RecursiveInvocationsDropped";
/// Metric name for an invocation `observe` mode would have dropped.
pub const OBSERVED_METRIC: &str = "RecursiveInvocationsObserved";

/// Where EMF lines go. Implemented for [`StdoutSink`], `()` (discard) and
/// any `Fn(&str) + Send + Sync`.
pub trait MetricSink: Send + Sync + 'static {
    /// Writes one complete EMF JSON document (no trailing newline).
    fn write_line(&self, line: &str);
}

/// Writes each line to stdout, in one `write` so concurrent invocations
/// never interleave.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdoutSink;

impl MetricSink for StdoutSink {
    fn write_line(&self, line: &str) {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        let mut out = std::io::stdout().lock();
        // A closed stdout must not fail the invocation; the tracing event
        // still records the drop.
        let _ = out.write_all(&buf).and_then(|()| out.flush());
    }
}

impl MetricSink for () {
    fn write_line(&self, _line: &str) {}
}

impl<F> MetricSink for F
where
    F: Fn(&str) + Send + Sync + 'static,
{
    fn write_line(&self, line: &str) {
        self(line)
    }
}

/// One EMF document: a `Count` metric of 1 with dimension `FunctionName`,
/// plus properties. The one place EMF lines are built.
#[derive(Debug)]
pub(crate) struct EmfLine {
    doc: serde_json::Map<String, Value>,
}

impl EmfLine {
    /// `metric` = 1 in `namespace`, for `function_name`, at `timestamp`.
    pub(crate) fn count(
        namespace: &str,
        metric: &str,
        function_name: &str,
        timestamp: SystemTime,
    ) -> Self {
        let millis = timestamp
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let mut doc = serde_json::Map::new();
        doc.insert(
            "_aws".to_owned(),
            json!({
                "Timestamp": millis,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [["FunctionName"]],
                    "Metrics": [{ "Name": metric, "Unit": "Count" }],
                }],
            }),
        );
        doc.insert("FunctionName".to_owned(), json!(function_name));
        doc.insert(metric.to_owned(), json!(1));
        EmfLine { doc }
    }

    /// Adds a property (searchable in CloudWatch Logs Insights).
    pub(crate) fn property(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.doc.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a property when there is a value.
    pub(crate) fn property_if(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.property(key, value),
            None => self,
        }
    }

    /// Writes the line to `sink`.
    pub(crate) fn write_to(&self, sink: &dyn MetricSink) {
        sink.write_line(&self.to_string());
    }
}

impl std::fmt::Display for EmfLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_string(&self.doc).map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

/// Everything one drop line says.
#[derive(Debug)]
pub(crate) struct DropRecord<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) function_name: &'a str,
    pub(crate) mode: Mode,
    pub(crate) source: EventSource,
    pub(crate) limit: Limit,
    pub(crate) depth: u32,
    pub(crate) max_depth: u32,
    pub(crate) hops: u32,
    pub(crate) max_hops: u32,
    pub(crate) chain_root: Option<&'a str>,
    pub(crate) request_id: &'a str,
    pub(crate) message_id: Option<&'a str>,
}

impl DropRecord<'_> {
    pub(crate) fn metric_name(&self) -> &'static str {
        match self.mode {
            Mode::Observe => OBSERVED_METRIC,
            _ => DROPPED_METRIC,
        }
    }

    /// The EMF document for this drop, stamped with `timestamp`.
    pub(crate) fn to_emf(&self, timestamp: SystemTime) -> EmfLine {
        EmfLine::count(
            self.namespace,
            self.metric_name(),
            self.function_name,
            timestamp,
        )
        .property("Source", self.source.as_str())
        .property("Reason", self.limit.as_str())
        .property("Depth", self.depth)
        .property("MaxDepth", self.max_depth)
        .property("Hops", self.hops)
        .property("MaxHops", self.max_hops)
        .property("Mode", self.mode.as_str())
        .property("RequestId", self.request_id)
        .property_if("ChainRoot", self.chain_root)
        .property_if("MessageId", self.message_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record(mode: Mode) -> DropRecord<'static> {
        DropRecord {
            namespace: "LoopGuard",
            function_name: "orders",
            mode,
            source: EventSource::Sqs,
            limit: Limit::Depth,
            depth: 17,
            max_depth: 16,
            hops: 17,
            max_hops: 256,
            chain_root: Some("1-5759e988-bd862e3fe1be46a994272793"),
            request_id: "req-1",
            message_id: Some("m-1"),
        }
    }

    #[test]
    fn emf_document_has_required_keys() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let v: Value =
            serde_json::from_str(&record(Mode::Terminate).to_emf(at).to_string()).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_123u64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "LoopGuard");
        assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
        assert_eq!(directive["Metrics"][0]["Name"], DROPPED_METRIC);
        assert_eq!(directive["Metrics"][0]["Unit"], "Count");
        // Every dimension and metric named in the directive is a root member.
        assert_eq!(v["FunctionName"], "orders");
        assert_eq!(v[DROPPED_METRIC], 1);
        assert_eq!(v["ChainRoot"], "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(v["Source"], "sqs");
        assert_eq!(v["Depth"], 17);
        assert_eq!(v["Reason"], "depth");
        assert_eq!(v["MaxHops"], 256);
        assert_eq!(v["RequestId"], "req-1");
        assert_eq!(v["MessageId"], "m-1");
    }

    #[test]
    fn observe_mode_uses_its_own_metric_name() {
        let v: Value =
            serde_json::from_str(&record(Mode::Observe).to_emf(SystemTime::now()).to_string())
                .unwrap();
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            OBSERVED_METRIC
        );
        assert_eq!(v[OBSERVED_METRIC], 1);
        assert!(v.get(DROPPED_METRIC).is_none());
    }
}
