//! The drop metric, written as CloudWatch Embedded Metric Format (EMF).
//!
//! One JSON line per drop on stdout: Lambda ships stdout to CloudWatch Logs,
//! which turns the line into a metric datapoint. No API call, no latency,
//! visible within a minute. The metric is `RecursiveInvocationsDropped`
//! (unit `Count`, dimension `FunctionName`) in the configured namespace. In
//! `observe` mode the same line names `RecursiveInvocationsObserved` instead,
//! so dashboards can tell would-be drops from real ones.
//!
//! Every line has `"level": "WARN"` and an RFC 3339 `"timestamp"`, so
//! Lambda's JSON log-level filtering (`ApplicationLogLevel` up to `WARN`)
//! keeps it, and the metric with it;
//! and these properties (searchable in CloudWatch Logs Insights; the
//! `tracing` warning of a drop has the same field names): `FunctionName`,
//! `Service` (when set), `Mode`, `Source`, `SourceArn`, `Reason` (`depth` or
//! `hops`), `Depth`, `MaxDepth`, `Hops`, `MaxHops`, `Lineage` (the incoming
//! one, wire format: `loop-guard decode` reads it), `ChainRoot`,
//! `RequestId`, `MessageId`.
//!
//! The writer is a [`MetricSink`]: [`StdoutSink`] by default, `()` to turn the
//! lines off, or any `Fn(&str)` (tests capture lines this way). A
//! [`DropEvent`] hook (`LoopGuardLayer::on_drop`) sees every drop too.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Mode;
use crate::error::Limit;
use crate::incoming::EventSource;
use crate::lineage::Lineage;

/// Metric name for a dropped invocation.
pub const DROPPED_METRIC: &str = "RecursiveInvocationsDropped";
/// Metric name: lineages set aside because their signature did not verify
/// (with `LOOP_GUARD_SIGNING_KEYS`), per invocation.
pub const UNVERIFIED_METRIC: &str = "UnverifiedLineages";
/// Metric name for an invocation `observe` mode would have dropped.
pub const OBSERVED_METRIC: &str = "RecursiveInvocationsObserved";
/// The metric of claims on an exact chain budget's store that failed
/// (feature `exact-budget`), with their number.
pub const EXACT_BUDGET_UNAVAILABLE_METRIC: &str = "ExactBudgetUnavailable";

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
/// plus properties. The one place EMF lines are built: written straight as
/// JSON text (no intermediate document), so a batch of looping records
/// costs little more than a clean one.
#[derive(Debug)]
pub(crate) struct EmfLine {
    /// The document so far, without its closing brace.
    text: String,
}

/// A property value of an [`EmfLine`]: a JSON string or number.
pub(crate) trait EmfValue {
    /// Appends the value as JSON.
    fn write_json(&self, out: &mut String);
}

impl EmfValue for &str {
    fn write_json(&self, out: &mut String) {
        json_string(self, out);
    }
}

impl EmfValue for String {
    fn write_json(&self, out: &mut String) {
        json_string(self, out);
    }
}

macro_rules! emf_numbers {
    ($($ty:ty),*) => {$(
        impl EmfValue for $ty {
            fn write_json(&self, out: &mut String) {
                push_digits(out, u64::from(*self), 1);
            }
        }
    )*};
}
emf_numbers!(u16, u32, u64);

