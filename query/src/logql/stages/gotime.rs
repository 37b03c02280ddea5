//! Go's time formatting, for templates: `time.Time.String()` and layouts
//! such as `2006-01-02T15:04:05.000Z07:00`, always in UTC (the zone a Loki
//! server runs in unless told otherwise).

use sextant_model::time::{civil_from_days, days_from_civil};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A moment broken into its UTC calendar fields.
struct Civil {
    year: i64,
    /// 1..=12
    month: usize,
    /// 1..=31
    day: i64,
    /// 1..=366
    yday: i64,
    /// 0 = Sunday
    weekday: usize,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: i64,
}

fn civil(ns: i64) -> Civil {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month: month as usize,
        day,
        yday: days - days_from_civil(year, 1, 1) + 1,
        weekday: (days + 4).rem_euclid(7) as usize,
        hour: sod / 3600,
        minute: sod % 3600 / 60,
        second: sod % 60,
        nanos,
    }
}

/// Seconds since the epoch of a time in nanoseconds (rounded down, as Go's
/// `Unix()` does).
pub(super) fn unix_seconds(ns: i64) -> i64 {
    ns.div_euclid(1_000_000_000)
}

/// Go's `time.Time.String()` in UTC: `2006-01-02 15:04:05.999999999 +0000 UTC`.
pub(super) fn time_string(ns: i64) -> String {
    format_layout(ns, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// One element of a Go layout.
#[derive(Clone, Copy)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    Pm,
    PmLower,
    Tz,
    /// A numeric offset (`-0700` and kin), written as it appears with `+00`.
    NumTz(&'static str),
    /// An ISO 8601 offset (`Z07:00` and kin): `Z` in UTC.
    IsoTz,
    /// Fractional seconds: the separator, the digit count, and whether
    /// trailing zeros are trimmed (`.999`) or kept (`.000`).
    Frac(u8, usize, bool),
}

/// Finds the next layout element at or after the start of `layout`:
/// `(literal text before it, the element, the rest)`.
fn next_std(layout: &str) -> (&str, Option<Std>, &str) {
    let b = layout.as_bytes();
    let at = |i: usize, s: &str| layout[i..].starts_with(s);
    for i in 0..b.len() {
        let found: Option<(Std, usize)> = match b[i] {
            b'J' if at(i, "January") => Some((Std::LongMonth, 7)),
            b'J' if at(i, "Jan") => Some((Std::Month, 3)),
            b'M' if at(i, "Monday") => Some((Std::LongWeekDay, 6)),
            b'M' if at(i, "Mon") => Some((Std::WeekDay, 3)),
            b'M' if at(i, "MST") => Some((Std::Tz, 3)),
            b'0' if at(i, "002") => Some((Std::ZeroYearDay, 3)),
            b'0' if i + 1 < b.len() && (b'1'..=b'6').contains(&b[i + 1]) => Some((
                [
                    Std::ZeroMonth,
                    Std::ZeroDay,
                    Std::ZeroHour12,
                    Std::ZeroMinute,
                    Std::ZeroSecond,
                    Std::Year,
                ][usize::from(b[i + 1] - b'1')],
                2,
            )),
            b'1' if at(i, "15") => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if at(i, "2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            b'_' if at(i, "_2006") => {
                // A literal `_` before a long year.
                return (&layout[..i + 1], Some(Std::LongYear), &layout[i + 5..]);
            }
            b'_' if at(i, "__2") => Some((Std::UnderYearDay, 3)),
            b'_' if at(i, "_2") => Some((Std::UnderDay, 2)),
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if at(i, "PM") => Some((Std::Pm, 2)),
            b'p' if at(i, "pm") => Some((Std::PmLower, 2)),
            b'-' => ["-070000", "-07:00:00", "-0700", "-07:00", "-07"]
                .into_iter()
                .find(|s| at(i, s))
                .map(|s| {
                    let text = match s {
                        "-070000" => "+000000",
                        "-07:00:00" => "+00:00:00",
                        "-0700" => "+0000",
                        "-07:00" => "+00:00",
                        _ => "+00",
                    };
                    (Std::NumTz(text), s.len())
                }),
            b'Z' => ["Z070000", "Z07:00:00", "Z0700", "Z07:00", "Z07"]
                .into_iter()
                .find(|s| at(i, s))
                .map(|s| (Std::IsoTz, s.len())),
            sep @ (b'.' | b',') if i + 1 < b.len() && (b[i + 1] == b'0' || b[i + 1] == b'9') => {
                let digit = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == digit {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    None
                } else {
                    Some((Std::Frac(sep, j - i - 1, digit == b'9'), j - i))
                }
            }
            _ => None,
        };
        if let Some((std, len)) = found {
            return (&layout[..i], Some(std), &layout[i + len..]);
        }
    }
    (layout, None, "")
}

fn pad(out: &mut String, v: i64, width: usize, fill: char) {
    let s = v.unsigned_abs().to_string();
    if v < 0 {
        out.push('-');
    }
    for _ in s.len()..width {
        out.push(fill);
    }
    out.push_str(&s);
}

/// Formats a time (nanoseconds since the epoch) with a Go layout, in UTC.
pub(super) fn format_layout(ns: i64, layout: &str) -> String {
    let c = civil(ns);
    let mut out = String::with_capacity(layout.len() + 10);
    let mut rest = layout;
    loop {
        let (literal, std, after) = next_std(rest);
        out.push_str(literal);
        let Some(std) = std else { break };
        rest = after;
        match std {
            Std::LongMonth => out.push_str(MONTHS[c.month - 1]),
            Std::Month => out.push_str(&MONTHS[c.month - 1][..3]),
            Std::NumMonth => pad(&mut out, c.month as i64, 0, '0'),
            Std::ZeroMonth => pad(&mut out, c.month as i64, 2, '0'),
            Std::LongWeekDay => out.push_str(DAYS[c.weekday]),
            Std::WeekDay => out.push_str(&DAYS[c.weekday][..3]),
            Std::Day => pad(&mut out, c.day, 0, '0'),
            Std::UnderDay => pad(&mut out, c.day, 2, ' '),
            Std::ZeroDay => pad(&mut out, c.day, 2, '0'),
            Std::UnderYearDay => pad(&mut out, c.yday, 3, ' '),
            Std::ZeroYearDay => pad(&mut out, c.yday, 3, '0'),
            Std::Hour => pad(&mut out, c.hour, 2, '0'),
            Std::Hour12 | Std::ZeroHour12 => {
                let h = match c.hour % 12 {
                    0 => 12,
                    h => h,
                };
                let width = if matches!(std, Std::ZeroHour12) { 2 } else { 0 };
                pad(&mut out, h, width, '0');
            }
            Std::Minute => pad(&mut out, c.minute, 0, '0'),
            Std::ZeroMinute => pad(&mut out, c.minute, 2, '0'),
            Std::Second => pad(&mut out, c.second, 0, '0'),
            Std::ZeroSecond => pad(&mut out, c.second, 2, '0'),
            Std::LongYear => pad(&mut out, c.year, 4, '0'),
            Std::Year => pad(&mut out, c.year.rem_euclid(100), 2, '0'),
            Std::Pm => out.push_str(if c.hour >= 12 { "PM" } else { "AM" }),
            Std::PmLower => out.push_str(if c.hour >= 12 { "pm" } else { "am" }),
            Std::Tz => out.push_str("UTC"),
            Std::NumTz(text) => out.push_str(text),
            Std::IsoTz => out.push('Z'),
            Std::Frac(sep, digits, trim) => {
                let all = format!("{:09}", c.nanos);
                let mut frac = &all[..digits.min(9)];
                if trim {
                    frac = frac.trim_end_matches('0');
                    if frac.is_empty() {
                        continue;
                    }
                }
                out.push(sep as char);
                out.push_str(frac);
            }
        }
    }
    out
}
