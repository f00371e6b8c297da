//! `.loop_guard()` on the AWS SDK client configuration builders.

use super::LoopGuardInterceptor;

/// Registers [`LoopGuardInterceptor`] on an AWS SDK client configuration
/// builder, in the style of the builders' own setters:
///
/// ```no_run
/// # #[cfg(feature = "sqs")]
/// # async fn f() {
/// use lambda_loop_guard::interceptor::LoopGuardSdkExt;
///
/// let sdk_config = aws_config::load_from_env().await;
/// let sqs = aws_sdk_sqs::Client::from_conf(
///     aws_sdk_sqs::config::Builder::from(&sdk_config).loop_guard().build(),
/// );
/// # }
/// ```
///
/// Implemented for the builders of the client features this build has
/// (`sqs`, `sns`, `lambda`, `dynamodb`, `eventbridge`, `s3`). For another
/// client, `.interceptor(LoopGuardInterceptor::new())` stamps the trace
/// header of its calls.
pub trait LoopGuardSdkExt: Sized {
    /// Registers [`LoopGuardInterceptor::new`]: the automatic carriers.
    fn loop_guard(self) -> Self {
        self.loop_guard_with(LoopGuardInterceptor::new())
    }

    /// Registers `interceptor` (one with opt-in carriers, or built with
    /// [`LoopGuardInterceptor::from_config`]).
    fn loop_guard_with(self, interceptor: LoopGuardInterceptor) -> Self;
}

macro_rules! sdk_config_ext {
    ($($feature:literal => $client:ident),* $(,)?) => {$(
        #[cfg(feature = $feature)]
        #[cfg_attr(docsrs, doc(cfg(feature = $feature)))]
        impl LoopGuardSdkExt for $client::config::Builder {
            fn loop_guard_with(self, interceptor: LoopGuardInterceptor) -> Self {
                self.interceptor(interceptor)
            }
        }
    )*};
}

sdk_config_ext!(
    "sqs" => aws_sdk_sqs,
    "sns" => aws_sdk_sns,
    "lambda" => aws_sdk_lambda,
    "dynamodb" => aws_sdk_dynamodb,
    "eventbridge" => aws_sdk_eventbridge,
    "s3" => aws_sdk_s3,
    "kinesis" => aws_sdk_kinesis,
    "stepfunctions" => aws_sdk_sfn,
);
