//! The memory store (nanosecond ticks) against the Redis store (microsecond ticks, or coarser
//! where its numbers would not stay exact in Lua's doubles): the same decisions, through hits,
//! refunds and late charges, with and without bans, wherever the rates, windows and times are whole ticks of the Redis store; a
//! wait that is not a whole number of ticks (the counter's) is rounded up by Redis, never
//! down, by less than a tick. The scripts against the pure functions: `differential.rs`.

mod support;

use std::time::Duration;

use tollgate::Strategy as Algorithm;
use tollgate::{
    Ban, Decision, Limiter, MAX_AMOUNT, ManualClock, MemoryStore, Policy, Store, Timestamp,
};
use tollgate_redis::RedisStore;

/// What a `SystemClock` reads in 2026, in nanoseconds: a multiple of every tick the Redis
/// store may choose (up to 10^13 µs).
const NOW_2026: u64 = 1_780_000_000_000_000_000;

/// A Redis store in client-time mode, and a runtime to drive it.
struct Twins {
    redis: RedisStore,
    rt: tokio::runtime::Runtime,
}

fn twins(server: &support::RedisServer) -> Twins {
    let (redis, rt) = support::compare::client_time_store(server);
    Twins { redis, rt }
}

/// Drives `steps` (how far the clock moves, then the cost of a hit on one of two keys)
/// through `policy` in a memory store and in Redis, from [`NOW_2026`], with every fifth hit
/// given back at once (deduct-when) and every seventh followed by a late charge of three
/// times its cost and one more, and requires the same decisions. Returns how many hits were
/// denied by a ban.
fn compare(twins: &Twins, name: &str, policy: &Policy, steps: &[(Duration, u64)]) -> usize {
    let mut banned = 0;
    let clock = ManualClock::new();
    clock.set(Timestamp::from_nanos(NOW_2026));
    let memory = Limiter::new(MemoryStore::new())
        .with_clock(clock.clone())
        .policy(name, policy.clone());
    let redis = Limiter::new(twins.redis.clone())
        .with_clock(clock.clone())
        .policy(name, policy.clone());
    let tick = twins.redis.prepare(name, policy).tick();
    for (step, &(advance, cost)) in steps.iter().enumerate() {
        clock.advance(advance);
        let key = step as u64 % 2;
        let m = memory.hit_sync(&key, cost).expect("memory");
        let r = twins
            .rt
            .block_on(redis.hit_cost(&key, cost))
            .expect("redis");
        alike(
            &m,
            &r,
            tick,
            &format!("{policy} in ticks of {tick:?}, step {step}"),
        );
        banned += usize::from(m.banned());
        if step % 5 == 4 {
            let refunded = futures_executor::block_on(memory.refund(&key, cost));
            refunded.expect("memory");
            twins.rt.block_on(redis.refund(&key, cost)).expect("redis");
        }
        if step % 7 == 6 {
            let late = cost.saturating_mul(3).saturating_add(1);
            let m = futures_executor::block_on(memory.overdraw(&key, late)).expect("memory");
            let r = twins
                .rt
                .block_on(redis.overdraw(&key, late))
                .expect("redis");
            let what = format!("{policy} in ticks of {tick:?}, step {step}, late charge of {late}");
            alike(&m, &r, tick, &what);
        }
    }
    banned
}

/// The memory store's decision `m` and Redis's `r` are the same, but for a wait Redis rounds
/// up to its tick.
fn alike(m: &Decision, r: &Decision, tick: Duration, what: &str) {
    let what = format!("{what}: {m:?} {r:?}");
    assert_eq!(
        (m.allowed(), m.banned()),
        (r.allowed(), r.banned()),
        "{what}"
    );
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
    assert!(r_wait >= m_wait && r_wait - m_wait < tick, "{what}");
}

/// Policies with bans, hit hard enough to be banned, charged late into debt, and let go: the
/// two stores ban, count and lift bans alike.
#[test]
fn memory_and_redis_ban_and_owe_alike() {
    let server = support::RedisServer::start();
    let twins = twins(&server);
    let steps: Vec<(Duration, u64)> = (0..300u64)
        .map(|step| {
            let advance = [0, 100_000, 0, 400_000, 2_100_000, 0, 50_000][step as usize % 7];
            (Duration::from_micros(advance), 1 + step % 2)
        })
        .collect();
    for (i, (rates, after, duration)) in [
        ("2/second", "2/5 seconds", 3),
        ("4/2 seconds; 5/5 seconds", "1/second", 2),
        ("4/second", "3/minute", 60),
    ]
    .into_iter()
    .enumerate()
    {
        let ban =
            Ban::new(after.parse().expect("rate"), Duration::from_secs(duration)).expect("ban");
        for algorithm in Algorithm::ALL {
            let policy = Policy::new(algorithm, rates.parse().expect("rates")).expect("policy");
            let name = format!("bans{i}{algorithm}");
            let banned = compare(&twins, &name, &policy.clone().with_ban(ban), &steps);
            assert!(banned > 10, "{policy}: {banned} hits denied by a ban");
        }
    }
}

