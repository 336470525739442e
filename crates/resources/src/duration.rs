//! Durations as Paddock's fields and flags write them (`90s`, `15m`, `2h`,
//! `1h30m`, `1d`), with one ceiling for all of them.
//!
//! Tenants type durations (an instance's `ttl`, a renewal), and whatever is
//! read back is added to timestamps by the API and the reconcilers. So a
//! duration that is read is never longer than [`LONGEST`] (ten years: far
//! beyond any lifetime anyone means, far below where a timestamp overflows),
//! and one that is accepted is refused above the bound its field has, by
//! [`within`], naming the field.

use crate::FieldProblem;
use std::time::Duration;

/// The longest duration Paddock reads or accepts anywhere: 3650 days.
pub const LONGEST: Duration = Duration::from_secs(3650 * 86_400);

/// What is wrong with a duration as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Not `<number><unit>...` with units s, m, h, d.
    NotADuration,
    /// Well-formed, but zero (`0s`, `0h0m`).
    Zero,
    /// Well-formed, but longer than [`LONGEST`].
    TooLong,
}

/// Parses a duration exactly: too long (however many digits) is
/// [`Malformed::TooLong`], never an overflow.
pub fn parse_exact(s: &str) -> Result<Duration, Malformed> {
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut any = false;
    let mut too_long = false;
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(Malformed::NotADuration),
        };
        if num.is_empty() {
            return Err(Malformed::NotADuration);
        }
        // A number too large for u64 is a well-formed, too long duration.
        match num.parse::<u64>().ok().and_then(|n| n.checked_mul(unit)).and_then(|n| total.checked_add(n)) {
            Some(t) => total = t,
            None => too_long = true,
        }
        num.clear();
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(Malformed::NotADuration);
    }
    if too_long || total > LONGEST.as_secs() {
        return Err(Malformed::TooLong);
    }
    if total == 0 {
        return Err(Malformed::Zero);
    }
    Ok(Duration::from_secs(total))
}

/// Reads a stored duration: well-formed ones longer than [`LONGEST`] read
/// as [`LONGEST`] (an object written before a bound existed, or past it, can
/// never make a timestamp overflow); malformed ones read as `None`.
pub fn parse(s: &str) -> Option<Duration> {
    match parse_exact(s) {
        Ok(d) => Some(d),
        Err(Malformed::TooLong) => Some(LONGEST),
        Err(Malformed::NotADuration | Malformed::Zero) => None,
    }
}

/// Writes a duration the way people write one: the largest unit that
/// divides it (`7d`, `90m`, `45s`).
pub fn format(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, secs) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s > 0 && s.is_multiple_of(secs) {
            return format!("{}{unit}", s / secs);
        }
    }
    format!("{s}s")
}

/// Checks the duration `raw` given for `field`: well-formed and at most
/// `max` (which says why in `bound`, e.g. "the template's maxTtl 6h").
pub fn within(field: &str, raw: &str, max: Duration, bound: &str) -> Result<Duration, FieldProblem> {
    let over = || FieldProblem::new(field, format!("{raw} is longer than {bound}"));
    match parse_exact(raw) {
        Ok(d) if d > max => Err(over()),
        Ok(d) => Ok(d),
        Err(Malformed::TooLong) => Err(over()),
        Err(Malformed::Zero) => Err(FieldProblem::new(field, format!("{raw} is zero; a duration must be longer"))),
        Err(Malformed::NotADuration) => {
            Err(FieldProblem::new(field, format!("{raw:?} is not a duration (like 90s, 15m, 2h, 1h30m, 1d)")))
        }
    }
}

/// The bound every duration field has at least: [`LONGEST`], in words.
pub fn longest_bound() -> String {
    format!("the longest duration Paddock accepts, {}", format(LONGEST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_stay_bounded() {
        assert_eq!(parse("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse("1d"), Some(Duration::from_secs(86_400)));
        for bad in ["", "10", "h", "1x", "0s", "1h-", "s1", "1 h"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        // However large, a read duration is at most LONGEST, and exactness says so.
        for huge in ["999999999h", "18446744073709551615s", "99999999999999999999999999d", "3651d"] {
            assert_eq!(parse(huge), Some(LONGEST), "{huge}");
            assert_eq!(parse_exact(huge), Err(Malformed::TooLong), "{huge}");
        }
        assert_eq!(parse_exact("3650d"), Ok(LONGEST));
    }

    #[test]
    fn a_checked_duration_names_its_field_and_bound() {
        let week = Duration::from_secs(7 * 86_400);
        assert_eq!(within("ttl", "2h", week, "7d"), Ok(Duration::from_secs(7200)));
        let e = within("ttl", "999999999h", week, "the installation's longest instance ttl, 7d").unwrap_err();
        assert_eq!(e.to_string(), "ttl: 999999999h is longer than the installation's longest instance ttl, 7d");
        assert!(within("ttl", "soon", week, "7d").unwrap_err().reason.contains("not a duration"));
        assert_eq!(within("ttl", "0s", week, "7d").unwrap_err().reason, "0s is zero; a duration must be longer");
    }

    #[test]
    fn durations_are_written_in_their_largest_unit() {
        assert_eq!(format(LONGEST), "3650d");
        assert_eq!(format(Duration::from_secs(5400)), "90m");
        assert_eq!(format(Duration::from_secs(61)), "61s");
        assert_eq!(format(Duration::from_secs(7200)), "2h");
    }
}
