//! [`Rate`] and [`Rates`]: how many units a client may spend per window.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

mod notation;

pub use notation::ParseError;

/// The units of the limit notation, with their length in seconds.
///
/// A month is 30 days and a year is 360 days, as the Python `limits` library (and so
/// Flask-Limiter) counts them.
pub(crate) const UNITS: [(&str, u64); 6] = [
    ("year", 360 * 86_400),
    ("month", 30 * 86_400),
    ("day", 86_400),
    ("hour", 3_600),
    ("minute", 60),
    ("second", 1),
];

/// The largest amount a [`Rate`] may have, and the largest burst of a token bucket:
/// 10^12 units.
///
/// Far beyond any count of requests, and room for byte counts of a terabyte. The bound is
/// the same for every store: the notation parser, [`Rate::new`] and [`crate::Policy::with_burst`]
/// refuse larger numbers, so that no store ever has to count past it (the Redis store
/// counts in Lua's doubles, exact below 2^53).
///
/// ```
/// use std::time::Duration;
/// use tollgate::{MAX_AMOUNT, Rate, Rates};
///
/// assert!(Rate::new(MAX_AMOUNT, Duration::from_secs(1)).is_ok());
/// assert!(Rate::new(MAX_AMOUNT + 1, Duration::from_secs(1)).is_err());
/// let err = "18446744073709551615/second".parse::<Rates>().unwrap_err();
/// assert!(err.to_string().ends_with("amount 18446744073709551615 is above the maximum 1000000000000"));
/// ```
pub const MAX_AMOUNT: u64 = 1_000_000_000_000;

/// The longest window a [`Rate`] may have, in seconds: 100 years of the notation (a year is
/// 360 days), 3,110,400,000 seconds.
///
/// The bound leaves headroom for the arithmetic of every store: a state's times plus two
/// windows (the sliding window counter's reach) stay far inside a `u64` of nanoseconds for
/// clocks that count from 1970 until past the year 2300, and a window in microseconds stays
/// below 2^52, exact in the Redis store's doubles.
///
/// ```
/// use std::time::Duration;
/// use tollgate::{Rate, Rates, MAX_WINDOW_SECS};
///
/// assert_eq!(MAX_WINDOW_SECS, 100 * 360 * 86_400);
/// assert!(Rate::new(1, Duration::from_secs(MAX_WINDOW_SECS)).is_ok());
/// assert!(Rate::new(1, Duration::from_secs(MAX_WINDOW_SECS + 1)).is_err());
/// assert!("1/100 years".parse::<Rates>().is_ok());
/// assert!("1/101 years".parse::<Rates>().is_err());
/// ```
pub const MAX_WINDOW_SECS: u64 = 100 * 360 * 86_400;

/// The most rates one limit string may hold (`"1/second; 10/minute; ..."`): the notation
/// parser refuses more, so that a client's inline policy cannot make every hit it sends cost
/// thousands of counters. Each rate is a counter per key; 16 is far beyond any real tiering.
///
/// ```
/// use tollgate::{MAX_RATES, Rates};
///
/// let most = vec!["1/second"; MAX_RATES].join("; ");
/// assert_eq!(most.parse::<Rates>()?.len(), MAX_RATES);
/// let err = format!("{most}; 1/day").parse::<Rates>().unwrap_err();
/// assert!(err.to_string().ends_with("more than 16 rates in one limit"), "{err}");
/// # Ok::<(), tollgate::ParseError>(())
/// ```
pub const MAX_RATES: usize = 16;

/// Parses a duration in the units of the limit notation: an optional whole count and a unit
/// (`"1 hour"`, `"30 minutes"`, `"90 seconds"`, `"day"`), from one second up to
/// [`MAX_WINDOW_SECS`] (100 years). How long a ban lasts is written this way.
///
/// ```
/// use std::time::Duration;
///
/// assert_eq!(tollgate::parse_duration("1 hour")?, Duration::from_secs(3600));
/// assert_eq!(tollgate::parse_duration("day")?, Duration::from_secs(86_400));
/// let err = tollgate::parse_duration("1 fortnight").unwrap_err();
/// assert_eq!(err.position(), 2);
/// assert!(err.to_string().starts_with(r#"invalid duration "1 fortnight" at byte 2: unknown unit"#));
/// # Ok::<(), tollgate::ParseError>(())
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, ParseError> {
    notation::parse_duration_secs(text).map(Duration::from_secs)
}

