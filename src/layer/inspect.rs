//! The per-invocation decision: which units run, which are dropped, and the
//! chain the handler runs in.

use std::time::SystemTime;

use lambda_runtime::Context;

use super::shared::Shared;
use crate::chain::Chain;
use crate::config::Mode;
use crate::error::{GuardUnavailableError, Limit, LoopGuardError, RecursiveInvocationError};
use crate::incoming::{Decide, DecisionInputs, DecodeCache, EventSource, Incoming, Units};
use crate::lineage::Lineage;
use crate::metric::DropEvent;
use crate::source::{Batch, GuardedEvent};
use crate::trace_header::TraceHeader;

/// A unit the guard refuses to run: a looping one, or (in an ordered batch
/// whose response reports failures) one after the first looping one; or,
/// `unchanged`, a write that changed nothing but our stamp, which is done
/// and not reported; or, `retry`, one the guard could not decide, which is
/// reported and never discarded.
#[derive(Debug)]
pub(super) struct DroppedUnit {
    pub(super) index: usize,
    pub(super) item_id: Option<String>,
    pub(super) unchanged: bool,
    pub(super) retry: bool,
}

impl DroppedUnit {
    /// A unit refused (looping, cut, or `retry`: undecided), reported by
    /// its id.
    fn refused(index: usize, item_id: Option<&str>, retry: bool) -> Self {
        DroppedUnit {
            index,
            item_id: item_id.map(str::to_owned),
            unchanged: false,
            retry,
        }
    }
}

/// Why the guard refuses a unit: it loops, or the guard could not decide.
#[derive(Debug)]
pub(super) enum Refusal {
    Loop(RecursiveInvocationError),
    #[cfg_attr(not(feature = "exact-budget"), allow(dead_code))]
    Unavailable(GuardUnavailableError),
}

impl Refusal {
    pub(super) fn into_error<E>(self) -> LoopGuardError<E> {
        match self {
            Refusal::Loop(e) => LoopGuardError::Dropped(e),
            Refusal::Unavailable(e) => LoopGuardError::Unavailable(e),
        }
    }
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
    pub(super) error: Option<Refusal>,
    /// With an exact budget: per chain, the runs its store granted and how
    /// many of them run (the rest go back once the invocation is decided).
    #[cfg_attr(not(any(feature = "s3", feature = "exact-budget")), allow(dead_code))]
    pub(super) claimed: Vec<ClaimedRuns>,
}

/// Runs an exact budget's store granted to one chain of an invocation.
#[cfg_attr(not(any(feature = "s3", feature = "exact-budget")), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ClaimedRuns {
    pub(super) chain: crate::lineage::ChainId,
    pub(super) granted: u32,
    /// Granted to units that run if the handler is called.
    pub(super) used: u32,
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
    // Built in place and finished by reference: the decision (some 700
    // bytes) is never moved.
    let mut inspection = Inspection::new(shared, payload, context, reports_failures, false);
    inspection.read_units(payload);
    inspection.finish()
}

/// The decision so far, unit by unit.
pub(super) struct Inspection<'s, 'a> {
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
    error: Option<Refusal>,
    // The index of the unit `error` describes: the first refused one.
    error_index: usize,
    // With an exact chain budget: the units that passed every check their
    // message alone decides, in order, waiting for their chains' claims.
    deferred: Option<Vec<Deferred<'a>>>,
    exact: bool,
    claimed: Vec<ClaimedRuns>,
    // The last two kinds of unit that ran without a report, the latest
    // first: a later unit with the same inputs (the records of one producer
    // run, or of two in turn) is decided as it was.
    last_ran: [Option<Ran<'a>>; 2],
    // Whether the last unit ran as `last_ran[0]` (or was a repeat of it): a
    // record like it may be handed over as a repeat.
    last_repeatable: bool,
}

impl<'a> Decide<'a> for Inspection<'_, 'a> {
    fn unit(&mut self, unit: Incoming<'a>) -> bool {
        self.last_repeatable = self.decide(unit);
        self.last_repeatable
    }

    /// Runs `count` units as the last unit did (their inputs are the same):
    /// merging its lineage again would change nothing.
    fn repeat(&mut self, count: usize) -> bool {
        // Only right after a unit that ran as the latest kind (or a repeat
        // of it): else they are read in full.
        let Some(latest) = self.last_ran[0].as_ref().filter(|_| self.last_repeatable) else {
            return false;
        };
        let Ok(repeats) = u32::try_from(count) else {
            return false;
        };
        self.units += count;
        // Counted as `count` single repeats would count them (a batch is
        // at most thousands of units, each rejecting at most three texts).
        self.decoded.rejected += latest.rejected * repeats;
        true
    }
}

/// A unit that ran (its lineage merged): what it was decided on, and the
/// lineages its resolution counted as unverified. A unit with the same
/// inputs runs with nothing more to do: merging a lineage again changes
/// nothing, whatever was merged since (`Lineage::merge`'s tests).
struct Ran<'a> {
    inputs: DecisionInputs<'a>,
    rejected: u32,
}

