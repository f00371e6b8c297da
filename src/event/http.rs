//! HTTP events: API Gateway REST (v1) and HTTP (v2) APIs, Lambda Function
//! URLs and ALB targets. One unit, read from the `x-loop-guard` header, our
//! field in an `x-amzn-trace-id` header, and the [`Context`].
//!
//! The unit's source is [`EventSource::Http`]: the layer ignores its lineage
//! unless HTTP sources are trusted (`LOOP_GUARD_TRUST_HTTP=true`), because
//! anyone who can call a public endpoint can send any header.

use aws_lambda_events::event::alb::AlbTargetGroupRequest;
use aws_lambda_events::event::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use http::HeaderMap;
use lambda_runtime::Context;

use super::{EventSource, GuardedEvent, Incoming};
use crate::carrier::HttpHeader;

fn read_request<'a>(headers: &'a HeaderMap, context: &'a Context) -> Incoming<'a> {
    let mut incoming = Incoming::new(EventSource::Http);
    incoming.read_carrier(&HttpHeader::default(), headers);
    for value in headers.get_all(http::header::HeaderName::from_static("x-amzn-trace-id")) {
        if let Ok(text) = value.to_str() {
            incoming.read_trace_header(text);
        }
    }
    incoming.read_context(context);
    incoming
}

macro_rules! http_event {
    ($($event:ty),*) => {$(
        impl GuardedEvent for $event {
            fn read_incoming<'a>(&'a self, context: &'a Context, out: &mut Vec<Incoming<'a>>) {
                out.push(read_request(&self.headers, context));
            }
        }
    )*};
}

http_event!(
    ApiGatewayProxyRequest,
    ApiGatewayV2httpRequest,
    AlbTargetGroupRequest,
    LambdaFunctionUrlRequest
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FunctionId;
    use http::HeaderValue;

    #[test]
    fn every_http_event_reads_the_header_and_the_trace_field() {
        let mut headers = HeaderMap::new();
        headers.insert("x-loop-guard", HeaderValue::from_static("v1.3.00000001-3"));
        headers.insert(
            "x-amzn-trace-id",
            HeaderValue::from_static("Root=1-h-1;LoopGuard=v1.5.00000002-5"),
        );
        let ctx = Context::default();
        let mut v1 = ApiGatewayProxyRequest::default();
        v1.headers = headers.clone();
        let mut v2 = ApiGatewayV2httpRequest::default();
        v2.headers = headers.clone();
        let mut alb = AlbTargetGroupRequest::default();
        alb.headers = headers.clone();
        let mut url = LambdaFunctionUrlRequest::default();
        url.headers = headers;
        fn check<E: GuardedEvent>(event: &E, ctx: &Context) {
            let mut out = Vec::new();
            event.read_incoming(ctx, &mut out);
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].source(), EventSource::Http);
            assert_eq!(out[0].lineage().count(FunctionId::from_u32(1)), 3);
            assert_eq!(out[0].lineage().count(FunctionId::from_u32(2)), 5);
            assert_eq!(out[0].chain_root(), Some("1-h-1"));
        }
        check(&v1, &ctx);
        check(&v2, &ctx);
        check(&alb, &ctx);
        check(&url, &ctx);
    }
}
