//! The per-invocation decision: which units run, which are dropped, and the
//! chain the handler runs in.

use std::sync::Arc;
use std::time::SystemTime;

use lambda_runtime::Context;

use super::shared::Shared;
use crate::chain::Chain;
use crate::config::Mode;
use crate::error::{Limit, RecursiveInvocationError};
use crate::incoming::{DecodeCache, EventSource, Incoming, Units};
use crate::lineage::Lineage;
use crate::metric::DropEvent;
use crate::source::{Batch, GuardedEvent};
use crate::trace_header::TraceHeader;

/// A unit the guard refuses to run: a looping one, or (in an ordered batch
/// whose response reports failures) one after the first looping one; or,
/// `unchanged`, a write that changed nothing but our stamp, which is done
/// and not reported.
#[derive(Debug)]
pub(super) struct DroppedUnit {
    pub(super) index: usize,
    pub(super) item_id: Option<String>,
    pub(super) unchanged: bool,
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

/// Reads every unit of `payload`, reports each one past a limit (metric +
/// tracing, in `terminate` and `observe` mode) and decides. In `allow` mode
/// nothing is reported or dropped, but runs are counted and passed on.
///
/// `reports_failures` says whether the handler's response reports batch
/// item failures: then an ordered batch ([`Batch::Ordered`]) is cut at its
/// first looping record, which and every later record are reported (so the
/// source retries from there in order, and nothing runs twice).
pub(super) fn inspect<T: GuardedEvent>(
    shared: &Shared,
    payload: &T,
    context: &Context,
    reports_failures: bool,
) -> Verdict {
    let batch = payload.batch();
    let mut inspection = Inspection {
        shared,
        context,
        per_record: batch.drops_per_record(),
        cut_at_first_drop: reports_failures && batch == Batch::Ordered,
        units: 0,
        merged: Lineage::new(),
        decoded: DecodeCache::with_keys(shared.config.signing_keys()),
        runner_source: None,
        dropped: Vec::new(),
        error: None,
    };
    // Each unit is decided as the event hands it over: no buffer of units.
    payload.read_incoming(
        context,
        &shared.config,
        &mut Units::new(&mut |unit| inspection.unit(unit)),
    );
    inspection.finish()
}

/// The decision so far, unit by unit.
struct Inspection<'s, 'a> {
    shared: &'s Shared,
    context: &'a Context,
    per_record: bool,
    cut_at_first_drop: bool,
    units: usize,
    merged: Lineage,
    decoded: DecodeCache<'a, 's>,
    // The source this invocation's runs count under: the units of one
    // invocation come from one event source (a mixed custom batch counts
    // under its first counted unit's).
    runner_source: Option<Option<&'a str>>,
    dropped: Vec<DroppedUnit>,
    error: Option<RecursiveInvocationError>,
}

impl<'a> Inspection<'_, 'a> {
    fn unit(&mut self, unit: Incoming<'a>) {
        let index = self.units;
        self.units += 1;
        let config = &self.shared.config;
        let mode = config.mode();
        if self.cut_at_first_drop && self.error.is_some() {
            self.dropped.push(DroppedUnit {
                index,
                item_id: unit.item_id().map(str::to_owned),
                unchanged: false,
            });
            return;
        }
        if unit.is_unchanged() && self.per_record {
            tracing::debug!(
                item = unit.item_id().unwrap_or(""),
                "a write that changed nothing but the loop guard stamp: not passed to the handler"
            );
            self.dropped.push(DroppedUnit {
                index,
                item_id: None,
                unchanged: true,
            });
            return;
        }
        let lineage = unit.resolve(&mut self.decoded);
        if unit.source() == EventSource::Http && !config.trust_http() {
            if !lineage.is_empty() {
                tracing::debug!(
                    "lineage from an untrusted HTTP source ignored (LOOP_GUARD_TRUST_HTTP)"
                );
            }
            return;
        }
        let (me, max_depth) = config.limit_for(unit.source_arn());
        self.runner_source.get_or_insert(unit.source_arn());
        let over = Over {
            depth: u32::from(lineage.count(me)) + 1,
            max_depth,
            hops: u32::from(lineage.hops()) + 1,
            max_hops: config.max_hops(),
            // Arrived without a budget: the chain starts here (with the
            // configured one) or is not budgeted.
            budget: lineage.budget().or(config.chain_budget()),
        };
        if let (Some(limit), true) = (over.limit(), mode != Mode::Allow && config.counts_runs()) {
            // Only a drop needs the root: the context's header is read then.
            // A batch record's chain is not the invocation's (the context
            // holds the event source mapping's own trace): no fallback.
            let chain_root = unit.chain_root().or_else(|| {
                (!self.per_record)
                    .then_some(self.context.xray_trace_id.as_deref())
                    .flatten()
                    .and_then(|h| TraceHeader::parse(h).ok())
                    .and_then(|h| h.root())
            });
            let past = PastLimit {
                limit,
                over: &over,
                lineage: &lineage,
                chain_root,
            };
            report(self.shared, &unit, &past, &self.context.request_id);
            if mode == Mode::Terminate {
                self.dropped.push(DroppedUnit {
                    index,
                    item_id: unit.item_id().map(str::to_owned),
                    unchanged: false,
                });
                self.error.get_or_insert_with(|| RecursiveInvocationError {
                    function_name: config.function_name().to_owned(),
                    limit,
                    depth: over.depth,
                    max_depth: over.max_depth,
                    hops: over.hops,
                    max_hops: over.max_hops,
                    source: unit.source(),
                    source_arn: unit.source_arn().map(str::to_owned),
                    chain_root: chain_root.map(str::to_owned),
                });
                return;
            }
        }
        // The records of a batch usually carry one lineage: merging it again
        // changes nothing, and a comparison costs less.
        if lineage.unsigned() != self.merged {
            self.merged.merge(&lineage);
        }
    }

