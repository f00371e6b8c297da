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
//! `ChainRoot`, `Source`, `Depth`, `MaxDepth`, `RequestId`, `MessageId`, `Mode`.
//!
//! The writer is a [`MetricSink`]: [`StdoutSink`] by default, `()` to turn the
//! lines off, or any `Fn(&str)` (tests capture lines this way).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::config::Mode;
use crate::event::EventSource;

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

/// Everything one drop line says.
#[derive(Debug)]
pub(crate) struct DropRecord<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) function_name: &'a str,
    pub(crate) mode: Mode,
    pub(crate) source: EventSource,
    pub(crate) depth: u32,
    pub(crate) max_depth: u32,
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
    pub(crate) fn to_emf(&self, timestamp: SystemTime) -> String {
        let millis = timestamp
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let metric = self.metric_name();
        let mut doc = json!({
            "_aws": {
                "Timestamp": millis,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["FunctionName"]],
                    "Metrics": [{ "Name": metric, "Unit": "Count" }],
                }],
            },
            "FunctionName": self.function_name,
            "Source": self.source.as_str(),
            "Depth": self.depth,
            "MaxDepth": self.max_depth,
            "Mode": self.mode.as_str(),
            "RequestId": self.request_id,
        });
        if let Value::Object(map) = &mut doc {
            map.insert(metric.to_owned(), json!(1));
            if let Some(root) = self.chain_root {
                map.insert("ChainRoot".to_owned(), json!(root));
            }
            if let Some(id) = self.message_id {
                map.insert("MessageId".to_owned(), json!(id));
            }
        }
        doc.to_string()
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
            depth: 17,
            max_depth: 16,
            chain_root: Some("1-5759e988-bd862e3fe1be46a994272793"),
            request_id: "req-1",
            message_id: Some("m-1"),
        }
    }

    #[test]
    fn emf_document_has_required_keys() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let v: Value = serde_json::from_str(&record(Mode::Terminate).to_emf(at)).unwrap();
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
        assert_eq!(v["RequestId"], "req-1");
        assert_eq!(v["MessageId"], "m-1");
    }

    #[test]
    fn observe_mode_uses_its_own_metric_name() {
        let v: Value =
            serde_json::from_str(&record(Mode::Observe).to_emf(SystemTime::now())).unwrap();
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            OBSERVED_METRIC
        );
        assert_eq!(v[OBSERVED_METRIC], 1);
        assert!(v.get(DROPPED_METRIC).is_none());
    }
}
