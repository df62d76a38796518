//! Property tests of bans (`strategy::apply_banned`, `strategy::overdraw_banned`) against a
//! naive model: the times of the breaches since the last ban, grouped into fixed windows from
//! the first one, and the bans they started; the rates' states as a key without a ban would
//! keep them, touched only by what the ban lets through.
//!
//! Failing cases are kept in `bans.proptest-regressions` and replayed first.

use std::time::Duration;

use proptest::prelude::*;
use tollgate::strategy::{
    BanRule, BanState, BanStatus, FixedWindow, RateState, SlidingWindowCounter, SlidingWindowLog,
    TickDecision, TickRate, TokenBucket, apply, apply_banned, overdraw, overdraw_banned,
};

mod model;

use model::limit;

/// The model of one key's ban: breach times since the last ban, and when the last ban ends.
#[derive(Default)]
struct BanModel {
    breaches: Vec<u64>,
    until: Option<u64>,
}

impl BanModel {
    /// The ban's ticks left at `now`, if banned.
    fn left(&self, now: u64) -> Option<u64> {
        self.until
            .filter(|&until| until > now)
            .map(|until| until - now)
    }

    /// Counts a breach at `now`; whether it bans. The breach windows start at the first
    /// breach at or after the end of the previous window.
    fn breach(&mut self, rule: &BanRule, now: u64) -> bool {
        self.breaches.push(now);
        let (n, w) = (rule.breaches().amount(), rule.breaches().window());
        let mut start = None;
        let mut count = 0;
        for &at in &self.breaches {
            match start {
                Some(from) if at < from + w => count += 1,
                _ => (start, count) = (Some(at), 1),
            }
        }
        if count < n {
            return false;
        }
        self.breaches.clear();
        self.until = Some(now + rule.duration());
        true
    }
}

/// `decision` as a ban with `left` ticks to run says it: denied, nothing left, waiting for
/// the ban and the rates both.
fn as_banned(decision: TickDecision, left: u64, ban: BanStatus) -> TickDecision {
    TickDecision {
        allowed: false,
        remaining: 0,
        reset_after: decision.reset_after.max(left),
        retry_after: Some(decision.retry_after.unwrap_or(0).max(left)),
        ban,
        ..decision
    }
}

/// What the rates of `states` decide for a hit of `cost` at `now`, charging nothing: a
/// denial as a hit gets it, or the peek's numbers when the hit would be allowed.
fn untouched<S: RateState>(states: &[S], limits: &[TickRate], now: u64, cost: u64) -> TickDecision {
    let decision = apply(&mut states.to_vec(), limits, now, cost);
    if decision.allowed {
        apply(&mut states.to_vec(), limits, now, 0)
    } else {
        decision
    }
}

/// Operations as (ticks since the previous one, cost seed, kind: hit, peek or late charge).
fn operations() -> impl Strategy<Value = Vec<(u64, u64, u8)>> {
    prop::collection::vec(
        (
            prop_oneof![0u64..=3, 0u64..=60],
            0u64..=12,
            prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        ),
        1..90,
    )
}

/// A ban of 1 to 4 breaches per 1 to 30 ticks, lasting 1 to 80 ticks.
fn rules() -> impl Strategy<Value = BanRule> {
    (1u64..=4, 1u64..=30, 1u64..=80).prop_map(|(n, window, duration)| {
        let tick = Duration::from_nanos(1);
        BanRule::new(
            n,
            Duration::from_nanos(window),
            Duration::from_nanos(duration),
            tick,
        )
    })
}

