//! A durable ledger on S3 conditional writes (feature `continuation-s3`).

use std::time::SystemTime;

use aws_sdk_s3::primitives::ByteStream;
use serde::{Deserialize, Serialize};

use super::ledger::{
    changing, epoch_millis, from_epoch_millis, not_held, Claim, ClaimToken, ContinuationLedger,
    Found, LedgerFuture, Stored, ATTEMPTS, DONE_RETENTION,
};

/// A durable [`ContinuationLedger`] on S3 conditional writes. Each run has
/// one object, `<prefix><job>/<sequence>.claim`, holding its state as JSON:
/// it is created with `If-None-Match: *` and changed only with `If-Match` on
/// the ETag read or written last, so two deliveries never both hold a run,
/// and a [`ClaimToken`] is the ETag of the holder's write. A released claim
/// is marked released (not deleted) so that every change is conditional.
///
/// Expire the prefix with a lifecycle rule (2 days is plenty: done claims
/// matter for [`DONE_RETENTION`]). The function needs `s3:GetObject` and
/// `s3:PutObject` on the prefix.
#[derive(Debug, Clone)]
pub struct S3Ledger {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

/// The stored form of a claim.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
enum Object {
    InProgress { owner: String, until_ms: u64 },
    Completed { expires_ms: u64 },
    Released,
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

    fn key(&self, job: &str, sequence: u32) -> String {
        super::offload::run_key(&self.prefix, job, sequence, "claim")
    }

    /// Writes `object` at `key`: only if absent (`if_match` `None`) or only
    /// over the version `if_match`. `Ok(None)` when the condition failed.
    async fn put(
        &self,
        key: &str,
        object: &Object,
        if_match: Option<&str>,
    ) -> Result<Option<ClaimToken>, String> {
        let body = serde_json::to_vec(object).map_err(|e| e.to_string())?;
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        let put = match if_match {
            Some(etag) => put.if_match(etag),
            None => put.if_none_match("*"),
        };
        match put.send().await {
            Ok(written) => written
                .e_tag
                .map(|etag| Some(ClaimToken(etag)))
                .ok_or_else(|| format!("S3 returned no ETag for s3://{}/{key}", self.bucket)),
            // 412: the condition failed; 409: a concurrent conditional write.
            Err(e) if matches!(status(&e), Some(412 | 409)) => Ok(None),
            // `If-Match` on an object that is gone.
            Err(e) if if_match.is_some() && status(&e) == Some(404) => Ok(None),
            Err(e) => Err(aws_sdk_s3::error::DisplayErrorContext(e).to_string()),
        }
    }

    /// The claim at `key` and its ETag; `None` when there is none.
    async fn read(&self, key: &str) -> Result<Option<(Object, String)>, String> {
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let got = match got {
            Ok(got) => got,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(aws_sdk_s3::error::DisplayErrorContext(e).to_string()),
        };
        let etag = got
            .e_tag
            .clone()
            .ok_or_else(|| format!("S3 returned no ETag for s3://{}/{key}", self.bucket))?;
        let bytes = got.body.collect().await.map_err(|e| e.to_string())?;
        let object = serde_json::from_slice(&bytes.into_bytes())
            .map_err(|e| format!("s3://{}/{key} is not a claim: {e}", self.bucket))?;
        Ok(Some((object, etag)))
    }

    /// Changes the claim held by `token` to `object`.
    async fn change(
        &self,
        job: &str,
        sequence: u32,
        token: &ClaimToken,
        object: Object,
    ) -> Result<(), String> {
        match self
            .put(&self.key(job, sequence), &object, Some(&token.0))
            .await?
        {
            Some(_) => Ok(()),
            None => Err(not_held(job, sequence)),
        }
    }
}

impl ContinuationLedger for S3Ledger {
    fn begin<'a>(
        &'a self,
        job: &'a str,
        sequence: u32,
        owner: &'a str,
        until: SystemTime,
        now: SystemTime,
    ) -> LedgerFuture<'a, Claim> {
        Box::pin(async move {
            let key = self.key(job, sequence);
            let ours = Object::InProgress {
                owner: owner.to_owned(),
                until_ms: epoch_millis(until),
            };
            // First try to create it; when it exists, look at it and replace
            // it only if it may be taken (released, or expired).
            let mut replace: Option<String> = None;
            for _ in 0..ATTEMPTS {
                if let Some(token) = self.put(&key, &ours, replace.as_deref()).await? {
                    return Ok(Claim::Acquired(token));
                }
                replace = match self.read(&key).await? {
                    None => None,
                    Some((object, etag)) => {
                        let stored = match object {
                            Object::InProgress { owner, until_ms } => Some(Stored::InProgress {
                                owner,
                                until: from_epoch_millis(until_ms),
                            }),
                            Object::Completed { expires_ms } => Some(Stored::Done {
                                expires: from_epoch_millis(expires_ms),
                            }),
                            Object::Released => None,
                        };
                        match stored.map(|s| s.found(owner, now)) {
                            Some(Found::Taken(claim)) => return Ok(claim),
                            Some(Found::Ours) => return Ok(Claim::Acquired(ClaimToken(etag))),
                            Some(Found::Expired) | None => Some(etag),
                        }
                    }
                };
            }
            Err(changing(job, sequence))
        })
    }

    fn complete<'a>(
        &'a self,
        job: &'a str,
        sequence: u32,
        token: &'a ClaimToken,
        now: SystemTime,
    ) -> LedgerFuture<'a, ()> {
        let done = Object::Completed {
            expires_ms: epoch_millis(now + DONE_RETENTION),
        };
        Box::pin(self.change(job, sequence, token, done))
    }

    fn release<'a>(
        &'a self,
        job: &'a str,
        sequence: u32,
        token: &'a ClaimToken,
    ) -> LedgerFuture<'a, ()> {
        Box::pin(self.change(job, sequence, token, Object::Released))
    }
}

fn status<E>(e: &aws_sdk_s3::error::SdkError<E>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}
