//! Token bucket, kept as a theoretical arrival time (GCRA).

use super::{RateState, TickRate};

/// The token bucket state: the theoretical arrival time (TAT), the instant at which the
/// bucket will be full again.
///
/// A token is refilled every `I = ⌈W/N⌉` ticks (the window divided by the amount, rounded up
/// to a whole tick) and the bucket holds `burst` tokens, that is `burst × I` ticks. A hit of
/// `c` units fits when `max(TAT, now) + c·I − now ≤ burst·I`. So the units allowed in any
/// interval of length T are at most `burst + T/I ≤ burst + rate × T`, exactly; the rounding
/// of I only ever makes the refill a little slower (by less than one tick per token, so a
/// rate above one unit per tick would be capped at one per tick: [`crate::Policy`] refuses
/// token buckets faster than one unit per microsecond, the coarsest tick of any store).
///
/// The arithmetic of a wait never overflows: it is computed from the distances to `now`
/// (the backlog `TAT − now` and the depth `burst × I`), so the wait is exact and never longer
/// than the reset even where `now + 2 × depth` would not fit in a `u64`.
///
/// ```
/// use tollgate::strategy::{TickRate, RateState, TokenBucket};
/// use std::time::Duration;
///
/// // Capacity 2, one token per second, ticks of 1 ms.
/// let limit = TickRate::new(1, 2, Duration::from_secs(1), Duration::from_millis(1));
/// let mut bucket = TokenBucket::default();
/// bucket.consume(&limit, 0, 2);
/// assert_eq!(bucket.retry_after(&limit, 0, 1), Some(1_000));
/// assert_eq!(bucket.retry_after(&limit, 1_050, 1), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenBucket {
    /// When the bucket is full again; at or before `now` means full.
    tat: u64,
}

impl TokenBucket {
    /// Ticks until the bucket is full again, as seen at `now`.
    fn backlog(&self, now: u64) -> u64 {
        self.tat.saturating_sub(now)
    }
}

/// `a × b` exactly.
fn wide(a: u64, b: u64) -> u128 {
    u128::from(a) * u128::from(b)
}

impl RateState for TokenBucket {
    fn retry_after(&self, limit: &TickRate, now: u64, cost: u64) -> Option<u64> {
        let interval = limit.unit_ticks;
        // The hit fits when backlog + cost·I ≤ burst·I; otherwise it waits for the excess.
        let needed = u128::from(self.backlog(now)) + wide(cost, interval);
        let over = needed.checked_sub(wide(limit.capacity, interval))?;
        (over > 0).then(|| u64::try_from(over).unwrap_or(u64::MAX))
    }

    fn consume(&mut self, limit: &TickRate, now: u64, cost: u64) {
        let interval = limit.unit_ticks;
        self.tat = self
            .tat
            .max(now)
            .saturating_add(cost.saturating_mul(interval));
    }

    /// The theoretical arrival time moves back by `cost × I` ticks, never below `now`: the
    /// bucket gets `cost` tokens back and never holds more than its capacity, so a full
    /// bucket stays as it is.
    ///
    /// ```
    /// use tollgate::strategy::{TickRate, RateState, TokenBucket};
    /// use std::time::Duration;
    ///
    /// let limit = TickRate::new(1, 2, Duration::from_secs(1), Duration::from_millis(1));
    /// let mut bucket = TokenBucket::default();
    /// bucket.consume(&limit, 0, 2);
    /// bucket.refund(&limit, 0, 1);
    /// assert_eq!(bucket.remaining(&limit, 0), 1);
    /// bucket.refund(&limit, 0, 5); // full again, and no fuller
    /// assert_eq!(bucket.remaining(&limit, 0), 2);
    /// assert_eq!(bucket.reset_after(&limit, 0), 0);
    /// ```
    fn refund(&mut self, limit: &TickRate, now: u64, cost: u64) {
        if self.tat > now {
            let back = cost.saturating_mul(limit.unit_ticks);
            self.tat = self.tat.saturating_sub(back).max(now);
        }
    }

