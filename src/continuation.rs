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
//! instead: past `LOOP_GUARD_MAX_CONTINUATIONS` (default 100) the run fails
//! with [`ContinuationError::BudgetExhausted`] and an EMF line
//! `ContinuationBudgetExhausted`.
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
//!         _ => String::new(),
//!     })
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use lambda_runtime::{Context, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::chain::Chain;
use crate::event::{EventSource, GuardedEvent, Incoming};
use crate::metric::{MetricSink, StdoutSink};

/// Key of the continuation metadata in the payload.
pub const CONTINUATION_KEY: &str = "loopGuardContinuation";
/// Environment variable: the largest continuation number a job may reach.
pub const ENV_MAX_CONTINUATIONS: &str = "LOOP_GUARD_MAX_CONTINUATIONS";
/// Default budget of continuations per job.
pub const DEFAULT_MAX_CONTINUATIONS: u32 = 100;
/// Lambda's limit on an asynchronous invocation payload (1 MB).
pub const MAX_ASYNC_PAYLOAD_BYTES: usize = 1_048_576;
/// Metric name emitted when a job runs out of continuations.
pub const BUDGET_EXHAUSTED_METRIC: &str = "ContinuationBudgetExhausted";

/// The payload of a continuable job: your state plus the continuation
/// metadata. The first invocation may send just `{"state": ...}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>", serialize = "S: Serialize"))]
pub struct ContinuationEvent<S> {
    /// Where the job stands.
    #[serde(rename = "loopGuardContinuation", default)]
    pub meta: ContinuationMeta,
    /// Your state; `None` when it was offloaded to S3 (see
    /// [`ContinuationMeta::state_ref`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<S>,
}

impl<S> ContinuationEvent<S> {
    /// The first event of a job.
    pub fn start(state: S) -> Self {
        ContinuationEvent {
            meta: ContinuationMeta::default(),
            state: Some(state),
        }
    }
}

/// Where offloaded state was put.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRef {
    /// The S3 bucket.
    pub bucket: String,
    /// The object key.
    pub key: String,
}

/// Continuation bookkeeping carried from run to run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ContinuationMeta {
    /// 0 for the first run, then 1, 2, ...
    #[serde(default)]
    pub sequence: u32,
    /// The lineage the job arrived with (wire format), carried unchanged so
    /// continuations do not count as loop hops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<String>,
    /// Identifies the job across its continuations (the request id of its
    /// first run); with `sequence` it keys duplicate detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The state, when it was too large for the payload and offloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_ref: Option<StateRef>,
}

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

/// A durable [`ContinuationLedger`] on S3 conditional writes: claiming puts
/// `<prefix><job>/<sequence>.claim` with `If-None-Match: *`, which S3 refuses
/// (HTTP 412) when the object exists, so a duplicate is recognised in any
/// execution environment. Expire the prefix with a lifecycle rule (a day is
/// plenty: Lambda retries asynchronous events for at most 6 hours).
#[cfg(feature = "continuation-s3")]
#[derive(Debug, Clone)]
pub struct S3Ledger {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

#[cfg(feature = "continuation-s3")]
impl S3Ledger {
    /// A ledger writing claims into `bucket` under `prefix`.
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        S3Ledger {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }
}

#[cfg(feature = "continuation-s3")]
impl ContinuationLedger for S3Ledger {
    fn claim<'a>(&'a self, job: &'a str, sequence: u32) -> ClaimFuture<'a> {
        Box::pin(async move {
            let put = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(format!("{}{job}/{sequence}.claim", self.prefix))
                .if_none_match("*")
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"claimed"))
                .send()
                .await;
            match put {
                Ok(_) => Ok(true),
                Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(412) => Ok(false),
                Err(e) => Err(aws_sdk_s3::error::DisplayErrorContext(e).to_string()),
            }
        })
    }
}

impl<S> GuardedEvent for ContinuationEvent<S> {
    fn read_incoming<'a>(&'a self, context: &'a Context, out: &mut Vec<Incoming<'a>>) {
        let mut incoming = Incoming::new(EventSource::Invoke);
        incoming.read_context(context);
        if let Some(value) = self.meta.lineage.as_deref() {
            incoming.read_lineage_value(value, "continuation payload");
        }
        out.push(incoming);
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
    /// This continuation had already started (a duplicate delivery); no
    /// step ran and nothing was invoked.
    Duplicate {
        /// The duplicated sequence number.
        sequence: u32,
    },
}

