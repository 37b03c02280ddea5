//! LogQL's syntax tree, as Loki's grammar has it: a log query is a stream
//! selector and a pipeline; a metric query aggregates log ranges over time
//! and then over series, combined by binary operators.

use sextant_model::Matcher;

/// A whole query.
#[derive(Debug, Clone)]
pub enum Expr {
    /// `{...} | ...`: log lines.
    Log(LogExpr),
    /// Numbers over time.
    Metric(MetricExpr),
}

/// A stream selector and the stages its lines go through.
#[derive(Debug, Clone)]
pub struct LogExpr {
    /// `{name="value", ...}`: at least one matcher; Loki also requires one
    /// that does not match the empty string.
    pub selector: Vec<Matcher>,
    pub pipeline: Vec<Stage>,
}

/// One stage of a pipeline.
#[derive(Debug, Clone)]
pub enum Stage {
    /// `|= "a"`, `!= "a"`, `|~ "re"`, `!~ "re"`, `|> "<_> pattern"`, `!> ...`;
    /// `|= "a" or "b"` keeps a line holding either (for the negated
    /// operators, `or` keeps lines holding neither).
    LineFilter(LineFilter),
    /// `| json`, `| logfmt`, `| regexp "..."`, `| pattern "..."`, `| unpack`.
    Parser(Parser),
    /// `| level="error" and duration > 1s`.
    LabelFilter(LabelFilter),
    /// `| line_format "{{.a}} {{.b}}"`: the template as written (unquoted).
    LineFormat(String),
    /// `| label_format dst=src, dst2="{{.a}}"`.
    LabelFormat(Vec<LabelFmt>),
    /// `| drop a, b="x"`.
    Drop(Vec<LabelSel>),
    /// `| keep a, b="x"`.
    Keep(Vec<LabelSel>),
    /// `| decolorize`: strips ANSI colour codes from the line.
    Decolorize,
}

/// A line filter with its `or` alternatives.
#[derive(Debug, Clone)]
pub struct LineFilter {
    pub op: LineOp,
    /// At least one; the strings as written (unquoted).
    pub values: Vec<String>,
}

/// How a line filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOp {
    /// `|=`
    Contains,
    /// `!=`
    NotContains,
    /// `|~` (RE2, unanchored)
    Regex,
    /// `!~`
    NotRegex,
    /// `|>` (a pattern as `| pattern` takes, `<_>` for anything)
    Pattern,
    /// `!>`
    NotPattern,
}

/// A parser stage.
#[derive(Debug, Clone)]
pub enum Parser {
    /// `| json` (every key, nested keys joined with `_`), or `| json a="x.y",
    /// b="list[0]"` (only these, by JMESPath-like expressions).
    Json(Vec<(String, String)>),
    /// `| logfmt`, with `--strict`, `--keep-empty`, and optional `a="key"`
    /// extractions.
    Logfmt {
        strict: bool,
        keep_empty: bool,
        params: Vec<(String, String)>,
    },
    /// `| regexp "(?P<name>...)"`: the regex as written.
    Regexp(String),
    /// `| pattern "<ip> - <_> <status>"`: the pattern as written.
    Pattern(String),
    /// `| unpack`: a JSON line packed by promtail's `pack` stage.
    Unpack,
}

