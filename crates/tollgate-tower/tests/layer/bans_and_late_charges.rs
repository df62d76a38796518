//! Bans after repeated breaches (`Limit::ban`) and costs charged after the response
//! (`Limit::charge_after`), through `oneshot` with a manual clock.

use super::*;

/// `/complete` answering with `x-tokens` set to its `?tokens=` (1 without it), and `/fail`,
/// a handler that fails, behind `limiter`.
fn completions(limiter: &HttpLimiter<impl Store>) -> Router {
    let tokens = |request: Request| async move {
        let tokens = request
            .uri()
            .query()
            .and_then(|query| query.strip_prefix("tokens="))
            .unwrap_or("1")
            .to_owned();
        Response::builder()
            .header("x-tokens", tokens)
            .body(Body::empty())
            .expect("valid response")
    };
    Router::new()
        .route("/complete", post(tokens))
        .layer(limiter.layer())
}

/// The tokens a response says it took.
fn tokens(response: &http::response::Parts) -> u64 {
    response
        .headers
        .get("x-tokens")
        .and_then(|value| value.to_str().ok()?.parse().ok())
        .unwrap_or(0)
}

async fn complete(app: &Router, tokens: u64) -> u16 {
    let path = format!("/complete?tokens={tokens}");
    status(app, Method::POST, &path, ALICE, &[]).await
}

#[tokio::test]
async fn a_client_that_keeps_breaching_is_banned_with_the_ban_in_the_answer() {
    let clock = ManualClock::new();
    let breaches = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&breaches);
    let limiter = builder(&clock)
        .route(
            "/a",
            Limit::new("2/minute").ban("3/10 minutes", Duration::from_secs(3600)),
        )
        .on_breach(move |_, breach: &Breach| {
            let decision = breach.decision();
            seen.lock()
                .expect("lock")
                .push((decision.banned(), decision.ban_started()));
        })
        .build()
        .expect("valid");
    let app = routes(&limiter);
    assert_eq!(statuses(&app, "/a", ALICE, 4).await, [200, 200, 429, 429]);
    let banned = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(banned.status(), 429);
    assert_eq!(header(&banned, "retry-after"), Some("3600"));
    assert_eq!(header(&banned, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(
        body(banned).await,
        r#"{"error":"rate limit exceeded","retry_after":3600,"banned":true}"#
    );
    // Another client is not banned; the minute passes, the ban holds, and its denials do
    // not count against the limit (nor extend the ban).
    assert_eq!(status(&app, Method::GET, "/a", BOB, &[]).await, 200);
    clock.advance(Duration::from_secs(60));
    assert_eq!(statuses(&app, "/a", ALICE, 5).await, [429; 5]);
    let later = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(header(&later, "retry-after"), Some("3540"));
    clock.advance(Duration::from_secs(3540));
    assert_eq!(statuses(&app, "/a", ALICE, 3).await, [200, 200, 429]);
    let breaches = breaches.lock().expect("lock").clone();
    assert_eq!(
        &breaches[..3],
        [(false, false), (false, false), (true, true)]
    );
    assert!(
        breaches[3..9]
            .iter()
            .all(|&(banned, started)| banned && !started)
    );
}

#[tokio::test]
async fn a_ban_on_a_default_limit_is_counted_per_route_as_the_limit_is() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .default_limit(Limit::new("1/minute").ban("1/minute", Duration::from_secs(600)))
        .build()
        .expect("valid");
    let app = routes(&limiter);
    assert_eq!(statuses(&app, "/a", ALICE, 3).await, [200, 429, 429]);
    let banned = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(header(&banned, "retry-after"), Some("600"));
    // The default limit counts each route apart, and so does its ban.
    assert_eq!(status(&app, Method::GET, "/b", ALICE, &[]).await, 200);
}

