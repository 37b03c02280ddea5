//! LogQL's pipeline stages, as Loki runs them: line filters, the parsers
//! (`json`, `logfmt`, `regexp`, `pattern`, `unpack`), label filters,
//! `line_format`, `label_format`, `drop`, `keep` and `decolorize`.
//!
//! A [`Pipeline`] is compiled once per query (regexes, templates and
//! patterns are built then, and a bad one is an error naming the stage) and
//! run once per log line. A stage that cannot do its work on a line does not
//! drop it: it sets `__error__` (`JSONParserErr`, `LogfmtParserErr`,
//! `LabelFilterErr`, `TemplateFormatErr`, `SampleExtractionErr`) and
//! usually `__error_details__`, and the line goes on through the later
//! stages, where `| __error__=""` can drop it.
//!
//! Labels a parser extracts that a stream label (or structured metadata)
//! already has are named with an `_extracted` suffix; a name a parser
//! (or `label_format`) has already set on this line is not overwritten by a
//! later parser: the first value wins.

mod funcs;
mod gofmt;
mod gotime;
#[cfg(test)]
mod hostile_tests;
mod json;
mod logfmt;
mod pattern;
mod template;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;

use regex::Regex;
use sextant_model::{Matcher, is_valid_label_name};

use super::ast::{self, CmpOp, Conversion, LabelFilter, LabelFmt, LabelSel, LineOp, Stage};
use pattern::Pattern;
use template::{Env, Template};

/// The labels of one entry as a pipeline sees them (stream labels, structured metadata, extracted), by name.
pub type Labels = BTreeMap<String, String>;

const ERROR: &str = "__error__";
const ERROR_DETAILS: &str = "__error_details__";
const JSON_ERR: &str = "JSONParserErr";
const LOGFMT_ERR: &str = "LogfmtParserErr";
const LABEL_FILTER_ERR: &str = "LabelFilterErr";
const TEMPLATE_ERR: &str = "TemplateFormatErr";
const SAMPLE_ERR: &str = "SampleExtractionErr";
const EXTRACTED_SUFFIX: &str = "_extracted";

/// ANSI escape sequences (colours, cursor movement), as Loki strips them.
const ANSI: &str = "[\u{1b}\u{9b}][\\[\\]()#;?]*(?:(?:(?:[a-zA-Z0-9]*(?:;[a-zA-Z0-9]*)*)?\u{7})|(?:(?:[0-9]{1,4}(?:;[0-9]{0,4})*)?[0-9A-PRZcf-ntqry=><~]))";

/// A compiled pipeline.
#[derive(Debug)]
pub struct Pipeline {
    stages: Vec<Compiled>,
    only_line_filters: bool,
}

#[derive(Debug)]
enum Compiled {
    Line {
        test: LineTest,
        /// `!=`, `!~`, `!>`: keep lines no alternative matches.
        negated: bool,
    },
    JsonAll,
    JsonPaths(Vec<(String, Vec<json::Step>)>),
    Logfmt {
        strict: bool,
        keep_empty: bool,
        /// `(label, key)`: only these, when any.
        params: Vec<(String, String)>,
    },
    Regexp {
        regex: Regex,
        /// Capture group index and label name.
        names: Vec<(usize, String)>,
    },
    Pattern(Pattern),
    Unpack,
    LabelFilter(LabelFilter),
    LineFormat(Template),
    LabelFormat {
        ops: Vec<FmtOp>,
        /// Index of the first template (templates see the labels as they
        /// were when the first one ran, before the renames after it).
        first_template: usize,
    },
    Drop(Vec<LabelSel>),
    Keep(Vec<LabelSel>),
    Decolorize(Regex),
}

#[derive(Debug)]
enum LineTest {
    /// Any of the alternatives (substrings, escaped, or regexes), joined
    /// into one regex: a literal search runs as one (memchr, or
    /// Aho-Corasick for several).
    Regex(Regex),
    /// Any of the patterns.
    Pattern(Vec<Pattern>),
}

impl LineTest {
    fn matches(&self, line: &str) -> bool {
        match self {
            LineTest::Regex(regex) => regex.is_match(line),
            LineTest::Pattern(patterns) => patterns.iter().any(|p| p.matches(line)),
        }
    }
}

#[derive(Debug)]
enum FmtOp {
    Rename { dst: String, src: String },
    Template { dst: String, template: Template },
}

