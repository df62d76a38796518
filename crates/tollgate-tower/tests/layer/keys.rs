//! Key extractors, and the client IP behind trusted proxies.

use super::*;

#[tokio::test]
async fn key_extractors() {
    let clock = ManualClock::new();

    #[derive(Clone)]
    struct UserId(u32);
    impl std::fmt::Display for UserId {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }
    // An "authentication" layer in front of the limiter sets the user id.
    async fn authenticate(mut request: Request, next: Next) -> Response {
        let user = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok()?.strip_prefix("Bearer user-")?.parse().ok());
        if let Some(user) = user {
            request.extensions_mut().insert(UserId(user));
        }
        next.run(request).await
    }

    let tenant = |parts: &http::request::Parts| {
        parts
            .uri
            .query()
            .and_then(|q| q.strip_prefix("tenant="))
            .map(|t| RequestKey::from(t.to_owned()))
    };
    let limiter = builder(&clock)
        .route(
            "/a",
            Limit::new("1/minute").key(key::extension::<UserId>().or(key::client_ip())),
        )
        .route("/b", Limit::new("1/minute").key(key::constant("everyone")))
        .route("/items/{id}", Limit::new("1/minute").key(tenant))
        .build()
        .expect("valid");
    let app = Router::new()
        .route("/a", get(|| async { "a" }))
        .route("/b", get(|| async { "b" }))
        .route("/items/{id}", get(|| async { "item" }))
        .layer(limiter.layer())
        .layer(middleware::from_fn(authenticate));
    let user = |n: &'static str| [("authorization", n)];
    assert_eq!(
        status(&app, Method::GET, "/a", ALICE, &user("Bearer user-1")).await,
        200
    );
    assert_eq!(
        status(&app, Method::GET, "/a", BOB, &user("Bearer user-1")).await,
        429
    );
    assert_eq!(
        status(&app, Method::GET, "/a", ALICE, &user("Bearer user-2")).await,
        200
    );
    assert_eq!(status(&app, Method::GET, "/a", ALICE, &[]).await, 200);
    assert_eq!(status(&app, Method::GET, "/a", ALICE, &[]).await, 429);
    // A constant key: everyone shares one count.
    assert_eq!(statuses(&app, "/b", ALICE, 1).await, [200]);
    assert_eq!(statuses(&app, "/b", BOB, 1).await, [429]);
    // A closure: per tenant; a request it cannot name shares the unknown count.
    assert_eq!(
        statuses(&app, "/items/1?tenant=x", ALICE, 2).await,
        [200, 429]
    );
    assert_eq!(statuses(&app, "/items/1?tenant=y", ALICE, 1).await, [200]);
    assert_eq!(statuses(&app, "/items/1", ALICE, 1).await, [200]);
    assert_eq!(statuses(&app, "/items/1", BOB, 1).await, [429]);
}

#[tokio::test]
async fn header_key_with_ip_fallback() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .key(key::header("x-api-key").or(key::client_ip()))
        .route("/a", "1/minute")
        .build()
        .expect("valid");
    let app = routes(&limiter);
    let key1 = [("x-api-key", "k1")];
    assert_eq!(status(&app, Method::GET, "/a", ALICE, &key1).await, 200);
    assert_eq!(status(&app, Method::GET, "/a", BOB, &key1).await, 429);
    assert_eq!(status(&app, Method::GET, "/a", ALICE, &[]).await, 200);
    assert_eq!(status(&app, Method::GET, "/a", ALICE, &[]).await, 429);
    // The key named like an address does not share the address's count.
    assert_eq!(
        status(&app, Method::GET, "/a", ALICE, &[("x-api-key", BOB)]).await,
        200
    );
    assert_eq!(status(&app, Method::GET, "/a", BOB, &[]).await, 200);
}

#[tokio::test]
async fn spoofed_forwarded_headers_from_untrusted_peers_are_ignored() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .trusted_proxies(["10.0.0.0/8"])
        .route("/a", "3/minute")
        .build()
        .expect("valid");
    let app = routes(&limiter);
    // A client outside the trusted set rotates X-Forwarded-For: still one client.
    let mut codes = Vec::new();
    for i in 0..6 {
        let forged = format!("192.0.2.{i}");
        let headers = [
            ("x-forwarded-for", forged.as_str()),
            ("forwarded", "for=192.0.2.99"),
            ("x-real-ip", forged.as_str()),
        ];
        codes.push(status(&app, Method::GET, "/a", ALICE, &headers).await);
    }
    assert_eq!(codes, [200, 200, 200, 429, 429, 429]);
}

