//! Setup shared by the tests against emulators: a guard layer, resources.

/// A layer for `identity` with `max_depth`, metric lines discarded.
pub fn guard(identity: &str, max_depth: u32) -> lambda_loop_guard::LoopGuardLayer {
    let config = lambda_loop_guard::LoopGuardConfig::builder()
        .function_identity(identity)
        .max_depth(max_depth)
        .build()
        .unwrap();
    lambda_loop_guard::LoopGuardLayer::new(config).metric_sink(())
}

/// Creates `table` (string hash key `id`, on-demand) with a
/// `NEW_AND_OLD_IMAGES` stream; returns the stream ARN.
pub async fn create_streamed_table(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        StreamSpecification, StreamViewType,
    };
    dynamodb
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .table_description
        .unwrap()
        .latest_stream_arn
        .unwrap()
}
