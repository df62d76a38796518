//! Property tests of late charges (`strategy::overdraw`): every strategy against a naive
//! ledger of the units charged (`model/debt.rs`), with its waits still exact in debt; and the
//! promise each strategy documents for a key in debt D, against a shadow of the key that takes
//! units as soon as they are allowed: it is denied until D more units would have been allowed
//! (the fixed window and the bucket then allowed exactly as the shadow; the log no later than
//! the shadow, its charged units leaving the window together; the counter no later either).
//!
//! Failing cases are kept in `debt.proptest-regressions` and replayed first.

use proptest::prelude::*;
use tollgate::strategy::{
    FixedWindow, RateState, SlidingWindowCounter, SlidingWindowLog, TickRate, TokenBucket, apply,
    overdraw,
};

mod model;

use model::debt::{Bucket, CarriedWindows, Counter, Ledger, Log};
use model::{Allowed, limit};

/// A limit of 1 to 8 units per 1 to 40 ticks; a token bucket gets a burst of 1 to 12.
fn limits(bucket: bool) -> impl Strategy<Value = TickRate> {
    (1u64..=8, 1u64..=40, 1u64..=12).prop_map(move |(amount, window, burst)| {
        limit(amount, if bucket { burst } else { amount }, window)
    })
}

/// Operations as (ticks since the previous one, cost seed, whether it is a late charge): a
/// hit costs the seed modulo capacity + 1, a late charge the seed itself (up to three
/// capacities and more).
fn operations() -> impl Strategy<Value = Vec<(u64, u64, bool)>> {
    prop::collection::vec(
        (
            prop_oneof![0u64..=3, 0u64..=90],
            0u64..=40,
            prop::bool::weighted(0.35),
        ),
        1..70,
    )
}

/// The waits a state reports are exact: a hit of `cost` is denied one tick before `retry`
/// and allowed at it, never after the reset, and the state is fresh after the reset.
fn exact<S: RateState>(
    state: &S,
    limit: &TickRate,
    now: u64,
    cost: u64,
) -> Result<(), TestCaseError> {
    if let Some(retry) = state.retry_after(limit, now, cost) {
        prop_assert!(retry >= 1);
        prop_assert!(state.retry_after(limit, now + retry - 1, cost).is_some());
        prop_assert!(
            state.retry_after(limit, now + retry, cost).is_none(),
            "at {}",
            now + retry
        );
        prop_assert!(retry <= state.reset_after(limit, now));
    }
    let reset = state.reset_after(limit, now);
    prop_assert_eq!(state.remaining(limit, now + reset), limit.capacity());
    Ok(())
}

/// Drives `operations` through one state and `ledger`: every hit is decided as the ledger
/// says, every late charge takes what keeps the usage within twice the capacity, and every
/// wait is exact. Returns the history of units charged.
fn against_ledger<S: RateState>(
    limit: &TickRate,
    ledger: &impl Ledger,
    operations: &[(u64, u64, bool)],
) -> Result<Vec<Allowed>, TestCaseError> {
    let limits = std::slice::from_ref(limit);
    let capacity = limit.capacity();
    let mut state = [S::default()];
    let mut history: Vec<Allowed> = Vec::new();
    let mut now = 0;
    for &(dt, seed, late) in operations {
        now += dt;
        if late {
            let units = seed.min(ledger.room(&history, now, 2 * capacity));
            let after = overdraw(&mut state, limits, now, seed);
            if units > 0 {
                history.push((now, units));
            }
            prop_assert_eq!(
                after.allowed,
                ledger.fits(&history, now, 1, capacity),
                "after a late charge of {} ({} taken) at {}",
                seed,
                units,
                now
            );
            exact(&state[0], limit, now, 1)?;
        } else {
            let cost = seed % (capacity + 1);
            let out = apply(&mut state, limits, now, cost);
            prop_assert_eq!(
                out.allowed,
                ledger.fits(&history, now, cost.max(1), capacity),
                "hit of {} at {}",
                cost,
                now
            );
            if out.allowed && cost > 0 {
                history.push((now, cost));
            }
            exact(&state[0], limit, now, cost.max(1))?;
        }
    }
    Ok(history)
}

/// When a key in debt is allowed again, against a *shadow* of its state before the late
/// charge, which takes units one by one as soon as they are allowed: the first tick at which
/// the key allows a hit of one unit, at which the shadow has taken as many units as the late
/// charge took, and at which the shadow, having taken them, allows one more.
#[derive(Debug)]
struct Repaid {
    debtor: Option<u64>,
    taken: Option<u64>,
    shadow: Option<u64>,
}

