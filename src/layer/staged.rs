//! Guards that look something up before deciding: the S3 metadata of the
//! objects a unit names ([`with_s3_metadata`](super::LoopGuardLayer::with_s3_metadata)),
//! the runs left in an exact chain budget
//! ([`with_exact_budget`](super::LoopGuardLayer::with_exact_budget)). One
//! guard type, one future type, a stage each.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use lambda_runtime::LambdaEvent;
use tower::{Layer, Service};

use super::inspect::Verdict;
use super::service::{decide, respond, Decision};
use super::shared::Shared;
use crate::error::LoopGuardError;
use crate::source::{GuardedEvent, GuardedResponse};

/// What a staged guard looks up before deciding, for events of type `T`:
/// the [`Verdict`] on `event`, awaited.
pub(super) trait Stage<T>: Clone + Send + Sync + 'static {
    fn verdict<'e>(
        &'e self,
        shared: &'e Shared,
        event: &'e LambdaEvent<T>,
        reports_failures: bool,
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'e>>;

    /// Gives back what the verdict claimed for units that do not run (an
    /// exact budget's runs); nothing by default.
    fn release<'e>(
        &'e self,
        _shared: &'e Shared,
        _unrun: Vec<(crate::lineage::ChainId, u32)>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'e>> {
        Box::pin(std::future::ready(()))
    }
}

/// Applies a [`StagedGuard`] with stage `St`. Built by
/// [`with_s3_metadata`](super::LoopGuardLayer::with_s3_metadata) and
/// [`with_exact_budget`](super::LoopGuardLayer::with_exact_budget).
#[derive(Clone)]
pub struct StagedLayer<St> {
    shared: Arc<Shared>,
    stage: St,
}

impl<St> StagedLayer<St> {
    pub(super) fn new(shared: Arc<Shared>, stage: St) -> Self {
        StagedLayer { shared, stage }
    }
}

impl<S, St: Clone> Layer<S> for StagedLayer<St> {
    type Service = StagedGuard<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        StagedGuard {
            inner,
            shared: self.shared.clone(),
            stage: self.stage.clone(),
        }
    }
}

impl<St: fmt::Debug> fmt::Debug for StagedLayer<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StagedLayer")
            .field("config", &self.shared.config)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

/// A [`LoopGuard`](crate::LoopGuard) that looks something up (its stage
/// `St`) before it decides, then runs the handler as the plain guard does.
#[derive(Clone)]
pub struct StagedGuard<S, St> {
    inner: S,
    shared: Arc<Shared>,
    stage: St,
}

impl<S: fmt::Debug, St: fmt::Debug> fmt::Debug for StagedGuard<S, St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StagedGuard")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

/// The boxed future of a [`StagedGuard`]: it awaits its stage, then the
/// handler.
pub type StagedFuture<R, E> =
    Pin<Box<dyn Future<Output = Result<R, LoopGuardError<E>>> + Send + 'static>>;

impl<S, St> StagedGuard<S, St> {
    /// `inner`'s readiness.
    pub(super) fn poll_inner<T>(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), LoopGuardError<S::Error>>>
    where
        S: Service<LambdaEvent<T>>,
    {
        self.inner.poll_ready(cx).map_err(LoopGuardError::Handler)
    }

    /// Looks up the stage's verdict on `event`, decides, and calls the
    /// handler (or answers without it).
    pub(super) fn call_staged<T>(
        &mut self,
        mut event: LambdaEvent<T>,
    ) -> StagedFuture<S::Response, S::Error>
    where
        St: Stage<T>,
        S: Service<LambdaEvent<T>> + Clone + Send + 'static,
        S::Future: Send,
        S::Response: GuardedResponse + Send + 'static,
        S::Error: Send + 'static,
        T: GuardedEvent + Send + Sync + 'static,
    {
        // The ready service goes into the future; a clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let stage = self.stage.clone();
        Box::pin(async move {
            let reports_failures = S::Response::empty_batch_response().is_some();
            let mut verdict = stage.verdict(&shared, &event, reports_failures).await;
            let claimed = std::mem::take(&mut verdict.claimed);
            let decision = decide::<T, S::Response>(&shared, &mut event.payload, verdict);
            // Claimed for units that will not run: the cut ones, or all of
            // them when the handler is not called.
            let handler_runs = matches!(decision, Decision::Run { .. });
            let unrun: Vec<_> = claimed
                .iter()
                .map(|c| {
                    (
                        c.chain,
                        if handler_runs {
                            c.granted - c.used
                        } else {
                            c.granted
                        },
                    )
                })
                .filter(|&(_, runs)| runs > 0)
                .collect();
            if !unrun.is_empty() {
                stage.release(&shared, unrun).await;
            }
            respond(&shared, &mut inner, event, decision).await
        })
    }
}

/// The `Service` impl of a staged guard whose stage reads events `$bound`.
macro_rules! staged_service {
    ($stage:ty, $bound:path) => {
        impl<S, T> tower::Service<lambda_runtime::LambdaEvent<T>>
            for $crate::layer::StagedGuard<S, $stage>
        where
            S: tower::Service<lambda_runtime::LambdaEvent<T>> + Clone + Send + 'static,
            S::Future: Send,
            S::Response: $crate::source::GuardedResponse + Send + 'static,
            S::Error: Send + 'static,
            T: $bound + Send + Sync + 'static,
        {
            type Response = S::Response;
            type Error = $crate::error::LoopGuardError<S::Error>;
            type Future = $crate::layer::StagedFuture<S::Response, S::Error>;

            fn poll_ready(
                &mut self,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), Self::Error>> {
                self.poll_inner(cx)
            }

            fn call(&mut self, event: lambda_runtime::LambdaEvent<T>) -> Self::Future {
                self.call_staged(event)
            }
        }
    };
}

pub(super) use staged_service;
