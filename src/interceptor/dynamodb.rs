//! DynamoDB: opt-in, per table, an item attribute on `PutItem`, `UpdateItem`
//! (one more `SET` action with placeholders of its own), `BatchWriteItem` put
//! requests and `TransactWriteItems` puts and updates.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_sdk_dynamodb::types::{AttributeAction, AttributeValue, AttributeValueUpdate};
use aws_smithy_runtime_api::client::interceptors::context::Input;

use super::{log_skipped, Options};
use crate::carrier::{Carrier, ItemAttribute, StampError};
use crate::lineage::Lineage;

/// The expression attribute name placeholder the guard adds to updates.
pub const NAME_PLACEHOLDER: &str = "#loopGuardAttr";
/// The expression attribute value placeholder the guard adds to updates.
pub const VALUE_PLACEHOLDER: &str = ":loopGuardValue";

/// Which tables are stamped, and under which attribute.
#[derive(Debug, Clone, Default)]
pub(super) struct DynamoDbStamping {
    pub(super) tables: Vec<String>,
    pub(super) attribute: Option<ItemAttribute>,
}

impl DynamoDbStamping {
    fn attribute(&self) -> ItemAttribute {
        self.attribute.clone().unwrap_or_default()
    }

    /// Whether `table` (a name or a table ARN) was opted in.
    fn covers(&self, table: &str) -> bool {
        let name = table.rsplit_once(":table/").map_or(table, |(_, name)| name);
        self.tables.iter().any(|t| t == name || t == table)
    }
}

pub(super) fn stamp(input: &mut Input, options: &Options, lineage: &Lineage) -> bool {
    let stamping = &options.dynamodb;
    if stamping.tables.is_empty() {
        return false;
    }
    let carrier = stamping.attribute();
    if let Some(put) = input.downcast_mut::<PutItemInput>() {
        if put
            .table_name
            .as_deref()
            .is_some_and(|t| stamping.covers(t))
        {
            let item = put.item.get_or_insert_with(HashMap::new);
            report(carrier.write(item, lineage));
        }
        return true;
    }
    if let Some(update) = input.downcast_mut::<UpdateItemInput>() {
        if update
            .table_name
            .as_deref()
            .is_some_and(|t| stamping.covers(t))
        {
            report(stamp_update_item(update, &carrier, lineage));
        }
        return true;
    }
    if let Some(batch) = input.downcast_mut::<BatchWriteItemInput>() {
        for (table, requests) in batch.request_items.iter_mut().flatten() {
            if stamping.covers(table) {
                for put in requests.iter_mut().filter_map(|r| r.put_request.as_mut()) {
                    report(carrier.write(&mut put.item, lineage));
                }
            }
        }
        return true;
    }
    if let Some(transact) = input.downcast_mut::<TransactWriteItemsInput>() {
        for item in transact.transact_items.iter_mut().flatten() {
            if let Some(put) = item.put.as_mut().filter(|p| stamping.covers(&p.table_name)) {
                report(carrier.write(&mut put.item, lineage));
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
                    &carrier,
                    lineage,
                ));
                update.update_expression = expression.unwrap_or_default();
            }
        }
        return true;
    }
    false
}

fn report(result: Result<(), StampError>) {
    if let Err(error) = result {
        log_skipped("DynamoDB item attribute", &error);
    }
}

fn stamp_update_item(
    update: &mut UpdateItemInput,
    carrier: &ItemAttribute,
    lineage: &Lineage,
) -> Result<(), StampError> {
    stamp_update(
        UpdateParts {
            expression: &mut update.update_expression,
            names: &mut update.expression_attribute_names,
            values: &mut update.expression_attribute_values,
            legacy: Some(&mut update.attribute_updates),
        },
        carrier,
        lineage,
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
    lineage: &Lineage,
) -> Result<(), StampError> {
    let value = AttributeValue::S(lineage.to_string());
    if let Some(Some(legacy)) = parts.legacy {
        if parts.expression.is_none() {
            let update = AttributeValueUpdate::builder()
                .action(AttributeAction::Put)
                .value(value)
                .build();
            legacy.insert(carrier.name().to_owned(), update);
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
    let values = parts.values.get_or_insert_with(HashMap::new);
    let action = format!("{NAME_PLACEHOLDER} = {VALUE_PLACEHOLDER}");
    let expression = parts.expression.get_or_insert_with(String::new);
    if !expression.contains(&action) {
        *expression = with_set_action(expression, &action);
    }
    names.insert(NAME_PLACEHOLDER.to_owned(), carrier.name().to_owned());
    values.insert(VALUE_PLACEHOLDER.to_owned(), value);
    Ok(())
}

/// `expression` with `action` added to its `SET` clause, or with a `SET`
/// clause of its own when it has none. Update expressions have no string
/// literals and `SET` is a reserved word, so the clause keyword is the only
/// whitespace-delimited `SET` token.
pub(crate) fn with_set_action(expression: &str, action: &str) -> String {
    match find_set_keyword(expression) {
        Some(after_keyword) => {
            let (head, tail) = expression.split_at(after_keyword);
            format!("{head} {action}, {}", tail.trim_start())
        }
        None if expression.trim().is_empty() => format!("SET {action}"),
        None => format!("{} SET {action}", expression.trim_end()),
    }
}

/// The byte offset just after the `SET` clause keyword, if there is one.
fn find_set_keyword(expression: &str) -> Option<usize> {
    let bytes = expression.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        if bytes[start].is_ascii_whitespace() {
            start += 1;
            continue;
        }
        let end = bytes[start..]
            .iter()
            .position(u8::is_ascii_whitespace)
            .map_or(bytes.len(), |n| start + n);
        if end - start == 3 && bytes[start..end].eq_ignore_ascii_case(b"SET") && end < bytes.len() {
            return Some(end);
        }
        start = end;
    }
    None
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
        ];
        for (input, expected) in cases {
            assert_eq!(with_set_action(input, ACTION), expected, "{input:?}");
        }
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
            let out = with_set_action(&expression, ACTION);
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
            let out = with_set_action(&expression, ACTION);
            proptest::prop_assert!(out.contains(ACTION));
        }
    }
}