fn stage_name(stage: &Stage) -> &'static str {
    match stage {
        Stage::LineFilter(f) => match f.op {
            LineOp::Contains => "|=",
            LineOp::NotContains => "!=",
            LineOp::Regex => "|~",
            LineOp::NotRegex => "!~",
            LineOp::Pattern => "|>",
            LineOp::NotPattern => "!>",
        },
        Stage::Parser(p) => match p {
            ast::Parser::Json(_) => "json",
            ast::Parser::Logfmt { .. } => "logfmt",
            ast::Parser::Regexp(_) => "regexp",
            ast::Parser::Pattern(_) => "pattern",
            ast::Parser::Unpack => "unpack",
        },
        Stage::LabelFilter(_) => "label filter",
        Stage::LineFormat(_) => "line_format",
        Stage::LabelFormat(_) => "label_format",
        Stage::Drop(_) => "drop",
        Stage::Keep(_) => "keep",
        Stage::Decolorize => "decolorize",
    }
}

/// `text` quoted for an error message, cut short when long.
fn excerpt(text: &str) -> String {
    const MAX: usize = 80;
    if text.len() <= MAX {
        return format!("{text:?}");
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &text[..end], text.len())
}

fn check_label_name(name: &str) -> Result<(), String> {
    if is_valid_label_name(name) {
        Ok(())
    } else {
        Err(format!("invalid label name {name:?}"))
    }
}

fn compile(stage: &Stage) -> Result<Compiled, String> {
    Ok(match stage {
        Stage::LineFilter(f) => {
            let negated = matches!(
                f.op,
                LineOp::NotContains | LineOp::NotRegex | LineOp::NotPattern
            );
            let one_regex = |alternatives: Vec<String>| {
                let joined = if alternatives.len() == 1 {
                    alternatives.into_iter().next().unwrap_or_default()
                } else {
                    alternatives
                        .iter()
                        .map(|v| format!("(?:{v})"))
                        .collect::<Vec<_>>()
                        .join("|")
                };
                Regex::new(&joined)
                    .map(LineTest::Regex)
                    .map_err(|e| e.to_string())
            };
            let test = match f.op {
                LineOp::Contains | LineOp::NotContains => {
                    one_regex(f.values.iter().map(|v| regex::escape(v)).collect())?
                }
                LineOp::Regex | LineOp::NotRegex => {
                    for v in &f.values {
                        Regex::new(v).map_err(|e| format!("invalid regex {}: {e}", excerpt(v)))?;
                    }
                    one_regex(f.values.clone())?
                }
                LineOp::Pattern | LineOp::NotPattern => LineTest::Pattern(
                    f.values
                        .iter()
                        .map(|v| {
                            Pattern::line_filter(v).map_err(|e| format!("{}: {e}", excerpt(v)))
                        })
                        .collect::<Result<_, _>>()?,
                ),
            };
            Compiled::Line { test, negated }
        }
        Stage::Parser(ast::Parser::Json(params)) if params.is_empty() => Compiled::JsonAll,
        Stage::Parser(ast::Parser::Json(params)) => {
            let mut paths = Vec::with_capacity(params.len());
            for (label, expr) in params {
                check_label_name(label)?;
                paths.push((label.clone(), json::parse_path(expr)?));
            }
            Compiled::JsonPaths(paths)
        }
        Stage::Parser(ast::Parser::Logfmt {
            strict,
            keep_empty,
            params,
        }) => {
            for (label, key) in params {
                check_label_name(label)?;
                if key.is_empty() {
                    return Err(format!("empty key for label {label:?}"));
                }
            }
            Compiled::Logfmt {
                strict: *strict,
                keep_empty: *keep_empty,
                params: params.clone(),
            }
        }
        Stage::Parser(ast::Parser::Regexp(text)) => {
            let regex =
                Regex::new(text).map_err(|e| format!("invalid regex {}: {e}", excerpt(text)))?;
            let mut names = Vec::new();
            for (i, name) in regex.capture_names().enumerate() {
                if let Some(name) = name {
                    check_label_name(name)?;
                    names.push((i, name.to_owned()));
                }
            }
            if names.is_empty() {
                return Err(format!(
                    "{}: at least one named capture must be supplied",
                    excerpt(text)
                ));
            }
            Compiled::Regexp { regex, names }
        }
        Stage::Parser(ast::Parser::Pattern(text)) => {
            Compiled::Pattern(Pattern::parser(text).map_err(|e| format!("{}: {e}", excerpt(text)))?)
        }
        Stage::Parser(ast::Parser::Unpack) => Compiled::Unpack,
        Stage::LabelFilter(f) => Compiled::LabelFilter(f.clone()),
        Stage::LineFormat(text) => Compiled::LineFormat(
            Template::parse(text)
                .map_err(|e| format!("invalid template {}: {e}", excerpt(text)))?,
        ),
        Stage::LabelFormat(fmts) => {
            let mut ops: Vec<FmtOp> = Vec::with_capacity(fmts.len());
            for fmt in fmts {
                let dst = match fmt {
                    LabelFmt::Rename { dst, .. } | LabelFmt::Template { dst, .. } => dst,
                };
                check_label_name(dst)?;
                if dst == ERROR {
                    return Err(format!("{ERROR} cannot be formatted"));
                }
                let taken = ops.iter().any(|op| match op {
                    FmtOp::Rename { dst: d, .. } | FmtOp::Template { dst: d, .. } => d == dst,
                });
                if taken {
                    return Err(format!(
                        "multiple label name {dst:?} not allowed in a single format operation"
                    ));
                }
                ops.push(match fmt {
                    LabelFmt::Rename { dst, src } => FmtOp::Rename {
                        dst: dst.clone(),
                        src: src.clone(),
                    },
                    LabelFmt::Template { dst, template } => FmtOp::Template {
                        dst: dst.clone(),
                        template: Template::parse(template)
                            .map_err(|e| format!("invalid template for label {dst:?}: {e}"))?,
                    },
                });
            }
            let first_template = ops
                .iter()
                .position(|op| matches!(op, FmtOp::Template { .. }))
                .unwrap_or(ops.len());
            Compiled::LabelFormat {
                ops,
                first_template,
            }
        }
        Stage::Drop(sels) => Compiled::Drop(sels.clone()),
        Stage::Keep(sels) => Compiled::Keep(sels.clone()),
        Stage::Decolorize => Compiled::Decolorize(Regex::new(ANSI).map_err(|e| e.to_string())?),
    })
}

