//! Property tests: each strategy against a naive model of its defining invariant (see
//! `model/`), written from the history of allowed hits rather than from the strategy's own
//! state; refunds
//! against never having hit and against the capacity; the notation parser against arbitrary
//! input.
//!
//! Failing cases are kept in `proptests.proptest-regressions` and replayed first.

use std::time::Duration;

use proptest::prelude::*;
use tollgate::strategy::{
    FixedWindow, RateState, SlidingWindowCounter, SlidingWindowLog, TickDecision, TickRate,
    TokenBucket, apply, refund,
};
use tollgate::{Rate, Rates};

mod model;

use model::{
    bucket_allows, counter_allows, counter_view, fixed_window_allows, fixed_windows, limit, run,
    ticks_for, trailing,
};

/// A limit of 1 to 8 units per 1 to 60 ticks; a token bucket gets a burst of 1 to 16.
fn limits(bucket: bool) -> impl Strategy<Value = TickRate> {
    (1u64..=8, 1u64..=60, 1u64..=16).prop_map(move |(amount, window, burst)| {
        limit(amount, if bucket { burst } else { amount }, window)
    })
}

/// Hits as (ticks since the previous one, cost seed); the cost is taken modulo capacity + 1.
fn hits() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((prop_oneof![0u64..=3, 0u64..=130], 0u64..=16), 1..120)
}

/// Hits and refunds as (ticks since the previous one, cost seed, whether it is a refund).
fn operations() -> impl Strategy<Value = Vec<(u64, u64, bool)>> {
    prop::collection::vec(
        (
            prop_oneof![0u64..=3, 0u64..=130],
            0u64..=16,
            prop::bool::weighted(0.3),
        ),
        0..80,
    )
}

/// The limit without its burst: what the strategies other than the token bucket are given.
fn without_burst(l: TickRate) -> TickRate {
    limit(l.amount(), l.amount(), l.window())
}

/// One or two rates for `strategy` (0 to 3, the order of [`tollgate::Strategy::ALL`]).
fn rates_for(strategy: usize, a: TickRate, b: Option<TickRate>) -> Vec<TickRate> {
    let bucket = strategy == 3;
    [Some(a), b]
        .into_iter()
        .flatten()
        .map(|l| if bucket { l } else { without_burst(l) })
        .collect()
}

