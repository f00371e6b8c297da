//! Configuration: threshold, mode, metric namespace and function identity,
//! read from environment variables with code-level overrides.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `LOOP_GUARD_MAX_DEPTH` | `10` | runs of this function per chain before the next one is dropped (1 to 10000); below AWS's ~16 so that this guard, with its immediate metric, stops a loop first |
//! | `LOOP_GUARD_MODE` | `terminate` | `terminate` drops, `observe` only logs and counts, `allow` never drops or reports but still counts and passes the chain on |
//! | `LOOP_GUARD_METRIC_NAMESPACE` | `POWERTOOLS_METRICS_NAMESPACE`, else `LoopGuard` | CloudWatch namespace of the drop metric |
//! | `POWERTOOLS_SERVICE_NAME` | none | the `Service` property of drop lines and logs (Powertools' variable; code: [`LoopGuardConfigBuilder::service`]) |
//! | `LOOP_GUARD_FUNCTION_ID` | `AWS_LAMBDA_FUNCTION_NAME` | identity hashed into the wire format |
//! | `LOOP_GUARD_SOURCE_MAX_DEPTH` | none | per-source limits: `<event source ARN>=<n>,...`, e.g. a queue used for a deliberate requeue pattern; runs triggered through such a source count against its limit only |
//! | `LOOP_GUARD_MAX_HOPS` | `256` | hops of a whole chain, any functions, before the next one is dropped: the backstop for cycles through more than 16 functions (1 to 65535; below the largest depth limit, that limit plus 256) |
//! | `LOOP_GUARD_CHAIN_BUDGET` | none (off) | runs of a whole chain's tree, all functions, counted without shared state: each message carries the runs left to its subtree and each run shares what it has left among its sends (see [`chain::declare_sends`](crate::chain::declare_sends)); bounds fan-out loops, which depth alone lets grow exponentially (1 to 4294967295) |
//! | `LOOP_GUARD_CHAIN_IDS` | `false` | `true` gives every chain a random [`ChainId`] where it starts, carried by every hop and shown in drop lines, logs and `loop-guard decode` (budgeted chains always have one); it writes wire format `v2`, which readers older than `v2` ignore, so turn it on once every function of the system runs a `v2` reader |
//! | `LOOP_GUARD_SIGNING_KEYS` | none (off) | secrets (16 bytes or more each, comma separated; the first signs, all verify) for signed lineages: every lineage sent carries a MAC, and one without a valid MAC counts as absent (see [`signing`](crate::signing)); the values never appear in errors or logs |
//! | `LOOP_GUARD_TRUST_HTTP` | `false` | `true` counts lineage from API Gateway / Function URL / ALB events; leave it off for endpoints anyone can call |
//! | `LOOP_GUARD_SNS_TOPICS` | none | SNS topics whose notification envelopes in SQS bodies are read (non-raw delivery): topic ARNs, `arn:...:*` prefixes, or `*`; see [`TrustedTopics`] |
//! | `LOOP_GUARD_DYNAMODB_ATTRIBUTE` | `loop-guard` | the DynamoDB item attribute the layer reads and the interceptor writes (feature `dynamodb`) |
//!
//! Continuations read `LOOP_GUARD_MAX_CONTINUATIONS` (and the namespace)
//! through the same checks.
//!
//! A variable set to the empty string counts as unset. Any other bad value
//! (not UTF-8 included) is an error at construction that names the variable
//! and shows a bounded excerpt of the value, also when code overrides the
//! same setting.
//!
//! # Example
//!
//! ```
//! use lambda_loop_guard::{ConfigError, LoopGuardConfig, Mode};
//! use std::collections::HashMap;
//!
//! let env = HashMap::from([
//!     ("AWS_LAMBDA_FUNCTION_NAME", "order-processor"),
//!     ("LOOP_GUARD_MAX_DEPTH", "8"),
//! ]);
//! // Code overrides win over the environment.
//! let config = LoopGuardConfig::builder()
//!     .mode(Mode::Observe)
//!     .build_from_env_source(|key| env.get(key).map(|v| v.to_string()))?;
//! assert_eq!(config.max_depth(), 8);
//! assert_eq!(config.mode(), Mode::Observe);
//! assert_eq!(config.function_name(), "order-processor");
//!
//! // A bad value is an error even when code sets the same setting.
//! let err = LoopGuardConfig::builder()
//!     .max_depth(4)
//!     .build_from_env_source(|key| (key == "LOOP_GUARD_MAX_DEPTH").then(|| "abc".to_string()))
//!     .unwrap_err();
//! assert!(err.to_string().contains(r#"LOOP_GUARD_MAX_DEPTH="abc""#));
//! # Ok::<(), ConfigError>(())
//! ```

use std::fmt;
use std::str::FromStr;

pub use crate::env::ConfigError;
use crate::env::{self, Lookup};
use crate::lineage::{ChainId, FunctionId, Lineage};
use crate::signing::SigningKeys;
pub use crate::sns_trust::TrustedTopics;

