//! Property tests of `strategy::take`, the charge of a quota lease, against a naive model:
//! the hit it stands for. A take never grants more than a hit of that many units would be
//! allowed; it grants nothing exactly when a hit of the units needed is denied, with the same
//! `retry_after`; a grant of `g` leaves the states as a hit of `g`; and a grant takes the
//! need plus at most an eighth of the room left (rounded up), so that it shrinks to single
//! units near the limit.

use proptest::prelude::*;
use tollgate::strategy::{
    FixedWindow, LEASE_SHARE, RateState, SlidingWindowCounter, SlidingWindowLog, TickRate,
    TokenBucket, apply, take,
};

mod model;

use model::limit;

/// One or two rates of 1 to 200 units per 1 to 60 ticks (a token bucket may have a burst).
fn rates() -> impl Strategy<Value = Vec<(u64, u64, u64)>> {
    prop::collection::vec((1u64..=200, 1u64..=60, 0u64..=300), 1..=2)
}

/// Steps: ticks since the previous one, and a take (need, want) or a plain hit (cost).
fn steps() -> impl Strategy<Value = Vec<(u64, u64, u64, bool)>> {
    prop::collection::vec(
        (
            prop_oneof![0u64..=2, 0u64..=90],
            1u64..=8,
            0u64..=400,
            prop::bool::weighted(0.8),
        ),
        1..100,
    )
}

fn check<S: RateState + PartialEq>(limits: &[TickRate], steps: &[(u64, u64, u64, bool)]) {
    let capacity = limits.iter().map(TickRate::capacity).min().unwrap_or(1);
    let mut states = vec![S::default(); limits.len()];
    let mut now = 0;
    for &(advance, need, want, is_take) in steps {
        now += advance;
        let need = 1 + (need - 1) % capacity;
        if !is_take {
            apply(&mut states, limits, now, need);
            continue;
        }
        let want = (need + want).min(capacity);
        let room = states
            .iter()
            .zip(limits)
            .map(|(s, l)| s.remaining(l, now))
            .min()
            .unwrap_or(0);
        let mut model = states.clone();
        let single = apply(&mut model.clone(), limits, now, need);
        let grant = take(&mut states, limits, now, need, want);
        assert_eq!(
            grant.granted == 0,
            !single.allowed,
            "{limits:?} at {now}: {grant:?}"
        );
        if grant.granted == 0 {
            assert_eq!(grant.decision, single, "a denial is the hit's");
            assert_eq!(states, model, "a denial charges nothing");
            continue;
        }
        let g = grant.granted;
        assert!(need <= g && g <= want, "{need} <= {g} <= {want}");
        assert!(
            g <= need.max(room.div_ceil(LEASE_SHARE)),
            "{g} of a room of {room}"
        );
        assert!(g <= room, "never more than the room: {g} > {room}");
        let as_hit = apply(&mut model, limits, now, g);
        assert!(as_hit.allowed, "a hit of the grant fits");
        assert_eq!(grant.decision, as_hit, "the decision of a hit of {g}");
        assert_eq!(states, model, "the states of a hit of {g}");
    }
}

proptest! {
    #[test]
    fn fixed_window_takes_as_hits(rates in rates(), steps in steps()) {
        let limits: Vec<_> = rates.iter().map(|&(n, w, _)| limit(n, n, w)).collect();
        check::<FixedWindow>(&limits, &steps);
    }

    #[test]
    fn sliding_window_log_takes_as_hits(rates in rates(), steps in steps()) {
        let limits: Vec<_> = rates.iter().map(|&(n, w, _)| limit(n, n, w)).collect();
        check::<SlidingWindowLog>(&limits, &steps);
    }

    #[test]
    fn sliding_window_counter_takes_as_hits(rates in rates(), steps in steps()) {
        let limits: Vec<_> = rates.iter().map(|&(n, w, _)| limit(n, n, w)).collect();
        check::<SlidingWindowCounter>(&limits, &steps);
    }

    #[test]
    fn token_bucket_takes_as_hits(rates in rates(), steps in steps()) {
        let limits: Vec<_> = rates.iter().map(|&(n, w, b)| limit(n, b.max(1), w)).collect();
        check::<TokenBucket>(&limits, &steps);
    }

    /// Far from the limit, a take grants all it wants.
    #[test]
    fn a_fresh_key_grants_what_is_wanted(n in 8u64..=10_000, want in 1u64..=100) {
        let limits = [limit(n, n, 1_000)];
        let want = want.min(n.div_ceil(LEASE_SHARE));
        let grant = take(&mut [FixedWindow::default()], &limits, 0, 1, want);
        prop_assert_eq!(grant.granted, want);
        prop_assert_eq!(grant.horizon, Some(1_000));
    }
}