#[tokio::test]
async fn trusted_proxies_name_the_client() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .trusted_proxies(["10.0.0.0/8"])
        .route("/a", "1/minute")
        .build()
        .expect("valid");
    let app = Router::new()
        .route(
            "/a",
            get(|Extension(ClientIp(ip)): Extension<ClientIp>| async move { ip.to_string() }),
        )
        .layer(limiter.layer());
    let via_proxy = |xff: &'static str| {
        let app = app.clone();
        async move {
            send(
                &app,
                request(Method::GET, "/a", "10.0.0.1", &[("x-forwarded-for", xff)]),
            )
            .await
        }
    };
    let first = via_proxy("6.6.6.6, 203.0.113.7, 10.0.0.5").await;
    assert_eq!(body(first).await, "203.0.113.7");
    assert_eq!(via_proxy("203.0.113.7").await.status(), 429);
    assert_eq!(via_proxy("198.51.100.9").await.status(), 200);
    // Junk in the header: the proxy itself is the client, never a 500.
    let junk = via_proxy("not-an-address, <script>").await;
    assert_eq!(junk.status(), 200);
    assert_eq!(body(junk).await, "10.0.0.1");
    assert_eq!(via_proxy("1.2.3.4:5, :::").await.status(), 429);
}

#[tokio::test]
async fn forwarded_and_x_real_ip_when_chosen() {
    let clock = ManualClock::new();
    for (header, value) in [
        (
            ProxyHeader::Forwarded,
            r#"for="[2001:db8::1]:443";proto=https"#,
        ),
        (ProxyHeader::XRealIp, "2001:db8::1"),
    ] {
        let limiter = builder(&clock)
            .trusted_proxies(["127.0.0.1"])
            .proxy_header(header)
            .route("/a", "1/minute")
            .build()
            .expect("valid");
        let router = routes(&limiter);
        let app = &router;
        let name = match header {
            ProxyHeader::Forwarded => "forwarded",
            _ => "x-real-ip",
        };
        assert_eq!(
            status(app, Method::GET, "/a", "127.0.0.1", &[(name, value)]).await,
            200
        );
        assert_eq!(
            status(app, Method::GET, "/a", "127.0.0.1", &[(name, value)]).await,
            429
        );
        // X-Forwarded-For is not believed when another header was chosen.
        let xff = [("x-forwarded-for", "192.0.2.1")];
        assert_eq!(status(app, Method::GET, "/a", "127.0.0.1", &xff).await, 200);
        assert_eq!(status(app, Method::GET, "/a", "127.0.0.1", &xff).await, 429);
    }
}

#[tokio::test]
async fn ipv6_clients_are_grouped_by_prefix() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route("/a", "1/minute")
        .build()
        .expect("valid");
    let app = routes(&limiter);
    assert_eq!(
        status(&app, Method::GET, "/a", "2001:db8:1:2::1", &[]).await,
        200
    );
    assert_eq!(
        status(&app, Method::GET, "/a", "2001:db8:1:2:ffff::9", &[]).await,
        429
    );
    assert_eq!(
        status(&app, Method::GET, "/a", "2001:db8:1:3::1", &[]).await,
        200
    );

    let limiter = builder(&clock)
        .key(key::client_ip().ipv6_prefix(48))
        .route("/a", "1/minute")
        .build()
        .expect("valid");
    let by_48 = routes(&limiter);
    assert_eq!(
        status(&by_48, Method::GET, "/a", "2001:db8:1:2::1", &[]).await,
        200
    );
    assert_eq!(
        status(&by_48, Method::GET, "/a", "2001:db8:1:3::1", &[]).await,
        429
    );
}

#[tokio::test]
async fn requests_without_a_peer_address_share_one_count() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .route("/a", "1/minute")
        .build()
        .expect("valid");
    let app = routes(&limiter);
    let bare = || {
        Request::builder()
            .uri("/a")
            .body(Body::empty())
            .expect("valid")
    };
    assert_eq!(send(&app, bare()).await.status(), 200);
    assert_eq!(send(&app, bare()).await.status(), 429);
}
