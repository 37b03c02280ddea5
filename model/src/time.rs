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
    }
}