/// One rate: at most `amount` units in every `window`.
///
/// The amount is at most [`MAX_AMOUNT`]; the window is a whole number of seconds, from one
/// second up to [`MAX_WINDOW_SECS`]. An amount of 0 is valid and denies every hit: a kill
/// switch.
///
/// ```
/// use std::time::Duration;
/// use tollgate::Rate;
///
/// let rate: Rate = "2 per 30 seconds".parse()?;
/// assert_eq!(rate.amount(), 2);
/// assert_eq!(rate.window(), Duration::from_secs(30));
/// assert_eq!(rate, Rate::new(2, Duration::from_secs(30))?);
/// assert_eq!(rate.to_string(), "2/30 seconds");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// Units allowed per window, `0..=MAX_AMOUNT`; 0 denies everything.
    amount: u64,
    /// Window length in seconds, `1..=MAX_WINDOW_SECS`.
    window_secs: u64,
}

impl Rate {
    /// A rate of `amount` units per `window`.
    ///
    /// Fails when the amount is above [`MAX_AMOUNT`], or the window is not a whole number of
    /// seconds between 1 second and [`MAX_WINDOW_SECS`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tollgate::{InvalidRate, MAX_AMOUNT, Rate};
    ///
    /// assert!(Rate::new(5, Duration::from_secs(60)).is_ok());
    /// assert!(Rate::new(5, Duration::from_millis(1500)).is_err());
    /// assert!(Rate::new(5, Duration::ZERO).is_err());
    /// assert_eq!(Rate::new(u64::MAX, Duration::from_secs(1)), Err(InvalidRate::Amount(u64::MAX)));
    /// ```
    pub fn new(amount: u64, window: Duration) -> Result<Self, InvalidRate> {
        if amount > MAX_AMOUNT {
            return Err(InvalidRate::Amount(amount));
        }
        if window.subsec_nanos() != 0 {
            return Err(InvalidRate::Window(window));
        }
        Self::from_secs(amount, window.as_secs()).ok_or(InvalidRate::Window(window))
    }

    /// `amount` units per `window_secs` seconds, or `None` when the amount is above
    /// [`MAX_AMOUNT`] or the window is 0 or longer than [`MAX_WINDOW_SECS`].
    pub(crate) fn from_secs(amount: u64, window_secs: u64) -> Option<Self> {
        (amount <= MAX_AMOUNT && (1..=MAX_WINDOW_SECS).contains(&window_secs)).then_some(Self {
            amount,
            window_secs,
        })
    }

    /// `amount` units per second. (The amount is a `u32`, so it cannot pass
    /// [`MAX_AMOUNT`]; [`Rate::new`] takes larger ones.)
    ///
    /// ```
    /// assert_eq!(tollgate::Rate::per_second(10).to_string(), "10/second");
    /// ```
    pub const fn per_second(amount: u32) -> Self {
        Self {
            amount: amount as u64,
            window_secs: 1,
        }
    }

    /// `amount` units per minute.
    ///
    /// ```
    /// assert_eq!(tollgate::Rate::per_minute(5).to_string(), "5/minute");
    /// ```
    pub const fn per_minute(amount: u32) -> Self {
        Self {
            amount: amount as u64,
            window_secs: 60,
        }
    }

    /// `amount` units per hour.
    ///
    /// ```
    /// assert_eq!(tollgate::Rate::per_hour(100).to_string(), "100/hour");
    /// ```
    pub const fn per_hour(amount: u32) -> Self {
        Self {
            amount: amount as u64,
            window_secs: 3_600,
        }
    }

    /// `amount` units per day.
    ///
    /// ```
    /// assert_eq!(tollgate::Rate::per_day(1000).to_string(), "1000/day");
    /// ```
    pub const fn per_day(amount: u32) -> Self {
        Self {
            amount: amount as u64,
            window_secs: 86_400,
        }
    }

