//! Every feature of the layer, through `oneshot` on an axum router or a plain Tower service,
//! with a manual clock.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use tollgate::testing::FlakyStore;
use tollgate::{Failover, FailureMode, ManualClock, MemoryStore, Store, Strategy};
use tollgate_tower::key::{self, KeyExtractor, RequestKey};
use tollgate_tower::{
    Breach, Builder, ClientIp, DeclarationError, HeaderStyle, HttpLimiter, Limit, PeerAddr,
    ProxyHeader,
};
use tower::{Layer, Service, ServiceExt, service_fn};

const ALICE: &str = "203.0.113.7";
const BOB: &str = "198.51.100.9";

/// A builder with a manual clock, IETF and legacy headers.
fn builder(clock: &ManualClock) -> Builder<MemoryStore> {
    HttpLimiter::builder()
        .clock(clock.clone())
        .headers(HeaderStyle::Both)
}

/// `/a`, `/b` and `/health` answering 200 (or `/login` answering 401 unless `?ok`).
fn routes(limiter: &HttpLimiter<impl Store>) -> Router {
    Router::new()
        .route("/a", get(|| async { "a" }).post(|| async { "posted" }))
        .route("/b", get(|| async { "b" }))
        .route("/items/{id}", get(|| async { "item" }))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/login",
            post(|request: Request| async move {
                match request.uri().query() {
                    Some("ok") => StatusCode::OK,
                    _ => StatusCode::UNAUTHORIZED,
                }
            }),
        )
        .layer(limiter.layer())
}

/// A request from `ip` (port 40000), as axum's `ConnectInfo` gives it.
fn request(method: Method, path: &str, ip: &str, headers: &[(&str, &str)]) -> Request {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(Body::empty()).expect("valid request");
    let peer = SocketAddr::new(ip.parse().expect("test address"), 40000);
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

async fn send(app: &Router, req: Request) -> Response {
    app.clone().oneshot(req).await.expect("infallible")
}

async fn status(
    app: &Router,
    method: Method,
    path: &str,
    ip: &str,
    headers: &[(&str, &str)],
) -> u16 {
    send(app, request(method, path, ip, headers))
        .await
        .status()
        .as_u16()
}

async fn statuses(app: &Router, path: &str, ip: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(status(app, Method::GET, path, ip, &[]).await);
    }
    out
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn body(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf-8 body")
}

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
    assert_eq!(
        header(&denied, "ratelimit-policy"),
        Some(r#""/a";q=3;w=60"#)
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
    assert!(body(big).await.contains("request cost 11 exceeds"));
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
                    Some(r#""/a";q=2;w=60"#)
                );
                let expected = format!(r#""/a";r={remaining};t={reset}"#);
                assert_eq!(header(response, "ratelimit"), Some(expected.as_str()));
            }
        }
        clock.advance(Duration::from_secs(3600));
    }
}

#[tokio::test]
async fn headers_describe_the_limit_closest_to_denying() {
    let clock = ManualClock::new();
    let limiter = builder(&clock)
        .application_limit("100/hour")
        .route("/a", "3/minute")
        .route("/a", Limit::new("5/second").strategy(Strategy::TokenBucket))
        .build()
        .expect("valid");
    let app = routes(&limiter);
    let first = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(header(&first, "ratelimit"), Some(r#""/a";r=2;t=60"#));
    assert_eq!(statuses(&app, "/a", ALICE, 2).await, [200, 200]);
    let denied = send(&app, request(Method::GET, "/a", ALICE, &[])).await;
    assert_eq!(
        header(&denied, "ratelimit-policy"),
        Some(r#""/a";q=3;w=60"#)
    );
}

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