/// Applies one operation: a hit, whose outcome is returned, or a refund, after which a peek's
/// outcome is returned. Refunds may ask for more than any hit could charge.
fn operate<S: RateState>(
    states: &mut [S],
    limits: &[TickRate],
    now: u64,
    seed: u64,
    is_refund: bool,
) -> TickDecision {
    let max_cost = limits.iter().map(TickRate::capacity).min().unwrap_or(1);
    if is_refund {
        refund(states, limits, now, seed % (max_cost + 3));
        apply(states, limits, now, 0)
    } else {
        apply(states, limits, now, seed % (max_cost + 1))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fixed_window_never_more_than_n_per_window(limit in limits(false), hits in hits()) {
        let history = run::<FixedWindow>(&limit, &hits, |h, now, cost| {
            fixed_window_allows(&limit, h, now, cost)
        })?;
        for (start, units) in fixed_windows(&history, limit.window()) {
            prop_assert!(units <= limit.amount(), "{} units in the window at {}", units, start);
        }
    }

    #[test]
    fn sliding_window_log_never_more_than_n_in_any_trailing_window(
        limit in limits(false),
        hits in hits(),
    ) {
        let history = run::<SlidingWindowLog>(&limit, &hits, |h, now, cost| {
            trailing(h, now, limit.window()) + cost <= limit.amount()
        })?;
        for &(t, _) in &history {
            prop_assert!(trailing(&history, t, limit.window()) <= limit.amount());
        }
    }

    #[test]
    fn sliding_window_counter_stays_within_its_documented_error(
        limit in limits(false),
        hits in hits(),
    ) {
        let history = run::<SlidingWindowCounter>(&limit, &hits, |h, now, cost| {
            counter_allows(&limit, h, now, cost)
        })?;
        let (n, w) = (limit.amount(), limit.window());
        for (i, &(t, _)) in history.iter().enumerate() {
            let seen = &history[..=i];
            let (previous, _, elapsed) = counter_view(seen, t, w);
            let units = trailing(seen, t, w);
            prop_assert!(units <= n + previous * elapsed / w, "{} units at {}", units, t);
            prop_assert!(units < 2 * n);
        }
    }

    #[test]
    fn token_bucket_never_more_than_burst_plus_rate_times_t(
        limit in limits(true),
        hits in hits(),
    ) {
        let history = run::<TokenBucket>(&limit, &hits, |h, now, cost| {
            bucket_allows(&limit, h, now, cost)
        })?;
        let (n, w) = (u128::from(limit.amount()), u128::from(limit.window()));
        let depth = u128::from(ticks_for(&limit, limit.capacity()));
        let interval = u128::from(ticks_for(&limit, 1));
        for i in 0..history.len() {
            let mut units = 0u128;
            for &(t, c) in &history[i..] {
                units += u128::from(c);
                let span = u128::from(t - history[i].0);
                // units ≤ burst + T/⌈W/N⌉ ≤ burst + rate·T, exactly.
                prop_assert!(units * interval <= span + depth);
                prop_assert!(units * w <= u128::from(limit.capacity()) * w + span * n);
            }
        }
    }

    /// A fresh state takes its whole capacity at one instant, however the hits split it.
    #[test]
    fn a_fresh_state_admits_its_full_capacity_in_any_split(
        strategy in 0usize..4,
        limit in limits(true),
        seeds in prop::collection::vec(1u64..=16, 1..40),
        now in any::<u64>(),
    ) {
        fn split<S: RateState>(limit: &TickRate, seeds: &[u64], now: u64) -> Result<(), TestCaseError> {
            let mut state = [S::default()];
            let mut left = limit.capacity();
            for &seed in seeds {
                let cost = seed.min(left);
                if cost == 0 {
                    break;
                }
                let out = apply(&mut state, std::slice::from_ref(limit), now, cost);
                prop_assert!(out.allowed, "{} of {} left", cost, left);
                left -= cost;
                prop_assert_eq!(out.remaining, left);
            }
            if left == 0 {
                prop_assert!(!apply(&mut state, std::slice::from_ref(limit), now, 1).allowed);
            }
            Ok(())
        }
        let fixed = tollgate::strategy::TickRate::new(
            limit.amount(), limit.amount(), Duration::from_nanos(limit.window()), Duration::from_nanos(1),
        );
        match strategy {
            0 => split::<FixedWindow>(&fixed, &seeds, now)?,
            1 => split::<SlidingWindowLog>(&fixed, &seeds, now)?,
            2 => split::<SlidingWindowCounter>(&fixed, &seeds, now)?,
            _ => split::<TokenBucket>(&limit, &seeds, now)?,
        }
    }

    /// A hit charges every rate of a policy or none, and waits for the slowest.
    #[test]
    fn several_rates_charge_all_or_nothing(
        strategy in 0usize..4,
        a in limits(false),
        b in limits(false),
        hits in hits(),
    ) {
        match strategy {
            0 => all_or_nothing::<FixedWindow>(a, b, &hits)?,
            1 => all_or_nothing::<SlidingWindowLog>(a, b, &hits)?,
            2 => all_or_nothing::<SlidingWindowCounter>(a, b, &hits)?,
            _ => all_or_nothing::<TokenBucket>(a, b, &hits)?,
        }
    }

    /// A hit of `c` refunded by `c` at the same instant leaves every later decision (of hits,
    /// peeks and further refunds) as if it had never been made, for every strategy and for
    /// policies of one or two rates.
    #[test]
    fn a_hit_refunded_at_once_is_as_if_never_made(
        strategy in 0usize..4,
        a in limits(true),
        b in prop::option::of(limits(true)),
        before in operations(),
        (dt, seed) in (0u64..=130, 0u64..=16),
        after in operations(),
    ) {
        let limits = rates_for(strategy, a, b);
        match strategy {
            0 => refunded_hit_is_no_hit::<FixedWindow>(&limits, &before, dt, seed, &after)?,
            1 => refunded_hit_is_no_hit::<SlidingWindowLog>(&limits, &before, dt, seed, &after)?,
            2 => refunded_hit_is_no_hit::<SlidingWindowCounter>(&limits, &before, dt, seed, &after)?,
            _ => refunded_hit_is_no_hit::<TokenBucket>(&limits, &before, dt, seed, &after)?,
        }
    }

    /// A refund, of any cost and whatever came before, gives back at most its cost, never
    /// makes room beyond the capacity (at most the capacity fits at one instant afterwards),
    /// and changes nothing where there is nothing to give back (a full token bucket, an
    /// expired window, an empty log).
    #[test]
    fn a_refund_never_makes_room_beyond_the_capacity(
        strategy in 0usize..4,
        a in limits(true),
        b in prop::option::of(limits(true)),
        operations in operations(),
    ) {
        let limits = rates_for(strategy, a, b);
        match strategy {
            0 => refunds_stay_within_capacity::<FixedWindow>(&limits, &operations)?,
            1 => refunds_stay_within_capacity::<SlidingWindowLog>(&limits, &operations)?,
            2 => refunds_stay_within_capacity::<SlidingWindowCounter>(&limits, &operations)?,
            _ => refunds_stay_within_capacity::<TokenBucket>(&limits, &operations)?,
        }
    }

    /// Any times (even going backwards), any costs, any limits, hits and refunds: no panic,
    /// and an answer that is either allowed or carries a positive wait.
    #[test]
    fn strategies_are_total(
        amount in prop_oneof![Just(0u64), 1u64..10, Just(u64::MAX)],
        capacity in prop_oneof![1u64..10, Just(u64::MAX)],
        window in prop_oneof![1u64..100, Just(u64::MAX)],
        hits in prop::collection::vec((any::<u64>(), any::<u64>(), any::<bool>()), 1..20),
    ) {
        let limit = limit(amount, capacity, window);
        fn total<S: RateState>(
            limit: &TickRate,
            hits: &[(u64, u64, bool)],
        ) -> Result<(), TestCaseError> {
            let mut state = [S::default()];
            for &(now, cost, is_refund) in hits {
                if is_refund {
                    refund(&mut state, std::slice::from_ref(limit), now, cost);
                    continue;
                }
                let out: TickDecision = apply(&mut state, std::slice::from_ref(limit), now, cost);
                prop_assert_eq!(out.allowed, out.retry_after.is_none());
                prop_assert!(out.retry_after.is_none_or(|r| r >= 1));
            }
            Ok(())
        }
        total::<FixedWindow>(&limit, &hits)?;
        total::<SlidingWindowLog>(&limit, &hits)?;
        total::<SlidingWindowCounter>(&limit, &hits)?;
        total::<TokenBucket>(&limit, &hits)?;
    }

    /// No input panics the parser; whatever it accepts prints to a form that parses back.
    #[test]
    fn notation_parser_never_panics(input in prop_oneof![
        any::<String>(),
        "[0-9 /perPERsecondminutehourdaymonthyearS;,|:.\\-\t\u{a0}\u{1f}x]{0,40}",
        "([0-9]{1,22} ?(/|per) ?[0-9]{0,12} ?(second|minute|hour|day|month|year)s?[;,|]?){1,3}",
    ]) {
        if let Ok(rates) = input.parse::<Rates>() {
            prop_assert_eq!(rates.to_string().parse::<Rates>(), Ok(rates));
        }
    }

    #[test]
    fn notation_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let input = String::from_utf8_lossy(&bytes);
        let _ = input.parse::<Rates>();
    }

    #[test]
    fn every_rate_prints_in_a_form_that_parses_back(
        amount in prop_oneof![0..=tollgate::MAX_AMOUNT, tollgate::MAX_AMOUNT - 9..=tollgate::MAX_AMOUNT],
        secs in prop_oneof![1u64..100_000, 1..=tollgate::MAX_WINDOW_SECS],
    ) {
        let rate = Rate::new(amount, Duration::from_secs(secs)).expect("valid window");
        prop_assert_eq!(rate.to_string().parse::<Rate>(), Ok(rate));
    }
}

