//! Stops runaway recursive loops in AWS Lambda systems, the way AWS's own
//! recursive loop detection does, but for every loop, with your threshold,
//! and visible the moment it happens.
//!
//! A function that writes to the queue, topic, stream, table or function
//! that triggers it can call itself forever. AWS stops some of these chains
//! after about 16 hops, late, silently, only for SQS/SNS/Lambda/S3, and not at all when
//! `_X_AMZN_TRACE_ID` is missing (`lambda_runtime`'s concurrent mode). This
//! crate carries a small [`Lineage`] (per-function run counts, total hops)
//! with every hop and drops an invocation when its chain has run the function
//! more than `LOOP_GUARD_MAX_DEPTH` times.
//!
//! * [`run`]: the shortest correct program, a guarded handler on the
//!   Lambda runtime with everything it needs.
//! * [`LoopGuardLayer`]: the tower layer around any `lambda_runtime`
//!   handler. Reads the lineage of every unit of work (per record in
//!   batches), drops the looping ones, and emits a
//!   `RecursiveInvocationsDropped` [EMF metric](metric) and a `tracing`
//!   warning per drop.
//! * `LoopGuardInterceptor` (feature `interceptor`): stamps the outgoing
//!   lineage on AWS SDK calls; `.loop_guard()` on the SDK config builders
//!   (`interceptor::LoopGuardSdkExt`).
//! * [`source`]: one module per event source (SQS, SNS, direct and
//!   asynchronous invokes, DynamoDB streams, Kinesis, EventBridge, S3, Step
//!   Functions, Kafka, HTTP, and events inside queues): what it reads, how
//!   its batches are dropped ([`GuardedEvent`], [`GuardedResponse`]), and
//!   what it stamps. The guide's section 8 has them in one table (carrier,
//!   opt-in or automatic, cost, limits, drop semantics, what you configure).
//! * `exact_budget` (feature `exact-budget`): the chain budget counted
//!   exactly in a shared store (DynamoDB).
//! * [`Carrier`]: how the lineage travels on one medium; implement it for a
//!   transport of your own.
//! * [`Chain`]: the outgoing lineage of the running invocation.
//! * [`LoopGuardConfig`]: env configuration with code overrides.
//! * `continuation` (feature `continuation`): long jobs split across
//!   self-invocations, with a budget.
//!
//! The user guide is `docs/guide.md`; the wire format `docs/wire-format.md`.
//!
//! # Quick start
//!
//! ```no_run
//! use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
//! use lambda_runtime::{service_fn, Error, LambdaEvent};
//!
//! async fn handler(event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
//!     // Looping records never arrive here: they come back as batch item failures.
//!     for record in &event.payload.records {
//!         // Messages sent in here continue this record's own chain.
//!         lambda_loop_guard::for_record(record, async { /* ... */ }).await;
//!     }
//!     Ok(SqsBatchResponse::default())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     // Lambda's log format and level (the drop warnings are logs too).
//!     lambda_runtime::tracing::init_default_subscriber();
//!     // LOOP_GUARD_MAX_DEPTH, LOOP_GUARD_MODE, ...: a bad value is an error here.
//!     lambda_loop_guard::run(service_fn(handler)).await
//! }
//! ```
//!
//! The event source mapping needs `FunctionResponseTypes:
//! [ReportBatchItemFailures]` and the queue a DLQ (`RedrivePolicy`):
//! without them a dropped message is deleted (see the README).
//!
//! # A drop, in a test
//!
//! ```
//! use lambda_loop_guard::trace_header::TraceHeader;
//! use lambda_loop_guard::{FunctionId, Lineage, LoopGuardConfig, LoopGuardLayer};
//! use lambda_runtime::{Context, LambdaEvent};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = LoopGuardConfig::builder().function_identity("f").max_depth(2).build()?;
//! let guard = LoopGuardLayer::new(config).metric_sink(());
//! let handler = guard.layer(service_fn(|_: LambdaEvent<serde_json::Value>| async {
//!     Ok::<_, lambda_runtime::Error>("ran")
//! }));
//!
//! // The incoming chain says f already ran twice: run 3 is over the limit.
//! let ran_twice = Lineage::new()
//!     .record_run(FunctionId::from_identity("f"))
//!     .record_run(FunctionId::from_identity("f"));
//! let mut context = Context::default();
//! context.xray_trace_id = Some(TraceHeader::parse("Root=1-a-b")?.with_lineage(&ran_twice));
//! let err = handler
//!     .oneshot(LambdaEvent::new(serde_json::json!({}), context))
//!     .await
//!     .unwrap_err();
//! assert_eq!(err.as_dropped().unwrap().depth(), 3);
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! The layer needs no feature: it depends on `lambda_runtime`,
//! `aws_lambda_events` (only `sqs` and `sns`), `tower`, `tokio` (`rt`),
//! `tracing`, `serde_json` and `memchr` (already in `lambda_runtime`'s tree),
//! and on no AWS SDK crate.
//!
//! | feature | adds |
//! | --- | --- |
//! | `interceptor` | `LoopGuardInterceptor`: the trace header on calls of any AWS SDK client (`aws-smithy-runtime-api`) |
//! | `sqs` | `interceptor` + the `loop-guard` attribute on `aws-sdk-sqs` sends, and `AWSTraceHeader` |
//! | `sns` | `interceptor` + the `loop-guard` attribute on `aws-sdk-sns` publishes |
//! | `lambda` | `interceptor` + the client context of `aws-sdk-lambda` invokes, and (opt-in) the payload of async invokes |
//! | `dynamodb` | `interceptor` + opt-in item attribute stamping on `aws-sdk-dynamodb` writes; `DynamoDbEvent` reads and batch item failures |
//! | `eventbridge` | `interceptor` + `PutEvents` trace headers (and opt-in detail key) on `aws-sdk-eventbridge`; `EventBridgeEvent` reads |
//! | `s3` | `interceptor` + opt-in user metadata on `aws-sdk-s3` writes; `S3Event` reads through `HeadObject` |
//! | `http` | API Gateway v1/v2, Function URL and ALB event reads (trusted sources only) and `source::http::HttpStampLayer` |
//! | `continuation` | `lambda` + `continuation`: long jobs split across self-invocations, with a budget |
//! | `continuation-s3` | `continuation` + `s3` + offloading state over 1 MB to S3 |
//! | `concurrency` | `run_concurrent`: the guarded handler in `lambda_runtime`'s concurrent mode |
//!
//! The SDK crates are taken with `default-features = false`: your own
//! dependency on them picks the HTTP client and runtime.

