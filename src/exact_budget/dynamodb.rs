//! The exact chain budget's store on DynamoDB conditional writes (feature
//! `exact-budget-dynamodb`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{ChainBudgetStore, ClaimFuture, ReleaseFuture, StoreError};
use crate::lineage::ChainId;

const RUNS: &str = "runs";
const EXPIRATION: &str = "expiration";
/// Claims made again when others changed the count in between.
const ATTEMPTS: usize = 5;

/// A [`ChainBudgetStore`] on DynamoDB: one item per chain, keyed
/// `chain#<16 hex digits>` in the table's partition key (a string
/// attribute, `id` by default), holding `runs` (recorded after the run
/// that started the chain) and `expiration` (seconds since the epoch, set
/// by the chain's first claim: enable TTL on it).
///
/// A claim is one `UpdateItem` that adds the runs only if the total stays
/// within the limit (`ADD` under a condition): atomic however many
/// executions claim at once. When the chain has fewer runs left than asked
/// for, a second `UpdateItem` claims what is left. The table must be one
/// table in one region (give functions in other regions a client for that
/// region): global table replicas accept conditional writes each on their
/// own, so they would each grant the budget.
///
/// The SDK retries a claim whose answer was lost (a timeout): its runs may
/// then be counted twice, which only lowers what the chain may still run.
///
/// The function needs `dynamodb:UpdateItem` (and `GetItem`, used when a
/// failed condition does not return the item) on the table.
#[derive(Debug, Clone)]
pub struct DynamoDbBudgetStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    key: String,
    time_to_live: Duration,
}

impl DynamoDbBudgetStore {
    /// A store in `table`, whose partition key is the string attribute `id`;
    /// items expire 15 days after their chain's first claim (over SQS's
    /// longest retention, 14 days).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoDbBudgetStore {
            client,
            table: table.into(),
            key: "id".to_owned(),
            time_to_live: Duration::from_secs(15 * 24 * 3600),
        }
    }

    /// Names the table's partition key attribute (default `id`).
    #[must_use]
    pub fn key_attribute(mut self, name: impl Into<String>) -> Self {
        self.key = name.into();
        self
    }

    /// How long after a chain's first claim its item expires (default 15
    /// days). A chain still running after that counts from zero again:
    /// keep it over the longest a message of the chain can wait (queue
    /// retention, DLQ redrives, archive replays).
    #[must_use]
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.time_to_live = ttl;
        self
    }

    fn id(chain: ChainId) -> AttributeValue {
        AttributeValue::S(format!("chain#{chain}"))
    }

    /// Adds `runs` if the chain's total stays within `limit`: `Ok(None)`
    /// done, `Ok(Some(recorded))` refused, with the runs recorded so far
    /// when the failed condition returned them.
    async fn add(
        &self,
        chain: ChainId,
        runs: u32,
        limit: u32,
    ) -> Result<Option<Option<u32>>, StoreError> {
        let expiration = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(self.time_to_live)
            .as_secs();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(&self.key, Self::id(chain))
            .update_expression(
                "ADD #runs :runs SET #expiration = if_not_exists(#expiration, :expiration)",
            )
            .condition_expression("attribute_not_exists(#runs) OR #runs <= :most")
            .expression_attribute_names("#runs", RUNS)
            .expression_attribute_names("#expiration", EXPIRATION)
            .expression_attribute_values(":runs", AttributeValue::N(runs.to_string()))
            .expression_attribute_values(":most", AttributeValue::N((limit - runs).to_string()))
            .expression_attribute_values(":expiration", AttributeValue::N(expiration.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Some(failed.item().and_then(runs_of)))
                }
                _ => Err(DisplayErrorContext(e).to_string().into()),
            },
        }
    }

    /// The runs recorded for `chain`, read consistently.
    async fn recorded(&self, chain: ChainId) -> Result<u32, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(&self.key, Self::id(chain))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        Ok(got.item().and_then(runs_of).unwrap_or(0))
    }
}

/// The `runs` of an item; a count over `u32` is saturated.
fn runs_of(item: &std::collections::HashMap<String, AttributeValue>) -> Option<u32> {
    match item.get(RUNS) {
        Some(AttributeValue::N(n)) => n
            .parse::<u64>()
            .ok()
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        _ => None,
    }
}

impl ChainBudgetStore for DynamoDbBudgetStore {
    fn claim(&self, chain: ChainId, runs: u32, limit: u32) -> ClaimFuture<'_> {
        Box::pin(async move {
            let mut want = runs.min(limit);
            for _ in 0..ATTEMPTS {
                if want == 0 {
                    return Ok(0);
                }
                let recorded = match self.add(chain, want, limit).await? {
                    None => return Ok(want),
                    Some(Some(recorded)) => recorded,
                    Some(None) => self.recorded(chain).await?,
                };
                want = runs.min(limit.saturating_sub(recorded));
            }
            if want == 0 {
                return Ok(0);
            }
            Err(format!(
                "chain {chain}: its count changed under {ATTEMPTS} claims in a row (concurrent executions)"
            )
            .into())
        })
    }

    fn release(&self, chain: ChainId, runs: u32) -> ReleaseFuture<'_> {
        Box::pin(async move {
            self.client
                .update_item()
                .table_name(&self.table)
                .key(&self.key, Self::id(chain))
                .update_expression("ADD #runs :minus")
                // Only what was claimed: never an item of its own.
                .condition_expression("attribute_exists(#runs)")
                .expression_attribute_names("#runs", RUNS)
                .expression_attribute_values(":minus", AttributeValue::N(format!("-{runs}")))
                .send()
                .await
                .map(drop)
                .map_err(|e| DisplayErrorContext(e).to_string().into())
        })
    }
}
