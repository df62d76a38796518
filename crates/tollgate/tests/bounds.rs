//! The bounds every store shares ([`MAX_AMOUNT`], [`MAX_WINDOW_SECS`],
//! [`MAX_TOKENS_PER_SECOND`], [`MAX_LOG_AMOUNT`]): what lies outside them is refused where a rate or a policy is
//! made, with an error that says what and where; what lies inside them the strategies decide
//! exactly, at the edges as in the middle.
//!
//! Failing cases are kept in `bounds.proptest-regressions` and replayed first.

use std::time::Duration;

use proptest::prelude::*;
use tollgate::strategy::{
    FixedWindow, RateState, SlidingWindowCounter, SlidingWindowLog, TickRate, TokenBucket, apply,
    refund,
};
use tollgate::{
    Limiter, MAX_AMOUNT, MAX_LOG_AMOUNT, MAX_TOKENS_PER_SECOND, MAX_WINDOW_SECS, ManualClock,
    MemoryStore, Policy, PolicyError, Rate, Rates, Strategy as Algorithm, Timestamp,
};

mod model;

use model::{bucket_allows, counter_allows, fixed_window_allows, limit, run, trailing};

/// What a `SystemClock` reads in 2026, in nanoseconds: the edges are tried at a real time.
const NOW_2026: u64 = 1_780_000_000_000_000_000;

/// How far the edge tests let time run past [`NOW_2026`]: 127 years, more than a maximum
/// window, so that states expire and refill.
const RUN_FOR: u64 = 4_000_000_000_000_000_000;

const SECOND: u64 = 1_000_000_000;

/// Amounts at and near the maximum, anywhere below it, and small ones.
fn edge_amounts() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(MAX_AMOUNT),
        MAX_AMOUNT - 3..=MAX_AMOUNT,
        1..=MAX_AMOUNT,
        1u64..=10,
    ]
}

/// Window lengths in seconds at and near the maximum, anywhere below it, and short ones.
fn edge_windows() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(MAX_WINDOW_SECS),
        MAX_WINDOW_SECS - 3..=MAX_WINDOW_SECS,
        1..=MAX_WINDOW_SECS,
        1u64..=10,
    ]
}

/// Any valid policy of one rate near the bounds: for a token bucket, its rate at most
/// [`MAX_TOKENS_PER_SECOND`] and its burst absent, the largest allowed, or any allowed.
fn edge_policies() -> impl Strategy<Value = Policy> {
    (
        0usize..4,
        edge_amounts(),
        edge_windows(),
        0u8..3,
        any::<prop::sample::Index>(),
    )
        .prop_map(|(s, amount, secs, burst_kind, pick)| {
            let algorithm = Algorithm::ALL[s];
            let bucket = algorithm == Algorithm::TokenBucket;
            let amount = match algorithm {
                Algorithm::TokenBucket => amount.min(MAX_TOKENS_PER_SECOND * secs),
                Algorithm::SlidingWindowLog => amount.min(MAX_LOG_AMOUNT),
                _ => amount,
            };
            let rate = Rate::new(amount, Duration::from_secs(secs)).expect("in bounds");
            let policy = Policy::new(algorithm, rate.into()).expect("in bounds");
            let largest = largest_burst(amount, secs);
            match burst_kind {
                1 if bucket => policy.with_burst(largest).expect("the largest burst"),
                2 if bucket => {
                    let burst = 1 + pick.index(usize::try_from(largest).unwrap_or(usize::MAX));
                    policy.with_burst(burst as u64).expect("a smaller burst")
                }
                _ => policy,
            }
        })
}

/// The largest burst a bucket of `amount` per `secs` may have: at most [`MAX_AMOUNT`], and
/// refilled within [`MAX_WINDOW_SECS`].
fn largest_burst(amount: u64, secs: u64) -> u64 {
    let refilled = u128::from(MAX_WINDOW_SECS) * u128::from(amount) / u128::from(secs);
    u64::try_from(refilled).unwrap_or(u64::MAX).min(MAX_AMOUNT)
}

