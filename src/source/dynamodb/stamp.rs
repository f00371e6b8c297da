//! DynamoDB: opt-in, per table, an item attribute on `PutItem`, `UpdateItem`
//! (one more `SET` action with placeholders of its own), `BatchWriteItem` put
//! requests and `TransactWriteItems` puts and updates.
//!
//! An item keeps its attributes across updates, so a stamp would outlive the
//! chain that wrote it: an `UpdateItem` made later outside any guarded
//! handler would deliver the old count again in its stream record. Writes to
//! opted-in tables made outside any chain, while no guarded invocation runs
//! in the process, therefore *clear* the stamp
//! (a `REMOVE` action, or the attribute left out of a put item).

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_sdk_dynamodb::types::{AttributeAction, AttributeValue, AttributeValueUpdate};
use aws_smithy_runtime_api::client::interceptors::context::Input;

use crate::carrier::log_skipped;
use crate::carrier::{Carrier, ItemAttribute, StampError};
use crate::lineage::Lineage;
use crate::source::StampOptions;

/// The expression attribute name placeholder the guard adds to updates.
pub const NAME_PLACEHOLDER: &str = "#loopGuardAttr";
/// The expression attribute value placeholder the guard adds to updates.
pub const VALUE_PLACEHOLDER: &str = ":loopGuardValue";

/// Which tables are stamped, and under which attribute.
#[derive(Debug, Clone, Default)]
pub(crate) struct DynamoDbStamping {
    pub(crate) tables: Vec<String>,
    pub(crate) attribute: ItemAttribute,
}

impl DynamoDbStamping {
    /// Whether `table` (a name or a table ARN) was opted in.
    fn covers(&self, table: &str) -> bool {
        let name = table.rsplit_once(":table/").map_or(table, |(_, name)| name);
        self.tables.iter().any(|t| t == name || t == table)
    }
}

/// What a write to an opted-in table gets.
#[derive(Clone, Copy)]
pub(crate) enum Action<'a> {
    /// Inside a guarded handler: the current lineage.
    Stamp(&'a Lineage),
    /// Outside one: no stamp, and none left over from an earlier write.
    Clear,
}

pub(crate) fn stamp(input: &mut Input, options: &StampOptions, action: Action<'_>) -> bool {
    let stamping = &options.dynamodb;
    if stamping.tables.is_empty() {
        return false;
    }
    let carrier = &stamping.attribute;
    let put_item = |item: &mut HashMap<String, AttributeValue>| match action {
        Action::Stamp(lineage) => report(carrier.write(item, lineage)),
        Action::Clear => {
            item.remove(carrier.name());
        }
    };
    if let Some(put) = input.downcast_mut::<PutItemInput>() {
        if put
            .table_name
            .as_deref()
            .is_some_and(|t| stamping.covers(t))
        {
            put_item(put.item.get_or_insert_with(HashMap::new));
        }
        return true;
    }
    if let Some(update) = input.downcast_mut::<UpdateItemInput>() {
        if update
            .table_name
            .as_deref()
            .is_some_and(|t| stamping.covers(t))
        {
            report(stamp_update_item(update, carrier, action));
        }
        return true;
    }
    if let Some(batch) = input.downcast_mut::<BatchWriteItemInput>() {
        for (table, requests) in batch.request_items.iter_mut().flatten() {
            if stamping.covers(table) {
                for put in requests.iter_mut().filter_map(|r| r.put_request.as_mut()) {
                    put_item(&mut put.item);
                }
            }
        }
        return true;
    }
    if let Some(transact) = input.downcast_mut::<TransactWriteItemsInput>() {
        for item in transact.transact_items.iter_mut().flatten() {
            if let Some(put) = item.put.as_mut().filter(|p| stamping.covers(&p.table_name)) {
                put_item(&mut put.item);
            }
            if let Some(update) = item
                .update
                .as_mut()
                .filter(|u| stamping.covers(&u.table_name))
            {
                let mut expression = Some(std::mem::take(&mut update.update_expression));
                report(stamp_update(
                    UpdateParts {
                        expression: &mut expression,
                        names: &mut update.expression_attribute_names,
                        values: &mut update.expression_attribute_values,
                        legacy: None,
                    },
                    carrier,
                    action,
                ));
                update.update_expression = expression.unwrap_or_default();
            }
        }
        return true;
    }
    false
}

