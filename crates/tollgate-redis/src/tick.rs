//! The tick a policy's scripts count time in: 1 µs, or a coarser power of ten where the
//! numbers a script forms would not stay exact in Lua's doubles.

use std::time::Duration;

use tollgate::strategy::TickRate;
use tollgate::{Policy, Strategy};

/// Every span a script adds to a time, and every product it forms, stays below this many
/// ticks: 2^49. A time (µs since 1970: 2^50.7 in 2026) plus three such spans, or five such
/// products, then stay below 2^53, exact in a double, until about the year 2200.
const EXACT_SPAN: u128 = 1 << 49;

/// The coarsest tick: 10^13 µs, about 116 days, which every policy within the core's
/// bounds ([`tollgate::MAX_AMOUNT`], [`tollgate::MAX_WINDOW_SECS`],
/// [`tollgate::MAX_TOKENS_PER_SECOND`]) needs at most (see the tests): 10^12 units per 100
/// years in a sliding window counter.
const MAX_TICK_US: u64 = 10_000_000_000_000;

/// The tick, in whole microseconds, for `policy`: 1 µs unless some rate's span (see
/// [`span`]) would reach 2^49 ticks, then 10 µs, 100 µs, ...
pub(crate) fn tick_us(policy: &Policy) -> u64 {
    let mut tick = 1;
    while tick < MAX_TICK_US && !exact_at(policy, tick) {
        tick *= 10;
    }
    tick
}

/// Whether every rate of `policy`, and its ban, stay exact in ticks of `tick_us`
/// microseconds. A ban adds its duration to a time (when it ends) and its breaches' window
/// (when their count starts again).
fn exact_at(policy: &Policy, tick_us: u64) -> bool {
    let tick = Duration::from_micros(tick_us);
    let rates = policy
        .limits(tick)
        .iter()
        .all(|limit| span(policy.strategy(), limit) < EXACT_SPAN);
    let ban = policy
        .ban_rule(tick)
        .is_none_or(|ban| u128::from(ban.breaches().window().max(ban.duration())) < EXACT_SPAN);
    rates && ban
}

/// The largest number, beside times, that `strategy`'s script forms for `limit`:
///
/// - a window, which fixed windows and logs add to a time (a fixed window in debt, two);
/// - for the sliding window counter, `N × W`: the weighted counts are up to five times it
///   (after a late charge, the counts reach `2N` and a hit adds `N`), and the reset,
///   `start + 2W`, adds two windows;
/// - for a token bucket, its depth `burst × I` (`I` the ticks a token takes): the TAT is at
///   most two depths past the time (one after a late charge, which fills the bucket to twice
///   its depth at most), and a hit's test adds another. The depth is what matters,
///   not `N × W`: a bucket of 10^6 a second is counted in µs, a token each tick.
///
/// A kill switch (an amount of 0) only ever reports its window.
fn span(strategy: Strategy, limit: &TickRate) -> u128 {
    let window = u128::from(limit.window());
    let units = u128::from(limit.capacity().max(1));
    match strategy {
        _ if limit.amount() == 0 => window,
        Strategy::FixedWindow | Strategy::SlidingWindowLog => window,
        Strategy::SlidingWindowCounter => units * window,
        Strategy::TokenBucket => window.max(units * u128::from(limit.unit_ticks())),
    }
}

#[cfg(test)]
mod tests {
    use tollgate::{
        MAX_AMOUNT, MAX_LOG_AMOUNT, MAX_TOKENS_PER_SECOND, MAX_WINDOW_SECS, Rate, Rates,
    };

    use super::*;

    fn policy(strategy: Strategy, rates: &str, burst: Option<u64>) -> Policy {
        let rates: Rates = rates.parse().expect("rates");
        Policy::from_parts(strategy, rates, burst).expect("in bounds")
    }

    #[test]
    fn ordinary_policies_count_in_microseconds() {
        for strategy in Strategy::ALL {
            for rates in ["5/second", "100/minute; 1000/hour", "1/day", "0/second"] {
                assert_eq!(
                    tick_us(&policy(strategy, rates, None)),
                    1,
                    "{strategy} {rates}"
                );
            }
        }
        // A window strategy other than the counter adds only its window to a time: 17 years.
        for (strategy, amount) in [
            (Strategy::FixedWindow, MAX_AMOUNT),
            (Strategy::SlidingWindowLog, MAX_LOG_AMOUNT),
        ] {
            let most = format!("{amount}/17 years");
            assert_eq!(tick_us(&policy(strategy, &most, None)), 1, "{strategy}");
        }
    }

    /// A token bucket at the fastest refill, 10^6 a second however written, counts a token
    /// per microsecond: its tick is 1 µs (by `N × W` it would have been 10 ms, a token every
    /// 10 ms, 10,000 times slower than in memory).
    #[test]
    fn the_fastest_token_bucket_refills_a_token_per_microsecond() {
        for rates in [
            "1000000/second",
            "86400000000/day",
            "1000000000000/1000000 seconds",
        ] {
            for burst in [None, Some(1), Some(MAX_AMOUNT)] {
                let bucket = policy(Strategy::TokenBucket, rates, burst);
                assert_eq!(tick_us(&bucket), 1, "{bucket}");
                let limit = bucket.limits(Duration::from_micros(1))[0];
                assert_eq!(limit.unit_ticks(), 1, "{bucket}");
            }
        }
    }

    #[test]
    fn large_spans_count_in_coarser_ticks() {
        // 10^9 a day: N × W = 8.64 × 10^19 µs, ..., 8.64 × 10^13 in ticks of a second.
        let counter = policy(Strategy::SlidingWindowCounter, "1000000000/day", None);
        assert_eq!(tick_us(&counter), 1_000_000);
        // 100 years, 3.1 × 10^15 µs, is past 2^49 for a window strategy too.
        let long = policy(Strategy::FixedWindow, "1/100 years", None);
        assert_eq!(tick_us(&long), 10);
        // A bucket refilled in 100 years: its depth is 100 years.
        let deep = policy(Strategy::TokenBucket, "1/second", Some(3_110_400_000));
        assert_eq!(tick_us(&deep), 10);
    }

    /// At the bounds, every strategy finds a tick at which it is exact, at most the coarsest.
    #[test]
    fn every_policy_within_the_bounds_is_exact_at_its_tick() {
        let window = Duration::from_secs(MAX_WINDOW_SECS);
        let rates = [
            Rate::new(MAX_AMOUNT, window),
            Rate::new(MAX_AMOUNT, Duration::from_secs(1)),
            Rate::new(1, window),
            Rate::new(MAX_TOKENS_PER_SECOND, Duration::from_secs(1)),
            Rate::new(
                MAX_AMOUNT,
                Duration::from_secs(MAX_AMOUNT / MAX_TOKENS_PER_SECOND),
            ),
        ];
        for rate in rates.into_iter().map(|rate| rate.expect("in bounds")) {
            for strategy in Strategy::ALL {
                for burst in [None, Some(1), Some(MAX_AMOUNT)] {
                    let Ok(policy) = Policy::from_parts(strategy, rate.into(), burst) else {
                        continue;
                    };
                    let tick = tick_us(&policy);
                    assert!(exact_at(&policy, tick), "{policy}: tick {tick} µs");
                }
            }
        }
        let widest = policy(
            Strategy::SlidingWindowCounter,
            &format!("{MAX_AMOUNT}/100 years"),
            None,
        );
        assert_eq!(tick_us(&widest), MAX_TICK_US);
    }
}