/// A policy with hits for it: steps of none, one tick, a token's interval, half, all or
/// just under a window, or anything up to a window; costs of the whole capacity, one less,
/// one, none or anything. The first hit comes at [`NOW_2026`]; time runs for at most
/// [`RUN_FOR`].
fn policies_with_hits() -> impl Strategy<Value = (Policy, Vec<(u64, u64)>)> {
    edge_policies().prop_flat_map(|policy| {
        let l = policy.limits(Duration::from_nanos(1))[0];
        let (w, cap) = (l.window(), l.capacity());
        let step = prop_oneof![
            Just(0),
            Just(1),
            Just(l.unit_ticks()),
            Just(w / 2),
            Just(w - 1),
            Just(w),
            0..=w,
        ];
        let cost = prop_oneof![Just(cap), Just(cap - 1), Just(1), Just(0), 0..=cap];
        let hits = prop::collection::vec((step, cost), 1..24).prop_map(|mut hits| {
            let mut elapsed = 0u64;
            for (dt, _) in &mut hits {
                *dt = (*dt).min(RUN_FOR - elapsed);
                elapsed += *dt;
            }
            hits[0].0 += NOW_2026;
            hits
        });
        (Just(policy), hits)
    })
}

/// A limit of any size, up to `u64::MAX` units and ticks, beyond what a policy may make:
/// the strategies are total and keep their invariants there too.
fn any_limits() -> impl Strategy<Value = (usize, TickRate)> {
    let huge = || {
        prop_oneof![
            1u64..=10,
            Just(MAX_AMOUNT),
            Just(u64::MAX / 2),
            Just(u64::MAX)
        ]
    };
    let window = prop_oneof![
        1u64..=100,
        Just(MAX_WINDOW_SECS * SECOND),
        Just((1 << 63) + (1 << 62)),
        Just(u64::MAX),
    ];
    (0usize..4, huge(), huge(), window).prop_map(|(strategy, amount, burst, window)| {
        let capacity = if strategy == 3 { burst } else { amount };
        (strategy, limit(amount, capacity, window))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// An amount is accepted, by `Rate::new` and by the notation, exactly when it is at most
    /// `MAX_AMOUNT`; the notation says where the amount is and what the maximum is.
    #[test]
    fn amounts_above_the_maximum_are_refused(
        amount in prop_oneof![
            MAX_AMOUNT - 3..=MAX_AMOUNT + 3,
            any::<u64>(),
            u64::MAX - 3..=u64::MAX,
        ],
        secs in edge_windows(),
        extra_digits in 0usize..3,
    ) {
        let fits = amount <= MAX_AMOUNT;
        prop_assert_eq!(Rate::new(amount, Duration::from_secs(secs)).is_ok(), fits);
        let digits = format!("{amount}{}", "9".repeat(extra_digits));
        let text = format!("1/second; {digits} per {secs} seconds");
        match text.parse::<Rates>() {
            Ok(rates) => {
                prop_assert!(fits && extra_digits == 0, "{} parsed", text);
                prop_assert_eq!(rates[1].amount(), amount);
            }
            Err(err) => {
                prop_assert!(!fits || extra_digits > 0, "{}: {}", text, err);
                prop_assert_eq!(err.position(), 10);
                let msg = err.to_string();
                prop_assert!(msg.ends_with("is above the maximum 1000000000000"), "{}", msg);
                if let Ok(big) = digits.parse::<u64>() {
                    prop_assert!(msg.contains(&format!("amount {big} is")), "{}", msg);
                }
            }
        }
    }

    /// A window is accepted, by `Rate::new` and by the notation in any unit, exactly when
    /// it is at most `MAX_WINDOW_SECS`.
    #[test]
    fn windows_above_the_maximum_are_refused(
        unit in 0usize..6,
        near in -3i64..=3,
        far in any::<u64>(),
        exact in any::<bool>(),
    ) {
        let (name, unit_secs) = [
            ("second", 1),
            ("minute", 60),
            ("hour", 3_600),
            ("day", 86_400),
            ("month", 30 * 86_400),
            ("year", 360 * 86_400),
        ][unit];
        let count = if exact {
            (MAX_WINDOW_SECS / unit_secs).saturating_add_signed(near).max(1)
        } else {
            far.max(1)
        };
        let secs = count.checked_mul(unit_secs);
        let fits = secs.is_some_and(|secs| secs <= MAX_WINDOW_SECS);
        let text = format!("7/{count} {name}s");
        match text.parse::<Rate>() {
            Ok(rate) => {
                prop_assert!(fits, "{} parsed", text);
                prop_assert_eq!(Some(rate.window().as_secs()), secs);
            }
            Err(err) => {
                prop_assert!(!fits, "{}: {}", text, err);
                prop_assert_eq!(err.position(), 2);
                prop_assert!(
                    err.to_string().ends_with("longer than the maximum, 100 years (3110400000 seconds)"),
                    "{}", err
                );
            }
        }
        if let Some(secs) = secs {
            prop_assert_eq!(Rate::new(7, Duration::from_secs(secs)).is_ok(), fits);
        }
    }

    /// A token bucket is made exactly when it refills at most one unit per microsecond, and
    /// then counts its refill at nanoseconds and at microseconds alike (a token takes at
    /// least 1,000 ns, and as many whole µs rounded up); window strategies take any rate.
    #[test]
    fn token_buckets_refill_at_most_one_unit_per_microsecond(
        amount in prop_oneof![edge_amounts(), Just(1_000_000), 999_999u64..=1_000_001],
        secs in edge_windows(),
    ) {
        let rate = Rate::new(amount, Duration::from_secs(secs)).expect("in bounds");
        let bucket = Policy::token_bucket(rate.into());
        let slow_enough = amount <= MAX_TOKENS_PER_SECOND * secs;
        match bucket {
            Ok(bucket) => {
                prop_assert!(slow_enough, "{} made", rate);
                let ns = bucket.limits(Duration::from_nanos(1))[0].unit_ticks();
                let us = bucket.limits(Duration::from_micros(1))[0].unit_ticks();
                prop_assert!(ns >= 1_000, "{}: a token every {} ns", rate, ns);
                prop_assert_eq!(us, ns.div_ceil(1_000), "{}", rate);
            }
            Err(err) => {
                prop_assert!(!slow_enough, "{}: {}", rate, err);
                prop_assert_eq!(&err, &PolicyError::TokenRateTooHigh(rate));
                prop_assert!(err.to_string().contains("one per microsecond"), "{}", err);
            }
        }
        for algorithm in [Algorithm::FixedWindow, Algorithm::SlidingWindowCounter] {
            prop_assert!(Policy::new(algorithm, rate.into()).is_ok());
        }
    }

    /// A sliding window log is accepted exactly when every rate counts at most
    /// `MAX_LOG_AMOUNT` per window, by every constructor; the error names the rate.
    #[test]
    fn logs_count_at_most_max_log_amount(
        amount in prop_oneof![
            MAX_LOG_AMOUNT - 2..=MAX_LOG_AMOUNT + 2,
            1u64..=10,
            edge_amounts(),
        ],
        secs in edge_windows(),
        small_first in any::<bool>(),
    ) {
        let rate = Rate::new(amount, Duration::from_secs(secs)).expect("in bounds");
        let small = Rate::per_second(1);
        let rates = if small_first { [small, rate] } else { [rate, small] };
        let rates = Rates::new(rates).expect("two rates");
        let fits = amount <= MAX_LOG_AMOUNT;
        for made in [
            Policy::sliding_window_log(rates.clone()),
            Policy::new(Algorithm::SlidingWindowLog, rates.clone()),
            Policy::from_parts(Algorithm::SlidingWindowLog, rates.clone(), None),
        ] {
            match made {
                Ok(_) => prop_assert!(fits, "{} made", rate),
                Err(err) => {
                    prop_assert!(!fits, "{}: {}", rate, err);
                    prop_assert!(err.is_about_rates());
                    prop_assert_eq!(&err, &PolicyError::LogTooLong(rate));
                    let text = err.to_string();
                    prop_assert!(text.contains(&rate.to_string()), "{}", text);
                }
            }
        }
        // The other window strategies count any amount.
        prop_assert!(Policy::new(Algorithm::SlidingWindowCounter, rates.clone()).is_ok());
        prop_assert!(Policy::new(Algorithm::FixedWindow, rates).is_ok());
    }

    /// A burst is accepted exactly when it is 1 to `MAX_AMOUNT` and refills within
    /// `MAX_WINDOW_SECS`; the bucket's depth then fits in nanoseconds with room to spare.
    #[test]
    fn bursts_are_bounded_by_amount_and_refill_time(
        amount in prop_oneof![edge_amounts(), 1u64..=3],
        secs in edge_windows(),
        burst in prop_oneof![edge_amounts(), Just(0), MAX_AMOUNT..=u64::MAX, any::<u64>()],
    ) {
        let amount = amount.min(MAX_TOKENS_PER_SECOND * secs);
        let rate = Rate::new(amount, Duration::from_secs(secs)).expect("in bounds");
        let bucket = Policy::token_bucket(rate.into()).expect("slow enough");
        let fits = (1..=largest_burst(amount, secs)).contains(&burst);
        match bucket.with_burst(burst) {
            Ok(bucket) => {
                prop_assert!(fits, "burst {} at {}", burst, rate);
                let l = bucket.limits(Duration::from_nanos(1))[0];
                let depth = u128::from(l.capacity()) * u128::from(l.unit_ticks());
                prop_assert!(depth <= u128::from(MAX_WINDOW_SECS * SECOND + burst));
            }
            Err(err) => {
                prop_assert!(!fits, "burst {} at {}: {}", burst, rate, err);
                let expected = match burst {
                    0 => PolicyError::ZeroBurst,
                    b if b > MAX_AMOUNT => PolicyError::BurstTooLarge(b),
                    b => PolicyError::RefillTooSlow { burst: b, rate },
                };
                prop_assert_eq!(err, expected);
            }
        }
    }

    /// Every strategy agrees with its model, waits exactly and never past its reset, with
    /// amounts, bursts and costs up to `MAX_AMOUNT` and windows up to `MAX_WINDOW_SECS`, at
    /// a real time, in the memory store's nanoseconds.
    #[test]
    fn strategies_decide_exactly_at_the_bounds((policy, hits) in policies_with_hits()) {
        let l = policy.limits(Duration::from_nanos(1))[0];
        match policy.strategy() {
            Algorithm::FixedWindow => {
                run::<FixedWindow>(&l, &hits, |h, now, cost| fixed_window_allows(&l, h, now, cost))?;
            }
            Algorithm::SlidingWindowLog => {
                run::<SlidingWindowLog>(&l, &hits, |h, now, cost| {
                    trailing(h, now, l.window()) + cost <= l.amount()
                })?;
            }
            Algorithm::SlidingWindowCounter => {
                run::<SlidingWindowCounter>(&l, &hits, |h, now, cost| counter_allows(&l, h, now, cost))?;
            }
            Algorithm::TokenBucket => {
                run::<TokenBucket>(&l, &hits, |h, now, cost| bucket_allows(&l, h, now, cost))?;
            }
        }
    }

    /// Whatever the limit (up to `u64::MAX` units and ticks, beyond what a policy may make)
    /// and the times (even going backwards), a denied hit that fits the capacity never waits
    /// longer than the state takes to be fresh again, after hits and refunds alike.
    #[test]
    fn a_wait_never_passes_the_reset(
        (strategy, limit) in any_limits(),
        ops in prop::collection::vec((any::<u64>(), any::<u64>(), prop::bool::weighted(0.2)), 1..24),
    ) {
        fn check<S: RateState>(limit: &TickRate, ops: &[(u64, u64, bool)]) -> Result<(), TestCaseError> {
            let mut state = [S::default()];
            let limits = std::slice::from_ref(limit);
            for &(now, seed, is_refund) in ops {
                let cost = seed % limit.capacity().saturating_add(1).max(1);
                if is_refund {
                    refund(&mut state, limits, now, cost);
                    continue;
                }
                let out = apply(&mut state, limits, now, cost);
                if let Some(retry) = out.retry_after {
                    prop_assert!(
                        retry <= out.reset_after,
                        "{:?} at {} cost {}: retry {} > reset {}", limit, now, cost, retry, out.reset_after
                    );
                }
            }
            Ok(())
        }
        match strategy {
            0 => check::<FixedWindow>(&limit, &ops)?,
            1 => check::<SlidingWindowLog>(&limit, &ops)?,
            2 => check::<SlidingWindowCounter>(&limit, &ops)?,
            _ => check::<TokenBucket>(&limit, &ops)?,
        }
    }
}

/// Issue 10's reproducers: a limit of `u64::MAX` that never denied, token buckets above one
/// unit per nanosecond that were silently capped, and windows past 292 years whose waits
/// overflowed, are all refused now, each with an error that says why.
#[test]
fn the_numbers_of_issue_10_are_refused_where_they_are_written() {
    let err = "18446744073709551615/second"
        .parse::<Rates>()
        .expect_err("u64::MAX");
    assert_eq!(
        err.to_string(),
        "invalid rate \"18446744073709551615/second\" at byte 0: \
         amount 18446744073709551615 is above the maximum 1000000000000"
    );
    assert!(Rate::new(u64::MAX, Duration::from_secs(1)).is_err());
    // Ten tokens a nanosecond, and one a nanosecond: both above one a microsecond.
    for amount in [10_000_000_000, 1_000_000_000] {
        let rate = Rate::new(amount, Duration::from_secs(1)).expect("in bounds");
        let err = Policy::token_bucket(rate.into()).expect_err("too fast");
        assert!(
            err.to_string().starts_with(&format!(
                "token bucket rate {amount}/second refills faster than 1000000 units per second"
            )),
            "{err}"
        );
    }
    for window in ["1/584 years", "1/585 years", "1/300 years"] {
        let err = window.parse::<Rates>().expect_err(window);
        assert!(
            err.to_string()
                .contains("longer than the maximum, 100 years"),
            "{err}"
        );
    }
}

/// A limit of exactly `MAX_AMOUNT` (`MAX_LOG_AMOUNT` for a log) takes all its units and
/// then denies, in every strategy, through the memory store, and says exactly how long to
/// wait.
#[test]
fn a_limit_of_max_amount_denies_once_spent() {
    for algorithm in Algorithm::ALL {
        // 10^12 per 100 years: 321 units a second, slow enough for a token bucket.
        let most = match algorithm {
            Algorithm::SlidingWindowLog => MAX_LOG_AMOUNT,
            _ => MAX_AMOUNT,
        };
        let rates: Rates = format!("{most}/100 years").parse().expect("in bounds");
        let clock = ManualClock::new();
        clock.set(Timestamp::from_nanos(NOW_2026));
        let limiter = Limiter::new(MemoryStore::new()).with_clock(clock.clone());
        let policy = Policy::new(algorithm, rates.clone()).expect("in bounds");
        let handle = limiter.policy("max", policy);
        let all = handle.hit_sync("k", most).expect("hit");
        assert!(all.allowed(), "{algorithm}");
        assert_eq!((all.limit(), all.remaining()), (most, 0), "{algorithm}");
        for cost in [1, most] {
            let denied = handle.hit_sync("k", cost).expect("hit");
            assert!(!denied.allowed(), "{algorithm}: cost {cost}");
            let wait = denied.retry_after().expect("denied");
            assert!(wait <= denied.reset_after(), "{algorithm}: {denied:?}");
            assert!(wait > Duration::ZERO, "{algorithm}: {denied:?}");
        }
        // A unit's share of the window: 100 years / 10^12 = 3,110,400 ns.
        let unit = Duration::from_nanos(3_110_400);
        let window = Duration::from_secs(MAX_WINDOW_SECS);
        let expected = match algorithm {
            Algorithm::TokenBucket => unit,
            // The next window, where the spent one still weighs (W − e)/W × N ≤ N − 1.
            Algorithm::SlidingWindowCounter => window + unit,
            _ => window,
        };
        let denied = handle.hit_sync("k", 1).expect("hit");
        assert_eq!(denied.retry_after(), Some(expected), "{algorithm}");
        assert!(
            handle.hit_sync("k", most + 1).is_err(),
            "{algorithm}: over capacity"
        );
    }
}