    fn finish(self) -> Verdict {
        let config = &self.shared.config;
        if self.decoded.rejected > 0 && config.mode() != Mode::Allow {
            report_unverified(self.shared, self.decoded.rejected, &self.context.request_id);
        }
        if self.cut_at_first_drop {
            let looping = self.error.as_ref().map_or(0, |_| 1);
            let after = self
                .dropped
                .iter()
                .filter(|d| !d.unchanged)
                .count()
                .saturating_sub(looping);
            if after > 0 {
                tracing::info!(
                    records = after,
                    "ordered batch cut at its first looping record: the later ones are reported \
                     for retry, in order, not run"
                );
            }
        }
        let outgoing = config.record_run(&self.merged, self.runner_source.flatten());
        let incoming_trace_header = self.context.xray_trace_id.as_deref().map(Arc::<str>::from);
        Verdict {
            chain: Chain::guarded(outgoing, incoming_trace_header, config.clone()),
            units: self.units,
            dropped: self.dropped,
            error: self.error,
        }
    }
}

/// Where a unit stands against the limits.
struct Over {
    depth: u32,
    max_depth: u32,
    hops: u32,
    max_hops: u32,
    budget: Option<u32>,
}

impl Over {
    /// The limit the unit is past, if any (the per-function one first).
    fn limit(&self) -> Option<Limit> {
        if self.depth > self.max_depth {
            Some(Limit::Depth)
        } else if self.hops > self.max_hops {
            Some(Limit::Hops)
        } else if self.budget == Some(0) {
            Some(Limit::ChainBudget)
        } else {
            None
        }
    }
}

/// A unit past a limit: which, by how much, and the chain it arrived with.
struct PastLimit<'u> {
    limit: Limit,
    over: &'u Over,
    lineage: &'u Lineage,
    chain_root: Option<&'u str>,
}

fn report(shared: &Shared, unit: &Incoming<'_>, past: &PastLimit<'_>, request_id: &str) {
    let PastLimit {
        limit,
        over,
        lineage,
        chain_root,
    } = *past;
    let config = &shared.config;
    let event = DropEvent {
        namespace: config.metric_namespace(),
        function_name: config.function_name(),
        service: config.service(),
        mode: config.mode(),
        source: unit.source(),
        source_arn: unit.source_arn(),
        reason: limit,
        depth: over.depth,
        max_depth: over.max_depth,
        hops: over.hops,
        max_hops: over.max_hops,
        lineage,
        chain_root,
        request_id,
        message_id: unit.item_id(),
    };
    event.trace();
    event.to_emf(SystemTime::now()).write_to(&*shared.sink);
    if let Some(hook) = &shared.on_drop {
        hook(&event);
    }
}

/// Lineages whose signature did not verify (with `LOOP_GUARD_SIGNING_KEYS`):
/// counted as absent, and reported once per invocation with their number.
fn report_unverified(shared: &Shared, count: u32, request_id: &str) {
    let config = &shared.config;
    tracing::warn!(
        FunctionName = config.function_name(),
        UnverifiedLineages = count,
        RequestId = request_id,
        "loop guard lineages without a valid signature were counted as absent \
         (forged, from a sender without the keys, or signed with a key this function no longer has)"
    );
    crate::metric::EmfLine::counted(
        config.metric_namespace(),
        crate::metric::UNVERIFIED_METRIC,
        config.function_name(),
        SystemTime::now(),
        count,
    )
    .property("RequestId", request_id)
    .write_to(&*shared.sink);
}
