//! Any Tower service, configuration errors, store failures, route and handler layers.

use super::*;

#[tokio::test]
async fn bad_configuration_is_an_error_that_says_where() {
    let cases: [(Builder<MemoryStore>, &str); 4] = [
        (
            HttpLimiter::builder().default_limit("5 per fortnight"),
            "limit on default: invalid rate",
        ),
        (
            HttpLimiter::builder().route("/a", Limit::new("5/minute").burst(3)),
            "limit on route \"/a\": burst applies to token-bucket only",
        ),
        (
            HttpLimiter::builder().application_limit(
                Limit::dynamic(|_| None)
                    .burst(0)
                    .strategy(Strategy::TokenBucket),
            ),
            "limit on application: burst must be at least 1",
        ),
        (
            HttpLimiter::builder().trusted_proxies(["10.0.0.0/8", "example.com"]),
            "invalid trusted proxy \"example.com\"",
        ),
    ];
    for (builder, expected) in cases {
        let err = builder.build().expect_err(expected);
        assert!(err.to_string().starts_with(expected), "{err} / {expected}");
    }
}

/// A plain Tower service (no axum): routes are request paths, the peer comes from
/// `PeerAddr`.
#[tokio::test]
async fn works_with_any_tower_service_and_is_always_ready() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route("/pkg.Svc/Call", "2/minute")
        .build()
        .expect("valid");
    let calls = Arc::new(AtomicU64::new(0));
    let inner = service_fn({
        let calls = calls.clone();
        move |_: http::Request<String>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(http::Response::new(String::from("done"))) }
        }
    });
    let mut service = limiter.layer().layer(inner);
    let request = |path: &str| {
        let mut request = http::Request::builder()
            .uri(path)
            .body(String::new())
            .expect("valid");
        request
            .extensions_mut()
            .insert(PeerAddr("192.0.2.1:1".parse().expect("addr")));
        request
    };
    let mut codes = Vec::new();
    for _ in 0..4 {
        // Ready at once, denied or not: the rejection comes from `call`.
        let ready = std::future::poll_fn(|cx| service.poll_ready(cx));
        futures_executor::block_on(async {
            assert!(matches!(futures_poll_once(ready).await, Some(Ok(()))));
        });
        codes.push(
            service
                .call(request("/pkg.Svc/Call"))
                .await
                .expect("infallible")
                .status()
                .as_u16(),
        );
    }
    assert_eq!(codes, [200, 200, 429, 429]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Other paths are not limited (no defaults).
    let other = service
        .ready()
        .await
        .expect("ready")
        .call(request("/other"))
        .await
        .expect("ok");
    assert_eq!(other.status(), 200);
}

/// Polls `future` once: `Some(output)` if it was ready.
async fn futures_poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match future.as_mut().poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

async fn with_failing_store(policy: Option<FailureMode>) -> (Vec<u16>, Vec<u16>, Vec<u16>) {
    let clock = ManualClock::new();
    let flaky = FlakyStore::new();
    let builder = builder(&clock).route("/a", "2/minute");
    let app = match policy {
        Some(policy) => routes(
            &builder
                .store(Failover::new(flaky.clone(), policy))
                .build()
                .expect("valid"),
        ),
        None => routes(&builder.store(flaky.clone()).build().expect("valid")),
    };
    let before = statuses(&app, "/a", ALICE, 1).await;
    flaky.set_down(true);
    let during = statuses(&app, "/a", ALICE, 3).await;
    flaky.set_down(false);
    clock.advance(Failover::<FlakyStore>::PROBE_INTERVAL);
    let after = statuses(&app, "/a", ALICE, 2).await;
    (before, during, after)
}

#[tokio::test]
async fn store_failure_policies() {
    // No policy: a store error is a 503 (deny).
    assert_eq!(
        with_failing_store(None).await,
        (vec![200], vec![503; 3], vec![200, 429])
    );
    assert_eq!(
        with_failing_store(Some(FailureMode::Deny)).await,
        (vec![200], vec![503; 3], vec![200, 429])
    );
    // Allow: fail open, uncounted.
    assert_eq!(
        with_failing_store(Some(FailureMode::Allow)).await,
        (vec![200], vec![200; 3], vec![200, 429])
    );
    // Fallback: counted in memory while down (a fresh count), back to the store after.
    assert_eq!(
        with_failing_store(Some(FailureMode::Fallback)).await,
        (vec![200], vec![200, 200, 429], vec![200, 429])
    );
}

#[tokio::test]
async fn store_failure_answer_is_a_503_with_a_body() {
    let clock = ManualClock::new();
    let flaky = FlakyStore::new();
    flaky.set_down(true);
    let limiter = builder(&clock)
        .store(flaky)
        .route("/a", "2/minute")
        .build()
        .expect("valid");
    let response = send(&routes(&limiter), request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(response.status(), 503);
    assert_eq!(header(&response, "retry-after"), Some("1"));
    assert_eq!(
        body(response).await,
        r#"{"error":"rate limit store unavailable"}"#
    );
}

#[test]
fn request_key_extractor_trait_objects_compose() {
    let extractor: Arc<dyn KeyExtractor> = Arc::new(key::header("x-a").or(key::constant("c")));
    let (parts, _) = http::Request::new(()).into_parts();
    assert_eq!(extractor.extract(&parts), Some(RequestKey::from("c")));
}

#[tokio::test]
async fn route_layer_and_handler_layer() {
    use axum::handler::Handler;

    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route("/a", "1/minute")
        .route("/b", "1/minute")
        .route("/items/{id}", "1/minute")
        .build()
        .expect("valid");
    let app = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .route("/free", get(|| async { "free" }))
        // On the routes added so far (not on the 404 fallback).
        .route_layer(limiter.layer())
        // On one method router.
        .route("/a", get(|| async { "a" }).route_layer(limiter.layer()))
        // On one handler.
        .route("/b", get((|| async { "b" }).layer(limiter.layer())));
    assert_eq!(statuses(&app, "/a", ALICE, 2).await, [200, 429]);
    assert_eq!(statuses(&app, "/b", ALICE, 2).await, [200, 429]);
    assert_eq!(statuses(&app, "/items/7", ALICE, 2).await, [200, 429]);
    assert_eq!(statuses(&app, "/free", ALICE, 3).await, [200; 3]);
}
