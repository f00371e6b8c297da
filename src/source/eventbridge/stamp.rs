//! EventBridge: our field in every `PutEvents` entry's `TraceHeader` and,
//! opt-in, the `loop-guard` key in a JSON-object `Detail`.

use crate::carrier::trace::stamped_call_header;
use crate::carrier::JsonKey;
use crate::chain::Chain;
use crate::source::StampOptions;
use aws_sdk_eventbridge::operation::put_events::PutEventsInput;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_smithy_runtime_api::client::interceptors::context::Input;

pub(crate) fn stamp(input: &mut Input, options: &StampOptions, chain: &Chain) -> bool {
    let Some(put) = input.downcast_mut::<PutEventsInput>() else {
        return false;
    };
    for entry in put.entries.iter_mut().flatten() {
        stamp_trace_header(entry, chain);
        if let Some(key) = &options.eventbridge_detail {
            stamp_detail(entry, key, chain);
        }
    }
    true
}

/// EventBridge refuses a `PutEvents` entry whose `TraceHeader` is longer.
const MAX_TRACE_HEADER_CHARS: usize = 500;

/// The entry's own trace header, else the invocation's incoming one, gets
/// our field; an entry whose stamped header would pass EventBridge's 500
/// characters is left as it was.
fn stamp_trace_header(entry: &mut PutEventsRequestEntry, chain: &Chain) {
    if let Some(header) = stamped_call_header(
        entry.trace_header.as_deref(),
        chain.incoming_trace_header(),
        chain.lineage(),
        MAX_TRACE_HEADER_CHARS,
        "EventBridge TraceHeader",
    ) {
        entry.trace_header = Some(header);
    }
}

fn stamp_detail(entry: &mut PutEventsRequestEntry, key: &JsonKey, chain: &Chain) {
    let Some(detail) = entry.detail.as_deref() else {
        return;
    };
    // The entry's other fields count toward its size too.
    let others = [
        &entry.source,
        &entry.detail_type,
        &entry.trace_header,
        &entry.event_bus_name,
    ]
    .into_iter()
    .flatten()
    .map(String::len)
    .chain(entry.resources.iter().flatten().map(String::len))
    .sum::<usize>();
    if let Some(stamped) = key.stamped_payload(
        detail,
        chain.lineage(),
        MAX_EVENT_BYTES.saturating_sub(others),
        "EventBridge detail",
    ) {
        entry.detail = Some(stamped);
    }
}

/// EventBridge refuses an entry larger than this.
const MAX_EVENT_BYTES: usize = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interceptor::tests::{chain, run_serialization_hook_with};
    use crate::interceptor::LoopGuardInterceptor;
    use serde_json::Value;

    fn entry(detail: &str, trace: Option<&str>) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .source("orders")
            .detail_type("placed")
            .detail(detail)
            .set_trace_header(trace.map(str::to_owned))
            .build()
    }

    #[tokio::test]
    async fn every_entry_gets_the_trace_field_and_opted_in_objects_the_key() {
        let c = chain(3, Some("Root=1-in-1;Sampled=1"));
        let field = format!("LoopGuard={}", c.lineage());
        let input = PutEventsInput::builder()
            .entries(entry(r#"{"id":1}"#, Some("Root=1-own-1")))
            .entries(entry(r#"[1,2]"#, None))
            .entries(entry(r#"{"loop-guard":{"theirs":1}}"#, None))
            .build()
            .unwrap();

        let plain = run_serialization_hook_with(
            LoopGuardInterceptor::new(),
            input.clone(),
            Some(c.clone()),
        )
        .await;
        let entries = plain.entries.unwrap();
        assert_eq!(
            entries[0].trace_header.as_deref(),
            Some(format!("Root=1-own-1;{field}").as_str())
        );
        assert_eq!(
            entries[1].trace_header.as_deref(),
            Some(format!("Root=1-in-1;Sampled=1;{field}").as_str())
        );
        assert_eq!(
            entries[0].detail.as_deref(),
            Some(r#"{"id":1}"#),
            "detail is opt-in"
        );

        let opted = run_serialization_hook_with(
            LoopGuardInterceptor::new().stamp_eventbridge_detail(),
            input,
            Some(c.clone()),
        )
        .await;
        let entries = opted.entries.unwrap();
        let detail: Value = serde_json::from_str(entries[0].detail.as_deref().unwrap()).unwrap();
        assert_eq!(detail["id"], 1);
        assert_eq!(detail["loop-guard"], c.lineage().to_string());
        assert_eq!(entries[1].detail.as_deref(), Some("[1,2]"));
        assert_eq!(
            entries[2].detail.as_deref(),
            Some(r#"{"loop-guard":{"theirs":1}}"#)
        );
    }

    #[tokio::test]
    async fn without_any_trace_header_none_is_invented() {
        let input = PutEventsInput::builder()
            .entries(entry("{}", None))
            .build()
            .unwrap();
        let out =
            run_serialization_hook_with(LoopGuardInterceptor::new(), input, Some(chain(1, None)))
                .await;
        assert_eq!(out.entries.unwrap()[0].trace_header, None);
    }

    #[tokio::test]
    async fn a_header_that_would_pass_500_characters_is_left_as_it_was() {
        let long = format!("Root=1-a-b;Pad={}", "x".repeat(470));
        let input = PutEventsInput::builder()
            .entries(entry("{}", Some(&long)))
            .entries(entry("{}", None))
            .build()
            .unwrap();
        let c = chain(2, Some(&long));
        let out = run_serialization_hook_with(LoopGuardInterceptor::new(), input, Some(c)).await;
        let entries = out.entries.unwrap();
        assert_eq!(entries[0].trace_header.as_deref(), Some(long.as_str()));
        assert_eq!(
            entries[1].trace_header, None,
            "none invented from the long incoming one"
        );
    }
}