/// A label filter expression.
#[derive(Debug, Clone)]
pub enum LabelFilter {
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
    /// `name = "v"`, `!=`, `=~`, `!~` (the matcher is anchored as in selectors).
    Match(Matcher),
    /// `name > 5`, with the number as written parsed.
    Number {
        name: String,
        op: CmpOp,
        value: f64,
    },
    /// `name > 250ms`: the label's value parsed as a duration, in seconds.
    Duration {
        name: String,
        op: CmpOp,
        seconds: f64,
    },
    /// `name > 20MB`: the label's value parsed as a byte size.
    Bytes {
        name: String,
        op: CmpOp,
        bytes: f64,
    },
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==` or `=`
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// One entry of `label_format`.
#[derive(Debug, Clone)]
pub enum LabelFmt {
    /// `dst=src`: renames (the source label goes).
    Rename { dst: String, src: String },
    /// `dst="{{.a}}-{{.b}}"`: a template as written (unquoted).
    Template { dst: String, template: String },
}

/// One entry of `drop` or `keep`.
#[derive(Debug, Clone)]
pub enum LabelSel {
    Name(String),
    /// Only when the label also has this value.
    Matcher(Matcher),
}

/// A query giving numbers.
#[derive(Debug, Clone)]
pub enum MetricExpr {
    /// `count_over_time({...}[5m])`, `quantile_over_time(0.99, {...} | unwrap x [5m]) by (a)`.
    Range(RangeAgg),
    /// `sum by (a) (...)`, `topk(3, ...)`, `sort(...)`.
    Vector(VectorAgg),
    /// `a + b`, `a > bool 5`, `a / on (x) group_left b`.
    Binary(Box<Binary>),
    /// A number on its own: `2`, `-1.5`.
    Literal(f64),
    /// `vector(1)`.
    VectorOf(f64),
    /// `label_replace(expr, "dst", "replacement", "src", "regex")`.
    LabelReplace(Box<LabelReplace>),
}

/// A range aggregation over log lines (or unwrapped values).
#[derive(Debug, Clone)]
pub struct RangeAgg {
    pub op: RangeOp,
    pub range: LogRange,
    /// The φ of `quantile_over_time`.
    pub param: Option<f64>,
    /// `by`/`without` after the unwrapped range aggregations.
    pub grouping: Option<Grouping>,
}

/// Range aggregation functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    CountOverTime,
    Rate,
    BytesOverTime,
    BytesRate,
    AbsentOverTime,
    /// With `unwrap`: the rest need it.
    SumOverTime,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
    /// `rate_counter` (unwrapped values as a counter).
    RateCounter,
}

/// `{...} | pipeline [| unwrap x [| filters]] [5m] [offset 1h]`.
#[derive(Debug, Clone)]
pub struct LogRange {
    pub log: LogExpr,
    pub range_ms: i64,
    pub offset_ms: i64,
    pub unwrap: Option<Unwrap>,
}

/// `| unwrap latency`, `| unwrap duration(latency)`, `| unwrap bytes(size)`,
/// with the label filters that may follow it (`| __error__=""`).
#[derive(Debug, Clone)]
pub struct Unwrap {
    pub label: String,
    pub conversion: Conversion,
    pub post_filters: Vec<LabelFilter>,
}

/// How an unwrapped label's value becomes a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// A float as written.
    Number,
    /// `duration(x)` or `duration_seconds(x)`: a Go duration, in seconds.
    Duration,
    /// `bytes(x)`: `5 MB`, `1KiB`..., in bytes.
    Bytes,
}

/// `by (a, b)` or `without (c)`.
#[derive(Debug, Clone, Default)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

/// A vector aggregation.
#[derive(Debug, Clone)]
pub struct VectorAgg {
    pub op: AggOp,
    pub grouping: Option<Grouping>,
    /// The k of `topk`/`bottomk`.
    pub param: Option<f64>,
    pub inner: Box<MetricExpr>,
}

/// Vector aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Sort,
    SortDesc,
}

/// A binary operation between two metric queries (or numbers).
#[derive(Debug, Clone)]
pub struct Binary {
    pub op: BinOp,
    pub lhs: MetricExpr,
    pub rhs: MetricExpr,
    /// `bool` on a comparison.
    pub return_bool: bool,
    pub matching: Option<VectorMatching>,
}

/// Binary operators, as PromQL has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    And,
    Or,
    Unless,
}

/// `on (a)` / `ignoring (a)` and `group_left (b)` / `group_right (b)`.
#[derive(Debug, Clone, Default)]
pub struct VectorMatching {
    /// `on` rather than `ignoring`.
    pub on: bool,
    pub labels: Vec<String>,
    pub group: Option<Group>,
}

/// Many-to-one matching.
#[derive(Debug, Clone)]
pub struct Group {
    /// `group_left` rather than `group_right`.
    pub left: bool,
    /// Labels copied from the "one" side.
    pub include: Vec<String>,
}

/// `label_replace(inner, dst, replacement, src, regex)`.
#[derive(Debug, Clone)]
pub struct LabelReplace {
    pub inner: MetricExpr,
    pub dst: String,
    pub replacement: String,
    pub src: String,
    pub regex: String,
}
