//! The lesson through the proxy: routes, methods, keys, exempt and prefix routes, the
//! default policy.

use super::*;

#[tokio::test]
async fn ping_allows_three_a_minute_then_429_with_retry_after() {
    let upstream = upstream().await;
    let proxy = proxy(LESSON, &upstream).await;
    let client = client();

    for remaining in ["2", "1", "0"] {
        let answer = get_from(&client, proxy, "/ping?n=1", &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["uri"], "/ping?n=1");
        assert_eq!(answer.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(answer.header("x-ratelimit-remaining"), Some(remaining));
        assert_eq!(
            answer.header("ratelimit-policy"),
            Some(r#""login";q=3;w=60"#)
        );
        assert!(answer.header("ratelimit").is_some());
    }
    for _ in 0..2 {
        let answer = get_from(&client, proxy, "/ping?n=1", &[]).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = answer
            .header("retry-after")
            .expect("Retry-After on a 429")
            .parse()
            .expect("whole seconds");
        assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
        assert_eq!(answer.json()["error"], "rate limit exceeded");
        assert_eq!(answer.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(answer.header("x-ratelimit-remaining"), Some("0"));
        assert_eq!(
            answer.header("ratelimit-policy"),
            Some(r#""login";q=3;w=60"#)
        );
    }
    assert_eq!(
        upstream.state.hits.load(Ordering::SeqCst),
        3,
        "denied requests never reach the upstream"
    );
}

#[tokio::test]
async fn methods_outside_a_route_filter_meet_the_default_policy_and_are_forwarded() {
    let upstream = upstream().await;
    let proxy = proxy(LESSON, &upstream).await;
    let client = client();

    for _ in 0..4 {
        let answer = send(
            &client,
            Method::POST,
            format!("http://{proxy}/ping"),
            &[],
            Body::from("hello"),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["method"], "POST");
        assert_eq!(answer.json()["body_len"], 5);
        assert_eq!(answer.header("x-ratelimit-limit"), Some("100"));
    }
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/ping", &[], 4).await,
        [200, 200, 200, 429],
        "POSTs did not use up the GET limit"
    );
    let answer = send(
        &client,
        Method::DELETE,
        format!("http://{proxy}/ping"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["method"], "DELETE");
}

/// An upstream serves `HEAD` as `GET` without the body (axum's `get` routes, nginx), so a
/// route limited for `GET` limits `HEAD` too: one count, or `HEAD` would do `GET`'s work
/// at the default policy's rate.
#[tokio::test]
async fn head_meets_the_limit_of_a_get_route() {
    let upstream = upstream().await;
    let proxy = proxy(LESSON, &upstream).await;
    let client = client();
    assert_eq!(
        statuses(&client, proxy, Method::HEAD, "/ping", &[], 2).await,
        [200, 200]
    );
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/ping", &[], 2).await,
        [200, 429]
    );
    let answer = send(
        &client,
        Method::HEAD,
        format!("http://{proxy}/ping"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.header("x-ratelimit-limit"), Some("3"));
}

#[tokio::test]
async fn a_route_keyed_on_a_user_header_falls_back_to_the_ip() {
    let upstream = upstream().await;
    let proxy = proxy(LESSON, &upstream).await;
    let client = client();
    let alice = [("x-user-id", "alice")];
    let bob = [("x-user-id", "bob")];

    assert_eq!(
        statuses(&client, proxy, Method::GET, "/me", &alice, 3).await,
        [200, 200, 429]
    );
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/me", &bob, 3).await,
        [200, 200, 429]
    );
    // Without the header, the client IP pays.
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/me", &[], 3).await,
        [200, 200, 429]
    );
    let answer = get_from(&client, proxy, "/me", &alice).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        answer.header("ratelimit-policy"),
        Some(r#""user";q=2;w=60"#)
    );
}

#[tokio::test]
async fn an_exempt_route_is_never_limited_and_carries_no_rate_limit_headers() {
    let upstream = upstream().await;
    let proxy = proxy(LESSON, &upstream).await;
    let client = client();

    for _ in 0..12 {
        let answer = get_from(&client, proxy, "/health", &[]).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["uri"], "/health");
        assert_eq!(answer.header("x-ratelimit-limit"), None);
        assert_eq!(answer.header("ratelimit-policy"), None);
    }
    assert_eq!(upstream.state.hits.load(Ordering::SeqCst), 12);
}

#[tokio::test]
async fn a_prefix_route_is_one_count_for_everything_below_it() {
    let upstream = upstream().await;
    let proxy = proxy(LESSON, &upstream).await;
    let client = client();

    let answer = get_from(&client, proxy, "/api", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.header("ratelimit-policy"),
        Some(r#""prefix";q=3;w=60"#)
    );
    assert_eq!(
        get_from(&client, proxy, "/api/", &[]).await.status,
        StatusCode::OK
    );
    let answer = get_from(&client, proxy, "/api/items/7?sort=desc&x=%20y", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["uri"], "/api/items/7?sort=desc&x=%20y");
    assert_eq!(answer.header("x-ratelimit-remaining"), Some("0"));
    let answer = get_from(&client, proxy, "/api/other", &[]).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);

    // Not below /api/: the default policy.
    let answer = get_from(&client, proxy, "/apix", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("x-ratelimit-limit"), Some("100"));
}

#[tokio::test]
async fn an_exact_route_inside_an_exempt_prefix_is_limited() {
    let upstream = upstream().await;
    let proxy = proxy(LESSON, &upstream).await;
    let client = client();

    assert_eq!(
        statuses(&client, proxy, Method::GET, "/public/admin", &[], 2).await,
        [200, 429]
    );
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/public/page", &[], 5).await,
        [200; 5]
    );
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/public", &[], 5).await,
        [200; 5]
    );
}