/// What one line's run remembers about the names it touched: whether each
/// was present when the line came in (Loki's "base" labels, which decide
/// the `_extracted` suffix even after a `drop`) and whether a parser or
/// `label_format` set it (then later parsers leave it be).
#[derive(Debug, Default)]
struct Scratch {
    touched: Vec<Touched>,
    /// How many of `touched` are this line's (the rest are kept for their
    /// allocations).
    used: usize,
    /// Whether any label was removed on this line.
    removed_any: bool,
    /// A reusable buffer for rendering templates.
    buf: String,
}

#[derive(Debug, Default)]
struct Touched {
    name: String,
    at_entry: bool,
    extracted: bool,
}

impl Scratch {
    fn reset(&mut self) {
        self.used = 0;
        self.removed_any = false;
        if self.buf.capacity() > 1 << 20 {
            self.buf = String::new();
        }
        if self.touched.len() > 1024 {
            self.touched.truncate(1024);
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.reset();
            f(&mut scratch)
        }
        Err(_) => f(&mut Scratch::default()),
    })
}

/// A line's labels and what the run knows about them.
struct Ctx<'a> {
    labels: &'a mut Labels,
    sc: &'a mut Scratch,
}

impl Ctx<'_> {
    fn find(&self, name: &str) -> Option<&Touched> {
        self.sc.touched[..self.sc.used]
            .iter()
            .find(|t| t.name == name)
    }

    /// Whether nothing about `name` can have changed since the line came
    /// in without being recorded: it is absent now and nothing was removed.
    fn untouched_absent(&self, name: &str) -> bool {
        !self.sc.removed_any && !self.labels.contains_key(name)
    }

    fn base_has(&self, name: &str) -> bool {
        if self.untouched_absent(name) {
            return false;
        }
        match self.find(name) {
            Some(t) => t.at_entry,
            None => self.labels.contains_key(name),
        }
    }

    fn extracted(&self, name: &str) -> bool {
        if self.untouched_absent(name) {
            return false;
        }
        self.find(name).is_some_and(|t| t.extracted)
    }

    /// Records `name` before it changes.
    fn touch(&mut self, name: &str, extracted: bool) {
        if !self.untouched_absent(name) {
            let used = self.sc.used;
            if let Some(t) = self.sc.touched[..used].iter_mut().find(|t| t.name == name) {
                t.extracted |= extracted;
                return;
            }
        }
        let at_entry = self.labels.contains_key(name);
        self.record(name, at_entry, extracted);
    }

    /// Adds a record for a name not recorded yet.
    fn record(&mut self, name: &str, at_entry: bool, extracted: bool) {
        let i = self.sc.used;
        if i < self.sc.touched.len() {
            let t = &mut self.sc.touched[i];
            t.name.clear();
            t.name.push_str(name);
            t.at_entry = at_entry;
            t.extracted = extracted;
        } else {
            self.sc.touched.push(Touched {
                name: name.to_owned(),
                at_entry,
                extracted,
            });
        }
        self.sc.used += 1;
    }

    fn set(&mut self, name: &str, value: String, extracted: bool) {
        self.touch(name, extracted);
        match self.labels.get_mut(name) {
            Some(v) => *v = value,
            None => {
                self.labels.insert(name.to_owned(), value);
            }
        }
    }

    /// A parser's label: `_extracted` when the line came in with the name,
    /// skipped when a parser already set it.
    fn set_parsed(&mut self, name: &str, value: Cow<'_, str>) {
        if self.untouched_absent(name) {
            // The usual case: a name new to this line.
            self.record(name, false, true);
            self.labels.insert(name.to_owned(), value.into_owned());
            return;
        }
        if self.base_has(name) {
            let key = format!("{name}{EXTRACTED_SUFFIX}");
            if !self.extracted(&key) {
                self.set(&key, value.into_owned(), true);
            }
        } else if !self.extracted(name) {
            self.set(name, value.into_owned(), true);
        }
    }

    fn remove(&mut self, name: &str) {
        if self.labels.contains_key(name) {
            self.touch(name, false);
            self.labels.remove(name);
            self.sc.removed_any = true;
        }
    }

    fn set_error(&mut self, kind: &str, details: Option<&str>) {
        self.set(ERROR, kind.to_owned(), false);
        if let Some(d) = details {
            self.set(ERROR_DETAILS, d.to_owned(), false);
        }
    }
}

