//! The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0: what
//! scrapes return and what `POST /api/v1/import/prometheus` takes.
//!
//! [`Parser`] is a pure, allocation-free (unless a value holds escapes)
//! streaming reader: it yields one [`Entry`] per meaningful line and keeps the
//! current sample's labels as slices of the input, so a scrape can look a
//! series up by its text before building anything. A bad line is reported
//! with its number and skipped; the rest is kept. [`parse`] collects a whole
//! body into owned samples for the import endpoint.

use std::borrow::Cow;
use std::collections::BTreeMap;

use sextant_model::{Labels, is_valid_label_name, is_valid_metric_name};

/// Which exposition format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`: integer millisecond timestamps.
    Prometheus,
    /// `application/openmetrics-text`: float second timestamps, exemplars, `# EOF`.
    OpenMetrics,
}

impl Format {
    /// The format a `Content-Type` header announces (text 0.0.4 when unsure).
    pub fn from_content_type(content_type: &str) -> Self {
        if content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/openmetrics-text")
        {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }
}

/// One meaningful line.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// A sample; its labels are in [`Parser::labels`] until the next call.
    Sample(SampleLine<'a>),
    /// `# TYPE family kind`.
    Type { family: &'a str, kind: &'a str },
    /// `# HELP family text`, unescaped.
    Help { family: &'a str, text: Cow<'a, str> },
    /// `# UNIT family unit`.
    Unit { family: &'a str, unit: &'a str },
}

/// A sample line without its labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleLine<'a> {
    /// The name and label block exactly as written: a cache key for the series.
    pub series: &'a str,
    /// The metric name.
    pub name: &'a str,
    pub value: f64,
    /// Milliseconds since the epoch, when the line gave a timestamp.
    pub timestamp_ms: Option<i64>,
    /// An OpenMetrics exemplar's text after ` # ` (read it with
    /// [`parse_exemplar`]).
    pub exemplar: Option<&'a str>,
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
        // Line 0: an error of a format without lines (the protobuf exposition).
        if self.line == 0 {
            return f.write_str(&self.message);
        }
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Metric types a `# TYPE` line may name, in either format.
pub const KINDS: [&str; 9] = [
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

/// An OpenMetrics exemplar, `{trace_id="4bf9"} 0.67 1520879607.789`: its
/// labels, value and timestamp in milliseconds (when it has one; a
/// scrape gives it the scrape's time otherwise).
pub fn parse_exemplar(text: &str) -> Result<(Labels, f64, Option<i64>), String> {
    let text = text.trim();
    if !text.starts_with('{') {
        return Err(format!("exemplar {text:?}: expected a label set in braces"));
    }
    let mut parser = Parser::new(text, Format::OpenMetrics);
    let end = parser
        .label_block(text, 1)
        .map_err(|e| format!("exemplar: {e}"))?;
    let labels = Labels::from_pairs(
        parser
            .labels
            .iter()
            .map(|(n, v)| (*n, v.as_ref().to_owned())),
    );
    let mut fields = text[end..].split_ascii_whitespace();
    let value_text = fields.next().ok_or("exemplar: missing value")?;
    let value =
        parse_value(value_text).ok_or_else(|| format!("exemplar: invalid value {value_text:?}"))?;
    let timestamp_ms = fields
        .next()
        .map(|t| parser.timestamp("exemplar", t))
        .transpose()?;
    if let Some(extra) = fields.next() {
        return Err(format!(
            "exemplar: unexpected {extra:?} after the timestamp"
        ));
    }
    Ok((labels, value, timestamp_ms))
}

/// A streaming reader over one body.
#[derive(Debug)]
pub struct Parser<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    format: Format,
    labels: Vec<(&'a str, Cow<'a, str>)>,
    seen_eof: bool,
}

impl<'a> Parser<'a> {
    /// A reader over `text` in `format`.
    pub fn new(text: &'a str, format: Format) -> Self {
        Self {
            text,
            pos: 0,
            line: 0,
            format,
            labels: Vec::new(),
            seen_eof: false,
        }
    }

