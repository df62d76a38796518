//! Sliding window counter: the previous window's count, weighted by how much of it the
//! trailing window still covers, plus the current window's count.

use super::{RateState, TickRate, mul_div};

/// The sliding window counter state: the start of the current window and the units of the
/// previous and the current window.
///
/// Windows follow each other from the key's first hit; once both counts are 0 the state is
/// fresh and the next hit starts a new series. A hit of `c` at `e` ticks into the current
/// window fits when `previous × (W − e) + (current + c) × W ≤ N × W`, computed exactly.
///
/// The error, against an exact log: any trailing window of length W holds at most
/// `N + ⌊P·e/W⌋` units, where P is the previous window's count, so never more than 2N − 1;
/// when hits are spread evenly it holds at most N. It may also deny a hit an exact log would
/// allow, when the previous window's hits came early in it.
///
/// ```
/// use tollgate::strategy::{TickRate, RateState, SlidingWindowCounter};
/// use std::time::Duration;
///
/// let limit = TickRate::new(4, 4, Duration::from_secs(60), Duration::from_secs(1));
/// let mut state = SlidingWindowCounter::default();
/// state.consume(&limit, 0, 4); // window [0, 60) is full
/// // At 75 the previous window still weighs 4 × 45/60 = 3, so one unit fits.
/// assert_eq!(state.remaining(&limit, 75), 1);
/// assert_eq!(state.retry_after(&limit, 75, 2), Some(15));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlidingWindowCounter {
    /// Start of the window `current` counts; meaningless while both counts are 0.
    start: u64,
    /// Units of the window before `start`.
    previous: u64,
    /// Units since `start`.
    current: u64,
}

/// The state rolled forward to the window that contains `now`.
struct View {
    /// Ticks since the start of the current window, at most the window.
    elapsed: u64,
    previous: u64,
    current: u64,
}

impl SlidingWindowCounter {
    /// The start of the window containing `now` and the counts as seen from it.
    fn roll(&self, limit: &TickRate, now: u64) -> (u64, u64, u64) {
        let w = limit.window;
        let end = self.start.saturating_add(w);
        let rolled = if now < end {
            (self.start, self.previous, self.current)
        } else if now < end.saturating_add(w) {
            (end, self.current, 0)
        } else {
            (now, 0, 0)
        };
        match rolled {
            (_, 0, 0) => (now, 0, 0),
            rolled => rolled,
        }
    }

    fn view(&self, limit: &TickRate, now: u64) -> View {
        let (start, previous, current) = self.roll(limit, now);
        View {
            elapsed: now.saturating_sub(start).min(limit.window),
            previous,
            current,
        }
    }
}

impl View {
    /// `previous × (W − elapsed)`: the previous window's weight, scaled by W.
    fn weighted_previous(&self, limit: &TickRate) -> u128 {
        u128::from(self.previous) * u128::from(limit.window - self.elapsed)
    }
}

impl RateState for SlidingWindowCounter {
    fn retry_after(&self, limit: &TickRate, now: u64, cost: u64) -> Option<u64> {
        let v = self.view(limit, now);
        let (n, w) = (limit.capacity, limit.window);
        let scaled = |units: u64| u128::from(units) * u128::from(w);
        let wanted = v.current.saturating_add(cost);
        if v.weighted_previous(limit).saturating_add(scaled(wanted)) <= scaled(n) {
            return None;
        }
        if wanted <= n {
            // Fits later in this window, once previous × (W − e) ≤ (N − wanted) × W.
            let allowed_weight = mul_div(n - wanted, w, v.previous);
            let fits_at = w - allowed_weight.min(w);
            return Some(fits_at.saturating_sub(v.elapsed).max(1));
        }
        // Fits in the next window, where `current` becomes the previous count:
        // current × (W − e') ≤ (N − cost) × W. The wait, at most 2W − e, is counted in u128
        // as the reset is, so that it never passes the reset where 2W does not fit.
        let allowed_weight = mul_div(n.saturating_sub(cost), w, v.current);
        let fits_at = w - allowed_weight.min(w);
        let wait = u128::from(w - v.elapsed) + u128::from(fits_at);
        Some(u64::try_from(wait).unwrap_or(u64::MAX).max(1))
    }

    fn consume(&mut self, limit: &TickRate, now: u64, cost: u64) {
        let (start, previous, current) = self.roll(limit, now);
        *self = Self {
            start,
            previous,
            current: current.saturating_add(cost),
        };
    }

