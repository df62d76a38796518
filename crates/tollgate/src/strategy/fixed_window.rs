//! Fixed window: at most N units per window, the window starting at the key's first hit.

use super::{RateState, TickRate};

/// The fixed window state: when the current window started and what it has spent.
///
/// A window may hold more than its capacity only after a late charge
/// ([`super::overdraw`]), and at most twice it: the excess, the key's debt, is carried into
/// the next window, which then starts as soon as this one ends.
///
/// ```
/// use tollgate::strategy::{FixedWindow, TickRate, RateState};
/// use std::time::Duration;
///
/// let limit = TickRate::new(3, 3, Duration::from_secs(60), Duration::from_secs(1));
/// let mut state = FixedWindow::default();
/// state.consume(&limit, 10, 3);
/// assert_eq!(state.retry_after(&limit, 20, 1), Some(50)); // the window ends at 70
/// assert_eq!(state.retry_after(&limit, 70, 1), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixedWindow {
    /// When the current window started; meaningless while `count` is 0.
    start: u64,
    /// Units spent in the window that started at `start`, at most twice the capacity.
    count: u64,
}

impl FixedWindow {
    /// The window that is current at `now` and the units spent in it: the stored one while
    /// it lasts; then, if it was in debt, the next one, starting where it ended, with the
    /// excess; otherwise none (a count of 0).
    fn roll(&self, limit: &TickRate, now: u64) -> (u64, u64) {
        let end = self.start.saturating_add(limit.window);
        if now < end {
            (self.start, self.count)
        } else if self.count > limit.capacity && now < end.saturating_add(limit.window) {
            (end, self.count - limit.capacity)
        } else {
            (now, 0)
        }
    }

    /// Units spent in the window that is current at `now`.
    fn live_count(&self, limit: &TickRate, now: u64) -> u64 {
        self.roll(limit, now).1
    }
}

impl RateState for FixedWindow {
    fn retry_after(&self, limit: &TickRate, now: u64, cost: u64) -> Option<u64> {
        let (start, count) = self.roll(limit, now);
        if count.saturating_add(cost) <= limit.capacity {
            return None;
        }
        if count <= limit.capacity {
            return Some(self.reset_after(limit, now).max(1));
        }
        // In debt: the next window starts with the excess; past it, afresh.
        let windows = if count - limit.capacity + cost <= limit.capacity {
            1
        } else {
            2
        };
        Some(until(start, windows, limit, now).max(1))
    }

    fn consume(&mut self, limit: &TickRate, now: u64, cost: u64) {
        let (start, count) = self.roll(limit, now);
        *self = if count == 0 {
            Self {
                start: now,
                count: cost,
            }
        } else {
            Self {
                start,
                count: count.saturating_add(cost),
            }
        };
    }

    /// The count drops by `cost`, saturating at 0, while the window live at `now` lasts; an
    /// expired window is left alone. A count back at 0 is a fresh state: the next hit starts a
    /// new window.
    ///
    /// ```
    /// use tollgate::strategy::{FixedWindow, TickRate, RateState};
    /// use std::time::Duration;
    ///
    /// let limit = TickRate::new(3, 3, Duration::from_secs(60), Duration::from_secs(1));
    /// let mut state = FixedWindow::default();
    /// state.consume(&limit, 10, 3);
    /// state.refund(&limit, 20, 1);
    /// assert_eq!(state.remaining(&limit, 20), 1);
    /// state.refund(&limit, 20, 5); // saturates: the window is empty, hence fresh
    /// assert_eq!(state.reset_after(&limit, 20), 0);
    /// ```
    fn refund(&mut self, limit: &TickRate, now: u64, cost: u64) {
        let (start, count) = self.roll(limit, now);
        if count > 0 {
            *self = Self {
                start,
                count: count.saturating_sub(cost),
            };
        }
    }

