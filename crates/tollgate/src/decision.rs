//! [`Decision`]: what a hit was told.

use std::time::Duration;

use crate::strategy::{BanStatus, TickDecision};

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
/// let limiter = Limiter::new(MemoryStore::new());
/// let api = limiter.policy("api", Policy::fixed_window(Rate::per_minute(1).into()));
/// let first: Decision = api.hit("alice").await?;
/// assert!(first.allowed());
/// assert_eq!((first.limit(), first.remaining()), (1, 0));
/// assert_eq!(first.window(), Duration::from_secs(60));
/// let second = api.hit("alice").await?;
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
    ban: BanStatus,
    /// 0 unless the hit was allowed with a reserved slot to wait for.
    delay_ns: u64,
}

impl Decision {
    /// The decision `outcome` describes, its times counted in ticks of length `tick`: what
    /// [`TickDecision::into_decision`] does.
    #[inline]
    pub(crate) fn from_ticks(outcome: TickDecision, tick: Duration) -> Self {
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
            ban: outcome.ban,
            delay_ns: if outcome.allowed {
                outcome.delay.saturating_mul(tick)
            } else {
                0
            },
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
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Limiter, ManualClock, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::new(MemoryStore::new()).with_clock(clock.clone());
    /// let api = limiter.policy("api", Policy::fixed_window(Rate::per_minute(2).into()));
    /// assert_eq!(api.peek("k").await?.reset_after(), Duration::ZERO); // never hit: fresh
    /// api.hit("k").await?; // the window starts now
    /// clock.advance(Duration::from_millis(20_500));
    /// assert_eq!(api.peek("k").await?.reset_after(), Duration::from_millis(39_500));
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn reset_after(&self) -> Duration {
        Duration::from_nanos(self.reset_after_ns)
    }

    /// For a denied hit, the exact time until the same hit would be allowed if nothing else
    /// happened; `None` when allowed.
    pub fn retry_after(&self) -> Option<Duration> {
        (!self.allowed).then(|| Duration::from_nanos(self.retry_after_ns))
    }

    /// For an allowed hit of a policy with a [`max_delay`](crate::Policy::with_max_delay),
    /// how long the request must wait before it runs: its slot is already reserved (the
    /// wait is part of the limit, as if the request had come that much later).
    /// [`Duration::ZERO`] when it runs at once, and for a denied hit.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Limiter, ManualClock, MemoryStore, Policy};
    ///
    /// # futures_executor::block_on(async {
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::new(MemoryStore::new()).with_clock(clock.clone());
    /// let bucket = Policy::token_bucket("10/second".parse()?)?.with_burst(1)?;
    /// let api = limiter.policy("api", bucket.with_max_delay(Duration::from_millis(150))?);
    /// assert_eq!(api.hit("k").await?.delay(), Duration::ZERO);
    /// let second = api.hit("k").await?;
    /// assert!(second.allowed());
    /// assert_eq!(second.delay(), Duration::from_millis(100)); // wait, then run
    /// let third = api.hit("k").await?; // would wait 200 ms: denied
    /// assert_eq!(third.retry_after(), Some(Duration::from_millis(50)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay_ns)
    }

    /// Whether the key is banned after repeated breaches of a policy with a ban (see
    /// [`crate::Ban`]): then the hit is denied without touching the policy's counts, and
    /// [`Decision::retry_after`] is at least the ban's remaining time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Ban, Limiter, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let ban = Ban::new(Rate::per_minute(2), Duration::from_secs(3600))?;
    /// let login = Limiter::new(MemoryStore::new())
    ///     .policy("login", Policy::fixed_window(Rate::per_minute(1).into()).with_ban(ban));
    /// assert!(login.hit("k").await?.allowed());
    /// assert!(!login.hit("k").await?.banned()); // the first breach
    /// let second = login.hit("k").await?; // the second: banned for an hour
    /// assert!(second.banned() && second.ban_started());
    /// assert_eq!(second.retry_after(), Some(Duration::from_secs(3600)));
    /// let third = login.hit("k").await?;
    /// assert!(third.banned() && !third.ban_started());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn banned(&self) -> bool {
        self.ban.is_banned()
    }

    /// Whether this hit started a ban: it was the breach that completed the count (what
    /// metrics count as a ban).
    pub fn ban_started(&self) -> bool {
        self.ban == BanStatus::Started
    }

    /// The binding rate's window.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.window_ns)
    }

    /// For a denied hit, [`Decision::retry_after`] in whole seconds, rounded up and at least
    /// 1: what `Retry-After` says (a wait of 0 would invite an immediate retry that fails).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Limiter, ManualClock, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::new(MemoryStore::new()).with_clock(clock.clone());
    /// let api = limiter.policy("api", Policy::fixed_window(Rate::per_minute(1).into()));
    /// assert_eq!(api.hit("k").await?.retry_after_secs(), None);
    /// clock.advance(Duration::from_millis(59_500));
    /// assert_eq!(api.hit("k").await?.retry_after_secs(), Some(1)); // 0.5 s, rounded up
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after().map(|wait| ceil_secs(wait).max(1))
    }

    /// [`Decision::reset_after`] in whole seconds, rounded up (0 when the state is fresh).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Limiter, ManualClock, MemoryStore, Policy, Rate};
    ///
    /// # futures_executor::block_on(async {
    /// let clock = ManualClock::new();
    /// let limiter = Limiter::new(MemoryStore::new()).with_clock(clock.clone());
    /// let api = limiter.policy("api", Policy::fixed_window(Rate::per_minute(2).into()));
    /// assert_eq!(api.peek("k").await?.reset_after_secs(), 0);
    /// api.hit("k").await?;
    /// clock.advance(Duration::from_millis(20_500));
    /// assert_eq!(api.peek("k").await?.reset_after_secs(), 40); // 39.5 s, rounded up
    /// # Ok::<(), tollgate::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn reset_after_secs(&self) -> u64 {
        ceil_secs(self.reset_after())
    }

    /// [`Decision::window`] in whole seconds, rounded up and at least 1.
    ///
    /// ```
    /// use tollgate::{Limiter, MemoryStore, Policy};
    ///
    /// # futures_executor::block_on(async {
    /// let limiter = Limiter::new(MemoryStore::new());
    /// let api = limiter.policy("api", Policy::sliding_window_counter("10 per 90 seconds".parse()?));
    /// assert_eq!(api.hit("k").await?.window_secs(), 90);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn window_secs(&self) -> u64 {
        ceil_secs(self.window()).max(1)
    }
}

/// Whole seconds, rounded up.
fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}
