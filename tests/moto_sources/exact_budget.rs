//! The exact chain budget's DynamoDB store on moto: claims are atomic under
//! concurrency (never more runs recorded than the limit, however many
//! executions claim at once), a fan-out loop through the real layer runs
//! exactly its budget, and an unreachable table leaves work to be retried.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_loop_guard::error::Limit;
use lambda_loop_guard::exact_budget::{ChainBudgetStore, DynamoDbBudgetStore, ExactBudget};
use lambda_loop_guard::{ChainId, LoopGuardConfig};

use super::queue_loop::{run_queue_loop_counted, Attributes, Behaviour};
use super::support;

async fn item(
    dynamodb: &aws_sdk_dynamodb::Client,
    chain: ChainId,
) -> std::collections::HashMap<String, AttributeValue> {
    dynamodb
        .get_item()
        .table_name("budgets")
        .key("pk", AttributeValue::S(format!("chain#{chain}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_default()
}

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().unwrap(),
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_store_on_moto() {
    let moto = support::start_moto();
    let dynamodb = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    support::create_table(&dynamodb, "budgets", "pk").await;
    let store = DynamoDbBudgetStore::new(dynamodb.clone(), "budgets").key_attribute("pk");

    // 20 executions claim 3 runs each at once against a limit of 25: the
    // store grants exactly 25 in all, whatever the interleaving.
    let chain = ChainId::from_u64(0x5eed).unwrap();
    let claims = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim(chain, 3, 25).await.unwrap() })
    });
    let mut granted = 0;
    for claim in claims {
        granted += claim.await.unwrap();
    }
    assert_eq!(granted, 25);
    let stored = item(&dynamodb, chain).await;
    assert_eq!(number(&stored, "runs"), 25);
    // TTL: about 15 days from now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ttl = number(&stored, "expiration") - now;
    assert!((15 * 86_400 - 60..=15 * 86_400).contains(&ttl), "{ttl}");
    assert_eq!(store.claim(chain, 1, 25).await.unwrap(), 0, "spent");
    // A partial grant: 2 left of 27, 5 asked.
    assert_eq!(store.claim(chain, 5, 27).await.unwrap(), 2);
    assert_eq!(number(&item(&dynamodb, chain).await, "runs"), 27);
    // Runs given back (units that did not run) can be claimed again.
    store.release(chain, 3).await.unwrap();
    assert_eq!(number(&item(&dynamodb, chain).await, "runs"), 24);
    assert_eq!(store.claim(chain, 5, 27).await.unwrap(), 3);
    // Nothing is released for a chain never claimed: no item appears.
    let never = ChainId::from_u64(0xdead).unwrap();
    assert!(store.release(never, 1).await.is_err());
    assert!(item(&dynamodb, never).await.is_empty());

    // Through the layer: the x2 fan-out loop with a budget of 20 runs
    // exactly 20 times, on one chain whose item records the 19 after its
    // root.
    let config = LoopGuardConfig::builder()
        .function_identity("fan-out")
        .max_depth(1000)
        .chain_budget(20)
        .build()
        .unwrap();
    let behaviour = Behaviour {
        fan_out: 2,
        declare: false,
        scopes: 1,
    };
    let outcome = run_queue_loop_counted(
        config.clone(),
        Some(ExactBudget::new(store.clone())),
        behaviour,
        vec![Attributes::new()],
        (),
    )
    .await;
    assert_eq!(outcome.runs.len(), 20, "{outcome:?}");
    assert_eq!(outcome.dropped, 40 + 1 - 20);
    assert!(outcome.reasons.iter().all(|r| *r == Limit::ChainBudget));
    let chain = outcome.runs[0].chain().unwrap();
    assert_eq!(number(&item(&dynamodb, chain).await, "runs"), 19);

    // A table that is not there: the claim fails, and the default policy
    // leaves every record of a budgeted chain to be retried (the loop
    // stops after its root, every message accounted for).
    let missing = DynamoDbBudgetStore::new(dynamodb.clone(), "no-such-table");
    let error = missing.claim(chain, 1, 5).await.unwrap_err();
    assert!(error.to_string().contains("ResourceNotFound"), "{error}");
    let outcome = run_queue_loop_counted(
        config,
        Some(ExactBudget::new(missing)),
        behaviour,
        vec![Attributes::new()],
        (),
    )
    .await;
    assert_eq!(outcome.runs.len(), 1);
    assert_eq!(outcome.dropped, 2);
    assert!(outcome.reasons.is_empty(), "not loops: {outcome:?}");
}
