//! [`PolicyError`]: why a policy cannot be made.

use std::fmt;
use std::time::Duration;

use crate::policy::{MAX_LOG_AMOUNT, MAX_TOKENS_PER_SECOND, Strategy};
use crate::rate::{MAX_AMOUNT, MAX_WINDOW_SECS, Rate};

/// An invalid policy: an unknown strategy or failure mode name, a token bucket that refills
/// too fast, or a burst that cannot apply.
///
/// ```
/// use tollgate::{FailureMode, Policy, PolicyError, Strategy};
///
/// assert_eq!(
///     "leaky-bucket".parse::<Strategy>(),
///     Err(PolicyError::UnknownStrategy("leaky-bucket".to_owned()))
/// );
/// let err = Policy::token_bucket("1/second; 10/minute".parse()?)?.with_burst(5).unwrap_err();
/// assert_eq!(err, PolicyError::BurstWithSeveralRates(2));
/// assert_eq!(err.to_string(), "burst needs a token bucket with exactly one rate, not 2");
/// assert!(matches!("open".parse::<FailureMode>(), Err(PolicyError::UnknownFailureMode(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// The strategy name is not one of [`Strategy::ALL`].
    UnknownStrategy(String),
    /// A burst was given for a strategy other than the token bucket.
    BurstWithoutTokenBucket(Strategy),
    /// A burst was given for a policy with this many rates; it needs exactly one.
    BurstWithSeveralRates(usize),
    /// A burst of 0 was given.
    ZeroBurst,
    /// A burst above [`MAX_AMOUNT`] was given.
    BurstTooLarge(u64),
    /// A token bucket's burst would take longer than [`MAX_WINDOW_SECS`] to refill at its
    /// rate.
    RefillTooSlow {
        /// The burst.
        burst: u64,
        /// The rate that refills it.
        rate: Rate,
    },
    /// A token bucket's rate refills faster than [`MAX_TOKENS_PER_SECOND`].
    TokenRateTooHigh(Rate),
    /// A sliding window log's rate counts more than [`MAX_LOG_AMOUNT`] per window.
    LogTooLong(Rate),
    /// The failure mode name is not `allow`, `deny` or `fallback`.
    UnknownFailureMode(String),
    /// A `max_delay` was given for a strategy that cannot reserve a slot (a sliding window).
    DelayNotOffered(Strategy),
    /// A fixed window's `max_delay` is as long as one of its windows or longer.
    DelayNotShorterThanWindow {
        /// The delay.
        max_delay: Duration,
        /// The rate whose window it reaches.
        rate: Rate,
    },
    /// A `max_delay` of zero, or longer than [`MAX_DELAY`](crate::MAX_DELAY).
    DelayOutOfRange(Duration),
}

impl PolicyError {
    /// Whether the mistake is in the rates (a token bucket that refills too fast, a log that
    /// counts too much) rather than in the burst or a name: where a front end that reads a
    /// policy's parts points.
    ///
    /// ```
    /// use tollgate::{Policy, Strategy};
    ///
    /// let fast = Policy::from_parts(Strategy::TokenBucket, "2000000/second".parse()?, None);
    /// assert!(fast.unwrap_err().is_about_rates());
    /// let empty = Policy::from_parts(Strategy::TokenBucket, "1/second".parse()?, Some(0));
    /// assert!(!empty.unwrap_err().is_about_rates());
    /// # Ok::<(), tollgate::ParseError>(())
    /// ```
    pub fn is_about_rates(&self) -> bool {
        matches!(
            self,
            PolicyError::TokenRateTooHigh(_) | PolicyError::LogTooLong(_)
        )
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::UnknownStrategy(name) => write!(
                f,
                "unknown strategy {name:?}; expected fixed-window, sliding-window, \
                 sliding-window-counter or token-bucket"
            ),
            PolicyError::BurstWithoutTokenBucket(strategy) => {
                write!(f, "burst applies to token-bucket only, not {strategy}")
            }
            PolicyError::BurstWithSeveralRates(n) => {
                write!(
                    f,
                    "burst needs a token bucket with exactly one rate, not {n}"
                )
            }
            PolicyError::UnknownFailureMode(name) => write!(
                f,
                "unknown failure mode {name:?}; expected allow, deny or fallback"
            ),
            PolicyError::ZeroBurst => f.write_str(
                "burst must be at least 1 (use a rate of 0, such as 0/second, to deny everything)",
            ),
            PolicyError::BurstTooLarge(burst) => {
                write!(f, "burst {burst} is above the maximum {MAX_AMOUNT}")
            }
            PolicyError::RefillTooSlow { burst, rate } => write!(
                f,
                "burst {burst} at {rate} takes longer than 100 years ({MAX_WINDOW_SECS} seconds) \
                 to refill; lower the burst or raise the rate"
            ),
            PolicyError::TokenRateTooHigh(rate) => write!(
                f,
                "token bucket rate {rate} refills faster than {MAX_TOKENS_PER_SECOND} units per \
                 second (one per microsecond), the fastest every store can count; count in \
                 larger units (kilobytes rather than bytes, say) or use a window strategy"
            ),
            PolicyError::DelayNotOffered(strategy) => write!(
                f,
                "max_delay applies to token-bucket and fixed-window only, not {strategy} \
                 (a sliding window cannot reserve a slot at a later time)"
            ),
            PolicyError::DelayNotShorterThanWindow { max_delay, rate } => write!(
                f,
                "max_delay {max_delay:?} is not shorter than the fixed window of {rate}; \
                 a fixed window reserves in its next window at most"
            ),
            PolicyError::DelayOutOfRange(max_delay) => write!(
                f,
                "max_delay {max_delay:?} is out of range; expected more than 0 and at most \
                 1 hour"
            ),
            PolicyError::LogTooLong(rate) => write!(
                f,
                "sliding window log rate {rate} counts more than {MAX_LOG_AMOUNT} per window; \
                 the log keeps an entry per hit, so use sliding-window-counter for large amounts"
            ),
        }
    }
}

impl std::error::Error for PolicyError {}