#[tokio::test]
async fn unmatched_paths_share_one_default_count_and_are_free_without_a_default() {
    let upstream = upstream().await;
    let config = r#"
        [policies.tight]
        limits = "2/minute"

        [proxy]
        listen = "127.0.0.1:0"
        upstream = "UPSTREAM"
        default_policy = "tight"
    "#;
    let proxy = proxy(config, &upstream).await;
    let client = client();
    assert_eq!(
        get_from(&client, proxy, "/a", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get_from(&client, proxy, "/b/c", &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get_from(&client, proxy, "/d", &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    let free = r#"
        [proxy]
        listen = "127.0.0.1:0"
        upstream = "UPSTREAM"
    "#;
    let proxy = self::proxy(free, &upstream).await;
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/anything", &[], 5).await,
        [200; 5]
    );
}

#[tokio::test]
async fn a_root_prefix_covers_every_path() {
    let upstream = upstream().await;
    let config = r#"
        [policies.all]
        limits = "3/minute"

        [proxy]
        listen = "127.0.0.1:0"
        upstream = "UPSTREAM"

        [[proxy.routes]]
        path = "/*"
        policy = "all"

        [[proxy.routes]]
        path = "/health"
        exempt = true
    "#;
    let proxy = proxy(config, &upstream).await;
    let client = client();
    let mut seen = Vec::new();
    for path in ["/", "/a", "/b/c?d=e", "/health", "/f"] {
        let answer = get_from(&client, proxy, path, &[]).await;
        seen.push(answer.status.as_u16());
    }
    assert_eq!(seen, [200, 200, 200, 200, 429]);
}

#[tokio::test]
async fn an_encoded_slash_or_backslash_cannot_slip_past_a_limit_through_an_exempt_prefix() {
    let upstream = upstream().await;
    let config = LESSON.replace(
        "[[proxy.routes]]\npath = \"/ping\"",
        "[[proxy.routes]]\npath = \"/static/*\"\nexempt = true\n\n[[proxy.routes]]\npath = \"/ping\"",
    );
    let proxy = proxy(&config, &upstream).await;
    let client = client();
    // An upstream that decodes the path would serve /ping for each of these.
    for path in [
        "/static/..%2fping",
        "/static/..%2Fping",
        "/static/..%5cping",
        "/static/..%5Cping",
    ] {
        let answer = get_from(&client, proxy, path, &[]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            answer.json()["error"]
                .as_str()
                .is_some_and(|error| error.contains("encoded slash")),
            "{path}"
        );
    }
    assert_eq!(upstream.state.hits.load(Ordering::SeqCst), 0);
    // Variants of /ping: dot segments meet its limit; the others are other paths, under the
    // default policy (matching is exact and case-sensitive, a `;` is part of the segment).
    let limited = get_from(&client, proxy, "/static/../ping", &[]).await;
    assert_eq!(limited.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(limited.json()["uri"], "/ping");
    let limited = get_from(&client, proxy, "/ping/.", &[]).await;
    assert_eq!(
        limited.header("x-ratelimit-limit"),
        Some("100"),
        "/ping/ is another path"
    );
    for other in ["/PING", "/ping;jsessionid=1", "/ping%20", "/ping/"] {
        let answer = get_from(&client, proxy, other, &[]).await;
        assert_eq!(answer.header("x-ratelimit-limit"), Some("100"), "{other}");
    }
}

#[tokio::test]
async fn with_ignore_case_and_ignore_trailing_slash_every_spelling_meets_the_limit() {
    let upstream = upstream().await;
    let config = LESSON.replace(
        "path = \"/ping\"\nmethods = [\"GET\"]\n",
        "path = \"/ping\"\nmethods = [\"GET\"]\nignore_case = true\nignore_trailing_slash = true\n",
    );
    let proxy = proxy(&config, &upstream).await;
    let client = client();
    // `%49` is `I`; `%C4%B1` is `ı`, which Unicode-aware upstreams take for `i` ignoring case.
    for (path, remaining) in [("/PING", "2"), ("/ping/", "1"), ("/P%49nG/.", "0")] {
        let answer = get_from(&client, proxy, path, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(
            answer.header("x-ratelimit-remaining"),
            Some(remaining),
            "{path}"
        );
        assert_eq!(
            answer.json()["uri"],
            "/ping",
            "forwarded as the route's spelling"
        );
    }
    for path in ["/ping", "/PiNg", "/p%C4%B1ng", "/PING/"] {
        let answer = get_from(&client, proxy, path, &[]).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    // Still other paths: a `;` parameter, and a space.
    for other in ["/ping;jsessionid=1", "/ping%20"] {
        let answer = get_from(&client, proxy, other, &[]).await;
        assert_eq!(answer.header("x-ratelimit-limit"), Some("100"), "{other}");
    }
    // The other routes keep exact matching.
    let answer = get_from(&client, proxy, "/ME", &[]).await;
    assert_eq!(answer.header("x-ratelimit-limit"), Some("100"));
}

#[tokio::test]
async fn a_case_insensitive_exempt_prefix_exempts_no_spelling_of_a_limited_route_under_it() {
    let upstream = upstream().await;
    let config = r#"
        [policies.admin]
        limits = "1/minute"

        [policies.api]
        limits = "2/minute"

        [proxy]
        listen = "127.0.0.1:0"
        upstream = "UPSTREAM"

        [[proxy.routes]]
        path = "/static/*"
        exempt = true
        ignore_case = true

        [[proxy.routes]]
        path = "/static/admin"
        policy = "admin"
        ignore_case = true

        [[proxy.routes]]
        path = "/api/*"
        policy = "api"
        ignore_case = true
    "#;
    let proxy = proxy(config, &upstream).await;
    let client = client();
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/STATIC/Admin", &[], 1).await,
        [200]
    );
    for path in ["/static/admin", "/Static/ADMIN", "/STATIC/x/../admin"] {
        let answer = get_from(&client, proxy, path, &[]).await;
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
    }
    let answer = get_from(&client, proxy, "/STATIC/app.js", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("x-ratelimit-limit"), None, "exempt");
    assert_eq!(answer.json()["uri"], "/static/app.js");

    let answer = get_from(&client, proxy, "/API/Items/7?q=A", &[]).await;
    assert_eq!(
        answer.json()["uri"],
        "/api/Items/7?q=A",
        "the prefix spelled as the route's"
    );
    assert_eq!(
        statuses(&client, proxy, Method::GET, "/Api", &[], 2).await,
        [200, 429]
    );
}