    /// Units allowed per window.
    pub const fn amount(&self) -> u64 {
        self.amount
    }

    /// The window length.
    pub const fn window(&self) -> Duration {
        Duration::from_secs(self.window_secs)
    }
}

impl fmt::Display for Rate {
    /// Writes the canonical notation: the amount, `/`, and the window in the largest unit that
    /// divides it (`10/second`, `2/30 seconds`, `1000/7 days`). It parses back to the same rate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, secs) = UNITS
            .into_iter()
            .find(|(_, secs)| self.window_secs.is_multiple_of(*secs))
            .unwrap_or(("second", 1));
        match self.window_secs / secs {
            1 => write!(f, "{}/{unit}", self.amount),
            n => write!(f, "{}/{n} {unit}s", self.amount),
        }
    }
}

impl FromStr for Rate {
    type Err = ParseError;

    /// Parses exactly one rate in the limit notation (see [`Rates`] for lists).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        notation::parse_one(s)
    }
}

/// The error of [`Rate::new`]: an amount above [`MAX_AMOUNT`], or a window that is not a
/// whole number of seconds between one second and [`MAX_WINDOW_SECS`].
///
/// ```
/// use std::time::Duration;
/// use tollgate::Rate;
///
/// let err = Rate::new(5, Duration::from_millis(500)).unwrap_err();
/// assert!(err.to_string().starts_with("invalid window 500ms: expected a whole number of seconds"));
/// let err = Rate::new(1 << 50, Duration::from_secs(1)).unwrap_err();
/// assert_eq!(err.to_string(), "invalid amount 1125899906842624: above the maximum 1000000000000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidRate {
    /// The amount is above [`MAX_AMOUNT`].
    Amount(u64),
    /// The window is not a whole number of seconds from 1 to [`MAX_WINDOW_SECS`].
    Window(Duration),
}

impl fmt::Display for InvalidRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidRate::Amount(amount) => {
                write!(f, "invalid amount {amount}: above the maximum {MAX_AMOUNT}")
            }
            InvalidRate::Window(window) => write!(
                f,
                "invalid window {window:?}: expected a whole number of seconds from 1 to \
                 {MAX_WINDOW_SECS} (100 years)"
            ),
        }
    }
}

impl std::error::Error for InvalidRate {}

/// A non-empty list of rates, all of which apply at once (`"10/second; 100/minute"`).
///
/// Parses the notation Flask-Limiter users write: see the crate's README for the grammar.
///
/// ```
/// use tollgate::{Rate, Rates};
///
/// let rates: Rates = "100/day; 1000 per 7 days".parse()?;
/// assert_eq!(rates.len(), 2);
/// assert_eq!(rates[0], Rate::per_day(100));
/// assert_eq!(rates.to_string(), "100/day; 1000/7 days");
/// assert_eq!(rates.to_string().parse::<Rates>()?, rates);
/// # Ok::<(), tollgate::ParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rates(Box<[Rate]>);

impl Rates {
    /// A list of rates, or `None` when `rates` is empty.
    ///
    /// ```
    /// use tollgate::{Rate, Rates};
    ///
    /// let rates = Rates::new([Rate::per_second(10), Rate::per_minute(100)]).unwrap();
    /// assert_eq!(rates.to_string(), "10/second; 100/minute");
    /// assert!(Rates::new([]).is_none());
    /// ```
    pub fn new(rates: impl IntoIterator<Item = Rate>) -> Option<Self> {
        let rates: Box<[Rate]> = rates.into_iter().collect();
        (!rates.is_empty()).then_some(Self(rates))
    }
}

impl From<Rate> for Rates {
    fn from(rate: Rate) -> Self {
        Self(Box::new([rate]))
    }
}

impl std::ops::Deref for Rates {
    type Target = [Rate];

    fn deref(&self) -> &[Rate] {
        &self.0
    }
}

impl fmt::Display for Rates {
    /// Writes each rate's canonical form, separated by `"; "`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rate) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{rate}")?;
        }
        Ok(())
    }
}

impl FromStr for Rates {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        notation::parse_many(s).map(|rates| Self(rates.into_boxed_slice()))
    }
}
