//! The chain the running invocation belongs to, readable from anywhere inside
//! a guarded handler.
//!
//! [`LoopGuard`](crate::LoopGuard) scopes a [`Chain`] around the handler
//! future in a tokio task-local: the *outgoing* lineage (this function's
//! count and the hop count already incremented) and the incoming trace
//! header. The SDK interceptor reads it to stamp outgoing calls; your code
//! can read it too. Concurrent invocations never see each other's chain.
//!
//! Task-locals do not follow `tokio::spawn`: wrap the spawned future with
//! [`carry`] so calls made there are stamped too.
//!
//! # Example
//!
//! ```
//! use lambda_loop_guard::chain::{self, Chain};
//! use lambda_loop_guard::{FunctionId, Lineage};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let me = FunctionId::from_identity("worker");
//! let chain = Chain::new(Lineage::new().record_run(me), None);
//! chain
//!     .scope(async {
//!         assert_eq!(Chain::current().unwrap().lineage().count(me), 1);
//!         // Spawned tasks see the chain only when it is carried over.
//!         let seen = tokio::spawn(chain::carry(async { Chain::current() }))
//!             .await
//!             .unwrap();
//!         assert!(seen.is_some());
//!     })
//!     .await;
//! assert!(Chain::current().is_none());
//! # }
//! ```

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

use crate::budget::Shares;
use crate::carrier::{Carrier, StampError};
use crate::config::LoopGuardConfig;
use crate::lineage::Lineage;

tokio::task_local! {
    static CURRENT: Option<Chain>;
}

/// Guarded invocations in flight in this process.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// In sequential mode, the running invocation's chain, for code outside its
/// task (a `tokio::spawn` without [`carry`], `spawn_blocking`, a library
/// that spawns): set for exactly the duration of the one invocation.
static FALLBACK: Mutex<Option<Chain>> = Mutex::new(None);

/// One guarded invocation in flight, from the guard's decision to its
/// response; with a fallback, its chain is the process-wide one meanwhile
/// (and the one it replaced, of an outer guard, comes back after it).
#[derive(Debug)]
pub(crate) struct Running {
    fallback: bool,
    previous: Option<Chain>,
}

