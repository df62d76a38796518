//! [`Unit`]: the unit of an Envoy rate limit.

use std::fmt;

/// The unit of a rate limit, as envoyproxy/ratelimit (and Envoy's protocol) name them.
///
/// A week is 7 days, a month 30 days and a year 365 days, as envoyproxy/ratelimit counts
/// them. Windows start at a key's first hit (tollgate's fixed window), not at the turn of the
/// unit on the wall clock.
///
/// ```
/// use tollgate_server::Unit;
///
/// assert_eq!(Unit::from_name("MINUTE"), Some(Unit::Minute));
/// assert_eq!(Unit::Minute.seconds(), 60);
/// assert_eq!(Unit::Year.to_string(), "year");
/// assert_eq!(Unit::from_name("minit"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// One second.
    Second,
    /// 60 seconds.
    Minute,
    /// 3,600 seconds.
    Hour,
    /// 86,400 seconds.
    Day,
    /// 7 days.
    Week,
    /// 30 days.
    Month,
    /// 365 days.
    Year,
}

impl Unit {
    /// Every unit, shortest first.
    ///
    /// ```
    /// use tollgate_server::Unit;
    ///
    /// let seconds: Vec<u64> = Unit::ALL.iter().map(|unit| unit.seconds()).collect();
    /// assert!(seconds.is_sorted());
    /// assert_eq!((Unit::ALL[0], Unit::ALL[6]), (Unit::Second, Unit::Year));
    /// ```
    pub const ALL: [Unit; 7] = [
        Unit::Second,
        Unit::Minute,
        Unit::Hour,
        Unit::Day,
        Unit::Week,
        Unit::Month,
        Unit::Year,
    ];

    /// The unit's name in configuration files, in lower case.
    ///
    /// ```
    /// use tollgate_server::Unit;
    ///
    /// assert_eq!(Unit::Week.name(), "week");
    /// for unit in Unit::ALL {
    ///     assert_eq!(Unit::from_name(unit.name()), Some(unit));
    /// }
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
            Unit::Week => "week",
            Unit::Month => "month",
            Unit::Year => "year",
        }
    }

    /// The unit called `name`, in any letter case.
    pub fn from_name(name: &str) -> Option<Unit> {
        Unit::ALL
            .into_iter()
            .find(|unit| unit.name().eq_ignore_ascii_case(name))
    }

    /// The unit's length in seconds.
    pub const fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => 86_400,
            Unit::Week => 7 * 86_400,
            Unit::Month => 30 * 86_400,
            Unit::Year => 365 * 86_400,
        }
    }

    /// The unit's number in Envoy's protocol (`RateLimitResponse.RateLimit.Unit` and
    /// `envoy.type.v3.RateLimitUnit` agree).
    pub(crate) const fn proto(self) -> i32 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 2,
            Unit::Hour => 3,
            Unit::Day => 4,
            Unit::Month => 5,
            Unit::Year => 6,
            Unit::Week => 7,
        }
    }

    /// The unit numbered `number` in Envoy's protocol.
    pub(crate) fn from_proto(number: i32) -> Option<Unit> {
        Unit::ALL.into_iter().find(|unit| unit.proto() == number)
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
