//! EventBridge events: one unit, read from the [`Context`] (the trace header
//! EventBridge passes to a Lambda target, and the key
//! [`AsyncPayloadLayer`](crate::AsyncPayloadLayer) moved out of the detail)
//! and, for `serde_json::Value` details, the `loop-guard` key in `detail`.

use std::any::Any;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::{EventSource, GuardedEvent, Incoming};
use crate::carrier::JsonKey;

impl<T> GuardedEvent for EventBridgeEvent<T>
where
    T: Serialize + DeserializeOwned + 'static,
{
    fn read_incoming<'a>(&'a self, context: &'a Context, out: &mut Vec<Incoming<'a>>) {
        let mut incoming = Incoming::new(EventSource::EventBridge);
        incoming.set_item_id(self.id.as_deref());
        if let Some(detail) = (&self.detail as &dyn Any).downcast_ref::<Value>() {
            incoming.read_carrier(&JsonKey::default(), detail);
        }
        incoming.read_context(context);
        out.push(incoming);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FunctionId;
    use serde_json::json;

    #[test]
    fn detail_key_and_context_are_merged() {
        let event: EventBridgeEvent = serde_json::from_value(json!({
            "version": "0", "id": "e-1", "detail-type": "placed", "source": "orders",
            "account": "1", "time": "2026-11-22T00:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"order": 1, "loop-guard": "v1.4.00000001-4"}
        }))
        .unwrap();
        let mut ctx = Context::default();
        ctx.xray_trace_id = Some("Root=1-e-1;LoopGuard=v1.2.00000002-2".into());
        let mut out = Vec::new();
        event.read_incoming(&ctx, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].source(), EventSource::EventBridge);
        assert_eq!(out[0].item_id(), Some("e-1"));
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(1)), 4);
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(2)), 2);

        #[derive(serde::Deserialize, serde::Serialize)]
        struct Typed {
            #[allow(dead_code)]
            order: u32,
        }
        let typed: EventBridgeEvent<Typed> = serde_json::from_value(json!({
            "detail-type": "placed", "source": "orders", "detail": {"order": 1}
        }))
        .unwrap();
        let mut out = Vec::new();
        typed.read_incoming(&ctx, &mut out);
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(2)), 2);
    }
}
