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
use crate::exact_budget::{ExactBudget, OnStoreError};
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
            let mut inspection = Inspection::read(
                shared,
                &event.payload,
                &event.context,
                reports_failures,
                true,
            );
            let mut claims = inspection.exact_claims();
            claim(shared, self, &mut claims, &event.context.request_id).await;
            inspection.settle(claims);
            inspection.finish()
        })
    }
}

staged_service!(ExactBudget, crate::source::GuardedEvent);

/// Makes every chain's claim (concurrently), applying the store error
/// policy to the ones that fail.
async fn claim(shared: &Shared, budget: &ExactBudget, claims: &mut ExactClaims, request_id: &str) {
    let store = &*budget.store;
    let granted = futures_util::future::join_all(claims.claims.iter().map(|claim| async move {
        // The run that started the chain is not in the store.
        match claim.budget.saturating_sub(1) {
            0 => Ok(0),
            limit => store.claim(claim.chain, claim.runs, limit).await,
        }
    }))
    .await;
    let mut failed = 0;
    for (claim, granted) in claims.claims.iter_mut().zip(granted) {
        claim.granted = match granted {
            Ok(runs) => Ok(runs.min(claim.runs)),
            Err(e) => {
                failed += 1;
                let run = budget.on_store_error == OnStoreError::Run;
                tracing::warn!(
                    FunctionName = shared.config.function_name(),
                    ChainId = %claim.chain,
                    Records = claim.runs,
                    RequestId = request_id,
                    error = %e,
                    "loop guard could not claim runs on the exact chain budget: {}",
                    if run { "running them unchecked (OnStoreError::Run)" } else { "leaving them to be retried" }
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
        let config = &shared.config;
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
