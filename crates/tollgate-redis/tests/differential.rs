//! The Lua scripts against the pure strategy functions: random sequences of hits, refunds and
//! late charges (time, key, cost) through a RedisStore in client-time mode and through
//! `tollgate::strategy::apply`, `refund` and `overdraw` (`apply_banned` and `overdraw_banned`
//! for policies with a ban) give identical decisions and leave identical states, bans
//! included, for every strategy and for policies of one to three rates, and at the bounds
//! (amounts and costs up to `MAX_AMOUNT`, late charges up to `u64::MAX`, windows up to
//! `MAX_WINDOW_SECS`, token buckets at the fastest refill). The memory store against the
//! Redis store: `alike.rs`.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use tollgate::Strategy as Algorithm;
use tollgate::strategy::{
    BanState, FixedWindow, RateState, SlidingWindowCounter, SlidingWindowLog, TokenBucket, apply,
    apply_banned, overdraw, overdraw_banned, refund,
};
use tollgate::{Ban, Decision, MAX_AMOUNT, Policy, Rate, Rates, Store, Timestamp};
use tollgate_redis::RedisStore;

/// A policy of 1 to 3 rates of 1 to 6 units per 1 to 5 seconds, maybe with a burst, maybe
/// with a ban of 1 to 3 breaches per 1 to 5 seconds for 1 to 8 seconds, maybe letting hits
/// wait up to 6 seconds for a reserved slot (where the strategy and windows allow it).
fn policies() -> impl Strategy<Value = Policy> {
    (
        0usize..4,
        prop::collection::vec((0u64..=6, 1u64..=5), 1..=3),
        prop::option::of(1u64..=9),
        prop::option::of((1u64..=3, 1u64..=5, 1u64..=8)),
        prop::option::of(1u64..=6_000),
    )
        .prop_map(|(s, rates, burst, ban, max_delay_ms)| {
            let rates = Rates::new(
                rates
                    .into_iter()
                    .map(|(n, secs)| Rate::new(n, Duration::from_secs(secs)).expect("window")),
            )
            .expect("non-empty");
            let policy = Policy::new(Algorithm::ALL[s], rates).expect("slow enough");
            let policy = match burst {
                Some(b) => policy.clone().with_burst(b).unwrap_or(policy),
                None => policy,
            };
            let policy = match max_delay_ms {
                Some(ms) => policy
                    .clone()
                    .with_max_delay(Duration::from_millis(ms))
                    .unwrap_or(policy),
                None => policy,
            };
            match ban {
                Some((n, secs, duration)) => {
                    let after = Rate::new(n, Duration::from_secs(secs)).expect("rate");
                    let ban = Ban::new(after, Duration::from_secs(duration)).expect("ban");
                    policy.with_ban(ban)
                }
                None => policy,
            }
        })
}

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hit,
    Refund,
    LateCharge,
}

/// One operation: milliseconds since the previous one, which of 3 keys, a cost seed, and
/// what it does.
type Op = (u64, usize, u64, Kind);

/// Hits, refunds and late charges, about half of them hits.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        (
            prop_oneof![0u64..=5, 0u64..=3000],
            0usize..3,
            0u64..=9,
            prop_oneof![
                5 => Just(Kind::Hit),
                3 => Just(Kind::Refund),
                2 => Just(Kind::LateCharge),
            ],
        ),
        1..60,
    )
}

/// A seed that stands for the whole of a policy's largest cost (see [`hit_cost`]).
const EVERYTHING: u64 = u64::MAX - 1;

/// The cost of a hit with `seed`: `seed % (max_cost + 1)`, except that the seeds just under
/// [`EVERYTHING`] stand for the largest costs (`EVERYTHING` for `max_cost`, one less for one
/// less, ...).
fn hit_cost(seed: u64, max_cost: u64) -> u64 {
    match EVERYTHING.checked_sub(seed) {
        Some(less) if less < 8 => max_cost.saturating_sub(less),
        _ => seed % (max_cost + 1),
    }
}

/// Reads a key's states as the scripts stored them: one array per rate, or nil.
const READ_STATES: &str = "local raw = redis.call('GET', KEYS[1]) \
    if raw then return cmsgpack.unpack(raw) end return false";

/// A state whose Lua twin the test can read back and compare.
trait Twin: RateState + PartialEq {
    /// How `Debug` prints the Rust state whose Lua twin holds `fields` (the script's array
    /// for one rate, flattened).
    fn debug_of(fields: &[i64]) -> String;
}

impl Twin for FixedWindow {
    fn debug_of(fields: &[i64]) -> String {
        match fields {
            [start, count] => format!("FixedWindow {{ start: {start}, count: {count} }}"),
            other => format!("not a fixed window: {other:?}"),
        }
    }
}

