//! The shortest correct program: a guarded handler with everything it needs.

use std::fmt;
use std::future::Future;

use lambda_runtime::layers::TracingLayer;
use lambda_runtime::{Diagnostic, IntoFunctionResponse, LambdaEvent, Runtime};
use serde::{Deserialize, Serialize};
use tower::{Layer, Service};

use crate::layer::LoopGuardLayer;
use crate::source::async_payload::AsyncPayloadLayer;
use crate::source::{GuardedEvent, GuardedResponse};

/// Runs `handler` on the Lambda runtime, guarded: what
/// `lambda_runtime::run` does, with the guard configured from the
/// environment ([`LoopGuardLayer::from_env`]) as the outermost layer around
/// the handler, and [`AsyncPayloadLayer`] on the raw invocation (so
/// asynchronous payloads and EventBridge details that carry the lineage key
/// reach the handler without it). `lambda_runtime`'s own tracing layer is
/// kept.
///
/// A bad `LOOP_GUARD_*` value is returned as an error before the first
/// invocation is polled.
///
/// ```no_run
/// use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
/// use lambda_runtime::{service_fn, Error, LambdaEvent};
///
/// async fn handler(event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
///     Ok(SqsBatchResponse::default())
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), Error> {
///     lambda_loop_guard::run(service_fn(handler)).await
/// }
/// ```
pub async fn run<A, F, R, B, S, D, E>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Service<LambdaEvent<A>, Response = R>,
    F::Future: Future<Output = Result<R, F::Error>>,
    F::Error: Into<Diagnostic> + fmt::Debug,
    A: for<'de> Deserialize<'de> + GuardedEvent,
    R: IntoFunctionResponse<B, S> + GuardedResponse,
    B: Serialize,
    S: futures_core::Stream<Item = Result<D, E>> + Unpin + Send + 'static,
    D: Into<bytes::Bytes> + Send,
    E: Into<lambda_runtime::Error> + Send + fmt::Debug,
{
    run_with(LoopGuardLayer::from_env()?, handler).await
}

/// [`run`] with a guard of your own: a [`LoopGuardLayer`] (a configuration
/// built in code, a metric sink, a batch drop policy), or one of the
/// layers it builds ([`with_exact_budget`](LoopGuardLayer::with_exact_budget),
/// [`with_s3_metadata`](LoopGuardLayer::with_s3_metadata)).
pub async fn run_with<L, F, A, R, B, S, D, E>(
    guard: L,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    L: Layer<F>,
    L::Service: Service<LambdaEvent<A>, Response = R>,
    <L::Service as Service<LambdaEvent<A>>>::Future:
        Future<Output = Result<R, <L::Service as Service<LambdaEvent<A>>>::Error>>,
    <L::Service as Service<LambdaEvent<A>>>::Error: Into<Diagnostic> + fmt::Debug,
    A: for<'de> Deserialize<'de> + GuardedEvent,
    R: IntoFunctionResponse<B, S> + GuardedResponse,
    B: Serialize,
    S: futures_core::Stream<Item = Result<D, E>> + Unpin + Send + 'static,
    D: Into<bytes::Bytes> + Send,
    E: Into<lambda_runtime::Error> + Send + fmt::Debug,
{
    Runtime::new(guard.layer(handler))
        .layer(AsyncPayloadLayer::new())
        .layer(TracingLayer::new())
        .run()
        .await
}

/// [`run`] in `lambda_runtime`'s concurrent mode (Lambda Managed Instances):
/// with `AWS_LAMBDA_MAX_CONCURRENCY` above 1, that many invocations run at
/// once, each with its own chain (a task-local, never the process
/// environment, which is exactly where AWS's own propagation stops); below
/// or unset, it runs sequentially like [`run`]. Feature `concurrency`.
///
/// ```no_run
/// use lambda_runtime::{service_fn, Error, LambdaEvent};
///
/// async fn handler(event: LambdaEvent<serde_json::Value>) -> Result<(), Error> {
///     Ok(())
/// }
///
/// #[tokio::main]
/// async fn main() -> Result<(), Error> {
///     lambda_loop_guard::run_concurrent(service_fn(handler)).await
/// }
/// ```
#[cfg(feature = "concurrency")]
#[cfg_attr(docsrs, doc(cfg(feature = "concurrency")))]
pub async fn run_concurrent<A, F, R, B, S, D, E>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Service<LambdaEvent<A>, Response = R> + Clone + Send + 'static,
    F::Future: Future<Output = Result<R, F::Error>> + Send + 'static,
    F::Error: Into<Diagnostic> + fmt::Debug + Send + 'static,
    A: for<'de> Deserialize<'de> + GuardedEvent + Send + 'static,
    R: IntoFunctionResponse<B, S> + GuardedResponse + Send + 'static,
    B: Serialize + Send + 'static,
    S: futures_core::Stream<Item = Result<D, E>> + Unpin + Send + 'static,
    D: Into<bytes::Bytes> + Send + 'static,
    E: Into<lambda_runtime::Error> + Send + fmt::Debug + 'static,
{
    Runtime::new(LoopGuardLayer::from_env()?.layer(handler))
        .layer(AsyncPayloadLayer::new())
        .layer(TracingLayer::new())
        .run_concurrent()
        .await
}
