use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use lambda_runtime::LambdaEvent;
use tower::Service;

use super::future::ResponseFuture;
use super::inspect::{inspect, Verdict};
use super::layer::{BatchDropPolicy, LoopGuardLayer, Shared};
use crate::config::{LoopGuardConfig, Mode};
use crate::error::LoopGuardError;
use crate::event::GuardedEvent;

/// Middleware that drops invocations of a chain that has run this function
/// more than `max_depth` times. See the [module docs](crate::layer).
#[derive(Clone)]
pub struct LoopGuard<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> LoopGuard<S> {
    /// Wraps `inner` with `config` (EMF lines on stdout).
    pub fn new(inner: S, config: LoopGuardConfig) -> Self {
        LoopGuardLayer::new(config).layer_service(inner)
    }

    /// A [`LoopGuardLayer`] with `config`.
    pub fn layer(config: LoopGuardConfig) -> LoopGuardLayer {
        LoopGuardLayer::new(config)
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

impl LoopGuardLayer {
    fn layer_service<S>(&self, inner: S) -> LoopGuard<S> {
        LoopGuard::from_shared(inner, self.shared.clone())
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
    S::Response: 'static,
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
        if self.shared.config.mode() == Mode::Allow {
            return ResponseFuture::passthrough(self.inner.call(event));
        }
        let Verdict {
            chain,
            units,
            dropped,
            error,
        } = inspect(&self.shared, &event.payload, &event.context);

        let error = match error {
            None => {
                return ResponseFuture::guarded(chain.scope(self.inner.call(event)), Vec::new())
            }
            Some(error) => error,
        };
        if !event.payload.is_batch() {
            return ResponseFuture::ready(Err(LoopGuardError::Dropped(error)));
        }

        let ids: Option<Vec<String>> = dropped.iter().map(|d| d.item_id.clone()).collect();
        let reportable = reports_batch_item_failures::<S::Response>();
        let (failures, discard) = match (reportable, ids, self.shared.batch_policy) {
            (true, Some(ids), _) => (ids, true),
            (_, _, BatchDropPolicy::DiscardLoopingRecords) => (Vec::new(), true),
            _ => (Vec::new(), false),
        };
        if !discard {
            return ResponseFuture::ready(Err(LoopGuardError::Dropped(error)));
        }
        if dropped.len() == units && !failures.is_empty() {
            // Every record loops: answer for the handler, which never sees them.
            if let Some(response) = new_batch_response::<S::Response>(failures.clone()) {
                return ResponseFuture::ready(Ok(response));
            }
        }
        let mut next = dropped.iter().map(|d| d.index).peekable();
        event.payload.remove_units(&mut |i| {
            let hit = next.peek() == Some(&i);
            if hit {
                next.next();
            }
            hit
        });
        ResponseFuture::guarded(chain.scope(self.inner.call(event)), failures)
    }
}

fn reports_batch_item_failures<R: 'static>() -> bool {
    TypeId::of::<R>() == TypeId::of::<SqsBatchResponse>()
}

fn batch_item_failures(ids: Vec<String>) -> Vec<BatchItemFailure> {
    ids.into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect()
}

fn new_batch_response<R: 'static>(ids: Vec<String>) -> Option<R> {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = batch_item_failures(ids);
    let boxed: Box<dyn Any> = Box::new(response);
    boxed.downcast::<R>().ok().map(|b| *b)
}

/// Appends `ids` to the response's `batch_item_failures` when the response
/// is an `SqsBatchResponse` (the only case in which `ids` is non-empty).
pub(super) fn add_batch_item_failures<R: 'static>(response: &mut R, ids: Vec<String>) {
    if ids.is_empty() {
        return;
    }
    if let Some(batch) = (response as &mut dyn Any).downcast_mut::<SqsBatchResponse>() {
        for failure in batch_item_failures(ids) {
            if !batch
                .batch_item_failures
                .iter()
                .any(|f| f.item_identifier == failure.item_identifier)
            {
                batch.batch_item_failures.push(failure);
            }
        }
    }
}