impl Twin for SlidingWindowLog {
    fn debug_of(fields: &[i64]) -> String {
        match fields {
            [entries @ .., total] if entries.len() % 2 == 0 => {
                let entries: Vec<String> = entries
                    .chunks(2)
                    .map(|e| format!("({}, {})", e[0], e[1]))
                    .collect();
                format!(
                    "SlidingWindowLog {{ entries: [{}], total: {total} }}",
                    entries.join(", ")
                )
            }
            other => format!("not a log: {other:?}"),
        }
    }
}

impl Twin for SlidingWindowCounter {
    fn debug_of(fields: &[i64]) -> String {
        match fields {
            [start, previous, current] => format!(
                "SlidingWindowCounter {{ start: {start}, previous: {previous}, current: {current} }}"
            ),
            other => format!("not a counter: {other:?}"),
        }
    }
}

impl Twin for TokenBucket {
    fn debug_of(fields: &[i64]) -> String {
        match fields {
            [tat] => format!("TokenBucket {{ tat: {tat} }}"),
            other => format!("not a token bucket: {other:?}"),
        }
    }
}

/// Every integer of a reply, depth first.
fn flatten(value: &redis::Value, into: &mut Vec<i64>) {
    match value {
        redis::Value::Int(n) => into.push(*n),
        redis::Value::Array(items) => items.iter().for_each(|item| flatten(item, into)),
        other => panic!("unexpected value in a state: {other:?}"),
    }
}

/// The states Redis holds for `key`, printed as `Debug` prints the Rust states (and, after
/// `rates` of them, a ban state); `None` when it holds none.
fn redis_states<S: Twin>(
    redis: &mut redis::Connection,
    key: &[u8],
    rates: usize,
) -> Option<String> {
    let reply: redis::Value = redis::cmd("EVAL")
        .arg(READ_STATES)
        .arg(1)
        .arg(key)
        .query(redis)
        .expect("read states");
    let redis::Value::Array(states) = reply else {
        return None;
    };
    let printed_rates: Vec<String> = states
        .iter()
        .take(rates)
        .map(|rate| {
            let mut fields = Vec::new();
            flatten(rate, &mut fields);
            S::debug_of(&fields)
        })
        .collect();
    let mut printed = format!("[{}]", printed_rates.join(", "));
    if let Some(ban) = states.get(rates) {
        let mut fields = Vec::new();
        flatten(ban, &mut fields);
        printed += &match fields[..] {
            [until, start, count] => format!(
                " BanState {{ until: {until}, breaches: FixedWindow {{ start: {start}, count: {count} }} }}"
            ),
            _ => format!(" not a ban state: {fields:?}"),
        };
    }
    Some(printed)
}

/// A store in client-time mode, a direct connection to read its keys, and a runtime.
struct Twins {
    store: RedisStore,
    redis: redis::Connection,
    rt: tokio::runtime::Runtime,
}

/// One key's states on the Rust side: one per rate, and a ban state.
struct RustKey<S> {
    states: Vec<S>,
    ban: BanState,
}

impl<S: Twin> RustKey<S> {
    /// Printed as [`redis_states`] prints Redis's (with the ban state when the policy has a
    /// ban).
    fn printed(&self, banning: bool) -> String {
        let mut printed = format!("{:?}", self.states);
        if banning {
            printed += &format!(" {:?}", self.ban);
        }
        printed
    }

    fn is_fresh(&self) -> bool {
        self.states.iter().all(|s| *s == S::default()) && self.ban == BanState::default()
    }
}

