//! A durable ledger on DynamoDB conditional writes (feature
//! `continuation-dynamodb`): the usual choice on AWS.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;

use super::ledger::{
    changing, epoch_millis, from_epoch_millis, from_epoch_secs, not_held, Claim, ClaimToken,
    ContinuationLedger, Found, LedgerFuture, Stored, ATTEMPTS, DONE_RETENTION,
};

const STATUS: &str = "status";
const OWNER: &str = "owner";
const UNTIL: &str = "in_progress_expiration";
const EXPIRATION: &str = "expiration";
const IN_PROGRESS: &str = "INPROGRESS";
const COMPLETED: &str = "COMPLETED";

/// A durable [`ContinuationLedger`] on DynamoDB conditional writes, laid out
/// like a Powertools idempotency table. One item per run, keyed
/// `<job>#<sequence>` in the table's partition key (a string attribute,
/// `id` by default); `status` (`INPROGRESS` or `COMPLETED`), `owner`,
/// `in_progress_expiration` (milliseconds since the epoch) and `expiration`
/// (seconds since the epoch: enable TTL on it, and finished claims go after
/// [`DONE_RETENTION`]). A released claim is deleted.
///
/// The function needs `dynamodb:PutItem`, `GetItem`, `UpdateItem` and
/// `DeleteItem` on the table.
#[derive(Debug, Clone)]
pub struct DynamoDbLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
    key: String,
}

impl DynamoDbLedger {
    /// A ledger in `table`, whose partition key is the string attribute `id`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbLedger {
            client,
            table: table.into(),
            key: "id".to_owned(),
        }
    }

    /// Names the table's partition key attribute (default `id`).
    #[must_use]
    pub fn key_attribute(mut self, name: impl Into<String>) -> Self {
        self.key = name.into();
        self
    }

    fn id(job: &str, sequence: u32) -> AttributeValue {
        AttributeValue::S(format!("{job}#{sequence}"))
    }

    /// The stored claim, read consistently; `None` when there is none.
    async fn read(&self, job: &str, sequence: u32) -> Result<Option<Stored>, String> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(&self.key, Self::id(job, sequence))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
        let Some(item) = got.item else {
            return Ok(None);
        };
        let text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(s)) => Some(s.as_str()),
            _ => None,
        };
        let number = |name: &str| match item.get(name) {
            Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
            _ => None,
        };
        let stored = match text(STATUS) {
            Some(COMPLETED) => Stored::Done {
                expires: from_epoch_secs(number(EXPIRATION).unwrap_or(0)),
            },
            Some(IN_PROGRESS) => Stored::InProgress {
                owner: text(OWNER).unwrap_or_default().to_owned(),
                until: from_epoch_millis(number(UNTIL).unwrap_or(0)),
            },
            other => {
                return Err(format!(
                    "the ledger item for run {sequence} of job {job} has status {other:?}"
                ))
            }
        };
        Ok(Some(stored))
    }
}

impl ContinuationLedger for DynamoDbLedger {
    fn begin<'a>(
        &'a self,
        job: &'a str,
        sequence: u32,
        owner: &'a str,
        until: SystemTime,
        now: SystemTime,
    ) -> LedgerFuture<'a, Claim> {
        Box::pin(async move {
            for _ in 0..ATTEMPTS {
                let put = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .item(&self.key, Self::id(job, sequence))
                    .item(STATUS, AttributeValue::S(IN_PROGRESS.into()))
                    .item(OWNER, AttributeValue::S(owner.into()))
                    .item(UNTIL, number(epoch_millis(until)))
                    .item(EXPIRATION, number(seconds(until + DONE_RETENTION)))
                    // Free, or held by a claim that expired (`until` not after now).
                    .condition_expression(
                        "attribute_not_exists(#key) OR (#status = :in_progress AND #until <= :now)",
                    )
                    .expression_attribute_names("#key", &self.key)
                    .expression_attribute_names("#status", STATUS)
                    .expression_attribute_names("#until", UNTIL)
                    .expression_attribute_values(
                        ":in_progress",
                        AttributeValue::S(IN_PROGRESS.into()),
                    )
                    .expression_attribute_values(":now", number(epoch_millis(now)))
                    .send()
                    .await;
                match put {
                    Ok(_) => return Ok(Claim::Acquired(ClaimToken(owner.to_owned()))),
                    Err(e) if conditional_check_failed(&e) => {}
                    Err(e) => {
                        return Err(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
                    }
                }
                // Held or done; or changed since (then try again).
                match self.read(job, sequence).await?.map(|s| s.found(owner, now)) {
                    Some(Found::Taken(claim)) => return Ok(claim),
                    Some(Found::Ours) => return Ok(Claim::Acquired(ClaimToken(owner.to_owned()))),
                    Some(Found::Expired) | None => {}
                }
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
        Box::pin(async move {
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(&self.key, Self::id(job, sequence))
                .update_expression("SET #status = :completed, #expiration = :expiration")
                .condition_expression("#owner = :owner AND #status = :in_progress")
                .expression_attribute_names("#status", STATUS)
                .expression_attribute_names("#expiration", EXPIRATION)
                .expression_attribute_names("#owner", OWNER)
                .expression_attribute_values(":completed", AttributeValue::S(COMPLETED.into()))
                .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
                .expression_attribute_values(":expiration", number(seconds(now + DONE_RETENTION)))
                .expression_attribute_values(":owner", AttributeValue::S(token.0.clone()))
                .send()
                .await;
            match update {
                Ok(_) => Ok(()),
                Err(e) if conditional_check_failed(&e) => Err(not_held(job, sequence)),
                Err(e) => Err(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()),
            }
        })
    }

    fn release<'a>(
        &'a self,
        job: &'a str,
        sequence: u32,
        token: &'a ClaimToken,
    ) -> LedgerFuture<'a, ()> {
        Box::pin(async move {
            let delete = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key(&self.key, Self::id(job, sequence))
                .condition_expression("#owner = :owner AND #status = :in_progress")
                .expression_attribute_names("#status", STATUS)
                .expression_attribute_names("#owner", OWNER)
                .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.into()))
                .expression_attribute_values(":owner", AttributeValue::S(token.0.clone()))
                .send()
                .await;
            match delete {
                Ok(_) => Ok(()),
                Err(e) if conditional_check_failed(&e) => Err(not_held(job, sequence)),
                Err(e) => Err(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()),
            }
        })
    }
}

/// Whether the call failed on its condition expression.
fn conditional_check_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(
    e: &aws_sdk_dynamodb::error::SdkError<E>,
) -> bool {
    e.as_service_error()
        .and_then(aws_sdk_dynamodb::error::ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
