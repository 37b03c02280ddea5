//! Label matchers: `severity="critical"`, `job=~"api|db"`, `env!=prod`, as
//! PromQL selectors, Alertmanager routes and silences write them. Regexes are
//! anchored at both ends; an absent label matches as the empty string.

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
    pattern: Option<Pattern>,
}

/// A compiled regex, or the literal alternatives it is made of (`a|b|c`), which
/// are compared without running a regex at all.
#[derive(Debug, Clone)]
enum Pattern {
    Literals(Vec<String>),
    Regex(Regex),
}

impl Pattern {
    fn new(source: &str) -> Result<Self, regex::Error> {
        let is_literal = |s: &str| !s.chars().any(|c| "\\.+*?()[]{}^$|".contains(c));
        if source.split('|').all(is_literal) {
            // Still reject nothing a regex would accept: every literal is a valid regex.
            return Ok(Self::Literals(
                source.split('|').map(str::to_owned).collect(),
            ));
        }
        Regex::new(&format!("^(?s:{source})$")).map(Self::Regex)
    }

    fn is_match(&self, value: &str) -> bool {
        match self {
            Self::Literals(options) => options.iter().any(|o| o == value),
            Self::Regex(regex) => regex.is_match(value),
        }
    }
}

impl Matcher {
    /// A matcher; fails only on an invalid regex.
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Self, String> {
        let value = value.into();
        let pattern = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(Pattern::new(&value).map_err(|e| format!("invalid regex {value:?}: {e}"))?)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Self {
            name: name.into(),
            op,
            value,
            pattern,
        })
    }

    /// Whether a label value (empty when the label is absent) satisfies this matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.pattern.as_ref().is_some_and(|p| p.is_match(value)),
            MatchOp::NotRegex => !self.pattern.as_ref().is_some_and(|p| p.is_match(value)),
        }
    }

    /// Whether the empty string (an absent label) satisfies this matcher.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// The exact values this matcher accepts, when it is `=` or a regex of literals.
    pub fn set_matches(&self) -> Option<Vec<&str>> {
        match (&self.op, &self.pattern) {
            (MatchOp::Equal, _) => Some(vec![self.value.as_str()]),
            (MatchOp::Regex, Some(Pattern::Literals(options))) => {
                Some(options.iter().map(String::as_str).collect())
            }
            _ => None,
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
        if !crate::is_valid_label_name(name) {
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
        Self::new(name, op, value).map_err(|e| bad(&e))
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
        crate::de::from_str(deserializer)
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
    fn literal_alternations_take_the_fast_path_with_regex_semantics() {
        let m = Matcher::new("job", MatchOp::Regex, "api|db").unwrap();
        assert_eq!(m.set_matches(), Some(vec!["api", "db"]));
        assert!(m.matches("db") && !m.matches("dbx") && !m.matches(""));
        let m = Matcher::new("job", MatchOp::Regex, "api|").unwrap();
        assert!(m.matches_empty());
        let m = Matcher::new("job", MatchOp::Regex, "a.*").unwrap();
        assert_eq!(m.set_matches(), None);
        assert!(m.matches("abc") && !m.matches("xa"));
        let m = Matcher::new("job", MatchOp::NotRegex, "api|db").unwrap();
        assert!(!m.matches("api") && m.matches("web"));
    }

    #[test]
    fn rejects_malformed_matchers() {
        for (text, reason) in [
            ("severity", "expected name=value"),
            ("1abc=x", "not a valid label name"),
            ("a=\"x", "unterminated"),
            ("a=~\"(\"", "invalid regex"),
            ("a=~\"x|(\"", "invalid regex"),
            ("a!x", "expected =, !=, =~ or !~"),
        ] {
            let err = text.parse::<Matcher>().unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