/// Environment variable: maximum runs of this function per chain.
pub const ENV_MAX_DEPTH: &str = "LOOP_GUARD_MAX_DEPTH";
/// Environment variable: `terminate`, `observe` or `allow`.
pub const ENV_MODE: &str = "LOOP_GUARD_MODE";
/// Environment variable: CloudWatch metric namespace.
pub const ENV_METRIC_NAMESPACE: &str = "LOOP_GUARD_METRIC_NAMESPACE";
/// Environment variable: the function identity hashed into the wire format.
pub const ENV_FUNCTION_ID: &str = "LOOP_GUARD_FUNCTION_ID";
/// Environment variable: per-source limits, `<event source ARN>=<n>,...`.
pub const ENV_SOURCE_MAX_DEPTH: &str = "LOOP_GUARD_SOURCE_MAX_DEPTH";
/// Environment variable: hops of a whole chain before the next is dropped.
pub const ENV_MAX_HOPS: &str = "LOOP_GUARD_MAX_HOPS";
/// Environment variable: the secrets of signed lineages.
pub const ENV_SIGNING_KEYS: &str = "LOOP_GUARD_SIGNING_KEYS";
/// Environment variable: the budget of runs of a chain's whole tree.
pub const ENV_CHAIN_BUDGET: &str = "LOOP_GUARD_CHAIN_BUDGET";
/// Environment variable: whether every chain gets a [`ChainId`] where it
/// starts (`true`), or only budgeted ones (`false`, default).
pub const ENV_CHAIN_IDS: &str = "LOOP_GUARD_CHAIN_IDS";
/// Environment variable: whether lineage read from HTTP events (API Gateway, Function URL, ALB)
/// counts: `true` or `false` (default). Only set it when every caller of the
/// endpoint is your own code.
pub const ENV_TRUST_HTTP: &str = "LOOP_GUARD_TRUST_HTTP";
/// Environment variable: SNS topics whose envelopes in SQS bodies are read,
/// comma-separated (see [`TrustedTopics`]).
pub const ENV_SNS_TOPICS: &str = "LOOP_GUARD_SNS_TOPICS";
/// Environment variable: the DynamoDB item attribute that carries the
/// lineage (feature `dynamodb`).
pub const ENV_DYNAMODB_ATTRIBUTE: &str = "LOOP_GUARD_DYNAMODB_ATTRIBUTE";
/// Powertools' metric namespace: the fallback of `LOOP_GUARD_METRIC_NAMESPACE`.
pub const ENV_POWERTOOLS_METRICS_NAMESPACE: &str = "POWERTOOLS_METRICS_NAMESPACE";
/// Powertools' service name: the `Service` of drop lines and logs.
pub const ENV_POWERTOOLS_SERVICE_NAME: &str = "POWERTOOLS_SERVICE_NAME";
/// Environment variable set by the Lambda runtime: the Runtime API address
/// (its presence means the function runs in Lambda).
pub const ENV_RUNTIME_API: &str = "AWS_LAMBDA_RUNTIME_API";
/// Environment variable set by Lambda Managed Instances: invocations one
/// process runs at once (`lambda_runtime`'s concurrent mode above 1).
pub const ENV_MAX_CONCURRENCY: &str = "AWS_LAMBDA_MAX_CONCURRENCY";
/// Environment variable set by Lambda: the function's name, the identity
/// fallback and the metric's `FunctionName`.
pub const ENV_LAMBDA_FUNCTION_NAME: &str = "AWS_LAMBDA_FUNCTION_NAME";

/// Default [`max_depth`](LoopGuardConfig::max_depth): below AWS's own
/// detection (about 16), so that this guard and its immediate metric stop
/// SQS/SNS/Lambda/S3 loops before AWS silently does; the limit of DAZN's
/// guard.
pub const DEFAULT_MAX_DEPTH: u32 = 10;
/// Largest accepted `max_depth`.
pub const MAX_MAX_DEPTH: u32 = 10_000;
/// Default [`max_hops`](LoopGuardConfig::max_hops): 16 functions (as many as
/// a lineage tracks) that each ran 16 times (AWS's own threshold): a chain
/// no per-function count would stop earlier is this long at most.
pub const DEFAULT_MAX_HOPS: u32 = 256;
/// Largest accepted `max_hops` (hop counts saturate at 65535).
pub const MAX_MAX_HOPS: u32 = 65_535;
/// Default metric namespace.
pub const DEFAULT_METRIC_NAMESPACE: &str = "LoopGuard";

const MODE_EXPECTED: &str = "expected terminate, observe or allow";
const MAX_DEPTH_EXPECTED: &str = "expected a whole number from 1 to 10000";
const SOURCE_MAX_DEPTH_EXPECTED: &str =
    "expected <event source ARN>=<1 to 10000>, separated by commas, an ARN without = or spaces";
const BOOLEAN_EXPECTED: &str = "expected true or false";
const MAX_HOPS_EXPECTED: &str = "expected a whole number from 1 to 65535";
const CHAIN_BUDGET_EXPECTED: &str = "expected a whole number from 1 to 4294967295";
const SIGNING_KEYS_EXPECTED: &str =
    "expected one or more secrets of at least 16 bytes each, separated by commas";

/// Signing keys from `secrets` (spaces around each trimmed, empty ones
/// skipped), if there is one and every one is long enough.
fn signing_keys<'k>(secrets: impl Iterator<Item = &'k str>) -> Option<SigningKeys> {
    SigningKeys::new(secrets.map(str::trim).filter(|k| !k.is_empty()))
        .ok()
        .flatten()
}

/// What an error shows of refused keys: their lengths, never the keys.
fn key_lengths<'k>(keys: impl Iterator<Item = &'k str>) -> String {
    let lengths: Vec<String> = keys.map(|k| k.trim().len().to_string()).collect();
    format!("(keys of {} bytes)", lengths.join(", "))
}

/// What the guard does with an invocation past the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Drop it: the handler is not called (default).
    #[default]
    Terminate,
    /// Run the handler anyway, but log and count it: for rollouts.
    Observe,
    /// Never drops and reports nothing, but still counts this function's
    /// runs and passes the chain on, so a loop through it is stopped by the
    /// next guarded function.
    Allow,
}

impl Mode {
    /// The name used in `LOOP_GUARD_MODE`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Terminate => "terminate",
            Mode::Observe => "observe",
            Mode::Allow => "allow",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "terminate" => Ok(Mode::Terminate),
            "observe" => Ok(Mode::Observe),
            "allow" => Ok(Mode::Allow),
            _ => Err(ConfigError::invalid(ENV_MODE, s, MODE_EXPECTED)),
        }
    }
}

/// Validated guard configuration. Build it with [`LoopGuardConfig::from_env`]
/// or [`LoopGuardConfig::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopGuardConfig {
    max_depth: u32,
    max_hops: u32,
    chain_budget: Option<u32>,
    chain_ids: bool,
    signing_keys: Option<SigningKeys>,
    source_max_depth: Vec<SourceLimit>,
    mode: Mode,
    metric_namespace: String,
    service: Option<String>,
    function_identity: String,
    function_name: String,
    function_id: FunctionId,
    trust_http: bool,
    sns_topics: TrustedTopics,
    sequential_fallback: bool,
    #[cfg(feature = "dynamodb")]
    dynamodb_attribute: crate::carrier::ItemAttribute,
}

