//! Calendar arithmetic for timestamps shown to people: proleptic Gregorian
//! dates from day counts and RFC 3339 text in UTC.

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `2017-01-17T15:07:44.723715405Z` for nanoseconds since the epoch; the
/// fraction has as many digits as `digits` (0 to 9).
pub fn rfc3339_utc(unix_nanos: i128, digits: u32) -> String {
    let secs = unix_nanos.div_euclid(1_000_000_000) as i64;
    let nanos = unix_nanos.rem_euclid(1_000_000_000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let mut out = format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    );
    let digits = digits.min(9);
    if digits > 0 {
        let fraction = nanos / 10u32.pow(9 - digits);
        out.push_str(&format!(".{fraction:0width$}", width = digits as usize));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since the epoch of an RFC 3339 time: `2018-02-02T18:43:08.221Z`,
/// `+01:00` or `+0100` offsets; without an offset the time is taken as UTC
/// (as loggers that write local-less ISO times mean it). Digits beyond
/// microseconds are dropped.
pub fn parse_rfc3339_micros(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| {
        let part = text.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse::<i64>().ok())?
    };
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
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix(['.', ',']) {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<6}", &frac[..digits.min(6)]);
        micros = padded.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_minutes = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = &rest[1..];
            let (h, m) = zone.split_once(':').or_else(|| {
                (zone.len() == 4)
                    .then(|| zone.split_at_checked(2))
                    .flatten()
            })?;
            // A longer offset is no time zone (and would overflow).
            let digits = |t: &str, n: std::ops::RangeInclusive<usize>| {
                n.contains(&t.len()) && t.bytes().all(|c| c.is_ascii_digit())
            };
            if !digits(h, 1..=2) || !digits(m, 2..=2) {
                return None;
            }
            sign * (h.parse::<i64>().ok()? * 60 + m.parse::<i64>().ok()?)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_the_asked_precision() {
        assert_eq!(rfc3339_utc(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_utc(1_484_665_664_723_715_405, 9),
            "2017-01-17T15:07:44.723715405Z"
        );
        assert_eq!(
            rfc3339_utc(1_484_665_664_723_715_405, 6),
            "2017-01-17T15:07:44.723715Z"
        );
        assert_eq!(rfc3339_utc(-1_000_000_000, 3), "1969-12-31T23:59:59.000Z");
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(days_from_civil(2024, 1, 1), 19_723);
    }

    #[test]
    fn parses_rfc3339_to_microseconds() {
        assert_eq!(
            parse_rfc3339_micros("2018-02-02T18:43:08.221Z"),
            Some(1_517_596_988_221_000)
        );
        assert_eq!(
            parse_rfc3339_micros("2018-02-02T18:43:08.221123456+00:00"),
            Some(1_517_596_988_221_123)
        );
        assert_eq!(parse_rfc3339_micros("1970-01-01T01:00:00+0100"), Some(0));
        assert_eq!(parse_rfc3339_micros("1970-01-01T00:00:01"), Some(1_000_000));
        assert_eq!(
            parse_rfc3339_micros("1970-01-01 00:00:01,5"),
            Some(1_500_000)
        );
        for bad in [
            "",
            "2018-13-02T00:00:00Z",
            "2018-02-02",
            "2018-02-02T00:00:00X",
            "2018-02-02T00:00:00+1000000000000:00",
            "2018-02-02T00:00:00-+1:00",
            // A four-byte zone that is not four characters (found by the
            // syslog fuzz target: it once sliced inside the BOM).
            "2025-03-15T12:00:00.5+\u{feff})",
            "2025-03-15T12:00:00+1\u{e9}1",
        ] {
            assert_eq!(parse_rfc3339_micros(bad), None, "{bad}");
        }
    }
}
