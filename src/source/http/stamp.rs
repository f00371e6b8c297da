//! The stamp side of HTTP: the `x-loop-guard` header on outgoing requests.

use std::task::{Context, Poll};

use tower::{Layer, Service};

use crate::carrier::HttpHeader;
use crate::chain::stamp_current;

/// Stamps the current chain on outgoing HTTP requests: a tower layer for any `Service<http::Request<B>>`:
/// a hyper / `hyper-util` client, or a tower stack in front of one. Inside a
/// guarded handler it sets the `x-loop-guard` header (see
/// [`HttpHeader`]) to the current lineage, so an
/// HTTP endpoint backed by a guarded function (API Gateway, Function URL,
/// ALB) can count the hop. Outside a guarded handler it changes nothing.
///
/// The receiving function only counts the header when it trusts HTTP
/// sources (`LOOP_GUARD_TRUST_HTTP=true`).
///
/// ```
/// use lambda_loop_guard::source::http::HttpStampLayer;
/// use lambda_loop_guard::chain::Chain;
/// use lambda_loop_guard::{FunctionId, Lineage};
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // Any client service; this one echoes the header it was sent.
/// let client = tower::service_fn(|request: http::Request<()>| async move {
///     Ok::<_, std::convert::Infallible>(request.headers().get("x-loop-guard").cloned())
/// });
/// let mut client = ServiceBuilder::new().layer(HttpStampLayer::new()).service(client);
///
/// let chain = Chain::new(Lineage::new().record_run(FunctionId::from_identity("f")), None);
/// // Inside a guarded handler the whole handler runs in the chain's scope.
/// let sent = chain
///     .scope(async { client.ready().await?.call(http::Request::new(())).await })
///     .await
///     .unwrap();
/// assert_eq!(sent.unwrap(), "v1.1.e30c2799-1"); // FNV-1a of "f", one run
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct HttpStampLayer {
    header: HttpHeader,
}

impl HttpStampLayer {
    /// Stamps the `x-loop-guard` header.
    pub fn new() -> Self {
        HttpStampLayer::default()
    }

    /// Stamps `header` instead.
    pub fn header(header: HttpHeader) -> Self {
        HttpStampLayer { header }
    }
}

impl<S> Layer<S> for HttpStampLayer {
    type Service = HttpStamp<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpStamp {
            inner,
            header: self.header.clone(),
        }
    }
}

/// Sets the lineage header on each request made inside a guarded handler.
#[derive(Debug, Clone)]
pub struct HttpStamp<S> {
    inner: S,
    header: HttpHeader,
}

impl<S, B> Service<http::Request<B>> for HttpStamp<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Err(error) = stamp_current(&self.header, request.headers_mut()) {
            tracing::warn!(%error, "loop guard HTTP header not added");
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Chain;
    use crate::lineage::{FunctionId, Lineage};
    use tower::ServiceExt;

    #[tokio::test]
    async fn stamps_inside_a_chain_and_replaces_an_earlier_value() {
        let echo = tower::service_fn(|request: http::Request<()>| async move {
            Ok::<_, std::convert::Infallible>(
                request
                    .headers()
                    .get_all("x-loop-guard")
                    .iter()
                    .map(|v| v.to_str().unwrap().to_owned())
                    .collect::<Vec<_>>(),
            )
        });
        let mut client = HttpStampLayer::new().layer(echo);
        let outside = client
            .ready()
            .await
            .unwrap()
            .call(http::Request::new(()))
            .await
            .unwrap();
        assert!(outside.is_empty());

        let lineage = Lineage::new().record_run(FunctionId::from_u32(5));
        let mut request = http::Request::new(());
        request.headers_mut().insert(
            "x-loop-guard",
            http::HeaderValue::from_static("v1.9.00000005-9"),
        );
        // The request is made inside the scope, as it is in a guarded handler.
        let sent = Chain::new(lineage, None)
            .scope(async { client.ready().await.unwrap().call(request).await })
            .await
            .unwrap();
        assert_eq!(sent, vec![lineage.to_string()]);
    }
}