/// Runs continuable jobs. Build once, share across invocations.
#[derive(Clone)]
pub struct Continuations {
    lambda: aws_sdk_lambda::Client,
    max_continuations: u32,
    safety_margin: Duration,
    function_name: String,
    namespace: String,
    sink: Arc<dyn MetricSink>,
    ledger: Arc<dyn ContinuationLedger>,
    #[cfg(feature = "continuation-s3")]
    offload: Option<S3Offload>,
    now: fn() -> SystemTime,
}

/// Opt-in S3 storage for state over the asynchronous payload limit.
#[cfg(feature = "continuation-s3")]
#[derive(Clone, Debug)]
struct S3Offload {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl fmt::Debug for Continuations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Continuations")
            .field("max_continuations", &self.max_continuations)
            .field("safety_margin", &self.safety_margin)
            .finish_non_exhaustive()
    }
}

impl Continuations {
    /// Continuations invoking through `lambda` (register
    /// [`LoopGuardInterceptor`](crate::LoopGuardInterceptor) on it too), with
    /// the budget from `LOOP_GUARD_MAX_CONTINUATIONS` (default 100), a 10 s
    /// safety margin, and EMF lines on stdout in namespace `LoopGuard`.
    pub fn from_env(lambda: aws_sdk_lambda::Client) -> Result<Self, crate::ConfigError> {
        Self::from_env_source(lambda, |k| std::env::var(k).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `env`.
    pub fn from_env_source(
        lambda: aws_sdk_lambda::Client,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::ConfigError> {
        let max_continuations = match env(ENV_MAX_CONTINUATIONS).filter(|v| !v.is_empty()) {
            None => DEFAULT_MAX_CONTINUATIONS,
            Some(raw) => match raw.trim().parse::<u32>() {
                Ok(n) if (1..=1_000_000).contains(&n) => n,
                _ => {
                    return Err(crate::config::ConfigError::invalid(
                        ENV_MAX_CONTINUATIONS,
                        &raw,
                        "expected a whole number from 1 to 1000000",
                    ))
                }
            },
        };
        Ok(Continuations {
            lambda,
            max_continuations,
            safety_margin: Duration::from_secs(10),
            function_name: env(crate::ENV_LAMBDA_FUNCTION_NAME).unwrap_or_default(),
            namespace: env(crate::ENV_METRIC_NAMESPACE)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| crate::DEFAULT_METRIC_NAMESPACE.to_owned()),
            sink: Arc::new(StdoutSink),
            ledger: Arc::new(InMemoryLedger::default()),
            #[cfg(feature = "continuation-s3")]
            offload: None,
            now: SystemTime::now,
        })
    }

    /// Overrides the budget (code wins over the environment).
    #[must_use]
    pub fn max_continuations(mut self, n: u32) -> Self {
        self.max_continuations = n.max(1);
        self
    }

    /// Time kept in reserve before the deadline to hand over (default 10 s).
    #[must_use]
    pub fn safety_margin(mut self, margin: Duration) -> Self {
        self.safety_margin = margin;
        self
    }

    /// Sends EMF lines to `sink` instead of stdout.
    #[must_use]
    pub fn metric_sink(mut self, sink: impl MetricSink) -> Self {
        self.sink = Arc::new(sink);
        self
    }

    /// Uses `ledger` to recognise duplicate deliveries (default: [`InMemoryLedger`]).
    #[must_use]
    pub fn ledger(mut self, ledger: impl ContinuationLedger) -> Self {
        self.ledger = Arc::new(ledger);
        self
    }

    /// Opt-in: state whose payload would exceed 1 MB is put in `bucket`
    /// under `prefix` and passed by reference; each object is deleted once
    /// the run that loaded it has handed over or finished, so nothing is left
    /// when the chain finishes. The function needs `s3:PutObject`,
    /// `s3:GetObject` and `s3:DeleteObject` on the prefix.
    #[cfg(feature = "continuation-s3")]
    #[must_use]
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

    /// Runs `step` while time remains, then continues or finishes. See the
    /// [module docs](self). A continuation (sequence 1 or more) that was
    /// already started returns [`Outcome::Duplicate`] without running a step.
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
        if let (Some(job), sequence @ 1..) = (payload.meta.job_id.as_deref(), payload.meta.sequence)
        {
            let first = self
                .ledger
                .claim(job, sequence)
                .await
                .map_err(ContinuationError::Ledger)?;
            if !first {
                tracing::info!(
                    job,
                    sequence,
                    "duplicate continuation delivery: nothing to do"
                );
                return Ok(Outcome::Duplicate { sequence });
            }
        }
        let deadline = UNIX_EPOCH + Duration::from_millis(context.deadline);
        let loaded = payload.meta.state_ref.clone();
        let mut state = match (payload.state, &loaded) {
            (Some(state), _) => state,
            (None, Some(state_ref)) => self.load_state(state_ref).await?,
            (None, None) => {
                return Err(ContinuationError::State(
                    "the payload has neither `state` nor a state reference".into(),
                ))
            }
        };
        loop {
            match step(state).await.map_err(ContinuationError::Step)? {
                Step::Done(done) => {
                    self.forget_state(loaded.as_ref()).await;
                    return Ok(Outcome::Finished(done));
                }
                Step::Continue(next) => state = next,
            }
            let left = deadline.duration_since((self.now)()).unwrap_or_default();
            if left <= self.safety_margin {
                break;
            }
        }

        let sequence = payload.meta.sequence.saturating_add(1);
        if sequence > self.max_continuations {
            self.report_exhausted(&context, sequence);
            return Err(ContinuationError::BudgetExhausted {
                sequence,
                max_continuations: self.max_continuations,
            });
        }
        // Carry the lineage the job arrived with, unchanged.
        let mut arrived = Vec::new();
        let incoming = ContinuationEvent {
            meta: payload.meta.clone(),
            state: Some(()),
        };
        incoming.read_incoming(&context, &mut arrived);
        let arrived = arrived.first().map(|i| *i.lineage()).unwrap_or_default();
        let job_id = payload
            .meta
            .job_id
            .clone()
            .unwrap_or_else(|| context.request_id.clone());
        let mut next = ContinuationEvent {
            meta: ContinuationMeta {
                sequence,
                lineage: (!arrived.is_empty()).then(|| arrived.to_string()),
                job_id: Some(job_id.clone()),
                state_ref: None,
            },
            state: Some(state),
        };
        let mut body =
            serde_json::to_vec(&next).map_err(|e| ContinuationError::State(e.to_string()))?;
        if body.len() > MAX_ASYNC_PAYLOAD_BYTES {
            let too_large = ContinuationError::StateTooLarge { bytes: body.len() };
            let state_ref = match self.offload_state(&next.state, &job_id, sequence).await? {
                Some(state_ref) => state_ref,
                None => return Err(too_large),
            };
            next.state = None;
            next.meta.state_ref = Some(state_ref);
            body =
                serde_json::to_vec(&next).map_err(|e| ContinuationError::State(e.to_string()))?;
        }
        // Every carrier of this hop (trace header too) holds the arrived
        // lineage, not this run's incremented one.
        let hop = Chain::new(arrived, context.xray_trace_id.as_deref().map(Arc::from));
        let invoke = self
            .lambda
            .invoke()
            .function_name(&context.invoked_function_arn)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(body))
            .send();
        hop.scope(invoke).await.map_err(|e| {
            ContinuationError::Invoke(aws_sdk_lambda::error::DisplayErrorContext(e).to_string())
        })?;
        self.forget_state(loaded.as_ref()).await;
        Ok(Outcome::Continued { sequence })
    }

