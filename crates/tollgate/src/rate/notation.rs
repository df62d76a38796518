//! The limit notation parser (`"10/second"`, `"2 per 30 seconds; 100/day"`).
//!
//! The grammar accepts exactly what the Python `limits` library (used by Flask-Limiter)
//! accepts, and reads it to the same amounts and windows:
//!
//! ```text
//! rates  = rate *( [":"] sep rate )          sep = "," / ";" / "|"
//! rate   = *ws amount *ws ("/" / "per") *ws [count] *ws unit ["s"] *ws
//! amount = 1*DIGIT                           count = 1*DIGIT (0 counts as 1)
//! unit   = "second" / "minute" / "hour" / "day" / "month" / "year"
//! ```
//!
//! Letters match without regard to ASCII case and `ws` is any character Python's `str.isspace`
//! accepts (Rust's `char::is_whitespace` plus U+001C to U+001F). The only strings Python
//! accepts that are rejected here are those whose amount is above [`MAX_AMOUNT`] or whose
//! window is longer than [`MAX_WINDOW_SECS`] (100 years), and lists of more than
//! [`MAX_RATES`] rates.

use std::fmt;

use crate::rate::{MAX_AMOUNT, MAX_RATES, MAX_WINDOW_SECS, Rate, UNITS};

/// Why a limit string was rejected: the input, the byte position of the problem and what was
/// expected there.
///
/// ```
/// let err = "10/sec".parse::<tollgate::Rates>().unwrap_err();
/// assert_eq!(err.position(), 3);
/// assert_eq!(
///     err.to_string(),
///     r#"invalid rate "10/sec" at byte 3: unknown unit "sec"; expected second, minute, hour, day, month or year"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    input: String,
    position: usize,
    reason: Reason,
    /// What the input was meant to be.
    subject: Subject,
}

/// What a parsed input is meant to be: a rate (or a list of them), or a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Rate,
    Duration,
}

/// What was wrong at [`ParseError::position`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    Empty,
    ExpectedAmount {
        found: String,
    },
    Negative,
    Decimal,
    /// The amount, when it fits in a `u64`.
    AmountTooLarge(Option<u64>),
    ExpectedPer {
        found: String,
    },
    ExpectedUnit {
        found: String,
    },
    UnknownUnit {
        unit: String,
    },
    WindowTooLong,
    ExpectedSeparator {
        found: String,
    },
    TrailingSeparator,
    ExpectedOne {
        found: usize,
    },
    TooManyRates,
    /// A duration of 0.
    ZeroDuration,
    /// Something after a complete duration.
    ExpectedEnd {
        found: String,
    },
}

impl ParseError {
    /// The byte offset in the input where the problem starts.
    pub fn position(&self) -> usize {
        self.position
    }

