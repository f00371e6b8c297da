//! An AWS SDK interceptor that stamps the current chain on every outgoing call.
//!
//! Register [`LoopGuardInterceptor`] on each client built inside a guarded
//! function. Inside a guarded handler (a current [`Chain`]) it:
//!
//! * sets our `LoopGuard=` field in the `x-amzn-trace-id` header of every
//!   request, keeping every other field. If the header is absent (the SDK's
//!   own recursion-detection interceptor only sets it from `_X_AMZN_TRACE_ID`,
//!   which `lambda_runtime` does not set in concurrent mode) it starts from the
//!   invocation's incoming trace header. The header is set in
//!   `modify_before_transmit`: SigV4 does not sign it;
//! * adds the carriers of the source each call writes to, as its module
//!   under [`source`](crate::source) describes: the SQS/SNS message
//!   attribute ([`sqs`](crate::source::sqs), [`sns`](crate::source::sns)),
//!   the Lambda client context ([`invoke`](crate::source::invoke)) and, opt-in,
//!   the async payload key ([`stamp_async_payloads`]), the EventBridge detail
//!   key ([`stamp_eventbridge_detail`]), the DynamoDB item attribute
//!   ([`stamp_dynamodb_table`]) and S3 user metadata ([`stamp_s3_bucket`]).
//!
//! The opt-in carriers change user data (a payload key, an item attribute,
//! object metadata), which is why they are off until you name them.
//!
//! [`stamp_async_payloads`]: LoopGuardInterceptor::stamp_async_payloads
//! [`stamp_eventbridge_detail`]: LoopGuardInterceptor::stamp_eventbridge_detail
//! [`stamp_dynamodb_table`]: LoopGuardInterceptor::stamp_dynamodb_table
//! [`stamp_s3_bucket`]: LoopGuardInterceptor::stamp_s3_bucket
//!
//! Outside any chain it changes nothing, with one exception: while no
//! guarded invocation runs in the process, writes to opted-in DynamoDB
//! tables remove the stamp attribute, because an item keeps its attributes
//! across updates and an old stamp would otherwise be read again as if the
//! write continued that chain. (While one runs, such a write may come from
//! a task the chain did not reach, in concurrent mode: the stamp is kept,
//! which can make an unrelated later record look one chain deeper.) It never
//! fails a call: a stamp that cannot be written is skipped with a warning.
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(feature = "sqs")]
//! # async fn f() {
//! use lambda_loop_guard::interceptor::LoopGuardSdkExt;
//!
//! let sdk_config = aws_config::load_from_env().await;
//! let sqs = aws_sdk_sqs::Client::from_conf(
//!     aws_sdk_sqs::config::Builder::from(&sdk_config).loop_guard().build(),
//! );
//! // The same for every client feature (`sns`, `lambda`, `dynamodb`,
//! // `eventbridge`, `s3`); `loop_guard_with(interceptor)` registers one with
//! // opt-ins; `.loop_guard()` is `.interceptor(LoopGuardInterceptor::new())`.
//! # }
//! ```

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::client::interceptors::{dyn_dispatch_hint, Intercept};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Headers;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

use std::sync::Arc;

use crate::carrier::TraceField;
use crate::chain::Chain;
use crate::source::{clear_sdk_input, messages_sent, stamp_sdk_input, StampOptions};
use crate::trace_header::TRACE_ID_HEADER;

mod sdk_config;

pub use sdk_config::LoopGuardSdkExt;

/// Stamps the current [`Chain`] on outgoing AWS SDK calls. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct LoopGuardInterceptor {
    options: Arc<StampOptions>,
}

impl Default for LoopGuardInterceptor {
    /// [`LoopGuardInterceptor::new`].
    fn default() -> Self {
        LoopGuardInterceptor::new()
    }
}

impl LoopGuardInterceptor {
    /// A new interceptor with only the automatic carriers (trace header,
    /// SQS/SNS attributes, Lambda client context). One per client is fine;
    /// clones share their options.
    ///
    /// With feature `dynamodb` it writes the item attribute that
    /// `LOOP_GUARD_DYNAMODB_ATTRIBUTE` names (default `loop-guard`), read by
    /// the same rule as the layer's configuration; a bad value, which stops
    /// the layer from starting, leaves the default here, with a warning.
    pub fn new() -> Self {
        Self::from_env_source(&crate::env::process)
    }