/// The items a call writes with our attribute (puts and updates on
/// opted-in tables), if it is one this module stamps.
pub(crate) fn writes(options: &StampOptions, input: &Input) -> Option<u32> {
    let stamping = &options.dynamodb;
    let covered = |table: Option<&str>| u32::from(table.is_some_and(|t| stamping.covers(t)));
    if let Some(put) = input.downcast_ref::<PutItemInput>() {
        return Some(covered(put.table_name.as_deref()));
    }
    if let Some(update) = input.downcast_ref::<UpdateItemInput>() {
        return Some(covered(update.table_name.as_deref()));
    }
    if let Some(batch) = input.downcast_ref::<BatchWriteItemInput>() {
        let puts = batch
            .request_items
            .iter()
            .flatten()
            .map(|(table, requests)| {
                covered(Some(table))
                    * requests.iter().filter(|r| r.put_request.is_some()).count() as u32
            });
        return Some(puts.sum());
    }
    if let Some(transact) = input.downcast_ref::<TransactWriteItemsInput>() {
        let writes = transact.transact_items.iter().flatten().map(|item| {
            covered(item.put.as_ref().map(|p| p.table_name.as_str()))
                + covered(item.update.as_ref().map(|u| u.table_name.as_str()))
        });
        return Some(writes.sum());
    }
    None
}

fn report(result: Result<(), StampError>) {
    if let Err(error) = result {
        log_skipped("DynamoDB item attribute", &error);
    }
}

fn stamp_update_item(
    update: &mut UpdateItemInput,
    carrier: &ItemAttribute,
    action: Action<'_>,
) -> Result<(), StampError> {
    stamp_update(
        UpdateParts {
            expression: &mut update.update_expression,
            names: &mut update.expression_attribute_names,
            values: &mut update.expression_attribute_values,
            legacy: Some(&mut update.attribute_updates),
        },
        carrier,
        action,
    )
}

/// The parts of an update request the stamp touches.
struct UpdateParts<'a> {
    expression: &'a mut Option<String>,
    names: &'a mut Option<HashMap<String, String>>,
    values: &'a mut Option<HashMap<String, AttributeValue>>,
    /// The legacy `AttributeUpdates` map (`UpdateItem` only).
    legacy: Option<&'a mut Option<HashMap<String, AttributeValueUpdate>>>,
}

fn stamp_update(
    parts: UpdateParts<'_>,
    carrier: &ItemAttribute,
    action: Action<'_>,
) -> Result<(), StampError> {
    if let Some(Some(legacy)) = parts.legacy {
        if parts.expression.is_none() {
            let update = match action {
                Action::Stamp(lineage) => AttributeValueUpdate::builder()
                    .action(AttributeAction::Put)
                    .value(AttributeValue::S(lineage.to_text())),
                Action::Clear => AttributeValueUpdate::builder().action(AttributeAction::Delete),
            };
            legacy.insert(carrier.name().to_owned(), update.build());
            return Ok(());
        }
    }
    let names = parts.names.get_or_insert_with(HashMap::new);
    match names.get(NAME_PLACEHOLDER) {
        Some(bound) if bound != carrier.name() => {
            return Err(StampError::NameTaken {
                name: NAME_PLACEHOLDER.to_owned(),
            })
        }
        _ => {}
    }
    if names
        .iter()
        .any(|(k, v)| v == carrier.name() && k != NAME_PLACEHOLDER)
    {
        // The caller updates the attribute itself: a second action on the
        // same path would fail the request.
        return Err(StampError::NameTaken {
            name: carrier.name().to_owned(),
        });
    }
    let expression = parts.expression.get_or_insert_with(String::new);
    if expression.contains(NAME_PLACEHOLDER) {
        // Already done for this request (the hook runs once per operation;
        // this keeps it idempotent all the same).
        return Ok(());
    }
    match action {
        Action::Stamp(lineage) => {
            let set = format!("{NAME_PLACEHOLDER} = {VALUE_PLACEHOLDER}");
            *expression = with_clause_action(expression, "SET", &set);
            parts.values.get_or_insert_with(HashMap::new).insert(
                VALUE_PLACEHOLDER.to_owned(),
                AttributeValue::S(lineage.to_text()),
            );
        }
        Action::Clear => {
            *expression = with_clause_action(expression, "REMOVE", NAME_PLACEHOLDER);
        }
    }
    names.insert(NAME_PLACEHOLDER.to_owned(), carrier.name().to_owned());
    Ok(())
}

