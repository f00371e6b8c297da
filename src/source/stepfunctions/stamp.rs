//! Step Functions: our field in `StartExecution` / `StartSyncExecution`
//! `traceHeader` and, opt-in, the `loop-guard` key in a JSON-object `input`.

use aws_sdk_sfn::operation::start_execution::StartExecutionInput;
use aws_sdk_sfn::operation::start_sync_execution::StartSyncExecutionInput;
use aws_smithy_runtime_api::client::interceptors::context::Input;

use crate::carrier::trace::stamped_call_header;
use crate::carrier::JsonKey;
use crate::chain::Chain;
use crate::source::StampOptions;

/// Step Functions refuses a `traceHeader` longer than this.
const MAX_TRACE_HEADER_CHARS: usize = 256;
/// Step Functions refuses an execution `input` larger than this (bytes,
/// UTF-8).
const MAX_INPUT_BYTES: usize = 256 * 1024;

pub(crate) fn stamp(input: &mut Input, options: &StampOptions, chain: &Chain) -> bool {
    let (trace_header, execution_input) =
        if let Some(start) = input.downcast_mut::<StartExecutionInput>() {
            (&mut start.trace_header, &mut start.input)
        } else if let Some(start) = input.downcast_mut::<StartSyncExecutionInput>() {
            (&mut start.trace_header, &mut start.input)
        } else {
            return false;
        };
    if let Some(header) = stamped_call_header(
        trace_header.as_deref(),
        chain.incoming_trace_header(),
        chain.lineage(),
        MAX_TRACE_HEADER_CHARS,
        "Step Functions traceHeader",
    ) {
        *trace_header = Some(header);
    }
    if let (Some(key), Some(text)) = (&options.stepfunctions_input, execution_input.as_mut()) {
        stamp_input(text, key, chain);
    }
    true
}

/// Whether `input` starts an execution (one message sent).
pub(crate) fn starts_execution(input: &Input) -> bool {
    input.downcast_ref::<StartExecutionInput>().is_some()
        || input.downcast_ref::<StartSyncExecutionInput>().is_some()
}

fn stamp_input(text: &mut String, key: &JsonKey, chain: &Chain) {
    if let Some(stamped) = key.stamped_payload(
        text,
        chain.lineage(),
        MAX_INPUT_BYTES,
        "Step Functions input",
    ) {
        *text = stamped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interceptor::tests::{chain, run_serialization_hook_with};
    use crate::interceptor::LoopGuardInterceptor;
    use serde_json::Value;

    #[tokio::test]
    async fn the_trace_header_always_and_the_input_key_opted_in() {
        let c = chain(2, Some("Root=1-in-1;Sampled=1"));
        let field = format!("LoopGuard={}", c.lineage());
        let start = StartExecutionInput::builder()
            .state_machine_arn("arn:aws:states:us-east-1:1:stateMachine:loop")
            .input(r#"{"hop":1}"#)
            .build()
            .unwrap();
        let plain = run_serialization_hook_with(
            LoopGuardInterceptor::new(),
            start.clone(),
            Some(c.clone()),
        )
        .await;
        assert_eq!(
            plain.trace_header.as_deref(),
            Some(format!("Root=1-in-1;Sampled=1;{field}").as_str())
        );
        assert_eq!(
            plain.input.as_deref(),
            Some(r#"{"hop":1}"#),
            "input is opt-in"
        );

        let opted = LoopGuardInterceptor::new().stamp_stepfunctions_input();
        let out = run_serialization_hook_with(opted.clone(), start, Some(c.clone())).await;
        let input: Value = serde_json::from_str(out.input.as_deref().unwrap()).unwrap();
        assert_eq!(input["hop"], 1);
        assert_eq!(input["loop-guard"], c.lineage().to_string());

        let sync = StartSyncExecutionInput::builder()
            .state_machine_arn("arn:aws:states:us-east-1:1:stateMachine:express")
            .input("[1]")
            .trace_header("Root=1-own-1")
            .build()
            .unwrap();
        let out = run_serialization_hook_with(opted, sync, Some(c.clone())).await;
        assert_eq!(
            out.trace_header.as_deref(),
            Some(format!("Root=1-own-1;{field}").as_str())
        );
        assert_eq!(out.input.as_deref(), Some("[1]"), "not an object");
    }

    #[tokio::test]
    async fn no_header_is_invented_and_one_over_256_characters_is_left_alone() {
        let start = StartExecutionInput::builder()
            .state_machine_arn("arn:aws:states:us-east-1:1:stateMachine:loop")
            .build()
            .unwrap();
        let out =
            run_serialization_hook_with(LoopGuardInterceptor::new(), start, Some(chain(1, None)))
                .await;
        assert_eq!(out.trace_header, None);

        let long = format!("Root=1-a-b;Pad={}", "x".repeat(230));
        let start = StartExecutionInput::builder()
            .state_machine_arn("arn:aws:states:us-east-1:1:stateMachine:loop")
            .trace_header(&long)
            .build()
            .unwrap();
        let out =
            run_serialization_hook_with(LoopGuardInterceptor::new(), start, Some(chain(1, None)))
                .await;
        assert_eq!(out.trace_header.as_deref(), Some(long.as_str()));
    }
}
