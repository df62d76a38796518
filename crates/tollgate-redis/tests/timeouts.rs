//! Hits that time out while Redis is busy (`DEBUG SLEEP`) are applied by Redis when it wakes:
//! the store learns of each late charge, and gives it back when the failure mode refused the
//! request, so that a request is never refused now and counted against its client later.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use tollgate::{Failover, FailureMode, Limiter, Policy, Rate, Store, Timestamp};
use tollgate_redis::{LateHitStats, RedisStore};

/// Blocks the Redis on `port` for `seconds`, from another thread; returns once it sleeps.
fn put_to_sleep(port: u16, seconds: &str) -> std::thread::JoinHandle<()> {
    let seconds = seconds.to_owned();
    let sleeper = std::thread::spawn(move || {
        let port = port.to_string();
        Command::new("redis-cli")
            .args(["-p", &port, "DEBUG", "SLEEP", &seconds])
            .output()
            .expect("redis-cli");
    });
    std::thread::sleep(Duration::from_millis(100));
    sleeper
}

/// Runs `hits` hits of a 10/hour policy under `mode` while Redis sleeps (a little apart, so
/// that fallback probes come due), then waits for the late replies; returns the decisions
/// allowed, what Redis holds for the key (units left) and the store's late-hit counts.
async fn hits_while_redis_sleeps(mode: FailureMode, hits: u32) -> (u32, u64, LateHitStats) {
    let server = support::RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let store = RedisStore::connect(&server.uri())
        .await
        .expect("connect")
        .with_timeout(Duration::from_millis(50));
    let policy = Policy::fixed_window(Rate::per_hour(10).into());
    let direct = store.prepare("p", &policy);
    let limiter = Limiter::new(Failover::new(store.clone(), mode));
    let p = limiter.policy("p", policy);
    let sleeper = put_to_sleep(server.port, "3");
    let mut allowed = 0;
    for _ in 0..hits {
        if p.hit("k").await.is_ok_and(|decision| decision.allowed()) {
            allowed += 1;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    sleeper.join().expect("sleeper");
    // The late replies arrive, and the refunds they call for are sent, within moments.
    let settled = Instant::now();
    let mut late = store.late_hits();
    while late.timed_out > late.charged_late + late.unwatched
        || (mode != FailureMode::Allow && late.given_back < late.charged_late)
    {
        assert!(
            settled.elapsed() < Duration::from_secs(5),
            "{mode}: {late:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        late = store.late_hits();
        if mode == FailureMode::Fallback && settled.elapsed() > Duration::from_secs(1) {
            break; // a fallback keeps some charges: nothing more to wait for
        }
    }
    let left = store
        .hit(&direct, b"k", Timestamp::from_nanos(0), 0)
        .await
        .expect("peek")
        .remaining();
    assert_eq!(
        limiter.store().timed_out_hits(),
        late.timed_out,
        "{mode}: both count them"
    );
    (allowed, left, late)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_closed_gives_every_late_charge_back() {
    let (allowed, left, late) = hits_while_redis_sleeps(FailureMode::Deny, 10).await;
    assert_eq!(allowed, 0, "refused while redis sleeps");
    assert_eq!(
        (late.timed_out, late.charged_late, late.given_back),
        (10, 10, 10)
    );
    assert_eq!(left, 10, "no request that was refused stays charged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_open_keeps_the_late_charges() {
    let (allowed, left, late) = hits_while_redis_sleeps(FailureMode::Allow, 10).await;
    assert_eq!(allowed, 10, "let through while redis sleeps");
    assert_eq!(
        (late.timed_out, late.charged_late, late.given_back),
        (10, 10, 0)
    );
    assert_eq!(left, 0, "each request let through is counted once, late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falling_back_gives_back_only_what_memory_refused() {
    // 20 hits 60 ms apart (all within the sleep): the first times out and is counted in memory (allowed), the rest
    // go to memory, but for a probe every 200 ms, which times out too. Memory allows ten;
    // probes after those are denied there, so their late charges are given back.
    let (allowed, left, late) = hits_while_redis_sleeps(FailureMode::Fallback, 20).await;
    assert_eq!(allowed, 10, "memory's count");
    assert!(late.timed_out >= 3, "{late:?}");
    assert_eq!(late.charged_late, late.timed_out, "{late:?}");
    // Each late charge of a request memory allowed is kept; each of a refused one is not.
    let kept = late.charged_late - late.given_back;
    assert_eq!(left, 10 - kept, "{late:?}");
    assert!(
        late.given_back >= 1,
        "some probe came after memory's ten: {late:?}"
    );
}