/// Appends `n` in decimal, zero-padded to `width` digits (no formatting
/// machinery: a drop line has a dozen numbers).
fn push_digits(out: &mut String, n: u64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(n);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// Whether `bytes` holds a byte JSON must escape (`"`, `\\`, or a control
/// character), tested 8 bytes at a time (SWAR): every property of a drop
/// line passes through here.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero (or, for `below`, under n) exactly where the
    // high bit of the result is set, when no byte of `x` has its high bit.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // Bytes >= 0x80 (UTF-8 beyond ASCII) never need escaping: mask them
        // out of the tests, which assume 7-bit bytes.
        let ascii = !x & HIGH;
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let quote = zero(x ^ (ONES * u64::from(b'"')));
        let backslash = zero(x ^ (ONES * u64::from(b'\\')));
        if (below_space | quote | backslash) & ascii != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// `value` as a JSON string: copied between quotes when nothing needs
/// escaping (the usual case), escaped by serde_json otherwise.
fn json_string(value: &str, out: &mut String) {
    if !needs_escape(value.as_bytes()) {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else if let Ok(escaped) = serde_json::to_string(value) {
        out.push_str(&escaped);
    }
}

impl EmfLine {
    /// `metric` = 1 in `namespace`, for `function_name`, at `timestamp`.
    pub(crate) fn count(
        namespace: &str,
        metric: &str,
        function_name: &str,
        timestamp: SystemTime,
    ) -> Self {
        Self::counted(namespace, metric, function_name, timestamp, 1)
    }

    /// `metric` = `value` in `namespace`, for `function_name`, at `timestamp`.
    pub(crate) fn counted(
        namespace: &str,
        metric: &str,
        function_name: &str,
        timestamp: SystemTime,
        value: u32,
    ) -> Self {
        let millis = timestamp
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let mut text = String::with_capacity(768);
        text.push_str(r#"{"_aws":{"Timestamp":"#);
        push_digits(&mut text, millis, 1);
        text.push_str(r#","CloudWatchMetrics":[{"Namespace":"#);
        json_string(namespace, &mut text);
        text.push_str(r#","Dimensions":[["FunctionName"]],"Metrics":[{"Name":"#);
        json_string(metric, &mut text);
        text.push_str(r#","Unit":"Count"}]}]}"#);
        // Lambda's JSON log-level filtering keeps a line by its `level`, and
        // reads a line without a valid `timestamp` as INFO.
        text.push_str(r#","timestamp":""#);
        write_rfc3339(millis, &mut text);
        text.push_str(r#"","level":"WARN","FunctionName":"#);
        json_string(function_name, &mut text);
        text.push(',');
        json_string(metric, &mut text);
        text.push(':');
        push_digits(&mut text, u64::from(value), 1);
        EmfLine { text }
    }

    /// Adds a property (searchable in CloudWatch Logs Insights). Each key
    /// once.
    pub(crate) fn property(mut self, key: &'static str, value: impl EmfValue) -> Self {
        // Keys are this crate's own names: no escaping needed.
        self.text.push_str(",\"");
        self.text.push_str(key);
        self.text.push_str("\":");
        value.write_json(&mut self.text);
        self
    }

    /// Adds a property when there is a value.
    pub(crate) fn property_if(self, key: &'static str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.property(key, value),
            None => self,
        }
    }

    /// Writes the line to `sink`.
    pub(crate) fn write_to(mut self, sink: &dyn MetricSink) {
        self.text.push('}');
        sink.write_line(&self.text);
    }
}

impl std::fmt::Display for EmfLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("}")
    }
}

/// Appends `millis` since the epoch as RFC 3339 UTC with milliseconds
/// (`2026-12-01T14:30:21.123Z`).
fn write_rfc3339(millis: u64, out: &mut String) {
    let (days, ms) = (millis / 86_400_000, millis % 86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, f) = (
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1_000 % 60,
        ms % 1_000,
    );
    let fields = [
        (year.max(0) as u64, 4, '-'),
        (month as u64, 2, '-'),
        (day as u64, 2, 'T'),
        (h, 2, ':'),
        (m, 2, ':'),
        (s, 2, '.'),
        (f, 3, 'Z'),
    ];
    for (n, width, after) in fields {
        push_digits(out, n, width);
        out.push(after);
    }
}

/// One drop (or, in `observe` mode, one would-be drop): what the EMF line,
/// the `tracing` warning and a drop hook (`LoopGuardLayer::on_drop`) are
/// told.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DropEvent<'a> {
    /// The CloudWatch namespace of the metric.
    pub namespace: &'a str,
    /// The `FunctionName` dimension.
    pub function_name: &'a str,
    /// The service name (`POWERTOOLS_SERVICE_NAME`), when set.
    pub service: Option<&'a str>,
    /// `terminate` (dropped) or `observe` (would have been).
    pub mode: Mode,
    /// Where the unit came from.
    pub source: EventSource,
    /// The queue, topic, stream or table ARN, when the event says.
    pub source_arn: Option<&'a str>,
    /// Which limit was passed.
    pub reason: Limit,
    /// This function's run number in the chain, counting this one.
    pub depth: u32,
    /// Its limit.
    pub max_depth: u32,
    /// The chain's hop number, counting this one.
    pub hops: u32,
    /// Its limit.
    pub max_hops: u32,
    /// The lineage the unit arrived with.
    pub lineage: &'a Lineage,
    /// The X-Ray trace root of the chain, when known.
    pub chain_root: Option<&'a str>,
    /// The invocation's request id.
    pub request_id: &'a str,
    /// The record's id (SQS message id, stream sequence number), if any.
    pub message_id: Option<&'a str>,
}

impl DropEvent<'_> {
    /// `RecursiveInvocationsDropped`, or `RecursiveInvocationsObserved` in
    /// `observe` mode.
    pub fn metric_name(&self) -> &'static str {
        match self.mode {
            Mode::Observe => OBSERVED_METRIC,
            _ => DROPPED_METRIC,
        }
    }

    /// The EMF document for this drop, stamped with `timestamp`.
    pub(crate) fn to_emf(&self, timestamp: SystemTime) -> EmfLine {
        let chain_id = self.lineage.chain().map(|chain| chain.to_string());
        EmfLine::count(
            self.namespace,
            self.metric_name(),
            self.function_name,
            timestamp,
        )
        .property_if("Service", self.service)
        .property("Mode", self.mode.as_str())
        .property("Source", self.source.as_str())
        .property_if("SourceArn", self.source_arn)
        .property("Reason", self.reason.as_str())
        .property("Depth", self.depth)
        .property("MaxDepth", self.max_depth)
        .property("Hops", self.hops)
        .property("MaxHops", self.max_hops)
        .property("Lineage", self.lineage.encode().as_str())
        .property_if("ChainId", chain_id.as_deref())
        .property_if("ChainRoot", self.chain_root)
        .property("RequestId", self.request_id)
        .property_if("MessageId", self.message_id)
    }

    /// The `tracing` warning of this drop, with the EMF line's field names.
    pub(crate) fn trace(&self) {
        let outcome = match self.mode {
            Mode::Observe => "recursive loop detected (observe mode: the handler still runs)",
            _ => "recursive loop stopped: invocation dropped before the handler",
        };
        tracing::warn!(
            FunctionName = self.function_name,
            Service = self.service.unwrap_or(""),
            Mode = self.mode.as_str(),
            Source = self.source.as_str(),
            SourceArn = self.source_arn.unwrap_or(""),
            Reason = self.reason.as_str(),
            Depth = self.depth,
            MaxDepth = self.max_depth,
            Hops = self.hops,
            MaxHops = self.max_hops,
            Lineage = %self.lineage,
            ChainId = self.lineage.chain().map(|c| c.to_string()).unwrap_or_default(),
            ChainRoot = self.chain_root.unwrap_or(""),
            RequestId = self.request_id,
            MessageId = self.message_id.unwrap_or(""),
            "{outcome}"
        );
    }
}

/// A callback told of every drop (see `LoopGuardLayer::on_drop`).
pub type DropHook = std::sync::Arc<dyn Fn(&DropEvent<'_>) + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::time::Duration;

    proptest::proptest! {
        #[test]
        fn the_escape_test_by_words_agrees_with_the_one_by_bytes(
            s in "(\\PC|[\"\\\\\u{0}-\u{1f}\u{7f}-\u{ff}]){0,40}"
        ) {
            let by_bytes = s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
            proptest::prop_assert_eq!(needs_escape(s.as_bytes()), by_bytes, "{:?}", s);
            let mut out = String::new();
            json_string(&s, &mut out);
            proptest::prop_assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        }

        #[test]
        fn digits_are_written_with_their_width(n in proptest::num::u64::ANY, width in 0usize..=20) {
            let mut out = String::new();
            push_digits(&mut out, n, width);
            proptest::prop_assert_eq!(out, format!("{n:0width$}"));
        }
    }

    // A budgeted chain, so that every optional property is present.
    static LINEAGE: std::sync::LazyLock<Lineage> = std::sync::LazyLock::new(|| {
        let chain = crate::lineage::ChainId::from_u64(0x0123_4567_89ab_cdef).unwrap();
        (0..16).fold(Lineage::new().with_budget(chain, 40), |l, _| {
            l.record_run(crate::FunctionId::from_identity("orders"))
        })
    });

    fn record(mode: Mode) -> DropEvent<'static> {
        DropEvent {
            namespace: "LoopGuard",
            function_name: "orders",
            service: Some("shop"),
            mode,
            source: EventSource::Sqs,
            source_arn: Some("arn:aws:sqs:eu-west-1:123456789012:orders"),
            reason: Limit::Depth,
            depth: 17,
            max_depth: 16,
            hops: 17,
            max_hops: 256,
            lineage: &LINEAGE,
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
        assert_eq!(v["level"], "WARN", "kept by Lambda's log-level filtering");
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["SourceArn"], "arn:aws:sqs:eu-west-1:123456789012:orders");
        assert_eq!(v["Service"], "shop");
        let lineage: Lineage = v["Lineage"].as_str().unwrap().parse().unwrap();
        assert_eq!(lineage, *LINEAGE, "the incoming lineage, readable back");
    }

    /// Records the field names of every event.
    #[derive(Default)]
    struct FieldNames(std::sync::Mutex<Vec<String>>);

    impl tracing::field::Visit for &FieldNames {
        fn record_debug(&mut self, field: &tracing::field::Field, _: &dyn std::fmt::Debug) {
            self.0.lock().unwrap().push(field.name().to_owned());
        }
    }

    struct Recorder(std::sync::Arc<FieldNames>);

    impl tracing::Subscriber for Recorder {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            event.record(&mut &*self.0);
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn the_tracing_warning_uses_the_emf_field_names() {
        let names = std::sync::Arc::new(FieldNames::default());
        let event = record(Mode::Terminate);
        tracing::subscriber::with_default(Recorder(names.clone()), || event.trace());
        let mut traced: Vec<String> = names.0.lock().unwrap().clone();
        traced.retain(|n| n != "message");
        traced.sort();
        let v: Value = serde_json::from_str(&event.to_emf(SystemTime::now()).to_string()).unwrap();
        let mut emf: Vec<String> = v
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !["_aws", "timestamp", "level", DROPPED_METRIC].contains(&k.as_str()))
            .cloned()
            .collect();
        emf.sort();
        assert_eq!(traced, emf);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let rfc3339 = |ms| {
            let mut out = String::new();
            write_rfc3339(ms, &mut out);
            out
        };
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_133_209_828), "2026-12-01T13:53:29.828Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn digits_are_written_padded() {
        let digits = |n, width| {
            let mut out = String::new();
            push_digits(&mut out, n, width);
            out
        };
        assert_eq!(digits(0, 1), "0");
        assert_eq!(digits(7, 3), "007");
        assert_eq!(digits(1234, 2), "1234");
        assert_eq!(digits(u64::MAX, 1), u64::MAX.to_string());
    }

    #[test]
    fn strings_that_need_escaping_are_escaped() {
        let line = EmfLine::count("N\"s", "M", "f\\n\n", UNIX_EPOCH)
            .property("K", "a\"b")
            .to_string();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["FunctionName"], "f\\n\n");
        assert_eq!(v["K"], "a\"b");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "N\"s");
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
