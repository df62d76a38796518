//! The layer over a real Redis: workers share one count, a deduct-when refund reaches Redis,
//! a ban set through one worker holds in the others, late charges from every worker are
//! counted, a dead Redis is answered by the failure mode, and concurrency slots are shared
//! and released in Redis when a response body is dropped.

#[path = "../../tollgate-redis/tests/support/mod.rs"]
mod redis_support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::routing::get;
use redis_support::RedisServer;
use tollgate::{Failover, FailureMode, Store};
use tollgate_redis::RedisStore;
use tollgate_tower::{HttpLimiter, Limit};
use tower::ServiceExt;

/// A worker: its own connection to Redis, its own limiter, the same declared limits. Its
/// calls may take a while on a loaded machine: these tests are not about timeouts.
async fn worker(uri: &str) -> Router {
    let store = RedisStore::connect(uri).await.expect("redis is up");
    app(store.with_timeout(PATIENT))
}

/// A timeout no healthy call reaches, however loaded the machine.
const PATIENT: std::time::Duration = std::time::Duration::from_secs(5);

fn app(store: impl Store) -> Router {
    let limiter = HttpLimiter::builder()
        .store(store)
        .route("/a", "3/minute")
        .route(
            "/login",
            Limit::new("2/minute").deduct_when(|r| r.status == StatusCode::UNAUTHORIZED),
        )
        .route(
            "/b",
            Limit::new("1/minute").ban("2/minute", Duration::from_secs(3600)),
        )
        .route(
            "/tokens",
            Limit::new("100/minute").charge_after(|response| {
                response
                    .headers
                    .get("x-tokens")
                    .and_then(|value| value.to_str().ok()?.parse().ok())
                    .unwrap_or(0)
            }),
        )
        .build()
        .expect("valid");
    Router::new()
        .route("/a", get(|| async { "a" }))
        .route("/b", get(|| async { "b" }))
        .route(
            "/tokens",
            get(|| async { ([("x-tokens", "40")], "tokens") }),
        )
        .route(
            "/login",
            get(|request: Request| async move {
                match request.uri().query() {
                    Some("ok") => StatusCode::OK,
                    _ => StatusCode::UNAUTHORIZED,
                }
            }),
        )
        .layer(limiter.layer())
}

/// A request for `path` from one client.
fn request(path: &str) -> Request {
    let mut request = Request::builder()
        .uri(path)
        .body(Body::empty())
        .expect("valid request");
    let peer: SocketAddr = "203.0.113.7:4000".parse().expect("address");
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

async fn status(app: &Router, path: &str) -> u16 {
    let response = app
        .clone()
        .oneshot(request(path))
        .await
        .expect("infallible");
    response.status().as_u16()
}

#[tokio::test]
async fn four_workers_share_one_count() {
    let redis = RedisServer::start();
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(worker(&redis.uri()).await);
    }
    let mut codes = Vec::new();
    for round in 0..3 {
        for worker in &workers {
            codes.push((round, status(worker, "/a").await));
        }
    }
    let allowed = codes.iter().filter(|(_, code)| *code == 200).count();
    assert_eq!(allowed, 3, "{codes:?}");
    assert!(codes.iter().all(|(_, code)| [200, 429].contains(code)));
}

#[tokio::test]
async fn deduct_when_gives_back_in_redis() {
    let redis = RedisServer::start();
    let (one, two) = (worker(&redis.uri()).await, worker(&redis.uri()).await);
    for _ in 0..4 {
        assert_eq!(status(&one, "/login?ok").await, 200);
        assert_eq!(status(&two, "/login?ok").await, 200);
    }
    assert_eq!(status(&one, "/login").await, 401);
    assert_eq!(status(&two, "/login").await, 401);
    assert_eq!(status(&one, "/login?ok").await, 429);
}

#[tokio::test]
async fn dead_redis_is_answered_by_the_failure_policy() {
    let mut redis = RedisServer::start();
    let connect = || async {
        RedisStore::connect(&redis.uri())
            .await
            .expect("redis is up")
            .with_timeout(Duration::from_millis(100))
    };
    let deny = app(connect().await);
    let fallback = app(Failover::new(connect().await, FailureMode::Fallback));
    assert_eq!(status(&deny, "/a").await, 200);
    redis.kill();
    let started = std::time::Instant::now();
    assert_eq!(status(&deny, "/a").await, 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered in bounded time"
    );
    // Fallback counts in memory meanwhile: the limit still holds.
    let codes: Vec<u16> = {
        let mut codes = Vec::new();
        for _ in 0..4 {
            codes.push(status(&fallback, "/a").await);
        }
        codes
    };
    assert_eq!(codes, [200, 200, 200, 429]);
}