    #[cfg(feature = "continuation-s3")]
    async fn load_state<S: DeserializeOwned, E>(
        &self,
        state_ref: &StateRef,
    ) -> Result<S, ContinuationError<E>> {
        let offload = self.offload.as_ref().ok_or_else(|| {
            ContinuationError::Offload(
                "the state is in S3 but no offload_to_s3 is configured".into(),
            )
        })?;
        let object = offload
            .client
            .get_object()
            .bucket(&state_ref.bucket)
            .key(&state_ref.key)
            .send()
            .await
            .map_err(|e| {
                ContinuationError::Offload(aws_sdk_s3::error::DisplayErrorContext(e).to_string())
            })?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| ContinuationError::Offload(e.to_string()))?
            .into_bytes();
        serde_json::from_slice(&bytes).map_err(|e| ContinuationError::State(e.to_string()))
    }

    #[cfg(not(feature = "continuation-s3"))]
    async fn load_state<S, E>(&self, state_ref: &StateRef) -> Result<S, ContinuationError<E>> {
        Err(ContinuationError::Offload(format!(
            "the state is in s3://{}/{} but this build lacks the continuation-s3 feature",
            state_ref.bucket, state_ref.key
        )))
    }

    /// Puts `state` in S3 when offloading is configured; `Ok(None)` when it is not.
    #[cfg(feature = "continuation-s3")]
    async fn offload_state<S: Serialize, E>(
        &self,
        state: &Option<S>,
        job_id: &str,
        sequence: u32,
    ) -> Result<Option<StateRef>, ContinuationError<E>> {
        let Some(offload) = &self.offload else {
            return Ok(None);
        };
        let bytes =
            serde_json::to_vec(state).map_err(|e| ContinuationError::State(e.to_string()))?;
        let key = format!("{}{job_id}/{sequence}.json", offload.prefix);
        offload
            .client
            .put_object()
            .bucket(&offload.bucket)
            .key(&key)
            .content_type("application/json")
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| {
                ContinuationError::Offload(aws_sdk_s3::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(Some(StateRef {
            bucket: offload.bucket.clone(),
            key,
        }))
    }

    #[cfg(not(feature = "continuation-s3"))]
    async fn offload_state<S, E>(
        &self,
        _state: &Option<S>,
        _job_id: &str,
        _sequence: u32,
    ) -> Result<Option<StateRef>, ContinuationError<E>> {
        Ok(None)
    }

    /// Deletes an offloaded state object that has been consumed. A failure
    /// is logged, not returned: the job itself went on.
    async fn forget_state(&self, state_ref: Option<&StateRef>) {
        #[cfg(feature = "continuation-s3")]
        if let (Some(state_ref), Some(offload)) = (state_ref, &self.offload) {
            if let Err(e) = offload
                .client
                .delete_object()
                .bucket(&state_ref.bucket)
                .key(&state_ref.key)
                .send()
                .await
            {
                tracing::warn!(
                    error = %aws_sdk_s3::error::DisplayErrorContext(e),
                    key = state_ref.key.as_str(),
                    "offloaded continuation state not deleted"
                );
            }
        }
        #[cfg(not(feature = "continuation-s3"))]
        let _ = state_ref;
    }

    fn report_exhausted(&self, context: &Context, sequence: u32) {
        tracing::warn!(
            function = self.function_name.as_str(),
            sequence,
            max_continuations = self.max_continuations,
            request_id = context.request_id.as_str(),
            "continuation budget exhausted: the job is stopped"
        );
        let millis = (self.now)()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let line = serde_json::json!({
            "_aws": {
                "Timestamp": millis,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["FunctionName"]],
                    "Metrics": [{ "Name": BUDGET_EXHAUSTED_METRIC, "Unit": "Count" }],
                }],
            },
            "FunctionName": self.function_name,
            BUDGET_EXHAUSTED_METRIC: 1,
            "Sequence": sequence,
            "MaxContinuations": self.max_continuations,
            "RequestId": context.request_id,
        });
        self.sink.write_line(&line.to_string());
    }
}

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
    /// The state could not be serialized or loaded.
    State(String),
    /// Offloaded state could not be put, read or found.
    Offload(String),
    /// The ledger could not tell whether this continuation already started.
    Ledger(String),
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
                "continuation budget exhausted: the job would start continuation {sequence}, over \
                 the limit of {max_continuations}; raise LOOP_GUARD_MAX_CONTINUATIONS if the job \
                 really needs more"
            ),
            ContinuationError::StateTooLarge { bytes } => write!(
                f,
                "continuation state is {bytes} bytes, over Lambda's {MAX_ASYNC_PAYLOAD_BYTES}-byte \
                 limit for asynchronous invocations; enable offload_to_s3 (feature continuation-s3) \
                 or keep large data in S3 and pass a reference"
            ),
            ContinuationError::State(e) => {
                write!(f, "continuation state cannot be serialized: {e}")
            }
            ContinuationError::Invoke(e) => write!(f, "continuation invoke failed: {e}"),
            ContinuationError::Offload(e) => write!(f, "continuation state offload failed: {e}"),
            ContinuationError::Ledger(e) => write!(f, "continuation ledger unavailable: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ContinuationError<E> {}
