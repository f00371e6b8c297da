//! Opt-in S3 storage for state over the asynchronous payload limit
//! (feature `continuation-s3`), and the one check a state reference from a
//! payload must pass before anything is read or deleted.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::ContinuationError;
use super::event::StateRef;

/// The S3 key of run `sequence` of `job` under `prefix`: its offloaded
/// state (`json`) or its ledger claim (`claim`).
pub(super) fn run_key(prefix: &str, job: &str, sequence: u32, extension: &str) -> String {
    format!("{prefix}{job}/{sequence}.{extension}")
}

/// Opt-in S3 storage for state over the asynchronous payload limit.
#[derive(Clone, Debug)]
pub(super) struct S3Offload {
    pub(super) client: aws_sdk_s3::Client,
    pub(super) bucket: String,
    pub(super) prefix: String,
}

impl S3Offload {
    /// The object state of run `sequence` of `job` is put in.
    fn key(&self, job: &str, sequence: u32) -> String {
        run_key(&self.prefix, job, sequence, "json")
    }

    /// Checks that `state_ref`, read from a payload anyone who can invoke the
    /// function could have written, names exactly the object this store
    /// puts the state of run `sequence` of `job` in: in the configured
    /// bucket, under the configured prefix. Anything else is an error, and
    /// nothing is read or deleted.
    pub(super) fn check<E>(
        &self,
        state_ref: &StateRef,
        job: &str,
        sequence: u32,
    ) -> Result<(), ContinuationError<E>> {
        if state_ref.bucket == self.bucket && state_ref.key == self.key(job, sequence) {
            return Ok(());
        }
        Err(ContinuationError::Offload(format!(
            "refused state reference s3://{}/{}: it is not where run {sequence} of job {} keeps \
             its offloaded state (the configured bucket and prefix, <job>/<sequence>.json)",
            crate::excerpt::head(&state_ref.bucket),
            crate::excerpt::head(&state_ref.key),
            crate::excerpt::head(job),
        )))
    }

    /// Reads and deserializes the state at `state_ref` (checked first with
    /// [`check`](Self::check)).
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
        serde_json::from_slice(&bytes)
            .map_err(|e| ContinuationError::State(format!("offloaded state cannot be read: {e}")))
    }

    /// Puts `state` under `<prefix><job_id>/<sequence>.json`.
    pub(super) async fn put<S: Serialize, E>(
        &self,
        state: &Option<S>,
        job_id: &str,
        sequence: u32,
    ) -> Result<StateRef, ContinuationError<E>> {
        let bytes = serde_json::to_vec(state)
            .map_err(|e| ContinuationError::State(format!("cannot be serialized: {e}")))?;
        let key = self.key(job_id, sequence);
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

    /// Deletes a state object that is no longer needed (consumed, or never
    /// handed over). A failure is logged, not returned: the job itself went
    /// on, and the prefix's lifecycle rule removes what is left.
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