#[tokio::test]
async fn a_dynamic_limit_bans_under_each_policy_it_picks() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route(
            "/a",
            Limit::dynamic(|_| Some("1/minute".to_owned())).ban("1/hour", Duration::from_secs(60)),
        )
        .build()
        .expect("valid");
    let app = routes(&limiter);
    assert_eq!(statuses(&app, "/a", ALICE, 2).await, [200, 429]);
    let banned = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert!(body(banned).await.contains(r#""banned":true"#));
}

#[tokio::test]
async fn a_response_is_charged_its_cost_and_debt_waits_for_the_refill() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route(
            "/complete",
            Limit::new("1000/minute")
                .strategy(Strategy::TokenBucket)
                .charge_after(tokens),
        )
        .build()
        .expect("valid");
    let app = completions(&limiter);
    assert_eq!(complete(&app, 600).await, 200);
    // 400 left: let through, and charged 1000 in the end: a debt of 600.
    assert_eq!(complete(&app, 1000).await, 200);
    let denied = send(&app, request(Method::POST, "/complete", ALICE, &[])).await;
    assert_eq!(denied.status(), 429);
    // 601 tokens at one per 60 ms: 36.06 s.
    assert_eq!(header(&denied, "retry-after"), Some("37"));
    clock.advance(Duration::from_millis(36_060));
    // A response of no tokens costs nothing in the end: the unit charged up front is
    // given back.
    for _ in 0..3 {
        assert_eq!(complete(&app, 0).await, 200);
    }
    assert_eq!(complete(&app, 1).await, 200);
    assert_eq!(complete(&app, 1).await, 429);
}

#[tokio::test]
async fn a_late_cost_is_forgiven_beyond_one_limit_of_debt() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route("/complete", Limit::new("100/minute").charge_after(tokens))
        .build()
        .expect("valid");
    let app = completions(&limiter);
    assert_eq!(complete(&app, 1_000_000).await, 200);
    // The window holds 200 at most: a debt of 100 takes the next window too, and then the
    // key starts afresh.
    clock.advance(Duration::from_secs(60));
    assert_eq!(complete(&app, 1).await, 429);
    clock.advance(Duration::from_secs(60));
    assert_eq!(complete(&app, 100).await, 200);
}

#[tokio::test]
async fn a_late_charge_with_deduct_when_charges_only_responses_that_count() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route(
            "/complete",
            Limit::new("10/minute")
                .charge_after(tokens)
                .deduct_when(|response| tokens(response) > 5),
        )
        .build()
        .expect("valid");
    let app = completions(&limiter);
    // Cheap answers do not count at all; an expensive one counts its whole cost.
    for _ in 0..20 {
        assert_eq!(complete(&app, 5).await, 200);
    }
    assert_eq!(complete(&app, 9).await, 200);
    assert_eq!(complete(&app, 6).await, 200); // one unit left: let through, into debt
    assert_eq!(complete(&app, 6).await, 429);
}

#[tokio::test]
async fn a_failed_service_keeps_the_charge_made_up_front() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .default_limit(Limit::new("2/minute").charge_after(|_| 0))
        .build()
        .expect("valid");
    let failing = service_fn(|_: Request| async { Err::<Response, &str>("down") });
    let service = limiter.layer().layer(failing);
    for _ in 0..2 {
        let request = request(Method::GET, "/", ALICE, &[]);
        assert!(service.clone().oneshot(request).await.is_err());
    }
    let response = service
        .clone()
        .oneshot(request(Method::GET, "/", ALICE, &[]))
        .await
        .expect("the limiter's answer");
    assert_eq!(response.status(), 429);
}

#[test]
fn a_ban_that_cannot_be_is_a_mistake_of_the_declaration() {
    let err = HttpLimiter::builder()
        .route(
            "/a",
            Limit::new("1/minute").ban("3/fortnight", Duration::from_secs(60)),
        )
        .route(
            "/b",
            Limit::new("1/minute").ban("3/minute", Duration::from_millis(1500)),
        )
        .route(
            "/c",
            Limit::policy(tollgate::Policy::fixed_window(
                "1/minute".parse().expect("rates"),
            ))
            .ban("3/minute", Duration::from_secs(60)),
        )
        .build()
        .expect_err("three mistakes");
    let lines: Vec<String> = err.mistakes().iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0]
            .starts_with(r#"limit on route "/a": ban after: invalid rate "3/fortnight" at byte 2"#),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        r#"limit on route "/b": invalid ban duration 1.5s: expected a whole number of seconds from 1 to 3110400000 (100 years)"#
    );
    assert!(matches!(
        err.mistakes()[2],
        DeclarationError::OptionsOnPolicy { .. }
    ));
}