impl Running {
    /// Starts one invocation running `chain`. `fallback` (sequential mode
    /// only: one invocation at a time per process) also makes its chain the
    /// process-wide fallback.
    pub(crate) fn start(chain: &Chain, fallback: bool) -> Running {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        let previous = if fallback {
            lock(&FALLBACK).replace(chain.clone())
        } else {
            None
        };
        Running { fallback, previous }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.fallback {
            *lock(&FALLBACK) = self.previous.take();
        }
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An invocation's incoming trace header, as a chain's state keeps it.
enum HeaderText {
    /// No header; the buffer of an earlier copy, kept for the next one.
    Absent(String),
    /// As given to [`Chain::new`].
    Given(Arc<str>),
    /// Copied by the guard into a buffer the state keeps for reuse.
    Copied(String),
}

impl HeaderText {
    /// `text`, copied into the buffer this one holds (if it holds one).
    fn set(&mut self, text: Option<&str>) {
        let mut buffer = match self {
            HeaderText::Absent(buffer) | HeaderText::Copied(buffer) => std::mem::take(buffer),
            HeaderText::Given(_) => String::new(),
        };
        buffer.clear();
        *self = match text {
            Some(text) => {
                buffer.push_str(text);
                HeaderText::Copied(buffer)
            }
            None => HeaderText::Absent(buffer),
        };
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            HeaderText::Absent(_) => None,
            HeaderText::Given(text) => Some(text),
            HeaderText::Copied(text) => Some(text),
        }
    }

    /// The room its buffer holds.
    fn capacity(&self) -> usize {
        match self {
            HeaderText::Absent(buffer) | HeaderText::Copied(buffer) => buffer.capacity(),
            HeaderText::Given(_) => 0,
        }
    }
}

/// The room a spare chain's header buffer is made with: a Lambda trace
/// header with our field is 100 to 200 bytes, up to ~500 with a long lineage.
const SPARE_HEADER_BYTES: usize = 512;

/// A chain whose header buffer grew past this (an unusually long header)
/// keeps no buffer when it is given back.
const SPARE_HEADER_MAX_BYTES: usize = 4 * SPARE_HEADER_BYTES;

/// Chain states a thread keeps for reuse: the invocation's chain, and the
/// chains made while it runs (a record's, `Chain::for_record`; a budgeted
/// send's, in the interceptor), each dropped before the next is made.
const SPARE_STATES: usize = 3;

thread_local! {
    // The states of the last chains dropped here with no holder left: the
    // next chains made on this thread reuse them (their header buffers
    // too), so an invocation allocates nothing in steady state (when its
    // chains are dropped on the thread that makes the next ones, as with
    // lambda_runtime, which calls and drops on one task).
    static SPARES: [Cell<Option<Arc<ChainState>>>; SPARE_STATES] =
        const { [const { Cell::new(None) }; SPARE_STATES] };
}

/// What a [`Chain`] holds, behind one pointer: a chain moves, is cloned and
/// is swapped in and out of its task-local as a pointer.
struct ChainState {
    lineage: Lineage,
    incoming_trace_header: HeaderText,
    // The guard's configuration, to derive a record's own chain
    // (`Chain::for_record`); shared, never copied.
    config: Option<Arc<LoopGuardConfig>>,
    // A budgeted chain: what is left of this run's budget for its sends,
    // shared by every clone (the task-local one, carried ones).
    shares: Option<Arc<Shares>>,
}

impl ChainState {
    /// An empty state whose header buffer has room for `header_bytes`.
    fn empty(header_bytes: usize) -> Self {
        ChainState {
            lineage: Lineage::new(),
            incoming_trace_header: HeaderText::Absent(String::with_capacity(header_bytes)),
            config: None,
            shares: None,
        }
    }

    /// A state holding these, copying `header`: one of this thread's spare
    /// states if it has one (no allocation), else a new one.
    fn make(
        lineage: Lineage,
        header: Option<&str>,
        config: Option<Arc<LoopGuardConfig>>,
        shares: Option<Arc<Shares>>,
    ) -> Arc<ChainState> {
        let mut state = SPARES
            .try_with(|spares| spares.iter().find_map(Cell::take))
            .ok()
            .flatten()
            .unwrap_or_else(|| Arc::new(ChainState::empty(SPARE_HEADER_BYTES)));
        match Arc::get_mut(&mut state) {
            Some(reused) => {
                reused.lineage = lineage;
                reused.incoming_trace_header.set(header);
                reused.config = config;
                reused.shares = shares;
                state
            }
            // Unreachable: only unshared states are kept, and a new one is
            // unshared. A shared one is never written.
            None => {
                let mut fresh = ChainState {
                    lineage,
                    config,
                    shares,
                    ..ChainState::empty(0)
                };
                fresh.incoming_trace_header.set(header);
                Arc::new(fresh)
            }
        }
    }

    /// Makes a spare state for this thread, if it has none, with room for
    /// a typical header (a longer one grows it once).
    fn prepare_spare() {
        let _ = SPARES.try_with(|spares| {
            if spares.iter().all(|spare| !has_state(spare)) {
                spares[0].set(Some(Arc::new(ChainState::empty(SPARE_HEADER_BYTES))));
            }
        });
    }

