//! Label matchers as Alertmanager writes them in routes: `severity="critical"`,
//! `job=~"api|db"`, `env!=prod`.

use std::fmt;
use std::str::FromStr;

use regex::Regex;
use serde::{Deserialize, Deserializer};

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`, anchored at both ends.
    Regex,
    /// `!~`, anchored at both ends.
    NotRegex,
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value or the pattern, as written (unquoted).
    pub value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Whether a label value (empty when the label is absent) satisfies this matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            MatchOp::NotRegex => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }
}

impl FromStr for Matcher {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| format!("invalid matcher {text:?}: {reason}");
        let text_trimmed = text.trim();
        let op_at = text_trimmed
            .find(['=', '!'])
            .ok_or_else(|| bad("expected name=value, name!=value, name=~regex or name!~regex"))?;
        let name = text_trimmed[..op_at].trim();
        let rest = &text_trimmed[op_at..];
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchOp::Regex, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchOp::Equal, v)
        } else {
            return Err(bad("expected =, !=, =~ or !~ after the label name"));
        };
        if !sextant_model::is_valid_label_name(name) {
            return Err(bad(&format!("{name:?} is not a valid label name")));
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(inner) => inner
                .strip_suffix('"')
                .ok_or_else(|| bad("unterminated quoted value"))?
                .replace("\\\"", "\"")
                .replace("\\\\", "\\"),
            None => value.to_owned(),
        };
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?s:{value})$"))
                    .map_err(|e| bad(&format!("invalid regex: {e}")))?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Self {
            name: name.to_owned(),
            op,
            value,
            regex,
        })
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        };
        write!(f, "{}{op}{:?}", self.name, self.value)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        sextant_model::de::from_str(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_operator_quoted_or_not() {
        let m: Matcher = "severity=\"critical\"".parse().unwrap();
        assert_eq!(
            (m.name.as_str(), m.op, m.value.as_str()),
            ("severity", MatchOp::Equal, "critical")
        );
        assert!(m.matches("critical") && !m.matches("warning"));
        let m: Matcher = "env != prod".parse().unwrap();
        assert_eq!(m.op, MatchOp::NotEqual);
        assert!(m.matches("dev") && !m.matches("prod"));
        let m: Matcher = "job=~\"api|db\"".parse().unwrap();
        assert!(m.matches("api") && !m.matches("api2"));
        let m: Matcher = "job!~api.*".parse().unwrap();
        assert!(m.matches("db") && !m.matches("api-1"));
        assert_eq!(m.to_string(), "job!~\"api.*\"");
    }

    #[test]
    fn rejects_malformed_matchers() {
        for (text, reason) in [
            ("severity", "expected name=value"),
            ("1abc=x", "not a valid label name"),
            ("a=\"x", "unterminated"),
            ("a=~\"(\"", "invalid regex"),
            ("a!x", "expected =, !=, =~ or !~"),
        ] {
            let err = text.parse::<Matcher>().unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
