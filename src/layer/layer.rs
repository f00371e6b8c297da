use std::fmt;
use std::sync::Arc;

use tower::Layer;

use super::service::LoopGuard;
use super::shared::{BatchDropPolicy, Shared};
use crate::config::{ConfigError, LoopGuardConfig};
use crate::metric::{DropEvent, MetricSink};

/// Applies [`LoopGuard`] to a handler service. See the [module docs](crate::layer).
///
/// It must be the **outermost** layer around the handler (or sit right
/// under `lambda_runtime`'s own layers): a layer above it that boxes errors
/// turns the `RecursiveInvocationException` error type into a generic one.
/// [`run`](crate::run) builds the whole stack in the right order.
#[derive(Clone)]
pub struct LoopGuardLayer {
    pub(crate) shared: Arc<Shared>,
}

impl LoopGuardLayer {
    /// A layer with `config`, EMF lines on stdout and the default policy.
    pub fn new(config: LoopGuardConfig) -> Self {
        config.announce();
        LoopGuardLayer {
            shared: Arc::new(Shared::new(config)),
        }
    }

    /// A layer configured from the process environment
    /// ([`LoopGuardConfig::from_env`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        LoopGuardConfig::from_env().map(Self::new)
    }

    /// Sends EMF lines to `sink` instead of stdout.
    #[must_use]
    pub fn metric_sink(self, sink: impl MetricSink) -> Self {
        self.map_shared(|s| s.sink = Arc::new(sink))
    }

    /// Calls `hook` with every drop (and, in `observe` mode, every would-be
    /// drop), after the EMF line and the `tracing` warning: for paging
    /// through a tool of your own. It runs on the invocation's path: keep it
    /// quick, never let it block (hand the event to a channel or task), and
    /// never let it panic (a panic fails the invocation).
    #[must_use]
    pub fn on_drop(self, hook: impl Fn(&DropEvent<'_>) + Send + Sync + 'static) -> Self {
        self.map_shared(|s| s.on_drop = Some(Arc::new(hook)))
    }

    /// Sets the [`BatchDropPolicy`].
    #[must_use]
    pub fn batch_drop_policy(self, policy: BatchDropPolicy) -> Self {
        self.map_shared(|s| s.batch_policy = policy)
    }

    /// The configuration in use.
    pub fn config(&self) -> &LoopGuardConfig {
        &self.shared.config
    }

    fn map_shared(self, f: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Arc::unwrap_or_clone(self.shared);
        f(&mut shared);
        LoopGuardLayer {
            shared: Arc::new(shared),
        }
    }
}

impl<S> Layer<S> for LoopGuardLayer {
    type Service = LoopGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LoopGuard::from_shared(inner, self.shared.clone())
    }
}

impl fmt::Debug for LoopGuardLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopGuardLayer")
            .field("config", &self.shared.config)
            .field("batch_policy", &self.shared.batch_policy)
            .finish_non_exhaustive()
    }
}