#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]
#![warn(missing_debug_implementations, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod budget;
pub mod carrier;
pub mod chain;
pub mod config;
#[cfg(feature = "continuation")]
#[cfg_attr(docsrs, doc(cfg(feature = "continuation")))]
pub mod continuation;
mod env;
pub mod error;
#[cfg(feature = "exact-budget")]
#[cfg_attr(docsrs, doc(cfg(feature = "exact-budget")))]
pub mod exact_budget;
mod excerpt;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod incoming;
#[cfg(feature = "interceptor")]
#[cfg_attr(docsrs, doc(cfg(feature = "interceptor")))]
pub mod interceptor;
pub mod layer;
pub mod lineage;
pub mod metric;
mod run;
pub mod signing;
mod sns_trust;
mod sorted_indices;
pub mod source;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod trace_header;

pub use crate::carrier::Carrier;
pub use crate::chain::Chain;
pub use crate::config::{ConfigError, LoopGuardConfig, LoopGuardConfigBuilder, Mode};
pub use crate::error::{LoopGuardError, RecursiveInvocationError};
pub use crate::incoming::{EventSource, Incoming, Units};
#[cfg(feature = "interceptor")]
pub use crate::interceptor::LoopGuardInterceptor;
pub use crate::layer::{BatchDropPolicy, LoopGuard, LoopGuardLayer};
pub use crate::lineage::{ChainId, FunctionId, Lineage};
#[cfg(feature = "concurrency")]
pub use crate::run::run_concurrent;
pub use crate::run::{run, run_with};
pub use crate::source::async_payload::AsyncPayloadLayer;
pub use crate::source::{
    for_record, read_units, Batch, GuardedEvent, GuardedRecord, GuardedResponse,
};

/// The user guide's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
mod guide {}

/// The README's quick start, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}

/// The operations runbook's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/operations.md")]
mod operations {}
