//! The Lua scripts against the pure strategy functions: random sequences of (time, key, cost)
//! through a RedisStore in client-time mode and through `tollgate::strategy::apply` give
//! identical decisions, for every strategy and for policies of one to three rates.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use tollgate::Strategy as Algorithm;
use tollgate::strategy::{
    FixedWindow, RateState, SlidingWindowCounter, SlidingWindowLog, TokenBucket, apply,
};
use tollgate::{Decision, Policy, Rate, Rates, Store, Timestamp};
use tollgate_redis::RedisStore;

/// A policy of 1 to 3 rates of 1 to 6 units per 1 to 5 seconds, maybe with a burst.
fn policies() -> impl Strategy<Value = Policy> {
    (
        0usize..4,
        prop::collection::vec((0u64..=6, 1u64..=5), 1..=3),
        prop::option::of(1u64..=9),
    )
        .prop_map(|(s, rates, burst)| {
            let rates = Rates::new(
                rates
                    .into_iter()
                    .map(|(n, secs)| Rate::new(n, Duration::from_secs(secs)).expect("window")),
            )
            .expect("non-empty");
            let policy = Policy::new(Algorithm::ALL[s], rates);
            match burst {
                Some(b) => policy.clone().with_burst(b).unwrap_or(policy),
                None => policy,
            }
        })
}

/// Hits: milliseconds since the previous hit, which of 3 keys, a cost seed.
fn hits() -> impl Strategy<Value = Vec<(u64, usize, u64)>> {
    prop::collection::vec(
        (prop_oneof![0u64..=5, 0u64..=3000], 0usize..3, 0u64..=9),
        1..60,
    )
}

fn twin<S: RateState>(
    store: &RedisStore,
    rt: &tokio::runtime::Runtime,
    name: &str,
    policy: &Policy,
    hits: &[(u64, usize, u64)],
) -> Result<(), TestCaseError> {
    let prepared = store.prepare(name, policy);
    let limits = prepared.limits().to_vec();
    let tick_ns = prepared.tick().as_nanos() as u64;
    let max_cost = limits
        .iter()
        .filter(|l| l.amount() > 0)
        .map(|l| l.capacity())
        .min()
        .unwrap_or(9);
    let mut states: HashMap<usize, Vec<S>> = HashMap::new();
    // Start at a realistic time: milliseconds since the Unix epoch.
    let mut now_ms = 1_780_000_000_000u64;
    for &(dt, key, seed) in hits {
        now_ms += dt;
        let cost = seed % (max_cost + 1);
        let key_bytes = format!("k{key}");
        let now = Timestamp::from_nanos(now_ms * 1_000_000);
        let redis: Decision = rt
            .block_on(store.hit(&prepared, key_bytes.as_bytes(), now, cost))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let state = states
            .entry(key)
            .or_insert_with(|| vec![S::default(); limits.len()]);
        let rust = apply(state, &limits, now.as_nanos() / tick_ns, cost);
        let rust = Decision::from_outcome(rust, prepared.tick());
        prop_assert_eq!(
            redis,
            rust,
            "{} at {} ms, key {}, cost {}",
            policy,
            now_ms,
            key,
            cost
        );
    }
    Ok(())
}

/// Runs `hits` through both twins with the state type of the policy's strategy.
fn twins(
    store: &RedisStore,
    rt: &tokio::runtime::Runtime,
    name: &str,
    policy: &Policy,
    hits: &[(u64, usize, u64)],
) -> Result<(), TestCaseError> {
    match policy.strategy() {
        Algorithm::FixedWindow => twin::<FixedWindow>(store, rt, name, policy, hits),
        Algorithm::SlidingWindowLog => twin::<SlidingWindowLog>(store, rt, name, policy, hits),
        Algorithm::SlidingWindowCounter => {
            twin::<SlidingWindowCounter>(store, rt, name, policy, hits)
        }
        Algorithm::TokenBucket => twin::<TokenBucket>(store, rt, name, policy, hits),
    }
}

/// A store in client-time mode on a fresh server, and a runtime to drive it.
fn client_time_store(server: &support::RedisServer) -> (RedisStore, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt
        .block_on(RedisStore::connect(&server.uri()))
        .expect("connect")
        .with_client_time()
        .with_timeout(Duration::from_secs(5));
    (store, rt)
}

