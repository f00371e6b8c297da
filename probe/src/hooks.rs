//! The interceptor's own work on one `SendMessage`: both of its hooks on an
//! input and a request, inside a chain (`hooks_guarded`), against the same
//! contexts built and dropped without it (`hooks_bare`), and the SDK's own
//! cost of the two stamps it writes (`hooks_sdk_floor`).

use std::hint::black_box;
use std::sync::Arc;

use aws_sdk_sqs::operation::send_message::SendMessageInput;
use aws_smithy_runtime_api::client::interceptors::context::{Input, InterceptorContext};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use lambda_loop_guard::chain::Chain;
use lambda_loop_guard::{FunctionId, Lineage, LoopGuardInterceptor};

use crate::sdk_floor::Stamps;

pub struct Hooks {
    components: RuntimeComponents,
    interceptor: LoopGuardInterceptor,
    chain: Chain,
    input: SendMessageInput,
    // The request's trace header, one call after the other in turn.
    headers: Vec<String>,
    next: std::cell::Cell<usize>,
}

impl Hooks {
    pub fn new(header: &'static str) -> Hooks {
        Hooks::with_headers(header, vec![header.to_owned()])
    }

    /// Calls whose requests carry headers that differ from one call to the
    /// next (a `Parent` of their own), as long as `header`.
    pub fn varying(header: &'static str) -> Hooks {
        let parent = |p: &str| header.replace("Parent=53995c3f42cd8ad8", p);
        let headers = vec![parent("Parent=0000000000000001"), parent("Parent=0000000000000002")];
        assert!(
            headers[0] != headers[1] && headers[0].len() == header.len(),
            "the header's Parent was not replaced: the case would measure repeats"
        );
        Hooks::with_headers(header, headers)
    }

    fn with_headers(header: &'static str, headers: Vec<String>) -> Hooks {
        Hooks {
            components: RuntimeComponentsBuilder::for_tests().build().unwrap(),
            interceptor: LoopGuardInterceptor::new(),
            chain: Chain::new(
                Lineage::new().record_run(FunctionId::from_identity("probe")),
                Some(Arc::from(header)),
            ),
            input: SendMessageInput::builder()
                .queue_url("https://sqs.us-east-1.amazonaws.com/000000000000/q")
                .message_body("hello")
                .build()
                .unwrap(),
            headers,
            next: std::cell::Cell::new(0),
        }
    }

    fn header(&self) -> &str {
        let at = self.next.get();
        self.next.set((at + 1) % self.headers.len());
        &self.headers[at]
    }

    /// One `SendMessage`'s contexts built, taken through both hook points
    /// as `with` says, and dropped.
    pub fn run(&self, with: With<'_>) {
        let mut cfg = ConfigBag::base();
        let mut context = InterceptorContext::new(Input::erase(self.input.clone()));
        let request = http::Request::builder()
            .header("x-amzn-trace-id", self.header())
            .body(SdkBody::empty())
            .unwrap()
            .try_into()
            .unwrap();
        // Every variant runs in a chain (a handler's task-local holds one):
        // they differ only at the two hook points.
        self.chain.clone().sync_scope(|| {
            match with {
                With::Nothing => {}
                With::Interceptor => {
                    let mut ctx = (&mut context).into();
                    self.interceptor
                        .modify_before_serialization(&mut ctx, &self.components, &mut cfg)
                        .unwrap();
                }
                With::SdkFloor(stamps) => {
                    if let Some(input) = context.input_mut() {
                        stamps.stamp_input(input);
                    }
                }
            }
            let input = context.take_input();
            context.enter_serialization_phase();
            context.set_request(request);
            context.enter_before_transmit_phase();
            match with {
                With::Nothing => {}
                With::Interceptor => {
                    let mut ctx = (&mut context).into();
                    self.interceptor
                        .modify_before_transmit(&mut ctx, &self.components, &mut cfg)
                        .unwrap();
                }
                With::SdkFloor(stamps) => {
                    if let Some(request) = context.request_mut() {
                        stamps.stamp_request(request);
                    }
                }
            }
            black_box(input);
        });
        black_box(context);
    }
}

/// What happens at the two hook points.
#[derive(Clone, Copy)]
pub enum With<'a> {
    /// Nothing: the contexts alone.
    Nothing,
    /// The guard's interceptor.
    Interceptor,
    /// The two stamps written with their values ready
    /// (`tests/support/sdk_floor.rs`): the SDK's own cost of them.
    SdkFloor(&'a Stamps),
}
