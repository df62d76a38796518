//! [`Policy`]: rates applied with one [`Strategy`].
//!
//! - `strategy_name.rs`: [`Strategy`], the strategies by name.
//! - `error.rs`: [`PolicyError`], why a policy cannot be made.

mod error;
mod strategy_name;

use std::fmt;
use std::time::Duration;

use crate::ban::Ban;
use crate::rate::{MAX_AMOUNT, MAX_WINDOW_SECS, Rate, Rates};
use crate::store::leasing::QuotaLease;
use crate::strategy::TickRate;
pub use error::PolicyError;
pub use strategy_name::Strategy;

/// The fastest a token bucket may refill: one million units per second, one per
/// microsecond.
///
/// A token bucket refills at most one token per tick of its store's clock, and the Redis
/// store counts in microseconds where the memory store counts in nanoseconds: a faster
/// bucket would refill faster in memory than in Redis. So a token bucket policy with a
/// faster rate is refused when it is made, for every store. Count in larger units (kilobytes
/// rather than bytes), or use a window strategy, which has no such bound.
///
/// ```
/// use tollgate::{MAX_TOKENS_PER_SECOND, Policy, PolicyError};
///
/// assert_eq!(MAX_TOKENS_PER_SECOND, 1_000_000);
/// assert!(Policy::token_bucket("1000000/second".parse()?).is_ok());
/// assert!(Policy::token_bucket("86400000000/day".parse()?).is_ok()); // the same rate
/// let err = Policy::token_bucket("1000001/second".parse()?).unwrap_err();
/// assert!(matches!(err, PolicyError::TokenRateTooHigh(_)));
/// // Window strategies count any rate.
/// let _bytes = Policy::fixed_window("10000000000/second".parse()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_TOKENS_PER_SECOND: u64 = 1_000_000;

/// The largest amount a sliding window log may count per window.
///
/// The log is exact because it keeps one entry per distinct hit instant still in the window,
/// up to the amount per key: 16 bytes each in memory, and a Redis script reads and writes the
/// whole log on every hit (about half a microsecond of Redis time per entry). Bounding the
/// amount bounds what one key costs, so a client choosing a policy (an inline one, sent to
/// the check API) cannot make each of its hits cost Redis milliseconds. A log policy with a
/// larger amount is refused when it is made, for every store; the sliding window counter
/// counts any amount in constant space.
///
/// ```
/// use tollgate::{MAX_LOG_AMOUNT, Policy, PolicyError};
///
/// assert_eq!(MAX_LOG_AMOUNT, 1_000);
/// assert!(Policy::sliding_window_log("1000/hour".parse()?).is_ok());
/// let err = Policy::sliding_window_log("10/second; 1001/hour".parse()?).unwrap_err();
/// assert!(matches!(err, PolicyError::LogTooLong(_)));
/// assert!(err.to_string().starts_with("sliding window log rate 1001/hour counts more than 1000"));
/// // The counter has no such bound.
/// let _large = Policy::sliding_window_counter("1000000/hour".parse()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const MAX_LOG_AMOUNT: u64 = 1_000;

/// The longest [`Policy::with_max_delay`] may be: one hour. A waiting request holds a
/// connection and a task; waits longer than this are better answered with a
/// `Retry-After`.
///
/// ```
/// assert_eq!(tollgate::MAX_DELAY, std::time::Duration::from_secs(3600));
/// ```
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// One or more [`Rates`] applied with one [`Strategy`]; a hit must fit every rate and is
/// charged to all of them or to none.
///
/// ```
/// use tollgate::{Policy, Strategy};
///
/// let login = Policy::fixed_window("5/minute; 20/hour".parse()?);
/// assert_eq!(login.strategy(), Strategy::FixedWindow);
/// assert_eq!(login.rates().len(), 2);
///
/// let api = Policy::token_bucket("1/second".parse()?)?.with_burst(2)?;
/// assert_eq!(api.to_string(), "1/second (token-bucket, burst 2)");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Policy {
    rates: Rates,
    strategy: Strategy,
    /// Token bucket capacity; only set for a token bucket with exactly one rate,
    /// `1..=MAX_AMOUNT`, and refilled within `MAX_WINDOW_SECS`.
    burst: Option<u64>,
    /// Bans keys that keep breaching the policy (see `ban.rs`).
    pub(crate) ban: Option<Ban>,
    /// How long a hit may wait for a reserved slot instead of being denied; only for a
    /// token bucket (any length up to [`MAX_DELAY`]) or a fixed window (shorter than every
    /// window), and never zero.
    max_delay: Option<Duration>,
    /// Whether a [`crate::Leasing`] store leases this policy's units; `None` follows the
    /// store's default. Not part of the policy's text: it changes how hits reach a shared
    /// store, not what they decide.
    quota_lease: Option<QuotaLease>,
}

