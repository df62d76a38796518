//! What a builder accepts and compiles: limits made from a `Policy`, every mistake listed at
//! once, a limiter shared with other front ends, checked trusted proxies, decision
//! observers, and dynamic limits that go wrong before anything is charged.

use tollgate::{ChargeResult, Limiter, Policy};
use tollgate_tower::TrustedProxies;

use super::*;

#[tokio::test]
async fn a_limit_made_from_a_policy_keeps_its_strategy_and_burst() {
    let bucket = Policy::token_bucket("1/minute".parse().expect("rates"))
        .and_then(|bucket| bucket.with_burst(3))
        .expect("burst");
    let limiter = HttpLimiter::builder()
        .clock(ManualClock::new())
        .route("/a", bucket.clone())
        .route("/b", Limit::policy(bucket))
        .build()
        .expect("valid");
    let app = routes(&limiter);
    assert_eq!(statuses(&app, "/a", ALICE, 4).await, [200, 200, 200, 429]);
    assert_eq!(statuses(&app, "/b", ALICE, 4).await, [200, 200, 200, 429]);
}

#[test]
fn every_mistake_is_listed_with_where_it_is() {
    let policy = Policy::fixed_window("1/second".parse().expect("rates"));
    let err = HttpLimiter::builder()
        .trusted_proxies(["10.0.0.0/33"])
        .default_limit("5/fortnight")
        .route("/a", Limit::policy(policy).strategy(Strategy::TokenBucket))
        .route(
            "/b",
            Limit::new("1/second; 2/minute")
                .strategy(Strategy::TokenBucket)
                .burst(4),
        )
        .route("/c", "3/minute")
        .build()
        .expect_err("four mistakes");
    let mistakes = err.mistakes();
    assert_eq!(mistakes.len(), 4, "{err}");
    assert!(matches!(mistakes[0], DeclarationError::Proxy(_)));
    assert!(matches!(&mistakes[1], DeclarationError::Rates { scope, .. } if scope == "default"));
    assert!(
        matches!(&mistakes[2], DeclarationError::OptionsOnPolicy { scope } if scope == "route \"/a\"")
    );
    assert!(
        matches!(&mistakes[3], DeclarationError::Policy { scope, .. } if scope == "route \"/b\"")
    );
    let lines: Vec<String> = err.to_string().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 4);
    assert!(
        lines[2].starts_with("limit on route \"/a\": made from a Policy"),
        "{}",
        lines[2]
    );
}

#[test]
fn a_clock_set_on_a_builder_sharing_a_limiter_is_a_mistake() {
    let err = HttpLimiter::builder()
        .limiter(Limiter::new(MemoryStore::new()))
        .clock(ManualClock::new())
        .build()
        .expect_err("the limiter has its clock");
    assert_eq!(err.mistakes(), [DeclarationError::ClockOfSharedLimiter]);
    // Set before, it would be lost as silently.
    let err = HttpLimiter::builder()
        .clock(ManualClock::new())
        .limiter(Limiter::new(MemoryStore::new()))
        .build()
        .expect_err("the limiter has its clock");
    assert_eq!(err.mistakes(), [DeclarationError::ClockOfSharedLimiter]);
}

/// Two layers over one limiter (a server's proxy beside its check API): the same store, the
/// same clock, the same inline policies for dynamic limits, but their own counts by name.
#[tokio::test]
async fn layers_sharing_a_limiter_share_its_store_and_keep_their_names_apart() {
    let store = MemoryStore::new();
    let shared = Limiter::new(store.clone()).with_clock(ManualClock::new());
    let build = |namespace: &str| {
        HttpLimiter::builder()
            .limiter(shared.clone())
            .namespace(namespace)
            .route("/a", "2/minute")
            .build()
            .expect("valid")
    };
    let (first, second) = (routes(&build("first:")), routes(&build("second:")));
    assert_eq!(statuses(&first, "/a", ALICE, 3).await, [200, 200, 429]);
    assert_eq!(statuses(&second, "/a", ALICE, 3).await, [200, 200, 429]);
    assert_eq!(store.stats().keys, 2, "both count in the shared store");
    let again = routes(&build("first:"));
    assert_eq!(
        statuses(&again, "/a", ALICE, 1).await,
        [429],
        "same name, same count"
    );
}

