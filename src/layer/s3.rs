//! The guard for S3 event notifications, which reads each record's object
//! metadata with `HeadObject` before deciding.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use lambda_runtime::LambdaEvent;
use tower::{Layer, Service};

use super::inspect::inspect;
use super::layer::LoopGuardLayer;
use super::service::{decide, respond};
use super::shared::Shared;
use crate::error::LoopGuardError;
use crate::source::s3::{look_up_lineages, S3Notified, WithS3Lineages};
use crate::source::GuardedResponse;

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
        S3MetadataLayer {
            shared: self.shared,
            client,
        }
    }
}

/// [`LoopGuardLayer::with_s3_metadata`]: applies [`S3MetadataGuard`].
#[derive(Clone)]
pub struct S3MetadataLayer {
    shared: Arc<Shared>,
    client: aws_sdk_s3::Client,
}

impl<S> Layer<S> for S3MetadataLayer {
    type Service = S3MetadataGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        S3MetadataGuard {
            inner,
            shared: self.shared.clone(),
            client: self.client.clone(),
        }
    }
}

impl fmt::Debug for S3MetadataLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3MetadataLayer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// A [`LoopGuard`](crate::LoopGuard) for `S3Event` handlers that looks up
/// each object's metadata first. Built by [`LoopGuardLayer::with_s3_metadata`].
#[derive(Clone)]
pub struct S3MetadataGuard<S> {
    inner: S,
    shared: Arc<Shared>,
    client: aws_sdk_s3::Client,
}

impl<S: fmt::Debug> fmt::Debug for S3MetadataGuard<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3MetadataGuard")
            .field("inner", &self.inner)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// The boxed future of [`S3MetadataGuard`] (it awaits S3 before the handler).
pub type S3ResponseFuture<R, E> =
    Pin<Box<dyn Future<Output = Result<R, LoopGuardError<E>>> + Send + 'static>>;

impl<S, T> Service<LambdaEvent<T>> for S3MetadataGuard<S>
where
    S: Service<LambdaEvent<T>> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: GuardedResponse + Send + 'static,
    S::Error: Send + 'static,
    T: S3Notified + Send + Sync + 'static,
{
    type Response = S::Response;
    type Error = LoopGuardError<S::Error>;
    type Future = S3ResponseFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(LoopGuardError::Handler)
    }

    fn call(&mut self, mut event: LambdaEvent<T>) -> Self::Future {
        // The ready service goes into the future; a clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let client = self.client.clone();
        Box::pin(async move {
            let lineages = look_up_lineages(&client, event.payload.created_objects()).await;
            let view = WithS3Lineages {
                event: &event.payload,
                lineages: &lineages,
            };
            let reports_failures = S::Response::empty_batch_response().is_some();
            let verdict = inspect(&shared, &view, &event.context, reports_failures);
            let decision = decide::<T, S::Response>(&shared, &mut event.payload, verdict);
            respond(&shared, &mut inner, event, decision).await
        })
    }
}
