//! Delay instead of reject ([`tollgate::strategy::apply`] with a `max_delay`), against naive
//! models written from the history of the hits that were let through:
//!
//! - token bucket: the hits *run* (at the time of the hit plus its delay) within
//!   `burst + rate × T` in every interval of length T, every delay is at most `max_delay`,
//!   and a burst at one instant is released one unit interval apart;
//! - fixed window: the decisions (allowed, delay, `retry_after`) are those of a plain model
//!   that keeps the current window's count and the next window's reservations;
//! - both: a denied hit's `retry_after` is exact (the same hit is allowed, with a delay, that
//!   many ticks later and not one tick sooner), and a peek reports the delay a hit would get.

use std::time::Duration;

use proptest::prelude::*;
use tollgate::strategy::{FixedWindow, RateState, TickDecision, TickRate, TokenBucket, apply};
use tollgate::{Limiter, ManualClock, MemoryStore, Policy, PolicyError, Rate, Strategy as Kind};

/// A rate of `amount` per `window` ticks holding `capacity`, with waits of up to `max_delay`.
fn limit(amount: u64, capacity: u64, window: u64, max_delay: u64) -> TickRate {
    TickRate::new(
        amount,
        capacity,
        Duration::from_nanos(window),
        Duration::from_nanos(1),
    )
    .with_max_delay(max_delay)
}

/// Hits as (ticks since the previous one, cost seed); the cost is the seed modulo the
/// capacity, plus one.
fn hits() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((prop_oneof![0u64..=2, 0u64..=80], 0u64..=16), 1..100)
}