#[tokio::test]
async fn shadow_limits_and_header_lists_over_redis() {
    // Over Redis the layer waits for the store (its boxed path).
    let redis = RedisServer::start();
    let worker = || async {
        let store = RedisStore::connect(&redis.uri())
            .await
            .expect("redis is up")
            .with_timeout(PATIENT);
        let limiter = HttpLimiter::builder()
            .store(store)
            .headers_include_shadow(true)
            .route("/a", Limit::new("3/minute").name("a"))
            .route("/a", Limit::new("1/minute").name("a-trial").shadow())
            .build()
            .expect("valid");
        Router::new()
            .route("/a", get(|| async { "a" }))
            .layer(limiter.layer())
    };
    let (one, two) = (worker().await, worker().await);
    let mut request = Request::builder()
        .uri("/a")
        .body(Body::empty())
        .expect("valid request");
    request.extensions_mut().insert(ConnectInfo(
        "203.0.113.7:4000".parse::<SocketAddr>().expect("address"),
    ));
    let first = one.clone().oneshot(request).await.expect("infallible");
    assert_eq!(
        first.headers()["ratelimit"],
        r#""a";r=2;t=60, "a-trial";r=0;t=60"#
    );
    // The trial is spent across both workers, and never denies; `a` does, on the fourth.
    assert_eq!(status(&two, "/a").await, 200);
    assert_eq!(status(&one, "/a").await, 200);
    assert_eq!(status(&two, "/a").await, 429);
}

#[tokio::test]
async fn a_ban_set_through_one_worker_holds_in_the_others() {
    let redis = RedisServer::start();
    let (one, two) = (worker(&redis.uri()).await, worker(&redis.uri()).await);
    assert_eq!(status(&one, "/b").await, 200);
    assert_eq!(status(&two, "/b").await, 429); // a breach
    assert_eq!(status(&one, "/b").await, 429); // the second: banned
    let mut request = Request::builder()
        .uri("/b")
        .body(Body::empty())
        .expect("request");
    let peer: SocketAddr = "203.0.113.7:4000".parse().expect("address");
    request.extensions_mut().insert(ConnectInfo(peer));
    let banned = two.clone().oneshot(request).await.expect("infallible");
    assert_eq!(banned.headers()["retry-after"], "3600");
}

#[tokio::test]
async fn late_charges_from_every_worker_reach_redis() {
    let redis = RedisServer::start();
    let (one, two) = (worker(&redis.uri()).await, worker(&redis.uri()).await);
    // Each answer takes 40 tokens: 80, then 120 of 100 (one unit was left), then none left.
    assert_eq!(status(&one, "/tokens").await, 200);
    assert_eq!(status(&two, "/tokens").await, 200);
    assert_eq!(status(&one, "/tokens").await, 200);
    assert_eq!(status(&two, "/tokens").await, 429);
    assert_eq!(status(&one, "/tokens").await, 429);
}

/// A worker whose `/slow` admits one request in flight per client, over Redis.
async fn in_flight_worker(uri: &str) -> Router {
    let store = RedisStore::connect(uri).await.expect("redis is up");
    let limiter = HttpLimiter::builder()
        .store(store.with_timeout(PATIENT))
        .route("/slow", Limit::concurrency(1))
        .build()
        .expect("valid");
    Router::new()
        .route("/slow", get(|| async { "slow" }))
        .layer(limiter.layer())
}

#[tokio::test]
async fn workers_share_concurrency_slots_and_a_dropped_body_releases_in_redis() {
    let redis = RedisServer::start();
    let (one, two) = (
        in_flight_worker(&redis.uri()).await,
        in_flight_worker(&redis.uri()).await,
    );
    let get = |app: &Router| app.clone().oneshot(request("/slow"));
    let held = get(&one).await.expect("infallible");
    assert_eq!(held.status(), StatusCode::OK);
    // The other worker sees the slot taken.
    assert_eq!(
        get(&two).await.expect("infallible").status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Dropped on the runtime: the release is spawned to Redis.
    drop(held);
    let mut status = StatusCode::TOO_MANY_REQUESTS;
    for _ in 0..100 {
        let response = get(&two).await.expect("infallible");
        status = response.status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "the dropped body's slot was released"
    );
}