    #[allow(unused_variables, unused_mut)]
    pub(crate) fn from_env_source(env: crate::env::Lookup<'_>) -> Self {
        let mut interceptor = LoopGuardInterceptor {
            options: Arc::default(),
        };
        #[cfg(feature = "dynamodb")]
        match crate::config::dynamodb_attribute_from(env) {
            Ok(Some(attribute)) => interceptor.options_mut().dynamodb.attribute = attribute,
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "loop guard interceptor keeps the default DynamoDB attribute")
            }
        }
        interceptor
    }

    /// A new interceptor that writes the carriers `config` names (the
    /// DynamoDB attribute), so that it matches the layer built from the same
    /// configuration.
    pub fn from_config(config: &crate::LoopGuardConfig) -> Self {
        #[allow(unused_mut)]
        let mut interceptor = Self::from_env_source(&|_| Ok(None));
        #[cfg(feature = "dynamodb")]
        {
            interceptor.options_mut().dynamodb.attribute = config.dynamodb_attribute().clone();
        }
        #[cfg(not(feature = "dynamodb"))]
        let _ = config;
        interceptor
    }

    #[cfg(any(
        feature = "lambda",
        feature = "eventbridge",
        feature = "dynamodb",
        feature = "s3",
        feature = "kinesis",
        feature = "stepfunctions"
    ))]
    fn options_mut(&mut self) -> &mut StampOptions {
        Arc::make_mut(&mut self.options)
    }

    /// Adds the `loop-guard` key to the JSON-object payload of every `Invoke`
    /// with `InvocationType::Event` (Lambda drops the client context of
    /// asynchronous invokes). The receiving function must remove it before
    /// its handler deserializes the payload: add
    /// [`AsyncPayloadLayer`](crate::AsyncPayloadLayer) to its runtime.
    /// Payloads that are not JSON objects keep the trace header carrier only.
    #[cfg(feature = "lambda")]
    #[cfg_attr(docsrs, doc(cfg(feature = "lambda")))]
    pub fn stamp_async_payloads(mut self) -> Self {
        self.options_mut().async_payload = Some(crate::carrier::JsonKey::default());
        self
    }

    /// Adds the `loop-guard` key to every `PutEvents` entry whose `Detail` is
    /// a JSON object. Rules that match on the detail see one more key.
    #[cfg(feature = "eventbridge")]
    #[cfg_attr(docsrs, doc(cfg(feature = "eventbridge")))]
    pub fn stamp_eventbridge_detail(mut self) -> Self {
        self.options_mut().eventbridge_detail = Some(crate::carrier::JsonKey::default());
        self
    }

    /// Stamps items written to `table` (a table name or ARN) with the
    /// `loop-guard` attribute, so that a function triggered by the table's
    /// stream can read the chain from `NewImage`. This stores one more
    /// attribute (about 30 bytes) in every item written. The attribute is
    /// `loop-guard` unless the configuration names another
    /// ([`from_config`](Self::from_config)).
    #[cfg(feature = "dynamodb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dynamodb")))]
    pub fn stamp_dynamodb_table(mut self, table: impl Into<String>) -> Self {
        self.options_mut().dynamodb.tables.push(table.into());
        self
    }

    /// Stamps objects written to `bucket` with the `loop-guard` user metadata
    /// key (`x-amz-meta-loop-guard`), which the layer reads with `HeadObject`.
    /// User metadata is limited to 2 KB per object; the stamp takes about 40
    /// bytes of it.
    #[cfg(feature = "s3")]
    #[cfg_attr(docsrs, doc(cfg(feature = "s3")))]
    pub fn stamp_s3_bucket(mut self, bucket: impl Into<String>) -> Self {
        self.options_mut().s3.buckets.push(bucket.into());
        self
    }

    /// Stamps the JSON-object `input` of Step Functions executions
    /// (`StartExecution`, `StartSyncExecution`) with the `loop-guard` key,
    /// which a Lambda task reads in its payload (the `traceHeader` is
    /// stamped either way, but reaches tasks only with X-Ray tracing on).
    /// The key stays in the execution's input: states that pick fields of
    /// it, and the task's own types, see it unless the task runs under
    /// [`AsyncPayloadLayer`](crate::AsyncPayloadLayer) ([`run`](crate::run)
    /// puts it there).
    #[cfg(feature = "stepfunctions")]
    #[cfg_attr(docsrs, doc(cfg(feature = "stepfunctions")))]
    pub fn stamp_stepfunctions_input(mut self) -> Self {
        self.options_mut().stepfunctions_input = Some(crate::carrier::JsonKey::default());
        self
    }

    /// Stamps records put to `stream` (a stream name or ARN) with the
    /// `loop-guard` key in their data, when the data is a JSON object (other
    /// data is sent as it is; the partition key is never touched), so that a
    /// function triggered by the stream can read the chain. The key (about
    /// 30 bytes) stays in the data consumers see.
    #[cfg(feature = "kinesis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "kinesis")))]
    pub fn stamp_kinesis_stream(mut self, stream: impl Into<String>) -> Self {
        self.options_mut().kinesis.streams.push(stream.into());
        self
    }
}

