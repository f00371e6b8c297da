//! Sequential mode: calls from tasks the chain was not carried into are
//! stamped with the running invocation's chain. Its own test binary: the
//! fallback is process-wide.

use lambda_loop_guard::{Chain, FunctionId, LoopGuardConfig, LoopGuardLayer};
use lambda_runtime::{Context, LambdaEvent};
use tower::{service_fn, Layer, ServiceExt};

fn guard(sequential: bool) -> LoopGuardLayer {
    let config = LoopGuardConfig::builder()
        .function_identity("seq")
        .sequential_fallback(sequential)
        .build()
        .unwrap();
    LoopGuardLayer::new(config).metric_sink(())
}

/// What a plain `tokio::spawn`, a `spawn_blocking` and a `carry`d task see.
async fn seen_from_spawned_tasks(sequential: bool) -> [Option<u16>; 3] {
    let me = FunctionId::from_identity("seq");
    let handler = guard(sequential).layer(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let count = move |c: Option<Chain>| c.map(|c| c.lineage().count(me));
            let plain = tokio::spawn(async move { count(Chain::current()) })
                .await
                .unwrap();
            let blocking = tokio::task::spawn_blocking(move || count(Chain::current()))
                .await
                .unwrap();
            let carried = tokio::spawn(lambda_loop_guard::chain::carry(async move {
                count(Chain::current())
            }))
            .await
            .unwrap();
            Ok::<_, lambda_runtime::Error>([plain, blocking, carried])
        },
    ));
    handler
        .oneshot(LambdaEvent::new(serde_json::json!({}), Context::default()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_tasks_see_the_running_chain_only_in_sequential_mode() {
    // One test, in order: the fallback is process-wide.
    assert_eq!(
        seen_from_spawned_tasks(true).await,
        [Some(1), Some(1), Some(1)]
    );
    assert!(
        Chain::current().is_none(),
        "cleared when the invocation ends"
    );
    assert_eq!(seen_from_spawned_tasks(false).await, [None, None, Some(1)]);

    // Nested guards: when the inner invocation ends, the outer one's chain
    // is the fallback again.
    let outer_me = FunctionId::from_identity("seq");
    let inner = guard(true).layer(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        Ok::<_, lambda_runtime::Error>(())
    }));
    let outer = guard(true).layer(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let inner = inner.clone();
        async move {
            inner
                .oneshot(LambdaEvent::new(serde_json::json!({}), Context::default()))
                .await
                .unwrap();
            let seen = tokio::spawn(async move { Chain::current() }).await.unwrap();
            Ok::<_, lambda_runtime::Error>(seen.map(|c| c.lineage().count(outer_me)))
        }
    }));
    let seen = outer
        .oneshot(LambdaEvent::new(serde_json::json!({}), Context::default()))
        .await
        .unwrap();
    assert_eq!(seen, Some(1), "the outer chain is back");

    // A dropped response future ends the invocation too.
    let handler = guard(true).layer(service_fn(|_: LambdaEvent<serde_json::Value>| {
        std::future::pending::<Result<(), lambda_runtime::Error>>()
    }));
    let future = handler.oneshot(LambdaEvent::new(serde_json::json!({}), Context::default()));
    let timed_out = tokio::time::timeout(std::time::Duration::from_millis(20), future).await;
    assert!(timed_out.is_err());
    assert!(Chain::current().is_none());
}
