//! The runner: steps until the deadline, then hands over or finishes.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use lambda_runtime::{Context, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::ContinuationError;
use super::event::{ContinuationEvent, ContinuationMeta, StateRef, MAX_ASYNC_PAYLOAD_BYTES};
use super::ledger::{Claim, ClaimToken, ContinuationLedger, InMemoryLedger};
use crate::chain::Chain;
use crate::config::{ConfigError, DEFAULT_METRIC_NAMESPACE, ENV_LAMBDA_FUNCTION_NAME};
use crate::env::{self, Lookup};
use crate::incoming::DecodeCache;
use crate::metric::{EmfLine, MetricSink, StdoutSink};

#[cfg(feature = "continuation-s3")]
use super::offload::S3Offload;

/// A value that differs between calls (and processes): with the request id,
/// it makes a delivery's claim owner unique, retries included.
fn nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// Environment variable: the largest continuation number a job may reach.
pub const ENV_MAX_CONTINUATIONS: &str = "LOOP_GUARD_MAX_CONTINUATIONS";
/// Default budget of continuations per job.
pub const DEFAULT_MAX_CONTINUATIONS: u32 = 100;
/// Largest accepted budget.
const MAX_MAX_CONTINUATIONS: u32 = 1_000_000;
const MAX_CONTINUATIONS_EXPECTED: &str = "expected a whole number from 1 to 1000000";
/// Metric name emitted when a job runs out of continuations.
pub const BUDGET_EXHAUSTED_METRIC: &str = "ContinuationBudgetExhausted";

/// Without feature `continuation-s3` there is no offload store: a value of
/// this type cannot exist.
#[cfg(not(feature = "continuation-s3"))]
#[derive(Clone, Debug)]
enum S3Offload {}

#[cfg(not(feature = "continuation-s3"))]
impl S3Offload {
    fn check<E>(&self, _: &StateRef, _: &str, _: u32) -> Result<(), ContinuationError<E>> {
        match *self {}
    }

    async fn load<S, E>(&self, _: &StateRef) -> Result<S, ContinuationError<E>> {
        match *self {}
    }

    async fn put<S, E>(
        &self,
        _: &Option<S>,
        _: &str,
        _: u32,
    ) -> Result<StateRef, ContinuationError<E>> {
        match *self {}
    }

    async fn delete(&self, _: &StateRef) {
        match *self {}
    }
}

/// A claim this delivery holds until the run settles; dropped unsettled (a
/// panicking step, a cancelled run), it is released in the background, so
/// that Lambda's retry need not wait for the invocation's deadline.
struct HeldClaim {
    ledger: Arc<dyn ContinuationLedger>,
    job: String,
    sequence: u32,
    token: Option<ClaimToken>,
}

impl Drop for HeldClaim {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime: the claim expires at the deadline
        };
        let (ledger, job, sequence) = (
            self.ledger.clone(),
            std::mem::take(&mut self.job),
            self.sequence,
        );
        runtime.spawn(async move {
            if let Err(error) = ledger.release(&job, sequence, &token).await {
                tracing::warn!(job = job.as_str(), sequence, %error, "continuation claim not released");
            }
        });
    }
}

/// What a step reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<S> {
    /// More to do: call again with this state (now or in the next run).
    Continue(S),
    /// Finished with this state.
    Done(S),
}

/// How a run of [`Continuations::run`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome<S> {
    /// The job finished in this run.
    Finished(S),
    /// Time ran out; the job continues in a new invocation with this sequence number.
    Continued {
        /// The sequence number of the new invocation.
        sequence: u32,
    },
    /// This run was already done by another delivery (a duplicate: Lambda
    /// delivers asynchronous events at least once); no step ran and nothing
    /// was invoked.
    Duplicate {
        /// The duplicated sequence number.
        sequence: u32,
    },
}

impl<S> crate::source::GuardedResponse for Outcome<S> {}

