//! The errors a guarded handler can return.

use std::fmt;

use lambda_runtime::Diagnostic;

use crate::incoming::EventSource;

/// The `errorType` Lambda reports for a dropped invocation, the same name
/// AWS uses for its own recursive loop detection.
pub const RECURSIVE_INVOCATION_ERROR_TYPE: &str = "RecursiveInvocationException";

/// Which limit a dropped unit was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// This function's runs in the chain (`LOOP_GUARD_MAX_DEPTH`, or the
    /// source's own limit).
    Depth,
    /// The whole chain's hops, any functions (`LOOP_GUARD_MAX_HOPS`): a
    /// cycle through more functions than a lineage tracks.
    Hops,
    /// The chain's budget (`LOOP_GUARD_CHAIN_BUDGET`): runs of the whole
    /// tree, all functions; the message's sender had none left for it.
    ChainBudget,
}

impl Limit {
    /// `depth`, `hops` or `chain_budget` (the metric's `Reason`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Limit::Depth => "depth",
            Limit::Hops => "hops",
            Limit::ChainBudget => "chain_budget",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// An invocation was dropped because its chain has run this function more
/// than `max_depth` times, or made more than `max_hops` hops.
///
/// Only the guard creates it. Lambda records a failed invocation: SQS
/// retries the message until `maxReceiveCount` and then moves it to the
/// queue's dead-letter queue; asynchronous invocations (SNS) go to the
/// function's DLQ or on-failure destination. Nothing is lost silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecursiveInvocationError {
    pub(crate) function_name: String,
    pub(crate) limit: Limit,
    pub(crate) depth: u32,
    pub(crate) max_depth: u32,
    pub(crate) hops: u32,
    pub(crate) max_hops: u32,
    pub(crate) source: EventSource,
    pub(crate) source_arn: Option<String>,
    pub(crate) chain_root: Option<String>,
}

impl RecursiveInvocationError {
    /// Which limit was passed.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// The run number of this function that was refused (`max_depth + 1`
    /// or more when the limit is [`Limit::Depth`]).
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// The hop of the chain that was refused (`max_hops + 1` or more when
    /// the limit is [`Limit::Hops`]).
    pub fn hops(&self) -> u32 {
        self.hops
    }

    /// The configured hop limit.
    pub fn max_hops(&self) -> u32 {
        self.max_hops
    }

    /// The configured limit.
    pub fn max_depth(&self) -> u32 {
        self.max_depth
    }

    /// Where the looping event came from.
    pub fn source(&self) -> EventSource {
        self.source
    }

    /// The ARN of the event source (queue, topic), when known.
    pub fn source_arn(&self) -> Option<&str> {
        self.source_arn.as_deref()
    }

    /// The X-Ray trace id (`Root`) of the chain, when known.
    pub fn chain_root(&self) -> Option<&str> {
        self.chain_root.as_deref()
    }
}

impl fmt::Display for RecursiveInvocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let root = self.chain_root.as_deref().unwrap_or("unknown");
        if self.limit == Limit::ChainBudget {
            return write!(
                f,
                "loop guard stopped a chain past its budget: function {:?} received a message \
                 of a chain with no runs left in its budget of runs for its whole tree \
                 (source: {}, chain root: {}); its handler was not called. If this fan-out is \
                 intended, raise LOOP_GUARD_CHAIN_BUDGET, declare the sends of each run \
                 (chain::declare_sends), or set LOOP_GUARD_MODE=observe to only log it",
                self.function_name, self.source, root,
            );
        }
        if self.limit == Limit::Hops {
            return write!(
                f,
                "loop guard stopped a recursive loop: function {:?} was invoked for hop {} of \
                 one chain (source: {}, chain root: {}), over the limit of {} hops per chain \
                 through any functions; its handler was not called. If this chain is intended, \
                 raise LOOP_GUARD_MAX_HOPS, or set LOOP_GUARD_MODE=observe to only log it",
                self.function_name, self.hops, self.source, root, self.max_hops,
            );
        }
        write!(
            f,
            "loop guard stopped a recursive loop: function {:?} was invoked for run {} of one \
             chain (source: {}, chain root: {}), over the limit of {} runs per chain; its \
             handler was not called. If this recursion is intended, raise LOOP_GUARD_MAX_DEPTH",
            self.function_name, self.depth, self.source, root, self.max_depth,
        )?;
        if let Some(arn) = &self.source_arn {
            write!(
                f,
                " or give {arn} its own limit in LOOP_GUARD_SOURCE_MAX_DEPTH"
            )?;
        }
        f.write_str(
            ", or set LOOP_GUARD_MODE=observe to only log it or LOOP_GUARD_MODE=allow to stop \
             dropping (the chain is still counted and passed on)",
        )
    }
}

