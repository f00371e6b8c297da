//! An exact chain budget, counted in a shared store (feature `exact-budget`;
//! the DynamoDB store with `exact-budget-dynamodb`).
//!
//! The chain budget (`LOOP_GUARD_CHAIN_BUDGET`) is enforced without shared
//! state by sharing each run's budget out among its sends, which bounds the
//! runs of a chain's tree but stops a fan-out early: an undeclared send
//! takes half of what is left, so a chain that fans out ×2 with a budget of
//! 20 runs 12 times. An **exact** budget counts the chain's runs in a store
//! instead, with one conditional write per chain per invocation: the tree
//! runs exactly its budget, whatever its shape, across concurrent
//! executions and functions.
//!
//! * The run that starts a chain costs nothing (its id is new). Every later
//!   invocation claims one run for each of its units (records) that arrived
//!   in the chain, in one call per chain; the units the store has no runs
//!   left for are dropped with reason `chain_budget`, in order.
//! * Sends are not shared out: every message carries the chain's whole
//!   budget, and receivers check the store.
//! * A store error follows [`OnStoreError`]: retry the units (the default:
//!   the guard never fails open silently) or run them, loudly.
//!
//! Every function of the chain should use the same store: one without it
//! shares the budget out as usual, which only ever lowers what its sends
//! carry.
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(feature = "exact-budget-dynamodb")]
//! # async fn f() -> Result<(), lambda_runtime::Error> {
//! use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
//! use lambda_loop_guard::exact_budget::{DynamoDbBudgetStore, ExactBudget};
//! use lambda_loop_guard::{LoopGuardConfig, LoopGuardLayer};
//! use lambda_runtime::{service_fn, LambdaEvent};
//! use tower::ServiceBuilder;
//!
//! let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//! let store = DynamoDbBudgetStore::new(aws_sdk_dynamodb::Client::new(&sdk), "loop-guard-budgets");
//! let layer = LoopGuardLayer::new(LoopGuardConfig::builder().chain_budget(50).build()?)
//!     .with_exact_budget(ExactBudget::new(store));
//! let service = ServiceBuilder::new().layer(layer).service_fn(
//!     |_: LambdaEvent<SqsEvent>| async { Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default()) },
//! );
//! lambda_runtime::run(service).await
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::lineage::ChainId;

#[cfg(feature = "exact-budget-dynamodb")]
mod dynamodb;

#[cfg(feature = "exact-budget-dynamodb")]
#[cfg_attr(docsrs, doc(cfg(feature = "exact-budget-dynamodb")))]
pub use self::dynamodb::DynamoDbBudgetStore;

/// An error of a [`ChainBudgetStore`].
pub type StoreError = Box<dyn std::error::Error + Send + Sync>;

/// The future of [`ChainBudgetStore::claim`]: how many runs were recorded.
pub type ClaimFuture<'a> = Pin<Box<dyn Future<Output = Result<u32, StoreError>> + Send + 'a>>;

/// Where the runs of chains are counted, atomically, for every function
/// that guards with it.
pub trait ChainBudgetStore: fmt::Debug + Send + Sync + 'static {
    /// Records up to `runs` more runs of `chain`, never more than `limit`
    /// in all for the chain, as one atomic step; returns how many it
    /// recorded (`0` when the chain has none left). `runs` and `limit` are
    /// at least 1.
    fn claim(&self, chain: ChainId, runs: u32, limit: u32) -> ClaimFuture<'_>;

    /// Gives back `runs` runs of `chain` claimed for units that did not run
    /// after all (an ordered batch cut after them, an invocation that
    /// failed before its handler), so that their retry does not spend them
    /// twice. `runs` is at least 1 and never more than was claimed.
    fn release(&self, chain: ChainId, runs: u32) -> ReleaseFuture<'_>;
}

/// The future of [`ChainBudgetStore::release`].
pub type ReleaseFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// What the guard does with units whose chain's claim failed (the store
/// could not be reached, throttled, denied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnStoreError {
    /// Leave them to be retried (default): a single-unit invocation fails
    /// with [`GuardUnavailableError`](crate::error::GuardUnavailableError);
    /// a batch reports them as batch item failures (or fails, if its
    /// response cannot), never discards them. They are not counted as
    /// loops.
    #[default]
    Retry,
    /// Run them unchecked by the exact budget (depth and hops still apply),
    /// with a warning and an `ExactBudgetUnavailable` metric.
    Run,
}

/// An exact chain budget: its store and what to do when the store fails.
/// Applied with [`LoopGuardLayer::with_exact_budget`](crate::LoopGuardLayer::with_exact_budget).
#[derive(Debug, Clone)]
pub struct ExactBudget {
    pub(crate) store: Arc<dyn ChainBudgetStore>,
    pub(crate) on_store_error: OnStoreError,
}

impl ExactBudget {
    /// Counts chains' runs in `store`; a store error leaves the units to be
    /// retried.
    pub fn new(store: impl ChainBudgetStore) -> Self {
        ExactBudget {
            store: Arc::new(store),
            on_store_error: OnStoreError::default(),
        }
    }

    /// Sets what a store error does ([`OnStoreError`]).
    #[must_use]
    pub fn on_store_error(mut self, policy: OnStoreError) -> Self {
        self.on_store_error = policy;
        self
    }
}
