//! Per-record chains: the work done for one record of a batch carries that
//! record's own lineage, not the batch's.
//!
//! While a batch handler runs, [`Chain::current`] holds the merge (the
//! maximum per function) of the records it runs: a safe fallback that never
//! undercounts, but a message sent for a fresh record then inherits the
//! deepest record's count. Scope the work of each record with
//! [`for_record`] (or [`Chain::for_record`]) and each outgoing message
//! continues its own record's chain:
//!
//! ```
//! use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
//! use lambda_loop_guard::{for_record, Chain};
//! use lambda_runtime::{Error, LambdaEvent};
//!
//! async fn handler(event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
//!     for record in &event.payload.records {
//!         for_record(record, async {
//!             // SDK calls made here carry this record's chain, plus this run.
//!             let _ = Chain::current();
//!         })
//!         .await;
//!     }
//!     Ok(SqsBatchResponse::default())
//! }
//! # let _ = handler;
//! ```

use std::future::Future;

use crate::chain::{Chain, Scoped};
use crate::config::LoopGuardConfig;
use crate::incoming::{EventSource, Incoming};

/// One record of a batch event, read on its own: what
/// [`Chain::for_record`] needs. Implemented for SQS messages (typed bodies
/// too), the records of a `serde_json::Value` batch (SQS, SNS, DynamoDB
/// stream) and, with feature `dynamodb`, DynamoDB stream records; a custom
/// batch source implements it for its record type and reads each record
/// through it.
pub trait GuardedRecord {
    /// The chain this record arrived with.
    fn read_record<'a>(&'a self, config: &LoopGuardConfig) -> Incoming<'a>;
}

/// What a [`GuardedRecord`] reads from a value that is not a record it
/// knows: [`Chain::for_record`] then keeps the chain in scope rather than
/// start a fresh one.
pub(crate) const NOT_A_RECORD: EventSource = EventSource::Custom("\0not a record");

/// Appends one unit per record, each read on its own.
#[cfg(any(feature = "dynamodb", feature = "kinesis"))]
pub(crate) fn read_records<'a, R: GuardedRecord>(
    records: &'a [R],
    config: &LoopGuardConfig,
    out: &mut crate::incoming::Units<'a, '_>,
) {
    for record in records {
        out.push(record.read_record(config));
    }
}

impl Chain {
    /// The chain for work done for `record`: the lineage it arrived with,
    /// plus this run (under the id its source counts runs with). Outside a
    /// guarded handler, or for a chain the guard did not set, this chain.
    pub fn for_record<R: GuardedRecord + ?Sized>(&self, record: &R) -> Chain {
        let Some(config) = self.config() else {
            return self.clone();
        };
        let incoming = record.read_record(config);
        let untrusted = incoming.source() == EventSource::Http && !config.trust_http();
        if untrusted || incoming.source() == NOT_A_RECORD {
            return self.clone();
        }
        // As the guard reads it: signatures checked when signing is on.
        let lineage = incoming.resolve(&mut crate::incoming::DecodeCache::with_keys(
            config.signing_keys(),
        ));
        self.for_record_lineage(config, &lineage, incoming.source_arn())
    }
}

/// Runs `future` with the chain of `record` in scope (see
/// [`Chain::for_record`]); outside a guarded handler, with no chain.
pub fn for_record<R: GuardedRecord + ?Sized, F: Future>(record: &R, future: F) -> Scoped<F> {
    let chain = Chain::with_current(|chain| chain.map(|c| c.for_record(record)));
    match chain {
        Some(chain) => chain.scope(future),
        None => crate::chain::carry(future),
    }
}
