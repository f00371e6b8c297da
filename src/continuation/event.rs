//! The payload of a continuable job, and how the guard reads it.

use lambda_runtime::Context;
use serde::{Deserialize, Serialize};

use crate::config::LoopGuardConfig;
use crate::incoming::{Incoming, Units};
use crate::source::GuardedEvent;

/// Key of the continuation metadata in the payload.
pub const CONTINUATION_KEY: &str = "loopGuardContinuation";
/// Lambda's limit on an asynchronous invocation payload (1 MB).
pub const MAX_ASYNC_PAYLOAD_BYTES: usize = 1_048_576;

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

impl<S> GuardedEvent for ContinuationEvent<S> {
    fn read_incoming<'a>(
        &'a self,
        context: &'a Context,
        _config: &LoopGuardConfig,
        out: &mut Units<'a, '_>,
    ) {
        out.push(self.meta.read_incoming(context));
    }
}

impl ContinuationMeta {
    /// The chain the job arrived with: the context's carriers and the
    /// lineage carried in the payload.
    pub(super) fn read_incoming<'a>(&'a self, context: &'a Context) -> Incoming<'a> {
        let mut incoming = Incoming::from_context(context);
        if let Some(value) = self.lineage.as_deref() {
            incoming.read_lineage_value(value, "continuation payload");
        }
        incoming
    }
}
