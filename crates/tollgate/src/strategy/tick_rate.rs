//! [`TickRate`]: one rate of a policy as the strategies see it, in ticks.

use std::time::Duration;

use super::Divisor;

/// One rate of a policy as the strategies see it, with its window in ticks.
///
/// Made by [`crate::Policy::limits`].
///
/// ```
/// use std::time::Duration;
/// use tollgate::Policy;
///
/// let policy = Policy::token_bucket("100/minute".parse()?)?.with_burst(150)?;
/// let limit = policy.limits(Duration::from_millis(1))[0]; // ticks of 1 ms
/// assert_eq!(limit.amount(), 100);
/// assert_eq!(limit.capacity(), 150); // the burst
/// assert_eq!(limit.window(), 60_000);
/// assert_eq!(limit.unit_ticks(), 600); // a token every 600 ms
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickRate {
    /// Units per window; 0 denies everything.
    pub(super) amount: u64,
    /// The most units one hit may take and, for a token bucket, its size; `amount` unless a
    /// burst was set.
    pub(super) capacity: u64,
    /// Window length in ticks, at least 1.
    pub(super) window: u64,
    /// `⌈window / amount⌉`, at least 1: the ticks one unit takes at the rate (a token
    /// bucket's refill interval), kept to spare a division per hit.
    pub(super) unit_ticks: u64,
    /// `unit_ticks` and `window` as divisors a hit divides by without a `div`.
    pub(super) per_unit: Divisor,
    pub(super) per_window: Divisor,
    /// The longest a hit may wait for its reserved slot instead of being denied, in ticks; 0
    /// (the default) denies at once. See [`apply`](super::apply).
    pub(super) max_delay: u64,
}

impl TickRate {
    /// `amount` units per `window`, holding at most `capacity`, in ticks of length `tick`.
    ///
    /// The window is rounded up to a whole number of ticks, and is at least one tick.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::strategy::TickRate;
    ///
    /// let limit = TickRate::new(10, 10, Duration::from_secs(60), Duration::from_millis(1));
    /// assert_eq!(limit.window(), 60_000);
    /// ```
    pub fn new(amount: u64, capacity: u64, window: Duration, tick: Duration) -> Self {
        let tick = tick.as_nanos().max(1);
        let window = u64::try_from(window.as_nanos().div_ceil(tick).max(1)).unwrap_or(u64::MAX);
        let unit_ticks = window.div_ceil(amount.max(1)).max(1);
        Self {
            amount,
            capacity,
            window,
            unit_ticks,
            per_unit: Divisor::new(unit_ticks),
            per_window: Divisor::new(window),
            max_delay: 0,
        }
    }

    /// This rate letting a hit wait up to `ticks` for a reserved slot rather than be denied
    /// (see [`apply`](super::apply)); 0 denies at once. Only the token bucket and the fixed window reserve
    /// (a fixed window at most into its next window); other strategies ignore it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::strategy::TickRate;
    ///
    /// let limit = TickRate::new(10, 10, Duration::from_secs(1), Duration::from_millis(1));
    /// assert_eq!(limit.max_delay(), 0);
    /// assert_eq!(limit.with_max_delay(500).max_delay(), 500);
    /// ```
    #[must_use]
    pub fn with_max_delay(self, ticks: u64) -> Self {
        Self {
            max_delay: ticks,
            ..self
        }
    }

    /// The longest a hit may wait for a reserved slot, in ticks; 0 when it may not.
    pub fn max_delay(&self) -> u64 {
        self.max_delay
    }

    /// Units per window; 0 is a kill switch.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// The most units one hit may take (a token bucket's burst).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Window length in ticks.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// The ticks one unit takes at the rate, `⌈window / amount⌉` and at least 1.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::strategy::TickRate;
    ///
    /// let limit = TickRate::new(3, 3, Duration::from_secs(1), Duration::from_millis(1));
    /// assert_eq!(limit.unit_ticks(), 334);
    /// ```
    pub fn unit_ticks(&self) -> u64 {
        self.unit_ticks
    }

    /// This rate holding twice its capacity: how far a late charge may fill a state (see
    /// [`overdraw`](super::overdraw)).
    pub(crate) fn doubled(&self) -> TickRate {
        TickRate {
            capacity: self.capacity.saturating_mul(2),
            ..*self
        }
    }
}