    /// Keeps `state`, if its holder is the last one, for the next chain
    /// made on this thread (if a slot is free): no configuration, budget or
    /// header of the chain it was is kept alive.
    fn give_back(state: &mut Arc<ChainState>) {
        // A clone is dropped while others hold the state (the usual drop):
        // a plain load says so, without `get_mut`'s locked instruction.
        if Arc::strong_count(state) > 1 {
            return;
        }
        let Some(unshared) = Arc::get_mut(state) else {
            return;
        };
        unshared.config = None;
        unshared.shares = None;
        if unshared.incoming_trace_header.capacity() > SPARE_HEADER_MAX_BYTES {
            unshared.incoming_trace_header = HeaderText::Absent(String::new());
        } else {
            unshared.incoming_trace_header.set(None);
        }
        // A thread being torn down keeps nothing.
        let _ = SPARES.try_with(|spares| {
            if let Some(free) = spares.iter().find(|spare| !has_state(spare)) {
                free.set(Some(Arc::clone(state)));
            }
        });
    }
}

/// Whether a spare slot holds a state.
fn has_state(spare: &Cell<Option<Arc<ChainState>>>) -> bool {
    let state = spare.take();
    let held = state.is_some();
    spare.set(state);
    held
}

/// How many guarded invocations are in flight in this process.
pub(crate) fn invocations_running() -> usize {
    RUNNING.load(Ordering::SeqCst)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The state of the chain for the running invocation. Two chains are equal
/// when their lineages and incoming headers are.
#[derive(Clone)]
pub struct Chain(Arc<ChainState>);

/// Makes the spare chain state of this thread (see [`Chain`]'s drop), at
/// init rather than amid the first invocation's event.
pub(crate) fn prepare_spare() {
    ChainState::prepare_spare();
}

impl Drop for Chain {
    /// The last holder of a chain gives its state (and header buffer) to
    /// the next chain made on this thread (a chain kept past its
    /// invocation, by a spawned task say, keeps it until it is dropped).
    fn drop(&mut self) {
        ChainState::give_back(&mut self.0);
    }
}

impl PartialEq for Chain {
    fn eq(&self, other: &Chain) -> bool {
        self.lineage() == other.lineage()
            && self.incoming_trace_header() == other.incoming_trace_header()
    }
}

impl Eq for Chain {}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("lineage", self.lineage())
            .field("incoming_trace_header", &self.incoming_trace_header())
            .finish_non_exhaustive()
    }
}

impl Chain {
    /// A chain whose outgoing lineage is `lineage`, entered with
    /// `incoming_trace_header` (the invocation's `X-Amzn-Trace-Id`).
    pub fn new(lineage: Lineage, incoming_trace_header: Option<Arc<str>>) -> Self {
        Chain(Arc::new(ChainState {
            shares: shares_of(&lineage),
            lineage,
            incoming_trace_header: incoming_trace_header
                .map_or(HeaderText::Absent(String::new()), HeaderText::Given),
            ..ChainState::empty(0)
        }))
    }

    /// A chain whose every carrier holds `lineage` exactly as given (its
    /// signature too, no budget shared out): a continuation's hop, the same
    /// run going on.
    #[cfg(feature = "continuation")]
    pub(crate) fn unchanged(lineage: Lineage, incoming_trace_header: Option<&str>) -> Self {
        Chain(ChainState::make(lineage, incoming_trace_header, None, None))
    }

    /// A chain set by the guard, which knows its configuration (the
    /// incoming header copied).
    pub(crate) fn guarded(
        lineage: Lineage,
        incoming_trace_header: Option<&str>,
        config: Arc<LoopGuardConfig>,
    ) -> Self {
        Chain(ChainState::make(
            config.outgoing(lineage),
            incoming_trace_header,
            Some(config),
            shares_of(&lineage),
        ))
    }

    /// A chain set by a guard with an exact chain budget: counted in its
    /// store, so every send carries `lineage`'s whole budget, not a share.
    pub(crate) fn guarded_unshared(
        lineage: Lineage,
        incoming_trace_header: Option<&str>,
        config: Arc<LoopGuardConfig>,
    ) -> Self {
        Chain(ChainState::make(
            config.outgoing(lineage),
            incoming_trace_header,
            Some(config),
            None,
        ))
    }