    /// The labels of the last [`Entry::Sample`] (without `__name__`), in written order.
    pub fn labels(&self) -> &[(&'a str, Cow<'a, str>)] {
        &self.labels
    }

    /// The 1-based number of the line last read.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Whether an OpenMetrics body ended without `# EOF` (call after the last entry).
    pub fn missing_eof(&self) -> bool {
        self.format == Format::OpenMetrics && !self.seen_eof
    }

    /// The next entry, an error for a bad line, or `None` at the end.
    #[allow(clippy::should_implement_trait)] // a lending iterator: labels borrow the parser
    pub fn next(&mut self) -> Option<Result<Entry<'a>, LineError>> {
        loop {
            if self.pos >= self.text.len() || self.seen_eof {
                return None;
            }
            let rest = &self.text[self.pos..];
            let (raw, advance) = match memchr::memchr(b'\n', rest.as_bytes()) {
                Some(i) => (&rest[..i], i + 1),
                None => (rest, rest.len()),
            };
            self.pos += advance;
            self.line += 1;
            let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
            if line.is_empty() {
                continue;
            }
            let result = if let Some(comment) = line.strip_prefix('#') {
                match self.comment(comment) {
                    Ok(None) => continue,
                    Ok(Some(entry)) => Ok(entry),
                    Err(message) => Err(message),
                }
            } else {
                self.sample(line).map(Entry::Sample)
            };
            return Some(result.map_err(|message| LineError {
                line: self.line,
                message,
            }));
        }
    }

    fn comment(&mut self, comment: &'a str) -> Result<Option<Entry<'a>>, String> {
        let comment = comment.trim_start_matches([' ', '\t']);
        if comment == "EOF" {
            self.seen_eof = true;
            return Ok(None);
        }
        let (keyword, rest) = comment.split_once([' ', '\t']).unwrap_or((comment, ""));
        if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
            return Ok(None); // an ordinary comment
        }
        let rest = rest.trim_start_matches([' ', '\t']);
        let (family, text) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
        if !is_valid_metric_name(family) {
            return Err(format!("# {keyword}: invalid metric name {family:?}"));
        }
        Ok(Some(match keyword {
            "HELP" => Entry::Help {
                family,
                text: unescape(text, false),
            },
            "TYPE" => {
                let kind = text.trim();
                if !KINDS.contains(&kind) {
                    return Err(format!("# TYPE {family}: unknown type {kind:?}"));
                }
                Entry::Type { family, kind }
            }
            _ => Entry::Unit {
                family,
                unit: text.trim(),
            },
        }))
    }

    fn sample(&mut self, line: &'a str) -> Result<SampleLine<'a>, String> {
        self.labels.clear();
        let bytes = line.as_bytes();
        let name_end = bytes
            .iter()
            .position(|&b| b == b'{' || b == b' ' || b == b'\t')
            .unwrap_or(bytes.len());
        let name = &line[..name_end];
        if !is_valid_metric_name(name) {
            return Err(format!("invalid metric name {name:?}"));
        }
        let mut series_end = name_end;
        if bytes.get(name_end) == Some(&b'{') {
            series_end = self.label_block(line, name_end + 1)?;
        }
        let series = &line[..series_end];
        let rest = &line[series_end..];
        // An OpenMetrics exemplar follows " # ".
        let (rest, exemplar) = match rest.find(" # ") {
            Some(i) if self.format == Format::OpenMetrics => (&rest[..i], Some(&rest[i + 3..])),
            _ => (rest, None),
        };
        let mut fields = rest.split_ascii_whitespace();
        let value_text = fields
            .next()
            .ok_or_else(|| format!("{name}: missing value"))?;
        let value = parse_value(value_text)
            .ok_or_else(|| format!("{name}: invalid value {value_text:?}"))?;
        let timestamp_ms = match fields.next() {
            None => None,
            Some(t) => Some(self.timestamp(name, t)?),
        };
        if let Some(extra) = fields.next() {
            return Err(format!("{name}: unexpected {extra:?} after the timestamp"));
        }
        Ok(SampleLine {
            series,
            name,
            value,
            timestamp_ms,
            exemplar,
        })
    }

    fn timestamp(&self, name: &str, text: &str) -> Result<i64, String> {
        match self.format {
            Format::Prometheus => text.parse::<i64>().map_err(|_| {
                format!("{name}: invalid timestamp {text:?} (expected integer milliseconds)")
            }),
            Format::OpenMetrics => text
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && s.abs() < 9.2e15)
                .map(|seconds| (seconds * 1000.0).round() as i64)
                .ok_or_else(|| format!("{name}: invalid timestamp {text:?} (expected seconds)")),
        }
    }

