//! Why a continuable run failed.

use std::fmt;

use super::event::MAX_ASYNC_PAYLOAD_BYTES;

/// Why a continuable run failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ContinuationError<E> {
    /// Your step failed.
    Step(E),
    /// The job would need continuation `sequence`, over the budget.
    BudgetExhausted {
        /// The continuation that was refused.
        sequence: u32,
        /// The budget.
        max_continuations: u32,
    },
    /// The serialized state is over the 1 MB asynchronous payload limit.
    StateTooLarge {
        /// Size of the payload that would have been sent.
        bytes: usize,
    },
    /// The state could not be serialized or read, or the payload is not a
    /// continuation event.
    State(String),
    /// Offloaded state could not be put, read or found.
    Offload(String),
    /// The ledger could not be read or written.
    Ledger(String),
    /// Another delivery of this run holds it and had not finished when this
    /// one stopped waiting: it fails, so that Lambda retries it later (and
    /// finds the run done, or takes it over).
    InProgress {
        /// The run.
        sequence: u32,
        /// When the other delivery's claim expires.
        until: std::time::SystemTime,
    },
    /// The asynchronous self-invocation failed.
    Invoke(String),
}

impl<E: fmt::Display> fmt::Display for ContinuationError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContinuationError::Step(e) => write!(f, "continuation step failed: {e}"),
            ContinuationError::BudgetExhausted {
                sequence,
                max_continuations,
            } => write!(
                f,
                "continuation budget exhausted: continuation {sequence} is over the limit of \
                 {max_continuations}; this event resumes the job: send it again once the budget \
                 (LOOP_GUARD_MAX_CONTINUATIONS, or max_continuations in code) is raised"
            ),
            ContinuationError::StateTooLarge { bytes } => write!(
                f,
                "continuation state is {bytes} bytes, over Lambda's {MAX_ASYNC_PAYLOAD_BYTES}-byte \
                 limit for asynchronous invocations; enable offload_to_s3 (feature continuation-s3) \
                 or keep large data in S3 and pass a reference"
            ),
            ContinuationError::State(e) => write!(f, "continuation state: {e}"),
            ContinuationError::Invoke(e) => write!(f, "continuation invoke failed: {e}"),
            ContinuationError::Offload(e) => write!(f, "continuation state offload failed: {e}"),
            ContinuationError::Ledger(e) => write!(f, "continuation ledger unavailable: {e}"),
            ContinuationError::InProgress { sequence, until } => write!(
                f,
                "continuation {sequence} is in progress in another delivery (its claim expires \
                 in {} s); failing so that Lambda retries this delivery",
                until
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default()
                    .as_secs()
            ),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ContinuationError<E> {}
