//! Naive ledgers of the strategies with late charges: each written from the history of the
//! units charged (allowed hits and late charges alike), never from a strategy's state. A
//! late charge takes as many units as keep the strategy's usage within twice its capacity.

use tollgate::strategy::TickRate;

use super::{Allowed, counter_view, ticks_for, trailing};

/// What a ledger is asked: usage and allowance at a time, from the units charged before it.
pub(crate) trait Ledger {
    /// Whether `cost` more units at `now` keep the usage within `capacity`.
    fn fits(&self, history: &[Allowed], now: u64, cost: u64, capacity: u64) -> bool;

    /// The whole units that keep the usage at `now` within `capacity`.
    fn room(&self, history: &[Allowed], now: u64, capacity: u64) -> u64;
}

/// A fixed window whose excess is carried: each window starts at the first unit at or after
/// the previous one's end, unless that one held more than the capacity, when the next starts
/// right at its end with the excess.
pub(crate) struct CarriedWindows(pub(crate) TickRate);

impl CarriedWindows {
    /// The window live at `now` and its units.
    fn live(&self, history: &[Allowed], now: u64) -> Option<(u64, u64)> {
        let (w, c) = (self.0.window(), self.0.capacity());
        let roll = |mut window: Option<(u64, u64)>, at: u64| {
            while let Some((start, units)) = window {
                if at < start + w {
                    break;
                }
                window = (units > c).then(|| (start + w, units - c));
            }
            window
        };
        let mut window: Option<(u64, u64)> = None;
        for &(t, units) in history {
            window = match roll(window, t) {
                Some((start, used)) => Some((start, used + units)),
                None => Some((t, units)),
            };
        }
        roll(window, now)
    }
}

impl Ledger for CarriedWindows {
    fn fits(&self, history: &[Allowed], now: u64, cost: u64, capacity: u64) -> bool {
        self.live(history, now).map_or(0, |(_, used)| used) + cost <= capacity
    }

    fn room(&self, history: &[Allowed], now: u64, capacity: u64) -> u64 {
        capacity.saturating_sub(self.live(history, now).map_or(0, |(_, used)| used))
    }
}

/// A log: the units in the trailing window.
pub(crate) struct Log(pub(crate) TickRate);

impl Ledger for Log {
    fn fits(&self, history: &[Allowed], now: u64, cost: u64, capacity: u64) -> bool {
        trailing(history, now, self.0.window()) + cost <= capacity
    }

    fn room(&self, history: &[Allowed], now: u64, capacity: u64) -> u64 {
        capacity.saturating_sub(trailing(history, now, self.0.window()))
    }
}

/// A counter: the previous window's units weighted by the overlap, plus the current's.
pub(crate) struct Counter(pub(crate) TickRate);

impl Ledger for Counter {
    fn fits(&self, history: &[Allowed], now: u64, cost: u64, capacity: u64) -> bool {
        let w = u128::from(self.0.window());
        let (p, c, e) = counter_view(history, now, self.0.window());
        u128::from(p) * (w - u128::from(e)) + u128::from(c + cost) * w <= u128::from(capacity) * w
    }

    fn room(&self, history: &[Allowed], now: u64, capacity: u64) -> u64 {
        let w = u128::from(self.0.window());
        let (p, c, e) = counter_view(history, now, self.0.window());
        let room = (u128::from(capacity) * w).saturating_sub(u128::from(p) * (w - u128::from(e)));
        u64::try_from(room / w).expect("small").saturating_sub(c)
    }
}

/// A bucket: its backlog is the largest excess, over every suffix of the history, of the
/// ticks its units take over the time since the suffix began.
pub(crate) struct Bucket(pub(crate) TickRate);

impl Bucket {
    fn backlog(&self, history: &[Allowed], now: u64) -> u64 {
        let mut charged = 0;
        let mut backlog = 0;
        for &(t, units) in history.iter().rev() {
            charged += ticks_for(&self.0, units);
            backlog = backlog.max((t + charged).saturating_sub(now));
        }
        backlog
    }
}

impl Ledger for Bucket {
    fn fits(&self, history: &[Allowed], now: u64, cost: u64, capacity: u64) -> bool {
        self.backlog(history, now) + ticks_for(&self.0, cost) <= ticks_for(&self.0, capacity)
    }

    fn room(&self, history: &[Allowed], now: u64, capacity: u64) -> u64 {
        let depth = ticks_for(&self.0, capacity);
        let slack = depth.saturating_sub(self.backlog(history, now));
        (slack / ticks_for(&self.0, 1)).min(capacity)
    }
}