/// A parsed key as a label name: trimmed, `_` before a leading digit,
/// everything outside `[a-zA-Z0-9_]` as `_`.
fn sanitize(key: &str) -> Cow<'_, str> {
    let clean = !key.is_empty()
        && !key.as_bytes()[0].is_ascii_digit()
        && key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
    if clean {
        return Cow::Borrowed(key);
    }
    let mut name = String::with_capacity(key.len() + 1);
    json::append_sanitized(&mut name, key);
    Cow::Owned(name)
}

impl Pipeline {
    /// Compiles the stages (regexes, templates, patterns); Err names the bad stage.
    pub fn new(stages: &[Stage]) -> Result<Pipeline, String> {
        let mut compiled = Vec::with_capacity(stages.len());
        for (i, stage) in stages.iter().enumerate() {
            compiled.push(
                compile(stage).map_err(|e| {
                    format!("pipeline stage {} ({}): {e}", i + 1, stage_name(stage))
                })?,
            );
        }
        let only_line_filters = compiled.iter().all(|s| matches!(s, Compiled::Line { .. }));
        Ok(Pipeline {
            stages: compiled,
            only_line_filters,
        })
    }

    /// Whether any stage needs more than the line (parsers, label filters, formats), i.e. the pipeline is only line filters.
    pub fn only_line_filters(&self) -> bool {
        self.only_line_filters
    }

    /// Runs one entry through: may rewrite `line` and `labels`; false when a filter dropped it.
    pub fn process(&self, timestamp_ns: i64, line: &mut String, labels: &mut Labels) -> bool {
        if self.only_line_filters {
            return self.stages.iter().all(|stage| match stage {
                Compiled::Line { test, negated } => test.matches(line) != *negated,
                _ => true,
            });
        }
        with_scratch(|sc| {
            let mut cx = Ctx { labels, sc };
            self.stages
                .iter()
                .all(|stage| run(stage, timestamp_ns, line, &mut cx))
        })
    }
}