impl LoopGuardConfig {
    /// Reads the process environment. See the [module docs](self) for the variables.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::builder().build_from_env()
    }

    /// A builder whose settings override the environment.
    pub fn builder() -> LoopGuardConfigBuilder {
        LoopGuardConfigBuilder::default()
    }

    /// Whether lineage read from HTTP events counts (`LOOP_GUARD_TRUST_HTTP`).
    pub fn trust_http(&self) -> bool {
        self.trust_http
    }

    /// The SNS topics whose notification envelopes, found in SQS bodies,
    /// are read for a lineage (`LOOP_GUARD_SNS_TOPICS`; none by default).
    pub fn sns_topics(&self) -> &TrustedTopics {
        &self.sns_topics
    }

    /// Runs of this function per chain that are allowed; run `max_depth + 1` is dropped.
    pub fn max_depth(&self) -> u32 {
        self.max_depth
    }

    /// The limit for units from `source_arn`: its own entry in
    /// `LOOP_GUARD_SOURCE_MAX_DEPTH` / [`LoopGuardConfigBuilder::source_max_depth`]
    /// if it has one, else [`max_depth`](Self::max_depth).
    pub fn max_depth_for(&self, source_arn: Option<&str>) -> u32 {
        self.limit_for(source_arn).1
    }

    /// The id runs are counted under, and their limit, for units from
    /// `source_arn`. A source with a limit of its own has an id of its own
    /// (the identity and the ARN hashed together): runs triggered through it
    /// count against its limit only, and never against the default one.
    pub fn limit_for(&self, source_arn: Option<&str>) -> (FunctionId, u32) {
        source_arn
            .and_then(|arn| self.source_max_depth.iter().find(|l| l.arn == arn))
            .map_or((self.function_id, self.max_depth), |l| {
                (l.function_id, l.max_depth)
            })
    }

    /// Whether any source has a limit of its own.
    pub(crate) fn has_source_limits(&self) -> bool {
        !self.source_max_depth.is_empty()
    }

    /// `source_arn` when it can change a unit's fate (some source has a
    /// limit of its own), else `None`: what the guard compares of two
    /// units' sources to decide them alike.
    pub(crate) fn deciding_source<'a>(&self, source_arn: Option<&'a str>) -> Option<&'a str> {
        source_arn.filter(|_| self.has_source_limits())
    }

    /// The per-source limits, in the order given.
    pub fn source_max_depths(&self) -> impl Iterator<Item = (&str, u32)> {
        self.source_max_depth
            .iter()
            .map(|l| (l.arn.as_str(), l.max_depth))
    }

    /// Hops of a whole chain (any functions) that are allowed; hop
    /// `max_hops + 1` is dropped. When a depth limit is larger, it is that
    /// limit plus the default 256, so a deliberate loop keeps room for the
    /// hops made before it.
    pub fn max_hops(&self) -> u32 {
        self.max_hops
    }

    /// Whether the running invocation's chain is also the process-wide
    /// fallback, for calls from tasks that were not given it with
    /// [`carry`](crate::chain::carry): on in Lambda's sequential mode
    /// (`AWS_LAMBDA_RUNTIME_API` set, `AWS_LAMBDA_MAX_CONCURRENCY` unset or
    /// 1), where one invocation runs at a time; off in concurrent mode,
    /// where spawned tasks need `carry`.
    pub fn sequential_fallback(&self) -> bool {
        self.sequential_fallback
    }

    /// `lineage` one run of this function further, counted under the id of
    /// `source_arn` (see [`limit_for`](Self::limit_for)); without an
    /// identity (`allow` only), one hop further.
    pub(crate) fn record_run(&self, lineage: &Lineage, source_arn: Option<&str>) -> Lineage {
        if self.counts_runs() {
            self.with_budget(lineage)
                .record_run(self.limit_for(source_arn).0)
        } else {
            lineage.add_hop()
        }
    }

    /// The keys of signed lineages (`LOOP_GUARD_SIGNING_KEYS`), if signing
    /// is on.
    pub fn signing_keys(&self) -> Option<&SigningKeys> {
        self.signing_keys.as_ref()
    }

    /// `lineage` as this function sends it: signed when signing is on.
    pub(crate) fn outgoing(&self, lineage: Lineage) -> Lineage {
        match &self.signing_keys {
            Some(keys) => keys.sign(&lineage),
            None => lineage,
        }
    }

    /// The runs a whole chain's tree may make (`LOOP_GUARD_CHAIN_BUDGET`),
    /// if the chain budget is on.
    pub fn chain_budget(&self) -> Option<u32> {
        self.chain_budget
    }

    /// Whether every chain gets a [`ChainId`] where it starts
    /// (`LOOP_GUARD_CHAIN_IDS`), not only budgeted ones.
    pub fn chain_ids(&self) -> bool {
        self.chain_ids
    }

    /// `lineage`, which arrived without a budget, as the start of a
    /// budgeted chain when the budget is on: a fresh chain id, also when it
    /// arrived with one (`LOOP_GUARD_CHAIN_IDS`), so that every budget
    /// started is a chain of its own (an exact budget's store counts it
    /// apart); arriving without a chain id, with a fresh one when chain ids
    /// are on; else as is.
    pub(crate) fn with_budget(&self, lineage: &Lineage) -> Lineage {
        match (self.chain_budget, lineage.budget(), lineage.chain()) {
            (Some(budget), None, _) => lineage.with_budget(ChainId::random(), budget),
            (_, _, None) if self.chain_ids => lineage.in_chain(ChainId::random()),
            _ => *lineage,
        }
    }

    /// Whether this function counts its own runs: false only in `allow` mode
    /// without any identity (nothing to hash), where lineages pass through.
    pub fn counts_runs(&self) -> bool {
        !self.function_identity.is_empty()
    }

    /// The configured [`Mode`].
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The CloudWatch namespace of the drop metric.
    pub fn metric_namespace(&self) -> &str {
        &self.metric_namespace
    }

    /// The service name of drop lines and logs: code, else
    /// `POWERTOOLS_SERVICE_NAME`, else none.
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// Logs the effective configuration once, at `info`: what a guard built
    /// from it will do (every field a drop line could be compared with).
    pub(crate) fn announce(&self) {
        let limits: Vec<String> = self
            .source_max_depths()
            .map(|(arn, n)| format!("{arn}={n}"))
            .collect();
        tracing::info!(
            FunctionName = self.function_name(),
            FunctionId = %self.function_id(),
            Service = self.service().unwrap_or(""),
            Mode = self.mode().as_str(),
            MaxDepth = self.max_depth(),
            MaxHops = self.max_hops(),
            ChainBudget = self.chain_budget().unwrap_or(0),
            ChainIds = self.chain_ids(),
            SigningKeys = self.signing_keys().map_or(0, SigningKeys::len),
            SourceMaxDepth = limits.join(",").as_str(),
            Namespace = self.metric_namespace(),
            TrustHttp = self.trust_http(),
            SnsTopicsTrusted = !self.sns_topics().is_empty(),
            SequentialFallback = self.sequential_fallback(),
            "loop guard active"
        );
    }

    /// The identity hashed into [`function_id`](Self::function_id).
    pub fn function_identity(&self) -> &str {
        &self.function_identity
    }

    /// The `FunctionName` metric dimension: `AWS_LAMBDA_FUNCTION_NAME` when
    /// set, else the function identity.
    pub fn function_name(&self) -> &str {
        &self.function_name
    }

    /// This function's id on the wire.
    pub fn function_id(&self) -> FunctionId {
        self.function_id
    }

    /// The DynamoDB item attribute that carries the lineage
    /// (`LOOP_GUARD_DYNAMODB_ATTRIBUTE`, default `loop-guard`): read from
    /// stream records by the layer, written by an interceptor built with
    /// [`LoopGuardInterceptor::from_config`](crate::LoopGuardInterceptor::from_config).
    #[cfg(feature = "dynamodb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dynamodb")))]
    pub fn dynamodb_attribute(&self) -> &crate::carrier::ItemAttribute {
        &self.dynamodb_attribute
    }
}

