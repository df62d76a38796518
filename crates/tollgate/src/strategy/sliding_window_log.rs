//! Sliding window log: at most N units in every trailing window, exactly.

use std::collections::VecDeque;

use super::{RateState, TickRate};

/// The sliding window log state: the instants of past hits still inside the window, with
/// their units.
///
/// Memory is O(N) per key in the worst case: one entry per distinct hit instant, and a
/// window never holds more than N units (2N after late charges, see [`super::overdraw`]).
///
/// ```
/// use tollgate::strategy::{TickRate, RateState, SlidingWindowLog};
/// use std::time::Duration;
///
/// let limit = TickRate::new(2, 2, Duration::from_secs(60), Duration::from_secs(1));
/// let mut state = SlidingWindowLog::default();
/// state.consume(&limit, 0, 1);
/// state.consume(&limit, 30, 1);
/// assert_eq!(state.retry_after(&limit, 40, 1), Some(20)); // the hit at 0 leaves at 60
/// assert_eq!(state.retry_after(&limit, 60, 1), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlidingWindowLog {
    /// `(instant, units)` oldest first; instants strictly increase.
    entries: VecDeque<(u64, u64)>,
    /// The sum of the units in `entries`.
    total: u64,
}

impl SlidingWindowLog {
    /// The entries still inside the trailing window at `now` and the sum of their units.
    fn live(&self, limit: &TickRate, now: u64) -> (impl Iterator<Item = &(u64, u64)>, u64) {
        let expired = self
            .entries
            .iter()
            .take_while(|(at, _)| at.saturating_add(limit.window) <= now);
        let (count, units) = expired.fold((0, 0u64), |(n, sum), (_, u)| {
            (n + 1, sum.saturating_add(*u))
        });
        (
            self.entries.iter().skip(count),
            self.total.saturating_sub(units),
        )
    }
}

impl RateState for SlidingWindowLog {
    fn retry_after(&self, limit: &TickRate, now: u64, cost: u64) -> Option<u64> {
        let (entries, live) = self.live(limit, now);
        let excess = live.saturating_add(cost).checked_sub(limit.capacity)?;
        if excess == 0 {
            return None;
        }
        // Wait until the oldest entries that free `excess` units have left the window: at
        // most a window, as the reset (an entry after `now`, from a clock that went back,
        // waits as if it were at `now`).
        let mut freed = 0u64;
        for &(at, units) in entries {
            freed = freed.saturating_add(units);
            if freed >= excess {
                let wait = at.saturating_add(limit.window).saturating_sub(now);
                return Some(wait.min(limit.window).max(1));
            }
        }
        Some(limit.window)
    }

    fn consume(&mut self, limit: &TickRate, now: u64, cost: u64) {
        while let Some(&(at, units)) = self.entries.front() {
            if at.saturating_add(limit.window) > now {
                break;
            }
            self.entries.pop_front();
            self.total = self.total.saturating_sub(units);
        }
        self.total = self.total.saturating_add(cost);
        match self.entries.back_mut() {
            Some((at, units)) if *at >= now => *units = units.saturating_add(cost),
            _ => self.entries.push_back((now, cost)),
        }
    }

    /// Removes the `cost` most recent units still inside the trailing window at `now` (the
    /// newest entry first, and an entry only partly when it holds more than what is left to
    /// give back); entries that have left the window are not touched.
    ///
    /// ```
    /// use tollgate::strategy::{TickRate, RateState, SlidingWindowLog};
    /// use std::time::Duration;
    ///
    /// let limit = TickRate::new(3, 3, Duration::from_secs(60), Duration::from_secs(1));
    /// let mut state = SlidingWindowLog::default();
    /// state.consume(&limit, 0, 1);
    /// state.consume(&limit, 30, 2);
    /// state.refund(&limit, 40, 2); // the two units at 30
    /// assert_eq!(state.remaining(&limit, 40), 2);
    /// assert_eq!(state.reset_after(&limit, 40), 20); // what is left leaves at 60
    /// ```
    fn refund(&mut self, limit: &TickRate, now: u64, cost: u64) {
        let mut left = cost;
        while left > 0 {
            let Some((at, units)) = self.entries.back_mut() else {
                break;
            };
            // Instants increase: once the newest entry has left the window, all have.
            if at.saturating_add(limit.window) <= now {
                break;
            }
            let taken = (*units).min(left);
            *units -= taken;
            left -= taken;
            self.total = self.total.saturating_sub(taken);
            if *units == 0 {
                self.entries.pop_back();
            }
        }
    }

    /// Logs up to `cost` units at `now`, as many as keep the trailing window within twice
    /// the capacity.
    ///
    /// ```
    /// use tollgate::strategy::{TickRate, RateState, SlidingWindowLog};
    /// use std::time::Duration;
    ///
    /// let limit = TickRate::new(2, 2, Duration::from_secs(60), Duration::from_secs(1));
    /// let mut state = SlidingWindowLog::default();
    /// state.consume(&limit, 0, 1);
    /// state.overdraw(&limit, 30, 9); // logs 3: the window holds 4, a debt of 2
    /// assert_eq!(state.retry_after(&limit, 30, 1), Some(60)); // all 3 must leave first
    /// assert_eq!(state.remaining(&limit, 60), 0); // the one at 0 left: it paid 1 of the debt
    /// ```
    fn overdraw(&mut self, limit: &TickRate, now: u64, cost: u64) {
        let units = cost.min(self.remaining(&limit.doubled(), now));
        if units > 0 {
            self.consume(limit, now, units);
        }
    }

    fn remaining(&self, limit: &TickRate, now: u64) -> u64 {
        limit.capacity.saturating_sub(self.live(limit, now).1)
    }

    fn reset_after(&self, limit: &TickRate, now: u64) -> u64 {
        match self.entries.back() {
            Some(&(at, _)) => at
                .saturating_add(limit.window)
                .saturating_sub(now)
                .min(limit.window),
            None => 0,
        }
    }
}