fn twin<S: Twin>(
    twins: &mut Twins,
    name: &str,
    policy: &Policy,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let Twins { store, redis, rt } = twins;
    let prepared = store.prepare(name, policy);
    let limits = prepared.limits().to_vec();
    let ban_rule = prepared.ban_rule().copied();
    let tick_ns = prepared.tick().as_nanos() as u64;
    let max_cost = limits
        .iter()
        .filter(|l| l.amount() > 0)
        .map(|l| l.capacity())
        .min()
        .unwrap_or(9);
    let mut keys: HashMap<usize, RustKey<S>> = HashMap::new();
    // Start at a realistic time: milliseconds since the Unix epoch.
    let mut now_ms = 1_780_000_000_000u64;
    for &(dt, key, seed, kind) in ops {
        now_ms += dt;
        let key_bytes = format!("k{key}");
        let now = Timestamp::from_nanos(now_ms * 1_000_000);
        let ticks = now.as_nanos() / tick_ns;
        let rust = keys.entry(key).or_insert_with(|| RustKey {
            states: vec![S::default(); limits.len()],
            ban: BanState::default(),
        });
        let fail = |e: tollgate::StoreError| TestCaseError::fail(e.to_string());
        let (op, decisions) = match kind {
            Kind::Refund => {
                // Refunds may give back more than any hit could have charged, up to
                // u64::MAX: both saturate.
                let cost = if seed == u64::MAX {
                    seed
                } else {
                    seed % (max_cost + 3)
                };
                rt.block_on(store.refund(&prepared, key_bytes.as_bytes(), now, cost))
                    .map_err(fail)?;
                refund(&mut rust.states, &limits, ticks, cost);
                (format!("refund of {cost}"), None)
            }
            Kind::LateCharge => {
                // Late charges may ask for anything: each rate takes up to twice its capacity.
                let cost = if seed >= EVERYTHING - 8 {
                    u64::MAX
                } else {
                    seed % (3 * max_cost + 2)
                };
                let redis: Decision = rt
                    .block_on(store.overdraw(&prepared, key_bytes.as_bytes(), now, cost))
                    .map_err(fail)?;
                let rust = match ban_rule {
                    Some(_) => overdraw_banned(&rust.ban, &mut rust.states, &limits, ticks, cost),
                    None => overdraw(&mut rust.states, &limits, ticks, cost),
                };
                (format!("late charge of {cost}"), Some((redis, rust)))
            }
            Kind::Hit => {
                let cost = hit_cost(seed, max_cost);
                let redis: Decision = rt
                    .block_on(store.hit(&prepared, key_bytes.as_bytes(), now, cost))
                    .map_err(fail)?;
                let rust = match &ban_rule {
                    Some(rule) => {
                        apply_banned(&mut rust.ban, rule, &mut rust.states, &limits, ticks, cost)
                    }
                    None => apply(&mut rust.states, &limits, ticks, cost),
                };
                (format!("hit of {cost}"), Some((redis, rust)))
            }
        };
        if let Some((redis, rust)) = decisions {
            let rust = rust.into_decision(prepared.tick());
            prop_assert_eq!(
                redis,
                rust,
                "{} at {} ms, key {}, {}",
                policy,
                now_ms,
                key,
                op
            );
        }
        let stored = redis_states::<S>(
            redis,
            &prepared.redis_key(key_bytes.as_bytes()),
            limits.len(),
        );
        match stored {
            Some(lua) => prop_assert_eq!(
                lua,
                rust.printed(ban_rule.is_some()),
                "{} at {} ms, key {}, after a {}",
                policy,
                now_ms,
                key,
                op
            ),
            None => prop_assert!(
                rust.is_fresh(),
                "{} at {} ms, key {}, after a {}: redis holds nothing, rust {}",
                policy,
                now_ms,
                key,
                op,
                rust.printed(true)
            ),
        }
    }
    Ok(())
}

/// Runs `ops` through both twins with the state type of the policy's strategy.
fn run_twins(
    twins: &mut Twins,
    name: &str,
    policy: &Policy,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    match policy.strategy() {
        Algorithm::FixedWindow => twin::<FixedWindow>(twins, name, policy, ops),
        Algorithm::SlidingWindowLog => twin::<SlidingWindowLog>(twins, name, policy, ops),
        Algorithm::SlidingWindowCounter => twin::<SlidingWindowCounter>(twins, name, policy, ops),
        Algorithm::TokenBucket => twin::<TokenBucket>(twins, name, policy, ops),
    }
}

/// The twins on a fresh server.
fn twins(server: &support::RedisServer) -> Twins {
    let (store, rt) = support::compare::client_time_store(server);
    let redis = redis::Client::open(server.uri())
        .and_then(|client| client.get_connection())
        .expect("a direct connection");
    Twins { store, redis, rt }
}

#[test]
fn lua_scripts_decide_exactly_as_the_pure_functions() {
    let server = support::RedisServer::start();
    // The runner takes a `Fn`: the connection it reads states through is borrowed per case.
    let twins = std::cell::RefCell::new(twins(&server));
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/differential.proptest-regressions",
        ))),
        ..Config::default()
    });
    let case = std::cell::Cell::new(0u32);
    runner
        .run(&(policies(), ops()), |(policy, ops)| {
            case.set(case.get() + 1);
            // A fresh name per case: no state leaks from one case into the next.
            let name = format!("case{}", case.get());
            run_twins(&mut twins.borrow_mut(), &name, &policy, &ops)
        })
        .expect("redis and rust agree");
}

