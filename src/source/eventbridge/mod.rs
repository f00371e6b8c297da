//! EventBridge: one unit per event ([`Batch::Single`](crate::Batch::Single)).
//!
//! * Read: the [`Context`] (the trace header EventBridge passes to a Lambda
//!   target, and the key [`AsyncPayloadLayer`](crate::AsyncPayloadLayer)
//!   moved out of the detail) and, for `serde_json::Value` details, the
//!   `loop-guard` key in `detail`.
//! * Stamp (feature `eventbridge`): our field in every `PutEvents` entry's
//!   `TraceHeader` (the caller's, else the invocation's incoming one) and,
//!   opt-in ([`stamp_eventbridge_detail`](crate::LoopGuardInterceptor::stamp_eventbridge_detail)),
//!   the `loop-guard` key in a JSON-object `Detail`.

use std::any::Any;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::carrier::{Carrier, JsonKey};
use crate::config::LoopGuardConfig;
use crate::incoming::{EventSource, Incoming, Units};
use crate::source::GuardedEvent;

pub(crate) mod stamp;

impl<T> GuardedEvent for EventBridgeEvent<T>
where
    T: Serialize + DeserializeOwned + 'static,
{
    fn read_incoming<'a>(
        &'a self,
        context: &'a Context,
        _config: &LoopGuardConfig,
        out: &mut Units<'a, '_>,
    ) {
        let mut incoming = Incoming::new(EventSource::EventBridge);
        incoming.set_item_id(self.id.as_deref());
        if let Some(detail) = (&self.detail as &dyn Any).downcast_ref::<Value>() {
            JsonKey::default().read(detail, &mut incoming);
        }
        incoming.read_context(context);
        out.push(incoming);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_config;
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
        let out = crate::source::read_units(&event, &ctx, &test_config());
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
        let out = crate::source::read_units(&typed, &ctx, &test_config());
        assert_eq!(out[0].lineage().count(FunctionId::from_u32(2)), 2);
    }
}
