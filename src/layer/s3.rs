//! The stage that reads each unit's S3 object metadata with `HeadObject`
//! before deciding.

use std::future::Future;
use std::pin::Pin;

use lambda_runtime::LambdaEvent;

use super::inspect::{inspect, Verdict};
use super::layer::LoopGuardLayer;
use super::shared::Shared;
use super::staged::{staged_service, Stage, StagedGuard, StagedLayer};
use crate::source::s3::{look_up_lineages, S3Notified, WithS3Lineages};

impl LoopGuardLayer {
    /// Guards a handler of S3 notifications, reading the lineage the
    /// interceptor stamped in each object's user metadata
    /// ([`stamp_s3_bucket`](crate::LoopGuardInterceptor::stamp_s3_bucket))
    /// with one `HeadObject` per object created, made with `client`: for
    /// `S3Event`, and for `SqsEvent` and `SnsEvent` whose records are S3
    /// notifications (S3 -> SQS, S3 -> SNS -> SQS, S3 -> EventBridge ->
    /// SQS, S3 -> SNS); see [`S3Notified`](crate::source::s3::S3Notified).
    /// Their other carriers are read as by the plain guard.
    ///
    /// Cost: one S3 request per object (a notification names one), up to 8
    /// at a time, typically 10 to 30 ms in-region, billed as a GET-class
    /// request; none for records that are not S3 notifications. A record
    /// whose object is already gone (or cannot be read) is logged and read
    /// without its metadata: the handler still gets it.
    #[must_use]
    pub fn with_s3_metadata(self, client: aws_sdk_s3::Client) -> S3MetadataLayer {
        StagedLayer::new(self.shared, S3Metadata { client })
    }
}

/// The stage of [`LoopGuardLayer::with_s3_metadata`]: the S3 client its
/// `HeadObject`s use.
#[derive(Debug, Clone)]
pub struct S3Metadata {
    client: aws_sdk_s3::Client,
}

/// [`LoopGuardLayer::with_s3_metadata`]: applies [`S3MetadataGuard`].
pub type S3MetadataLayer = StagedLayer<S3Metadata>;

/// A [`LoopGuard`](crate::LoopGuard) for S3 notifications that looks up
/// each object's metadata first. Built by [`LoopGuardLayer::with_s3_metadata`].
pub type S3MetadataGuard<S> = StagedGuard<S, S3Metadata>;

/// The boxed future of [`S3MetadataGuard`] (it awaits S3 before the handler).
pub type S3ResponseFuture<R, E> = super::StagedFuture<R, E>;

impl<T: S3Notified + Send + Sync + 'static> Stage<T> for S3Metadata {
    fn verdict<'e>(
        &'e self,
        shared: &'e Shared,
        event: &'e LambdaEvent<T>,
        reports_failures: bool,
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + 'e>> {
        Box::pin(async move {
            let lineages = look_up_lineages(&self.client, event.payload.created_objects()).await;
            let view = WithS3Lineages {
                event: &event.payload,
                lineages: &lineages,
            };
            inspect(shared, &view, &event.context, reports_failures)
        })
    }
}

staged_service!(S3Metadata, crate::source::s3::S3Notified);