    /// Reads `name="value",...}` from `start` and returns the index after `}`.
    fn label_block(&mut self, line: &'a str, start: usize) -> Result<usize, String> {
        let bytes = line.as_bytes();
        let mut i = start;
        loop {
            while matches!(bytes.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            match bytes.get(i) {
                None => return Err("label block without '}'".to_owned()),
                Some(b'}') => return Ok(i + 1),
                _ => {}
            }
            let eq = memchr::memchr(b'=', &bytes[i..])
                .map(|e| i + e)
                .ok_or("label without '='")?;
            let name = line[i..eq].trim_end_matches([' ', '\t']);
            if !is_valid_label_name(name) {
                return Err(format!("invalid label name {name:?}"));
            }
            if self.labels.iter().any(|(n, _)| *n == name) {
                return Err(format!("duplicate label {name:?}"));
            }
            i = eq + 1;
            while matches!(bytes.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            if bytes.get(i) != Some(&b'"') {
                return Err(format!("label {name}: value must be in double quotes"));
            }
            let value_start = i + 1;
            let mut j = value_start;
            let mut escaped = false;
            let value_end = loop {
                match memchr::memchr2(b'"', b'\\', &bytes[j..]) {
                    None => return Err(format!("label {name}: unterminated value")),
                    Some(k) if bytes[j + k] == b'"' => break j + k,
                    Some(k) => {
                        escaped = true;
                        j += k + 2;
                        if j > bytes.len() {
                            return Err(format!("label {name}: unterminated value"));
                        }
                    }
                }
            };
            let raw = &line[value_start..value_end];
            let value = if escaped {
                unescape(raw, true)
            } else {
                Cow::Borrowed(raw)
            };
            self.labels.push((name, value));
            i = value_end + 1;
            while matches!(bytes.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            match bytes.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected ',' or '}}' after label {name}")),
            }
        }
    }
}

/// Undoes `\n`, `\\` and (in label values) `\"`; other escapes stay as written.
fn unescape(text: &str, quotes: bool) -> Cow<'_, str> {
    if !text.contains('\\') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('"') if quotes => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// A sample value as Go's `ParseFloat` reads it, plus the exposition spellings of infinity.
pub fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// One sample line, owned.
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

/// What a body held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub samples: Vec<TextSample>,
    pub metadata: BTreeMap<String, FamilyMetadata>,
    pub errors: Vec<LineError>,
}

/// Records a `# TYPE`, `# HELP` or `# UNIT` line (a sample is not metadata).
fn note_metadata(metadata: &mut BTreeMap<String, FamilyMetadata>, entry: Entry<'_>) {
    match entry {
        Entry::Sample(_) => {}
        Entry::Type { family, kind } => {
            metadata.entry(family.to_owned()).or_default().kind = Some(kind.to_owned());
        }
        Entry::Help { family, text } => {
            metadata.entry(family.to_owned()).or_default().help = Some(text.into_owned());
        }
        Entry::Unit { family, unit } => {
            metadata.entry(family.to_owned()).or_default().unit = Some(unit.to_owned());
        }
    }
}

/// Parses a whole text-format body. Bad lines are reported and skipped; the rest is kept.
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut parser = Parser::new(text, Format::Prometheus);
    while let Some(entry) = parser.next() {
        match entry {
            Err(error) => out.errors.push(error),
            Ok(Entry::Sample(sample)) => {
                let pairs = std::iter::once(("__name__", sample.name.to_owned())).chain(
                    parser
                        .labels()
                        .iter()
                        .map(|(n, v)| (*n, v.clone().into_owned())),
                );
                out.samples.push(TextSample {
                    labels: Labels::from_pairs(pairs),
                    value: sample.value,
                    timestamp_ms: sample.timestamp_ms,
                });
            }
            Ok(other) => note_metadata(&mut out.metadata, other),
        }
    }
    out
}

