//! [`FailureMode`]: what a [`Failover`](super::Failover) does when its store fails.

use std::fmt;
use std::str::FromStr;

use crate::policy::PolicyError;

/// What a [`Failover`](super::Failover) does when its store fails (is down, or times out).
///
/// ```
/// use tollgate::FailureMode;
///
/// assert_eq!("fallback".parse::<FailureMode>()?, FailureMode::Fallback);
/// assert_eq!(FailureMode::Allow.to_string(), "allow");
/// assert!("open".parse::<FailureMode>().is_err());
/// # Ok::<(), tollgate::PolicyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FailureMode {
    /// Fail open: the hit is allowed, uncounted, and the error is counted (a policy that is a
    /// kill switch still denies).
    #[default]
    Allow,
    /// Fail closed: the error is returned (an HTTP layer answers 503).
    Deny,
    /// Count in a local [`MemoryStore`](crate::MemoryStore) while the store is failing (only the keys of the
    /// failing part, for a store of several [failure domains](crate::Store::failure_domains));
    /// probe the store every [`Failover::PROBE_INTERVAL`](super::Failover::PROBE_INTERVAL) and go back to it as soon as a
    /// probe succeeds.
    Fallback,
}

impl FailureMode {
    /// The failure mode's name in configuration files: `allow`, `deny` or `fallback`.
    ///
    /// ```
    /// use tollgate::FailureMode;
    ///
    /// assert_eq!(FailureMode::default().name(), "allow");
    /// assert_eq!(FailureMode::Fallback.name(), "fallback");
    /// assert_eq!(FailureMode::Deny.name().parse::<FailureMode>()?, FailureMode::Deny);
    /// # Ok::<(), tollgate::PolicyError>(())
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            FailureMode::Allow => "allow",
            FailureMode::Deny => "deny",
            FailureMode::Fallback => "fallback",
        }
    }
}

impl fmt::Display for FailureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FailureMode {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [FailureMode::Allow, FailureMode::Deny, FailureMode::Fallback]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| PolicyError::UnknownFailureMode(s.to_owned()))
    }
}
