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
}

/// Adds the operation-specific carriers of the running `chain` to a typed
/// operation input. Returns whether the input was one this build knows.
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