/// Consecutive sample lines of one series, as a history dump (or
/// `/api/v1/export` turned into text) has them.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRun {
    pub labels: Labels,
    /// (milliseconds since the epoch when the line gave one, value), in line order.
    pub points: Vec<(Option<i64>, f64)>,
}

/// What a body held, its samples in runs of one series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedRuns {
    pub runs: Vec<SeriesRun>,
    pub metadata: BTreeMap<String, FamilyMetadata>,
    pub errors: Vec<LineError>,
}

/// [`parse`], with a line whose series is the previous line's joined to
/// that line's run: its labels are compared, not built again.
pub fn parse_runs(text: &str) -> ParsedRuns {
    let mut out = ParsedRuns::default();
    let mut parser = Parser::new(text, Format::Prometheus);
    // The last run's series as its line spelled it (name, then labels in line order).
    let mut last_name = String::new();
    let mut last_pairs: Vec<(String, String)> = Vec::new();
    while let Some(entry) = parser.next() {
        match entry {
            Err(error) => out.errors.push(error),
            Ok(Entry::Sample(sample)) => {
                let point = (sample.timestamp_ms, sample.value);
                let pairs = parser.labels();
                let same = !out.runs.is_empty()
                    && sample.name == last_name
                    && pairs.len() == last_pairs.len()
                    && pairs
                        .iter()
                        .zip(&last_pairs)
                        .all(|((n, v), (ln, lv))| n == ln && v.as_ref() == lv);
                if same {
                    if let Some(run) = out.runs.last_mut() {
                        run.points.push(point);
                    }
                    continue;
                }
                last_name.clear();
                last_name.push_str(sample.name);
                last_pairs.clear();
                last_pairs.extend(
                    pairs
                        .iter()
                        .map(|(n, v)| ((*n).to_owned(), v.as_ref().to_owned())),
                );
                let labels = Labels::from_pairs(
                    std::iter::once(("__name__", sample.name.to_owned()))
                        .chain(pairs.iter().map(|(n, v)| (*n, v.clone().into_owned()))),
                );
                out.runs.push(SeriesRun {
                    labels,
                    points: vec![point],
                });
            }
            Ok(other) => note_metadata(&mut out.metadata, other),
        }
    }
    out
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

    /// Runs join consecutive lines of one series however they spell it
    /// apart from label order, and agree with `parse` line for line.
    #[test]
    fn runs_join_consecutive_lines_of_a_series_and_agree_with_parse() {
        let text = "# TYPE a gauge\n\
                    a{x=\"1\",y=\"2\"} 1 10\n\
                    a{x=\"1\",y=\"2\"} 2 20\n\
                    bad{ 3\n\
                    a{x=\"1\",y=\"2\"} 3 30\n\
                    a{y=\"2\",x=\"1\"} 4 40\n\
                    a{x=\"1\",y=\"3\"} 5 50\n\
                    b 6\n\
                    b 7 70\n\
                    a{x=\"1\",y=\"2\"} 8 80\n";
        let runs = parse_runs(text);
        let lines = parse(text);
        assert_eq!(runs.errors, lines.errors);
        assert_eq!(runs.metadata, lines.metadata);
        let flat: Vec<(Labels, Option<i64>, u64)> = runs
            .runs
            .iter()
            .flat_map(|r| {
                r.points
                    .iter()
                    .map(|(t, v)| (r.labels.clone(), *t, v.to_bits()))
            })
            .collect();
        let expected: Vec<(Labels, Option<i64>, u64)> = lines
            .samples
            .iter()
            .map(|s| (s.labels.clone(), s.timestamp_ms, s.value.to_bits()))
            .collect();
        assert_eq!(flat, expected);
        let sizes: Vec<usize> = runs.runs.iter().map(|r| r.points.len()).collect();
        assert_eq!(sizes, [3, 1, 1, 2, 1]);
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

    #[test]
    fn exemplars_read_and_refuse_by_name() {
        let (labels, value, t) = parse_exemplar(r#"{trace_id="a\"b",span_id="c"} 1e-3"#).unwrap();
        assert_eq!(labels.get("trace_id"), Some("a\"b"));
        assert_eq!(labels.get("span_id"), Some("c"));
        assert_eq!((value, t), (0.001, None));
        for (bad, says) in [
            ("0.5", "expected a label set"),
            ("{trace_id=\"a\"}", "missing value"),
            ("{trace_id=\"a\"} x", "invalid value"),
            ("{trace_id=\"a\"} 1 y", "invalid timestamp"),
            ("{trace_id=\"a\"} 1 2 3", "unexpected"),
            ("{trace_id=\"a}", "unterminated"),
        ] {
            let error = parse_exemplar(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn openmetrics_timestamps_exemplars_and_eof() {
        let body = "# TYPE rpc counter\n\
                    # UNIT rpc_seconds seconds\n\
                    # HELP rpc Calls \\\"made\\\".\n\
                    rpc_total{code=\"200\"} 17 1520879607.789 # {trace_id=\"abc\"} 0.5 1520879607.7\n\
                    rpc_created{code=\"200\"} 1520430000.123\n\
                    # EOF\n";
        let mut parser = Parser::new(body, Format::OpenMetrics);
        let mut samples = Vec::new();
        let mut kinds = Vec::new();
        while let Some(entry) = parser.next() {
            match entry.unwrap() {
                Entry::Sample(s) => {
                    if let Some(text) = s.exemplar {
                        let (labels, value, t) = parse_exemplar(text).unwrap();
                        assert_eq!(labels.get("trace_id"), Some("abc"));
                        assert_eq!((value, t), (0.5, Some(1_520_879_607_700)));
                    }
                    samples.push((s.series, s.value, s.timestamp_ms));
                }
                Entry::Type { family, kind } => kinds.push((family, kind)),
                Entry::Help { text, .. } => assert_eq!(text, "Calls \\\"made\\\"."),
                Entry::Unit { unit, .. } => assert_eq!(unit, "seconds"),
            }
        }
        assert!(!parser.missing_eof());
        assert_eq!(kinds, [("rpc", "counter")]);
        assert_eq!(
            samples,
            [
                ("rpc_total{code=\"200\"}", 17.0, Some(1_520_879_607_789)),
                ("rpc_created{code=\"200\"}", 1_520_430_000.123, None),
            ]
        );
        let mut cut = Parser::new("a 1\n", Format::OpenMetrics);
        while cut.next().is_some() {}
        assert!(cut.missing_eof());
        assert_eq!(
            Format::from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_content_type("text/plain; version=0.0.4"),
            Format::Prometheus
        );
    }

    #[test]
    fn labels_are_slices_of_the_input_unless_escaped() {
        let body = "m{a=\"plain\", b=\"esc\\\"aped\",} 1\n";
        let mut parser = Parser::new(body, Format::Prometheus);
        let Some(Ok(Entry::Sample(sample))) = parser.next() else {
            panic!("expected a sample");
        };
        assert_eq!(sample.series, "m{a=\"plain\", b=\"esc\\\"aped\",}");
        let labels = parser.labels();
        assert!(matches!(labels[0].1, Cow::Borrowed("plain")));
        assert!(matches!(&labels[1].1, Cow::Owned(v) if v == "esc\"aped"));
        let mut bad = Parser::new("m{a=\"x\\", Format::Prometheus);
        assert_eq!(
            bad.next().unwrap().unwrap_err().message,
            "label a: unterminated value"
        );
    }
}
