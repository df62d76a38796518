//! [`Decision`]: what a hit was told.

use std::time::Duration;

use crate::strategy::Outcome;

/// The answer to a hit: allowed or not, and the numbers rate-limit headers render.
///
/// The numbers describe the *binding* rate of the policy: for a denied hit the rate that
/// makes it wait longest, for an allowed hit the rate with the fewest units left.
///
/// ```
/// use std::time::Duration;
/// use tollgate::{Decision, Limiter, MemoryStore, Policy, Rate};
///
/// # futures_executor::block_on(async {
/// let limiter = Limiter::new(MemoryStore::new())
///     .with_policy("api", Policy::fixed_window(Rate::per_minute(1).into()));
/// let first: Decision = limiter.hit("api", "alice").await?;
/// assert!(first.allowed());
/// assert_eq!((first.limit(), first.remaining()), (1, 0));
/// assert_eq!(first.window(), Duration::from_secs(60));
/// let second = limiter.hit("api", "alice").await?;
/// assert!(!second.allowed());
/// assert!(second.retry_after().is_some());
/// # Ok::<(), tollgate::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    allowed: bool,
    limit: u64,
    remaining: u64,
    /// Durations in nanoseconds, saturating at `u64::MAX` (584 years): a decision is small
    /// to pass around.
    reset_after_ns: u64,
    /// 0 when `allowed`.
    retry_after_ns: u64,
    window_ns: u64,
}

impl Decision {
    /// Converts an [`Outcome`] counted in ticks of length `tick`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::Decision;
    /// use tollgate::strategy::Outcome;
    ///
    /// let outcome = Outcome {
    ///     allowed: false, limit: 3, remaining: 0, reset_after: 57, retry_after: Some(57), window: 60,
    /// };
    /// let d = Decision::from_outcome(outcome, Duration::from_secs(1));
    /// assert_eq!(d.retry_after(), Some(Duration::from_secs(57)));
    /// ```
    #[inline]
    pub fn from_outcome(outcome: Outcome, tick: Duration) -> Self {
        let tick = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX);
        Self {
            allowed: outcome.allowed,
            limit: outcome.limit,
            remaining: outcome.remaining,
            reset_after_ns: outcome.reset_after.saturating_mul(tick),
            retry_after_ns: match outcome.retry_after {
                Some(ticks) if !outcome.allowed => ticks.saturating_mul(tick),
                None if !outcome.allowed => outcome.window.saturating_mul(tick),
                _ => 0,
            },
            window_ns: outcome.window.saturating_mul(tick),
        }
    }

    /// Whether the hit was allowed (and charged, unless it was a peek).
    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// The binding rate's capacity: its amount, or a token bucket's burst.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Units the binding rate has left after this hit.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Time until the binding rate's state is fresh again (its full capacity available).
    pub fn reset_after(&self) -> Duration {
        Duration::from_nanos(self.reset_after_ns)
    }

    /// For a denied hit, the exact time until the same hit would be allowed if nothing else
    /// happened; `None` when allowed.
    pub fn retry_after(&self) -> Option<Duration> {
        (!self.allowed).then(|| Duration::from_nanos(self.retry_after_ns))
    }

    /// The binding rate's window.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.window_ns)
    }
}
