//! Concurrency limits: slots held until the response body has been sent or dropped, a full
//! key answered 429 with `Retry-After`, slots and rate charges taken all or none, and the
//! declarations the builder refuses.

use super::*;

/// `/slow` limited to `max` requests in flight per client, and `/both` to one in flight and
/// two a minute.
fn in_flight_app(clock: &ManualClock, max: u32) -> Router {
    let limiter = builder(clock)
        .route("/slow", Limit::concurrency(max))
        .route("/both", Limit::concurrency(1))
        .route("/both", "2/minute")
        .build()
        .expect("valid");
    Router::new()
        .route("/slow", get(|| async { "slow" }))
        .route("/both", get(|| async { "both" }))
        .layer(limiter.layer())
}

#[tokio::test]
async fn slots_are_held_until_the_body_is_sent_or_dropped() {
    let clock = ManualClock::new();
    let app = in_flight_app(&clock, 2);
    let get = || send(&app, request(Method::GET, "/slow", ALICE, &[]));
    let first = get().await;
    let second = get().await;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let full = get().await;
    assert_eq!(full.status(), StatusCode::TOO_MANY_REQUESTS);
    // Until the earliest lease expires, at most (nothing was released).
    assert_eq!(header(&full, "retry-after"), Some("60"));
    // Another client has its own slots.
    assert_eq!(status(&app, Method::GET, "/slow", BOB, &[]).await, 200);
    // A body read to the end frees its slot.
    assert_eq!(body(first).await, "slow");
    let third = get().await;
    assert_eq!(third.status(), StatusCode::OK);
    assert_eq!(get().await.status(), StatusCode::TOO_MANY_REQUESTS);
    // A body dropped unread (its client gone) frees its slot too.
    drop(second);
    assert_eq!(get().await.status(), StatusCode::OK);
    drop(third);
}

#[tokio::test]
async fn leases_never_released_expire() {
    let clock = ManualClock::new();
    let app = in_flight_app(&clock, 1);
    let held = send(&app, request(Method::GET, "/slow", ALICE, &[])).await;
    assert_eq!(status(&app, Method::GET, "/slow", ALICE, &[]).await, 429);
    clock.advance(Duration::from_secs(60)); // the default lease time
    let after = send(&app, request(Method::GET, "/slow", ALICE, &[])).await;
    assert_eq!(after.status(), StatusCode::OK);
    // The expired lease, released late, does not free the slot the new one holds.
    drop(held);
    assert_eq!(status(&app, Method::GET, "/slow", ALICE, &[]).await, 429);
}

#[tokio::test]
async fn slots_and_rates_are_taken_all_or_none() {
    let clock = ManualClock::new();
    let app = in_flight_app(&clock, 1);
    let get = || send(&app, request(Method::GET, "/both", ALICE, &[]));
    let held = get().await;
    assert_eq!(held.status(), StatusCode::OK);
    // The slot is full: refused, and the rate (1 of 2 left) is not charged.
    assert_eq!(get().await.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(held);
    let second = get().await;
    assert_eq!(
        second.status(),
        StatusCode::OK,
        "the refused request charged no rate"
    );
    drop(second);
    // The rate is spent: refused by it, and the slot it took is given back...
    assert_eq!(get().await.status(), StatusCode::TOO_MANY_REQUESTS);
    clock.advance(Duration::from_secs(60));
    // ...so the next window's request finds the slot free.
    assert_eq!(get().await.status(), StatusCode::OK);
}

#[test]
fn meaningless_or_out_of_bounds_concurrency_limits_are_refused() {
    let err = HttpLimiter::builder()
        .route("/a", Limit::concurrency(0))
        .route("/b", Limit::concurrency(5).burst(3))
        .route(
            "/c",
            Limit::new("5/minute").lease_ttl(Duration::from_secs(1)),
        )
        .route("/d", Limit::concurrency(5).lease_ttl(Duration::ZERO))
        .route("/e", Limit::concurrency(5).shadow())
        .build()
        .expect_err("five mistakes");
    let lines: Vec<String> = err.to_string().lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            r#"limit on route "/a": invalid concurrency limit: max_in_flight must be from 1 to 10000, not 0"#,
            r#"limit on route "/b": burst applies to rate limits, not to a concurrency limit"#,
            r#"limit on route "/c": lease_ttl applies to concurrency limits only"#,
            r#"limit on route "/d": invalid concurrency limit: lease_ttl must be from 1ms to 1 day, not 0ns"#,
            r#"limit on route "/e": shadow applies to rate limits, not to a concurrency limit"#,
        ]
    );
    assert!(matches!(
        err.mistakes()[0],
        DeclarationError::Concurrency { .. }
    ));
}