/// Runs continuable jobs. Build once ([`Continuations::builder`] or
/// [`Continuations::from_env`]), share across invocations.
#[derive(Clone)]
pub struct Continuations {
    lambda: aws_sdk_lambda::Client,
    max_continuations: u32,
    safety_margin: Duration,
    function_name: String,
    namespace: String,
    sink: Arc<dyn MetricSink>,
    ledger: Arc<dyn ContinuationLedger>,
    offload: Option<S3Offload>,
    claim_poll_interval: Duration,
    now: fn() -> SystemTime,
}

impl fmt::Debug for Continuations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Continuations")
            .field("max_continuations", &self.max_continuations)
            .field("safety_margin", &self.safety_margin)
            .finish_non_exhaustive()
    }
}

/// Builder for [`Continuations`]. Settings made here win over the
/// environment; every variable is checked by the same rules as the layer's
/// (`LOOP_GUARD_MAX_CONTINUATIONS` from 1 to 1000000, the metric namespace
/// as `LOOP_GUARD_METRIC_NAMESPACE`).
#[must_use]
pub struct ContinuationsBuilder {
    lambda: aws_sdk_lambda::Client,
    max_continuations: Option<u32>,
    safety_margin: Duration,
    sink: Arc<dyn MetricSink>,
    ledger: Arc<dyn ContinuationLedger>,
    offload: Option<S3Offload>,
    claim_poll_interval: Duration,
}

impl fmt::Debug for ContinuationsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContinuationsBuilder")
            .field("max_continuations", &self.max_continuations)
            .field("safety_margin", &self.safety_margin)
            .finish_non_exhaustive()
    }
}

impl Continuations {
    /// Continuations invoking through `lambda` (register
    /// [`LoopGuardInterceptor`](crate::LoopGuardInterceptor) on it too), with
    /// the budget from `LOOP_GUARD_MAX_CONTINUATIONS` (default 100), a 10 s
    /// safety margin, and EMF lines on stdout in the namespace of
    /// `LOOP_GUARD_METRIC_NAMESPACE` (default `LoopGuard`).
    pub fn from_env(lambda: aws_sdk_lambda::Client) -> Result<Self, ConfigError> {
        Self::builder(lambda).build_from_env()
    }

    /// A builder invoking through `lambda`.
    pub fn builder(lambda: aws_sdk_lambda::Client) -> ContinuationsBuilder {
        ContinuationsBuilder {
            lambda,
            max_continuations: None,
            safety_margin: Duration::from_secs(10),
            sink: Arc::new(StdoutSink),
            ledger: Arc::new(InMemoryLedger::default()),
            offload: None,
            claim_poll_interval: Duration::from_secs(1),
        }
    }

    /// The budget: the largest continuation number a job may reach.
    pub fn max_continuations(&self) -> u32 {
        self.max_continuations
    }
}

impl ContinuationsBuilder {
    /// The budget (1 to 1000000; code wins over `LOOP_GUARD_MAX_CONTINUATIONS`).
    pub fn max_continuations(mut self, n: u32) -> Self {
        self.max_continuations = Some(n);
        self
    }

    /// Time kept in reserve before the deadline to hand over (default 10 s).
    pub fn safety_margin(mut self, margin: Duration) -> Self {
        self.safety_margin = margin;
        self
    }

    /// Sends EMF lines to `sink` instead of stdout.
    pub fn metric_sink(mut self, sink: impl MetricSink) -> Self {
        self.sink = Arc::new(sink);
        self
    }

    /// Uses `ledger` to know which runs are in progress or done (default:
    /// [`InMemoryLedger`]; across execution environments use a durable one).
    pub fn ledger(mut self, ledger: impl ContinuationLedger) -> Self {
        self.ledger = Arc::new(ledger);
        self
    }

    /// How often a delivery that finds its run in progress elsewhere looks
    /// at the ledger again while it waits (default 1 s).
    pub fn claim_poll_interval(mut self, interval: Duration) -> Self {
        self.claim_poll_interval = interval;
        self
    }

