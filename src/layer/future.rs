use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::chain::{Running, Scoped};
use crate::error::LoopGuardError;
use crate::source::GuardedResponse;

pin_project! {
    /// Response future of [`LoopGuard`](super::LoopGuard).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F, R, E> {
        #[pin]
        kind: Kind<F, R, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, R, E> {
        // The handler runs with the chain in scope; dropped SQS records are
        // reported as batch item failures on its response.
        Guarded {
            #[pin]
            future: Scoped<F>,
            batch_item_failures: Vec<String>,
            // The invocation counts as running until this future is done
            // or dropped.
            running: Running,
        },
        // Decided without the handler.
        Ready {
            result: Option<Result<R, LoopGuardError<E>>>,
        },
    }
}

impl<F, R, E> ResponseFuture<F, R, E> {
    pub(super) fn guarded(
        future: Scoped<F>,
        batch_item_failures: Vec<String>,
        running: Running,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Guarded {
                future,
                batch_item_failures,
                running,
            },
        }
    }

    pub(super) fn ready(result: Result<R, LoopGuardError<E>>) -> Self {
        ResponseFuture {
            kind: Kind::Ready {
                result: Some(result),
            },
        }
    }
}

impl<F, R, E> Future for ResponseFuture<F, R, E>
where
    F: Future<Output = Result<R, E>>,
    R: GuardedResponse,
{
    type Output = Result<R, LoopGuardError<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Guarded {
                future,
                batch_item_failures,
                running: _,
            } => match future.poll(cx) {
                Poll::Ready(Ok(mut response)) => {
                    if !batch_item_failures.is_empty() {
                        response.add_batch_item_failures(std::mem::take(batch_item_failures));
                    }
                    Poll::Ready(Ok(response))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(LoopGuardError::Handler(e))),
                Poll::Pending => Poll::Pending,
            },
            KindProj::Ready { result } => match result.take() {
                Some(result) => Poll::Ready(result),
                // Polled after completion: stay pending rather than panic.
                None => Poll::Pending,
            },
        }
    }
}

impl<F, R, E> std::fmt::Debug for ResponseFuture<F, R, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
