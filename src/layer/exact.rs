//! The stage of an exact chain budget: each invocation claims its units'
//! runs in a [`ChainBudgetStore`](crate::exact_budget::ChainBudgetStore)
//! before deciding.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use lambda_runtime::LambdaEvent;

use super::inspect::{ExactClaims, Inspection, Verdict};
use super::layer::LoopGuardLayer;
use super::shared::Shared;
use super::staged::{staged_service, Stage, StagedGuard, StagedLayer};
use crate::config::Mode;
use crate::exact_budget::{ExactBudget, OnStoreError};
use crate::lineage::ChainId;
use crate::source::GuardedEvent;

impl LoopGuardLayer {
    /// Counts the chain budget exactly, in `budget`'s store, instead of
    /// sharing it out among each run's sends: see [`crate::exact_budget`].
    ///
    /// Cost: one store call per budgeted chain per invocation (a batch of
    /// one chain makes one), made before the handler runs; none for an
    /// invocation that starts a chain. Works with every event type the
    /// plain guard does.
    #[must_use]
    pub fn with_exact_budget(self, budget: ExactBudget) -> ExactBudgetLayer {
        if self.shared.config.chain_budget().is_none() {
            tracing::warn!(
                "an exact chain budget is set but LOOP_GUARD_CHAIN_BUDGET is not: only chains \
                 started by other functions with a budget are counted"
            );
        }
        StagedLayer::new(self.shared, budget)
    }
}

/// [`LoopGuardLayer::with_exact_budget`]: applies [`ExactBudgetGuard`].
pub type ExactBudgetLayer = StagedLayer<ExactBudget>;

/// A [`LoopGuard`](crate::LoopGuard) that counts the chain budget in a
/// store. Built by [`LoopGuardLayer::with_exact_budget`].
pub type ExactBudgetGuard<S> = StagedGuard<S, ExactBudget>;

impl<T: GuardedEvent + Send + Sync + 'static> Stage<T> for ExactBudget {
    fn verdict<'e>(
        &'e self,
        shared: &'e Shared,
        event: &'e LambdaEvent<T>,
        reports_failures: bool,
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'e>> {
        Box::pin(async move {
            let mut inspection = Inspection::new(
                shared,
                &event.payload,
                &event.context,
                reports_failures,
                true,
            );
            inspection.read_units(&event.payload);
            let mut claims = inspection.exact_claims();
            claim(shared, self, &mut claims, &event.context.request_id).await;
            inspection.settle(claims);
            inspection.finish()
        })
    }

    fn release<'e>(
        &'e self,
        shared: &'e Shared,
        unrun: Vec<(ChainId, u32)>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'e>> {
        Box::pin(release(shared, self, unrun))
    }
}

staged_service!(ExactBudget, crate::source::GuardedEvent);

/// Claims made at once.
const CONCURRENT_CLAIMS: usize = 8;

/// Makes every chain's claim (a few at a time), applying the store error
/// policy to the ones that fail: outside `terminate` mode (where nothing is
/// dropped) their units run, whatever the policy.
async fn claim(shared: &Shared, budget: &ExactBudget, claims: &mut ExactClaims, request_id: &str) {
    use futures_util::StreamExt;
    let store = &*budget.store;
    // Owned: a stream of futures borrowing from a closure's argument is
    // not `Send` for every lifetime the boxed future needs.
    let wanted: Vec<_> = claims
        .claims
        .iter()
        .map(|claim| (claim.chain, claim.runs, claim.budget))
        .collect();
    let granted: Vec<_> =
        futures_util::stream::iter(wanted.into_iter().map(|(chain, runs, budget)| async move {
            // The run that started the chain is not in the store.
            match budget.saturating_sub(1) {
                0 => Ok(0),
                limit => store.claim(chain, runs, limit).await,
            }
        }))
        .buffered(CONCURRENT_CLAIMS)
        .collect()
        .await;
    let config = &shared.config;
    let run = budget.on_store_error == OnStoreError::Run || config.mode() != Mode::Terminate;
    let mut failed = 0;
    for (claim, granted) in claims.claims.iter_mut().zip(granted) {
        claim.granted = match granted {
            Ok(runs) => {
                claim.recorded = true;
                Ok(runs.min(claim.runs))
            }
            Err(e) => {
                failed += 1;
                tracing::warn!(
                    FunctionName = config.function_name(),
                    ChainId = %claim.chain,
                    Records = claim.runs,
                    RequestId = request_id,
                    error = %e,
                    "loop guard could not claim runs on the exact chain budget: {}",
                    if run { "running them unchecked by it" } else { "leaving them to be retried" }
                );
                if run {
                    Ok(claim.runs)
                } else {
                    Err(e.to_string())
                }
            }
        };
    }
    if failed > 0 {
        crate::metric::EmfLine::counted(
            config.metric_namespace(),
            crate::metric::EXACT_BUDGET_UNAVAILABLE_METRIC,
            config.function_name(),
            SystemTime::now(),
            failed,
        )
        .property("RequestId", request_id)
        .write_to(&*shared.sink);
    }
}

/// Gives back runs claimed for units that did not run, so that a retry of
/// them does not spend the chain's budget twice. A failure is logged: the
/// budget then counts runs that did not happen (never the reverse).
async fn release(shared: &Shared, budget: &ExactBudget, unrun: Vec<(ChainId, u32)>) {
    use futures_util::StreamExt;
    let store = &*budget.store;
    let mut released = futures_util::stream::iter(
        unrun
            .into_iter()
            .map(|(chain, runs)| async move { (chain, runs, store.release(chain, runs).await) }),
    )
    .buffer_unordered(CONCURRENT_CLAIMS);
    while let Some((chain, runs, result)) = released.next().await {
        if let Err(e) = result {
            tracing::warn!(
                FunctionName = shared.config.function_name(),
                ChainId = %chain,
                Runs = runs,
                error = %e,
                "loop guard could not give back runs claimed for units that did not run: \
                 the chain's budget counts them"
            );
        }
    }
}