    /// Opt-in: state whose payload would exceed 1 MB is put in `bucket`
    /// under `prefix` as `<prefix><job>/<sequence>.json` and passed by
    /// reference. A reference in a payload is trusted only when it names
    /// exactly that object. Each object is deleted once the run that loaded
    /// it is done (handed over or finished), and an object put for a hand-off
    /// that failed is deleted at once. Objects a failed run still needs (its
    /// retry, or an operator resuming from the DLQ) are kept: expire the
    /// prefix with a lifecycle rule longer than your DLQ's retention. The
    /// function needs `s3:PutObject`, `s3:GetObject` and `s3:DeleteObject` on
    /// the prefix.
    #[cfg(feature = "continuation-s3")]
    #[cfg_attr(docsrs, doc(cfg(feature = "continuation-s3")))]
    pub fn offload_to_s3(
        mut self,
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        self.offload = Some(S3Offload {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        });
        self
    }

    /// Validates the code settings alone, without reading the environment.
    pub fn build(self) -> Result<Continuations, ConfigError> {
        self.build_with(&|_| Ok(None))
    }

    /// Fills unset settings from the process environment, then validates.
    pub fn build_from_env(self) -> Result<Continuations, ConfigError> {
        self.build_with(&env::process)
    }

    /// Fills unset settings from `env` (a lookup by variable name), then
    /// validates.
    pub fn build_from_env_source<F>(self, env: F) -> Result<Continuations, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        self.build_with(&env::from_fn(env))
    }

    fn build_with(self, env: Lookup<'_>) -> Result<Continuations, ConfigError> {
        let env_max = env::parse(
            env,
            ENV_MAX_CONTINUATIONS,
            |raw| env::whole_number(raw, 1..=MAX_MAX_CONTINUATIONS),
            MAX_CONTINUATIONS_EXPECTED,
        )?;
        let namespace = env::metric_namespace(env)?;
        let max_continuations = match self.max_continuations {
            Some(n) => env::check(
                "max_continuations",
                &n.to_string(),
                (1..=MAX_MAX_CONTINUATIONS).contains(&n).then_some(n),
                MAX_CONTINUATIONS_EXPECTED,
            )?,
            None => env_max.unwrap_or(DEFAULT_MAX_CONTINUATIONS),
        };
        Ok(Continuations {
            lambda: self.lambda,
            max_continuations,
            safety_margin: self.safety_margin,
            function_name: env::get(env, ENV_LAMBDA_FUNCTION_NAME)?.unwrap_or_default(),
            namespace: namespace.unwrap_or_else(|| DEFAULT_METRIC_NAMESPACE.to_owned()),
            sink: self.sink,
            ledger: self.ledger,
            offload: self.offload,
            claim_poll_interval: self.claim_poll_interval,
            now: SystemTime::now,
        })
    }
}

