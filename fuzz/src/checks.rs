//! Invariants of each parser of untrusted input: what a fuzz target asserts
//! for every input, beyond "no panic".

use std::collections::HashMap;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use lambda_loop_guard::carrier::{JsonKey, KEY};
use lambda_loop_guard::lineage::{MAX_ENCODED_LEN, MAX_ENTRIES};
use lambda_loop_guard::trace_header::{TraceHeader, LOOP_GUARD_FIELD, MAX_TRACE_HEADER_LEN};
use lambda_loop_guard::{FunctionId, Lineage, LoopGuardConfig, LoopGuardLayer};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use tower::{Layer, ServiceExt};

/// A lineage to write: two functions, a few hops.
fn stamp() -> Lineage {
    let (a, b) = (FunctionId::from_u32(0xabcd_ef01), FunctionId::from_u32(7));
    Lineage::new().record_run(a).record_run(b).record_run(a)
}

/// Lineage text: a decoded lineage is bounded, round-trips, and always
/// records the running function.
pub fn lineage(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(lineage) = Lineage::decode(text) else {
        return;
    };
    assert!(lineage.len() <= MAX_ENTRIES);
    let encoded = lineage.encode();
    assert!(encoded.len() <= MAX_ENCODED_LEN);
    assert_eq!(Lineage::decode(&encoded).unwrap(), lineage, "round trip");
    let me = FunctionId::from_u32(data.len() as u32);
    let ran = lineage.record_run(me);
    assert_eq!(
        ran.count(me),
        lineage.count(me).saturating_add(1),
        "the runner is recorded"
    );
    assert_eq!(ran.hops(), lineage.hops().saturating_add(1));
    // A budgeted chain keeps its id and a run consumes one of its budget.
    assert_eq!(ran.chain(), lineage.chain());
    assert_eq!(ran.budget(), lineage.budget().map(|b| b.saturating_sub(1)));
    assert_eq!(lineage.chain().is_some(), text.starts_with("v2."));
}