/// Two rates applied together against two single-rate shadows that see only the hits the
/// pair allowed.
fn all_or_nothing<S: RateState + PartialEq>(
    a: TickRate,
    b: TickRate,
    hits: &[(u64, u64)],
) -> Result<(), TestCaseError> {
    let limits = [a, b];
    let max_cost = a.capacity().min(b.capacity());
    let mut pair = [S::default(), S::default()];
    let mut shadows = [S::default(), S::default()];
    let mut now = 0;
    for &(dt, seed) in hits {
        now += dt;
        let cost = seed % (max_cost + 1);
        let probe = cost.max(1);
        let waits: Vec<Option<u64>> = shadows
            .iter()
            .zip(&limits)
            .map(|(s, l)| s.retry_after(l, now, probe))
            .collect();
        let out = apply(&mut pair, &limits, now, cost);
        prop_assert_eq!(out.allowed, waits.iter().all(Option::is_none));
        prop_assert_eq!(out.retry_after, waits.iter().flatten().copied().max());
        if out.allowed && cost > 0 {
            for (s, l) in shadows.iter_mut().zip(&limits) {
                s.consume(l, now, cost);
            }
        }
        prop_assert_eq!(&pair, &shadows);
        // An allowed hit reports the rate with the fewest units left.
        if out.allowed {
            let fewest = pair
                .iter()
                .zip(&limits)
                .map(|(s, l)| s.remaining(l, now))
                .min();
            prop_assert_eq!(Some(out.remaining), fewest);
        }
    }
    Ok(())
}