#[tokio::test]
async fn checked_trusted_proxies_are_believed() {
    let proxies = TrustedProxies::new(["10.0.0.0/8"]).expect("valid CIDR");
    let limiter = HttpLimiter::builder()
        .trusting(proxies)
        .route("/a", "1/minute")
        .build()
        .expect("valid");
    let app = routes(&limiter);
    let from = |client: &str| {
        let request = request(
            Method::GET,
            "/a",
            "10.0.0.1",
            &[("x-forwarded-for", client)],
        );
        let app = app.clone();
        async move { app.oneshot(request).await.expect("infallible").status() }
    };
    assert_eq!(from(ALICE).await, 200);
    assert_eq!(from(ALICE).await, 429);
    assert_eq!(
        from("198.51.100.9").await,
        200,
        "another client behind the proxy"
    );
}

#[tokio::test]
async fn a_decision_observer_sees_each_charge_of_its_limit() {
    let seen: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let log = Arc::clone(&seen);
    let observed = Limit::new("2/minute").on_decision(move |result, _| {
        let label = match result {
            ChargeResult::Allowed(_) => "allowed",
            ChargeResult::Denied(_) => "denied",
            _ => "other",
        };
        log.lock().expect("not poisoned").push(label);
    });
    let alone = HttpLimiter::builder()
        .clock(ManualClock::new())
        .route("/a", observed.clone())
        .build()
        .expect("valid");
    assert_eq!(
        statuses(&routes(&alone), "/a", ALICE, 3).await,
        [200, 200, 429]
    );
    assert_eq!(
        std::mem::take(&mut *seen.lock().expect("not poisoned")),
        ["allowed", "allowed", "denied"]
    );
    // Behind an application limit of 1, the second request is refused before this limit
    // decides anything.
    let behind = HttpLimiter::builder()
        .clock(ManualClock::new())
        .application_limit("1/minute")
        .route("/a", observed)
        .build()
        .expect("valid");
    assert_eq!(statuses(&routes(&behind), "/a", ALICE, 2).await, [200, 429]);
    assert_eq!(*seen.lock().expect("not poisoned"), ["allowed"]);
}

#[tokio::test]
async fn a_dynamic_limit_that_goes_wrong_charges_nothing() {
    let store = MemoryStore::new();
    let limiter = HttpLimiter::builder()
        .store(store.clone())
        .clock(ManualClock::new())
        .application_limit("5/minute")
        .route(
            "/a",
            Limit::dynamic(|parts| {
                parts
                    .headers
                    .get("x-plan")
                    .map(|plan| plan.to_str().unwrap_or("?").to_owned())
            }),
        )
        .build()
        .expect("valid");
    let app = routes(&limiter);
    let send = |plan: &'static str| {
        let app = app.clone();
        async move {
            let response = app
                .oneshot(request(Method::GET, "/a", ALICE, &[("x-plan", plan)]))
                .await
                .expect("infallible");
            response.status().as_u16()
        }
    };
    assert_eq!(send("1/minute").await, 200);
    assert_eq!(send("1/minute").await, 429);
    for _ in 0..3 {
        assert_eq!(send("many/minute").await, 500);
    }
    // The application limit kept one charge (the denied request's was given back), and none
    // of the failures': four more fit, then it denies.
    for plan in ["2/minute", "3/minute", "4/minute", "4/minute"] {
        assert_eq!(send(plan).await, 200, "{plan}");
    }
    assert_eq!(
        send("5/minute").await,
        429,
        "the application limit: 5 charged"
    );
}

/// A dynamic token bucket's burst is checked when the limiter is built, against the fastest
/// rate a bucket may have: a burst that the limit's own rates refill in time is not refused
/// for a slower rate it never uses, and a burst above the bound still is.
#[tokio::test]
async fn a_dynamic_token_bucket_takes_any_burst_its_rates_refill() {
    let bucket = |burst: u64| {
        HttpLimiter::builder()
            .clock(ManualClock::new())
            .route(
                "/a",
                Limit::dynamic(|_| Some("1000/second".to_owned()))
                    .strategy(tollgate::Strategy::TokenBucket)
                    .burst(burst),
            )
            .build()
    };
    // 5 × 10^9 tokens at 1,000 a second refill in 58 days; at 1 a second, in 158 years.
    assert!(bucket(5_000_000_000).is_ok());
    assert!(bucket(tollgate::MAX_AMOUNT + 1).is_err());
}
