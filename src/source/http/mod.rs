//! HTTP: API Gateway REST (v1) and HTTP (v2) APIs, Lambda Function URLs and
//! ALB targets, one unit per request.
//!
//! * Read: the `x-loop-guard` header, our field in an `x-amzn-trace-id`
//!   header, and the [`Context`]. The units are [`EventSource::Http`]: the
//!   layer counts them **only when HTTP sources are trusted**
//!   (`LOOP_GUARD_TRUST_HTTP=true`), because anyone who can call a public
//!   endpoint can send any header. A custom source whose units are
//!   `EventSource::Http` gets the same rule.
//! * Stamp: [`HttpStampLayer`], a tower layer for any
//!   `Service<http::Request<B>>` client (hyper, hyper-util).

use aws_lambda_events::event::alb::AlbTargetGroupRequest;
use aws_lambda_events::event::apigw::{
    ApiGatewayCustomAuthorizerResponse, ApiGatewayV2CustomAuthorizerIamPolicyResponse,
    ApiGatewayV2CustomAuthorizerSimpleResponse,
};
use aws_lambda_events::event::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use http::HeaderMap;
use lambda_runtime::Context;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::carrier::{Carrier, HttpHeader, TraceField};
use crate::config::LoopGuardConfig;
use crate::incoming::{EventSource, Incoming, Units};
use crate::source::{GuardedEvent, GuardedResponse};
use crate::trace_header::TRACE_ID_HEADER;

mod stamp;

pub use stamp::{HttpStamp, HttpStampLayer};

fn read_request<'a>(headers: &'a HeaderMap, context: &'a Context) -> Incoming<'a> {
    let mut incoming = Incoming::new(EventSource::Http);
    HttpHeader::default().read(headers, &mut incoming);
    for value in headers.get_all(TRACE_ID_HEADER) {
        if let Ok(text) = value.to_str() {
            TraceField.read_header(text, &mut incoming);
        }
    }
    incoming.read_context(context);
    incoming
}

macro_rules! http_event {
    ($($event:ty),*) => {$(
        impl GuardedEvent for $event {
            fn read_incoming<'a>(
                &'a self,
                context: &'a Context,
                _config: &LoopGuardConfig,
                out: &mut Units<'a, '_>,
            ) {
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

impl GuardedResponse for aws_lambda_events::event::apigw::ApiGatewayProxyResponse {}
impl GuardedResponse for aws_lambda_events::event::apigw::ApiGatewayV2httpResponse {}
impl GuardedResponse for aws_lambda_events::event::alb::AlbTargetGroupResponse {}
impl GuardedResponse for aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlResponse {}
impl<T: Serialize + DeserializeOwned> GuardedResponse for ApiGatewayCustomAuthorizerResponse<T> {}
impl<T: Serialize + DeserializeOwned> GuardedResponse
    for ApiGatewayV2CustomAuthorizerSimpleResponse<T>
{
}
impl<T: Serialize + DeserializeOwned> GuardedResponse
    for ApiGatewayV2CustomAuthorizerIamPolicyResponse<T>
{
}
impl<B> GuardedResponse for http::Response<B> {}

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
            let out = crate::source::read_units(event, ctx, &crate::config::test_config());
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