fn run(stage: &Compiled, ts: i64, line: &mut String, cx: &mut Ctx<'_>) -> bool {
    match stage {
        Compiled::Line { test, negated } => return test.matches(line) != *negated,
        Compiled::JsonAll => {
            if let Err(e) = json::flatten(line, |name, value| cx.set_parsed(name, value)) {
                cx.set_error(JSON_ERR, Some(&e));
            }
        }
        Compiled::JsonPaths(paths) => json_paths(paths, line, cx),
        Compiled::Logfmt {
            strict,
            keep_empty,
            params,
        } => logfmt(*strict, *keep_empty, params, line, cx),
        Compiled::Regexp { regex, names } => {
            if let Some(caps) = regex.captures(line) {
                for (i, name) in names {
                    let value = caps.get(*i).map_or("", |m| m.as_str());
                    cx.set_parsed(name, Cow::Borrowed(value));
                }
            }
        }
        Compiled::Pattern(pattern) => {
            let names = pattern.names();
            pattern.extract(line, |i, value| {
                cx.set_parsed(&names[i], Cow::Borrowed(value));
            });
        }
        Compiled::Unpack => unpack(line, cx),
        Compiled::LabelFilter(filter) => return label_filter(filter, cx.labels),
        Compiled::LineFormat(template) => {
            if let Some(field) = template.simple_field() {
                let value = cx.labels.get(field).map_or("", String::as_str);
                line.clear();
                line.push_str(value);
            } else {
                let mut buf = std::mem::take(&mut cx.sc.buf);
                buf.clear();
                let env = Env {
                    labels: cx.labels,
                    line,
                    ts,
                };
                match template.render(&env, &mut buf) {
                    Ok(()) => std::mem::swap(line, &mut buf),
                    Err(e) => cx.set_error(TEMPLATE_ERR, Some(&e)),
                }
                cx.sc.buf = buf;
            }
        }
        Compiled::LabelFormat {
            ops,
            first_template,
        } => label_format(ops, *first_template, ts, line, cx),
        Compiled::Drop(sels) => {
            for sel in sels {
                match sel {
                    LabelSel::Name(name) => cx.remove(name),
                    LabelSel::Matcher(m) => {
                        let value = cx.labels.get(&m.name).map_or("", String::as_str);
                        if m.matches(value) {
                            cx.remove(&m.name);
                        }
                    }
                }
            }
        }
        Compiled::Keep(sels) => {
            let kept = |name: &str, value: &str| {
                name == ERROR
                    || name == ERROR_DETAILS
                    || sels.iter().any(|sel| match sel {
                        LabelSel::Name(n) => n == name,
                        LabelSel::Matcher(m) => m.name == name && m.matches(value),
                    })
            };
            let gone: Vec<String> = cx
                .labels
                .iter()
                .filter(|(k, v)| !kept(k, v))
                .map(|(k, _)| k.clone())
                .collect();
            for name in gone {
                cx.remove(&name);
            }
        }
        Compiled::Decolorize(regex) => {
            if line.contains(['\u{1b}', '\u{9b}'])
                && let Cow::Owned(clean) = regex.replace_all(line, "")
            {
                *line = clean;
            }
        }
    }
    true
}

fn json_paths(paths: &[(String, Vec<json::Step>)], line: &str, cx: &mut Ctx<'_>) {
    let Some(&first) = line.as_bytes().first() else {
        return;
    };
    if !matches!(first, b'"' | b'{' | b'[') {
        cx.set_error(JSON_ERR, Some("the line does not start a JSON value"));
        return;
    }
    for (label, path) in paths {
        match json::lookup(line, path) {
            Ok(Some((kind, text))) => {
                let value = json::value_text(kind, text).unwrap_or(Cow::Borrowed(""));
                if cx.base_has(label) {
                    cx.set(
                        &format!("{label}{EXTRACTED_SUFFIX}"),
                        value.into_owned(),
                        true,
                    );
                } else {
                    cx.set(label, value.into_owned(), true);
                }
            }
            Ok(None) => {
                if !cx.labels.contains_key(label) {
                    cx.set(label, String::new(), true);
                }
            }
            Err(e) => {
                cx.set_error(JSON_ERR, Some(&e));
                if !cx.labels.contains_key(label) {
                    cx.set(label, String::new(), true);
                }
            }
        }
    }
}