    /// This chain with the outgoing lineage of one record of its batch
    /// (`for_record`): the header, the configuration and the budget are
    /// this chain's. The invocation's runs share one budget, the smallest
    /// any of its records arrived with, however many times the handler
    /// scopes a record: a record's work never hands out a budget twice.
    pub(crate) fn for_record_lineage(
        &self,
        config: &LoopGuardConfig,
        arrived: &Lineage,
        source_arn: Option<&str>,
    ) -> Self {
        let mut lineage = config.record_run(arrived, source_arn);
        // The budget left is the invocation's. The chain: the record's own
        // if it arrived in a budgeted one (or, without any budget, in any
        // one), else the invocation's (where the budget, or the id,
        // started), never a fresh one per record.
        match (self.lineage().chain(), self.lineage().budget()) {
            (Some(chain), Some(budget)) => {
                let own = arrived.chain().filter(|_| arrived.budget().is_some());
                lineage = lineage.with_budget(own.unwrap_or(chain), budget);
            }
            (Some(chain), None) => lineage = lineage.in_chain(arrived.chain().unwrap_or(chain)),
            (None, _) => {}
        }
        self.with_lineage(self.signed(lineage))
    }

    /// This chain (its header, configuration and budget left), carrying
    /// `lineage` instead of its own.
    fn with_lineage(&self, lineage: Lineage) -> Self {
        Chain(ChainState::make(
            lineage,
            self.incoming_trace_header(),
            self.0.config.clone(),
            self.0.shares.clone(),
        ))
    }

    /// `lineage` signed, when the guard that set this chain signs and it is
    /// not signed already.
    fn signed(&self, lineage: Lineage) -> Lineage {
        match &self.0.config {
            Some(config) if lineage.tag().is_none() => config.outgoing(lineage),
            _ => lineage,
        }
    }

    /// The lineage to stamp on each of the `messages` messages one call
    /// sends: in a budgeted chain, with the share of the budget each gets
    /// (see [`declare_sends`](Self::declare_sends)), taken now. Write this,
    /// not [`lineage`](Self::lineage), on a message you stamp by hand (or use
    /// [`stamp_current`]): `lineage` holds the whole budget left.
    pub fn lineage_for_send(&self, messages: u32) -> Lineage {
        match &self.0.shares {
            Some(shares) => self.signed(self.lineage().with_share(shares.take(messages))),
            None => *self.lineage(),
        }
    }

    /// This chain, carrying `lineage` (one send's, with its share of the
    /// budget) instead of its own: what one call stamps. The budget left is
    /// still this run's.
    #[cfg(feature = "interceptor")]
    pub(crate) fn with_lineage_of_send(&self, lineage: Lineage) -> Self {
        self.with_lineage(lineage)
    }

    /// Declares that this run's next `sends` messages are all it will send
    /// in this chain: in a budgeted chain (`LOOP_GUARD_CHAIN_BUDGET`), what
    /// is left of the budget is shared equally among them, instead of each
    /// undeclared send taking half of what is left. A call that sends
    /// several messages (`SendMessageBatch`) counts each. Without a budget
    /// it does nothing.
    pub fn declare_sends(&self, sends: u32) {
        if let Some(shares) = &self.0.shares {
            shares.declare(sends);
        }
    }

    /// Whether this chain has a budget to share out among its sends.
    #[cfg(feature = "interceptor")]
    pub(crate) fn is_budgeted(&self) -> bool {
        self.0.shares.is_some()
    }

    /// In a budgeted chain, the runs left to share out among this run's
    /// sends.
    pub fn budget_left(&self) -> Option<u32> {
        self.0.shares.as_ref().map(|shares| shares.remaining())
    }

    /// The configuration of the guard that set this chain, if a guard did.
    pub(crate) fn config(&self) -> Option<&LoopGuardConfig> {
        self.0.config.as_deref()
    }

    /// The chain of the running guarded invocation, if any: the one in
    /// scope, else, in sequential mode, the one running in this process.
    pub fn current() -> Option<Chain> {
        Chain::with_current(|chain| chain.cloned())
    }