// The hint tells the SDK which two hooks this interceptor implements: it then
// skips the other hook points for it (each costs a dynamic call and a
// configuration lookup per SDK call), as the SDK's own interceptors do.
#[dyn_dispatch_hint]
impl Intercept for LoopGuardInterceptor {
    fn name(&self) -> &'static str {
        "LoopGuardInterceptor"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        Chain::with_current(|chain| match chain {
            Some(chain) => {
                // In a budgeted chain each message of this call gets its
                // share now; the header, stamped later, carries the same.
                let messages = if chain.is_budgeted() {
                    messages_sent(&self.options, context.input())
                } else {
                    0
                };
                if messages == 0 {
                    stamp_sdk_input(&self.options, context.input_mut(), chain);
                } else {
                    let call = chain.with_lineage_of_send(chain.lineage_for_send(messages));
                    cfg.interceptor_state()
                        .store_put(CallLineage(*call.lineage()));
                    stamp_sdk_input(&self.options, context.input_mut(), &call);
                }
            }
            // Only while no invocation runs: a write from a task the chain
            // did not reach must not wipe a stamp that belongs to one.
            None if crate::chain::invocations_running() == 0 => {
                clear_sdk_input(&self.options, context.input_mut())
            }
            None => {}
        });
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        Chain::with_current(|chain| {
            if let Some(chain) = chain {
                let lineage = cfg
                    .load::<CallLineage>()
                    .map_or(*chain.lineage(), |call| call.0);
                stamp_trace_header(context.request_mut().headers_mut(), chain, &lineage);
            }
        });
        Ok(())
    }
}

/// The lineage the messages of one call carry (with their share of a
/// budgeted chain), from the serialization hook to the transmit hook.
#[derive(Debug, Clone, Copy)]
struct CallLineage(crate::lineage::Lineage);

impl Storable for CallLineage {
    type Storer = StoreReplace<Self>;
}

/// Sets our field in `x-amzn-trace-id`, starting from the header already on
/// the request, else from the invocation's incoming trace header.
fn stamp_trace_header(headers: &mut Headers, chain: &Chain, lineage: &crate::lineage::Lineage) {
    // A header name the SDK takes as is, not parsed again on every call.
    const NAME: http::HeaderName = http::HeaderName::from_static(TRACE_ID_HEADER);
    let existing = headers.get_all_bytes_by_name(&NAME).next();
    let stamped = match stamped_memo(existing, chain.incoming_trace_header(), lineage) {
        Ok(stamped) => stamped,
        Err(error) => {
            tracing::warn!(%error, "x-amzn-trace-id left as is: cannot add the loop guard field");
            return;
        }
    };
    if let Err(error) = headers.try_insert(NAME, stamped) {
        tracing::warn!(%error, "x-amzn-trace-id left as is: the stamped value is not a valid header");
    }
}