    /// The rejected input.
    ///
    /// ```
    /// let err = "5/minute; 10/fortnight".parse::<tollgate::Rates>().unwrap_err();
    /// assert_eq!(err.input(), "5/minute; 10/fortnight");
    /// assert_eq!(&err.input()[err.position()..], "fortnight");
    /// ```
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (subject, example) = match self.subject {
            Subject::Rate => ("rate", "a rate such as \"10/minute\""),
            Subject::Duration => ("duration", "a duration such as \"1 hour\""),
        };
        write!(
            f,
            "invalid {subject} {:?} at byte {}: ",
            self.input, self.position
        )?;
        match &self.reason {
            Reason::Empty => write!(f, "empty; expected {example}"),
            Reason::ExpectedAmount { found } => {
                write!(f, "found {found}; expected a whole number such as 10")
            }
            Reason::Negative => f.write_str("negative amounts are not allowed"),
            Reason::Decimal => f.write_str(
                "decimals are not allowed; use whole numbers (\"3 per 2 seconds\", not \"1.5/second\")",
            ),
            Reason::AmountTooLarge(Some(amount)) => {
                write!(f, "amount {amount} is above the maximum {MAX_AMOUNT}")
            }
            Reason::AmountTooLarge(None) => write!(f, "amount is above the maximum {MAX_AMOUNT}"),
            Reason::ExpectedPer { found } => write!(f, "found {found}; expected \"/\" or \"per\""),
            Reason::ExpectedUnit { found } => write!(
                f,
                "found {found}; expected second, minute, hour, day, month or year"
            ),
            Reason::UnknownUnit { unit } => write!(
                f,
                "unknown unit {unit:?}; expected second, minute, hour, day, month or year"
            ),
            Reason::WindowTooLong => write!(
                f,
                "{} is longer than the maximum, 100 years ({MAX_WINDOW_SECS} seconds)",
                match self.subject {
                    Subject::Rate => "window",
                    Subject::Duration => "duration",
                }
            ),
            Reason::ExpectedSeparator { found } => write!(
                f,
                "found {found}; expected \";\", \",\" or \"|\" before another rate"
            ),
            Reason::TrailingSeparator => f.write_str("expected a rate after the separator"),
            Reason::ExpectedOne { found } => write!(f, "expected exactly one rate, found {found}"),
            Reason::TooManyRates => write!(f, "more than {MAX_RATES} rates in one limit"),
            Reason::ZeroDuration => f.write_str("a duration must be at least one second"),
            Reason::ExpectedEnd { found } => {
                write!(f, "found {found}; expected the end after the unit")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses one or more rates separated by `;`, `,` or `|`.
pub(crate) fn parse_many(input: &str) -> Result<Vec<Rate>, ParseError> {
    let mut cursor = Cursor::new(input, Subject::Rate);
    if input.chars().all(is_space) {
        return Err(cursor.error(Reason::Empty));
    }
    let mut rates = vec![cursor.rate()?];
    while let Some(c) = cursor.peek() {
        if c == ':' {
            cursor.bump(c);
        }
        match cursor.peek() {
            Some(sep @ (',' | ';' | '|')) => {
                let at = cursor.pos;
                cursor.bump(sep);
                if cursor.rest().chars().all(is_space) {
                    return Err(cursor.error_at(at, Reason::TrailingSeparator));
                }
                if rates.len() == MAX_RATES {
                    return Err(cursor.error_at(at, Reason::TooManyRates));
                }
                rates.push(cursor.rate()?);
            }
            _ => {
                let found = cursor.found();
                return Err(cursor.error(Reason::ExpectedSeparator { found }));
            }
        }
    }
    Ok(rates)
}

/// Parses exactly one rate.
pub(crate) fn parse_one(input: &str) -> Result<Rate, ParseError> {
    let rates = parse_many(input)?;
    match rates[..] {
        [rate] => Ok(rate),
        _ => Err(ParseError {
            input: input.to_owned(),
            position: 0,
            reason: Reason::ExpectedOne { found: rates.len() },
            subject: Subject::Rate,
        }),
    }
}

/// Parses a duration in whole seconds, from 1 to [`MAX_WINDOW_SECS`]:
/// `*ws [count] *ws unit ["s"] *ws`, with the units of rates (`"1 hour"`, `"30 minutes"`,
/// `"day"`).
pub(crate) fn parse_duration_secs(input: &str) -> Result<u64, ParseError> {
    let mut cursor = Cursor::new(input, Subject::Duration);
    if input.chars().all(is_space) {
        return Err(cursor.error(Reason::Empty));
    }
    let secs = cursor.span(|count| match count {
        None => Ok(1),
        Some(0) => Err(Reason::ZeroDuration),
        Some(n) => Ok(n),
    })?;
    if cursor.peek().is_some() {
        let found = cursor.found();
        return Err(cursor.error(Reason::ExpectedEnd { found }));
    }
    Ok(secs)
}

/// Whitespace as Python's `str.isspace` (and so its `\s`) sees it: Rust's `char::is_whitespace`
/// plus the four information separators U+001C to U+001F.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// A position in the input; every method leaves `pos` on a char boundary.
struct Cursor<'a> {
    input: &'a str,
    pos: usize,
    subject: Subject,
}

impl<'a> Cursor<'a> {
    fn new(input: &'a str, subject: Subject) -> Self {
        Self {
            input,
            pos: 0,
            subject,
        }
    }

    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self, c: char) {
        self.pos += c.len_utf8();
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek().filter(|&c| is_space(c)) {
            self.bump(c);
        }
    }

    /// Takes the longest run of characters matching `pred` and returns it.
    fn take_while(&mut self, pred: impl Fn(char) -> bool) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|&c| pred(c)) {
            self.bump(c);
        }
        &self.input[start..self.pos]
    }

    /// The next character, quoted, or "the end" at the end of the input.
    fn found(&self) -> String {
        match self.peek() {
            Some(c) => format!("{:?}", c.to_string()),
            None => "the end".to_owned(),
        }
    }

    fn error(&self, reason: Reason) -> ParseError {
        self.error_at(self.pos, reason)
    }

    fn error_at(&self, position: usize, reason: Reason) -> ParseError {
        ParseError {
            input: self.input.to_owned(),
            position,
            reason,
            subject: self.subject,
        }
    }

    /// `*ws amount *ws ("/" / "per") *ws [count] *ws unit ["s"] *ws`
    fn rate(&mut self) -> Result<Rate, ParseError> {
        self.skip_space();
        let amount_at = self.pos;
        let amount = self.number(Reason::AmountTooLarge(None))?.ok_or_else(|| {
            let reason = match self.peek() {
                Some('-') => Reason::Negative,
                Some('.') => Reason::Decimal,
                _ => Reason::ExpectedAmount {
                    found: self.found(),
                },
            };
            self.error(reason)
        })?;
        if amount > MAX_AMOUNT {
            return Err(self.error_at(amount_at, Reason::AmountTooLarge(Some(amount))));
        }
        self.skip_space();
        if self.rest().starts_with('/') {
            self.bump('/');
        } else if self
            .rest()
            .get(..3)
            .is_some_and(|word| word.eq_ignore_ascii_case("per"))
        {
            self.pos += 3;
        } else {
            let found = self.found();
            return Err(self.error(Reason::ExpectedPer { found }));
        }
        // Python reads a count of 0 as "no count", that is 1.
        let window = self.span(|count| Ok(count.filter(|&n| n != 0).unwrap_or(1)))?;
        Rate::from_secs(amount, window)
            .ok_or_else(|| self.error_at(amount_at, Reason::WindowTooLong))
    }

    /// `*ws [count] *ws unit ["s"] *ws`: a span of time in seconds, at most
    /// [`MAX_WINDOW_SECS`]; `count` says what a count (or its absence) stands for.
    fn span(
        &mut self,
        count: impl FnOnce(Option<u64>) -> Result<u64, Reason>,
    ) -> Result<u64, ParseError> {
        self.skip_space();
        let count_at = self.pos;
        let number = self.number(Reason::WindowTooLong)?;
        self.skip_space();
        let unit_at = self.pos;
        let word = self.take_while(char::is_alphabetic);
        if word.is_empty() {
            let reason = match self.peek() {
                Some('-') => Reason::Negative,
                _ => Reason::ExpectedUnit {
                    found: self.found(),
                },
            };
            return Err(self.error(reason));
        }
        let unit_secs = unit_seconds(word).ok_or_else(|| {
            self.error_at(
                unit_at,
                Reason::UnknownUnit {
                    unit: word.to_owned(),
                },
            )
        })?;
        self.skip_space();
        let count = count(number).map_err(|reason| self.error_at(count_at, reason))?;
        count
            .checked_mul(unit_secs)
            .filter(|&secs| secs <= MAX_WINDOW_SECS)
            .ok_or_else(|| self.error_at(count_at, Reason::WindowTooLong))
    }

    /// An optional run of ASCII digits as a `u64`; a decimal point right after the digits is
    /// an error.
    fn number(&mut self, too_large: Reason) -> Result<Option<u64>, ParseError> {
        let start = self.pos;
        let digits = self.take_while(|c| c.is_ascii_digit());
        if digits.is_empty() {
            return Ok(None);
        }
        let value = digits.bytes().try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        });
        if self.rest().starts_with('.') {
            return Err(self.error(Reason::Decimal));
        }
        value
            .map(Some)
            .ok_or_else(|| self.error_at(start, too_large))
    }
}