    /// Calls `f` with the current chain without cloning it: the chain in
    /// scope, else (sequential mode, while an invocation runs) the running
    /// invocation's.
    pub fn with_current<R>(f: impl FnOnce(Option<&Chain>) -> R) -> R {
        // `with` only panics outside a scope, which `try_with` rules out first.
        if CURRENT.try_with(|_| ()).is_ok() {
            CURRENT.with(|c| f(c.as_ref()))
        } else if invocations_running() > 0 {
            let fallback = lock(&FALLBACK).clone();
            f(fallback.as_ref())
        } else {
            f(None)
        }
    }

    /// The lineage that outgoing calls carry: the incoming one with this
    /// function's run and one hop added.
    pub fn lineage(&self) -> &Lineage {
        &self.0.lineage
    }

    /// The invocation's incoming `X-Amzn-Trace-Id`, as received.
    pub fn incoming_trace_header(&self) -> Option<&str> {
        self.0.incoming_trace_header.as_str()
    }

    /// Runs the synchronous `f` with this chain as the current one.
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(Some(self), f)
    }

    /// Runs `future` with this chain as the current one.
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        Scoped {
            inner: CURRENT.scope(Some(self), future),
        }
    }
}

fn shares_of(lineage: &Lineage) -> Option<Arc<Shares>> {
    lineage.budget().map(|left| Arc::new(Shares::new(left)))
}

/// [`Chain::declare_sends`] on the current chain: the next `sends` messages
/// are all this run sends, and share its budget equally. Outside a guarded
/// handler, or without a chain budget, it does nothing.
pub fn declare_sends(sends: u32) {
    Chain::with_current(|chain| {
        if let Some(chain) = chain {
            chain.declare_sends(sends);
        }
    });
}

/// Carries the current chain (if any) into `future`, for `tokio::spawn`:
///
/// ```
/// # async fn f() {
/// tokio::spawn(lambda_loop_guard::chain::carry(async {
///     // SDK calls here are stamped with the invocation's chain.
/// }));
/// # }
/// ```
pub fn carry<F: Future>(future: F) -> Scoped<F> {
    Scoped {
        inner: CURRENT.scope(Chain::current(), future),
    }
}

/// Writes the current [`Chain`]'s lineage on `medium` with `carrier`: one
/// message sent (in a budgeted chain, it takes this message's share).
///
/// Returns `Ok(false)`, changing nothing, outside a guarded handler.
pub fn stamp_current<M: ?Sized, C: Carrier<M> + ?Sized>(
    carrier: &C,
    medium: &mut M,
) -> Result<bool, StampError> {
    Chain::with_current(|chain| match chain {
        Some(chain) => carrier
            .write(medium, &chain.lineage_for_send(1))
            .map(|()| true),
        None => Ok(false),
    })
}

pin_project! {
    /// A future running with a [`Chain`] in scope. See [`Chain::scope`] and [`carry`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Scoped<F> {
        #[pin]
        inner: TaskLocalFuture<Option<Chain>, F>,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}