    /// The theoretical arrival time moves forward by `cost × I` ticks, but never past
    /// `now` plus twice the bucket's depth: at most one full bucket of debt.
    ///
    /// ```
    /// use tollgate::strategy::{TickRate, RateState, TokenBucket};
    /// use std::time::Duration;
    ///
    /// // Capacity 2, one token per second, ticks of 1 ms.
    /// let limit = TickRate::new(1, 2, Duration::from_secs(1), Duration::from_millis(1));
    /// let mut bucket = TokenBucket::default();
    /// bucket.overdraw(&limit, 0, 3); // one token of debt
    /// assert_eq!(bucket.retry_after(&limit, 0, 1), Some(2_000));
    /// bucket.overdraw(&limit, 0, 100); // it owes one more token: a full bucket at most
    /// assert_eq!(bucket.reset_after(&limit, 0), 4_000);
    /// ```
    fn overdraw(&mut self, limit: &TickRate, now: u64, cost: u64) {
        let units = cost.min(self.remaining(&limit.doubled(), now));
        if units > 0 {
            self.consume(limit, now, units);
        }
    }

    fn remaining(&self, limit: &TickRate, now: u64) -> u64 {
        let interval = limit.unit_ticks;
        let slack = wide(limit.capacity, interval).saturating_sub(u128::from(self.backlog(now)));
        // Divided by the interval's reciprocal where the slack fits in 64 bits (always, but
        // for buckets of more than 2^64 ticks), rather than a 128-bit division.
        let units = match u64::try_from(slack) {
            Ok(slack) => limit.per_unit.divide(slack),
            Err(_) => u64::try_from(slack / u128::from(interval)).unwrap_or(u64::MAX),
        };
        units.min(limit.capacity)
    }

    fn reset_after(&self, _limit: &TickRate, now: u64) -> u64 {
        self.backlog(now)
    }

    /// Any wait up to [`TickRate::max_delay`]: a reserved hit moves the TAT on as if it
    /// were made when it runs (the default [`RateState::reserve`]), so the hits that run in
    /// any interval of length T stay within `burst + rate × T`.
    ///
    /// ```
    /// use tollgate::strategy::{TickRate, RateState, TokenBucket};
    /// use std::time::Duration;
    ///
    /// // Capacity 1, a token every 100 ms, ticks of 1 ms, waits of up to a second.
    /// let limit = TickRate::new(10, 1, Duration::from_secs(1), Duration::from_millis(1)).with_max_delay(1_000);
    /// assert_eq!(TokenBucket::reservable(&limit), 1_000);
    /// let mut bucket = TokenBucket::default();
    /// bucket.consume(&limit, 0, 1);
    /// let wait = bucket.retry_after(&limit, 0, 1).unwrap();
    /// bucket.reserve(&limit, 0, wait, 1); // runs at 100
    /// assert_eq!(bucket.retry_after(&limit, 0, 1), Some(200));
    /// ```
    fn reservable(limit: &TickRate) -> u64 {
        limit.max_delay
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Issue 10: a token bucket of `1/584 years` said to retry after about 8.9 years, not
    /// 584: `TAT + cost × I` passed `u64::MAX` and saturated, and the depth was taken off the
    /// saturated sum. Policies can no longer have such windows, but the strategy stays exact
    /// wherever its state fits.
    #[test]
    fn a_wait_longer_than_half_the_clock_is_exact() {
        let year = 360 * 86_400 * 1_000_000_000u64;
        for window in [584 * year, (1 << 63) + (1 << 62)] {
            let limit = TickRate::new(1, 1, Duration::from_nanos(window), Duration::from_nanos(1));
            let now = 5_000_000_000_000;
            let mut bucket = TokenBucket::default();
            bucket.consume(&limit, now, 1);
            assert_eq!(bucket.retry_after(&limit, now, 1), Some(window));
            assert_eq!(bucket.retry_after(&limit, now + 7, 1), Some(window - 7));
            assert_eq!(bucket.reset_after(&limit, now), window);
            assert_eq!(bucket.remaining(&limit, now), 0);
            assert_eq!(bucket.remaining(&limit, now + window), 1);
        }
    }
}
