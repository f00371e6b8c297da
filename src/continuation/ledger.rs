//! Which deliveries of a job's runs are in progress or done: idempotency
//! with the states users know from Powertools.
//!
//! A run is keyed by `(job, sequence)`. A delivery first [`begin`]s it:
//!
//! * nobody holds it (never claimed, or released by a run that failed), or
//!   its holder's claim has expired (that run timed out or crashed): the
//!   delivery acquires it, *in progress* until its own invocation's deadline;
//! * another delivery holds it and its claim has not expired: *in progress*;
//! * a delivery already finished it (handed the job over, or finished the
//!   job): *done*.
//!
//! The holder then [`complete`]s the claim (done, kept for
//! [`DONE_RETENTION`]) once the next continuation was handed off or the job
//! finished, or [`release`]s it when the run fails, so that Lambda's retry
//! runs it again. Only the holder's [`ClaimToken`] completes or releases:
//! a run whose claim was taken over after it expired changes nothing.
//!
//! [`begin`]: ContinuationLedger::begin
//! [`complete`]: ContinuationLedger::complete
//! [`release`]: ContinuationLedger::release

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How long a done claim is kept: longer than Lambda retries an
/// asynchronous event (6 hours at most), so a late duplicate is still
/// recognised.
pub const DONE_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// The future a [`ContinuationLedger`] returns; an `Err` says the ledger
/// could not be read or written (the run fails, and Lambda retries it).
pub type LedgerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Proof of holding a claim, passed back to complete or release it: the
/// holder's owner string, or a version of the stored claim (an S3 ETag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken(pub String);

/// What [`ContinuationLedger::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// This delivery holds the run now.
    Acquired(ClaimToken),
    /// Another delivery holds it until `until` (its invocation's deadline).
    InProgress {
        /// When the other delivery's claim expires.
        until: SystemTime,
    },
    /// A delivery already finished it.
    Done,
}

/// Remembers which runs of which jobs are in progress or done (see the
/// [`continuation`](crate::continuation) docs): a delivery
/// [`begin`](Self::begin)s a run, then [`complete`](Self::complete)s it once
/// the next continuation was handed off or the job finished, or
/// [`release`](Self::release)s it when the run failed. Implementations: [`InMemoryLedger`] (one execution
/// environment), `DynamoDbLedger` (feature `continuation-dynamodb`) and
/// `S3Ledger` (feature `continuation-s3`), each on conditional writes; all
/// pass the same test suite.
pub trait ContinuationLedger: Send + Sync + 'static {
    /// Claims run `sequence` of `job` for `owner` (unique per delivery)
    /// until `until`, if nobody holds it, its holder released it, or its
    /// holder's claim expired before `now`.
    fn begin<'a>(
        &'a self,
        job: &'a str,
        sequence: u32,
        owner: &'a str,
        until: SystemTime,
        now: SystemTime,
    ) -> LedgerFuture<'a, Claim>;

    /// Marks a claim this delivery holds as done. An `Err` when `token` no
    /// longer holds it.
    fn complete<'a>(
        &'a self,
        job: &'a str,
        sequence: u32,
        token: &'a ClaimToken,
        now: SystemTime,
    ) -> LedgerFuture<'a, ()>;

    /// Gives a claim this delivery holds up, so that a retry runs it again.
    /// An `Err` when `token` no longer holds it.
    fn release<'a>(
        &'a self,
        job: &'a str,
        sequence: u32,
        token: &'a ClaimToken,
    ) -> LedgerFuture<'a, ()>;
}

/// A ledger shared by several runners (or kept by the caller, e.g. to
/// inspect it in tests).
impl<L: ContinuationLedger + ?Sized> ContinuationLedger for std::sync::Arc<L> {
    fn begin<'a>(
        &'a self,
        job: &'a str,
        sequence: u32,
        owner: &'a str,
        until: SystemTime,
        now: SystemTime,
    ) -> LedgerFuture<'a, Claim> {
        (**self).begin(job, sequence, owner, until, now)
    }

    fn complete<'a>(
        &'a self,
        job: &'a str,
        sequence: u32,
        token: &'a ClaimToken,
        now: SystemTime,
    ) -> LedgerFuture<'a, ()> {
        (**self).complete(job, sequence, token, now)
    }

    fn release<'a>(
        &'a self,
        job: &'a str,
        sequence: u32,
        token: &'a ClaimToken,
    ) -> LedgerFuture<'a, ()> {
        (**self).release(job, sequence, token)
    }
}

/// A claim as ledgers store it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stored {
    InProgress { owner: String, until: SystemTime },
    Done { expires: SystemTime },
}

/// What a delivery beginning a run finds stored for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Found {
    /// Done, or in progress in another delivery: the answer to `begin`.
    Taken(Claim),
    /// In progress for this very delivery (a write whose answer was lost
    /// and retried): it holds the run.
    Ours,
    /// Expired at `now` (its `until` is not after `now`): it may be taken over.
    Expired,
}