impl std::error::Error for RecursiveInvocationError {}

impl From<RecursiveInvocationError> for Diagnostic {
    fn from(error: RecursiveInvocationError) -> Self {
        Diagnostic {
            error_type: RECURSIVE_INVOCATION_ERROR_TYPE.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// The `errorType` Lambda reports for an invocation the guard could not
/// decide and leaves to be retried ([`GuardUnavailableError`]).
pub const GUARD_UNAVAILABLE_ERROR_TYPE: &str = "LoopGuardUnavailable";

/// The guard could not decide whether a unit may run, and its policy is to
/// have it retried rather than run it unchecked: the exact chain budget's
/// store failed (`OnStoreError::Retry`, feature `exact-budget`).
///
/// Nothing was dropped as a loop: the source retries the invocation (or
/// the records reported as batch item failures) as for any other error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardUnavailableError {
    pub(crate) function_name: String,
    pub(crate) reason: String,
}

impl GuardUnavailableError {
    /// Why the guard could not decide (the store's error).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for GuardUnavailableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loop guard could not check the chain budget of function {:?}, so its work is left \
             to be retried rather than run unchecked: {}",
            self.function_name, self.reason
        )
    }
}

impl std::error::Error for GuardUnavailableError {}

impl From<GuardUnavailableError> for Diagnostic {
    fn from(error: GuardUnavailableError) -> Self {
        Diagnostic {
            error_type: GUARD_UNAVAILABLE_ERROR_TYPE.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// The error of a [`LoopGuard`](crate::LoopGuard) service: the handler's own
/// error, untouched, or a drop.
///
/// It converts into [`lambda_runtime::Diagnostic`] whenever the handler's
/// error does, so `lambda_runtime::run` accepts a guarded handler as is.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoopGuardError<E> {
    /// The handler failed.
    Handler(E),
    /// The guard dropped the invocation; the handler was not called.
    Dropped(RecursiveInvocationError),
    /// The guard could not decide and leaves the invocation to be retried;
    /// the handler was not called.
    Unavailable(GuardUnavailableError),
}

impl<E> LoopGuardError<E> {
    /// The drop, if this is one.
    pub fn as_dropped(&self) -> Option<&RecursiveInvocationError> {
        match self {
            LoopGuardError::Dropped(e) => Some(e),
            _ => None,
        }
    }

    /// The handler's error, if this is one.
    pub fn into_handler_error(self) -> Option<E> {
        match self {
            LoopGuardError::Handler(e) => Some(e),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for LoopGuardError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoopGuardError::Handler(e) => e.fmt(f),
            LoopGuardError::Dropped(e) => e.fmt(f),
            LoopGuardError::Unavailable(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for LoopGuardError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoopGuardError::Dropped(e) => Some(e),
            LoopGuardError::Unavailable(e) => Some(e),
            LoopGuardError::Handler(_) => None,
        }
    }
}

impl<E: Into<Diagnostic>> From<LoopGuardError<E>> for Diagnostic {
    fn from(error: LoopGuardError<E>) -> Self {
        match error {
            LoopGuardError::Handler(e) => e.into(),
            LoopGuardError::Dropped(e) => e.into(),
            LoopGuardError::Unavailable(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dropped() -> RecursiveInvocationError {
        RecursiveInvocationError {
            function_name: "orders".into(),
            limit: Limit::Depth,
            depth: 17,
            max_depth: 16,
            hops: 17,
            max_hops: 256,
            source: EventSource::Sqs,
            source_arn: None,
            chain_root: Some("1-5759e988-bd862e3fe1be46a994272793".into()),
        }
    }

    #[test]
    fn message_says_what_where_and_how_to_change_it() {
        let msg = dropped().to_string();
        for needle in [
            "\"orders\"",
            "run 17",
            "limit of 16",
            "sqs",
            "1-5759e988-bd862e3fe1be46a994272793",
            "LOOP_GUARD_MAX_DEPTH",
            "LOOP_GUARD_MODE=allow",
        ] {
            assert!(msg.contains(needle), "{needle} missing from {msg}");
        }
    }

    #[test]
    fn diagnostics_keep_the_handler_error_and_name_drops() {
        let d: Diagnostic = LoopGuardError::<lambda_runtime::Error>::Dropped(dropped()).into();
        assert_eq!(d.error_type, RECURSIVE_INVOCATION_ERROR_TYPE);
        let d: Diagnostic = LoopGuardError::Handler(String::from("boom")).into();
        assert_eq!(d.error_message, "boom");
        let boxed: lambda_runtime::Error = Box::new(LoopGuardError::<String>::Dropped(dropped()));
        assert!(boxed.to_string().contains("run 17"));
    }
}