impl Policy {
    /// `rates` applied with `strategy`.
    ///
    /// Fails for a token bucket when a rate refills faster than [`MAX_TOKENS_PER_SECOND`]
    /// (see [`Policy::token_bucket`]), and for a sliding window log when a rate counts more
    /// than [`MAX_LOG_AMOUNT`] (see [`Policy::sliding_window_log`]).
    ///
    /// ```
    /// use tollgate::{Policy, Rate, Strategy};
    ///
    /// let policy = Policy::new(Strategy::SlidingWindowLog, Rate::per_second(3).into())?;
    /// assert_eq!(policy, Policy::sliding_window_log(Rate::per_second(3).into())?);
    /// assert_eq!(policy.to_string(), "3/second (sliding-window)");
    /// assert!(Policy::new(Strategy::FixedWindow, "5000000/second".parse()?).is_ok());
    /// assert!(Policy::new(Strategy::TokenBucket, "5000000/second".parse()?).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(strategy: Strategy, rates: Rates) -> Result<Self, PolicyError> {
        if strategy == Strategy::TokenBucket
            && let Some(&rate) = rates.iter().find(|rate| refills_too_fast(rate))
        {
            return Err(PolicyError::TokenRateTooHigh(rate));
        }
        if strategy == Strategy::SlidingWindowLog
            && let Some(&rate) = rates.iter().find(|rate| rate.amount() > MAX_LOG_AMOUNT)
        {
            return Err(PolicyError::LogTooLong(rate));
        }
        Ok(Self::unchecked(strategy, rates))
    }

    /// A policy no strategy can refuse: a window strategy's.
    fn unchecked(strategy: Strategy, rates: Rates) -> Self {
        Self {
            rates,
            strategy,
            burst: None,
            ban: None,
            max_delay: None,
            quota_lease: None,
        }
    }

    /// `rates` applied with `strategy`, and a token bucket's size when `burst` is given: the
    /// one constructor for policies read from configuration (a file, a request body, an Envoy
    /// descriptor), so that each front end only says where a mistake is.
    ///
    /// Fails as [`Policy::new`] does for a token bucket that refills too fast, and as
    /// [`Policy::with_burst`] does when a burst cannot apply.
    ///
    /// ```
    /// use tollgate::{Policy, PolicyError, Strategy};
    ///
    /// let bucket = Policy::from_parts(Strategy::TokenBucket, "1/second".parse()?, Some(5))?;
    /// assert_eq!(bucket.to_string(), "1/second (token-bucket, burst 5)");
    /// assert_eq!(
    ///     Policy::from_parts(Strategy::FixedWindow, "1/second".parse()?, Some(5)),
    ///     Err(PolicyError::BurstWithoutTokenBucket(Strategy::FixedWindow)),
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_parts(
        strategy: Strategy,
        rates: Rates,
        burst: Option<u64>,
    ) -> Result<Self, PolicyError> {
        let policy = Self::new(strategy, rates)?;
        match burst {
            Some(burst) => policy.with_burst(burst),
            None => Ok(policy),
        }
    }

    /// A [`Strategy::FixedWindow`] policy.
    ///
    /// ```
    /// let p = tollgate::Policy::fixed_window(tollgate::Rate::per_minute(3).into());
    /// assert_eq!(p.to_string(), "3/minute (fixed-window)");
    /// ```
    pub fn fixed_window(rates: Rates) -> Self {
        Self::unchecked(Strategy::FixedWindow, rates)
    }

    /// A [`Strategy::SlidingWindowLog`] policy.
    ///
    /// Fails when a rate counts more than [`MAX_LOG_AMOUNT`] per window, which would make
    /// each key's log, and every hit's work on it, too large.
    ///
    /// ```
    /// let p = tollgate::Policy::sliding_window_log(tollgate::Rate::per_minute(3).into())?;
    /// assert_eq!(p.to_string(), "3/minute (sliding-window)");
    /// # Ok::<(), tollgate::PolicyError>(())
    /// ```
    pub fn sliding_window_log(rates: Rates) -> Result<Self, PolicyError> {
        Self::new(Strategy::SlidingWindowLog, rates)
    }

    /// A [`Strategy::SlidingWindowCounter`] policy.
    ///
    /// ```
    /// let p = tollgate::Policy::sliding_window_counter(tollgate::Rate::per_minute(3).into());
    /// assert_eq!(p.to_string(), "3/minute (sliding-window-counter)");
    /// ```
    pub fn sliding_window_counter(rates: Rates) -> Self {
        Self::unchecked(Strategy::SlidingWindowCounter, rates)
    }

    /// A [`Strategy::TokenBucket`] policy; each rate's bucket holds its amount of tokens
    /// unless [`Policy::with_burst`] says otherwise.
    ///
    /// Fails when a rate refills faster than [`MAX_TOKENS_PER_SECOND`] (one unit per
    /// microsecond), which not every store could count.
    ///
    /// ```
    /// use tollgate::{Policy, PolicyError};
    ///
    /// let p = Policy::token_bucket(tollgate::Rate::per_second(10).into())?;
    /// assert_eq!(p.to_string(), "10/second (token-bucket)");
    /// let err = Policy::token_bucket("10/second; 10000000000/second".parse()?).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "token bucket rate 10000000000/second refills faster than 1000000 units per second \
    ///      (one per microsecond), the fastest every store can count; count in larger units \
    ///      (kilobytes rather than bytes, say) or use a window strategy"
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn token_bucket(rates: Rates) -> Result<Self, PolicyError> {
        Self::new(Strategy::TokenBucket, rates)
    }

    /// Sets the capacity of a token bucket with one rate.
    ///
    /// Fails for other strategies, for several rates (say which rate the burst belongs to by
    /// splitting the policy), for a burst of 0 (write `0/second` for a kill switch), for a
    /// burst above [`MAX_AMOUNT`], and for a burst that would take longer than
    /// [`MAX_WINDOW_SECS`] (100 years) to refill at the rate.
    ///
    /// ```
    /// use tollgate::{Policy, PolicyError, Rate};
    ///
    /// let bucket = || Policy::token_bucket(Rate::per_second(1).into());
    /// assert!(bucket()?.with_burst(2).is_ok());
    /// assert!(Policy::fixed_window(Rate::per_second(1).into()).with_burst(2).is_err());
    /// assert_eq!(bucket()?.with_burst(0), Err(PolicyError::ZeroBurst));
    /// assert_eq!(bucket()?.with_burst(u64::MAX), Err(PolicyError::BurstTooLarge(u64::MAX)));
    /// // 3,110,400,000 tokens at one a second refill in exactly 100 years; one more does not.
    /// assert!(bucket()?.with_burst(3_110_400_000).is_ok());
    /// let err = bucket()?.with_burst(3_110_400_001).unwrap_err();
    /// assert!(matches!(err, PolicyError::RefillTooSlow { .. }));
    /// # Ok::<(), PolicyError>(())
    /// ```
    pub fn with_burst(mut self, burst: u64) -> Result<Self, PolicyError> {
        if self.strategy != Strategy::TokenBucket {
            return Err(PolicyError::BurstWithoutTokenBucket(self.strategy));
        }
        let &[rate] = &self.rates[..] else {
            return Err(PolicyError::BurstWithSeveralRates(self.rates.len()));
        };
        if burst == 0 {
            return Err(PolicyError::ZeroBurst);
        }
        if burst > MAX_AMOUNT {
            return Err(PolicyError::BurstTooLarge(burst));
        }
        // burst / (amount / window) ≤ MAX_WINDOW_SECS, exactly; a kill switch never refills.
        let refill = u128::from(burst) * u128::from(rate.window().as_secs());
        if rate.amount() > 0 && refill > u128::from(MAX_WINDOW_SECS) * u128::from(rate.amount()) {
            return Err(PolicyError::RefillTooSlow { burst, rate });
        }
        self.burst = Some(burst);
        Ok(self)
    }

    /// Lets a hit that does not fit now wait up to `max_delay` for a reserved slot instead of
    /// being denied (nginx's `limit_req ... delay`, Traefik's `maxDelay`): the hit is
    /// allowed with a [`crate::Decision::delay`], its slot charged at once as if the hit
    /// were made when it runs, so the waits of parallel requests add up as they would at the
    /// rate. A hit that would wait longer is denied, with a `retry_after` of the time until
    /// it would be allowed with a wait. See [`crate::strategy::apply`] for the exact rules.
    ///
    /// Offered for the token bucket (any wait up to [`MAX_DELAY`]) and the fixed window (a
    /// wait shorter than every window of the policy: a hit is reserved in the next window
    /// at most, and the reserved hits of a window all run when it starts). The sliding
    /// window log and counter cannot charge a hit to a later time, so they refuse it, as
    /// does a zero or too long `max_delay`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Policy, PolicyError, Strategy};
    ///
    /// let ms = Duration::from_millis;
    /// let bucket = Policy::token_bucket("10/second".parse()?)?.with_max_delay(ms(500))?;
    /// assert_eq!(bucket.max_delay(), Some(ms(500)));
    /// assert_eq!(bucket.to_string(), "10/second (token-bucket, max delay 500ms)");
    /// let window = Policy::fixed_window("10/second".parse()?);
    /// assert!(window.clone().with_max_delay(ms(999)).is_ok());
    /// let err = window.with_max_delay(ms(1000)).unwrap_err();
    /// assert_eq!(err.to_string(), "max_delay 1s is not shorter than the fixed window of 10/second; \
    ///     a fixed window reserves in its next window at most");
    /// let log = Policy::sliding_window_log("10/second".parse()?)?;
    /// assert_eq!(log.with_max_delay(ms(500)), Err(PolicyError::DelayNotOffered(Strategy::SlidingWindowLog)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_max_delay(mut self, max_delay: Duration) -> Result<Self, PolicyError> {
        match self.strategy {
            Strategy::TokenBucket => {}
            Strategy::FixedWindow => {
                if let Some(&rate) = self.rates.iter().find(|rate| rate.window() <= max_delay) {
                    return Err(PolicyError::DelayNotShorterThanWindow { max_delay, rate });
                }
            }
            strategy => return Err(PolicyError::DelayNotOffered(strategy)),
        }
        if max_delay.is_zero() || max_delay > MAX_DELAY {
            return Err(PolicyError::DelayOutOfRange(max_delay));
        }
        self.max_delay = Some(max_delay);
        Ok(self)
    }

    /// The longest a hit may wait for a reserved slot, set by [`Policy::with_max_delay`].
    pub fn max_delay(&self) -> Option<Duration> {
        self.max_delay
    }

    /// This policy with its own choice of quota leases, overriding the default of the
    /// [`crate::Leasing`] store it is prepared in (which leases only policies without a ban
    /// or a `max_delay`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Policy, QuotaLease};
    ///
    /// let lease = QuotaLease::lasting(Duration::from_millis(100))?;
    /// let policy = Policy::fixed_window("100/second".parse()?).with_quota_lease(lease);
    /// assert_eq!(policy.quota_lease(), Some(lease));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_quota_lease(mut self, lease: QuotaLease) -> Self {
        self.quota_lease = Some(lease);
        self
    }

    /// This policy's own choice of quota leases; `None` follows the store's default.
    pub fn quota_lease(&self) -> Option<QuotaLease> {
        self.quota_lease
    }

    /// The rates, all of which a hit must fit.
    ///
    /// ```
    /// use tollgate::{Policy, Rate};
    ///
    /// let policy = Policy::token_bucket("10/second; 100/minute".parse()?)?;
    /// assert_eq!(policy.rates()[..], [Rate::per_second(10), Rate::per_minute(100)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rates(&self) -> &Rates {
        &self.rates
    }

    /// The strategy.
    ///
    /// ```
    /// use tollgate::{Policy, Strategy};
    ///
    /// let policy = Policy::token_bucket("10/second".parse()?)?;
    /// assert_eq!(policy.strategy(), Strategy::TokenBucket);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The token bucket capacity set by [`Policy::with_burst`], if any.
    ///
    /// ```
    /// use tollgate::Policy;
    ///
    /// let bucket = Policy::token_bucket("10/second".parse()?)?;
    /// assert_eq!(bucket.burst(), None); // the bucket holds the rate's amount, 10
    /// assert_eq!(bucket.with_burst(25)?.burst(), Some(25));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn burst(&self) -> Option<u64> {
        self.burst
    }

    /// The largest cost a single hit may have: the smallest capacity among the rates that are
    /// not kill switches (`u64::MAX` when all are). A larger cost could never be allowed and
    /// is refused with [`crate::Error::CostExceedsLimit`].
    ///
    /// ```
    /// let p = tollgate::Policy::fixed_window("10/second; 5/minute".parse()?);
    /// assert_eq!(p.max_cost(), 5);
    /// # Ok::<(), tollgate::ParseError>(())
    /// ```
    pub fn max_cost(&self) -> u64 {
        self.limits(Duration::from_nanos(1))
            .iter()
            .filter(|limit| limit.amount() > 0)
            .map(TickRate::capacity)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// The policy's rates as [`TickRate`]s, with windows counted in ticks of length `tick`
    /// (stores that keep time in nanoseconds pass 1 ns).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let p = tollgate::Policy::token_bucket(tollgate::Rate::per_minute(3).into())?.with_burst(6)?;
    /// let limits = p.limits(Duration::from_millis(1));
    /// assert_eq!((limits[0].amount(), limits[0].capacity(), limits[0].window()), (3, 6, 60_000));
    /// # Ok::<(), tollgate::PolicyError>(())
    /// ```
    pub fn limits(&self, tick: Duration) -> Box<[TickRate]> {
        // Whole ticks, rounded down: a hit never waits longer than it was allowed to.
        let max_delay = self.max_delay.map_or(0, |delay| {
            u64::try_from(delay.as_nanos() / tick.as_nanos().max(1)).unwrap_or(u64::MAX)
        });
        self.rates
            .iter()
            .map(|rate| {
                let capacity = self.burst.unwrap_or(rate.amount());
                TickRate::new(rate.amount(), capacity, rate.window(), tick)
                    .with_max_delay(max_delay)
            })
            .collect()
    }
}

impl fmt::Display for Policy {
    /// `10/second; 100/minute (token-bucket, burst 20)`, and the ban if there is one
    /// (`5/minute (fixed-window, ban after 3/10 minutes for 1 hour)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}", self.rates, self.strategy)?;
        if let Some(burst) = self.burst {
            write!(f, ", burst {burst}")?;
        }
        if let Some(ban) = &self.ban {
            write!(f, ", {ban}")?;
        }
        if let Some(max_delay) = self.max_delay {
            write!(f, ", max delay {max_delay:?}")?;
        }
        f.write_str(")")
    }
}

/// Whether a token bucket at `rate` would refill faster than [`MAX_TOKENS_PER_SECOND`].
fn refills_too_fast(rate: &Rate) -> bool {
    // Both sides stay below 2^52: amounts and windows are bounded.
    rate.amount() > MAX_TOKENS_PER_SECOND * rate.window().as_secs()
}