/// The length in seconds of a unit word: a unit name in any ASCII case, optionally followed by
/// a plural `s`.
fn unit_seconds(word: &str) -> Option<u64> {
    let singular = word
        .strip_suffix(['s', 'S'])
        .filter(|stem| {
            UNITS
                .iter()
                .any(|(name, _)| stem.eq_ignore_ascii_case(name))
        })
        .unwrap_or(word);
    UNITS
        .iter()
        .find(|(name, _)| singular.eq_ignore_ascii_case(name))
        .map(|&(_, secs)| secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(s: &str) -> Vec<(u64, u64)> {
        parse_many(s)
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|r| (r.amount(), r.window().as_secs()))
            .collect()
    }

    fn reject(s: &str) -> ParseError {
        parse_many(s).expect_err(s)
    }

    #[test]
    fn documented_forms() {
        assert_eq!(parse("10/second"), [(10, 1)]);
        assert_eq!(parse("10 per second"), [(10, 1)]);
        assert_eq!(parse("10 PER Second"), [(10, 1)]);
        assert_eq!(parse("2 per 30 seconds"), [(2, 30)]);
        assert_eq!(parse("10/2seconds"), [(10, 2)]);
        assert_eq!(
            parse("100/day; 1000 per 7 days"),
            [(100, 86_400), (1000, 7 * 86_400)]
        );
        assert_eq!(
            parse("1/second,2/minute|3/hour"),
            [(1, 1), (2, 60), (3, 3600)]
        );
        assert_eq!(parse("1/month"), [(1, 30 * 86_400)]);
        assert_eq!(parse("1/years"), [(1, 360 * 86_400)]);
        assert_eq!(parse("0/second"), [(0, 1)]);
    }

    #[test]
    fn python_quirks() {
        // A count of 0 means 1 and a colon may stand right before a separator.
        assert_eq!(parse("10/0 seconds"), [(10, 1)]);
        assert_eq!(parse("10/007 minutes"), [(10, 420)]);
        assert_eq!(parse("1/second :;2/minute"), [(1, 1), (2, 60)]);
        assert!(parse_many("1/second: ;2/minute").is_err());
        assert_eq!(parse("10persecond\n"), [(10, 1)]);
        assert_eq!(parse("\u{1f}5\u{3000}per\u{a0}hour"), [(5, 3600)]);
    }

    #[test]
    fn rejections_name_the_position_and_what_was_expected() {
        let err = reject("10/sec");
        assert_eq!(err.position(), 3);
        assert!(err.to_string().contains("unknown unit \"sec\""), "{err}");
        assert_eq!(reject("").position(), 0);
        assert!(reject("   ").to_string().contains("empty"));
        let err = reject("10/second;");
        assert_eq!(err.position(), 9);
        assert!(err.to_string().contains("after the separator"), "{err}");
        assert!(reject("1.5/second").to_string().contains("decimals"));
        assert_eq!(reject("1.5/second").position(), 1);
        assert!(reject("-5/second").to_string().contains("negative"));
        assert!(reject("5/-1 second").to_string().contains("negative"));
        let err = reject("99999999999999999999/second");
        assert!(
            err.to_string()
                .ends_with("at byte 0: amount is above the maximum 1000000000000"),
            "{err}"
        );
        let err = reject("1/second; 18446744073709551615/second");
        assert_eq!(
            err.to_string(),
            "invalid rate \"1/second; 18446744073709551615/second\" at byte 10: \
             amount 18446744073709551615 is above the maximum 1000000000000"
        );
        let err = reject(" 1000000000001 per day");
        assert_eq!(err.position(), 1);
        assert!(
            err.to_string()
                .ends_with("amount 1000000000001 is above the maximum 1000000000000")
        );
        assert_eq!(parse("1000000000000/day"), [(MAX_AMOUNT, 86_400)]);
        for too_long in ["1/600 years", "1/585 years", "1/101 years", "1/36001 days"] {
            let err = reject(too_long);
            assert_eq!(err.position(), 2, "{too_long}");
            assert!(
                err.to_string()
                    .ends_with("window is longer than the maximum, 100 years (3110400000 seconds)"),
                "{err}"
            );
        }
        assert_eq!(parse("1/100 years"), [(1, MAX_WINDOW_SECS)]);
        assert_eq!(parse("1/3110400000 seconds"), [(1, MAX_WINDOW_SECS)]);
        assert!(parse_many("1/3110400001 seconds").is_err());
        assert!(
            reject("10 second")
                .to_string()
                .contains("expected \"/\" or \"per\"")
        );
        assert!(reject("10/second x").to_string().contains("found \"x\""));
        assert!(reject("10/second:").to_string().contains("found the end"));
        assert!(reject("10/ſecond").to_string().contains("unknown unit"));
        assert!(reject("10/secondſ").to_string().contains("unknown unit"));
        assert!(reject("10/secondss").to_string().contains("unknown unit"));
        assert!(reject("10/").to_string().contains("found the end"));
        assert!(reject("٣/second").to_string().contains("whole number"));
    }

    #[test]
    fn durations_take_the_units_of_rates() {
        let secs = |s: &str| parse_duration_secs(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(secs("1 hour"), 3600);
        assert_eq!(secs("hour"), 3600);
        assert_eq!(secs(" 30 Minutes "), 1800);
        assert_eq!(secs("2days"), 2 * 86_400);
        assert_eq!(secs("100 years"), MAX_WINDOW_SECS);
        let err = |s: &str| parse_duration_secs(s).expect_err(s).to_string();
        assert_eq!(
            err("0 hours"),
            "invalid duration \"0 hours\" at byte 0: a duration must be at least one second"
        );
        assert_eq!(
            err("1 hour later"),
            "invalid duration \"1 hour later\" at byte 7: found \"l\"; expected the end after the unit"
        );
        assert!(err("").ends_with("empty; expected a duration such as \"1 hour\""));
        assert!(err("1 fortnight").contains("unknown unit \"fortnight\""));
        assert!(err("1.5 hours").contains("decimals"));
        assert!(err("-1 hour").contains("negative"));
        assert!(
            err("101 years")
                .ends_with("duration is longer than the maximum, 100 years (3110400000 seconds)")
        );
        assert!(err("18446744073709551616 seconds").contains("longer than the maximum"));
        assert!(err("1/hour").contains("found \"/\""));
    }

    #[test]
    fn one_rate_only_for_rate_from_str() {
        assert_eq!("5/minute".parse::<Rate>(), Ok(Rate::per_minute(5)));
        let err = "5/minute;1/second".parse::<Rate>().expect_err("two rates");
        assert!(
            err.to_string().contains("exactly one rate, found 2"),
            "{err}"
        );
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        for (secs, text) in [
            (1, "7/second"),
            (30, "7/30 seconds"),
            (90, "7/90 seconds"),
            (120, "7/2 minutes"),
            (86_400 * 7, "7/7 days"),
            (86_400 * 30, "7/month"),
            (86_400 * 360, "7/year"),
            (86_400 * 720, "7/2 years"),
        ] {
            let rate = Rate::new(7, Duration::from_secs(secs)).expect("valid window");
            assert_eq!(rate.to_string(), text);
            assert_eq!(text.parse::<Rate>(), Ok(rate));
        }
    }
}
