//! An HTTP loop over real sockets: a loopback "API Gateway" (a hyper server)
//! turns each request into an `ApiGatewayV2httpRequest` for a guarded
//! handler, and the handler calls the same endpoint again through a
//! hyper-util client wrapped in `HttpStampLayer`.
//!
//! When the function trusts HTTP sources the loop stops after exactly
//! `max_depth` runs. When it does not (the default), a caller's header is
//! ignored: a forged huge count does not drop the request, and the loop is
//! not counted either (the test stops it itself after a fixed number of
//! hops).
#![cfg(feature = "http")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use lambda_loop_guard::source::http::HttpStampLayer;
use lambda_loop_guard::{LoopGuardConfig, LoopGuardError, LoopGuardLayer};
use lambda_runtime::{Context, LambdaEvent};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

/// The hop number travels in a header of the test's own, so the untrusted
/// loop can be stopped by the test.
const HOP: &str = "x-test-hop";
/// Where the untrusted loop is cut by the test.
const TEST_CUTOFF: usize = 8;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

struct Loop {
    runs: AtomicUsize,
    drops: AtomicUsize,
}

/// Starts the loopback endpoint backed by a guarded handler; returns its
/// address and the run/drop counters.
async fn start(trust_http: bool, max_depth: u32) -> (SocketAddr, Arc<Loop>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(Loop {
        runs: AtomicUsize::new(0),
        drops: AtomicUsize::new(0),
    });
    let config = LoopGuardConfig::builder()
        .function_identity("http-looper")
        .max_depth(max_depth)
        .trust_http(trust_http)
        .build()
        .unwrap();
    let guard = LoopGuardLayer::new(config).metric_sink(());
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let outgoing = ServiceBuilder::new()
        .layer(HttpStampLayer::new())
        .service(client);

    let handler = {
        let state = state.clone();
        tower::service_fn(move |event: LambdaEvent<ApiGatewayV2httpRequest>| {
            let state = state.clone();
            let mut outgoing = outgoing.clone();
            async move {
                state.runs.fetch_add(1, Ordering::SeqCst);
                let hop: usize = event
                    .payload
                    .headers
                    .get(HOP)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut status = 200;
                if hop < TEST_CUTOFF {
                    // The bug: the function calls its own endpoint.
                    let request = http::Request::post(format!("http://{addr}/"))
                        .header(HOP, (hop + 1).to_string())
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let response = outgoing.ready().await?.call(request).await?;
                    status = response.status().as_u16();
                }
                let mut response = ApiGatewayV2httpResponse::default();
                response.status_code = i64::from(status);
                Ok::<_, lambda_runtime::Error>(response)
            }
        })
    };
    let function = guard.layer(handler);

    let server_state = state.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let function = function.clone();
            let state = server_state.clone();
            tokio::spawn(async move {
                let serve = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let function = function.clone();
                        let state = state.clone();
                        async move {
                            // API Gateway's part: the HTTP request becomes an event.
                            let mut event = ApiGatewayV2httpRequest::default();
                            event.headers = request.headers().clone();
                            event.raw_path = Some(request.uri().path().to_owned());
                            let status = match function
                                .oneshot(LambdaEvent::new(event, Context::default()))
                                .await
                            {
                                Ok(response) => response.status_code as u16,
                                Err(LoopGuardError::Dropped(_)) => {
                                    state.drops.fetch_add(1, Ordering::SeqCst);
                                    508
                                }
                                Err(_) => 500,
                            };
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), serve)
                    .await;
            });
        }
    });
    (addr, state)
}

async fn first_request(addr: SocketAddr, forged: Option<&str>) -> u16 {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::post(format!("http://{addr}/"));
    if let Some(value) = forged {
        request = request.header("x-loop-guard", value);
    }
    let response = client
        .request(request.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_http_loop_stops_at_max_depth() {
    let (addr, state) = start(true, 3).await;
    let status = first_request(addr, None).await;
    assert_eq!(state.runs.load(Ordering::SeqCst), 3);
    assert_eq!(state.drops.load(Ordering::SeqCst), 1);
    // The drop's 508 travelled back up the chain of calls.
    assert_eq!(status, 508);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_http_headers_are_ignored() {
    let (addr, state) = start(false, 3).await;
    // A caller forges a count far past the limit for this very function.
    let forged = format!(
        "{}",
        (0..500).fold(lambda_loop_guard::Lineage::new(), |l, _| {
            l.record_run(lambda_loop_guard::FunctionId::from_identity("http-looper"))
        })
    );
    let status = first_request(addr, Some(&forged)).await;
    assert_eq!(status, 200);
    assert_eq!(state.drops.load(Ordering::SeqCst), 0);
    // Not counted either: only the test's own cut-off ended the loop.
    assert_eq!(state.runs.load(Ordering::SeqCst), TEST_CUTOFF + 1);
}
