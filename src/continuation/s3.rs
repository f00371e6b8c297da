//! The S3 parts of continuations (feature `continuation-s3`): a durable
//! ledger on conditional writes, and the store for state over the
//! asynchronous payload limit.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::ContinuationError;
use super::event::StateRef;
use super::ledger::{ClaimFuture, ContinuationLedger};

/// A durable [`ContinuationLedger`] on S3 conditional writes: claiming puts
/// `<prefix><job>/<sequence>.claim` with `If-None-Match: *`, which S3 refuses
/// (HTTP 412) when the object exists, so a duplicate is recognised in any
/// execution environment. Expire the prefix with a lifecycle rule (a day is
/// plenty: Lambda retries asynchronous events for at most 6 hours).
#[derive(Debug, Clone)]
pub struct S3Ledger {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

impl S3Ledger {
    /// A ledger writing claims into `bucket` under `prefix`.
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        S3Ledger {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }
}

impl ContinuationLedger for S3Ledger {
    fn claim<'a>(&'a self, job: &'a str, sequence: u32) -> ClaimFuture<'a> {
        Box::pin(async move {
            let put = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(format!("{}{job}/{sequence}.claim", self.prefix))
                .if_none_match("*")
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"claimed"))
                .send()
                .await;
            match put {
                Ok(_) => Ok(true),
                Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(412) => Ok(false),
                Err(e) => Err(aws_sdk_s3::error::DisplayErrorContext(e).to_string()),
            }
        })
    }
}

/// Opt-in S3 storage for state over the asynchronous payload limit.
#[derive(Clone, Debug)]
pub(super) struct S3Offload {
    pub(super) client: aws_sdk_s3::Client,
    pub(super) bucket: String,
    pub(super) prefix: String,
}

impl S3Offload {
    /// Reads and deserializes the state at `state_ref`.
    pub(super) async fn load<S: DeserializeOwned, E>(
        &self,
        state_ref: &StateRef,
    ) -> Result<S, ContinuationError<E>> {
        let object = self
            .client
            .get_object()
            .bucket(&state_ref.bucket)
            .key(&state_ref.key)
            .send()
            .await
            .map_err(|e| {
                ContinuationError::Offload(aws_sdk_s3::error::DisplayErrorContext(e).to_string())
            })?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| ContinuationError::Offload(e.to_string()))?
            .into_bytes();
        serde_json::from_slice(&bytes).map_err(|e| ContinuationError::State(e.to_string()))
    }

    /// Puts `state` under `<prefix><job_id>/<sequence>.json`.
    pub(super) async fn put<S: Serialize, E>(
        &self,
        state: &Option<S>,
        job_id: &str,
        sequence: u32,
    ) -> Result<StateRef, ContinuationError<E>> {
        let bytes =
            serde_json::to_vec(state).map_err(|e| ContinuationError::State(e.to_string()))?;
        let key = format!("{}{job_id}/{sequence}.json", self.prefix);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(aws_sdk_s3::primitives::ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| {
                ContinuationError::Offload(aws_sdk_s3::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(StateRef {
            bucket: self.bucket.clone(),
            key,
        })
    }

    /// Deletes a consumed state object. A failure is logged, not returned:
    /// the job itself went on.
    pub(super) async fn delete(&self, state_ref: &StateRef) {
        if let Err(e) = self
            .client
            .delete_object()
            .bucket(&state_ref.bucket)
            .key(&state_ref.key)
            .send()
            .await
        {
            tracing::warn!(
                error = %aws_sdk_s3::error::DisplayErrorContext(e),
                key = state_ref.key.as_str(),
                "offloaded continuation state not deleted"
            );
        }
    }
}
