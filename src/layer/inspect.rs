//! The per-invocation decision: which units run, which are dropped, and the
//! chain the handler runs in.

use std::sync::Arc;
use std::time::SystemTime;

use lambda_runtime::Context;

use super::shared::Shared;
use crate::chain::Chain;
use crate::config::Mode;
use crate::error::RecursiveInvocationError;
use crate::incoming::{EventSource, Incoming};
use crate::lineage::Lineage;
use crate::metric::DropRecord;
use crate::source::GuardedEvent;
use crate::trace_header::TraceHeader;

/// A unit the guard refuses to run.
#[derive(Debug)]
pub(super) struct DroppedUnit {
    pub(super) index: usize,
    pub(super) item_id: Option<String>,
}

/// What the guard decided for one invocation.
#[derive(Debug)]
pub(super) struct Verdict {
    /// The chain the handler runs in (outgoing lineage).
    pub(super) chain: Chain,
    /// Number of units in the event.
    pub(super) units: usize,
    /// Units to drop (empty unless mode is `terminate`).
    pub(super) dropped: Vec<DroppedUnit>,
    /// The error describing the first drop.
    pub(super) error: Option<RecursiveInvocationError>,
}

/// Reads every unit of `payload`, reports each one past the threshold
/// (metric + tracing, in both `terminate` and `observe` mode) and decides.
pub(super) fn inspect<T: GuardedEvent>(shared: &Shared, payload: &T, context: &Context) -> Verdict {
    let config = &shared.config;
    let me = config.function_id();

    let mut units: Vec<Incoming<'_>> = Vec::new();
    payload.read_incoming(context, config, &mut units);

    let mut merged = Lineage::new();
    let mut dropped = Vec::new();
    let mut error = None;
    for (index, unit) in units.iter().enumerate() {
        if unit.source() == EventSource::Http && !config.trust_http() {
            if !unit.lineage().is_empty() {
                tracing::debug!(
                    "lineage from an untrusted HTTP source ignored (LOOP_GUARD_TRUST_HTTP)"
                );
            }
            continue;
        }
        let depth = u32::from(unit.lineage().count(me)) + 1;
        let max_depth = config.max_depth_for(unit.source_arn());
        if depth > max_depth {
            // Only a drop needs the root: the context's header is read then.
            let chain_root = unit.chain_root().or_else(|| {
                context
                    .xray_trace_id
                    .as_deref()
                    .and_then(|h| TraceHeader::parse(h).ok())
                    .and_then(|h| h.root())
            });
            report(
                shared,
                unit,
                depth,
                max_depth,
                chain_root,
                &context.request_id,
            );
            if config.mode() == Mode::Terminate {
                dropped.push(DroppedUnit {
                    index,
                    item_id: unit.item_id().map(str::to_owned),
                });
                error.get_or_insert_with(|| RecursiveInvocationError {
                    function_name: config.function_name().to_owned(),
                    depth,
                    max_depth,
                    source: unit.source(),
                    source_arn: unit.source_arn().map(str::to_owned),
                    chain_root: chain_root.map(str::to_owned),
                });
                continue;
            }
        }
        merged.merge(unit.lineage());
    }

    let incoming_trace_header = context.xray_trace_id.as_deref().map(Arc::<str>::from);
    Verdict {
        chain: Chain::new(merged.record_run(me), incoming_trace_header),
        units: units.len(),
        dropped,
        error,
    }
}

fn report(
    shared: &Shared,
    unit: &Incoming<'_>,
    depth: u32,
    max_depth: u32,
    chain_root: Option<&str>,
    request_id: &str,
) {
    let config = &shared.config;
    let record = DropRecord {
        namespace: config.metric_namespace(),
        function_name: config.function_name(),
        mode: config.mode(),
        source: unit.source(),
        depth,
        max_depth,
        chain_root,
        request_id,
        message_id: unit.item_id(),
    };
    let outcome = match config.mode() {
        Mode::Observe => "recursive loop detected (observe mode: the handler still runs)",
        _ => "recursive loop stopped: invocation dropped before the handler",
    };
    tracing::warn!(
        function = config.function_name(),
        chain_root = chain_root.unwrap_or("unknown"),
        source = %unit.source(),
        depth,
        max_depth,
        source_arn = unit.source_arn().unwrap_or(""),
        message_id = unit.item_id().unwrap_or(""),
        request_id,
        "{outcome}"
    );
    record.to_emf(SystemTime::now()).write_to(&*shared.sink);
}
