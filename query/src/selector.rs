//! Series selectors as PromQL writes them: `up`, `up{job="node"}`,
//! `{__name__=~"node_.*", instance!="a"}`. Used by `match[]` parameters.

use sextant_model::{MatchOp, Matcher, is_valid_label_name};

use crate::{Error, Result};

/// Parses a series selector into matchers.
///
/// As in Prometheus, at least one matcher must reject the empty string, so a
/// selector cannot mean "every series" by accident.
pub fn parse_selector(text: &str) -> Result<Vec<Matcher>> {
    let bad = |why: String| Error::BadSelector {
        selector: text.to_owned(),
        reason: why,
    };
    let mut rest = text.trim();
    let mut matchers = Vec::new();
    let name_end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
    let name = &rest[..name_end.unwrap_or(rest.len())];
    if !name.is_empty() {
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(bad(format!("invalid metric name {name:?}")));
        }
        matchers.push(Matcher::new("__name__", MatchOp::Equal, name).map_err(bad)?);
        rest = rest[name.len()..].trim_start();
    }
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let label_end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .ok_or_else(|| bad("unterminated '{'".into()))?;
            let label = &rest[..label_end];
            if !is_valid_label_name(label) {
                return Err(bad(format!("expected a label name at {rest:?}")));
            }
            rest = rest[label_end..].trim_start();
            let op = [
                ("=~", MatchOp::Regex),
                ("!~", MatchOp::NotRegex),
                ("!=", MatchOp::NotEqual),
                ("=", MatchOp::Equal),
            ]
            .into_iter()
            .find(|(token, _)| rest.starts_with(token));
            let Some((token, op)) = op else {
                return Err(bad(format!("expected =, !=, =~ or !~ after {label}")));
            };
            rest = rest[token.len()..].trim_start();
            let (value, after) =
                parse_string(rest).map_err(|e| bad(format!("label {label}: {e}")))?;
            matchers.push(Matcher::new(label, op, value).map_err(bad)?);
            rest = after.trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err(bad(format!("expected ',' or '}}' after label {label}")));
            }
        }
    }
    if !rest.trim().is_empty() {
        return Err(bad(format!("unexpected {:?}", rest.trim())));
    }
    if matchers.is_empty() {
        return Err(bad("empty selector".into()));
    }
    if matchers.iter().all(Matcher::matches_empty) {
        return Err(bad(
            "a selector needs at least one matcher that does not match the empty string".into(),
        ));
    }
    Ok(matchers)
}

/// A PromQL string literal in double quotes, single quotes or backticks;
/// returns it unescaped and what follows it.
fn parse_string(text: &str) -> std::result::Result<(String, &str), String> {
    let quote = text
        .chars()
        .next()
        .filter(|c| matches!(c, '"' | '\'' | '`'))
        .ok_or("expected a quoted string")?;
    let body = &text[1..];
    if quote == '`' {
        let end = body.find('`').ok_or("unterminated string")?;
        return Ok((body[..end].to_owned(), &body[end + 1..]));
    }
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((out, &body[i + 1..])),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(c @ ('\\' | '"' | '\'')) => out.push(c),
                Some(other) => return Err(format!("unknown escape \\{other}")),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(text: &str) -> String {
        parse_selector(text)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn selectors_parse() {
        assert_eq!(show("up"), "__name__=\"up\"");
        assert_eq!(
            show("up{job=\"node\", instance!~'a.*',}"),
            "__name__=\"up\" job=\"node\" instance!~\"a.*\""
        );
        assert_eq!(show("{__name__=~`node_.*`}"), "__name__=~\"node_.*\"");
        assert_eq!(
            show(" job:rate5m { a = \"x\\\"y\" } "),
            "__name__=\"job:rate5m\" a=\"x\\\"y\""
        );
    }

    #[test]
    fn bad_selectors_say_why() {
        for (text, reason) in [
            ("", "empty selector"),
            ("{job=~\".*\"}", "does not match the empty string"),
            ("up{job=\"x\"", "expected ',' or '}'"),
            ("up{job}", "expected =, !=, =~ or !~"),
            ("up{job=x}", "expected a quoted string"),
            ("up{job=\"x}", "unterminated"),
            ("up[5m]", "unexpected \"[5m]\""),
            ("up{job=~\"(\"}", "invalid regex"),
            ("1up", "invalid metric name"),
        ] {
            let err = parse_selector(text).unwrap_err().to_string();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
