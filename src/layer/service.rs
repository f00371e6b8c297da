use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use lambda_runtime::LambdaEvent;
use tower::Service;

use super::future::ResponseFuture;
use super::inspect::{inspect, Refusal, Verdict};
use super::shared::{BatchDropPolicy, Shared};
use crate::chain::{Chain, Running};
use crate::config::LoopGuardConfig;
use crate::error::LoopGuardError;
use crate::source::{Batch, GuardedEvent, GuardedResponse};

/// Middleware that drops invocations of a chain that has run this function
/// more than `max_depth` times. See the [module docs](crate::layer); built
/// by [`LoopGuardLayer`](crate::LoopGuardLayer).
#[derive(Clone)]
pub struct LoopGuard<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> LoopGuard<S> {
    /// Wraps `inner` with `config` (EMF lines on stdout).
    pub fn new(inner: S, config: LoopGuardConfig) -> Self {
        LoopGuard::from_shared(inner, Arc::new(Shared::new(config)))
    }

    pub(super) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        LoopGuard { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for LoopGuard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopGuard")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<S, T> Service<LambdaEvent<T>> for LoopGuard<S>
where
    S: Service<LambdaEvent<T>>,
    S::Response: GuardedResponse,
    T: GuardedEvent,
{
    type Response = S::Response;
    type Error = LoopGuardError<S::Error>;
    type Future = ResponseFuture<S::Future, S::Response, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(LoopGuardError::Handler)
    }

    fn call(&mut self, mut event: LambdaEvent<T>) -> Self::Future {
        let verdict = inspect(
            &self.shared,
            &event.payload,
            &event.context,
            S::Response::empty_batch_response().is_some(),
        );
        let decision = decide::<T, S::Response>(&self.shared, &mut event.payload, verdict);
        respond(&self.shared, &mut self.inner, event, decision)
    }
}

/// Carries out `decision`: calls `inner` with what is left of `event`
/// under the decided chain, or answers without it.
pub(super) fn respond<S, T>(
    shared: &Shared,
    inner: &mut S,
    event: LambdaEvent<T>,
    decision: Decision<S::Response>,
) -> ResponseFuture<S::Future, S::Response, S::Error>
where
    S: Service<LambdaEvent<T>>,
{
    match decision {
        Decision::Run { chain, failures } => {
            // In scope while `call` runs too: a service may start its
            // work (and its SDK calls) there, not only in the future.
            let running = Running::start(&chain, shared.config.sequential_fallback());
            let future = chain.clone().sync_scope(|| inner.call(event));
            ResponseFuture::guarded(chain.scope(future), failures, running)
        }
        Decision::Respond(response) => ResponseFuture::ready(Ok(response)),
        Decision::Drop(error) => ResponseFuture::ready(Err(error.into_error())),
    }
}

/// What to do with an invocation once its units are inspected.
pub(super) enum Decision<R> {
    /// Run the handler under `chain` (looping units already removed); add
    /// `failures` to its batch response.
    Run { chain: Chain, failures: Vec<String> },
    /// Every unit loops: answer with this batch response, handler not run.
    Respond(R),
    /// Fail the invocation.
    Drop(Refusal),
}

/// Applies the drop rules (module docs) to a [`Verdict`], removing the
/// looping units from `payload` when the handler still runs.
pub(super) fn decide<T: GuardedEvent, R: GuardedResponse>(
    shared: &Shared,
    payload: &mut T,
    verdict: Verdict,
) -> Decision<R> {
    if verdict.error.is_none() && verdict.dropped.is_empty() {
        // Nothing loops and nothing is set aside: the usual case.
        return Decision::Run {
            chain: verdict.chain,
            failures: Vec::new(),
        };
    }
    decide_with_drops(shared, payload, verdict)
}

/// [`decide`] for a verdict that drops or sets aside units. Kept out of the
/// usual path's code: a loop is the exception.
#[cold]
#[inline(never)]
fn decide_with_drops<T: GuardedEvent, R: GuardedResponse>(
    shared: &Shared,
    payload: &mut T,
    verdict: Verdict,
) -> Decision<R> {
    let Verdict {
        chain,
        units,
        dropped,
        error,
        ..
    } = verdict;
    let failures: Vec<String> = match error {
        // Nothing loops; unchanged writes (if any) are removed below.
        None => Vec::new(),
        Some(error) if !payload.batch().drops_per_record() => return Decision::Drop(error),
        Some(error) => {
            let reported = || dropped.iter().filter(|d| !d.unchanged);
            // Only looping records may be discarded: records the guard
            // could not decide are retried, and an ordered batch cut at its
            // first drop holds innocent records too.
            let discard = shared.batch_policy == BatchDropPolicy::DiscardLoopingRecords
                && !reported().any(|d| d.retry);
            let ordered = payload.batch() == Batch::Ordered;
            match R::empty_batch_response() {
                // Reported one by one; a record without an id cannot be, so
                // it fails the invocation, unless the policy is to discard it.
                Some(_) if reported().all(|d| d.item_id.is_some()) || (discard && !ordered) => {
                    reported().filter_map(|d| d.item_id.clone()).collect()
                }
                None if discard => Vec::new(),
                _ => return Decision::Drop(error),
            }
        }
    };
    if dropped.len() == units && !dropped.is_empty() {
        // Nothing left to run: looping records reported, unchanged ones done.
        if let Some(mut response) = R::empty_batch_response() {
            if !failures.is_empty() {
                response.add_batch_item_failures(failures);
            }
            return Decision::Respond(response);
        }
        // Nothing to report (the response cannot): unchanged or discarded.
        if let Some(response) = R::response_without_records() {
            return Decision::Respond(response);
        }
    }
    if !dropped.is_empty() {
        let mut dropped_unit =
            crate::sorted_indices::sorted_membership(dropped.iter().map(|d| d.index));
        payload.remove_units(&mut dropped_unit);
    }
    Decision::Run { chain, failures }
}