impl<F> std::fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::FunctionId;

    fn chain(n: u32) -> Chain {
        Chain::new(
            Lineage::new().record_run(FunctionId::from_u32(n)),
            Some(Arc::from(format!("Root=1-{n}"))),
        )
    }

    #[tokio::test]
    async fn scope_sets_and_restores() {
        assert!(Chain::current().is_none());
        let inner = chain(1)
            .scope(async {
                let outer = Chain::current();
                let nested = chain(2).scope(async { Chain::current() }).await;
                (outer, nested, Chain::current())
            })
            .await;
        assert_eq!(inner.0, Some(chain(1)));
        assert_eq!(inner.1, Some(chain(2)));
        assert_eq!(inner.2, Some(chain(1)));
        assert_eq!(Chain::with_current(|c| c.cloned()), None);
        assert_eq!(chain(4).sync_scope(Chain::current), Some(chain(4)));
        assert_eq!(Chain::current(), None);
    }

    #[tokio::test]
    async fn spawned_tasks_need_carry() {
        let (plain, carried) = chain(3)
            .scope(async {
                let plain = tokio::spawn(async { Chain::current() }).await.unwrap();
                let carried = tokio::spawn(carry(async { Chain::current() }))
                    .await
                    .unwrap();
                (plain, carried)
            })
            .await;
        assert_eq!(plain, None);
        assert_eq!(carried, Some(chain(3)));
        assert_eq!(
            chain(3)
                .scope(async {
                    Chain::with_current(|c| c.map(|c| c.incoming_trace_header().map(String::from)))
                })
                .await,
            Some(Some("Root=1-3".to_string()))
        );
    }
    #[test]
    fn a_dropped_chain_state_is_reused_and_a_held_one_never_is() {
        let config = Arc::new(
            LoopGuardConfig::builder()
                .function_identity("pool")
                .build()
                .unwrap(),
        );
        let lineage = |n| Lineage::new().record_run(FunctionId::from_u32(n));
        let first = Chain::guarded(lineage(1), Some("Root=1-a"), config.clone());
        let at = Arc::as_ptr(&first.0);
        drop(first);
        // Its last holder gone, the next chain made here takes its state.
        let second = Chain::guarded(lineage(2), Some("Root=1-b"), config.clone());
        assert_eq!(Arc::as_ptr(&second.0), at);
        assert_eq!(second.incoming_trace_header(), Some("Root=1-b"));
        // A chain still held (a clone kept past its invocation) is not
        // given back: later chains leave it as it was.
        let kept = second.clone();
        drop(second);
        let third = Chain::guarded(lineage(3), None, config.clone());
        assert_ne!(Arc::as_ptr(&third.0), at);
        assert_eq!(kept.incoming_trace_header(), Some("Root=1-b"));
        assert_eq!(kept.lineage(), &config.outgoing(lineage(2)));
        assert_eq!(third.incoming_trace_header(), None);
        // Given back, a state holds no configuration or budget.
        drop(kept);
        let spare = SPARES.with(|spares| spares[0].take()).unwrap();
        assert_eq!(Arc::as_ptr(&spare), at);
        assert!(spare.config.is_none() && spare.shares.is_none());
        assert_eq!(spare.incoming_trace_header.as_str(), None);
    }

    #[test]
    fn chains_made_while_one_runs_reuse_states_too() {
        let config = Arc::new(
            LoopGuardConfig::builder()
                .function_identity("pool")
                .build()
                .unwrap(),
        );
        let lineage = Lineage::new().record_run(FunctionId::from_u32(1));
        // An invocation's chain, and a record's made and dropped in turn
        // while it runs: the second record's takes the first one's state.
        let running = Chain::guarded(lineage, Some("Root=1-a"), config.clone());
        let first = running.with_lineage(lineage);
        let at = Arc::as_ptr(&first.0);
        drop(first);
        let second = running.with_lineage(lineage);
        assert_eq!(Arc::as_ptr(&second.0), at);
        assert_eq!(second.incoming_trace_header(), Some("Root=1-a"));
        // A header given by the caller is not kept alive by a spare.
        let given: Arc<str> = Arc::from("Root=1-given");
        drop(Chain::new(lineage, Some(given.clone())));
        assert_eq!(Arc::strong_count(&given), 1);
    }

    #[tokio::test]
    async fn stamp_current_writes_only_inside_a_chain() {
        let carrier = crate::carrier::MapKey::default();
        let mut map = std::collections::HashMap::new();
        assert_eq!(stamp_current(&carrier, &mut map), Ok(false));
        assert!(map.is_empty());
        let lineage = Lineage::new().record_run(FunctionId::from_u32(7));
        let chain = Chain::new(lineage, None);
        let written = chain
            .scope(async { stamp_current(&carrier, &mut map) })
            .await;
        assert_eq!(written, Ok(true));
        assert_eq!(map[crate::carrier::KEY], lineage.to_string());
    }
}
