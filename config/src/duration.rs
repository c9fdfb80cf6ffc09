//! Human-readable durations: `"100ms"`, `"30s"`, `"5m"`, `"1h"`, `"1d"`, `"2w"`, `"1h30m"`.
//!
//! The config uses these for window names, block durations and intervals, and the
//! control socket uses them for operator commands (`block --duration 2h`), so the
//! parser and the formatter live here and round-trip: `parse_duration(&format_duration(d)) == d`.

use std::fmt::Write as _;
use std::time::Duration;

/// Why a duration string was rejected. The message shows the text and the accepted form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration: {reason}; write a number and a unit (ms, s, m, h, d, w), e.g. \"30s\", \"5m\" or \"1h30m\"")]
pub struct DurationError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Units accepted by [`parse_duration`], longest suffix first so `ms` wins over `m`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
    ("d", 86_400 * 1_000_000_000),
    ("w", 7 * 86_400 * 1_000_000_000),
];

/// Parses a duration such as `"100ms"`, `"30s"`, `"5m"`, `"1h"`, `"1d"`, `"2w"`.
///
/// One or more `<integer><unit>` groups are summed (`"1h30m"`); units are `ns`, `us`,
/// `ms`, `s`, `m`, `h`, `d` (24 h) and `w` (7 d). A bare `"0"` is zero. No spaces,
/// no signs, no fractions. Errors say what is wrong and show the accepted form.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let fail = |reason| DurationError {
        text: text.to_owned(),
        reason,
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(fail("it is empty"));
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(fail("expected a number"));
        }
        let number: u128 = rest[..digits]
            .parse()
            .map_err(|_| fail("number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        if unit_len == 0 {
            return Err(fail("a number needs a unit"));
        }
        let unit = &rest[..unit_len];
        let nanos_per = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, n)| *n)
            .ok_or_else(|| fail("unknown unit"))?;
        rest = &rest[unit_len..];
        total = number
            .checked_mul(nanos_per)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| fail("too long"))?;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| fail("too long"))?;
    // The remainder is below 1e9, so it fits a u32.
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Formats a duration in the form [`parse_duration`] reads, using the largest units
/// first: `1h30m`, `100ms`, `7d`, `0s`. Weeks are written as days (`14d`), which
/// is how operators usually say it.
pub fn format_duration(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".to_owned();
    }
    let mut rest = duration.as_nanos();
    let mut out = String::new();
    // Skip `w` (last entry): days read better.
    for (name, nanos_per) in UNITS[..UNITS.len() - 1].iter().rev() {
        let count = rest / nanos_per;
        if count > 0 {
            let _ = write!(out, "{count}{name}");
            rest -= count * nanos_per;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn parses_compound() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "1.5h",
            "-1s",
            "+1s",
            " 5m",
            "5m ",
            "5 m",
            "1h 30m",
            "5M",
            "99999999999999999999999999999999999999999w",
            "18446744073709551616s",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.to_string().contains("not a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn formats_and_round_trips() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::new(1, 1)), "1s1ns");
        for text in ["5m", "1h", "1d", "100ms", "2h5m3s", "30d"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), text);
        }
        for d in [
            Duration::new(123_456, 789_012_345),
            Duration::from_secs(u64::MAX),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
