//! The Prometheus text exposition format (0.0.4, and OpenMetrics' `# EOF`,
//! `# UNIT`): what scrapes return and what `POST /api/v1/import/prometheus`
//! takes. [`parse`] is pure and keeps every valid line of a body with errors.

use std::collections::BTreeMap;

use sextant_model::{Labels, is_valid_label_name, is_valid_metric_name};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSample {
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds since the epoch, when the line gave one.
    pub timestamp_ms: Option<i64>,
}

/// `# TYPE`, `# HELP` and `# UNIT` of one metric family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyMetadata {
    pub kind: Option<String>,
    pub help: Option<String>,
    pub unit: Option<String>,
}

/// A line that did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What a body held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub samples: Vec<TextSample>,
    pub metadata: BTreeMap<String, FamilyMetadata>,
    pub errors: Vec<LineError>,
}

/// Parses a whole body. Bad lines are reported and skipped; the rest is kept.
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
        if line.is_empty() {
            continue;
        }
        let result = if let Some(comment) = line.strip_prefix('#') {
            if comment.trim() == "EOF" {
                break;
            }
            parse_comment(comment, &mut out.metadata)
        } else {
            parse_sample(line).map(|s| out.samples.push(s))
        };
        if let Err(message) = result {
            out.errors.push(LineError {
                line: index + 1,
                message,
            });
        }
    }
    out
}

fn parse_comment(
    comment: &str,
    metadata: &mut BTreeMap<String, FamilyMetadata>,
) -> Result<(), String> {
    let comment = comment.trim_start();
    let (keyword, rest) = comment.split_once([' ', '\t']).unwrap_or((comment, ""));
    if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
        return Ok(()); // an ordinary comment
    }
    let rest = rest.trim_start();
    let (name, text) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
    if !is_valid_metric_name(name) {
        return Err(format!("# {keyword}: invalid metric name {name:?}"));
    }
    let entry = metadata.entry(name.to_owned()).or_default();
    match keyword {
        "HELP" => entry.help = Some(unescape_help(text)),
        "TYPE" => {
            let kind = text.trim();
            const KINDS: [&str; 9] = [
                "counter",
                "gauge",
                "histogram",
                "summary",
                "untyped",
                "unknown",
                "info",
                "stateset",
                "gaugehistogram",
            ];
            if !KINDS.contains(&kind) {
                return Err(format!("# TYPE {name}: unknown type {kind:?}"));
            }
            entry.kind = Some(kind.to_owned());
        }
        _ => entry.unit = Some(text.trim().to_owned()),
    }
    Ok(())
}

fn unescape_help(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_sample(line: &str) -> Result<TextSample, String> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_valid_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut pairs: Vec<(String, String)> = vec![("__name__".to_owned(), name.to_owned())];
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut pairs)?;
    }
    let mut fields = rest.split_whitespace();
    let value_text = fields
        .next()
        .ok_or_else(|| format!("{name}: missing value"))?;
    let value =
        parse_value(value_text).ok_or_else(|| format!("{name}: invalid value {value_text:?}"))?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(t) => Some(t.parse::<i64>().map_err(|_| {
            format!("{name}: invalid timestamp {t:?} (expected integer milliseconds)")
        })?),
    };
    if let Some(extra) = fields.next() {
        return Err(format!("{name}: unexpected {extra:?} after the timestamp"));
    }
    Ok(TextSample {
        labels: Labels::from_pairs(pairs),
        value,
        timestamp_ms,
    })
}

/// Parses `name="value",...}` and returns what follows the `}`.
fn parse_labels<'a>(
    mut text: &'a str,
    pairs: &mut Vec<(String, String)>,
) -> Result<&'a str, String> {
    loop {
        text = text.trim_start();
        if let Some(after) = text.strip_prefix('}') {
            return Ok(after);
        }
        let eq = text.find('=').ok_or("label without '='")?;
        let name = text[..eq].trim();
        if !is_valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if pairs.iter().any(|(n, _)| n == name) {
            return Err(format!("duplicate label {name:?}"));
        }
        let after_eq = text[eq + 1..].trim_start();
        let quoted = after_eq
            .strip_prefix('"')
            .ok_or_else(|| format!("label {name}: value must be in double quotes"))?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("label {name}: unterminated value")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => return Err(format!("label {name}: unterminated value")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        pairs.push((name.to_owned(), value));
        text = quoted[end + 1..].trim_start();
        if let Some(after) = text.strip_prefix(',') {
            text = after;
        } else if !text.starts_with('}') {
            return Err(format!("expected ',' or '}}' after label {name}"));
        }
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prometheus_client_page_parses() {
        let parsed = parse(
            "# HELP http_requests_total The total number of HTTP requests.\n\
             # TYPE http_requests_total counter\n\
             http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
             http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n\
             \n\
             # A normal comment.\n\
             msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
             metric_without_timestamp_and_labels 12.47\n\
             something_weird{problem=\"division by zero\"} +Inf -3982045\n\
             go_gc_duration_seconds{quantile=\"0.5\"} NaN\n\
             # EOF\n\
             after_eof 1\n",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.samples.len(), 6);
        let first = &parsed.samples[0];
        assert_eq!(
            first.labels.to_string(),
            "http_requests_total{code=\"200\", method=\"post\"}"
        );
        assert_eq!(
            (first.value, first.timestamp_ms),
            (1027.0, Some(1_395_066_363_000))
        );
        assert_eq!(
            parsed.samples[2].labels.get("path"),
            Some("C:\\DIR\\FILE.TXT")
        );
        assert_eq!(
            parsed.samples[2].labels.get("error"),
            Some("Cannot find file:\n\"FILE.TXT\"")
        );
        assert_eq!(parsed.samples[3].timestamp_ms, None);
        assert_eq!(parsed.samples[4].value, f64::INFINITY);
        assert_eq!(parsed.samples[4].timestamp_ms, Some(-3_982_045));
        assert!(parsed.samples[5].value.is_nan());
        let meta = &parsed.metadata["http_requests_total"];
        assert_eq!(meta.kind.as_deref(), Some("counter"));
        assert_eq!(
            meta.help.as_deref(),
            Some("The total number of HTTP requests.")
        );
    }

    #[test]
    fn bad_lines_are_named_and_the_rest_kept() {
        let parsed = parse(
            "good 1\n\
             bad-name 1\n\
             no_value\n\
             x{a=\"1\" 2\n\
             x{a=1} 2\n\
             x{a=\"1\",a=\"2\"} 2\n\
             x 1 1.5\n\
             x one\n\
             # TYPE x flavour\n\
             also_good{a=\"b\"} 2 3\n",
        );
        assert_eq!(parsed.samples.len(), 2);
        let errors: Vec<String> = parsed.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "line 2: invalid metric name \"bad-name\"",
                "line 3: no_value: missing value",
                "line 4: expected ',' or '}' after label a",
                "line 5: label a: value must be in double quotes",
                "line 6: duplicate label \"a\"",
                "line 7: x: invalid timestamp \"1.5\" (expected integer milliseconds)",
                "line 8: x: invalid value \"one\"",
                "line 9: # TYPE x: unknown type \"flavour\"",
            ]
        );
    }
}
