//! Intentional recursion made safe: a long job split across self-invocations,
//! each continuing where the last stopped, bounded by a budget of its own.
//!
//! The classic recursive Lambda: do a batch of work, check the time left,
//! and, if not finished, invoke yourself asynchronously with the position
//! and an iteration counter. [`Continuations::run`] does exactly that: it
//! calls your step function while time remains (the invocation's deadline
//! minus a safety margin), then re-invokes the same function
//! (`Invoke`, `InvocationType::Event`, `Context.invoked_function_arn`) with
//! the state and the next sequence number, and returns
//! [`Outcome::Continued`]; when a step says it is done, it returns
//! [`Outcome::Finished`].
//!
//! Continuation hops are recognised by the loop guard: the continuation
//! carries the lineage the job *arrived* with, so it never trips
//! `LOOP_GUARD_MAX_DEPTH`, and AWS's 16-hop cut does not apply to a function
//! whose `RecursiveLoop` is `Allow`. A runaway job is stopped by the budget
//! instead: continuation `LOOP_GUARD_MAX_CONTINUATIONS + 1` (default 101) is
//! refused before any step with [`ContinuationError::BudgetExhausted`] and
//! an EMF line `ContinuationBudgetExhausted`; Lambda then sends that event,
//! the exact point to resume from, to the DLQ or on-failure destination.
//!
//! Nothing is lost on the way: each run `(job, sequence)` is claimed in a
//! [`ContinuationLedger`] (*in progress* until the invocation's deadline,
//! *done* once the next continuation was handed off or the job finished,
//! *released* when the run fails, so that Lambda's retry runs it again; an
//! expired claim is taken over). A duplicate delivery of a done run returns
//! [`Outcome::Duplicate`]; one that finds the run in progress waits, then
//! fails rather than report work that did not happen. Use a durable ledger
//! in production: [`DynamoDbLedger`] (feature `continuation-dynamodb`) or
//! `S3Ledger` (feature `continuation-s3`). The guide's chapter 7 has the
//! table of every failure path.
//!
//! The payload of an asynchronous invoke is limited to 1 MB (Lambda Invoke
//! API reference); larger state is a clear error
//! ([`ContinuationError::StateTooLarge`]) before anything is sent.
//!
//! # Example
//!
//! ```no_run
//! use lambda_loop_guard::continuation::{ContinuationEvent, Continuations, Outcome, Step};
//! use lambda_runtime::{Error, LambdaEvent};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Position { next_row: u64, total: u64 }
//!
//! async fn handler(
//!     jobs: &Continuations,
//!     event: LambdaEvent<ContinuationEvent<Position>>,
//! ) -> Result<String, Error> {
//!     let outcome = jobs
//!         .run(event, |mut p: Position| async move {
//!             p.next_row += 1_000; // ... process rows next_row..next_row + 1000 ...
//!             Ok::<_, Error>(if p.next_row >= p.total { Step::Done(p) } else { Step::Continue(p) })
//!         })
//!         .await?;
//!     Ok(match outcome {
//!         Outcome::Finished(p) => format!("done at row {}", p.next_row),
//!         Outcome::Continued { sequence } => format!("continued as run {sequence}"),
//!         Outcome::Duplicate { sequence } => format!("run {sequence} was a duplicate"),
//!         // `Outcome` is `#[non_exhaustive]`.
//!         _ => String::new(),
//!     })
//! }
//! ```

//!
//! # Modules
//!
//! The payload ([`ContinuationEvent`]), the ledger model and the in-memory
//! ledger ([`ContinuationLedger`]), the runner ([`Continuations`]) and its
//! errors each have a file; so do the durable ledgers (`dynamodb`, `s3`) and
//! the S3 state offload (`offload`).

#[cfg(feature = "continuation-dynamodb")]
mod dynamodb;
mod error;
mod event;
mod ledger;
#[cfg(feature = "continuation-s3")]
mod offload;
mod runner;
#[cfg(feature = "continuation-s3")]
mod s3;

#[cfg(feature = "continuation-dynamodb")]
pub use dynamodb::DynamoDbLedger;
pub use error::ContinuationError;
pub use event::{
    ContinuationEvent, ContinuationMeta, StateRef, CONTINUATION_KEY, MAX_ASYNC_PAYLOAD_BYTES,
};
pub use ledger::{
    Claim, ClaimToken, ContinuationLedger, InMemoryLedger, LedgerFuture, DONE_RETENTION,
};
pub use runner::{
    Continuations, ContinuationsBuilder, Outcome, Step, BUDGET_EXHAUSTED_METRIC,
    DEFAULT_MAX_CONTINUATIONS, ENV_MAX_CONTINUATIONS,
};
#[cfg(feature = "continuation-s3")]
pub use s3::S3Ledger;
