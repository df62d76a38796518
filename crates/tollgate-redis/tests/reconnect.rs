//! Redis comes back after an outage: the very first call after it is back is counted in
//! Redis, under every failure mode (the client's remembered "connection refused" is retried
//! once, as a refused connection proves the command was never sent).

mod support;

use std::time::Duration;

use tollgate::{Failover, FailureMode, Limiter, Policy, Rate};
use tollgate_redis::RedisStore;

async fn first_call_after_restart_is_counted(mode: FailureMode) {
    let mut server = support::RedisServer::start();
    let store = RedisStore::connect(&server.uri()).await.expect("connect");
    let limiter = Limiter::new(Failover::new(store, mode));
    let policy = limiter.policy("api", Policy::fixed_window(Rate::per_hour(100).into()));
    assert!(policy.hit("k").await.expect("hit while up").allowed());

    server.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // One call while Redis is down: it fails (or is covered by the failure mode).
    let down = policy.hit("k").await;
    assert_eq!(down.is_err(), mode == FailureMode::Deny, "{mode}: {down:?}");
    // The client's reconnect attempts (started by that call) give up while Redis is down.
    tokio::time::sleep(Duration::from_millis(500)).await;

    server.restart();
    // Longer than the failover's probe interval, so that a fallback tries Redis again.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let decision = policy.hit("k").await.expect("first hit after restart");
    assert!(decision.allowed(), "{mode}");
    assert!(!limiter.store().is_falling_back(), "{mode}: back on redis");
    let keys = server.cli(&["--scan", "--pattern", "tollgate:api:*"]);
    assert_eq!(
        keys.lines().count(),
        1,
        "{mode}: counted in redis: {keys:?}"
    );
    // A peek agrees: one unit used in Redis's fresh window.
    let peek = policy.peek("k").await.expect("peek");
    assert_eq!(peek.remaining(), 99, "{mode}");
}

#[tokio::test]
async fn fail_open_counts_the_first_call_after_restart() {
    first_call_after_restart_is_counted(FailureMode::Allow).await;
}

#[tokio::test]
async fn fail_closed_counts_the_first_call_after_restart() {
    first_call_after_restart_is_counted(FailureMode::Deny).await;
}

#[tokio::test]
async fn fallback_counts_the_first_call_after_restart() {
    first_call_after_restart_is_counted(FailureMode::Fallback).await;
}

#[tokio::test]
async fn reset_after_restart_reaches_redis() {
    let mut server = support::RedisServer::start();
    let store = RedisStore::connect(&server.uri()).await.expect("connect");
    let limiter = Limiter::new(store);
    let policy = limiter.policy("api", Policy::fixed_window(Rate::per_hour(100).into()));
    assert!(policy.hit("k").await.expect("hit").allowed());
    server.kill();
    assert!(policy.reset("k").await.is_err(), "redis is down");
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();
    tokio::time::sleep(Duration::from_millis(300)).await;
    policy.reset("k").await.expect("first reset after restart");
}
