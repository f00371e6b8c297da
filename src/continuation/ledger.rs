//! Duplicate-delivery detection: which continuations have started.

use std::future::Future;

/// The future a [`ContinuationLedger`] returns.
pub type ClaimFuture<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;

/// Remembers which continuations have started, so a duplicate delivery of
/// an asynchronous event (Lambda delivers at least once) processes nothing.
pub trait ContinuationLedger: Send + Sync + 'static {
    /// Records that continuation `sequence` of `job` starts now: `Ok(false)`
    /// if it had already started (a duplicate). An `Err` fails the run
    /// (Lambda retries it) rather than risk processing a range twice.
    fn claim<'a>(&'a self, job: &'a str, sequence: u32) -> ClaimFuture<'a>;
}

/// A per-process [`ContinuationLedger`] (the default): it recognises a
/// duplicate that reaches the same warm execution environment. For a
/// guarantee across environments, implement the trait over a conditional
/// write (DynamoDB `attribute_not_exists`, S3 `If-None-Match: *`).
#[derive(Debug, Default)]
pub struct InMemoryLedger {
    started: std::sync::Mutex<std::collections::HashSet<(String, u32)>>,
}

impl InMemoryLedger {
    /// Entries kept before the oldest knowledge is dropped (a bound on memory).
    pub const CAPACITY: usize = 100_000;
}

impl ContinuationLedger for InMemoryLedger {
    fn claim<'a>(&'a self, job: &'a str, sequence: u32) -> ClaimFuture<'a> {
        let mut started = match self.started.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if started.len() >= Self::CAPACITY {
            started.clear();
        }
        let first = started.insert((job.to_owned(), sequence));
        Box::pin(std::future::ready(Ok(first)))
    }
}
