//! Durations as Prometheus writes them in its configuration: `500ms`, `15s`,
//! `1h30m`, `7d`, `2w`, `1y`, or `0`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative span of time, parsed from and printed as a Prometheus duration string.
///
/// Units must appear largest first and at most once (`1h30m`, not `30m1h`), as in
/// Prometheus's `model.ParseDuration`. A year is 365 days and a week 7 days.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromDuration(Duration);

/// Why a string is not a Prometheus duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected e.g. 500ms, 15s, 5m, 2h, 7d)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

impl PromDuration {
    /// Wraps a standard duration (sub-millisecond precision is dropped when printed).
    pub const fn new(duration: Duration) -> Self {
        Self(duration)
    }

    /// A duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// The standard-library duration.
    pub const fn as_std(self) -> Duration {
        self.0
    }

    /// Whole milliseconds.
    pub fn as_millis(self) -> u64 {
        u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether this is the zero duration.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<PromDuration> for Duration {
    fn from(d: PromDuration) -> Self {
        d.0
    }
}

impl FromStr for PromDuration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError {
            input: input.to_owned(),
            reason,
        };
        if input.is_empty() {
            return Err(err("empty string"));
        }
        if input == "0" {
            return Ok(Self::default());
        }
        let mut rest = input;
        let mut total: u64 = 0;
        // Index into UNITS of the last unit seen: each unit must be smaller than the previous.
        let mut last_unit: Option<usize> = None;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err("a number must come before each unit"));
            }
            let number: u64 = rest[..digits]
                .parse()
                .map_err(|_| err("number too large"))?;
            rest = &rest[digits..];
            let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..letters];
            rest = &rest[letters..];
            let Some(index) = UNITS.iter().position(|(name, _)| *name == unit) else {
                return Err(if unit.is_empty() {
                    err("missing unit (one of ms, s, m, h, d, w, y)")
                } else {
                    err("unknown unit (one of ms, s, m, h, d, w, y)")
                });
            };
            if last_unit.is_some_and(|last| index <= last) {
                return Err(err(
                    "units must go from largest to smallest, each at most once",
                ));
            }
            last_unit = Some(index);
            total = number
                .checked_mul(UNITS[index].1)
                .and_then(|ms| total.checked_add(ms))
                .ok_or_else(|| err("duration too large"))?;
        }
        Ok(Self(Duration::from_millis(total)))
    }
}

impl fmt::Display for PromDuration {
    /// Prints the canonical Prometheus form: `1h30m`, `1500ms` as `1s500ms`, zero as `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (name, size) in UNITS {
            // Prometheus prints weeks and years only when they divide evenly.
            if (name == "y" || name == "w") && !ms.is_multiple_of(size) {
                continue;
            }
            if ms >= size {
                write!(f, "{}{name}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::de::from_str(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> u64 {
        text.parse::<PromDuration>().unwrap().as_millis()
    }

    #[test]
    fn parses_every_prometheus_unit() {
        assert_eq!(ms("500ms"), 500);
        assert_eq!(ms("15s"), 15_000);
        assert_eq!(ms("5m"), 300_000);
        assert_eq!(ms("2h"), 7_200_000);
        assert_eq!(ms("7d"), 604_800_000);
        assert_eq!(ms("2w"), 1_209_600_000);
        assert_eq!(ms("1y"), 31_536_000_000);
        assert_eq!(ms("1h30m"), 5_400_000);
        assert_eq!(ms("1m30s500ms"), 90_500);
        assert_eq!(ms("0"), 0);
        assert_eq!(ms("0s"), 0);
    }

    #[test]
    fn rejects_malformed_durations_with_a_reason() {
        for (input, reason) in [
            ("", "empty"),
            ("15", "missing unit"),
            ("15x", "unknown unit"),
            ("m", "number must come"),
            ("30m1h", "largest to smallest"),
            ("1s1s", "largest to smallest"),
            ("-5s", "number must come"),
            ("1.5s", "missing unit"),
            ("99999999999999999999s", "too large"),
            ("999999999999y", "too large"),
        ] {
            let err = input.parse::<PromDuration>().unwrap_err().to_string();
            assert!(err.contains(reason), "{input:?}: {err}");
            assert!(err.contains(&format!("{input:?}")), "{input:?}: {err}");
        }
    }

    #[test]
    fn prints_canonical_form_that_parses_back() {
        for (input, printed) in [
            ("90s", "1m30s"),
            ("1500ms", "1s500ms"),
            ("14d", "2w"),
            ("10d", "10d"),
            ("21d", "3w"),
            ("0", "0s"),
            ("365d", "1y"),
        ] {
            let d: PromDuration = input.parse().unwrap();
            assert_eq!(d.to_string(), printed);
            assert_eq!(printed.parse::<PromDuration>().unwrap(), d);
        }
    }

    #[test]
    fn deserializes_from_a_string() {
        let d: PromDuration = serde_json::from_str("\"1m\"").unwrap();
        assert_eq!(d.as_std(), Duration::from_secs(60));
        let err = serde_json::from_str::<PromDuration>("\"1q\"").unwrap_err();
        assert!(err.to_string().contains("unknown unit"), "{err}");
    }
}
