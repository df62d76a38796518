//! `tollgate::Leasing` over a real Redis: with leases off, every decision is the Redis
//! store's own (for every strategy); with leases on, three instances over one Redis never
//! admit more than a fixed window's limit, in many windows, while most hits make no call.

mod support;

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tollgate::{Leasing, Policy, QuotaLease, Store, Strategy as Algorithm, Timestamp};

/// What a `SystemClock` reads in 2026, in nanoseconds.
const NOW_2026: u64 = 1_780_000_000_000_000_000;
const MS: u64 = 1_000_000;

#[test]
fn leases_off_decide_exactly_as_the_redis_store() {
    let server = support::RedisServer::start();
    let (redis, rt) = support::compare::client_time_store(&server);
    let leasing = Leasing::new(redis.clone().with_prefix("leasing:"))
        .with_lease(QuotaLease::lasting(Duration::from_millis(250)).expect("in range"));
    let mut runner = TestRunner::new(Config {
        cases: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU64::new(0);
    let steps = prop::collection::vec((0u64..=400, 0u8..3, 0u64..=3, any::<bool>()), 1..80);
    runner
        .run(
            &(0usize..4, 1u64..=20, steps),
            |(strategy, amount, steps)| {
                let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let rates = format!("{amount}/second").parse().expect("rates");
                let policy = Policy::new(Algorithm::ALL[strategy], rates)
                    .expect("policy")
                    .with_quota_lease(QuotaLease::Off);
                let name = format!("off{n}");
                let (plain, leased) = (
                    redis.prepare(&name, &policy),
                    leasing.prepare(&name, &policy),
                );
                let mut now = NOW_2026;
                for (advance, key, cost, refund) in steps {
                    now += advance * MS;
                    let at = Timestamp::from_nanos(now);
                    if refund {
                        rt.block_on(redis.refund(&plain, &[key], at, cost))
                            .expect("redis");
                        rt.block_on(leasing.refund(&leased, &[key], at, cost))
                            .expect("redis");
                        continue;
                    }
                    let a = rt
                        .block_on(redis.hit(&plain, &[key], at, cost))
                        .expect("redis");
                    let b = rt
                        .block_on(leasing.hit(&leased, &[key], at, cost))
                        .expect("redis");
                    prop_assert_eq!(a, b);
                }
                Ok(())
            },
        )
        .expect("leases off change nothing");
    assert_eq!(leasing.stats().store_calls, 0);
}

#[test]
fn three_leasing_instances_over_one_redis_never_pass_a_fixed_window() {
    let server = support::RedisServer::start();
    let (redis, rt) = support::compare::client_time_store(&server);
    let lease = QuotaLease::lasting(Duration::from_millis(250)).expect("in range");
    let policy = Policy::fixed_window("50/second".parse().expect("rates"));
    let fleet: Vec<_> = (0..3)
        .map(|_| {
            let store = Leasing::new(redis.clone()).with_lease(lease);
            let prepared = store.prepare("fleet", &policy);
            (store, prepared)
        })
        .collect();
    // 150 hits a second for 20 seconds, in turn from each instance; the window starts at 0.
    let mut per_window = [0u64; 20];
    for i in 0..3_000u64 {
        let now = NOW_2026 + i * 20 * MS / 3;
        let (store, p) = &fleet[(i % 3) as usize];
        let decision = rt
            .block_on(store.hit(p, b"hot", Timestamp::from_nanos(now), 1))
            .expect("redis");
        if decision.allowed() {
            per_window[((now - NOW_2026) / (1_000 * MS)) as usize] += 1;
        }
        if i % 30 == 0 {
            rt.block_on(store.sweep(Timestamp::from_nanos(now)));
        }
    }
    for (w, &n) in per_window.iter().enumerate() {
        assert!((48..=50).contains(&n), "window {w}: {n}");
    }
    let calls: u64 = fleet
        .iter()
        .map(|(store, _)| store.stats().store_calls)
        .sum();
    assert!(calls * 4 < 3_000, "{calls} calls for 3000 hits");
}