impl Stored {
    /// What the delivery `owner`, beginning at `now`, finds here.
    pub(super) fn found(&self, owner: &str, now: SystemTime) -> Found {
        match self {
            Stored::Done { .. } => Found::Taken(Claim::Done),
            Stored::InProgress { owner: holder, .. } if holder == owner => Found::Ours,
            Stored::InProgress { until, .. } if *until > now => {
                Found::Taken(Claim::InProgress { until: *until })
            }
            Stored::InProgress { .. } => Found::Expired,
        }
    }
}

/// Conditional writes a durable ledger tries while the stored claim keeps
/// changing under it, before it gives up with [`changing`]'s error.
#[cfg(any(feature = "continuation-s3", feature = "continuation-dynamodb"))]
pub(super) const ATTEMPTS: usize = 5;

/// The error of a claim that changed [`ATTEMPTS`] times while being taken.
#[cfg(any(feature = "continuation-s3", feature = "continuation-dynamodb"))]
pub(super) fn changing(job: &str, sequence: u32) -> String {
    format!("the claim on run {sequence} of job {job} changed {ATTEMPTS} times while being taken")
}

/// A per-process [`ContinuationLedger`] (the default): it knows the
/// deliveries that reach this execution environment, which is where a
/// retry after a step error usually lands. For a guarantee across
/// environments use a durable ledger.
#[derive(Debug, Default)]
pub struct InMemoryLedger {
    claims: Mutex<HashMap<(String, u32), Stored>>,
}

impl InMemoryLedger {
    /// Claims kept before expired and done ones are swept (a bound on memory).
    pub const CAPACITY: usize = 100_000;

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), Stored>> {
        match self.claims.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl ContinuationLedger for InMemoryLedger {
    fn begin<'a>(
        &'a self,
        job: &'a str,
        sequence: u32,
        owner: &'a str,
        until: SystemTime,
        now: SystemTime,
    ) -> LedgerFuture<'a, Claim> {
        let mut claims = self.claims();
        if claims.len() >= Self::CAPACITY {
            claims.retain(|_, stored| match stored {
                Stored::InProgress { until, .. } => *until > now,
                Stored::Done { expires } => *expires > now,
            });
        }
        if claims.len() >= Self::CAPACITY {
            // Still full of live claims: best effort, forget them all.
            claims.clear();
        }
        let key = (job.to_owned(), sequence);
        let found = claims.get(&key).map(|stored| stored.found(owner, now));
        let claim = match found {
            Some(Found::Taken(claim)) => claim,
            Some(Found::Ours) => Claim::Acquired(ClaimToken(owner.to_owned())),
            Some(Found::Expired) | None => {
                claims.insert(
                    key,
                    Stored::InProgress {
                        owner: owner.to_owned(),
                        until,
                    },
                );
                Claim::Acquired(ClaimToken(owner.to_owned()))
            }
        };
        Box::pin(std::future::ready(Ok(claim)))
    }

    fn complete<'a>(
        &'a self,
        job: &'a str,
        sequence: u32,
        token: &'a ClaimToken,
        now: SystemTime,
    ) -> LedgerFuture<'a, ()> {
        let mut claims = self.claims();
        let result = match claims.get_mut(&(job.to_owned(), sequence)) {
            Some(stored @ Stored::InProgress { .. }) if holds(stored, token) => {
                *stored = Stored::Done {
                    expires: now + DONE_RETENTION,
                };
                Ok(())
            }
            _ => Err(not_held(job, sequence)),
        };
        Box::pin(std::future::ready(result))
    }

    fn release<'a>(
        &'a self,
        job: &'a str,
        sequence: u32,
        token: &'a ClaimToken,
    ) -> LedgerFuture<'a, ()> {
        let mut claims = self.claims();
        let key = (job.to_owned(), sequence);
        let result = match claims.get(&key) {
            Some(stored) if holds(stored, token) => {
                claims.remove(&key);
                Ok(())
            }
            _ => Err(not_held(job, sequence)),
        };
        Box::pin(std::future::ready(result))
    }
}

fn holds(stored: &Stored, token: &ClaimToken) -> bool {
    matches!(stored, Stored::InProgress { owner, .. } if *owner == token.0)
}

/// The instant `secs` seconds after the epoch (saturating: a corrupt
/// stored value never panics).
#[cfg(any(feature = "continuation-s3", feature = "continuation-dynamodb"))]
pub(super) fn from_epoch_secs(secs: u64) -> SystemTime {
    std::time::UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(std::time::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 1000))
}

/// Milliseconds since the epoch, as ledgers store instants.
#[cfg(any(feature = "continuation-s3", feature = "continuation-dynamodb"))]
pub(super) fn epoch_millis(t: SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The instant `ms` milliseconds after the epoch (saturating).
#[cfg(any(feature = "continuation-s3", feature = "continuation-dynamodb"))]
pub(super) fn from_epoch_millis(ms: u64) -> SystemTime {
    from_epoch_secs(ms / 1000) + Duration::from_millis(ms % 1000)
}

/// The error of completing or releasing a claim the token does not hold.
pub(super) fn not_held(job: &str, sequence: u32) -> String {
    format!("the claim on run {sequence} of job {job} is no longer held by this delivery")
}