#[test]
fn lua_scripts_decide_exactly_as_the_pure_functions() {
    let server = support::RedisServer::start();
    let (store, rt) = client_time_store(&server);
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/differential.proptest-regressions",
        ))),
        ..Config::default()
    });
    let case = std::cell::Cell::new(0u32);
    runner
        .run(&(policies(), hits()), |(policy, hits)| {
            case.set(case.get() + 1);
            // A fresh name per case: no state leaks from one case into the next.
            let name = format!("case{}", case.get());
            twins(&store, &rt, &name, &policy, &hits)
        })
        .expect("redis and rust agree");
}

/// Hits exactly on, just before and just after window boundaries, where an off-by-one in a
/// twin would show.
#[test]
fn lua_scripts_agree_on_window_boundaries() {
    let server = support::RedisServer::start();
    let (store, rt) = client_time_store(&server);
    let mut hits = Vec::new();
    for step in [0, 999, 1, 999, 1, 1000, 1000, 500, 500, 1999, 1, 2000, 3000] {
        for cost in [1, 1, 2] {
            hits.push((step, 0, cost));
            hits.push((0, 1, cost + 1));
        }
    }
    // The last two: a rate that refills every 100 µs, and one so large that the store counts
    // in ticks of 100 µs.
    let policies = [
        "2/second",
        "3/2 seconds; 4/3 seconds",
        "1/second",
        "10000/second",
        "100000/day; 3/second",
    ];
    for (i, rates) in policies.iter().enumerate() {
        for algorithm in Algorithm::ALL {
            let policy = Policy::new(algorithm, rates.parse().expect("rates"));
            let name = format!("boundary{i}{algorithm}");
            let result = twins(&store, &rt, &name, &policy, &hits);
            result.unwrap_or_else(|e| panic!("{policy}: {e}"));
        }
    }
}

/// The memory store (nanosecond ticks) and the Redis store (microsecond ticks) decide alike
/// wherever the rate and the times are whole microseconds; a wait that is not a whole number
/// of microseconds (the counter's) is rounded up by Redis, never down.
#[test]
fn memory_and_redis_decide_alike_at_whole_microseconds() {
    use tollgate::{Limiter, ManualClock, MemoryStore};

    let server = support::RedisServer::start();
    let (store, rt) = client_time_store(&server);
    let clock = ManualClock::new();
    clock.set(Timestamp::from_nanos(1_780_000_000_000_000_000));
    for (i, rates) in [
        "10000/second",
        "5/second",
        "4/2 seconds; 5/5 seconds",
        "4/second",
    ]
    .iter()
    .enumerate()
    {
        for algorithm in Algorithm::ALL {
            let policy = Policy::new(algorithm, rates.parse().expect("rates"));
            let name = format!("alike{i}{algorithm}");
            let memory = Limiter::new(MemoryStore::new())
                .with_clock(clock.clone())
                .with_policy(&name, policy.clone());
            let redis = Limiter::new(store.clone())
                .with_clock(clock.clone())
                .with_policy(&name, policy.clone());
            for step in 0..400u64 {
                // Steps of 0.1 ms to 1.2 s, in a pattern that lands on window edges.
                clock.advance(Duration::from_micros(
                    [100, 0, 250_000, 1_000, 999_900, 1_200_000][step as usize % 6],
                ));
                let (key, cost) = (step % 2, step % 3);
                let m = memory.hit_now(&name, &key, cost).expect("memory");
                let r = rt
                    .block_on(redis.hit_cost(&name, &key, cost))
                    .expect("redis");
                let what = format!("{policy}, step {step}: {m:?} {r:?}");
                assert_eq!(m.allowed(), r.allowed(), "{what}");
                assert_eq!(
                    (m.limit(), m.remaining()),
                    (r.limit(), r.remaining()),
                    "{what}"
                );
                assert_eq!(
                    (m.reset_after(), m.window()),
                    (r.reset_after(), r.window()),
                    "{what}"
                );
                let (m_wait, r_wait) = (
                    m.retry_after().unwrap_or_default(),
                    r.retry_after().unwrap_or_default(),
                );
                assert!(
                    r_wait >= m_wait && r_wait - m_wait < Duration::from_micros(1),
                    "{what}"
                );
            }
        }
    }
}
