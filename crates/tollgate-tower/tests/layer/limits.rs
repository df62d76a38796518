//! Route, default, application, shared, per-method and dynamic limits; costs; deduct-when.

use super::*;

#[tokio::test]
async fn route_limit_denies_with_retry_after_and_json_body() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route("/a", "3/minute")
        .build()
        .expect("valid");
    let app = routes(&limiter);
    assert_eq!(statuses(&app, "/a", ALICE, 3).await, [200, 200, 200]);
    clock.advance(Duration::from_millis(20_500));
    let denied = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(denied.status(), 429);
    // 39.5 s left: rounded up.
    assert_eq!(header(&denied, "retry-after"), Some("40"));
    assert_eq!(header(&denied, "content-type"), Some("application/json"));
    assert_eq!(
        body(denied).await,
        r#"{"error":"rate limit exceeded","retry_after":40}"#
    );
    // Another client, another count; the route's other neighbours are unlimited.
    assert_eq!(status(&app, Method::GET, "/a", BOB, &[]).await, 200);
    assert_eq!(statuses(&app, "/b", ALICE, 10).await, [200; 10]);
    clock.advance(Duration::from_secs(40));
    assert_eq!(status(&app, Method::GET, "/a", ALICE, &[]).await, 200);
}

#[tokio::test]
async fn retry_after_is_never_zero() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route(
            "/a",
            Limit::new("10/second").strategy(Strategy::TokenBucket),
        )
        .build()
        .expect("valid");
    let app = routes(&limiter);
    assert_eq!(statuses(&app, "/a", ALICE, 10).await, [200; 10]);
    let denied = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    // A token is 100 ms away: the header says 1, not 0.
    assert_eq!(
        (denied.status().as_u16(), header(&denied, "retry-after")),
        (429, Some("1"))
    );
}

#[tokio::test]
async fn several_rates_and_strategies_on_one_route() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route(
            "/a",
            Limit::new("2/second; 3/minute").strategy(Strategy::SlidingWindowLog),
        )
        .route(
            "/b",
            Limit::new("2/minute").strategy(Strategy::SlidingWindowCounter),
        )
        .build()
        .expect("valid");
    let app = routes(&limiter);
    assert_eq!(statuses(&app, "/a", ALICE, 3).await, [200, 200, 429]);
    clock.advance(Duration::from_secs(1));
    assert_eq!(statuses(&app, "/a", ALICE, 2).await, [200, 429]);
    let denied = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    // Unnamed, the limit is called by the rate that denied.
    assert_eq!(
        header(&denied, "ratelimit-policy"),
        Some(r#""3/minute";q=3;w=60"#)
    );
    assert_eq!(statuses(&app, "/b", ALICE, 3).await, [200, 200, 429]);
}

#[tokio::test]
async fn defaults_apply_per_route_to_routes_without_limits() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .default_limit("2/minute")
        .route("/b", "5/minute")
        .build()
        .expect("valid");
    let app = routes(&limiter);
    // Each route has its own default count.
    assert_eq!(statuses(&app, "/a", ALICE, 3).await, [200, 200, 429]);
    assert_eq!(statuses(&app, "/items/1", ALICE, 1).await, [200]);
    // /items/{id} is one route, whatever the id.
    assert_eq!(statuses(&app, "/items/2", ALICE, 2).await, [200, 429]);
    // /b has its own limit instead of the default.
    assert_eq!(
        statuses(&app, "/b", ALICE, 6).await,
        [200, 200, 200, 200, 200, 429]
    );
    // Unmatched paths share one default count: inventing paths earns nothing.
    assert_eq!(statuses(&app, "/nope/1", ALICE, 1).await, [404]);
    assert_eq!(statuses(&app, "/nope/2", ALICE, 2).await, [404, 429]);
}

#[tokio::test]
async fn application_limit_is_one_count_across_routes() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .application_limit("3/minute")
        .route("/a", "10/minute")
        .build()
        .expect("valid");
    let app = routes(&limiter);
    assert_eq!(statuses(&app, "/a", ALICE, 2).await, [200, 200]);
    assert_eq!(statuses(&app, "/b", ALICE, 2).await, [200, 429]);
    assert_eq!(statuses(&app, "/a", ALICE, 1).await, [429]);
    assert_eq!(statuses(&app, "/b", BOB, 1).await, [200]);
    // Exempt routes escape application limits too.
    let limiter = builder(&clock)
        .application_limit("1/minute")
        .exempt("/health")
        .build()
        .expect("valid");
    let exempting = routes(&limiter);
    assert_eq!(statuses(&exempting, "/a", ALICE, 2).await, [200, 429]);
    assert_eq!(statuses(&exempting, "/health", ALICE, 5).await, [200; 5]);
}