/// Checks that `retry_after` of a denied `decision` for a hit of `cost` at `now` is exact: a
/// copy of the states allows the hit that many ticks later, and denies it one tick sooner.
fn retry_is_exact<S: RateState>(
    states: &[S],
    limits: &[TickRate],
    now: u64,
    cost: u64,
    decision: &TickDecision,
) -> Result<(), TestCaseError> {
    let retry = decision
        .retry_after
        .expect("a denied hit says when to retry");
    prop_assert!(retry >= 1);
    let at = |t: u64| apply(&mut states.to_vec(), limits, t, cost);
    prop_assert!(at(now + retry).allowed, "not allowed {} ticks later", retry);
    if retry > 1 {
        prop_assert!(!at(now + retry - 1).allowed, "allowed before {}", retry);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn token_bucket_runs_hits_within_the_rate(
        (amount, window, burst, max_delay) in (1u64..=6, 1u64..=60, 1u64..=8, 1u64..=200),
        hits in hits(),
    ) {
        let limits = [limit(amount, burst, window, max_delay)];
        let interval = limits[0].unit_ticks();
        let mut state = [TokenBucket::default()];
        let (mut now, mut runs) = (0u64, Vec::<(u64, u64)>::new());
        for (dt, seed) in hits {
            now += dt;
            let cost = seed % burst + 1;
            let peek = apply(&mut state.clone(), &limits, now, 0);
            let before = state;
            let decision = apply(&mut state, &limits, now, cost);
            if decision.allowed {
                prop_assert!(decision.delay <= max_delay);
                runs.push((now + decision.delay, cost));
                if cost == 1 {
                    prop_assert_eq!((peek.allowed, peek.delay), (true, decision.delay));
                }
            } else {
                prop_assert_eq!(decision.delay, 0);
                retry_is_exact(&before, &limits, now, cost, &decision)?;
            }
        }
        // In every interval [a, b] of run times: units × I ≤ (b − a) + burst × I.
        runs.sort_unstable();
        for (i, &(a, _)) in runs.iter().enumerate() {
            let mut units = 0;
            for &(b, cost) in &runs[i..] {
                units += cost;
                prop_assert!(
                    units * interval <= (b - a) + burst * interval,
                    "{} units run in [{}, {}]", units, a, b
                );
            }
        }
    }

    #[test]
    fn fixed_window_decides_as_a_window_and_its_reservations(
        (amount, window, max_delay) in (1u64..=6, 2u64..=60, 1u64..=80),
        hits in hits(),
    ) {
        let limits = [limit(amount, amount, window, max_delay)];
        let bound = max_delay.min(window - 1);
        let mut state = [FixedWindow::default()];
        let mut model = WindowModel::default();
        let mut now = 0;
        for (dt, seed) in hits {
            now += dt;
            let cost = seed % amount + 1;
            let before = state.clone();
            let decision = apply(&mut state, &limits, now, cost);
            let expected = model.hit(amount, window, bound, now, cost);
            prop_assert_eq!(
                (decision.allowed, decision.delay),
                expected,
                "hit of {} at {}", cost, now
            );
            if !decision.allowed {
                retry_is_exact(&before, &limits, now, cost, &decision)?;
            }
        }
    }
}

/// A fixed window kept plainly: when the current window started, its count, and the units
/// reserved in the window after it.
#[derive(Debug, Default)]
struct WindowModel {
    start: Option<u64>,
    count: u64,
    next: u64,
}

impl WindowModel {
    /// Whether a hit of `cost` at `now` is allowed, and its delay.
    fn hit(&mut self, capacity: u64, window: u64, bound: u64, now: u64, cost: u64) -> (bool, u64) {
        if let Some(start) = self.start
            && now >= start + window
        {
            if self.next > 0 && now < start + 2 * window {
                (self.start, self.count, self.next) = (Some(start + window), self.next, 0);
            } else {
                (self.start, self.count, self.next) = (None, 0, 0);
            }
        }
        let Some(start) = self.start else {
            (self.start, self.count) = (Some(now), cost);
            return (true, 0);
        };
        if self.next == 0 && self.count + cost <= capacity {
            self.count += cost;
            return (true, 0);
        }
        let wait = start + window - now;
        if wait <= bound && self.next + cost <= capacity {
            self.next += cost;
            return (true, wait);
        }
        (false, 0)
    }
}

/// Issue 13's burst: 20 hits at once at 10 a second (a burst of 1) with waits of up to a
/// second: the first runs at once, the next ten 100 ms apart, the rest are denied with the
/// exact time until one would be let through with a wait.
#[test]
fn a_burst_is_released_at_the_rate() {
    let ms = Duration::from_millis;
    let clock = ManualClock::new();
    let limiter = Limiter::new(MemoryStore::new()).with_clock(clock.clone());
    let policy = Policy::token_bucket(Rate::per_second(10).into())
        .and_then(|p| p.with_burst(1))
        .and_then(|p| p.with_max_delay(ms(1000)))
        .expect("a valid policy");
    let api = limiter.policy("api", policy);
    let decisions: Vec<_> = (0..20)
        .map(|_| api.hit_sync("k", 1).expect("hit"))
        .collect();
    let delays: Vec<Duration> = decisions
        .iter()
        .filter(|d| d.allowed())
        .map(|d| d.delay())
        .collect();
    let expected: Vec<Duration> = (0..=10).map(|i| ms(100 * i)).collect();
    assert_eq!(delays, expected);
    for denied in &decisions[11..] {
        assert!(!denied.allowed());
        assert_eq!(denied.retry_after(), Some(ms(100)));
        assert_eq!(denied.delay(), Duration::ZERO);
    }
    clock.advance(ms(100));
    let next = api.hit_sync("k", 1).expect("hit");
    assert_eq!((next.allowed(), next.delay()), (true, ms(1000)));
}

/// A policy refuses a delay where it cannot reserve, with an error that says why.
#[test]
fn max_delay_is_refused_where_no_slot_can_be_reserved() {
    let ms = Duration::from_millis;
    let rates = || "10/second; 100/minute".parse().expect("rates");
    let log = Policy::sliding_window_log(rates()).expect("log");
    assert_eq!(
        log.with_max_delay(ms(10)),
        Err(PolicyError::DelayNotOffered(Kind::SlidingWindowLog))
    );
    let counter = Policy::sliding_window_counter(rates());
    let err = counter
        .with_max_delay(ms(10))
        .expect_err("a counter cannot reserve");
    assert!(
        err.to_string().contains("not sliding-window-counter"),
        "{err}"
    );
    let window = Policy::fixed_window(rates());
    assert!(matches!(
        window.clone().with_max_delay(ms(1000)),
        Err(PolicyError::DelayNotShorterThanWindow { rate, .. }) if rate == Rate::per_second(10)
    ));
    assert!(window.with_max_delay(ms(999)).is_ok());
    let bucket = || Policy::token_bucket(rates()).expect("bucket");
    assert_eq!(
        bucket().with_max_delay(Duration::ZERO),
        Err(PolicyError::DelayOutOfRange(Duration::ZERO))
    );
    let too_long = tollgate::MAX_DELAY + ms(1);
    assert_eq!(
        bucket().with_max_delay(too_long),
        Err(PolicyError::DelayOutOfRange(too_long))
    );
    assert!(bucket().with_max_delay(tollgate::MAX_DELAY).is_ok());
}

/// A multi-rate bucket reserves in every rate at the time the hit runs: the hits of a burst
/// run within both rates.
#[test]
fn several_rates_reserve_together() {
    // 10 per 100 ticks with a burst of 1 (a token every 10 ticks), and 3 per 100 ticks.
    let limits = [limit(10, 1, 100, 200), limit(3, 3, 100, 200)];
    let mut states = [TokenBucket::default(), TokenBucket::default()];
    let delays: Vec<Option<u64>> = (0..6)
        .map(|_| {
            let d = apply(&mut states, &limits, 0, 1);
            d.allowed.then_some(d.delay)
        })
        .collect();
    // The first three fit the slow bucket's burst, 10 ticks apart; the next ones wait for
    // its refill, a token every 34 ticks (100 / 3, rounded up).
    assert_eq!(
        delays,
        [Some(0), Some(10), Some(20), Some(34), Some(68), Some(102)]
    );
}