impl Continuations {
    /// Runs `step` while time remains, then continues or finishes. See the
    /// [module docs](crate::continuation).
    ///
    /// Each run `(job, sequence)` is claimed in the ledger first: a
    /// delivery of a run another delivery already did returns
    /// [`Outcome::Duplicate`] without running a step; one that finds the run
    /// in progress elsewhere waits (until that claim is done, released or
    /// expired, or this invocation's own safety margin) and then fails with
    /// [`ContinuationError::InProgress`] rather than report work that did
    /// not happen. A run that fails releases its claim and keeps its state,
    /// so that Lambda's retry runs it again; a run is done only once the
    /// next continuation was handed off or the job finished.
    pub async fn run<S, E, F, Fut>(
        &self,
        event: LambdaEvent<ContinuationEvent<S>>,
        mut step: F,
    ) -> Result<Outcome<S>, ContinuationError<E>>
    where
        S: Serialize + DeserializeOwned,
        F: FnMut(S) -> Fut,
        Fut: Future<Output = Result<Step<S>, E>>,
    {
        let LambdaEvent { payload, context } = event;
        let sequence = payload.meta.sequence;
        if sequence > self.max_continuations {
            // Refused before anything runs: every delivery fails the same
            // way, so the event itself (the exact point to resume from)
            // reaches the DLQ or on-failure destination, its state kept.
            self.report_exhausted(&context, sequence);
            return Err(ContinuationError::BudgetExhausted {
                sequence,
                max_continuations: self.max_continuations,
            });
        }
        if payload.state.is_some() && payload.meta.state_ref.is_some() {
            // Never sent by a hand-off; a reference here would be deleted
            // after the run without having been checked or read.
            return Err(ContinuationError::State(
                "the payload has both `state` and a state reference".into(),
            ));
        }
        let job = payload
            .meta
            .job_id
            .clone()
            .unwrap_or_else(|| context.request_id.clone());
        // One function's jobs never meet another's in a shared ledger.
        let ledger_job = match self.function_name.as_str() {
            "" => job.clone(),
            function => format!("{function}/{job}"),
        };
        let deadline = UNIX_EPOCH + Duration::from_millis(context.deadline);
        let Some(token) = self
            .claim(&ledger_job, sequence, &context, deadline)
            .await?
        else {
            tracing::info!(
                job = job.as_str(),
                sequence,
                "duplicate continuation delivery: this run is already done"
            );
            return Ok(Outcome::Duplicate { sequence });
        };
        // Released if the run panics or is cancelled before it settles.
        let mut claim = HeldClaim {
            ledger: self.ledger.clone(),
            job: ledger_job,
            sequence,
            token: Some(token),
        };
        let loaded = payload.meta.state_ref.clone();
        let result = self
            .run_claimed(payload, &context, &job, deadline, &mut step)
            .await;
        let Some(token) = claim.token.take() else {
            return result; // taken only here
        };
        let job = &claim.job;
        match &result {
            Ok(_) => {
                let done = self
                    .ledger
                    .complete(job, sequence, &token, (self.now)())
                    .await;
                if let Err(error) = done {
                    // The work is done and handed over: succeed. The claim
                    // expires at this invocation's deadline; a duplicate
                    // after that would run the steps again.
                    tracing::warn!(job = job.as_str(), sequence, %error, "continuation not marked done");
                }
                self.forget_state(loaded.as_ref()).await;
            }
            Err(_) => {
                if let Err(error) = self.ledger.release(job, sequence, &token).await {
                    // The retry takes the claim over once it expires.
                    tracing::warn!(job = job.as_str(), sequence, %error, "continuation claim not released");
                }
            }
        }
        result
    }

