//! Fixed window: at most N units per window, the window starting at the key's first hit.

use super::{RateState, TickRate};

/// The fixed window state: when the current window started and what it has spent.
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
    /// Units spent in the window that started at `start`.
    count: u64,
}

impl FixedWindow {
    /// Units spent in the window that is current at `now` (0 once it has ended).
    fn live_count(&self, limit: &TickRate, now: u64) -> u64 {
        if now >= self.start.saturating_add(limit.window) {
            0
        } else {
            self.count
        }
    }
}

impl RateState for FixedWindow {
    fn retry_after(&self, limit: &TickRate, now: u64, cost: u64) -> Option<u64> {
        let count = self.live_count(limit, now);
        if count.saturating_add(cost) <= limit.capacity {
            None
        } else {
            Some(self.reset_after(limit, now).max(1))
        }
    }

    fn consume(&mut self, limit: &TickRate, now: u64, cost: u64) {
        if self.live_count(limit, now) == 0 {
            *self = Self {
                start: now,
                count: cost,
            };
        } else {
            self.count = self.count.saturating_add(cost);
        }
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
        if self.live_count(limit, now) > 0 {
            self.count = self.count.saturating_sub(cost);
        }
    }

    fn remaining(&self, limit: &TickRate, now: u64) -> u64 {
        limit.capacity.saturating_sub(self.live_count(limit, now))
    }

    fn reset_after(&self, limit: &TickRate, now: u64) -> u64 {
        if self.live_count(limit, now) == 0 {
            0
        } else {
            let end = self.start.saturating_add(limit.window);
            end.saturating_sub(now).min(limit.window)
        }
    }
}
