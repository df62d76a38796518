//! The on-breach hook, rejections, and the rate-limit headers of allowed and denied responses.

use super::*;

#[tokio::test]
async fn on_breach_hook_and_custom_rejection() {
    let clock = ManualClock::new();
    let breaches = Arc::new(Mutex::new(Vec::new()));
    let limiter = builder(&clock)
        .route("/a", "1/minute")
        .on_breach({
            let breaches = breaches.clone();
            move |parts, breach: &Breach| {
                breaches.lock().expect("lock").push(format!(
                    "{} {} {} {:?} {}",
                    parts.method,
                    parts.uri,
                    breach.limit_name(),
                    breach.key(),
                    breach.retry_after_secs()
                ));
            }
        })
        .rejection(|breach| {
            Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE.as_u16() - 80) // 423 Locked, say
                .body(Body::from(format!("wait {}s", breach.retry_after_secs())))
                .expect("valid response")
        })
        .build()
        .expect("valid");
    let app = routes(&limiter);
    assert_eq!(status(&app, Method::GET, "/a", ALICE, &[]).await, 200);
    let denied = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(denied.status(), 423);
    // Not a 429: no Retry-After forced in, but the rate-limit headers are there.
    assert!(header(&denied, "retry-after").is_none());
    assert_eq!(header(&denied, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(body(denied).await, "wait 60s");
    assert_eq!(
        *breaches.lock().expect("lock"),
        [format!("GET /a /a RequestKey({ALICE}) 60")]
    );
}

#[tokio::test]
async fn custom_429_gets_retry_after_added() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route("/a", "1/minute")
        .rejection(|_| {
            Response::builder()
                .status(429)
                .body(Body::from("slow down"))
                .expect("valid response")
        })
        .build()
        .expect("valid");
    let app = routes(&limiter);
    send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    let denied = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(header(&denied, "retry-after"), Some("60"));
}

#[tokio::test]
async fn headers_in_every_style_on_allowed_and_denied_responses() {
    let clock = ManualClock::new();
    let styles = [
        HeaderStyle::None,
        HeaderStyle::Legacy,
        HeaderStyle::Ietf,
        HeaderStyle::Both,
    ];
    for style in styles {
        let limiter = HttpLimiter::builder()
            .clock(clock.clone())
            .headers(style)
            .route("/a", "2/minute")
            .build()
            .expect("valid");
        let app = routes(&limiter);
        let legacy = matches!(style, HeaderStyle::Legacy | HeaderStyle::Both);
        let ietf = matches!(style, HeaderStyle::Ietf | HeaderStyle::Both);
        let allowed = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
        clock.advance(Duration::from_secs(15));
        send(&app, request(Method::GET, "/a", ALICE, &[])).await;
        let denied = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
        assert_eq!(header(&denied, "retry-after"), Some("45"), "{style:?}");
        for (response, remaining, reset) in [(&allowed, "1", "60"), (&denied, "0", "45")] {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs();
            assert_eq!(header(response, "x-ratelimit-limit").is_some(), legacy);
            if legacy {
                assert_eq!(header(response, "x-ratelimit-limit"), Some("2"));
                assert_eq!(header(response, "x-ratelimit-remaining"), Some(remaining));
                let at: u64 = header(response, "x-ratelimit-reset")
                    .and_then(|v| v.parse().ok())
                    .expect("a Unix time");
                let reset: u64 = reset.parse().expect("number");
                assert!(at.abs_diff(now + reset) <= 1, "{at} vs {now}+{reset}");
            }
            assert_eq!(header(response, "ratelimit").is_some(), ietf);
            if ietf {
                assert_eq!(
                    header(response, "ratelimit-policy"),
                    Some(r#""2/minute";q=2;w=60"#)
                );
                let expected = format!(r#""2/minute";r={remaining};t={reset}"#);
                assert_eq!(header(response, "ratelimit"), Some(expected.as_str()));
            }
        }
        clock.advance(Duration::from_secs(3600));
    }
}

#[tokio::test]
async fn headers_describe_the_limit_closest_to_denying_when_asked() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .header_policies(HeaderPolicies::Closest)
        .application_limit("100/hour")
        .route("/a", "3/minute")
        .route("/a", Limit::new("5/second").strategy(Strategy::TokenBucket))
        .build()
        .expect("valid");
    let app = routes(&limiter);
    let first = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(header(&first, "ratelimit"), Some(r#""3/minute";r=2;t=60"#));
    assert_eq!(header(&first, "x-ratelimit-remaining"), Some("2"));
    assert_eq!(statuses(&app, "/a", ALICE, 2).await, [200, 200]);
    let denied = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(
        header(&denied, "ratelimit-policy"),
        Some(r#""3/minute";q=3;w=60"#)
    );
}