    /// With the state rolled forward to the window containing `now`, `cost` comes off the
    /// current window's count, saturating at 0, and what is left of it off the previous
    /// window's count, saturating too. A state that is fresh at `now` is left as it is.
    ///
    /// ```
    /// use tollgate::strategy::{TickRate, RateState, SlidingWindowCounter};
    /// use std::time::Duration;
    ///
    /// let limit = TickRate::new(4, 4, Duration::from_secs(60), Duration::from_secs(1));
    /// let mut state = SlidingWindowCounter::default();
    /// state.consume(&limit, 0, 4);
    /// state.consume(&limit, 75, 1); // previous 4 (weighing 3 at 75), current 1
    /// state.refund(&limit, 75, 2); // current 0, previous 3 (weighing 2.25)
    /// assert_eq!(state.remaining(&limit, 75), 1);
    /// ```
    fn refund(&mut self, limit: &TickRate, now: u64, cost: u64) {
        let (start, previous, current) = self.roll(limit, now);
        if previous == 0 && current == 0 {
            return;
        }
        let from_current = current.min(cost);
        *self = Self {
            start,
            previous: previous.saturating_sub(cost - from_current),
            current: current - from_current,
        };
    }

    /// With the state rolled forward to the window containing `now`, up to `cost` units
    /// count in the current window: as many as keep the weighted estimate within twice the
    /// capacity.
    ///
    /// ```
    /// use tollgate::strategy::{TickRate, RateState, SlidingWindowCounter};
    /// use std::time::Duration;
    ///
    /// let limit = TickRate::new(4, 4, Duration::from_secs(60), Duration::from_secs(1));
    /// let mut state = SlidingWindowCounter::default();
    /// state.overdraw(&limit, 0, 6); // an estimate of 6: a debt of 2
    /// assert_eq!(state.retry_after(&limit, 30, 1), Some(60)); // at 90, 6 x 30/60 + 1 <= 4
    /// state.overdraw(&limit, 30, 100); // the estimate holds at most 8
    /// assert_eq!(state.remaining(&limit, 30), 0);
    /// assert_eq!(state.retry_after(&limit, 30, 1), Some(68)); // at 98, 8 x 22/60 + 1 <= 4
    /// ```
    fn overdraw(&mut self, limit: &TickRate, now: u64, cost: u64) {
        let units = cost.min(self.remaining(&limit.doubled(), now));
        if units > 0 {
            self.consume(limit, now, units);
        }
    }

    fn remaining(&self, limit: &TickRate, now: u64) -> u64 {
        let v = self.view(limit, now);
        let room = (u128::from(limit.capacity) * u128::from(limit.window))
            .saturating_sub(v.weighted_previous(limit));
        // Divided by the window's reciprocal where the room fits in 64 bits, rather than a
        // 128-bit division.
        let units = match u64::try_from(room) {
            Ok(room) => limit.per_window.divide(room),
            Err(_) => u64::try_from(room / u128::from(limit.window)).unwrap_or(u64::MAX),
        };
        units.saturating_sub(v.current)
    }

    /// `start + W` (only the previous window counts) or `start + 2W` (the current one
    /// does) less `now`, and at most 2W; counted in u128, where `start + 2W` cannot
    /// overflow, and saturating at `u64::MAX` only at the end.
    fn reset_after(&self, limit: &TickRate, now: u64) -> u64 {
        let (start, previous, current) = self.roll(limit, now);
        let w = u128::from(limit.window);
        let fresh_at = match (previous, current) {
            (_, 1..) => u128::from(start) + 2 * w,
            (1.., 0) => u128::from(start) + w,
            (0, 0) => return 0,
        };
        let wait = fresh_at.saturating_sub(u128::from(now)).min(2 * w);
        u64::try_from(wait).unwrap_or(u64::MAX)
    }

    /// Until the window live at `now` ends: a unit charged to the current window counts in
    /// full while it lasts, but weighs less once that window becomes the previous one.
    fn lease_horizon(&self, limit: &TickRate, now: u64) -> Option<u64> {
        Some(limit.window - self.view(limit, now).elapsed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Issue 10: with a window past 292 years of nanoseconds, two windows do not fit in a
    /// `u64`; the wait (into the next window) saturated at `u64::MAX` while the reset
    /// saturated at `start + 2W`, below it, so the wait came out longer than the reset.
    #[test]
    fn a_wait_never_passes_the_reset_even_past_two_windows_of_u64() {
        let window = (1u64 << 63) + (1 << 62);
        let limit = TickRate::new(1, 1, Duration::from_nanos(window), Duration::from_nanos(1));
        let mut state = SlidingWindowCounter::default();
        state.consume(&limit, 1, 1);
        let retry = state.retry_after(&limit, 1, 1).expect("full");
        let reset = state.reset_after(&limit, 1);
        assert!(retry <= reset, "retry {retry} > reset {reset}");
        assert_eq!(
            reset,
            u64::MAX,
            "2W - 0 does not fit: saturated at the end only"
        );
        // Where it fits, the reset is exact: 2W − elapsed.
        let limit = TickRate::new(1, 1, Duration::from_nanos(1 << 62), Duration::from_nanos(1));
        let mut state = SlidingWindowCounter::default();
        state.consume(&limit, u64::MAX / 2, 1);
        assert_eq!(state.reset_after(&limit, u64::MAX / 2 + 5), (1 << 63) - 5);
    }
}