    /// Claims run `sequence` of `job` for this delivery: its token, or
    /// `None` when the run is already done.
    async fn claim<E>(
        &self,
        job: &str,
        sequence: u32,
        context: &Context,
        deadline: SystemTime,
    ) -> Result<Option<ClaimToken>, ContinuationError<E>> {
        let owner = format!("{}:{:016x}", context.request_id, nonce());
        let stop_waiting = deadline.checked_sub(self.safety_margin).unwrap_or(deadline);
        loop {
            let now = (self.now)();
            let claim = self
                .ledger
                .begin(job, sequence, &owner, deadline, now)
                .await
                .map_err(ContinuationError::Ledger)?;
            match claim {
                Claim::Acquired(token) => return Ok(Some(token)),
                Claim::Done => return Ok(None),
                Claim::InProgress { until } => {
                    if now >= stop_waiting {
                        return Err(ContinuationError::InProgress { sequence, until });
                    }
                    let wake = until.min(stop_waiting);
                    let pause = wake.duration_since(now).unwrap_or_default().clamp(
                        Duration::from_millis(10),
                        self.claim_poll_interval.max(Duration::from_millis(10)),
                    );
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }

    /// The run itself, once claimed: load the state, step until the
    /// deadline, hand over or finish.
    async fn run_claimed<S, E, F, Fut>(
        &self,
        payload: ContinuationEvent<S>,
        context: &Context,
        job: &str,
        deadline: SystemTime,
        step: &mut F,
    ) -> Result<Outcome<S>, ContinuationError<E>>
    where
        S: Serialize + DeserializeOwned,
        F: FnMut(S) -> Fut,
        Fut: Future<Output = Result<Step<S>, E>>,
    {
        let mut state = match (payload.state, &payload.meta.state_ref) {
            (Some(state), _) => state,
            (None, Some(state_ref)) => {
                let offload = self.offload(state_ref)?;
                offload.check(state_ref, job, payload.meta.sequence)?;
                offload.load(state_ref).await?
            }
            (None, None) => {
                return Err(ContinuationError::State(
                    "the payload has neither `state` nor a state reference".into(),
                ))
            }
        };
        loop {
            match step(state).await.map_err(ContinuationError::Step)? {
                Step::Done(done) => return Ok(Outcome::Finished(done)),
                Step::Continue(next) => state = next,
            }
            let left = deadline.duration_since((self.now)()).unwrap_or_default();
            if left <= self.safety_margin {
                break;
            }
        }

        let sequence = payload.meta.sequence.saturating_add(1);
        // Carry the lineage the job arrived with, unchanged (and, with
        // signing keys, as a signed reader reads it: its signature kept).
        let keys = Chain::current()
            .and_then(|chain| chain.config().and_then(|c| c.signing_keys().cloned()));
        let arrived = payload
            .meta
            .read_incoming(context)
            .resolve(&mut DecodeCache::with_keys(keys.as_ref()));
        let mut next = ContinuationEvent {
            meta: ContinuationMeta {
                sequence,
                lineage: (!arrived.is_empty()).then(|| arrived.to_string()),
                job_id: Some(job.to_owned()),
                state_ref: None,
            },
            state: Some(state),
        };
        let mut body = serde_json::to_vec(&next)
            .map_err(|e| ContinuationError::State(format!("cannot be serialized: {e}")))?;
        if body.len() > MAX_ASYNC_PAYLOAD_BYTES {
            let too_large = ContinuationError::StateTooLarge { bytes: body.len() };
            let state_ref = match &self.offload {
                Some(offload) => offload.put(&next.state, job, sequence).await?,
                None => return Err(too_large),
            };
            next.state = None;
            next.meta.state_ref = Some(state_ref);
            body = serde_json::to_vec(&next)
                .map_err(|e| ContinuationError::State(format!("cannot be serialized: {e}")))?;
        }
        // Every carrier of this hop (trace header too) holds the arrived
        // lineage, not this run's incremented one.
        let hop = Chain::unchanged(arrived, context.xray_trace_id.as_deref());
        let invoke = self
            .lambda
            .invoke()
            .function_name(&context.invoked_function_arn)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(body))
            .send();
        if let Err(e) = hop.scope(invoke).await {
            // Lambda answered with an error: the event was not queued, and
            // nothing will read the state put for it. (After a timeout or a
            // lost answer it may have been: the object stays, for the
            // prefix's lifecycle rule.)
            if matches!(e, aws_sdk_lambda::error::SdkError::ServiceError(_)) {
                self.forget_state(next.meta.state_ref.as_ref()).await;
            }
            return Err(ContinuationError::Invoke(
                aws_sdk_lambda::error::DisplayErrorContext(e).to_string(),
            ));
        }
        Ok(Outcome::Continued { sequence })
    }

    /// The offload store, or why the state at `state_ref` cannot be loaded
    /// without one.
    fn offload<E>(&self, state_ref: &StateRef) -> Result<&S3Offload, ContinuationError<E>> {
        self.offload.as_ref().ok_or_else(|| {
            let missing = if cfg!(feature = "continuation-s3") {
                "no offload_to_s3 is configured"
            } else {
                "this build lacks the continuation-s3 feature"
            };
            ContinuationError::Offload(format!(
                "the state is in s3://{}/{} but {missing}",
                state_ref.bucket, state_ref.key
            ))
        })
    }

    /// Deletes an offloaded state object that is no longer needed.
    async fn forget_state(&self, state_ref: Option<&StateRef>) {
        if let (Some(state_ref), Some(offload)) = (state_ref, &self.offload) {
            offload.delete(state_ref).await;
        }
    }

    fn report_exhausted(&self, context: &Context, sequence: u32) {
        tracing::warn!(
            function = self.function_name.as_str(),
            sequence,
            max_continuations = self.max_continuations,
            request_id = context.request_id.as_str(),
            "continuation budget exhausted: the job is stopped"
        );
        EmfLine::count(
            &self.namespace,
            BUDGET_EXHAUSTED_METRIC,
            &self.function_name,
            (self.now)(),
        )
        .property("Sequence", sequence)
        .property("MaxContinuations", self.max_continuations)
        .property("RequestId", context.request_id.as_str())
        .write_to(&*self.sink);
    }
}
