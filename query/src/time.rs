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
        return Ok(clamp_ms((seconds * 1000.0).round() as i64));
    }
    parse_rfc3339(value).map(clamp_ms).ok_or_else(bad)
}

/// The furthest from the epoch any time the APIs take may be, in ms (about
/// 142,000 years either way): far past any calendar a client means, near
/// enough that sums and differences of a few such times and durations never
/// overflow. Prometheus clamps the same way, to its own `minTime`/`maxTime`.
pub const MAX_TIME_MS: i64 = 1 << 52;

/// `ms` moved inside `±MAX_TIME_MS`.
pub fn clamp_ms(ms: i64) -> i64 {
    ms.clamp(-MAX_TIME_MS, MAX_TIME_MS)
}

/// `2018-02-02T18:43:08.221Z` or with a `+01:00` offset, in milliseconds.
fn parse_rfc3339(text: &str) -> Option<i64> {
    sextant_model::time::parse_rfc3339_micros(text).map(|us| us.div_euclid(1000))
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
    fn times_outside_any_calendar_are_clamped() {
        assert_eq!(parse_time("t", "1e300").unwrap(), MAX_TIME_MS);
        assert_eq!(parse_time("t", "-1e300").unwrap(), -MAX_TIME_MS);
        assert_eq!(parse_time("t", "9223372036854775807").unwrap(), MAX_TIME_MS);
    }

    #[test]
    fn bad_times_name_the_parameter() {
        for bad in ["", "yesterday", "2018-13-02T00:00:00Z", "NaN", "2018-02-02"] {
            let err = parse_time("start", bad).unwrap_err().to_string();
            assert!(err.contains("for start"), "{err}");
        }
    }
}