/// Builder for [`LoopGuardConfig`]. Every setting made here wins over the
/// environment, except the lists (`source_max_depth`, `trust_sns_topic`),
/// whose code entries are added to the environment's; anything left unset
/// falls back to the environment (with the `build_from_env*` methods) and
/// then to the default.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct LoopGuardConfigBuilder {
    max_depth: Option<u32>,
    max_hops: Option<u32>,
    chain_budget: Option<u32>,
    chain_ids: Option<bool>,
    signing_keys: Vec<String>,
    source_max_depth: Vec<(String, u32)>,
    mode: Option<Mode>,
    metric_namespace: Option<String>,
    service: Option<String>,
    function_identity: Option<String>,
    function_name: Option<String>,
    trust_http: Option<bool>,
    sns_topics: Vec<String>,
    sequential_fallback: Option<bool>,
    #[cfg(feature = "dynamodb")]
    dynamodb_attribute: Option<String>,
}

impl LoopGuardConfigBuilder {
    /// Counts lineage read from HTTP events. Off by default: a caller of a
    /// public endpoint could otherwise send a large count and make the
    /// function drop its requests.
    pub fn trust_http(mut self, trust: bool) -> Self {
        self.trust_http = Some(trust);
        self
    }

    /// Reads the lineage in SNS notification envelopes that arrive in SQS
    /// bodies (subscriptions without raw message delivery) from `topic`: a
    /// topic ARN, a prefix ending in `*`, or `*` for any topic. Added to the
    /// entries of `LOOP_GUARD_SNS_TOPICS`. See [`TrustedTopics`] for why an
    /// envelope is not trusted by its shape.
    pub fn trust_sns_topic(mut self, topic: impl Into<String>) -> Self {
        self.sns_topics.push(topic.into());
        self
    }

    /// Runs of this function per chain that are allowed (1 to 10000).
    pub fn max_depth(mut self, max_depth: u32) -> Self {
        self.max_depth = Some(max_depth);
        self
    }

    /// Hops of a whole chain that are allowed (1 to 65535, default 256):
    /// the backstop for cycles through more than 16 functions. Below the
    /// largest depth limit, that limit plus 256 is used.
    pub fn max_hops(mut self, max_hops: u32) -> Self {
        self.max_hops = Some(max_hops);
        self
    }

    /// Adds a secret (16 bytes or more) for signed lineages: the first one
    /// added signs, all verify. Keys given here replace those of
    /// `LOOP_GUARD_SIGNING_KEYS`. See [`signing`](crate::signing).
    pub fn signing_key(mut self, secret: impl Into<String>) -> Self {
        self.signing_keys.push(secret.into());
        self
    }

    /// The runs a whole chain's tree may make, all functions (1 to
    /// 4294967295; off by default): see `LOOP_GUARD_CHAIN_BUDGET` and the
    /// guide's "Three limits".
    pub fn chain_budget(mut self, budget: u32) -> Self {
        self.chain_budget = Some(budget);
        self
    }

    /// Gives every chain a random [`ChainId`] where it starts, not only
    /// budgeted ones (`LOOP_GUARD_CHAIN_IDS`; off by default): it is then
    /// in every drop line, log and decoded lineage of the chain. Lineages
    /// with an id are wire format `v2`, which readers older than `v2`
    /// ignore: turn it on once every function of the system reads `v2`.
    pub fn chain_ids(mut self, on: bool) -> Self {
        self.chain_ids = Some(on);
        self
    }

    /// A limit of its own for units from one event source (an SQS queue ARN,
    /// an SNS topic ARN), e.g. a queue used for a deliberate requeue pattern.
    /// Code entries are added to those of `LOOP_GUARD_SOURCE_MAX_DEPTH` and win
    /// for the same ARN.
    pub fn source_max_depth(mut self, source_arn: impl Into<String>, max_depth: u32) -> Self {
        self.source_max_depth.push((source_arn.into(), max_depth));
        self
    }

