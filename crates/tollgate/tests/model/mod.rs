//! Naive models of the strategies, written from the history of allowed hits rather than from
//! the strategies' own states, and [`run`], which drives hits through a state and checks it
//! against a model and against what every strategy owes. Shared by the property tests.

#![allow(dead_code)] // each test crate uses its part

pub(crate) mod debt;

use std::time::Duration;

use proptest::prelude::*;
use tollgate::strategy::{RateState, TickRate, apply};

/// An allowed hit: when, and how many units.
pub(crate) type Allowed = (u64, u64);

pub(crate) fn limit(amount: u64, capacity: u64, window: u64) -> TickRate {
    TickRate::new(
        amount,
        capacity,
        Duration::from_nanos(window),
        Duration::from_nanos(1),
    )
}

/// Drives `hits` through one state of `S`, checking what every strategy owes, and the
/// strategy's own model through `model_allows(history, now, cost)`. Returns the history.
pub(crate) fn run<S: RateState + PartialEq>(
    limit: &TickRate,
    hits: &[(u64, u64)],
    model_allows: impl Fn(&[Allowed], u64, u64) -> bool,
) -> Result<Vec<Allowed>, TestCaseError> {
    let mut state = [S::default()];
    let mut history: Vec<Allowed> = Vec::new();
    let mut now = 0u64;
    for &(dt, seed) in hits {
        now += dt;
        let cost = seed % (limit.capacity() + 1);
        let before = state.clone();
        let out = apply(&mut state, std::slice::from_ref(limit), now, cost);

        // The decision is the model's.
        let expected = model_allows(&history, now, cost.max(1));
        prop_assert_eq!(out.allowed, expected, "hit of {} at {}", cost, now);

        // A peek changes nothing; a denied hit changes nothing.
        if cost == 0 || !out.allowed {
            prop_assert_eq!(&state, &before);
        }

        // retry_after is exact: one tick earlier the same hit is still denied, at it allowed.
        if let Some(retry) = out.retry_after {
            prop_assert!(retry >= 1);
            let mut earlier = before.clone();
            let early = apply(
                &mut earlier,
                std::slice::from_ref(limit),
                now + retry - 1,
                cost,
            );
            prop_assert!(!early.allowed, "allowed {} ticks before retry_after", 1);
            let mut later = before.clone();
            let on_time = apply(&mut later, std::slice::from_ref(limit), now + retry, cost);
            prop_assert!(on_time.allowed, "denied at retry_after {}", retry);
            // Once the state is fresh, the hit fits: the wait never passes the reset.
            prop_assert!(
                retry <= out.reset_after,
                "retry {} > reset {}",
                retry,
                out.reset_after
            );
        } else {
            prop_assert!(out.allowed);
        }

        // remaining is exactly what still fits.
        let s = &state[0];
        let remaining = out.remaining;
        prop_assert_eq!(remaining, s.remaining(limit, now));
        if remaining >= 1 {
            prop_assert_eq!(s.retry_after(limit, now, remaining), None);
        }
        if remaining < limit.capacity() {
            prop_assert!(s.retry_after(limit, now, remaining + 1).is_some());
        }

        // After reset_after the state is as good as fresh.
        prop_assert_eq!(s.remaining(limit, now + out.reset_after), limit.capacity());

        if out.allowed && cost > 0 {
            history.push((now, cost));
        }
    }
    Ok(history)
}

/// Units of `history` in the half-open interval [from, to).
pub(crate) fn units_in(history: &[Allowed], from: u64, to: u64) -> u64 {
    history
        .iter()
        .filter(|&&(t, _)| from <= t && t < to)
        .map(|&(_, c)| c)
        .sum()
}

// ---------------------------------------------------------------- fixed window

/// The windows of a history: each starts at the first hit at or after the previous one's
/// end. Returns (start, units) per window.
pub(crate) fn fixed_windows(history: &[Allowed], w: u64) -> Vec<(u64, u64)> {
    let mut windows: Vec<(u64, u64)> = Vec::new();
    for &(t, c) in history {
        match windows.last_mut() {
            Some((start, units)) if t < *start + w => *units += c,
            _ => windows.push((t, c)),
        }
    }
    windows
}

pub(crate) fn fixed_window_allows(
    limit: &TickRate,
    history: &[Allowed],
    now: u64,
    cost: u64,
) -> bool {
    let used = match fixed_windows(history, limit.window()).last() {
        Some(&(start, units)) if now < start + limit.window() => units,
        _ => 0,
    };
    used + cost <= limit.amount()
}

// ---------------------------------------------------------------- sliding window log

/// Units in the trailing window (now − W, now].
pub(crate) fn trailing(history: &[Allowed], now: u64, w: u64) -> u64 {
    history
        .iter()
        .filter(|&&(t, _)| t + w > now && t <= now)
        .map(|&(_, c)| c)
        .sum()
}

// ---------------------------------------------------------------- sliding window counter

/// The counter's view at `now`, recomputed from the history: (previous window's units,
/// current window's units, ticks into the current window). The windows' grid starts at the
/// first hit and starts again at any hit that finds both counts 0.
pub(crate) fn counter_view(history: &[Allowed], now: u64, w: u64) -> (u64, u64, u64) {
    let view = |origin: u64, hits: &[Allowed], at: u64| {
        let start = origin + (at - origin) / w * w;
        let previous = units_in(hits, start.saturating_sub(w), start);
        (previous, units_in(hits, start, at + 1), at - start)
    };
    let mut origin: Option<u64> = None;
    for (i, &(t, _)) in history.iter().enumerate() {
        let (p, c, _) = origin.map_or((0, 0, 0), |o| view(o, &history[..i], t));
        if p == 0 && c == 0 {
            origin = Some(t);
        }
    }
    match origin {
        Some(o) => match view(o, history, now) {
            (0, 0, _) => (0, 0, 0),
            seen => seen,
        },
        None => (0, 0, 0),
    }
}

pub(crate) fn counter_allows(limit: &TickRate, history: &[Allowed], now: u64, cost: u64) -> bool {
    let w = u128::from(limit.window());
    let (p, c, e) = counter_view(history, now, limit.window());
    u128::from(p) * (w - u128::from(e)) + u128::from(c + cost) * w <= u128::from(limit.amount()) * w
}

// ---------------------------------------------------------------- token bucket

/// Ticks that `cost` units take: `cost × ⌈W/N⌉`.
pub(crate) fn ticks_for(limit: &TickRate, cost: u64) -> u64 {
    cost * limit.window().div_ceil(limit.amount())
}

/// The bucket as a sum over the history: a hit fits when, for every earlier allowed hit i,
/// the ticks charged since i (this hit's included) exceed the time since i by at most the
/// bucket's depth, `burst × ⌈W/N⌉`.
pub(crate) fn bucket_allows(limit: &TickRate, history: &[Allowed], now: u64, cost: u64) -> bool {
    let depth = ticks_for(limit, limit.capacity());
    let mut charged = ticks_for(limit, cost);
    if charged > depth {
        return false;
    }
    for &(t, c) in history.iter().rev() {
        charged += ticks_for(limit, c);
        if t + charged > now + depth {
            return false;
        }
    }
    true
}
