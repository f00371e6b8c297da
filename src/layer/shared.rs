//! What a layer and its services share: the configuration, the metric sink,
//! the drop hook and the batch drop policy.

use std::sync::Arc;

use crate::config::LoopGuardConfig;
use crate::metric::{DropHook, MetricSink, StdoutSink};

/// What to do with looping records of a batch (SQS, DynamoDB stream, a
/// custom source) when the handler's response does not report batch item
/// failures (so they cannot be reported one by one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BatchDropPolicy {
    /// Fail the whole invocation without calling the handler (default). The
    /// source retries the batch; for SQS the looping messages reach the DLQ
    /// after `maxReceiveCount`, together with their batch mates. Nothing is
    /// lost.
    #[default]
    FailInvocation,
    /// Remove the looping records and run the handler on the rest. The
    /// looping records are then **deleted** (SQS) or checkpointed past
    /// (streams) with the batch: they survive only in the
    /// metric and the log. Use it only when losing them is acceptable.
    DiscardLoopingRecords,
}

/// The settings every service of one layer shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) config: Arc<LoopGuardConfig>,
    pub(crate) sink: Arc<dyn MetricSink>,
    pub(crate) batch_policy: BatchDropPolicy,
    pub(crate) on_drop: Option<DropHook>,
}

impl Shared {
    /// `config`, EMF lines on stdout, the default policy.
    pub(crate) fn new(config: LoopGuardConfig) -> Self {
        // The chains' state, made now, at init, rather than amid the
        // first invocation's event.
        crate::chain::prepare_spare();
        Shared {
            config: Arc::new(config),
            sink: Arc::new(StdoutSink),
            batch_policy: BatchDropPolicy::default(),
            on_drop: None,
        }
    }
}