fn logfmt(
    strict: bool,
    keep_empty: bool,
    params: &[(String, String)],
    line: &str,
    cx: &mut Ctx<'_>,
) {
    // With parameters, every requested label exists afterwards (empty when
    // the key is missing), as in Loki.
    for (label, _) in params {
        if !cx.base_has(label) {
            cx.set(label, String::new(), true);
        }
    }
    let mut dec = logfmt::Decoder::new(line);
    while !dec.at_end() {
        if !dec.next() {
            if strict {
                break;
            }
            continue;
        }
        let raw_key = dec.key();
        let key = sanitize(raw_key);
        if key.is_empty() {
            continue;
        }
        let mut value = dec.take_value();
        if value.contains('\u{FFFD}') {
            value = Cow::Owned(value.replace('\u{FFFD}', " "));
        }
        if params.is_empty() {
            if !keep_empty && value.is_empty() {
                continue;
            }
            cx.set_parsed(&key, value);
        } else {
            for (label, want) in params {
                if want == raw_key || want.as_str() == key {
                    if cx.base_has(label) {
                        cx.set(
                            &format!("{label}{EXTRACTED_SUFFIX}"),
                            value.to_string(),
                            true,
                        );
                    } else {
                        cx.set(label, value.to_string(), true);
                    }
                }
            }
        }
    }
    if strict && let Some(e) = dec.error() {
        cx.set_error(LOGFMT_ERR, Some(e));
    }
}

fn unpack(line: &mut String, cx: &mut Ctx<'_>) {
    if line.is_empty() {
        return;
    }
    let entry = match json::unpack(line) {
        Err(e) => {
            cx.set_error(JSON_ERR, Some(&e));
            return;
        }
        // Loki sets the labels only when the line was packed (has `_entry`).
        Ok((_, None)) => return,
        Ok((members, Some(entry))) => {
            for (key, value) in members {
                let name = sanitize(key);
                if !name.is_empty() {
                    cx.set_parsed(&name, value);
                }
            }
            entry
        }
    };
    *line = entry;
}

fn label_format(ops: &[FmtOp], first_template: usize, ts: i64, line: &str, cx: &mut Ctx<'_>) {
    let rename = |cx: &mut Ctx<'_>, dst: &str, src: &str| {
        if src == ERROR || src == ERROR_DETAILS {
            return;
        }
        if let Some(value) = cx.labels.get(src).cloned() {
            cx.set(dst, value, true);
            cx.remove(src);
        }
    };
    for op in &ops[..first_template] {
        if let FmtOp::Rename { dst, src } = op {
            rename(cx, dst, src);
        }
    }
    if first_template == ops.len() {
        return;
    }
    // Every template sees the labels as they are now.
    let mut results: Vec<Result<String, String>> = Vec::new();
    {
        let env = Env {
            labels: cx.labels,
            line,
            ts,
        };
        for op in &ops[first_template..] {
            if let FmtOp::Template { template, .. } = op {
                results.push(match template.simple_field() {
                    Some(field) => Ok(env.labels.get(field).cloned().unwrap_or_default()),
                    None => {
                        let mut out = String::new();
                        template.render(&env, &mut out).map(|()| out)
                    }
                });
            }
        }
    }
    let mut results = results.into_iter();
    for op in &ops[first_template..] {
        match op {
            FmtOp::Rename { dst, src } => rename(cx, dst, src),
            FmtOp::Template { dst, .. } => match results.next() {
                Some(Ok(value)) => cx.set(dst, value, true),
                Some(Err(e)) => cx.set_error(TEMPLATE_ERR, Some(&e)),
                None => {}
            },
        }
    }
}

fn compare<T: PartialOrd>(a: T, op: CmpOp, b: T) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
    }
}

/// A number, duration or bytes filter: false when the label is absent;
/// a value that does not convert keeps the entry, marked `LabelFilterErr`
/// unless an earlier error is there to keep.
fn converted_filter<T>(
    labels: &mut Labels,
    name: &str,
    convert: impl FnOnce(&str) -> Result<T, String>,
    test: impl FnOnce(T) -> bool,
) -> bool {
    if name == ERROR || name == ERROR_DETAILS {
        // Only string matchers see the error labels.
        return false;
    }
    let Some(value) = labels.get(name) else {
        return false;
    };
    match convert(value) {
        Ok(v) => test(v),
        Err(details) => {
            if labels.get(ERROR).is_none_or(|e| e.is_empty()) {
                labels.insert(ERROR.to_owned(), LABEL_FILTER_ERR.to_owned());
                labels.insert(ERROR_DETAILS.to_owned(), details);
            }
            true
        }
    }
}

