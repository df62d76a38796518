//! Shadow limits: counted and decided, reported to the hooks, never denying, and left out of
//! the headers unless asked for.

use tollgate::ChargeResult;

use super::*;

/// Counts what `on_decision` saw, by kind: (allowed, denied, shadow denied).
#[derive(Default)]
struct Seen(Mutex<[u32; 3]>);

impl Seen {
    fn record(&self, result: &ChargeResult) {
        let mut seen = self.0.lock().expect("lock");
        match result {
            ChargeResult::Allowed(_) => seen[0] += 1,
            ChargeResult::Denied(_) => seen[1] += 1,
            ChargeResult::ShadowDenied(_) => seen[2] += 1,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn counts(&self) -> [u32; 3] {
        *self.0.lock().expect("lock")
    }
}

#[tokio::test]
async fn a_shadow_limit_never_denies_but_is_counted_and_reported() {
    let clock = ManualClock::new();
    let seen = Arc::new(Seen::default());
    let breaches: Arc<Mutex<Vec<(String, bool, u64)>>> = Arc::default();
    let limiter = builder(&clock)
        .route("/a", Limit::new("4/minute").name("api"))
        .route(
            "/a",
            Limit::new("2/minute").name("trial").shadow().on_decision({
                let seen = Arc::clone(&seen);
                move |result, _| seen.record(result)
            }),
        )
        .on_breach({
            let breaches = Arc::clone(&breaches);
            move |_, breach| {
                breaches.lock().expect("lock").push((
                    breach.limit_name().to_owned(),
                    breach.is_shadow(),
                    breach.retry_after_secs(),
                ));
            }
        })
        .build()
        .expect("valid");
    let app = routes(&limiter);
    // The trial would deny the third and fourth requests; only `api` denies the fifth.
    assert_eq!(
        statuses(&app, "/a", ALICE, 5).await,
        [200, 200, 200, 200, 429]
    );
    assert_eq!(
        seen.counts(),
        [2, 0, 2],
        "the fifth never reached the trial"
    );
    assert_eq!(
        *breaches.lock().expect("lock"),
        [
            ("trial".to_owned(), true, 60),
            ("trial".to_owned(), true, 60),
            ("api".to_owned(), false, 60),
        ]
    );
    // Another client has both counts to itself.
    assert_eq!(statuses(&app, "/a", BOB, 2).await, [200, 200]);
    assert_eq!(seen.counts(), [4, 0, 2]);
}

#[tokio::test]
async fn headers_describe_enforced_limits_unless_shadow_ones_are_asked_for() {
    let clock = ManualClock::new();
    let declare = |include: bool| {
        builder(&clock)
            .headers_include_shadow(include)
            .route("/a", Limit::new("5/minute").name("api"))
            .route("/a", Limit::new("1/minute").name("trial").shadow())
            .build()
            .expect("valid")
    };
    let enforced_only = routes(&declare(false));
    for remaining in ["4", "3"] {
        let response = send(&enforced_only, request(Method::GET, "/a", ALICE, &[])).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            header(&response, "ratelimit-policy"),
            Some(r#""api";q=5;w=60"#)
        );
        assert_eq!(header(&response, "x-ratelimit-remaining"), Some(remaining));
    }
    let with_shadow = routes(&declare(true));
    let first = send(&with_shadow, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(
        header(&first, "ratelimit"),
        Some(r#""api";r=4;t=60, "trial";r=0;t=60"#)
    );
    // The trial would deny the second: it is the closest, the legacy fields describe it, and
    // still the request goes through, with no Retry-After.
    let second = send(&with_shadow, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(second.status(), 200);
    assert!(header(&second, "retry-after").is_none());
    assert_eq!(
        header(&second, "ratelimit-policy"),
        Some(r#""api";q=5;w=60, "trial";q=1;w=60"#)
    );
    assert_eq!(
        header(&second, "ratelimit"),
        Some(r#""api";r=3;t=60, "trial";r=0;t=60"#)
    );
    assert_eq!(header(&second, "x-ratelimit-limit"), Some("1"));
}

#[tokio::test]
async fn a_route_whose_own_limits_are_shadow_still_meets_the_defaults() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .default_limit(Limit::new("2/minute").name("default-policy"))
        .route("/a", Limit::new("1/minute").shadow())
        .route("/b", Limit::new("3/minute").name("b"))
        .build()
        .expect("valid");
    let app = routes(&limiter);
    // Adding the shadow limit to /a changed nothing that is enforced.
    let first = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(
        header(&first, "ratelimit-policy"),
        Some(r#""default-policy";q=2;w=60"#)
    );
    assert_eq!(statuses(&app, "/a", ALICE, 2).await, [200, 429]);
    // An enforced limit of its own replaces the defaults, as always.
    assert_eq!(statuses(&app, "/b", ALICE, 4).await, [200, 200, 200, 429]);
}

#[tokio::test]
async fn a_shadow_application_limit_and_a_shadow_cost_beyond_its_limit_let_requests_through() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .application_limit(Limit::new("1/minute").shadow())
        .route("/a", Limit::new("3/minute").name("a"))
        .route(
            "/b",
            Limit::new("2/minute").name("b-trial").shadow().cost(|_| 5),
        )
        .build()
        .expect("valid");
    let app = routes(&limiter);
    assert_eq!(statuses(&app, "/a", ALICE, 4).await, [200, 200, 200, 429]);
    // /b's only limits are shadow ones (one that could never allow 5): nothing denies.
    assert_eq!(statuses(&app, "/b", ALICE, 3).await, [200, 200, 200]);
    let response = send(&app, request(Method::GET, "/b", ALICE, &[])).await;
    assert!(
        header(&response, "ratelimit").is_none(),
        "no enforced limit"
    );
}