/// `expression` with `action` added to its `keyword` clause (`SET`,
/// `REMOVE`), or with a clause of its own when it has none. Update
/// expressions have no string literals and clause keywords are reserved
/// words, so a clause keyword is the only whitespace-delimited token equal to
/// it.
pub(crate) fn with_clause_action(expression: &str, keyword: &str, action: &str) -> String {
    match find_keyword(expression, keyword) {
        Some(after_keyword) => {
            let (head, tail) = expression.split_at(after_keyword);
            format!("{head} {action}, {}", tail.trim_start())
        }
        None if expression.trim().is_empty() => format!("{keyword} {action}"),
        None => format!("{} {keyword} {action}", expression.trim_end()),
    }
}

/// The byte offset just after the `keyword` clause keyword, if there is one:
/// the keyword at the start of a token (after whitespace, or first),
/// followed by anything but a name character (`SET a`, `SET#a`, `SET:v`;
/// not `SETTINGS`), however the clauses are spaced.
fn find_keyword(expression: &str, keyword: &str) -> Option<usize> {
    let bytes = expression.as_bytes();
    let word = keyword.as_bytes();
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    (0..bytes.len()).find_map(|start| {
        let end = start + word.len();
        let token_start = start == 0 || bytes[start - 1].is_ascii_whitespace();
        let matches = bytes.get(start..end)?.eq_ignore_ascii_case(word);
        let followed = bytes.get(end).is_some_and(|&b| !is_name(b));
        (token_start && matches && followed).then_some(end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTION: &str = "#loopGuardAttr = :loopGuardValue";

    #[test]
    fn set_action_joins_the_set_clause_or_starts_one() {
        let cases = [
            ("", "SET #loopGuardAttr = :loopGuardValue"),
            ("SET a = :a", "SET #loopGuardAttr = :loopGuardValue, a = :a"),
            (
                "set a = :a REMOVE b",
                "set #loopGuardAttr = :loopGuardValue, a = :a REMOVE b",
            ),
            (
                "REMOVE b  SET\ta = :a ADD c :one",
                "REMOVE b  SET #loopGuardAttr = :loopGuardValue, a = :a ADD c :one",
            ),
            ("REMOVE b", "REMOVE b SET #loopGuardAttr = :loopGuardValue"),
            (
                "ADD settings :x, #SET :y",
                "ADD settings :x, #SET :y SET #loopGuardAttr = :loopGuardValue",
            ),
            ("  ", "SET #loopGuardAttr = :loopGuardValue"),
            (
                "SET#a = :v",
                "SET #loopGuardAttr = :loopGuardValue, #a = :v",
            ),
            (
                "set:v = :w",
                "set #loopGuardAttr = :loopGuardValue, :v = :w",
            ),
            (
                "REMOVE b\nSET#a = :v",
                "REMOVE b\nSET #loopGuardAttr = :loopGuardValue, #a = :v",
            ),
            ("SETTINGS", "SETTINGS SET #loopGuardAttr = :loopGuardValue"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                with_clause_action(input, "SET", ACTION),
                expected,
                "{input:?}"
            );
        }
    }

    use crate::interceptor::tests::{chain, run_serialization_hook_with};
    use crate::interceptor::LoopGuardInterceptor;

    fn interceptor() -> LoopGuardInterceptor {
        LoopGuardInterceptor::new().stamp_dynamodb_table("orders")
    }

    fn update(expression: &str) -> UpdateItemInput {
        UpdateItemInput::builder()
            .table_name("arn:aws:dynamodb:us-east-1:1:table/orders")
            .key("id", AttributeValue::S("a".into()))
            .update_expression(expression)
            .expression_attribute_values(":v", AttributeValue::N("1".into()))
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn the_default_interceptor_reads_the_attribute_by_the_layers_rule() {
        let from_env = |value: &'static str| {
            LoopGuardInterceptor::from_env_source(&move |var| {
                Ok((var == crate::config::ENV_DYNAMODB_ATTRIBUTE).then(|| value.to_owned()))
            })
            .stamp_dynamodb_table("orders")
        };
        let put = || {
            PutItemInput::builder()
                .table_name("orders")
                .item("id", AttributeValue::S("a".into()))
                .build()
                .unwrap()
        };
        let c = chain(1, None);
        let item = run_serialization_hook_with(from_env("lg"), put(), Some(c.clone()))
            .await
            .item
            .unwrap();
        assert!(item.contains_key("lg") && !item.contains_key("loop-guard"));
        // A value the layer refuses (it does not start) leaves the default here.
        let item = run_serialization_hook_with(from_env(" lg"), put(), Some(c))
            .await
            .item
            .unwrap();
        assert!(item.contains_key("loop-guard"));
    }

    #[tokio::test]
    async fn an_interceptor_from_the_config_writes_the_configured_attribute() {
        let config = crate::LoopGuardConfig::builder()
            .function_identity("f")
            .dynamodb_attribute("lg")
            .build()
            .unwrap();
        let interceptor = LoopGuardInterceptor::from_config(&config).stamp_dynamodb_table("orders");
        let c = chain(1, None);
        let put = PutItemInput::builder()
            .table_name("orders")
            .item("id", AttributeValue::S("a".into()))
            .build()
            .unwrap();
        let out = run_serialization_hook_with(interceptor, put, Some(c.clone())).await;
        let item = out.item.unwrap();
        assert_eq!(item["lg"], AttributeValue::S(c.lineage().to_string()));
        assert!(!item.contains_key("loop-guard"));
        assert_eq!(
            config.dynamodb_attribute().name(),
            "lg",
            "the layer reads the same"
        );
    }

    #[tokio::test]
    async fn inside_a_chain_updates_get_a_set_action_and_puts_the_attribute() {
        let c = chain(2, None);
        let out = run_serialization_hook_with(
            interceptor(),
            update("SET v = :v REMOVE w"),
            Some(c.clone()),
        )
        .await;
        assert_eq!(
            out.update_expression.as_deref(),
            Some("SET #loopGuardAttr = :loopGuardValue, v = :v REMOVE w")
        );
        assert_eq!(
            out.expression_attribute_names.unwrap()[NAME_PLACEHOLDER],
            "loop-guard"
        );
        let values = out.expression_attribute_values.unwrap();
        assert_eq!(
            values[VALUE_PLACEHOLDER],
            AttributeValue::S(c.lineage().to_string())
        );
        assert_eq!(values[":v"], AttributeValue::N("1".into()));

        let put = PutItemInput::builder()
            .table_name("orders")
            .item("id", AttributeValue::S("a".into()))
            .build()
            .unwrap();
        let out = run_serialization_hook_with(interceptor(), put, Some(c.clone())).await;
        assert_eq!(
            out.item.unwrap()["loop-guard"],
            AttributeValue::S(c.lineage().to_string())
        );

        let other = UpdateItemInput::builder()
            .table_name("other")
            .update_expression("SET v = :v")
            .build()
            .unwrap();
        let out = run_serialization_hook_with(interceptor(), other.clone(), Some(c)).await;
        assert_eq!(out, other);
    }

    #[tokio::test]
    async fn outside_a_chain_old_stamps_are_cleared() {
        let out =
            run_serialization_hook_with(interceptor(), update("SET v = :v REMOVE w"), None).await;
        assert_eq!(
            out.update_expression.as_deref(),
            Some("SET v = :v REMOVE #loopGuardAttr, w")
        );
        assert_eq!(
            out.expression_attribute_names.unwrap()[NAME_PLACEHOLDER],
            "loop-guard"
        );
        assert!(!out
            .expression_attribute_values
            .unwrap()
            .contains_key(VALUE_PLACEHOLDER));

        let legacy = UpdateItemInput::builder()
            .table_name("orders")
            .attribute_updates(
                "v",
                AttributeValueUpdate::builder()
                    .action(AttributeAction::Put)
                    .value(AttributeValue::N("2".into()))
                    .build(),
            )
            .build()
            .unwrap();
        let out = run_serialization_hook_with(interceptor(), legacy, None).await;
        assert_eq!(
            out.attribute_updates.unwrap()["loop-guard"].action,
            Some(AttributeAction::Delete)
        );

        let put = PutItemInput::builder()
            .table_name("orders")
            .item("id", AttributeValue::S("a".into()))
            .item("loop-guard", AttributeValue::S("v1.5.00000001-5".into()))
            .build()
            .unwrap();
        let out = run_serialization_hook_with(interceptor(), put.clone(), None).await;
        assert!(!out.item.unwrap().contains_key("loop-guard"));

        // While an invocation runs, a write outside its chain (a task it did
        // not reach) leaves the stamp alone: it may belong to that chain.
        let running = crate::chain::Running::start(&chain(1, None), false);
        let out = run_serialization_hook_with(interceptor(), put, None).await;
        assert!(out.item.unwrap().contains_key("loop-guard"));
        drop(running);
    }

    #[tokio::test]
    async fn a_caller_that_owns_the_names_is_left_alone() {
        let mut input = update("SET #x = :v");
        input.expression_attribute_names =
            Some(HashMap::from([("#x".into(), "loop-guard".into())]));
        let out =
            run_serialization_hook_with(interceptor(), input.clone(), Some(chain(1, None))).await;
        assert_eq!(out, input);
        let mut input = update("SET #loopGuardAttr = :v");
        input.expression_attribute_names =
            Some(HashMap::from([(NAME_PLACEHOLDER.into(), "theirs".into())]));
        let out =
            run_serialization_hook_with(interceptor(), input.clone(), Some(chain(1, None))).await;
        assert_eq!(out, input);
    }

    proptest::proptest! {
        #[test]
        fn set_action_is_added_exactly_once(
            clauses in proptest::sample::subsequence(vec!["SET a = :a", "REMOVE b", "ADD c :c", "DELETE d :d"], 0..=4),
            shuffle in proptest::collection::vec(0usize..4, 4),
            spaces in "[ \t]{1,3}",
        ) {
            let mut clauses = clauses;
            for (i, j) in shuffle.into_iter().enumerate() {
                if i < clauses.len() && j < clauses.len() { clauses.swap(i, j); }
            }
            let expression = clauses.join(&spaces);
            let out = with_clause_action(&expression, "SET", ACTION);
            proptest::prop_assert_eq!(out.matches(ACTION).count(), 1);
            let set_keywords = out.split_whitespace().filter(|w| w.eq_ignore_ascii_case("SET")).count();
            proptest::prop_assert_eq!(set_keywords, 1);
            for clause in &clauses {
                let body = clause.split_once(' ').unwrap().1;
                proptest::prop_assert!(out.contains(body));
            }
        }

        #[test]
        fn any_expression_is_handled_without_panicking(expression in "\\PC{0,120}") {
            let out = with_clause_action(&expression, "SET", ACTION);
            proptest::prop_assert!(out.contains(ACTION));
        }
    }
}
