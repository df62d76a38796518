//! Quota leases (`Store::take`, `lua/take.lua`) against the engine's `MemoryStore` (which
//! applies `tollgate::strategy::take`): random sequences of takes (with give-backs before or
//! after the deadline of the key's last grant, and give-backs alone), hits and refunds on
//! three keys give the same grants (units, horizon, deadline) and the same decisions, for
//! every strategy, policies of one to three rates, with and without a ban.

mod support;

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tollgate::Strategy as Algorithm;
use tollgate::{
    Ban, Decision, GiveBack, Grant, MemoryStore, Policy, Rate, Rates, Store, Timestamp,
};

/// What a `SystemClock` reads in 2026, in nanoseconds: whole microseconds.
const NOW_2026: u64 = 1_780_000_000_000_000_000;

/// Amounts that divide a second's microseconds, so that a unit's time is a whole number of
/// ticks in both stores (nanoseconds in memory, microseconds in Redis).
const AMOUNTS: [u64; 12] = [0, 1, 2, 4, 5, 8, 10, 16, 20, 25, 40, 50];

/// A policy of 1 to 3 rates of 0 to 50 units per 1 to 5 seconds, maybe with a ban.
fn policies() -> impl Strategy<Value = Policy> {
    (
        0usize..4,
        prop::collection::vec((prop::sample::select(AMOUNTS.as_slice()), 1u64..=5), 1..=3),
        prop::option::of((1u64..=3, 1u64..=5, 1u64..=8)),
    )
        .prop_map(|(s, rates, ban)| {
            let rates = Rates::new(
                rates
                    .into_iter()
                    .map(|(n, secs)| Rate::new(n, Duration::from_secs(secs)).expect("window")),
            )
            .expect("non-empty");
            let policy = Policy::new(Algorithm::ALL[s], rates).expect("slow enough");
            match ban {
                Some((n, secs, duration)) => {
                    let after = Rate::new(n, Duration::from_secs(secs)).expect("rate");
                    policy.with_ban(Ban::new(after, Duration::from_secs(duration)).expect("ban"))
                }
                None => policy,
            }
        })
}

/// What one step does.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// need seed, want seed, give-back.
    Take(u64, u64, u64),
    Hit(u64),
    Refund(u64),
}

/// Milliseconds since the previous step, which of 3 keys, and the step.
fn steps() -> impl Strategy<Value = Vec<(u64, usize, Op)>> {
    let op = prop_oneof![
        6 => (0u64..=9, 0u64..=200, prop_oneof![3 => Just(0u64), 1 => 0u64..=30])
            .prop_map(|(n, w, g)| Op::Take(n, w, g)),
        2 => (0u64..=9).prop_map(Op::Hit),
        1 => (1u64..=9).prop_map(Op::Refund),
    ];
    prop::collection::vec((prop_oneof![0u64..=5, 0u64..=3000], 0usize..3, op), 1..60)
}

/// The same decision, up to a wait that Redis rounds up to its tick of 1 µs.
fn alike(memory: &Decision, redis: &Decision, what: &str) {
    let close = |m: Duration, r: Duration| r >= m && r - m < Duration::from_micros(1);
    assert_eq!(
        (
            memory.allowed(),
            memory.limit(),
            memory.remaining(),
            memory.banned()
        ),
        (
            redis.allowed(),
            redis.limit(),
            redis.remaining(),
            redis.banned()
        ),
        "{what}: {memory:?} vs {redis:?}"
    );
    assert!(
        close(memory.reset_after(), redis.reset_after()),
        "{what}: {memory:?} vs {redis:?}"
    );
    match (memory.retry_after(), redis.retry_after()) {
        (Some(m), Some(r)) => assert!(close(m, r), "{what}: {memory:?} vs {redis:?}"),
        (m, r) => assert_eq!(m, r, "{what}"),
    }
}

#[test]
fn the_take_script_grants_exactly_as_the_memory_store() {
    let server = support::RedisServer::start();
    let (redis, rt) = support::compare::client_time_store(&server);
    let mut runner = TestRunner::new(Config {
        cases: 150,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU64::new(0);
    runner
        .run(&(policies(), steps()), |(policy, steps)| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let name = format!("take{n}");
            let memory = MemoryStore::new();
            let (m_policy, r_policy) = (
                memory.prepare(&name, &policy),
                redis.prepare(&name, &policy),
            );
            let max = policy.max_cost().min(200);
            let mut now = NOW_2026;
            let mut last: [(Option<Grant>, Option<Grant>); 3] = [(None, None); 3];
            for (i, &(advance, key, op)) in steps.iter().enumerate() {
                now += advance * 1_000_000;
                let at = Timestamp::from_nanos(now);
                let key = [b'k', key as u8];
                let what = format!("{policy}, step {i}: {op:?}");
                match op {
                    Op::Take(need, want, give_back) => {
                        // A need of 0 only gives back.
                        let need = need % (max.max(1) + 1);
                        let want = (need + want).min(max.max(1));
                        let slot = usize::from(key[1]);
                        let (m_last, r_last) = last[slot];
                        let m_back =
                            GiveBack::new(give_back, m_last.and_then(|g| g.give_back_before()));
                        let r_back =
                            GiveBack::new(give_back, r_last.and_then(|g| g.give_back_before()));
                        let m = futures_executor::block_on(
                            memory.take(&m_policy, &key, at, need, want, m_back),
                        )
                        .expect("memory");
                        let r = rt
                            .block_on(redis.take(&r_policy, &key, at, need, want, r_back))
                            .expect("redis");
                        prop_assert_eq!(m.granted(), r.granted(), "{}", what);
                        prop_assert_eq!(m.horizon(), r.horizon(), "{}", what);
                        // The same instant, in nanoseconds and in microseconds.
                        let m_before = m.give_back_before().map(|ns| ns / 1_000);
                        prop_assert_eq!(m_before, r.give_back_before(), "{}", what);
                        if m.granted() > 0 {
                            last[slot] = (Some(m), Some(r));
                        }
                        if need > 0 {
                            prop_assert_eq!(m.granted() == 0, !m.decision().allowed(), "{}", what);
                        }
                        alike(&m.decision(), &r.decision(), &what);
                    }
                    Op::Hit(cost) => {
                        let cost = cost % (max + 1);
                        let m = futures_executor::block_on(memory.hit(&m_policy, &key, at, cost))
                            .expect("memory");
                        let r = rt
                            .block_on(redis.hit(&r_policy, &key, at, cost))
                            .expect("redis");
                        alike(&m, &r, &what);
                    }
                    Op::Refund(cost) => {
                        futures_executor::block_on(memory.refund(&m_policy, &key, at, cost))
                            .expect("memory");
                        rt.block_on(redis.refund(&r_policy, &key, at, cost))
                            .expect("redis");
                    }
                }
            }
            Ok(())
        })
        .expect("the take script and the memory store agree");
}