fn leaf_filter(filter: &LabelFilter, labels: &mut Labels) -> bool {
    match filter {
        LabelFilter::And(..) | LabelFilter::Or(..) => unreachable!("handled by label_filter"),
        LabelFilter::Match(m) => matcher(m, labels),
        LabelFilter::Number { name, op, value } => converted_filter(
            labels,
            name,
            |v| {
                parse_float(v)
                    .ok_or_else(|| format!("strconv.ParseFloat: parsing {v:?}: invalid syntax"))
            },
            |v| compare(v, *op, *value),
        ),
        LabelFilter::Duration { name, op, seconds } => converted_filter(
            labels,
            name,
            |v| go_duration_ns(v).ok_or_else(|| format!("time: invalid duration {v:?}")),
            |ns| compare(ns, *op, (seconds * 1e9).round() as i64),
        ),
        LabelFilter::Bytes { name, op, bytes } => converted_filter(labels, name, bytes_u64, |b| {
            compare(b, *op, bytes.max(0.0).round() as u64)
        }),
    }
}

fn matcher(m: &Matcher, labels: &Labels) -> bool {
    m.matches(labels.get(&m.name).map_or("", String::as_str))
}

/// Applies one label filter (used by the pipeline and by unwrap's post filters): false drops the entry; a value that cannot be converted (a number filter on "abc") keeps the entry and sets `__error__`="LabelFilterErr" (Loki's behaviour).
///
/// Like Loki, both sides of an `and` are evaluated (the right one may set
/// `__error__` even when the left one failed) and an `or` stops at the
/// first side that holds. Evaluated with a stack of its own, so a filter
/// nested however deep cannot exhaust the thread's.
pub fn label_filter(filter: &LabelFilter, labels: &mut Labels) -> bool {
    let is_leaf = |f: &LabelFilter| !matches!(f, LabelFilter::And(..) | LabelFilter::Or(..));
    // The usual shapes, without a stack.
    match filter {
        leaf if is_leaf(leaf) => return leaf_filter(leaf, labels),
        LabelFilter::And(a, b) if is_leaf(a) && is_leaf(b) => {
            let left = leaf_filter(a, labels);
            return leaf_filter(b, labels) && left;
        }
        LabelFilter::Or(a, b) if is_leaf(a) && is_leaf(b) => {
            return leaf_filter(a, labels) || leaf_filter(b, labels);
        }
        _ => {}
    }
    enum Work<'f> {
        Eval(&'f LabelFilter),
        /// The left side of an `and` is on the value stack; evaluate this.
        AndRight(&'f LabelFilter),
        /// Both sides of an `and` are on the value stack.
        AndJoin,
        /// The left side of an `or` is on the value stack; this if it failed.
        OrRight(&'f LabelFilter),
    }
    let mut work = vec![Work::Eval(filter)];
    let mut values: Vec<bool> = Vec::new();
    while let Some(item) = work.pop() {
        match item {
            Work::Eval(LabelFilter::And(a, b)) => {
                work.push(Work::AndRight(b));
                work.push(Work::Eval(a));
            }
            Work::Eval(LabelFilter::Or(a, b)) => {
                work.push(Work::OrRight(b));
                work.push(Work::Eval(a));
            }
            Work::Eval(leaf) => values.push(leaf_filter(leaf, labels)),
            Work::AndRight(b) => {
                work.push(Work::AndJoin);
                work.push(Work::Eval(b));
            }
            Work::AndJoin => {
                let right = values.pop().unwrap_or(false);
                let left = values.pop().unwrap_or(false);
                values.push(left && right);
            }
            Work::OrRight(b) => {
                if values.last() == Some(&false) {
                    values.pop();
                    work.push(Work::Eval(b));
                }
            }
        }
    }
    values.pop().unwrap_or(true)
}

/// Unwraps `label` from labels for a metric query: Some(value) or sets `__error__`="SampleExtractionErr" and `__error_details__` and returns None.
///
/// An absent or empty label gives None without an error: the entry makes
/// no sample (Loki's rule). Loki goes on to drop the unwrapped label from
/// the series unless the aggregation groups `by` it; that is the caller's.
pub fn unwrap_value(labels: &mut Labels, label: &str, conversion: Conversion) -> Option<f64> {
    let value = labels.get(label).map_or("", String::as_str);
    if value.is_empty() {
        return None;
    }
    let converted = match conversion {
        Conversion::Number => parse_float(value)
            .ok_or_else(|| format!("strconv.ParseFloat: parsing {value:?}: invalid syntax")),
        Conversion::Duration => {
            go_duration(value).ok_or_else(|| format!("time: invalid duration {value:?}"))
        }
        Conversion::Bytes => bytes_u64(value).map(|b| b as f64),
    };
    match converted {
        Ok(v) => Some(v),
        Err(details) => {
            labels.insert(ERROR.to_owned(), SAMPLE_ERR.to_owned());
            labels.insert(ERROR_DETAILS.to_owned(), details);
            None
        }
    }
}

/// Go's `strconv.ParseFloat` (as far as Rust's parser agrees with it).
fn parse_float(text: &str) -> Option<f64> {
    funcs::parse_go_float(text)
}

/// Go's `time.ParseDuration`, in nanoseconds.
fn go_duration_ns(text: &str) -> Option<i64> {
    const MAX: u64 = 1 << 63;
    let mut s = text;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return None;
        }
        // The integer part.
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut v: u64 = 0;
        for c in s[..digits].bytes() {
            if v > (MAX - 1) / 10 {
                return None;
            }
            v = v * 10 + u64::from(c - b'0');
            if v > MAX {
                return None;
            }
        }
        let pre = digits > 0;
        s = &s[digits..];
        // The fraction.
        let mut frac: u64 = 0;
        let mut scale = 1.0f64;
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let n = s.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for c in s[..n].bytes() {
                if overflow {
                    continue;
                }
                if frac > (MAX - 1) / 10 {
                    overflow = true;
                    continue;
                }
                frac = frac * 10 + u64::from(c - b'0');
                scale *= 10.0;
            }
            post = n > 0;
            s = &s[n..];
        }
        if !pre && !post {
            return None;
        }
        // The unit.
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return None;
        }
        let unit: u64 = match &s[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        s = &s[unit_len..];
        if v > MAX / unit {
            return None;
        }
        v *= unit;
        if frac > 0 {
            v += (frac as f64 * (unit as f64 / scale)) as u64;
            if v > MAX {
                return None;
            }
        }
        total += v;
        if total > MAX {
            return None;
        }
    }
    if neg {
        return Some((-(i128::from(total))) as i64);
    }
    if total > MAX - 1 {
        return None;
    }
    Some(total as i64)
}

