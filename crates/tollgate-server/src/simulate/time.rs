//! The timestamps of access logs, as nanoseconds since the Unix epoch: nginx's
//! `$time_local` (`10/Oct/2000:13:55:36 -0700`), RFC 3339 (`2000-10-10T20:55:36.5Z`) and
//! epoch numbers (seconds, milliseconds, microseconds or nanoseconds, told apart by size).

/// Nanoseconds in a second.
const NANOS: i64 = 1_000_000_000;

/// Days from 1970-01-01 to the date `year-month-day` (proleptic Gregorian; Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The number written in `digits` (ASCII digits only, at most 18 of them).
fn number(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    digits.iter().try_fold(0i64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
    })
}

/// Seconds since the epoch of a date and time of day, checked for range.
fn civil_seconds(date: (i64, i64, i64), time: (i64, i64, i64)) -> Option<i64> {
    let (year, month, day) = date;
    let (hour, minute, second) = time;
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second <= 60;
    valid.then(|| days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// A `+HHMM`, `-HH:MM` or `Z` offset, in seconds east of UTC.
fn offset(text: &[u8]) -> Option<i64> {
    let (sign, rest) = match text.split_first()? {
        (b'Z' | b'z', []) => return Some(0),
        (b'+', rest) => (1, rest),
        (b'-', rest) => (-1, rest),
        _ => return None,
    };
    let (hours, minutes) = match rest {
        [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (number(&[*h1, *h2])?, number(&[*m1, *m2])?),
        _ => return None,
    };
    (hours < 24 && minutes < 60).then_some(sign * (hours * 3600 + minutes * 60))
}

/// nginx's `$time_local`: `10/Oct/2000:13:55:36 -0700`, in nanoseconds since the epoch.
pub(crate) fn time_local(text: &[u8]) -> Option<u64> {
    if text.len() != 26 || text[2] != b'/' || text[6] != b'/' || text[11] != b':' {
        return None;
    }
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let month = MONTHS.iter().position(|name| name[..] == text[3..6])? as i64 + 1;
    let [h1, h2, b':', m1, m2, b':', s1, s2, b' '] = text[12..21] else {
        return None;
    };
    let seconds = civil_seconds(
        (number(&text[7..11])?, month, number(&text[..2])?),
        (number(&[h1, h2])?, number(&[m1, m2])?, number(&[s1, s2])?),
    )?;
    nanos(seconds - offset(&text[21..])?, 0)
}

/// RFC 3339 (`2000-10-10T20:55:36Z`, `2000-10-10 20:55:36.250+02:00`), in nanoseconds since
/// the epoch.
pub(crate) fn rfc3339(text: &[u8]) -> Option<u64> {
    if text.len() < 20 || text[4] != b'-' || text[7] != b'-' || text[13] != b':' {
        return None;
    }
    if !matches!(text[10], b'T' | b't' | b' ') || text[16] != b':' {
        return None;
    }
    let seconds = civil_seconds(
        (
            number(&text[..4])?,
            number(&text[5..7])?,
            number(&text[8..10])?,
        ),
        (
            number(&text[11..13])?,
            number(&text[14..16])?,
            number(&text[17..19])?,
        ),
    )?;
    let mut rest = &text[19..];
    let mut fraction = 0;
    if let [b'.', tail @ ..] = rest {
        let digits = tail.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        // Nanoseconds: the first nine digits, padded.
        let kept = &tail[..digits.min(9)];
        fraction = number(kept)? * 10i64.pow(9 - kept.len() as u32);
        rest = &tail[digits..];
    }
    nanos(seconds - offset(rest)?, fraction)
}

/// An epoch number: seconds (with a fraction or not), or milliseconds, microseconds or
/// nanoseconds once too large to be seconds (from 10^11, 10^14, 10^17: years after 5000).
pub(crate) fn epoch(value: f64) -> Option<u64> {
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let scale = if value >= 1e17 {
        1.0
    } else if value >= 1e14 {
        1e3
    } else if value >= 1e11 {
        1e6
    } else {
        1e9
    };
    let nanos = value * scale;
    // Exact below 2^53 ns (104 days) only: keep whole seconds apart from the fraction.
    if scale == 1e9 {
        let whole = value.trunc();
        return Some((whole as u64) * 1_000_000_000 + ((value - whole) * 1e9).round() as u64);
    }
    (nanos < u64::MAX as f64).then_some(nanos as u64)
}

/// An epoch number written as text (`1700000000`, `1700000000.123`), as [`epoch`] reads it.
pub(crate) fn epoch_text(text: &[u8]) -> Option<u64> {
    let (whole, fraction) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    let whole = number(whole)?;
    if fraction.is_empty() {
        return epoch(whole as f64);
    }
    let kept = &fraction[..fraction.len().min(9)];
    if fraction.iter().any(|b| !b.is_ascii_digit()) {
        return None;
    }
    let fraction = number(kept)? * 10i64.pow(9 - kept.len() as u32);
    if whole >= 100_000_000_000 {
        // Fractions of milliseconds and below: precision enough as a float.
        return epoch(whole as f64 + fraction as f64 / 1e9);
    }
    nanos(whole, fraction)
}

/// `nanos` since the epoch in RFC 3339, to the millisecond: `2000-10-10T20:55:36.250Z`.
pub(crate) fn format(nanos: u64) -> String {
    let seconds = (nanos / 1_000_000_000) as i64;
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        nanos / 1_000_000 % 1000
    )
}

/// `seconds` and `fraction` nanoseconds after the epoch, if not before it.
fn nanos(seconds: i64, fraction: i64) -> Option<u64> {
    u64::try_from(seconds.checked_mul(NANOS)?.checked_add(fraction)?).ok()
}

#[cfg(test)]
mod tests {
    use super::{epoch, epoch_text, format, rfc3339, time_local};

    #[test]
    fn formats_agree_on_one_instant() {
        // 2000-10-10T20:55:36Z
        let expected = 971_211_336 * 1_000_000_000;
        assert_eq!(time_local(b"10/Oct/2000:13:55:36 -0700"), Some(expected));
        assert_eq!(rfc3339(b"2000-10-10T20:55:36Z"), Some(expected));
        assert_eq!(rfc3339(b"2000-10-10 22:55:36+02:00"), Some(expected));
        assert_eq!(
            rfc3339(b"2000-10-10T20:55:36.25Z"),
            Some(expected + 250_000_000)
        );
        assert_eq!(epoch(971_211_336.0), Some(expected));
        assert_eq!(epoch(971_211_336_000.0), Some(expected));
        assert_eq!(epoch_text(b"971211336.5"), Some(expected + 500_000_000));
        assert_eq!(epoch_text(b"971211336000"), Some(expected));
        assert_eq!(format(expected + 250_000_000), "2000-10-10T20:55:36.250Z");
        assert_eq!(
            format(951_782_400 * 1_000_000_000),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn nonsense_is_refused() {
        for text in [
            &b"10/Foo/2000:13:55:36 -0700"[..],
            b"10/Oct/2000:25:55:36 -0700",
            b"10/Oct/2000:13:55:36 +07",
            b"2000-13-10T20:55:36Z",
            b"2000-10-10T20:55:36",
            b"2000-10-10T20:55:36.Z",
        ] {
            assert_eq!(
                time_local(text).or(rfc3339(text)),
                None,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        assert_eq!(epoch(-1.0), None);
        assert_eq!(epoch_text(b"12x"), None);
    }
}
