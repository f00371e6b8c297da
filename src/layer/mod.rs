//! The tower middleware that guards a `lambda_runtime` handler.
//!
//! [`LoopGuardLayer`] wraps any `Service<LambdaEvent<T>>` whose payload `T`
//! is a [`GuardedEvent`](crate::GuardedEvent) and whose response is a
//! [`GuardedResponse`](crate::GuardedResponse). For each unit of work (the
//! invocation, or each record of a batch) it reads the incoming lineage and this
//! function's run count `c` and the chain's hops `h`. Run `c + 1` is allowed
//! up to `max_depth`, hop `h + 1` up to `max_hops`; beyond either the unit is
//! **dropped**: the handler does not see it, an EMF metric line and a
//! `tracing` warning are emitted, and:
//!
//! * a single-unit invocation ([`Batch::Single`](crate::Batch::Single):
//!   direct, SNS, EventBridge, S3, HTTP) fails with
//!   [`RecursiveInvocationError`](crate::RecursiveInvocationError) (Lambda
//!   retries it, then hands it to the DLQ / on-failure destination);
//! * in a batch (SQS, DynamoDB streams, a custom source) only the looping
//!   records are removed. If the handler's response reports batch item
//!   failures (`SqsBatchResponse`, `DynamoDbEventResponse`, any
//!   [`GuardedResponse`](crate::GuardedResponse) with an
//!   `empty_batch_response`) they are added to it (the source retries them,
//!   then moves them to its DLQ or on-failure destination). Otherwise the
//!   [`BatchDropPolicy`] decides; the default fails the invocation, so no
//!   record is ever deleted silently;
//! * an ordered batch ([`Batch::Ordered`](crate::Batch::Ordered): SQS FIFO,
//!   DynamoDB streams) whose response reports failures is cut at its first
//!   looping record: it and every later record are reported, in order;
//! * a record that changed nothing but our stamp (a DynamoDB no-op write)
//!   is removed and not reported: it is done.
//!
//! While the handler runs, the outgoing lineage (own count and hops + 1) is
//! the current [`Chain`](crate::chain::Chain).
//!
//! # Example
//!
//! ```no_run
//! use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
//! use lambda_loop_guard::LoopGuardLayer;
//! use lambda_runtime::{service_fn, Error, LambdaEvent};
//! use tower::ServiceBuilder;
//!
//! async fn handler(event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
//!     // ... only records that are not looping arrive here ...
//!     Ok(SqsBatchResponse::default())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let service = ServiceBuilder::new()
//!         .layer(LoopGuardLayer::from_env()?)
//!         .service_fn(handler);
//!     lambda_runtime::run(service).await
//! }
//! ```

#[cfg(feature = "exact-budget")]
mod exact;
mod future;
mod inspect;
#[allow(clippy::module_inception)]
mod layer;
#[cfg(feature = "s3")]
mod s3;
mod service;
mod shared;
#[cfg(any(feature = "s3", feature = "exact-budget"))]
mod staged;

#[cfg(feature = "exact-budget")]
#[cfg_attr(docsrs, doc(cfg(feature = "exact-budget")))]
pub use self::exact::{ExactBudgetGuard, ExactBudgetLayer};
pub use self::future::ResponseFuture;
pub use self::layer::LoopGuardLayer;
#[cfg(feature = "s3")]
#[cfg_attr(docsrs, doc(cfg(feature = "s3")))]
pub use self::s3::{S3Metadata, S3MetadataGuard, S3MetadataLayer, S3ResponseFuture};
pub use self::service::LoopGuard;
pub use self::shared::BatchDropPolicy;
#[cfg(any(feature = "s3", feature = "exact-budget"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "s3", feature = "exact-budget"))))]
pub use self::staged::{StagedFuture, StagedGuard, StagedLayer};