/// Go duration (`1h2m3.5s`, `250ms`, `10us`, `5µs`, `3ns`, `-1s`) in seconds.
pub fn go_duration(text: &str) -> Option<f64> {
    let ns = go_duration_ns(text)?;
    // As Go's Duration.Seconds computes it.
    Some((ns / 1_000_000_000) as f64 + (ns % 1_000_000_000) as f64 / 1e9)
}

/// go-humanize's `ParseBytes`: a number (`,` allowed), optional space, a
/// unit (SI or IEC, any case, the `B` optional).
fn bytes_u64(text: &str) -> Result<u64, String> {
    let end = text
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.' || c == ','))
        .map_or(text.len(), |(i, _)| i);
    let number = text[..end].replace(',', "");
    let f: f64 = number
        .parse()
        .map_err(|_| format!("strconv.ParseFloat: parsing {number:?}: invalid syntax"))?;
    let unit = text[end..].trim().to_ascii_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "ti" | "tib" => 1 << 40,
        "p" | "pb" => 1_000_000_000_000_000,
        "pi" | "pib" => 1 << 50,
        "e" | "eb" => 1_000_000_000_000_000_000,
        "ei" | "eib" => 1 << 60,
        _ => return Err(format!("unhandled size name: {unit}")),
    };
    let v = f * multiplier as f64;
    if v >= u64::MAX as f64 {
        return Err(format!("too large: {text}"));
    }
    Ok(v as u64)
}

/// Humanized bytes (`20MB`, `1.5 KiB`, `512`, `3kB`, case-insensitive units B KB/kB MB GB TB PB KiB MiB GiB TiB PiB) in bytes.
pub fn bytes(text: &str) -> Option<f64> {
    bytes_u64(text).ok().map(|b| b as f64)
}