    /// The [`Mode`].
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// The CloudWatch namespace of the drop metric.
    pub fn metric_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.metric_namespace = Some(namespace.into());
        self
    }

    /// The service name of drop lines and logs (`Service`); default
    /// `POWERTOOLS_SERVICE_NAME`.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.service = Some(name.into());
        self
    }

    /// The identity hashed into the wire format. Functions that must count
    /// as one (aliases, blue/green copies) share an identity.
    pub fn function_identity(mut self, identity: impl Into<String>) -> Self {
        self.function_identity = Some(identity.into());
        self
    }

    /// The `FunctionName` metric dimension (defaults to
    /// `AWS_LAMBDA_FUNCTION_NAME`, else the identity).
    pub fn function_name(mut self, name: impl Into<String>) -> Self {
        self.function_name = Some(name.into());
        self
    }

    /// The DynamoDB item attribute that carries the lineage (default
    /// `loop-guard`).
    #[cfg(feature = "dynamodb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dynamodb")))]
    pub fn dynamodb_attribute(mut self, name: impl Into<String>) -> Self {
        self.dynamodb_attribute = Some(name.into());
        self
    }

    /// Makes the running invocation's chain the process-wide fallback (see
    /// [`LoopGuardConfig::sequential_fallback`]); by default on exactly in
    /// Lambda's sequential mode. Only turn it on where one invocation runs
    /// at a time.
    pub fn sequential_fallback(mut self, on: bool) -> Self {
        self.sequential_fallback = Some(on);
        self
    }

    /// Validates the code settings alone, without reading the environment.
    pub fn build(self) -> Result<LoopGuardConfig, ConfigError> {
        self.build_with(&|_| Ok(None))
    }

    /// Fills unset settings from the process environment, then validates.
    /// A variable that is not UTF-8 is an error.
    pub fn build_from_env(self) -> Result<LoopGuardConfig, ConfigError> {
        self.build_with(&env::process)
    }

    /// Fills unset settings from `env` (a lookup by variable name), then
    /// validates. Tests use this instead of mutating the process environment.
    pub fn build_from_env_source<F>(self, env: F) -> Result<LoopGuardConfig, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        self.build_with(&env::from_fn(env))
    }

    fn build_with(self, env: Lookup<'_>) -> Result<LoopGuardConfig, ConfigError> {
        // Every variable is read and checked first, overridden or not.
        let env_max_depth = env::parse(
            env,
            ENV_MAX_DEPTH,
            |raw| env::whole_number(raw, 1..=MAX_MAX_DEPTH),
            MAX_DEPTH_EXPECTED,
        )?;
        let env_max_hops = env::parse(
            env,
            ENV_MAX_HOPS,
            |raw| env::whole_number(raw, 1..=MAX_MAX_HOPS),
            MAX_HOPS_EXPECTED,
        )?;
        let env_chain_budget = env::parse(
            env,
            ENV_CHAIN_BUDGET,
            |raw| env::whole_number(raw, 1..=u32::MAX),
            CHAIN_BUDGET_EXPECTED,
        )?;
        let env_signing_keys = match env::get(env, ENV_SIGNING_KEYS)? {
            None => None,
            Some(raw) => Some(signing_keys(raw.split(',')).ok_or_else(|| {
                ConfigError::invalid(
                    ENV_SIGNING_KEYS,
                    &key_lengths(raw.split(',')),
                    SIGNING_KEYS_EXPECTED,
                )
            })?),
        };
        let env_source_max_depth = env::parse(
            env,
            ENV_SOURCE_MAX_DEPTH,
            parse_source_max_depth,
            SOURCE_MAX_DEPTH_EXPECTED,
        )?;
        let env_mode = env::get(env, ENV_MODE)?
            .map(|raw| raw.parse::<Mode>())
            .transpose()?;
        let env_namespace = env::metric_namespace(env)?;
        let env_service = env::parse(
            env,
            ENV_POWERTOOLS_SERVICE_NAME,
            |raw| env::name(raw).map(str::to_owned),
            env::NAME_EXPECTED,
        )?;
        let env_trust_http = env::parse(env, ENV_TRUST_HTTP, env::boolean, BOOLEAN_EXPECTED)?;
        let env_chain_ids = env::parse(env, ENV_CHAIN_IDS, env::boolean, BOOLEAN_EXPECTED)?;
        let env_sns_topics = env::parse(
            env,
            ENV_SNS_TOPICS,
            TrustedTopics::parse,
            crate::sns_trust::EXPECTED,
        )?;
        let env_identity = env::parse(
            env,
            ENV_FUNCTION_ID,
            |raw| env::name(raw).map(str::to_owned),
            env::NAME_EXPECTED,
        )?;
        let lambda_name = env::get(env, ENV_LAMBDA_FUNCTION_NAME)?;
        // In Lambda, and one invocation at a time (lambda_runtime's rule:
        // concurrent only above 1; a value it cannot read is not sequential
        // for certain, so no fallback).
        let in_lambda = env::get(env, ENV_RUNTIME_API)?.is_some();
        let sequential = match env::get(env, ENV_MAX_CONCURRENCY)? {
            None => true,
            Some(raw) => raw.trim().parse::<u32>().is_ok_and(|n| n <= 1),
        };
        #[cfg(feature = "dynamodb")]
        let env_dynamodb_attribute = dynamodb_attribute_from(env)?;

        let max_depth = match self.max_depth {
            Some(n) => check_max_depth("max_depth", n)?,
            None => env_max_depth.unwrap_or(DEFAULT_MAX_DEPTH),
        };
        let mut source_max_depth = env_source_max_depth.unwrap_or_default();
        for (arn, n) in self.source_max_depth {
            let shown = format!("{arn}={n}");
            let n = check_max_depth("source_max_depth", n)?;
            let arn = env::check(
                "source_max_depth",
                &shown,
                valid_arn(&arn).then_some(arn.clone()),
                SOURCE_MAX_DEPTH_EXPECTED,
            )?;
            source_max_depth.retain(|(a, _)| *a != arn);
            source_max_depth.push((arn, n));
        }
        let mode = self.mode.or(env_mode).unwrap_or_default();
        let metric_namespace = match self.metric_namespace {
            Some(ns) => env::check(
                "metric_namespace",
                &ns,
                env::namespace(&ns).map(str::to_owned),
                env::NAMESPACE_EXPECTED,
            )?,
            None => env_namespace.unwrap_or_else(|| DEFAULT_METRIC_NAMESPACE.to_owned()),
        };
        let service = match self.service {
            Some(name) => Some(env::check(
                "service",
                &name,
                env::name(&name).map(str::to_owned),
                env::NAME_EXPECTED,
            )?),
            None => env_service,
        };
        let trust_http = self.trust_http.or(env_trust_http).unwrap_or(false);
        let chain_ids = self.chain_ids.or(env_chain_ids).unwrap_or(false);
        let mut sns_topics = env_sns_topics.unwrap_or_default();
        for topic in &self.sns_topics {
            env::check(
                "trust_sns_topic",
                topic,
                sns_topics.add(topic),
                crate::sns_trust::EXPECTED,
            )?;
        }
        let function_identity = match self.function_identity {
            Some(id) => env::check(
                "function_identity",
                &id,
                env::name(&id).map(str::to_owned),
                env::NAME_EXPECTED,
            )?,
            None => match env_identity.or_else(|| lambda_name.clone()) {
                Some(id) => id,
                // Nothing to hash, but nothing is counted either when off.
                None if mode == Mode::Allow => String::new(),
                None => return Err(ConfigError::missing_identity()),
            },
        };
        let function_name = self
            .function_name
            .or(lambda_name)
            .unwrap_or_else(|| function_identity.clone());
        #[cfg(feature = "dynamodb")]
        let dynamodb_attribute = match self.dynamodb_attribute {
            Some(name) => crate::carrier::ItemAttribute::new(env::check(
                "dynamodb_attribute",
                &name,
                env::name(&name).map(str::to_owned),
                env::NAME_EXPECTED,
            )?),
            None => env_dynamodb_attribute.unwrap_or_default(),
        };
        let max_hops = match self.max_hops {
            Some(n) => env::check(
                "max_hops",
                &n.to_string(),
                (1..=MAX_MAX_HOPS).contains(&n).then_some(n),
                MAX_HOPS_EXPECTED,
            )?,
            None => env_max_hops.unwrap_or(DEFAULT_MAX_HOPS),
        };
        let chain_budget = match self.chain_budget {
            Some(n) => Some(env::check(
                "chain_budget",
                &n.to_string(),
                (n >= 1).then_some(n),
                CHAIN_BUDGET_EXPECTED,
            )?),
            None => env_chain_budget,
        };
        let signing_keys = if self.signing_keys.is_empty() {
            env_signing_keys
        } else {
            Some(
                signing_keys(self.signing_keys.iter().map(String::as_str)).ok_or_else(|| {
                    ConfigError::invalid(
                        "signing_key",
                        &key_lengths(self.signing_keys.iter().map(String::as_str)),
                        SIGNING_KEYS_EXPECTED,
                    )
                })?,
            )
        };
        let largest_depth = source_max_depth
            .iter()
            .map(|(_, n)| *n)
            .fold(max_depth, u32::max);
        let function_id = FunctionId::from_identity(&function_identity);
        let source_max_depth = source_max_depth
            .into_iter()
            .map(|(arn, max_depth)| SourceLimit {
                function_id: source_function_id(&function_identity, &arn),
                arn,
                max_depth,
            })
            .collect();
        // A deliberate loop allowed more runs than the hop limit keeps the
        // default's headroom for the hops made before it.
        let max_hops = if largest_depth > max_hops {
            largest_depth
                .saturating_add(DEFAULT_MAX_HOPS)
                .min(MAX_MAX_HOPS)
        } else {
            max_hops
        };
        Ok(LoopGuardConfig {
            max_depth,
            max_hops,
            chain_budget,
            chain_ids,
            signing_keys,
            source_max_depth,
            mode,
            metric_namespace,
            service,
            function_id,
            function_identity,
            function_name,
            trust_http,
            sns_topics,
            sequential_fallback: self.sequential_fallback.unwrap_or(in_lambda && sequential),
            #[cfg(feature = "dynamodb")]
            dynamodb_attribute,
        })
    }
}