/// Trace header text: our field is added or replaced, every other byte is
/// kept, the result reads back, and nothing past the read limit is written.
pub fn trace_header(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(header) = TraceHeader::parse(raw) else {
        assert!(raw.len() > MAX_TRACE_HEADER_LEN);
        return;
    };
    let lineage = stamp();
    let written = header.with_lineage(&lineage);
    if !raw.contains(LOOP_GUARD_FIELD) {
        let separator = if raw.is_empty() || raw.ends_with(';') {
            ""
        } else {
            ";"
        };
        assert_eq!(
            written,
            format!("{raw}{separator}{LOOP_GUARD_FIELD}={lineage}")
        );
    }
    if let Ok(reread) = TraceHeader::parse(&written) {
        assert_eq!(reread.lineage(), Some(lineage), "{written:?}");
        let others = |h: &TraceHeader<'_>| {
            h.fields()
                .filter(|f| f.key != LOOP_GUARD_FIELD)
                .map(|f| (f.key.to_owned(), f.value.to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(others(&header), others(&reread), "foreign fields untouched");
    }
}

/// An async payload: when the key is taken, the rest is valid JSON without
/// it, and the value is the one the payload held.
pub fn async_payload(data: &[u8]) {
    let Some((rest, value)) = lambda_loop_guard::fuzzing::take_lineage(data) else {
        return;
    };
    serde_json::from_slice::<serde::de::IgnoredAny>(&rest).expect("the rest is JSON");
    // A `Value` cannot hold every JSON number (1e400): compare when it can.
    let (Ok(before), Ok(after)) = (
        serde_json::from_slice::<Value>(data),
        serde_json::from_slice::<Value>(&rest),
    ) else {
        return;
    };
    let top = before.get(KEY).and_then(Value::as_str);
    let detail = before
        .get("detail")
        .and_then(|d| d.get(KEY))
        .and_then(Value::as_str);
    assert!(top == Some(value.as_str()) || detail == Some(value.as_str()));
    // Removed from where it was taken.
    if top.is_some() {
        assert!(after.get(KEY).is_none(), "taken from the top");
    } else {
        assert!(after["detail"].get(KEY).is_none(), "taken from the detail");
    }
}

/// JSON text stamping: the result is an object with our value, every other
/// top-level key as it was; and taking the key out again (what the
/// receiving side does) gives back our value.
pub fn json_key_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lineage = stamp();
    let Ok(written) = JsonKey::default().write_text(text, &lineage) else {
        return;
    };
    let Ok(Value::Object(before)) = serde_json::from_str::<Value>(text) else {
        // Spliced into text that is not a whole JSON object: nothing to compare.
        return;
    };
    let Value::Object(after) =
        serde_json::from_str::<Value>(&written).expect("valid JSON stays valid")
    else {
        panic!("an object stays an object");
    };
    assert_eq!(after.get(KEY), Some(&Value::String(lineage.to_string())));
    for (key, value) in &before {
        if key != KEY {
            assert_eq!(after.get(key), Some(value), "{key}");
        }
    }
    let (rest, taken) = lambda_loop_guard::fuzzing::take_lineage(written.as_bytes())
        .expect("a stamped payload is un-stamped");
    assert_eq!(taken, lineage.to_string());
    if !before.contains_key(KEY) {
        assert_eq!(
            rest,
            text.as_bytes(),
            "stamp then un-stamp gives back every byte"
        );
    }
    let Value::Object(rest) = serde_json::from_slice::<Value>(&rest).expect("JSON") else {
        panic!("an object stays an object");
    };
    let mut expected = before.clone();
    expected.remove(KEY);
    assert_eq!(
        rest, expected,
        "stamp then un-stamp is the identity, but for our key"
    );
}

/// An SQS body: a value is read only from an envelope's attribute, and it
/// is text of the body.
pub fn sns_envelope(data: &[u8]) {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((topic, value)) = lambda_loop_guard::fuzzing::sns_envelope_lineage(body) {
        serde_json::from_str::<serde::de::IgnoredAny>(body).expect("only JSON is read");
        assert!(body.contains(value), "the value is text of the body");
        assert!(body.contains(topic), "the topic is text of the body");
        // A `Value` cannot hold every JSON number (1e400): compare when it can.
        if let Ok(envelope) = serde_json::from_str::<Value>(body) {
            assert_eq!(envelope["Type"].as_str(), Some("Notification"));
            assert_eq!(envelope["TopicArn"].as_str(), Some(topic));
            assert_eq!(
                envelope["MessageAttributes"][KEY]["Value"].as_str(),
                Some(value)
            );
        }
    }
}

/// A batch through the guard: the records the handler runs and the ones
/// reported equal an independent per-record recomputation.
pub fn sqs_verdicts(data: &[u8]) {
    const MAX_DEPTH: u16 = 3;
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let fifo = first & 1 == 1;
    let me = FunctionId::from_identity("fuzz");
    // Two bytes a record: its count, and flags (attribute, garbage, no id).
    let specs: Vec<(u16, u8)> = rest
        .chunks_exact(2)
        .take(20)
        .map(|c| (u16::from(c[0] % 8), c[1]))
        .collect();
    let records: Vec<SqsMessage> = specs
        .iter()
        .enumerate()
        .map(|(i, &(count, flags))| {
            let mut m = SqsMessage::default();
            m.message_id = (flags & 4 == 0).then(|| format!("m{i}"));
            m.body = Some(format!("r{i}"));
            m.event_source_arn = Some(
                if fifo {
                    "arn:aws:sqs:r:1:q.fifo"
                } else {
                    "arn:aws:sqs:r:1:q"
                }
                .into(),
            );
            if flags & 1 == 1 {
                let lineage = (0..count).fold(Lineage::new(), |l, _| l.record_run(me));
                let mut a = SqsMessageAttribute::default();
                a.data_type = Some("String".into());
                a.string_value = Some(if flags & 2 == 2 {
                    "garbage".into()
                } else {
                    lineage.to_string()
                });
                m.message_attributes = HashMap::from([(KEY.to_owned(), a)]);
            }
            m
        })
        .collect();
    let looping: Vec<bool> = specs
        .iter()
        .map(|&(count, flags)| flags & 1 == 1 && flags & 2 == 0 && count + 1 > MAX_DEPTH)
        .collect();
    let first_loop = looping.iter().position(|&l| l);
    // Recompute: what is reported, what runs.
    let reported: Vec<usize> = match (fifo, first_loop) {
        (_, None) => vec![],
        (true, Some(k)) => (k..records.len()).collect(),
        (false, Some(_)) => (0..records.len()).filter(|&i| looping[i]).collect(),
    };
    let id_missing = reported.iter().any(|&i| specs[i].1 & 4 != 0);

    let config = LoopGuardConfig::builder()
        .function_identity("fuzz")
        .max_depth(u32::from(MAX_DEPTH))
        .build()
        .unwrap();
    let ran = std::sync::Arc::new(std::sync::Mutex::new(None));
    let handler = {
        let ran = ran.clone();
        LoopGuardLayer::new(config)
            .metric_sink(())
            .layer(tower::service_fn(move |e: LambdaEvent<SqsEvent>| {
                *ran.lock().unwrap() = Some(
                    e.payload
                        .records
                        .iter()
                        .filter_map(|r| r.body.clone())
                        .collect::<Vec<_>>(),
                );
                async { Ok::<_, lambda_runtime::Error>(SqsBatchResponse::default()) }
            }))
    };
    let mut event = SqsEvent::default();
    event.records = records;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let result = runtime.block_on(handler.oneshot(LambdaEvent::new(event, Context::default())));
    let ran = ran.lock().unwrap().clone();
    if id_missing {
        assert!(
            result.is_err(),
            "a looping record without an id fails the invocation"
        );
        assert!(ran.is_none());
        return;
    }
    let response = result.expect("reported, not failed");
    let mut got: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    got.sort();
    let mut want: Vec<String> = reported.iter().map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(got, want, "reported");
    let runs: Vec<String> = (0..specs.len())
        .filter(|i| !reported.contains(i))
        .map(|i| format!("r{i}"))
        .collect();
    if runs.is_empty() && !specs.is_empty() {
        assert!(ran.is_none(), "nothing left to run");
    } else {
        assert_eq!(ran, Some(runs), "ran, in order");
    }
}