#[tokio::test]
async fn a_denial_gives_back_what_other_limits_charged() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .application_limit("3/minute")
        .route("/a", "1/minute")
        .build()
        .expect("valid");
    let app = routes(&limiter);
    // /a denies its 2nd..5th requests; the application count keeps only the allowed one.
    assert_eq!(
        statuses(&app, "/a", ALICE, 5).await,
        [200, 429, 429, 429, 429]
    );
    assert_eq!(statuses(&app, "/b", ALICE, 3).await, [200, 200, 429]);
}

#[tokio::test]
async fn shared_limit_is_one_count_for_its_routes() {
    let clock = ManualClock::new();
    let shared = Limit::new("3/minute").shared("ab");
    let limiter = builder(&clock)
        .route("/a", shared.clone())
        .route("/b", shared)
        .route("/items/{id}", "3/minute")
        .build()
        .expect("valid");
    let app = routes(&limiter);
    assert_eq!(statuses(&app, "/a", ALICE, 2).await, [200, 200]);
    let last = send(&app, request(Method::GET, "/b", ALICE, &[])).await;
    assert_eq!(header(&last, "ratelimit"), Some(r#""ab";r=0;t=60"#));
    assert_eq!(statuses(&app, "/b", ALICE, 1).await, [429]);
    // Routes with limits of their own never share a count by accident.
    assert_eq!(statuses(&app, "/items/1", ALICE, 3).await, [200; 3]);

    let err = HttpLimiter::builder()
        .route("/a", Limit::new("3/minute").shared("x"))
        .route("/b", Limit::new("4/minute").shared("x"))
        .build()
        .expect_err("a name reused with other rates");
    assert_eq!(
        err.mistakes(),
        [DeclarationError::SharedNameReused("x".to_owned())]
    );
    // Same rates, different closures: not the same limit either.
    let err = HttpLimiter::builder()
        .route("/a", Limit::new("3/minute").shared("y").cost(|_| 1))
        .route("/b", Limit::new("3/minute").shared("y").cost(|_| 2))
        .build()
        .expect_err("a name reused with another cost");
    assert_eq!(
        err.mistakes(),
        [DeclarationError::SharedNameReused("y".to_owned())]
    );
}

#[tokio::test]
async fn exempt_when_predicate() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .default_limit("1/minute")
        .exempt_when(|parts| parts.headers.get("x-internal").is_some_and(|v| v == "yes"))
        .build()
        .expect("valid");
    let app = routes(&limiter);
    let internal = [("x-internal", "yes")];
    for _ in 0..5 {
        let response = send(&app, request(Method::GET, "/a", ALICE, &internal)).await;
        assert_eq!(response.status(), 200);
        assert!(
            header(&response, "ratelimit").is_none(),
            "exempt: no headers"
        );
    }
    assert_eq!(
        status(&app, Method::GET, "/a", ALICE, &[("x-internal", "no")]).await,
        200
    );
    assert_eq!(status(&app, Method::GET, "/a", ALICE, &[]).await, 429);
}

#[tokio::test]
async fn per_method_counts_methods_apart() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route("/a", Limit::new("1/minute").per_method())
        .route("/b", "1/minute")
        .build()
        .expect("valid");
    let app = routes(&limiter);
    assert_eq!(status(&app, Method::GET, "/a", ALICE, &[]).await, 200);
    assert_eq!(status(&app, Method::POST, "/a", ALICE, &[]).await, 200);
    assert_eq!(status(&app, Method::GET, "/a", ALICE, &[]).await, 429);
    assert_eq!(status(&app, Method::POST, "/a", ALICE, &[]).await, 429);
    // Without per_method, methods share the route's count (HEAD /b is routed as GET).
    assert_eq!(status(&app, Method::GET, "/b", ALICE, &[]).await, 200);
    assert_eq!(status(&app, Method::HEAD, "/b", ALICE, &[]).await, 429);
}

#[tokio::test]
async fn limits_for_some_methods_leave_the_others_to_the_defaults() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .default_limit("2/minute")
        .route("/a", Limit::new("1/minute").methods([Method::POST]))
        .build()
        .expect("valid");
    let app = routes(&limiter);
    assert_eq!(status(&app, Method::POST, "/a", ALICE, &[]).await, 200);
    assert_eq!(status(&app, Method::POST, "/a", ALICE, &[]).await, 429);
    // GET /a meets the default limit, counted apart from POST's.
    assert_eq!(statuses(&app, "/a", ALICE, 3).await, [200, 200, 429]);
}

