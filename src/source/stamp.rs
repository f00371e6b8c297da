//! The stamp side of every source, as the SDK interceptor calls it: one
//! dispatch over the typed operation inputs, and the opt-in settings.

use aws_smithy_runtime_api::client::interceptors::context::Input;

use crate::chain::Chain;

/// The opt-in carriers of the sources that change user data. Cheap to
/// clone (the interceptor shares it).
#[derive(Debug, Default, Clone)]
pub(crate) struct StampOptions {
    #[cfg(feature = "lambda")]
    pub(crate) async_payload: Option<crate::carrier::JsonKey>,
    #[cfg(feature = "eventbridge")]
    pub(crate) eventbridge_detail: Option<crate::carrier::JsonKey>,
    #[cfg(feature = "dynamodb")]
    pub(crate) dynamodb: super::dynamodb::stamp::DynamoDbStamping,
    #[cfg(feature = "s3")]
    pub(crate) s3: super::s3::stamp::S3Stamping,
    #[cfg(feature = "kinesis")]
    pub(crate) kinesis: super::kinesis::stamp::KinesisStamping,
    #[cfg(feature = "stepfunctions")]
    pub(crate) stepfunctions_input: Option<crate::carrier::JsonKey>,
}

/// Adds the operation-specific carriers of `chain` (the running chain, its
/// lineage the one this call's messages carry) to a typed operation input.
/// Returns whether the input was one this build knows.
#[allow(unused_variables)]
pub(crate) fn stamp_sdk_input(options: &StampOptions, input: &mut Input, chain: &Chain) -> bool {
    let lineage = chain.lineage();
    #[cfg(feature = "sqs")]
    if super::sqs::stamp::stamp(input, lineage) {
        return true;
    }
    #[cfg(feature = "sns")]
    if super::sns::stamp::stamp(input, lineage) {
        return true;
    }
    #[cfg(feature = "lambda")]
    if super::invoke::stamp::stamp(input, options, lineage) {
        return true;
    }
    #[cfg(feature = "eventbridge")]
    if super::eventbridge::stamp::stamp(input, options, chain) {
        return true;
    }
    #[cfg(feature = "dynamodb")]
    if super::dynamodb::stamp::stamp(
        input,
        options,
        super::dynamodb::stamp::Action::Stamp(lineage),
    ) {
        return true;
    }
    #[cfg(feature = "s3")]
    if super::s3::stamp::stamp(input, options, lineage) {
        return true;
    }
    #[cfg(feature = "kinesis")]
    if super::kinesis::stamp::stamp(input, options, lineage) {
        return true;
    }
    #[cfg(feature = "stepfunctions")]
    if super::stepfunctions::stamp::stamp(input, options, chain) {
        return true;
    }
    false
}

/// Outside any chain, while no guarded invocation runs: removes stamps that
/// would outlive their chain (DynamoDB items of opted-in tables keep
/// attributes across updates).
#[allow(unused_variables)]
pub(crate) fn clear_sdk_input(options: &StampOptions, input: &mut Input) {
    #[cfg(feature = "dynamodb")]
    super::dynamodb::stamp::stamp(input, options, super::dynamodb::stamp::Action::Clear);
}

/// How many messages a call sends that can start a run of a guarded
/// function (each one gets a share of a budgeted chain): the messages of
/// SQS, SNS, Lambda and EventBridge calls, Step Functions executions, and
/// the writes to opted-in DynamoDB tables, S3 buckets and Kinesis streams. Every write request of a DynamoDB batch
/// or transaction counts (an over-count only makes shares smaller). Other
/// calls send none.
#[allow(unused_variables)]
pub(crate) fn messages_sent(options: &StampOptions, input: &Input) -> u32 {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    #[cfg(feature = "sqs")]
    {
        use aws_sdk_sqs::operation::{send_message, send_message_batch};
        if input
            .downcast_ref::<send_message::SendMessageInput>()
            .is_some()
        {
            return 1;
        }
        if let Some(batch) = input.downcast_ref::<send_message_batch::SendMessageBatchInput>() {
            return count(batch.entries.as_ref().map_or(0, Vec::len));
        }
    }
    #[cfg(feature = "sns")]
    {
        use aws_sdk_sns::operation::{publish, publish_batch};
        if input.downcast_ref::<publish::PublishInput>().is_some() {
            return 1;
        }
        if let Some(batch) = input.downcast_ref::<publish_batch::PublishBatchInput>() {
            return count(
                batch
                    .publish_batch_request_entries
                    .as_ref()
                    .map_or(0, Vec::len),
            );
        }
    }
    #[cfg(feature = "lambda")]
    {
        use aws_sdk_lambda::operation::{invoke, invoke_with_response_stream};
        if input.downcast_ref::<invoke::InvokeInput>().is_some()
            || input
                .downcast_ref::<invoke_with_response_stream::InvokeWithResponseStreamInput>()
                .is_some()
            || invoke_async(input)
        {
            return 1;
        }
    }
    #[cfg(feature = "eventbridge")]
    if let Some(put) =
        input.downcast_ref::<aws_sdk_eventbridge::operation::put_events::PutEventsInput>()
    {
        return count(put.entries.as_ref().map_or(0, Vec::len));
    }
    #[cfg(feature = "dynamodb")]
    if let Some(n) = super::dynamodb::stamp::writes(options, input) {
        return n;
    }
    #[cfg(feature = "s3")]
    if let Some(n) = super::s3::stamp::writes(options, input) {
        return n;
    }
    #[cfg(feature = "kinesis")]
    if let Some(n) = super::kinesis::stamp::records(options, input) {
        return n;
    }
    #[cfg(feature = "stepfunctions")]
    if super::stepfunctions::stamp::starts_execution(input) {
        return 1;
    }
    0
}

/// Whether `input` is Lambda's deprecated `InvokeAsync`, which still starts
/// a run (with the trace header as its only carrier).
#[cfg(feature = "lambda")]
#[allow(deprecated)]
fn invoke_async(input: &Input) -> bool {
    input
        .downcast_ref::<aws_sdk_lambda::operation::invoke_async::InvokeAsyncInput>()
        .is_some()
}