/// A unit waiting for its chain's claim on the exact budget.
#[cfg_attr(not(feature = "exact-budget"), allow(dead_code))]
struct Deferred<'a> {
    index: usize,
    unit: Incoming<'a>,
    lineage: Lineage,
    over: Over,
    // Its chain's claim in `ExactClaims`, if it arrived in a budgeted chain.
    claim: Option<usize>,
}

/// Runs claimed on an exact chain budget, one per chain of the invocation,
/// in the order the chains first appear.
#[cfg(feature = "exact-budget")]
#[derive(Debug, Default)]
pub(super) struct ExactClaims {
    pub(super) claims: Vec<ExactClaim>,
}

/// One chain's claim: `runs` units of this invocation arrived in it.
#[cfg(feature = "exact-budget")]
#[derive(Debug)]
pub(super) struct ExactClaim {
    pub(super) chain: crate::lineage::ChainId,
    /// The chain's budget, counting the run that started it.
    pub(super) budget: u32,
    pub(super) runs: u32,
    /// What the store granted: how many of the `runs` may run, or why it
    /// could not tell.
    pub(super) granted: Result<u32, String>,
    /// Granted runs given to units so far (while settling).
    pub(super) used: u32,
    /// Whether the store recorded the granted runs (not when its error was
    /// overridden with [`OnStoreError::Run`](crate::exact_budget::OnStoreError::Run)).
    pub(super) recorded: bool,
}

impl<'s, 'a> Inspection<'s, 'a> {
    /// Nothing read yet of `payload`. With `exact`, units that pass are
    /// held back for [`settle`](Self::settle) (in modes that drop or
    /// report): their chains' claims decide them.
    pub(super) fn new<T: GuardedEvent>(
        shared: &'s Shared,
        payload: &'a T,
        context: &'a Context,
        reports_failures: bool,
        exact: bool,
    ) -> Self {
        let batch = payload.batch();
        let config = &shared.config;
        Inspection {
            shared,
            context,
            per_record: batch.drops_per_record(),
            cut_at_first_drop: reports_failures && batch == Batch::Ordered,
            units: 0,
            merged: Lineage::new(),
            decoded: DecodeCache::with_keys(config.signing_keys()),
            runner_source: None,
            dropped: Vec::new(),
            error: None,
            error_index: 0,
            deferred: (exact && config.mode() != Mode::Allow && config.counts_runs())
                .then(Vec::new),
            exact,
            claimed: Vec::new(),
            last_ran: [None, None],
            last_repeatable: false,
        }
    }

    /// Reads and decides every unit of `payload`, as it hands them over
    /// (no buffer of units).
    pub(super) fn read_units<T: GuardedEvent>(&mut self, payload: &'a T) {
        let (context, config) = (self.context, &self.shared.config);
        payload.read_incoming(context, config, &mut Units::deciding(self));
    }

    /// Decides one unit; whether it ran as the latest kind of unit that ran
    /// (a repeat of it may follow).
    fn decide(&mut self, unit: Incoming<'a>) -> bool {
        let index = self.units;
        self.units += 1;
        let config = &self.shared.config;
        let mode = config.mode();
        if self.cut_at_first_drop && self.error.is_some() {
            self.drop_refused(index, &unit);
            return false;
        }
        if unit.is_unchanged() && self.per_record {
            self.set_aside_unchanged(index, &unit);
            return false;
        }
        // Only the records of a batch repeat one another.
        let inputs = self
            .per_record
            .then(|| unit.decision_inputs(config))
            .flatten();
        if let Some(inputs) = &inputs {
            let [latest, before] = &mut self.last_ran;
            let seen = |ran: &Option<Ran<'a>>| {
                ran.as_ref()
                    .filter(|r| r.inputs == *inputs)
                    .map(|r| r.rejected)
            };
            // Decided as that unit was: the same lineage, under the same
            // limits, runs, and merging it again changes nothing.
            if let Some(rejected) = seen(latest) {
                self.decoded.rejected += rejected;
                return true;
            }
            if let Some(rejected) = seen(before) {
                std::mem::swap(latest, before);
                self.decoded.rejected += rejected;
                return true;
            }
        }
        let rejected = self.decoded.rejected;
        let lineage = unit.resolve(&mut self.decoded);
        if unit.source() == EventSource::Http && !config.trust_http() {
            if !lineage.is_empty() {
                untrusted_http_lineage_ignored();
            }
            return false;
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
        let mut reported = false;
        if let (Some(limit), true) = (over.limit(), mode != Mode::Allow && config.counts_runs()) {
            if self.past_limit(index, &unit, &lineage, &over, limit) {
                return false;
            }
            reported = true;
        }
        match &mut self.deferred {
            // A unit reported already (`observe`) runs: no claim for it.
            Some(deferred) if !reported => {
                defer(
                    deferred,
                    Deferred {
                        index,
                        unit,
                        lineage,
                        over,
                        claim: None,
                    },
                );
                false
            }
            _ => {
                self.merge(&lineage);
                match (inputs, reported) {
                    (Some(inputs), false) => {
                        self.last_ran[1] = self.last_ran[0].replace(Ran {
                            inputs,
                            rejected: self.decoded.rejected - rejected,
                        });
                        true
                    }
                    _ => false,
                }
            }
        }
    }

