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
/// rate above one unit per tick is capped at one per tick).
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

impl RateState for TokenBucket {
    fn retry_after(&self, limit: &TickRate, now: u64, cost: u64) -> Option<u64> {
        let interval = limit.unit_ticks;
        let after = self
            .tat
            .max(now)
            .saturating_add(cost.saturating_mul(interval));
        let over = (after - now).checked_sub(limit.capacity.saturating_mul(interval))?;
        (over > 0).then_some(over)
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

    fn remaining(&self, limit: &TickRate, now: u64) -> u64 {
        let interval = limit.unit_ticks;
        let depth = limit.capacity.saturating_mul(interval);
        let slack = depth.saturating_sub(self.tat.saturating_sub(now));
        (slack / interval).min(limit.capacity)
    }

    fn reset_after(&self, _limit: &TickRate, now: u64) -> u64 {
        self.tat.saturating_sub(now)
    }
}
