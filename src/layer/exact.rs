//! The guard with an exact chain budget: each invocation claims its units'
//! runs in a [`ChainBudgetStore`](crate::exact_budget::ChainBudgetStore)
//! before deciding.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use lambda_runtime::LambdaEvent;
use tower::{Layer, Service};

use super::inspect::{ExactClaims, Inspection};
use super::layer::LoopGuardLayer;
use super::service::{decide, respond};
use super::shared::Shared;
use crate::error::LoopGuardError;
use crate::exact_budget::{ExactBudget, OnStoreError};
use crate::source::{GuardedEvent, GuardedResponse};

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
        ExactBudgetLayer {
            shared: self.shared,
            budget,
        }
    }
}

/// [`LoopGuardLayer::with_exact_budget`]: applies [`ExactBudgetGuard`].
#[derive(Clone)]
pub struct ExactBudgetLayer {
    shared: Arc<Shared>,
    budget: ExactBudget,
}

impl<S> Layer<S> for ExactBudgetLayer {
    type Service = ExactBudgetGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ExactBudgetGuard {
            inner,
            shared: self.shared.clone(),
            budget: self.budget.clone(),
        }
    }
}

impl fmt::Debug for ExactBudgetLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExactBudgetLayer")
            .field("config", &self.shared.config)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// A [`LoopGuard`](crate::LoopGuard) that counts the chain budget in a
/// store. Built by [`LoopGuardLayer::with_exact_budget`].
#[derive(Clone)]
pub struct ExactBudgetGuard<S> {
    inner: S,
    shared: Arc<Shared>,
    budget: ExactBudget,
}

impl<S: fmt::Debug> fmt::Debug for ExactBudgetGuard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExactBudgetGuard")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// The boxed future of [`ExactBudgetGuard`] (it awaits the store before the
/// handler).
pub type ExactBudgetFuture<R, E> =
    Pin<Box<dyn Future<Output = Result<R, LoopGuardError<E>>> + Send + 'static>>;

impl<S, T> Service<LambdaEvent<T>> for ExactBudgetGuard<S>
where
    S: Service<LambdaEvent<T>> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: GuardedResponse + Send + 'static,
    S::Error: Send + 'static,
    T: GuardedEvent + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = LoopGuardError<S::Error>;
    type Future = ExactBudgetFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(LoopGuardError::Handler)
    }

    fn call(&mut self, mut event: LambdaEvent<T>) -> Self::Future {
        // The ready service goes into the future; a clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let budget = self.budget.clone();
        Box::pin(async move {
            let reports_failures = S::Response::empty_batch_response().is_some();
            let verdict = {
                let mut inspection = Inspection::read(
                    &shared,
                    &event.payload,
                    &event.context,
                    reports_failures,
                    true,
                );
                let mut claims = inspection.exact_claims();
                claim(&shared, &budget, &mut claims, &event.context.request_id).await;
                inspection.settle(claims);
                inspection.finish()
            };
            let decision = decide::<T, S::Response>(&shared, &mut event.payload, verdict);
            respond(&shared, &mut inner, event, decision).await
        })
    }
}

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