/// `LOOP_GUARD_DYNAMODB_ATTRIBUTE`, checked: the layer's configuration and
/// the interceptor read it the same way.
#[cfg(feature = "dynamodb")]
pub(crate) fn dynamodb_attribute_from(
    env: Lookup<'_>,
) -> Result<Option<crate::carrier::ItemAttribute>, ConfigError> {
    let name = env::parse(
        env,
        ENV_DYNAMODB_ATTRIBUTE,
        |raw| env::name(raw).map(str::to_owned),
        env::NAME_EXPECTED,
    )?;
    Ok(name.map(crate::carrier::ItemAttribute::new))
}

/// A per-source limit and the id its runs count under.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SourceLimit {
    arn: String,
    max_depth: u32,
    function_id: FunctionId,
}

/// The id of `identity` for runs triggered through `source_arn` (a source
/// with a limit of its own): both hashed, with a separator neither holds.
fn source_function_id(identity: &str, source_arn: &str) -> FunctionId {
    FunctionId::from_identity(&format!("{identity}\n{source_arn}"))
}

/// `arn=n,arn=n`; spaces around entries are ignored, a later entry for the
/// same ARN wins.
fn parse_source_max_depth(raw: &str) -> Option<Vec<(String, u32)>> {
    let mut limits: Vec<(String, u32)> = Vec::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (arn, n) = entry.split_once('=')?;
        let arn = arn.trim();
        let n = env::whole_number(n, 1..=MAX_MAX_DEPTH)?;
        if !valid_arn(arn) {
            return None;
        }
        limits.retain(|(a, _)| a != arn);
        limits.push((arn.to_owned(), n));
    }
    Some(limits)
}

/// An event source ARN as the per-source limits hold it: not empty, and
/// without the separators `=` and `,` or whitespace.
fn valid_arn(arn: &str) -> bool {
    !arn.is_empty() && !arn.contains(['=', ',']) && !arn.contains(char::is_whitespace)
}

fn check_max_depth(setting: &'static str, n: u32) -> Result<u32, ConfigError> {
    env::check(
        setting,
        &n.to_string(),
        (1..=MAX_MAX_DEPTH).contains(&n).then_some(n),
        MAX_DEPTH_EXPECTED,
    )
}

