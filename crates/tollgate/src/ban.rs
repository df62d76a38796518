//! [`Ban`]: a policy's ban of keys that keep breaching it (Flask-Limiter's meta limits,
//! rate-limiter-flexible's `blockDuration`).

use std::fmt;
use std::time::Duration;

use crate::policy::Policy;
use crate::rate::{MAX_WINDOW_SECS, Rate, UNITS};
use crate::strategy::BanRule;

/// Bans a key that keeps hitting a policy after its denials: after `after.amount()`
/// *breaches* (hits the policy denied) within `after.window()`, every hit of the key is
/// denied for `duration`, without touching the policy's counts, with a `Retry-After` of (at
/// least) the ban's remaining time. Set it with [`crate::Policy::with_ban`].
///
/// The breaches are counted in a fixed window that starts at the first breach; the breach
/// that completes the count is itself denied as banned, and the ban starts then. Hits denied
/// by the ban are not breaches, so a ban is never extended by them, and the count starts
/// again from none after it. A peek is never a breach; neither is a cost above what the
/// policy ever allows (refused before it is counted), nor a late charge. The ban lives in the
/// store with the key's counts (one ban across processes with Redis), ends by itself, and is
/// lifted by a reset of the key.
///
/// ```
/// use std::time::Duration;
/// use tollgate::{Ban, Rate};
///
/// let ban = Ban::new("3/10 minutes".parse()?, Duration::from_secs(3600))?;
/// assert_eq!(ban.after(), Rate::new(3, Duration::from_secs(600))?);
/// assert_eq!(ban.duration(), Duration::from_secs(3600));
/// assert_eq!(ban.to_string(), "ban after 3/10 minutes for 1 hour");
/// assert!(Ban::new("0/minute".parse()?, Duration::from_secs(60)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ban {
    /// Breaches per window that ban; the amount is at least 1.
    after: Rate,
    /// How long a ban lasts, in seconds, `1..=MAX_WINDOW_SECS`.
    duration_secs: u64,
}

impl Ban {
    /// A ban for `duration` after `after.amount()` breaches within `after.window()`.
    ///
    /// Fails for an amount of 0 (a ban before any breach), and for a duration that is not a
    /// whole number of seconds from one second to [`MAX_WINDOW_SECS`] (100 years).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Ban, InvalidBan, Rate};
    ///
    /// assert!(Ban::new(Rate::per_hour(5), Duration::from_secs(86_400)).is_ok());
    /// assert_eq!(Ban::new(Rate::per_hour(0), Duration::from_secs(60)), Err(InvalidBan::NoBreaches));
    /// let err = Ban::new(Rate::per_hour(5), Duration::from_millis(1500)).unwrap_err();
    /// assert_eq!(err, InvalidBan::Duration(Duration::from_millis(1500)));
    /// ```
    pub fn new(after: Rate, duration: Duration) -> Result<Self, InvalidBan> {
        if after.amount() == 0 {
            return Err(InvalidBan::NoBreaches);
        }
        let secs = duration.as_secs();
        if duration.subsec_nanos() != 0 || !(1..=MAX_WINDOW_SECS).contains(&secs) {
            return Err(InvalidBan::Duration(duration));
        }
        Ok(Self {
            after,
            duration_secs: secs,
        })
    }

    /// The breaches that ban: so many per window.
    pub fn after(&self) -> Rate {
        self.after
    }

    /// How long a ban lasts.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_secs)
    }

    /// The ban in ticks of length `tick`, as the strategies apply it.
    pub(crate) fn rule(&self, tick: Duration) -> BanRule {
        BanRule::new(
            self.after.amount(),
            self.after.window(),
            self.duration(),
            tick,
        )
    }
}

impl fmt::Display for Ban {
    /// `ban after 3/10 minutes for 1 hour`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, secs) = UNITS
            .into_iter()
            .find(|(_, secs)| self.duration_secs.is_multiple_of(*secs))
            .unwrap_or(("second", 1));
        let count = self.duration_secs / secs;
        let plural = if count == 1 { "" } else { "s" };
        write!(f, "ban after {} for {count} {unit}{plural}", self.after)
    }
}

/// A policy's ban.
impl Policy {
    /// Bans keys that keep breaching this policy: see [`Ban`]. Keys of a policy with a ban
    /// are kept apart from those of the same policy without one (in memory, a table of their
    /// own, so that policies without a ban pay nothing for it; in Redis, keys of their own).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Ban, Policy};
    ///
    /// let ban = Ban::new("3/10 minutes".parse()?, Duration::from_secs(3600))?;
    /// let login = Policy::fixed_window("5/minute".parse()?).with_ban(ban);
    /// assert_eq!(login.ban(), Some(&ban));
    /// assert_eq!(login.to_string(), "5/minute (fixed-window, ban after 3/10 minutes for 1 hour)");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_ban(mut self, ban: Ban) -> Self {
        self.ban = Some(ban);
        self
    }

    /// The ban set by [`Policy::with_ban`], if any.
    pub fn ban(&self) -> Option<&Ban> {
        self.ban.as_ref()
    }

    /// The ban in ticks of length `tick`, as [`crate::strategy::apply_banned`] takes it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{Ban, Policy, Rate};
    ///
    /// let ban = Ban::new(Rate::per_minute(3), Duration::from_secs(600))?;
    /// let policy = Policy::fixed_window(Rate::per_second(5).into()).with_ban(ban);
    /// let rule = policy.ban_rule(Duration::from_millis(1)).expect("a ban");
    /// assert_eq!((rule.breaches().amount(), rule.breaches().window(), rule.duration()), (3, 60_000, 600_000));
    /// assert!(Policy::fixed_window(Rate::per_second(5).into()).ban_rule(Duration::from_millis(1)).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ban_rule(&self, tick: Duration) -> Option<BanRule> {
        self.ban.map(|ban| ban.rule(tick))
    }
}

/// The error of [`Ban::new`].
///
/// ```
/// use std::time::Duration;
/// use tollgate::{Ban, Rate};
///
/// let err = Ban::new(Rate::per_minute(0), Duration::from_secs(60)).unwrap_err();
/// assert_eq!(err.to_string(), "a ban needs at least one breach per window, not 0");
/// let err = Ban::new(Rate::per_minute(3), Duration::ZERO).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid ban duration 0ns: expected a whole number of seconds from 1 to 3110400000 (100 years)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidBan {
    /// The breaches per window are 0.
    NoBreaches,
    /// The duration is not a whole number of seconds from 1 to [`MAX_WINDOW_SECS`].
    Duration(Duration),
}

impl fmt::Display for InvalidBan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidBan::NoBreaches => {
                f.write_str("a ban needs at least one breach per window, not 0")
            }
            InvalidBan::Duration(duration) => write!(
                f,
                "invalid ban duration {duration:?}: expected a whole number of seconds from 1 to \
                 {MAX_WINDOW_SECS} (100 years)"
            ),
        }
    }
}

impl std::error::Error for InvalidBan {}