/// Drives `operations` through a key with a ban and through the model, requiring the same
/// decisions and the same rates' states at every step.
fn against_model<S: RateState + PartialEq>(
    limits: &[TickRate],
    rule: &BanRule,
    operations: &[(u64, u64, u8)],
) -> Result<(), TestCaseError> {
    let max_cost = limits.iter().map(TickRate::capacity).min().unwrap_or(1);
    let mut ban = BanState::default();
    let mut states = vec![S::default(); limits.len()];
    let mut model = BanModel::default();
    let mut plain = vec![S::default(); limits.len()];
    let mut now = 0;
    for &(dt, seed, kind) in operations {
        now += dt;
        let (got, expected) = if kind == 2 {
            let got = overdraw_banned(&ban, &mut states, limits, now, seed);
            let after = overdraw(&mut plain, limits, now, seed);
            let expected = match model.left(now) {
                Some(left) => as_banned(after, left, BanStatus::Ongoing),
                None => after,
            };
            (got, expected)
        } else {
            let cost = if kind == 1 { 0 } else { seed % (max_cost + 1) };
            let got = apply_banned(&mut ban, rule, &mut states, limits, now, cost);
            let expected = match model.left(now) {
                Some(left) => as_banned(
                    untouched(&plain, limits, now, cost),
                    left,
                    BanStatus::Ongoing,
                ),
                None => {
                    let decision = apply(&mut plain, limits, now, cost);
                    if !decision.allowed && cost > 0 && model.breach(rule, now) {
                        as_banned(decision, rule.duration(), BanStatus::Started)
                    } else {
                        decision
                    }
                }
            };
            (got, expected)
        };
        prop_assert_eq!(got, expected, "kind {} seed {} at {}", kind, seed, now);
        prop_assert_eq!(&states, &plain, "the rates' states at {}", now);
        let banned_for = model.left(now).unwrap_or(0);
        prop_assert_eq!(ban.banned_for(now), banned_for);
        prop_assert!(ban.reset_after(rule, now) >= banned_for);
    }
    Ok(())
}

/// One or two rates of 1 to 6 units per 1 to 20 ticks (a bucket's burst up to 8).
fn rates(bucket: bool) -> impl Strategy<Value = Vec<TickRate>> {
    prop::collection::vec((1u64..=6, 1u64..=20, 1u64..=8), 1..=2).prop_map(move |rates| {
        rates
            .into_iter()
            .map(|(n, w, burst)| limit(n, if bucket { burst } else { n }, w))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn bans_follow_the_breaches_as_the_model_counts_them(
        strategy in 0usize..4,
        window_rates in rates(false),
        bucket_rates in rates(true),
        rule in rules(),
        ops in operations(),
    ) {
        match strategy {
            0 => against_model::<FixedWindow>(&window_rates, &rule, &ops)?,
            1 => against_model::<SlidingWindowLog>(&window_rates, &rule, &ops)?,
            2 => against_model::<SlidingWindowCounter>(&window_rates, &rule, &ops)?,
            _ => against_model::<TokenBucket>(&bucket_rates, &rule, &ops)?,
        }
    }
}

/// A kill switch denies every hit, so every hit is a breach: the Nth bans, and the ban's
/// wait is the longer of the ban and the switch's window.
#[test]
fn a_kill_switch_bans_after_as_many_hits_as_breaches() {
    let tick = Duration::from_nanos(1);
    let rule = BanRule::new(
        3,
        Duration::from_nanos(100),
        Duration::from_nanos(500),
        tick,
    );
    let limits = [limit(0, 0, 10)];
    let (mut ban, mut states) = (BanState::default(), [FixedWindow::default()]);
    for now in 0..2 {
        let denied = apply_banned(&mut ban, &rule, &mut states, &limits, now, 1);
        assert_eq!(
            (denied.retry_after, denied.ban),
            (Some(10), BanStatus::Clear)
        );
    }
    let third = apply_banned(&mut ban, &rule, &mut states, &limits, 2, 1);
    assert_eq!(
        (third.retry_after, third.ban),
        (Some(500), BanStatus::Started)
    );
    let peek = apply_banned(&mut ban, &rule, &mut states, &limits, 3, 0);
    assert_eq!(
        (peek.retry_after, peek.ban),
        (Some(499), BanStatus::Ongoing)
    );
}
