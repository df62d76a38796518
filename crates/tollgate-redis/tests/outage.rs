//! Redis is killed (`kill -9`) in the middle of a load and started again: every call answers
//! within the timeout, per the failure mode; nothing panics; and within a second of Redis
//! being back, hits are counted in Redis again.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tollgate::{Error, Failover, FailureMode, Limiter, Policy, Rate};
use tollgate_redis::{DEFAULT_TIMEOUT, RedisStore};

/// Scheduling delay allowed beyond the timeout (two cores shared with builds can stall a task
/// for a while); a hang would be seconds.
const SLACK: Duration = Duration::from_millis(250);

async fn survive_an_outage(mode: FailureMode) {
    let mut server = support::RedisServer::start();
    let store = RedisStore::connect(&server.uri()).await.expect("connect");
    let limiter = Limiter::new(Failover::new(store, mode));
    let api = limiter.policy(
        "api",
        Policy::token_bucket(Rate::per_second(1_000_000).into()).expect("bucket"),
    );
    // Keys that live an hour, to see where hits are counted.
    let probe = limiter.policy(
        "probe",
        Policy::fixed_window(Rate::per_hour(1_000_000).into()),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (errors, slowest_us) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers: Vec<_> = (0..16)
        .map(|task| {
            let (api, stop) = (api.clone(), Arc::clone(&stop));
            let (errors, slowest_us) = (Arc::clone(&errors), Arc::clone(&slowest_us));
            tokio::spawn(async move {
                let mut calls = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let result = api.hit(&(task * 1000 + calls % 100)).await;
                    slowest_us.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    match result {
                        Ok(decision) => assert!(decision.allowed(), "{mode}: under the limit"),
                        Err(Error::Store(_)) if mode == FailureMode::Deny => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => panic!("{mode}: {err}"),
                    }
                    calls += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                calls
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        limiter.store().errors() > 0,
        "{mode}: the outage was noticed"
    );
    server.restart();
    let back = Instant::now();

    // Within a second of Redis being back, hits are counted in Redis again.
    loop {
        let _ = probe.hit("k").await;
        let in_redis = server.cli(&["--scan", "--pattern", "tollgate:probe:*"]);
        if !in_redis.trim().is_empty() && !limiter.store().is_falling_back() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(1),
            "{mode}: not counting in redis again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    // Every worker kept calling through the outage: none stalled. (While Redis is down, a
    // refused call waits for one reconnect attempt before failing, so workers make fewer
    // calls then than against a live Redis; the slowest call is bounded below.)
    for worker in workers {
        let calls = worker.await.expect("no worker panicked");
        assert!(calls >= 20, "{mode}: a worker stalled ({calls} calls)");
    }
    let slowest = Duration::from_micros(slowest_us.load(Ordering::Relaxed));
    assert!(
        slowest <= DEFAULT_TIMEOUT + SLACK,
        "{mode}: a call took {slowest:?}"
    );
    if mode == FailureMode::Deny {
        assert!(
            errors.load(Ordering::Relaxed) > 0,
            "deny surfaced the errors"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_through_an_outage() {
    survive_an_outage(FailureMode::Allow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_through_an_outage() {
    survive_an_outage(FailureMode::Deny).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fall_back_to_memory_through_an_outage() {
    survive_an_outage(FailureMode::Fallback).await;
}