/// Hits and refunds exactly on, just before and just after window boundaries, where an
/// off-by-one in a twin would show.
#[test]
fn lua_scripts_agree_on_window_boundaries() {
    let server = support::RedisServer::start();
    let mut twins = twins(&server);
    let mut ops = Vec::new();
    for step in [0, 999, 1, 999, 1, 1000, 1000, 500, 500, 1999, 1, 2000, 3000] {
        for cost in [1, 1, 2] {
            ops.push((step, 0, cost, Kind::Hit));
            ops.push((0, 1, cost + 1, Kind::Hit));
        }
        // Give back on both keys at the same instant, one more than the last hit charged,
        // then charge one key late.
        ops.push((0, 0, 3, Kind::Refund));
        ops.push((0, 1, 4, Kind::Refund));
        ops.push((0, 0, 5, Kind::LateCharge));
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
            // A log counts at most MAX_LOG_AMOUNT: the larger rates are refused for it.
            let Ok(policy) = Policy::new(algorithm, rates.parse().expect("rates")) else {
                assert_eq!(algorithm, Algorithm::SlidingWindowLog, "{rates}");
                continue;
            };
            // And with a ban of 2 breaches per 2 seconds for 3 seconds.
            let ban = Ban::new("2/2 seconds".parse().expect("rate"), Duration::from_secs(3));
            let banning = policy.clone().with_ban(ban.expect("ban"));
            for (j, policy) in [policy, banning].iter().enumerate() {
                let name = format!("boundary{i}{algorithm}{j}");
                let result = run_twins(&mut twins, &name, policy, &ops);
                result.unwrap_or_else(|e| panic!("{policy}: {e}"));
            }
        }
    }
}

/// Policies at the bounds, with hits and refunds that reach their edges: amounts, bursts and
/// costs of `MAX_AMOUNT`, windows of 100 years, token buckets refilling a token per
/// microsecond or taking 100 years to refill, and refunds of `u64::MAX`. Where the store
/// counts in coarser ticks the scripts must stay exact, step for step.
#[test]
fn lua_scripts_agree_at_the_bounds() {
    let server = support::RedisServer::start();
    let mut twins = twins(&server);
    let bounds = [
        ("1000000000000/second", None),
        ("1000000000000/100 years", None),
        ("999999999999/3110399999 seconds; 1/100 years", None),
        ("1/100 years; 1000000/second", None),
        ("1000000/second", Some(MAX_AMOUNT)),
        ("86400000000/day", None),
        ("1/second", Some(3_110_400_000)),
        ("0/100 years; 7/second", None),
    ];
    for (i, policy) in support::compare::under_every_strategy(&bounds) {
        let longest = policy.rates().iter().map(|r| r.window()).max();
        let longest = longest.unwrap_or_default();
        let ops = edge_ops(u64::try_from(longest.as_millis()).unwrap_or(u64::MAX));
        // And with the longest ban: 2 breaches per 100 years ban for 100 years.
        let ban = Ban::new("2/100 years".parse().expect("rate"), longest_ban()).expect("ban");
        for (j, policy) in [policy.clone(), policy.with_ban(ban)].iter().enumerate() {
            let name = format!("bounds{i}{}{j}", policy.strategy());
            let result = run_twins(&mut twins, &name, policy, &ops);
            result.unwrap_or_else(|e| panic!("{policy}: {e}"));
        }
    }
}

/// The longest a ban may last: 100 years.
fn longest_ban() -> Duration {
    Duration::from_secs(tollgate::MAX_WINDOW_SECS)
}

/// Steps that reach the edges of a window of `w` ms (none, a millisecond, half, a third,
/// just under all of it), with costs of everything, one less, one and none, refunds of
/// `u64::MAX` and of one, and late charges of everything. Time runs for at most 2.5 windows:
/// a 100-year window counted from 2026 stays within a `u64` of nanoseconds.
fn edge_ops(w: u64) -> Vec<Op> {
    let steps = [
        0,
        1,
        w / 2,
        w / 2 - 1,
        1,
        0,
        w / 3,
        w - 1,
        2,
        0,
        w / 7,
        1,
        w / 2,
    ];
    let seeds = [EVERYTHING, 1, 0, EVERYTHING - 1, u64::MAX, 1, 0];
    let mut elapsed = 0u64;
    let mut ops = Vec::new();
    for (i, &step) in steps.iter().cycle().take(40).enumerate() {
        let dt = step.min((w / 2 * 5).saturating_sub(elapsed));
        elapsed += dt;
        let seed = seeds[i % seeds.len()];
        let kind = if seed == u64::MAX || i % 9 == 8 {
            Kind::Refund
        } else if i % 7 == 3 {
            Kind::LateCharge
        } else {
            Kind::Hit
        };
        ops.push((dt, i % 2, seed, kind));
    }
    ops
}