#[tokio::test]
async fn dynamic_limits_by_plan() {
    let clock = ManualClock::new();
    let by_plan = Limit::dynamic(|parts| match parts.headers.get("x-plan") {
        Some(plan) if plan == "paid" => Some("5/minute".to_owned()),
        Some(plan) if plan == "unlimited" => None,
        Some(plan) if plan == "broken" => Some("5/fortnight".to_owned()),
        _ => Some("2/minute".to_owned()),
    });
    let limiter = builder(&clock).route("/a", by_plan).build().expect("valid");
    let app = routes(&limiter);
    let get_as = |plan: &'static str| {
        let app = app.clone();
        async move { status(&app, Method::GET, "/a", ALICE, &[("x-plan", plan)]).await }
    };
    let mut free = Vec::new();
    for _ in 0..3 {
        free.push(get_as("free").await);
    }
    assert_eq!(free, [200, 200, 429]);
    let mut paid = Vec::new();
    for _ in 0..6 {
        paid.push(get_as("paid").await);
    }
    assert_eq!(paid, [200, 200, 200, 200, 200, 429]);
    for _ in 0..10 {
        assert_eq!(get_as("unlimited").await, 200);
    }
    let broken = send(
        &app,
        request(Method::GET, "/a", ALICE, &[("x-plan", "broken")]),
    )
    .await;
    assert_eq!(broken.status(), 500);
    assert!(body(broken).await.contains("unknown unit"));
}

#[tokio::test]
async fn cost_per_request() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route(
            "/a",
            Limit::new("10/minute").cost(|parts| match parts.uri.query() {
                Some("big") => 11,
                Some("free") => 0,
                _ => 5,
            }),
        )
        .build()
        .expect("valid");
    let app = routes(&limiter);
    let first = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(header(&first, "x-ratelimit-remaining"), Some("5"));
    assert_eq!(statuses(&app, "/a", ALICE, 2).await, [200, 429]);
    // Cost 0 goes through uncounted, even when nothing is left.
    assert_eq!(statuses(&app, "/a?free", ALICE, 3).await, [200; 3]);
    // More than the limit ever allows: refused, with no Retry-After to wait for.
    let big = send(&app, request(Method::GET, "/a?big", BOB, &[])).await;
    assert_eq!(big.status(), 429);
    assert!(header(&big, "retry-after").is_none());
    assert!(
        body(big)
            .await
            .contains(r#"a hit of cost 11 can never fit policy \"/a\", which allows at most 10"#)
    );
    assert_eq!(status(&app, Method::GET, "/a", BOB, &[]).await, 200);
}

#[tokio::test]
async fn deduct_when_counts_only_failed_logins() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route(
            "/login",
            Limit::new("2/minute")
                .deduct_when(|response| response.status == StatusCode::UNAUTHORIZED),
        )
        .build()
        .expect("valid");
    let app = routes(&limiter);
    for _ in 0..5 {
        assert_eq!(
            status(&app, Method::POST, "/login?ok", ALICE, &[]).await,
            200
        );
    }
    assert_eq!(status(&app, Method::POST, "/login", ALICE, &[]).await, 401);
    assert_eq!(
        status(&app, Method::POST, "/login?ok", ALICE, &[]).await,
        200
    );
    assert_eq!(status(&app, Method::POST, "/login", ALICE, &[]).await, 401);
    // Two failures: even a correct password waits now.
    assert_eq!(
        status(&app, Method::POST, "/login?ok", ALICE, &[]).await,
        429
    );
}

#[tokio::test]
async fn deduct_when_holds_the_limit_against_parallel_requests() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route(
            "/slow",
            Limit::new("3/minute").deduct_when(|response| response.status != StatusCode::OK),
        )
        .build()
        .expect("valid");
    let release = Arc::new(tokio::sync::Notify::new());
    let in_handler = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route(
            "/slow",
            get({
                let (release, in_handler) = (release.clone(), in_handler.clone());
                move || async move {
                    in_handler.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    StatusCode::UNAUTHORIZED
                }
            }),
        )
        .layer(limiter.layer());
    // 20 requests at once while the first ones are still in their handler.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { status(&app, Method::GET, "/slow", ALICE, &[]).await })
        })
        .collect();
    while in_handler.load(Ordering::SeqCst) < 3 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        in_handler.load(Ordering::SeqCst),
        3,
        "only 3 got past the limit"
    );
    release.notify_waiters();
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.expect("task"));
    }
    codes.sort_unstable();
    assert_eq!(codes.iter().filter(|&&c| c == 401).count(), 3);
    assert_eq!(codes.iter().filter(|&&c| c == 429).count(), 17);
}