/// The header a call carries, stamped with `lineage`: the one `existing` on
/// the request when it is text, else the invocation's `incoming` one.
/// Without a chain budget the calls of one invocation start from one header
/// with one lineage: the last header stamped on this thread is kept, and a
/// repeat (byte for byte) is a copy, without the header's text checked
/// again. A miss (each send of a budgeted chain carries its own share)
/// costs what stamping does, the kept buffers reused.
fn stamped_memo(
    existing: Option<&[u8]>,
    incoming: Option<&str>,
    lineage: &crate::lineage::Lineage,
) -> Result<String, crate::carrier::StampError> {
    struct Stamped {
        kept: bool,
        source: String,
        lineage: crate::lineage::Lineage,
        stamped: String,
    }
    thread_local! {
        static LAST: std::cell::RefCell<Stamped> = const {
            std::cell::RefCell::new(Stamped {
                kept: false,
                source: String::new(),
                lineage: crate::lineage::Lineage::new(),
                stamped: String::new(),
            })
        };
    }
    let stamp = |memo: Option<&mut Stamped>| {
        let source = existing
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .or(incoming)
            .unwrap_or_default();
        let stamped = TraceField.stamped(source, lineage)?;
        if let Some(memo) = memo {
            memo.kept = true;
            memo.source.clear();
            memo.source.push_str(source);
            memo.lineage = *lineage;
            memo.stamped.clear();
            memo.stamped.push_str(&stamped);
        }
        Ok(stamped)
    };
    // Bytes that are not text never equal the kept source, which is.
    let arrived = existing.unwrap_or(incoming.unwrap_or_default().as_bytes());
    LAST.try_with(|last| {
        let mut memo = last.borrow_mut();
        if memo.kept && memo.lineage == *lineage && memo.source.as_bytes() == arrived {
            Ok(memo.stamped.clone())
        } else {
            stamp(Some(&mut memo))
        }
    })
    // The thread is ending: stamp without the memo.
    .unwrap_or_else(|_| stamp(None))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lineage::FunctionId;
    use aws_smithy_runtime_api::client::interceptors::context::{Input, InterceptorContext};
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponentsBuilder;
    use aws_smithy_types::body::SdkBody;

    use crate::lineage::Lineage;

    pub(crate) fn chain(runs: u16, incoming: Option<&str>) -> Chain {
        let me = FunctionId::from_identity("f");
        let lineage = (0..runs).fold(Lineage::new(), |l, _| l.record_run(me));
        Chain::new(lineage, incoming.map(std::sync::Arc::from))
    }

    /// Runs the serialization hook on `input` with `chain` current (or none)
    /// and returns the input.
    pub(crate) async fn run_serialization_hook<T: std::fmt::Debug + Send + Sync + 'static>(
        input: T,
        chain: Option<Chain>,
    ) -> T {
        run_serialization_hook_with(LoopGuardInterceptor::new(), input, chain).await
    }

    /// [`run_serialization_hook`] with a configured interceptor.
    pub(crate) async fn run_serialization_hook_with<T: std::fmt::Debug + Send + Sync + 'static>(
        interceptor: LoopGuardInterceptor,
        input: T,
        chain: Option<Chain>,
    ) -> T {
        let rc = RuntimeComponentsBuilder::for_tests().build().unwrap();
        let mut context = InterceptorContext::new(Input::erase(input));
        let mut hook = || {
            let mut ctx = (&mut context).into();
            interceptor
                .modify_before_serialization(&mut ctx, &rc, &mut ConfigBag::base())
                .unwrap();
        };
        match chain {
            Some(chain) => chain.scope(async { hook() }).await,
            None => hook(),
        };
        context.take_input().unwrap().downcast::<T>().unwrap()
    }

    async fn transmit(header: Option<&str>, chain: Option<Chain>) -> Option<String> {
        let rc = RuntimeComponentsBuilder::for_tests().build().unwrap();
        let mut request = http::Request::builder();
        if let Some(h) = header {
            request = request.header(TRACE_ID_HEADER, h);
        }
        let request = request.body(SdkBody::empty()).unwrap().try_into().unwrap();
        let mut context = InterceptorContext::new(Input::doesnt_matter());
        context.enter_serialization_phase();
        context.set_request(request);
        let _ = context.take_input();
        context.enter_before_transmit_phase();
        let hook = |context: &mut InterceptorContext| {
            let mut ctx = context.into();
            LoopGuardInterceptor::new()
                .modify_before_transmit(&mut ctx, &rc, &mut ConfigBag::base())
                .unwrap();
        };
        match chain {
            Some(chain) => chain.scope(async { hook(&mut context) }).await,
            None => hook(&mut context),
        }
        let headers = context.request().unwrap().headers();
        assert!(headers.get_all(TRACE_ID_HEADER).count() <= 1);
        headers.get(TRACE_ID_HEADER).map(str::to_owned)
    }

    #[tokio::test]
    async fn existing_header_keeps_every_field_and_gains_ours_once() {
        let sdk_set = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5";
        let c = chain(3, Some("Root=1-00000000-000000000000000000000000"));
        let out = transmit(Some(sdk_set), Some(c.clone())).await.unwrap();
        assert_eq!(out, format!("{sdk_set};LoopGuard={}", c.lineage()));
        // Retried attempts re-run the hook: still exactly one field.
        let again = transmit(Some(&out), Some(c.clone())).await.unwrap();
        assert_eq!(again, out);
    }

    #[tokio::test]
    async fn absent_header_starts_from_the_incoming_trace_header() {
        let incoming = "Root=1-6740a1b2-0123456789abcdef01234567;Parent=1111111111111111;Sampled=1;Lineage=1:fe460cdd:0;LoopGuard=v1.1.00000001-1";
        let c = chain(2, Some(incoming));
        let out = transmit(None, Some(c.clone())).await.unwrap();
        assert_eq!(
            out,
            format!(
                "Root=1-6740a1b2-0123456789abcdef01234567;Parent=1111111111111111;Sampled=1;Lineage=1:fe460cdd:0;LoopGuard={}",
                c.lineage()
            )
        );
        let out = transmit(None, Some(chain(2, None))).await.unwrap();
        assert_eq!(out, format!("LoopGuard={}", chain(2, None).lineage()));
    }

    /// In a budgeted chain one call's messages each get one share, and the
    /// header of that call carries the same: both hooks see one ConfigBag.
    #[cfg(feature = "sqs")]
    #[tokio::test]
    async fn a_budgeted_call_carries_one_share_in_every_carrier() {
        use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput;
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

        let chain_id = crate::lineage::ChainId::from_u64(0xabc).unwrap();
        let me = FunctionId::from_identity("f");
        // 17 for the tree; this run took one: 16 to share out.
        let c = Chain::new(
            Lineage::new().with_budget(chain_id, 17).record_run(me),
            None,
        );
        let entries = (0..4).map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .message_body("hello")
                .build()
                .unwrap()
        });
        let input = SendMessageBatchInput::builder()
            .queue_url("https://sqs.us-east-1.amazonaws.com/1/q")
            .set_entries(Some(entries.collect()))
            .build()
            .unwrap();
        let rc = RuntimeComponentsBuilder::for_tests().build().unwrap();
        let mut cfg = ConfigBag::base();
        let mut context = InterceptorContext::new(Input::erase(input));
        let interceptor = LoopGuardInterceptor::new();
        c.clone().sync_scope(|| {
            let mut ctx = (&mut context).into();
            interceptor
                .modify_before_serialization(&mut ctx, &rc, &mut cfg)
                .unwrap();
            let request = http::Request::builder()
                .body(SdkBody::empty())
                .unwrap()
                .try_into()
                .unwrap();
            context.enter_serialization_phase();
            let input = context.take_input();
            context.set_request(request);
            context.enter_before_transmit_phase();
            let mut ctx = (&mut context).into();
            interceptor
                .modify_before_transmit(&mut ctx, &rc, &mut cfg)
                .unwrap();
            let input = input.unwrap().downcast::<SendMessageBatchInput>().unwrap();
            for entry in input.entries.unwrap() {
                let value = entry.message_attributes.unwrap()["loop-guard"]
                    .string_value
                    .clone()
                    .unwrap();
                let lineage = Lineage::decode(&value).unwrap();
                // Undeclared: half of 16, split among the 4 messages.
                assert_eq!(
                    (lineage.chain(), lineage.budget()),
                    (Some(chain_id), Some(2))
                );
            }
        });
        let header = context
            .request()
            .unwrap()
            .headers()
            .get(TRACE_ID_HEADER)
            .unwrap();
        let lineage = crate::trace_header::TraceHeader::parse(header)
            .unwrap()
            .lineage()
            .unwrap();
        assert_eq!(lineage.budget(), Some(2));
        assert_eq!(c.budget_left(), Some(8));
    }

    #[tokio::test]
    async fn outside_a_guarded_handler_nothing_changes() {
        assert_eq!(transmit(None, None).await, None);
        assert_eq!(
            transmit(Some("Root=1-a-b"), None).await.as_deref(),
            Some("Root=1-a-b")
        );
    }

    #[tokio::test]
    async fn unusable_headers_are_left_alone_without_failing_the_call() {
        let huge = format!("Root=1-a-b;Pad={}", "x".repeat(9000));
        assert_eq!(
            transmit(Some(&huge), Some(chain(1, None))).await,
            Some(huge)
        );
        // Non-ASCII incoming header: the stamped value is not a valid header.
        let odd = chain(1, Some("Root=1-a-b;Note=caf\u{e9}"));
        let out = transmit(None, Some(odd)).await;
        assert!(out.is_none() || out.unwrap().contains("LoopGuard="));
    }

    /// The stamped-header memo answers exactly what stamping answers, for
    /// any sequence of headers and lineages (repeats and alternations).
    #[test]
    fn the_stamped_header_memo_never_answers_for_another_call() {
        let me = FunctionId::from_identity("f");
        let headers = [
            "Root=1-a-b",
            "Root=1-a-c",
            "Root=1-a-b;LoopGuard=v1.1.00000009-1",
            "",
        ];
        let lineages = [
            Lineage::new().record_run(me),
            Lineage::new().record_run(me).record_run(me),
        ];
        let not_text: &[u8] = b"Root=1-a-\xff";
        for step in 0..96usize {
            let header = headers[step % 3 + (step / 16) % 2];
            let lineage = lineages[(step / 2) % 2];
            // On the request, or the invocation's (the request has none,
            // or one that is not text).
            let (existing, incoming) = match step % 5 {
                0 => (None, Some(header)),
                1 => (Some(not_text), Some(header)),
                2 => (None, None),
                _ => (Some(header.as_bytes()), Some(headers[(step + 1) % 4])),
            };
            let expected = match (existing, incoming) {
                (Some(bytes), _) if bytes != not_text => header,
                (_, Some(incoming)) => incoming,
                _ => "",
            };
            assert_eq!(
                stamped_memo(existing, incoming, &lineage).ok(),
                TraceField.stamped(expected, &lineage).ok(),
                "{existing:?} {incoming:?} {lineage:?}"
            );
        }
        // A header that cannot be stamped is refused, and not kept: the
        // header before it is still answered for, and itself again too.
        let huge = format!("Root=1-a-b;Pad={}", "x".repeat(9000));
        for _ in 0..2 {
            for header in ["Root=1-a-b", huge.as_str()] {
                assert_eq!(
                    stamped_memo(Some(header.as_bytes()), None, &lineages[0]).ok(),
                    TraceField.stamped(header, &lineages[0]).ok(),
                );
            }
        }
        assert!(stamped_memo(None, Some(&huge), &lineages[0]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn header_stamping_never_panics_or_fails(incoming in "\\PC{0,300}", existing in proptest::option::of("[ -~]{0,300}")) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let out = rt.block_on(transmit(existing.as_deref(), Some(chain(1, Some(&incoming)))));
            // Either the header was stamped (exactly once) or left as it was.
            match out {
                Some(h) if h.contains("LoopGuard=") => proptest::prop_assert_eq!(h.matches("LoopGuard=").count(), 1),
                other => proptest::prop_assert_eq!(other, existing),
            }
        }
    }

    #[tokio::test]
    async fn unknown_inputs_are_untouched() {
        #[derive(Debug, PartialEq)]
        struct SomeOtherInput(u8);
        assert_eq!(
            run_serialization_hook(SomeOtherInput(7), Some(chain(1, None))).await,
            SomeOtherInput(7)
        );
    }
}