/// [`Repaid`] for `before` (a state at `now`) taking a late charge of `units`, all of which
/// it takes.
fn repaid_after<S: RateState>(before: &S, limit: &TickRate, now: u64, units: u64) -> Repaid {
    let limits = std::slice::from_ref(limit);
    let mut debtor = [before.clone()];
    overdraw(&mut debtor, limits, now, units);
    let mut shadow = [before.clone()];
    let mut taken = 0;
    let mut seen = Repaid {
        debtor: None,
        taken: None,
        shadow: None,
    };
    let horizon = now + 4 * limit.window() * limit.capacity().max(1) + 4;
    for at in now..=horizon {
        while taken < units && shadow[0].retry_after(limit, at, 1).is_none() {
            apply(&mut shadow, limits, at, 1);
            taken += 1;
        }
        if taken == units {
            seen.taken.get_or_insert(at);
            if seen.shadow.is_none() && shadow[0].retry_after(limit, at, 1).is_none() {
                seen.shadow = Some(at);
            }
        }
        if seen.debtor.is_none() && debtor[0].retry_after(limit, at, 1).is_none() {
            seen.debtor = Some(at);
        }
        if seen.debtor.is_some() && seen.shadow.is_some() {
            break;
        }
    }
    seen
}

/// What a strategy promises a key in debt, against the shadow of [`Repaid`].
#[derive(Clone, Copy)]
enum Promise {
    /// Allowed again exactly when the shadow allows one more (fixed window, token bucket).
    Exactly,
    /// Denied until the shadow has taken as many units, allowed no later than the shadow
    /// allows one more (the log: the charged units leave the window together).
    Between,
    /// Allowed no later than the shadow allows one more (the counter, whose debt fades with
    /// the previous window's weight).
    NoLater,
}

/// Runs `operations` to make a state, then checks [`Repaid`] against `promise` for a late
/// charge of `seed` units (at most what the state takes).
fn repaid<S: RateState>(
    limit: &TickRate,
    ledger: &impl Ledger,
    operations: &[(u64, u64, bool)],
    seed: u64,
    promise: Promise,
) -> Result<(), TestCaseError> {
    let history = against_ledger::<S>(limit, ledger, operations)?;
    // Replay to the same state (the ledger run checked it), then charge late.
    let mut state = [S::default()];
    let mut now = 0;
    for &(dt, op_seed, late) in operations {
        now += dt;
        if late {
            overdraw(&mut state, std::slice::from_ref(limit), now, op_seed);
        } else {
            apply(
                &mut state,
                std::slice::from_ref(limit),
                now,
                op_seed % (limit.capacity() + 1),
            );
        }
    }
    let units = seed.min(ledger.room(&history, now, 2 * limit.capacity()));
    let seen = repaid_after(&state[0], limit, now, units);
    let what = format!("a late charge of {units} at {now}: {seen:?}");
    let (Some(debtor), Some(taken), Some(shadow)) = (seen.debtor, seen.taken, seen.shadow) else {
        return Err(TestCaseError::fail(what));
    };
    match promise {
        Promise::Exactly => prop_assert_eq!(debtor, shadow, "{}", what),
        Promise::Between => prop_assert!(taken <= debtor && debtor <= shadow, "{}", what),
        Promise::NoLater => prop_assert!(debtor <= shadow, "{}", what),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn fixed_window_carries_its_debt_as_a_ledger_does(limit in limits(false), ops in operations()) {
        against_ledger::<FixedWindow>(&limit, &CarriedWindows(limit), &ops)?;
    }

    #[test]
    fn sliding_window_log_logs_late_units_as_a_ledger_does(limit in limits(false), ops in operations()) {
        against_ledger::<SlidingWindowLog>(&limit, &Log(limit), &ops)?;
    }

    #[test]
    fn sliding_window_counter_counts_late_units_as_a_ledger_does(limit in limits(false), ops in operations()) {
        against_ledger::<SlidingWindowCounter>(&limit, &Counter(limit), &ops)?;
    }

    #[test]
    fn token_bucket_owes_late_units_as_a_ledger_does(limit in limits(true), ops in operations()) {
        against_ledger::<TokenBucket>(&limit, &Bucket(limit), &ops)?;
    }

    #[test]
    fn a_key_in_debt_is_denied_until_as_many_units_would_have_been_allowed(
        strategy in 0usize..4,
        limit in limits(true),
        ops in operations(),
        seed in 0u64..=30,
    ) {
        let plain = limit_without_burst(&limit);
        match strategy {
            0 => repaid::<FixedWindow>(&plain, &CarriedWindows(plain), &ops, seed, Promise::Exactly)?,
            1 => repaid::<SlidingWindowLog>(&plain, &Log(plain), &ops, seed, Promise::Between)?,
            2 => repaid::<SlidingWindowCounter>(&plain, &Counter(plain), &ops, seed, Promise::NoLater)?,
            _ => repaid::<TokenBucket>(&limit, &Bucket(limit), &ops, seed, Promise::Exactly)?,
        }
    }
}

/// The limit without its burst: what the strategies other than the token bucket are given.
fn limit_without_burst(l: &TickRate) -> TickRate {
    limit(l.amount(), l.amount(), l.window())
}