#[cfg(test)]
pub(crate) fn test_config() -> LoopGuardConfig {
    LoopGuardConfig::builder()
        .function_identity("test")
        .build()
        .expect("a valid test configuration")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn build(pairs: &[(&str, &str)]) -> Result<LoopGuardConfig, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LoopGuardConfig::builder().build_from_env_source(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = build(&[(ENV_LAMBDA_FUNCTION_NAME, "f")]).unwrap();
        assert_eq!(c.max_depth(), 10);
        assert_eq!(c.mode(), Mode::Terminate);
        assert_eq!(c.metric_namespace(), "LoopGuard");
        assert_eq!(c.function_identity(), "f");
        assert_eq!(c.function_name(), "f");
        assert_eq!(c.function_id(), FunctionId::from_identity("f"));
        assert!(!c.trust_http());
    }

    #[test]
    fn chain_ids_are_read_and_checked() {
        let f = (ENV_LAMBDA_FUNCTION_NAME, "f");
        assert!(!build(&[f]).unwrap().chain_ids(), "off by default");
        assert!(build(&[f, (ENV_CHAIN_IDS, "true")]).unwrap().chain_ids());
        let err = build(&[f, (ENV_CHAIN_IDS, "on")]).unwrap_err();
        assert_eq!(err.setting(), Some(ENV_CHAIN_IDS));
        let c = LoopGuardConfig::builder()
            .chain_ids(false)
            .build_from_env_source(|k| match k {
                ENV_LAMBDA_FUNCTION_NAME => Some("f".into()),
                ENV_CHAIN_IDS => Some("true".into()),
                _ => None,
            })
            .unwrap();
        assert!(!c.chain_ids(), "code overrides the environment");
        // A chain starting here gets an id; one arriving with an id keeps it.
        let c = build(&[f, (ENV_CHAIN_IDS, "true")]).unwrap();
        let started = c.record_run(&Lineage::new(), None);
        let id = started.chain().expect("a fresh chain id");
        assert_eq!(started.budget(), None);
        assert_eq!(c.record_run(&started, None).chain(), Some(id));
        assert_eq!(
            build(&[f])
                .unwrap()
                .record_run(&Lineage::new(), None)
                .chain(),
            None
        );
    }

    #[test]
    fn trust_http_is_read_and_checked() {
        let c = build(&[(ENV_LAMBDA_FUNCTION_NAME, "f"), (ENV_TRUST_HTTP, "true")]).unwrap();
        assert!(c.trust_http());
        let err = build(&[(ENV_LAMBDA_FUNCTION_NAME, "f"), (ENV_TRUST_HTTP, "yes")]).unwrap_err();
        assert_eq!(err.setting(), Some(ENV_TRUST_HTTP));
        assert!(err.to_string().contains(r#""yes""#), "{err}");
        let c = LoopGuardConfig::builder()
            .trust_http(false)
            .build_from_env_source(|k| match k {
                ENV_LAMBDA_FUNCTION_NAME => Some("f".into()),
                ENV_TRUST_HTTP => Some("true".into()),
                _ => None,
            })
            .unwrap();
        assert!(!c.trust_http(), "code overrides the environment");
    }

    #[test]
    fn sns_topics_come_from_env_and_code_and_are_checked() {
        let topic = "arn:aws:sns:eu-west-1:123456789012:orders";
        let c = build(&[(ENV_LAMBDA_FUNCTION_NAME, "f")]).unwrap();
        assert!(
            c.sns_topics().is_empty(),
            "no envelope is trusted by default"
        );
        let c = build(&[(ENV_LAMBDA_FUNCTION_NAME, "f"), (ENV_SNS_TOPICS, topic)]).unwrap();
        assert!(c.sns_topics().trusts(topic));
        let err =
            build(&[(ENV_LAMBDA_FUNCTION_NAME, "f"), (ENV_SNS_TOPICS, "orders")]).unwrap_err();
        assert_eq!(err.setting(), Some(ENV_SNS_TOPICS));
        let c = LoopGuardConfig::builder()
            .function_identity("f")
            .trust_sns_topic("arn:aws:sns:us-east-1:1:other")
            .build_from_env_source(|k| (k == ENV_SNS_TOPICS).then(|| topic.to_owned()))
            .unwrap();
        assert!(
            c.sns_topics().trusts(topic),
            "code entries add to the environment's"
        );
        assert!(c.sns_topics().trusts("arn:aws:sns:us-east-1:1:other"));
        let err = LoopGuardConfig::builder()
            .function_identity("f")
            .trust_sns_topic("orders")
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), Some("trust_sns_topic"));
    }

    #[test]
    fn powertools_variables_are_fallbacks() {
        let c = build(&[
            (ENV_LAMBDA_FUNCTION_NAME, "f"),
            (ENV_POWERTOOLS_METRICS_NAMESPACE, "Shop"),
            (ENV_POWERTOOLS_SERVICE_NAME, "checkout"),
        ])
        .unwrap();
        assert_eq!(c.metric_namespace(), "Shop");
        assert_eq!(c.service(), Some("checkout"));
        let c = build(&[
            (ENV_LAMBDA_FUNCTION_NAME, "f"),
            (ENV_POWERTOOLS_METRICS_NAMESPACE, "Shop"),
            (ENV_METRIC_NAMESPACE, "Guard"),
        ])
        .unwrap();
        assert_eq!(c.metric_namespace(), "Guard", "ours wins over Powertools'");
        assert_eq!(c.service(), None);
        let err = build(&[
            (ENV_LAMBDA_FUNCTION_NAME, "f"),
            (ENV_POWERTOOLS_METRICS_NAMESPACE, "AWS/Lambda"),
        ])
        .unwrap_err();
        assert_eq!(err.setting(), Some(ENV_POWERTOOLS_METRICS_NAMESPACE));
        let c = build(&[
            (ENV_LAMBDA_FUNCTION_NAME, "f"),
            (ENV_POWERTOOLS_METRICS_NAMESPACE, "AWS/Lambda"),
            (ENV_METRIC_NAMESPACE, "Guard"),
        ])
        .unwrap();
        assert_eq!(
            c.metric_namespace(),
            "Guard",
            "another library's variable, unused, is not checked"
        );
        let c = LoopGuardConfig::builder()
            .function_identity("f")
            .service("billing")
            .build_from_env_source(|k| {
                (k == ENV_POWERTOOLS_SERVICE_NAME).then(|| "checkout".to_owned())
            })
            .unwrap();
        assert_eq!(c.service(), Some("billing"), "code wins");
    }

    #[test]
    fn env_values_are_read() {
        let c = build(&[
            (ENV_LAMBDA_FUNCTION_NAME, "f"),
            (ENV_FUNCTION_ID, "shared-id"),
            (ENV_MAX_DEPTH, " 3 "),
            (ENV_MODE, "OBSERVE"),
            (ENV_METRIC_NAMESPACE, "My/App"),
        ])
        .unwrap();
        assert_eq!(c.max_depth(), 3);
        assert_eq!(c.mode(), Mode::Observe);
        assert_eq!(c.metric_namespace(), "My/App");
        assert_eq!(c.function_id(), FunctionId::from_identity("shared-id"));
        assert_eq!(c.function_name(), "f");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = build(&[(ENV_FUNCTION_ID, "x"), (ENV_MAX_DEPTH, ""), (ENV_MODE, "")]).unwrap();
        assert_eq!(c.max_depth(), 10);
        assert_eq!(c.mode(), Mode::Terminate);
    }

    #[test]
    fn bad_values_name_the_variable_and_value() {
        for (var, value) in [
            (ENV_MAX_DEPTH, "abc"),
            (ENV_MAX_DEPTH, "0"),
            (ENV_MAX_DEPTH, "-1"),
            (ENV_MAX_DEPTH, "99999999999"),
            (ENV_MAX_DEPTH, "10001"),
            (ENV_MAX_DEPTH, "1.5"),
            (ENV_MODE, "kill"),
            (ENV_METRIC_NAMESPACE, "AWS/Lambda"),
            (ENV_METRIC_NAMESPACE, "bad;ns"),
        ] {
            let err = build(&[(ENV_FUNCTION_ID, "f"), (var, value)]).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&format!("{var}={value:?}")), "{msg}");
            assert_eq!(err.setting(), Some(var));
        }
    }

    #[test]
    fn code_overrides_win_and_are_validated() {
        let env = |k: &str| match k {
            ENV_MAX_DEPTH => Some("8".to_string()),
            ENV_FUNCTION_ID => Some("from-env".to_string()),
            _ => None,
        };
        let c = LoopGuardConfig::builder()
            .max_depth(4)
            .function_identity("from-code")
            .build_from_env_source(env)
            .unwrap();
        assert_eq!(c.max_depth(), 4);
        assert_eq!(c.function_identity(), "from-code");
        let err = LoopGuardConfig::builder()
            .function_identity("f")
            .max_depth(0)
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), Some("max_depth"));
        for bad in [" ", "a\0b", " padded"] {
            let err = LoopGuardConfig::builder()
                .function_identity(bad)
                .build()
                .unwrap_err();
            assert_eq!(err.setting(), Some("function_identity"), "{bad:?}");
        }
    }

    #[test]
    fn a_bad_variable_is_an_error_even_when_code_overrides_it() {
        for (var, value) in [
            (ENV_MAX_DEPTH, "abc"),
            (ENV_MODE, "kill"),
            (ENV_METRIC_NAMESPACE, " "),
            (ENV_TRUST_HTTP, "yes"),
            (ENV_FUNCTION_ID, "a\0b"),
        ] {
            let err = LoopGuardConfig::builder()
                .max_depth(4)
                .mode(Mode::Observe)
                .metric_namespace("Ns")
                .trust_http(false)
                .function_identity("f")
                .build_from_env_source(|k| (k == var).then(|| value.to_string()))
                .unwrap_err();
            assert_eq!(err.setting(), Some(var), "{value:?}");
        }
    }

    #[test]
    fn identities_follow_one_rule_from_env_and_code() {
        for bad in [" ", "a\0b", "x\n"] {
            let err = build(&[(ENV_FUNCTION_ID, bad)]).unwrap_err();
            assert_eq!(err.setting(), Some(ENV_FUNCTION_ID), "{bad:?}");
        }
    }

    #[test]
    fn errors_show_a_bounded_excerpt_of_huge_values() {
        let huge = "9".repeat(1 << 20);
        let err = build(&[(ENV_FUNCTION_ID, "f"), (ENV_MAX_DEPTH, &huge)]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.len() < 300, "{} bytes", msg.len());
        assert!(msg.contains("(1048576 bytes)"), "{msg}");
    }

    #[test]
    fn the_fallback_is_on_exactly_in_lambdas_sequential_mode() {
        let with = |pairs: &[(&str, &str)]| {
            let mut all = vec![(ENV_FUNCTION_ID, "f")];
            all.extend_from_slice(pairs);
            build(&all).unwrap().sequential_fallback()
        };
        assert!(!with(&[]), "not in Lambda");
        assert!(with(&[(ENV_RUNTIME_API, "127.0.0.1:9001")]));
        assert!(with(&[(ENV_RUNTIME_API, "x"), (ENV_MAX_CONCURRENCY, "1")]));
        assert!(!with(&[(ENV_RUNTIME_API, "x"), (ENV_MAX_CONCURRENCY, "8")]));
        assert!(!with(&[
            (ENV_RUNTIME_API, "x"),
            (ENV_MAX_CONCURRENCY, "many")
        ]));
        let forced = LoopGuardConfig::builder()
            .function_identity("f")
            .sequential_fallback(true)
            .build()
            .unwrap();
        assert!(forced.sequential_fallback());
    }

    #[test]
    fn trust_http_is_case_insensitive() {
        for (raw, want) in [("TRUE", true), ("True", true), (" false ", false)] {
            let c = build(&[(ENV_FUNCTION_ID, "f"), (ENV_TRUST_HTTP, raw)]).unwrap();
            assert_eq!(c.trust_http(), want, "{raw}");
        }
    }

    #[test]
    fn a_value_that_is_not_utf8_is_an_error_not_unset() {
        use std::os::unix::ffi::OsStrExt;
        // A variable only this test uses: no other test reads it.
        const VAR: &str = "LOOP_GUARD_TEST_NOT_UTF8";
        std::env::set_var(VAR, std::ffi::OsStr::from_bytes(b"ab\xff"));
        let err = crate::env::process(VAR).unwrap_err();
        assert_eq!(err.setting(), Some(VAR));
        assert!(err.to_string().contains("UTF-8"), "{err}");
        std::env::remove_var(VAR);
    }

    #[test]
    fn per_source_limits_from_env_and_code() {
        let q = "arn:aws:sqs:us-east-1:123456789012:requeue";
        let t = "arn:aws:sns:us-east-1:123456789012:fanout";
        let env = |k: &str| match k {
            ENV_FUNCTION_ID => Some("f".to_string()),
            ENV_SOURCE_MAX_DEPTH => Some(format!(" {q}=40 , {t}=3,{q}=41 ")),
            _ => None,
        };
        let c = LoopGuardConfig::builder()
            .build_from_env_source(env)
            .unwrap();
        assert_eq!(c.max_depth_for(Some(q)), 41, "a later entry wins");
        assert_eq!(c.max_depth_for(Some(t)), 3);
        assert_eq!(c.max_depth_for(Some("arn:aws:sqs:us-east-1:1:other")), 10);
        assert_eq!(c.max_depth_for(None), 10);
        let c = LoopGuardConfig::builder()
            .source_max_depth(q, 100)
            .build_from_env_source(env)
            .unwrap();
        assert_eq!(c.max_depth_for(Some(q)), 100, "code wins over env");
        assert_eq!(c.source_max_depths().count(), 2);
    }

    #[test]
    fn bad_per_source_limits_name_the_variable() {
        for raw in [
            "arn:aws:sqs:x",
            "arn:aws:sqs:x=0",
            "=5",
            "arn=abc",
            "arn=10001",
            "a=1,b",
            "arn==5",
        ] {
            let err = build(&[(ENV_FUNCTION_ID, "f"), (ENV_SOURCE_MAX_DEPTH, raw)]).unwrap_err();
            assert_eq!(err.setting(), Some(ENV_SOURCE_MAX_DEPTH), "{raw}");
            assert!(err.to_string().contains(raw), "{err}");
        }
        let err = LoopGuardConfig::builder()
            .function_identity("f")
            .source_max_depth("arn:q", 0)
            .build()
            .unwrap_err();
        assert_eq!(err.setting(), Some("source_max_depth"));
    }

    #[test]
    fn missing_identity_is_an_error_unless_allowed() {
        let err = build(&[]).unwrap_err();
        assert!(err.to_string().contains("LOOP_GUARD_FUNCTION_ID"), "{err}");
        assert!(build(&[(ENV_MODE, "allow")]).is_ok());
    }
}
