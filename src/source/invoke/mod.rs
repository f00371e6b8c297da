//! Direct invokes: the lineage in the invocation's `Context`, its trace
//! header (`X-Amzn-Trace-Id`, our `LoopGuard=` field) and its client
//! context (`custom["loop-guard"]`, synchronous invokes only).
//!
//! Every payload type that is not a batch reads these carriers, which is
//! what the default [`GuardedEvent`](crate::GuardedEvent) methods do. With
//! feature `lambda`, the interceptor writes the client context of
//! `Invoke` and `InvokeWithResponseStream` calls (the `stamp` side).

use lambda_runtime::Context;

use crate::carrier::{Carrier, MapKey, TraceField};
use crate::incoming::{EventSource, Incoming};

#[cfg(feature = "lambda")]
pub(crate) mod stamp;

/// Lambda's limit on the encoded `ClientContext` of an `Invoke`.
pub const MAX_CLIENT_CONTEXT_LEN: usize = 3583;

impl<'a> Incoming<'a> {
    /// A direct invocation: reads the [`Context`]'s trace header and client
    /// context. This is what the default
    /// [`GuardedEvent`](crate::GuardedEvent) methods do.
    pub fn from_context(context: &'a Context) -> Self {
        let mut incoming = Incoming::new(EventSource::Invoke);
        incoming.read_context(context);
        incoming
    }

    /// Merges the [`Context`]'s carriers (trace header, client context) in.
    pub fn read_context(&mut self, context: &'a Context) -> &mut Self {
        if let Some(header) = &context.xray_trace_id {
            TraceField.read(header, self);
        }
        if let Some(client_context) = &context.client_context {
            MapKey::default().read(&client_context.custom, self);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier::KEY;
    use crate::lineage::FunctionId;

    #[test]
    fn context_carriers_are_merged() {
        let mut ctx = Context::default();
        ctx.xray_trace_id = Some("Root=1-a-b;LoopGuard=v1.5.00000001-2".into());
        ctx.client_context = Some(
            serde_json::from_value(serde_json::json!({
                "custom": { KEY: "v1.3.00000001-3.00000002-1", "theirs": "kept" }
            }))
            .unwrap(),
        );
        let incoming = Incoming::from_context(&ctx);
        let l = incoming.lineage();
        assert_eq!(l.count(FunctionId::from_u32(1)), 3);
        assert_eq!(l.count(FunctionId::from_u32(2)), 1);
        assert_eq!(l.hops(), 5);
        assert_eq!(incoming.chain_root(), Some("1-a-b"));
        assert_eq!(incoming.source(), EventSource::Invoke);
    }

    #[test]
    fn malformed_context_values_are_ignored() {
        let mut ctx = Context::default();
        ctx.xray_trace_id = Some("Root=1-a-b;LoopGuard=v1.zz".into());
        ctx.client_context = Some(
            serde_json::from_value(serde_json::json!({"custom": { KEY: "\u{0}\u{ff}" }})).unwrap(),
        );
        assert!(Incoming::from_context(&ctx).lineage().is_empty());
    }
}