#[test]
fn memory_and_redis_decide_alike_at_whole_microseconds() {
    let server = support::RedisServer::start();
    let twins = twins(&server);
    // Steps of 0.1 ms to 1.2 s, in a pattern that lands on window edges; costs 0 to 2.
    let steps: Vec<(Duration, u64)> = (0..400u64)
        .map(|step| {
            let advance = [100, 0, 250_000, 1_000, 999_900, 1_200_000][step as usize % 6];
            (Duration::from_micros(advance), step % 3)
        })
        .collect();
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
            // A log counts at most MAX_LOG_AMOUNT: 10000/second is refused for it.
            let Ok(policy) = Policy::new(algorithm, rates.parse().expect("rates")) else {
                assert_eq!(algorithm, Algorithm::SlidingWindowLog, "{rates}");
                continue;
            };
            compare(&twins, &format!("alike{i}{algorithm}"), &policy, &steps);
        }
    }
}

/// At the bounds: amounts, bursts and costs of `MAX_AMOUNT`, windows of (nearly) 100
/// years, token buckets refilling a token per microsecond or taking 100 years to refill,
/// each counted in Redis at the tick its numbers need (1 µs to 10^13 µs), with windows and
/// times that are whole ticks.
#[test]
fn memory_and_redis_decide_alike_at_the_bounds() {
    let server = support::RedisServer::start();
    let twins = twins(&server);
    let bounds = [
        ("1000000000000/second", None),
        ("1000000000000/3100000000 seconds", None),
        ("1/100 years", None),
        ("1000000/second", None),
        ("1000000/second", Some(MAX_AMOUNT)),
        ("86400000000/day", None),
        ("1/second", Some(3_110_400_000)),
    ];
    for (i, policy) in support::compare::under_every_strategy(&bounds) {
        let name = format!("bounds{i}{}", policy.strategy());
        let tick = twins.redis.prepare(&name, &policy).tick();
        let window = policy.rates().iter().map(|r| r.window()).max();
        let window = window.unwrap_or_default();
        assert!(
            (window.as_nanos() % tick.as_nanos()) == 0,
            "{policy}: {window:?} in ticks of {tick:?}"
        );
        compare(
            &twins,
            &name,
            &policy,
            &edge_steps(window, tick, policy.max_cost()),
        );
    }
}

/// Steps that are whole ticks and reach a window's edges (none, a tick, half, a third, a
/// window less a tick), with costs of everything, one less, one, half and none; time runs
/// for at most 2.5 windows.
fn edge_steps(window: Duration, tick: Duration, max_cost: u64) -> Vec<(Duration, u64)> {
    let ticks = u32::try_from(window.as_nanos() / tick.as_nanos()).unwrap_or(u32::MAX);
    let steps = [0, 1, ticks / 2, ticks / 3, 1, 0, ticks - 1, 2, ticks / 7, 1];
    let costs = [max_cost, 1, 0, max_cost - 1, max_cost / 2, 1];
    let budget = ticks.saturating_mul(5) / 2;
    let mut elapsed = 0u32;
    (0..40)
        .map(|i| {
            let step = steps[i % steps.len()].min(budget - elapsed);
            elapsed += step;
            (tick * step, costs[i % costs.len()])
        })
        .collect()
}

/// The baked fixed-window script (one rate, no ban, no delay: its numbers in its source)
/// decides as the memory store does, through random steps, refunds and late charges; and
/// a hit of such a policy does run it, not the general script.
#[test]
fn memory_and_redis_decide_alike_through_the_baked_fixed_window() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let server = support::RedisServer::start();
    let twins = twins(&server);
    let general = Policy::fixed_window("5/second; 50/minute".parse().expect("rates"));
    let general = twins.redis.prepare("general", &general);
    let steps = prop::collection::vec((prop_oneof![0u64..=5, 0u64..=3_000], 0u64..=4), 1..80);
    let mut runner = TestRunner::new(Config {
        cases: 120,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::cell::Cell::new(0u32);
    runner
        .run(&((1u64..=6, 1u64..=5), steps), |((amount, secs), steps)| {
            case.set(case.get() + 1);
            let rate = tollgate::Rate::new(amount, Duration::from_secs(secs)).expect("rate");
            let policy = Policy::fixed_window(rate.into());
            let name = format!("baked{}", case.get());
            let prepared = twins.redis.prepare(&name, &policy);
            prop_assert_ne!(prepared.hit_script_sha(), general.hit_script_sha());
            let steps: Vec<(Duration, u64)> = steps
                .into_iter()
                .map(|(ms, seed)| (Duration::from_millis(ms), seed % (amount + 1)))
                .collect();
            compare(&twins, &name, &policy, &steps);
            Ok(())
        })
        .expect("the baked script and the memory store agree");
}
