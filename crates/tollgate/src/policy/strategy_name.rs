//! [`Strategy`]: which of the strategies a policy counts with, by name.

use std::fmt;
use std::str::FromStr;

use crate::policy::PolicyError;

/// How a policy counts hits. Each is written once, as a pure state machine in
/// [`crate::strategy`]; every store applies the same functions.
///
/// ```
/// use tollgate::Strategy;
///
/// let s: Strategy = "token-bucket".parse()?;
/// assert_eq!(s, Strategy::TokenBucket);
/// assert_eq!(Strategy::SlidingWindowLog.to_string(), "sliding-window");
/// # Ok::<(), tollgate::PolicyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// At most N units per window; the window starts at the key's first hit. Cheap and exact
    /// per window, but a client may spend N at the end of one window and N more at the start
    /// of the next.
    FixedWindow,
    /// At most N units in every trailing window of length W, exactly. Keeps one timestamp per
    /// distinct hit instant: up to N 16-byte entries per key, and in Redis the whole log is
    /// read and written on every hit, so use it for small N (up to a few thousand per window).
    SlidingWindowLog,
    /// The weighted estimate `previous × (unexpired share of the previous window) + current`
    /// must stay within N. O(1) state; any trailing window holds at most
    /// `N + ⌊P·e/W⌋ ≤ 2N − 1` units, where P is the previous window's count and e how far the
    /// trailing window reaches into the current one (N when traffic is even).
    SlidingWindowCounter,
    /// A bucket of `burst` tokens (default: the rate's amount) refilled continuously at the
    /// rate; each unit takes a token. Units allowed in any interval of length T are at most
    /// `burst + rate × T`. Stored as one theoretical arrival time (GCRA).
    TokenBucket,
}

impl Strategy {
    /// Every strategy, in the order of the docs.
    ///
    /// ```
    /// use tollgate::Strategy;
    ///
    /// let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
    /// assert_eq!(names, ["fixed-window", "sliding-window", "sliding-window-counter", "token-bucket"]);
    /// ```
    pub const ALL: [Strategy; 4] = [
        Strategy::FixedWindow,
        Strategy::SlidingWindowLog,
        Strategy::SlidingWindowCounter,
        Strategy::TokenBucket,
    ];

    /// The strategy's name in configuration files: `fixed-window`, `sliding-window` (the log),
    /// `sliding-window-counter` or `token-bucket`.
    ///
    /// ```
    /// use tollgate::Strategy;
    ///
    /// assert_eq!(Strategy::SlidingWindowCounter.name(), "sliding-window-counter");
    /// // The name parses back to the strategy.
    /// for strategy in Strategy::ALL {
    ///     assert_eq!(strategy.name().parse::<Strategy>(), Ok(strategy));
    /// }
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Strategy::FixedWindow => "fixed-window",
            Strategy::SlidingWindowLog => "sliding-window",
            Strategy::SlidingWindowCounter => "sliding-window-counter",
            Strategy::TokenBucket => "token-bucket",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.name() == s)
            .ok_or_else(|| PolicyError::UnknownStrategy(s.to_owned()))
    }
}
