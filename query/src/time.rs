//! Times as every API takes them: RFC3339 or unix seconds (float), as Prometheus does.

use crate::{Error, Result};

/// Parses `value` (for parameter `param`) into milliseconds since the epoch.
pub fn parse_time(param: &str, value: &str) -> Result<i64> {
    let bad = || Error::BadTime {
        param: param.to_owned(),
        value: value.to_owned(),
    };
    if let Ok(seconds) = value.parse::<f64>() {
        if !seconds.is_finite() {
            return Err(bad());
        }
        return Ok((seconds * 1000.0).round() as i64);
    }
    parse_rfc3339(value).ok_or_else(bad)
}

/// `2018-02-02T18:43:08.221Z` or with a `+01:00` offset.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &frac[..digits.min(3)]);
        millis = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest[1..].split_once(':')?;
            sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_and_rfc3339() {
        assert_eq!(parse_time("t", "1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_time("t", "1700000000.123").unwrap(),
            1_700_000_000_123
        );
        assert_eq!(
            parse_time("t", "2018-02-02T18:43:08.221Z").unwrap(),
            1_517_596_988_221
        );
        assert_eq!(parse_time("t", "1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_time("t", "1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert_eq!(
            parse_time("t", "2000-03-01T00:00:00.5Z").unwrap(),
            951_868_800_500
        );
    }

    #[test]
    fn bad_times_name_the_parameter() {
        for bad in ["", "yesterday", "2018-13-02T00:00:00Z", "NaN", "2018-02-02"] {
            let err = parse_time("start", bad).unwrap_err().to_string();
            assert!(err.contains("for start"), "{err}");
        }
    }
}