/// Runs `before` through a policy's states, then a hit of cost `1 + seed % max_cost` that,
/// when allowed, is refunded at once; then `after` through those states and through a copy
/// taken before the hit. Every outcome must match.
fn refunded_hit_is_no_hit<S: RateState>(
    limits: &[TickRate],
    before: &[(u64, u64, bool)],
    dt: u64,
    seed: u64,
    after: &[(u64, u64, bool)],
) -> Result<(), TestCaseError> {
    let max_cost = limits.iter().map(TickRate::capacity).min().unwrap_or(1);
    let mut charged = vec![S::default(); limits.len()];
    let mut now = 0;
    for &(step, seed, is_refund) in before {
        now += step;
        operate(&mut charged, limits, now, seed, is_refund);
    }
    let mut untouched = charged.clone();
    now += dt;
    let cost = 1 + seed % max_cost;
    if apply(&mut charged, limits, now, cost).allowed {
        refund(&mut charged, limits, now, cost);
    }
    prop_assert_eq!(
        apply(&mut charged, limits, now, 0),
        apply(&mut untouched, limits, now, 0),
        "a peek right after the refund at {}",
        now
    );
    for &(step, seed, is_refund) in after {
        now += step;
        let with = operate(&mut charged, limits, now, seed, is_refund);
        let without = operate(&mut untouched, limits, now, seed, is_refund);
        prop_assert_eq!(with, without, "at {} (refund: {})", now, is_refund);
    }
    Ok(())
}

/// Runs `operations` through a policy's states, checking every refund: each rate's room
/// grows by at most the refund's cost and never beyond its capacity, a rate with its whole
/// capacity free is left exactly as it was, and a burst of single units right after the
/// refund gets at most the smallest capacity through.
fn refunds_stay_within_capacity<S: RateState + PartialEq>(
    limits: &[TickRate],
    operations: &[(u64, u64, bool)],
) -> Result<(), TestCaseError> {
    let max_cost = limits.iter().map(TickRate::capacity).min().unwrap_or(1);
    let mut states = vec![S::default(); limits.len()];
    let mut now = 0;
    for &(step, seed, is_refund) in operations {
        now += step;
        if !is_refund {
            apply(&mut states, limits, now, seed % (max_cost + 1));
            continue;
        }
        let cost = seed % (max_cost + 3);
        let before = states.clone();
        refund(&mut states, limits, now, cost);
        for ((old, new), l) in before.iter().zip(&states).zip(limits) {
            let (was, is) = (old.remaining(l, now), new.remaining(l, now));
            prop_assert!(
                was <= is && is <= l.capacity(),
                "{} -> {} of {}",
                was,
                is,
                l.capacity()
            );
            prop_assert!(is - was <= cost, "{} -> {} refunding {}", was, is, cost);
            if was == l.capacity() {
                // Nothing to give back: a full bucket, an expired window, an empty log.
                prop_assert_eq!(old, new);
            }
        }
        let mut drained = states.clone();
        let mut through = 0u64;
        while through <= max_cost && apply(&mut drained, limits, now, 1).allowed {
            through += 1;
        }
        prop_assert!(through <= max_cost, "{} units through at {}", through, now);
    }
    Ok(())
}