    /// The count grows by `cost`, up to twice the capacity, in the window live at `now` (a
    /// new one if none is).
    ///
    /// ```
    /// use tollgate::strategy::{FixedWindow, TickRate, RateState};
    /// use std::time::Duration;
    ///
    /// let limit = TickRate::new(3, 3, Duration::from_secs(60), Duration::from_secs(1));
    /// let mut state = FixedWindow::default();
    /// state.overdraw(&limit, 10, 5); // 2 units of debt
    /// assert_eq!(state.retry_after(&limit, 20, 1), Some(50)); // the next window, from 70...
    /// assert_eq!(state.remaining(&limit, 70), 1); // ...starts with the 2 units owed
    /// assert_eq!(state.retry_after(&limit, 70, 2), Some(60)); // 2 fit in the one after
    /// assert_eq!(state.reset_after(&limit, 20), 110);
    /// ```
    fn overdraw(&mut self, limit: &TickRate, now: u64, cost: u64) {
        let count = self.live_count(limit, now);
        let room = limit.capacity.saturating_mul(2).saturating_sub(count);
        let units = cost.min(room);
        if units > 0 {
            self.consume(limit, now, units);
        }
    }

    fn remaining(&self, limit: &TickRate, now: u64) -> u64 {
        limit.capacity.saturating_sub(self.live_count(limit, now))
    }

    fn reset_after(&self, limit: &TickRate, now: u64) -> u64 {
        match self.roll(limit, now) {
            (_, 0) => 0,
            (start, count) if count <= limit.capacity => until(start, 1, limit, now),
            (start, _) => until(start, 2, limit, now),
        }
    }

    /// Waits shorter than the window, up to [`TickRate::max_delay`]: a hit that does not fit
    /// the current window may be reserved in the next one, which starts where the current
    /// one ends, and never further.
    fn reservable(limit: &TickRate) -> u64 {
        limit.max_delay.min(limit.window.saturating_sub(1))
    }

    /// A hit that runs in the current window is charged to it; one that runs after it ends
    /// is charged to the next window, the way a late charge's debt is carried: the count
    /// goes past the capacity, the current window's unused room (if a hit of several units
    /// did not fit it) being given up, so that the next window starts with exactly the
    /// units reserved in it.
    ///
    /// ```
    /// use tollgate::strategy::{FixedWindow, TickRate, RateState};
    /// use std::time::Duration;
    ///
    /// // 3 per 60 s, waits of up to 30 s, ticks of one second.
    /// let limit = TickRate::new(3, 3, Duration::from_secs(60), Duration::from_secs(1)).with_max_delay(30);
    /// let mut state = FixedWindow::default();
    /// state.consume(&limit, 10, 2);
    /// assert_eq!(state.retry_after(&limit, 40, 2), Some(30)); // 2 do not fit before 70
    /// state.reserve(&limit, 40, 70, 2); // so they run at 70, in the next window
    /// assert_eq!(state.remaining(&limit, 69), 0); // the last unit of this one is given up
    /// assert_eq!(state.remaining(&limit, 70), 1); // the next one starts with the 2
    /// ```
    fn reserve(&mut self, limit: &TickRate, now: u64, run_at: u64, cost: u64) {
        let (start, count) = self.roll(limit, now);
        if count == 0 || run_at < start.saturating_add(limit.window) {
            self.consume(limit, now, cost);
        } else {
            *self = Self {
                start,
                count: count.max(limit.capacity).saturating_add(cost),
            };
        }
    }

    /// Until the window live at `now` ends: a unit charged to it and spent in the next one
    /// would let that window admit more than its capacity.
    fn lease_horizon(&self, limit: &TickRate, now: u64) -> Option<u64> {
        let (start, _) = self.roll(limit, now);
        Some(until(start, 1, limit, now))
    }
}

/// Ticks from `now` until `windows` windows from `start` have passed: at most that many
/// windows (a `start` after `now`, from a clock that went back, waits as if it were `now`).
fn until(start: u64, windows: u64, limit: &TickRate, now: u64) -> u64 {
    let span = limit.window.saturating_mul(windows);
    start.saturating_add(span).saturating_sub(now).min(span)
}
