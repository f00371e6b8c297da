//! What the SDK's own types cost for the two stamps an interceptor that
//! writes both SQS carriers makes, with their values ready: the `loop-guard`
//! message attribute inserted into a `SendMessage` input before
//! serialization, `x-amzn-trace-id` replaced on the request before transmit.
//! The floor under the guard's interceptor, whoever writes the stamps; for
//! the benchmarks and the instruction probe.

#![allow(dead_code)]

use aws_sdk_sqs::operation::send_message::SendMessageInput;
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextMut, BeforeTransmitInterceptorContextMut, Input,
};
use aws_smithy_runtime_api::client::interceptors::{dyn_dispatch_hint, Intercept};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Request;
use aws_smithy_types::config_bag::ConfigBag;

/// The two stamps' values, ready.
#[derive(Debug, Clone)]
pub struct Stamps {
    pub attribute: MessageAttributeValue,
    pub header: String,
}

impl Stamps {
    /// `lineage` in the attribute, and after `header` in the trace header.
    pub fn new(header: &str, lineage: &str) -> Stamps {
        Stamps {
            attribute: MessageAttributeValue::builder()
                .data_type("String")
                .string_value(lineage)
                .build()
                .expect("a String attribute"),
            header: format!("{header};LoopGuard={lineage}"),
        }
    }

    /// The attribute, inserted into a `SendMessage` input.
    pub fn stamp_input(&self, input: &mut Input) {
        if let Some(send) = input.downcast_mut::<SendMessageInput>() {
            send.message_attributes
                .get_or_insert_with(Default::default)
                .insert("loop-guard".to_owned(), self.attribute.clone());
        }
    }

    /// The trace header, replacing the request's.
    pub fn stamp_request(&self, request: &mut Request) {
        const NAME: http::HeaderName = http::HeaderName::from_static("x-amzn-trace-id");
        request
            .headers_mut()
            .try_insert(NAME, self.header.clone())
            .expect("a valid header");
    }
}

/// [`Stamps`] as an interceptor with the guard's two hooks (and the same
/// dispatch hint): everything an interceptor that stamps both carriers
/// causes, at the least.
#[derive(Debug)]
pub struct FloorInterceptor(pub Stamps);

#[dyn_dispatch_hint]
impl Intercept for FloorInterceptor {
    fn name(&self) -> &'static str {
        "FloorInterceptor"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.stamp_input(context.input_mut());
        Ok(())
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.stamp_request(context.request_mut());
        Ok(())
    }
}