    /// Drops a refused unit (a looping one, or one of an ordered batch cut
    /// before it), reported by its id.
    #[cold]
    #[inline(never)]
    fn drop_refused(&mut self, index: usize, unit: &Incoming<'a>) {
        self.dropped
            .push(DroppedUnit::refused(index, unit.item_id(), false));
    }

    /// Sets aside a write that changed nothing but our stamp: done, not run
    /// and not reported. Rare: kept out of the hot path's code.
    #[cold]
    #[inline(never)]
    fn set_aside_unchanged(&mut self, index: usize, unit: &Incoming<'a>) {
        tracing::debug!(
            item = unit.item_id().unwrap_or(""),
            "a write that changed nothing but the loop guard stamp: not passed to the handler"
        );
        self.dropped.push(DroppedUnit {
            index,
            item_id: None,
            unchanged: true,
            retry: false,
        });
    }

    /// Records why the invocation refuses units: the refusal of the first
    /// unit (by index) refused.
    fn refuse(&mut self, index: usize, refusal: impl FnOnce() -> Refusal) {
        if self.error.is_none() || index < self.error_index {
            self.error = Some(refusal());
            self.error_index = index;
        }
    }

    /// Reports a unit past `limit`; drops it in `terminate` mode (returns
    /// whether it did). Kept out of the hot path's code: a unit past a
    /// limit is the exception.
    #[cold]
    #[inline(never)]
    fn past_limit(
        &mut self,
        index: usize,
        unit: &Incoming<'a>,
        lineage: &Lineage,
        over: &Over,
        limit: Limit,
    ) -> bool {
        let config = &self.shared.config;
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
            over,
            lineage,
            chain_root,
        };
        report(self.shared, unit, &past, &self.context.request_id);
        if config.mode() != Mode::Terminate {
            return false;
        }
        self.drop_refused(index, unit);
        self.refuse(index, || {
            Refusal::Loop(RecursiveInvocationError {
                function_name: config.function_name().to_owned(),
                limit,
                depth: over.depth,
                max_depth: over.max_depth,
                hops: over.hops,
                max_hops: over.max_hops,
                source: unit.source(),
                source_arn: unit.source_arn().map(str::to_owned),
                chain_root: chain_root.map(str::to_owned),
            })
        });
        true
    }

    /// Logs how many records of an ordered batch were cut after its first
    /// looping one.
    #[cold]
    #[inline(never)]
    fn log_ordered_cut(&self) {
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

    /// Adds a unit that runs to the invocation's outgoing lineage.
    fn merge(&mut self, lineage: &Lineage) {
        // The records of a batch usually carry one lineage: merging it again
        // changes nothing, and a comparison costs less.
        if lineage.unsigned() != self.merged {
            self.merged.merge(lineage);
        }
    }

    #[cfg(feature = "exact-budget")]
    /// The claims the held-back units need: one per budgeted chain, for as
    /// many runs as units arrived in it.
    pub(super) fn exact_claims(&mut self) -> ExactClaims {
        let mut claims = ExactClaims::default();
        let Some(deferred) = &mut self.deferred else {
            return claims;
        };
        let mut by_chain = std::collections::HashMap::new();
        for unit in deferred.iter_mut() {
            let (Some(chain), Some(budget)) = (unit.lineage.chain(), unit.lineage.budget()) else {
                continue;
            };
            let at = *by_chain.entry(chain).or_insert_with(|| {
                claims.claims.push(ExactClaim {
                    chain,
                    budget,
                    runs: 0,
                    granted: Ok(0),
                    used: 0,
                    recorded: false,
                });
                claims.claims.len() - 1
            });
            let claim = &mut claims.claims[at];
            claim.runs += 1;
            claim.budget = claim.budget.min(budget);
            unit.claim = Some(at);
        }
        claims
    }

    #[cfg(feature = "exact-budget")]
    /// Decides the held-back units with their chains' `claims`: of each
    /// chain's units, the first `granted` run and the rest are past the
    /// chain budget; a chain whose claim failed has its units retried (an
    /// ordered batch is cut there like at a drop).
    pub(super) fn settle(&mut self, mut claims: ExactClaims) {
        let Some(deferred) = self.deferred.take() else {
            return;
        };
        // An ordered batch is cut at its first refused unit, which may be
        // one refused already (the units after it were cut then).
        let refused = |d: &DroppedUnit| !d.unchanged;
        let mut cut_at = self.dropped.iter().find(|d| refused(d)).map(|d| d.index);
        for Deferred {
            index,
            unit,
            lineage,
            over,
            claim,
        } in deferred
        {
            if self.cut_at_first_drop && cut_at.is_some_and(|at| at < index) {
                self.drop_refused(index, &unit);
                continue;
            }
            // Whether the unit's chain has a run left for it (taken now).
            let runs = claim.map(|at| match claims.claims.get_mut(at) {
                Some(ExactClaim {
                    granted: Ok(granted),
                    used,
                    ..
                }) => {
                    let left = *used < *granted;
                    *used += u32::from(left);
                    Ok(left)
                }
                Some(ExactClaim {
                    granted: Err(reason),
                    ..
                }) => Err(reason.clone()),
                None => Err("no claim was made for the chain".to_owned()),
            });
            match runs {
                None | Some(Ok(true)) => {}
                Some(Ok(false)) => {
                    if self.past_limit(index, &unit, &lineage, &over, Limit::ChainBudget) {
                        cut_at = Some(cut_at.map_or(index, |at| at.min(index)));
                        continue;
                    }
                }
                Some(Err(reason)) => {
                    self.dropped
                        .push(DroppedUnit::refused(index, unit.item_id(), true));
                    cut_at = Some(cut_at.map_or(index, |at| at.min(index)));
                    let function_name = self.shared.config.function_name().to_owned();
                    self.refuse(index, || {
                        Refusal::Unavailable(GuardUnavailableError {
                            function_name,
                            reason,
                        })
                    });
                    continue;
                }
            }
            self.merge(&lineage);
        }
        // Units held back were decided out of their turn.
        self.dropped.sort_unstable_by_key(|d| d.index);
        self.claimed = claims
            .claims
            .iter()
            .filter_map(|claim| {
                let granted = *claim.granted.as_ref().ok()?;
                (claim.recorded && granted > 0).then_some(ClaimedRuns {
                    chain: claim.chain,
                    granted,
                    used: claim.used,
                })
            })
            .collect();
    }

    /// The verdict: what was decided, and the chain the handler runs in.
    /// Called once, last (it takes what was decided).
    pub(super) fn finish(&mut self) -> Verdict {
        let config = &self.shared.config;
        if self.decoded.rejected > 0 && config.mode() != Mode::Allow {
            report_unverified(self.shared, self.decoded.rejected, &self.context.request_id);
        }
        if self.cut_at_first_drop && !self.dropped.is_empty() {
            self.log_ordered_cut();
        }
        let outgoing = config.record_run(&self.merged, self.runner_source.flatten());
        let incoming_trace_header = self.context.xray_trace_id.as_deref();
        let budget = self.merged.budget().or(config.chain_budget());
        let chain = match (self.exact, outgoing.chain(), budget) {
            // An exact budget is counted in its store, not shared out: every
            // send carries the chain's whole budget.
            (true, Some(id), Some(budget)) => Chain::guarded_unshared(
                outgoing.with_budget(id, budget),
                incoming_trace_header,
                config.clone(),
            ),
            _ => Chain::guarded(outgoing, incoming_trace_header, config.clone()),
        };
        Verdict {
            chain,
            units: self.units,
            dropped: std::mem::take(&mut self.dropped),
            error: self.error.take(),
            claimed: std::mem::take(&mut self.claimed),
        }
    }
}

/// Holds a unit back for its chain's claim on an exact budget (out of line:
/// only an exact budget needs it, and then for every unit, so not cold).
#[inline(never)]
fn defer<'a>(deferred: &mut Vec<Deferred<'a>>, unit: Deferred<'a>) {
    deferred.push(unit);
}

/// Logs that an HTTP unit's lineage was ignored (its source is not trusted).
#[cold]
#[inline(never)]
fn untrusted_http_lineage_ignored() {
    tracing::debug!("lineage from an untrusted HTTP source ignored (LOOP_GUARD_TRUST_HTTP)");
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

#[cold]
#[inline(never)]
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
#[cold]
#[inline(never)]
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
