//! TraceQL's syntax tree, as Tempo's grammar (`pkg/traceql/expr.y`) has it:
//! a query is a pipeline whose elements are spanset expressions (filters
//! `{ ... }` combined by `&&`, `||` and the structural operators), scalar
//! filters over aggregates (`count() > 3`), `by(...)`, `coalesce()` and
//! `select(...)`; a filter's condition is a field expression over
//! attributes, intrinsics and literals.
//!
//! [`fmt::Display`] writes a tree back as TraceQL that parses to the same
//! tree, every binary operation in brackets, so its shape shows.

use std::fmt;

use sextant_model::{SpanKind, SpanStatus};

/// A whole query: a pipeline, and the hints of a trailing `with(...)`.
#[derive(Debug, Clone)]
pub struct Query {
    pub pipeline: Pipeline,
    /// `with(most_recent=true)`: read and kept, changing nothing here.
    pub hints: Vec<Hint>,
}

/// One hint of `with(name=value, ...)`.
#[derive(Debug, Clone)]
pub struct Hint {
    pub name: String,
    pub value: Static,
}

/// Elements joined by `|`, at least one; each works on the spansets the
/// one before gave.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub elements: Vec<Element>,
}

/// One element of a pipeline.
#[derive(Debug, Clone)]
pub enum Element {
    /// `{ ... }`, or spansets combined: `{ a } && { b }`, `{ a } >> { b }`.
    Spanset(SpansetExpr),
    /// `count() > 3`, `avg(duration) >= 1s`: keeps the spansets it holds for.
    Scalar(ScalarFilter),
    /// `by(resource.service.name)`: splits each spanset by the value.
    By(FieldExpr),
    /// `coalesce()`: joins all spansets of a trace into one.
    Coalesce,
    /// `select(span.a, duration)`: attributes (or intrinsics) to show.
    Select(Vec<FieldExpr>),
}

/// Spansets from filters and operators between them.
#[derive(Debug, Clone)]
pub enum SpansetExpr {
    /// `{ condition }`; `{}` is `{ true }`.
    Filter(FieldExpr),
    /// `lhs op rhs`.
    Op(Box<SpansetOp>),
    /// `( pipeline )`: a pipeline in brackets, an operand like a filter.
    Wrapped(Box<Pipeline>),
}

/// Two spanset expressions and the operator between them.
#[derive(Debug, Clone)]
pub struct SpansetOp {
    pub op: SpansetOperator,
    pub lhs: SpansetExpr,
    pub rhs: SpansetExpr,
}

/// The operators between spansets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpansetOperator {
    /// `&&`: both sides match; their spans together.
    And,
    /// `||`: either side matches; their spans together.
    Or,
    /// `>`: right-hand spans that are children of left-hand ones.
    Child,
    /// `<`: right-hand spans that are parents of left-hand ones.
    Parent,
    /// `>>`: right-hand spans that descend from left-hand ones.
    Descendant,
    /// `<<`: right-hand spans that are ancestors of left-hand ones.
    Ancestor,
    /// `~`: right-hand spans that are siblings of left-hand ones.
    Sibling,
    /// `!>`: right-hand spans that are not children of left-hand ones.
    NotChild,
    /// `!<`
    NotParent,
    /// `!>>`
    NotDescendant,
    /// `!<<`
    NotAncestor,
    /// `!~`
    NotSibling,
    /// `&>`: both sides' spans that are in a parent-child pair.
    UnionChild,
    /// `&<`
    UnionParent,
    /// `&>>`
    UnionDescendant,
    /// `&<<`
    UnionAncestor,
    /// `&~`
    UnionSibling,
}

impl SpansetOperator {
    /// As written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::And => "&&",
            Self::Or => "||",
            Self::Child => ">",
            Self::Parent => "<",
            Self::Descendant => ">>",
            Self::Ancestor => "<<",
            Self::Sibling => "~",
            Self::NotChild => "!>",
            Self::NotParent => "!<",
            Self::NotDescendant => "!>>",
            Self::NotAncestor => "!<<",
            Self::NotSibling => "!~",
            Self::UnionChild => "&>",
            Self::UnionParent => "&<",
            Self::UnionDescendant => "&>>",
            Self::UnionAncestor => "&<<",
            Self::UnionSibling => "&~",
        }
    }
}

/// `lhs op rhs` over numbers that aggregate a spanset.
#[derive(Debug, Clone)]
pub struct ScalarFilter {
    /// A comparison: `=`, `!=`, `<`, `<=`, `>`, `>=`.
    pub op: BinaryOp,
    pub lhs: ScalarExpr,
    pub rhs: ScalarExpr,
}

/// A number computed per spanset.
#[derive(Debug, Clone)]
pub enum ScalarExpr {
    Aggregate(Box<Aggregate>),
    /// A number or a duration.
    Static(Static),
    /// Arithmetic: `count() * 2`, `sum(duration) / 2`.
    Binary(Box<ScalarBinary>),
}

/// Arithmetic between scalar expressions.
#[derive(Debug, Clone)]
pub struct ScalarBinary {
    /// `+`, `-`, `*`, `/`, `%`, `^`.
    pub op: BinaryOp,
    pub lhs: ScalarExpr,
    pub rhs: ScalarExpr,
}

/// `count()`, `avg(duration)`, `min(span.x)`, `max(...)`, `sum(...)`.
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub op: AggregateOp,
    /// `None` for `count()`.
    pub field: Option<FieldExpr>,
}

/// The aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateOp {
    Count,
    Avg,
    Min,
    Max,
    Sum,
}

impl AggregateOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Sum => "sum",
        }
    }
}

/// A value computed for a span.
#[derive(Debug, Clone)]
pub enum FieldExpr {
    Static(Static),
    Attribute(Attribute),
    Intrinsic(Intrinsic),
    Binary(Box<BinaryExpr>),
    /// `=~` and `!~`, with a literal pattern.
    Regex(Box<RegexMatch>),
    Unary(UnaryOp, Box<FieldExpr>),
}

/// `lhs op rhs`.
#[derive(Debug, Clone)]
pub struct BinaryExpr {
    pub op: BinaryOp,
    pub lhs: FieldExpr,
    pub rhs: FieldExpr,
}

/// `lhs =~ "pattern"` (or `!~`): the pattern must match the whole value,
/// as Tempo's (Prometheus's) matchers do.
#[derive(Debug, Clone)]
pub struct RegexMatch {
    pub lhs: FieldExpr,
    pub negated: bool,
    /// As written.
    pub pattern: String,
    /// `^(?s:pattern)$`.
    pub regex: regex::Regex,
}

/// Binary operators of field and scalar expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    And,
    Or,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl BinaryOp {
    /// As written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::And => "&&",
            Self::Or => "||",
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
            Self::Mod => "%",
            Self::Pow => "^",
        }
    }

    /// `=`, `!=`, `<`, `<=`, `>`, `>=`.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            Self::Eq | Self::Ne | Self::Gt | Self::Ge | Self::Lt | Self::Le
        )
    }

    /// `+`, `-`, `*`, `/`, `%`, `^`.
    pub fn is_arithmetic(self) -> bool {
        matches!(
            self,
            Self::Add | Self::Sub | Self::Mul | Self::Div | Self::Mod | Self::Pow
        )
    }
}

/// Unary operators; `Exists` and `NotExists` are what `!= nil` and `= nil`
/// become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `!x`
    Not,
    /// `-x`
    Neg,
    /// `x != nil`
    Exists,
    /// `x = nil`
    NotExists,
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Static {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Nanoseconds.
    Duration(i64),
    /// `ok`, `error`, `unset`.
    Status(SpanStatus),
    /// `server`, `client`, `producer`, `consumer`, `internal`, `unspecified`.
    Kind(SpanKind),
}

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeScope {
    /// `.name`: the span's attribute or its resource's.
    None,
    /// `span.name`
    Span,
    /// `resource.name`
    Resource,
    /// `event.name`: any of the span's events.
    Event,
}

/// `span.http.method`, `resource."service.name"`, `.x`, `parent.span.x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub scope: AttributeScope,
    /// `parent.`: looked up on the span's parent.
    pub parent: bool,
    pub name: String,
}

/// The intrinsic fields (`span:name` and the other scoped forms read as
/// the same field as their unscoped names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intrinsic {
    /// `duration`, `span:duration`
    Duration,
    /// `name`, `span:name`
    Name,
    /// `status`, `span:status`
    Status,
    /// `statusMessage`, `span:statusMessage`
    StatusMessage,
    /// `kind`, `span:kind`
    Kind,
    /// `rootName`, `trace:rootName`
    RootName,
    /// `rootServiceName`, `trace:rootService`
    RootServiceName,
    /// `traceDuration`, `trace:duration`
    TraceDuration,
    /// `trace:id`
    TraceId,
    /// `span:id`
    SpanId,
    /// `span:parentID`
    ParentId,
    /// `span:childCount`
    ChildCount,
    /// `event:name`
    EventName,
    /// `event:timeSinceStart`
    EventTimeSinceStart,
    /// `link:traceID`
    LinkTraceId,
    /// `link:spanID`
    LinkSpanId,
    /// `instrumentation:name`
    InstrumentationName,
    /// `instrumentation:version`
    InstrumentationVersion,
}

impl Intrinsic {
    /// As Tempo names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duration => "duration",
            Self::Name => "name",
            Self::Status => "status",
            Self::StatusMessage => "statusMessage",
            Self::Kind => "kind",
            Self::RootName => "rootName",
            Self::RootServiceName => "rootServiceName",
            Self::TraceDuration => "traceDuration",
            Self::TraceId => "trace:id",
            Self::SpanId => "span:id",
            Self::ParentId => "span:parentID",
            Self::ChildCount => "span:childCount",
            Self::EventName => "event:name",
            Self::EventTimeSinceStart => "event:timeSinceStart",
            Self::LinkTraceId => "link:traceID",
            Self::LinkSpanId => "link:spanID",
            Self::InstrumentationName => "instrumentation:name",
            Self::InstrumentationVersion => "instrumentation:version",
        }
    }
}

/// TraceQL's names of the span statuses.
pub fn status_name(status: SpanStatus) -> &'static str {
    match status {
        SpanStatus::Ok => "ok",
        SpanStatus::Error => "error",
        SpanStatus::Unset => "unset",
    }
}

/// A duration as Go's `time.Duration.String` writes it (`1.5s`, `100ms`,
/// `2m0s`, `1h0m0s`, `0s`): how Tempo reports durations, and TraceQL reads.
pub fn go_duration(ns: i64) -> String {
    let negative = ns < 0;
    let mut u = ns.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Below a second: one unit, with a fraction.
        let (unit, scale) = match u {
            0 => return "0s".to_owned(),
            1..=999 => ("ns", 1),
            1_000..=999_999 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        out.push_str(&with_fraction(u / scale, u % scale, scale));
        out.push_str(unit);
    } else {
        let seconds = with_fraction((u / 1_000_000_000) % 60, u % 1_000_000_000, 1_000_000_000);
        u /= 1_000_000_000;
        let minutes = (u / 60) % 60;
        let hours = u / 3600;
        if hours > 0 {
            out.push_str(&format!("{hours}h{minutes}m"));
        } else if minutes > 0 {
            out.push_str(&format!("{minutes}m"));
        }
        out.push_str(&seconds);
        out.push('s');
    }
    if negative {
        out.insert(0, '-');
    }
    out
}

/// `whole.fraction` with the fraction's trailing zeros (and a bare point) dropped.
fn with_fraction(whole: u64, fraction: u64, scale: u64) -> String {
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let text = format!("{fraction:0digits$}");
    format!("{whole}.{}", text.trim_end_matches('0'))
}

// ---- writing trees back as TraceQL -------------------------------------

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.pipeline)?;
        if !self.hints.is_empty() {
            f.write_str(" with(")?;
            for (i, hint) in self.hints.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{}={}", hint.name, hint.value)?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, element) in self.elements.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{element}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spanset(expr) => write!(f, "{expr}"),
            Self::Scalar(filter) => write!(f, "{filter}"),
            Self::By(expr) => write!(f, "by({expr})"),
            Self::Coalesce => f.write_str("coalesce()"),
            Self::Select(fields) => {
                f.write_str("select(")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{field}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl fmt::Display for SpansetExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Filter(FieldExpr::Static(Static::Bool(true))) => f.write_str("{ }"),
            Self::Filter(expr) => write!(f, "{{ {expr} }}"),
            Self::Op(op) => write!(f, "({} {} {})", op.lhs, op.op.as_str(), op.rhs),
            Self::Wrapped(pipeline) => write!(f, "({pipeline})"),
        }
    }
}

impl fmt::Display for ScalarFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.lhs, self.op.as_str(), self.rhs)
    }
}

impl fmt::Display for ScalarExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Aggregate(aggregate) => write!(f, "{aggregate}"),
            Self::Static(value) => write!(f, "{value}"),
            Self::Binary(b) => write!(f, "({} {} {})", b.lhs, b.op.as_str(), b.rhs),
        }
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            None => write!(f, "{}()", self.op.as_str()),
            Some(field) => write!(f, "{}({field})", self.op.as_str()),
        }
    }
}

impl fmt::Display for FieldExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static(value) => write!(f, "{value}"),
            Self::Attribute(attribute) => write!(f, "{attribute}"),
            Self::Intrinsic(intrinsic) => f.write_str(intrinsic.as_str()),
            Self::Binary(b) => write!(f, "({} {} {})", b.lhs, b.op.as_str(), b.rhs),
            Self::Regex(r) => {
                let op = if r.negated { "!~" } else { "=~" };
                write!(f, "({} {op} {})", r.lhs, Static::Str(r.pattern.clone()))
            }
            Self::Unary(UnaryOp::Not, inner) => write!(f, "!{inner}"),
            Self::Unary(UnaryOp::Neg, inner) => write!(f, "-{inner}"),
            Self::Unary(UnaryOp::Exists, inner) => write!(f, "({inner} != nil)"),
            Self::Unary(UnaryOp::NotExists, inner) => write!(f, "({inner} = nil)"),
        }
    }
}

impl fmt::Display for Static {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nil => f.write_str("nil"),
            Self::Bool(b) => write!(f, "{b}"),
            // Its digits alone do not fit an integer literal.
            Self::Int(i64::MIN) => f.write_str("minInt"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => {
                let text = format!("{x:?}");
                f.write_str(&text)
            }
            Self::Str(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        '\r' => f.write_str("\\r")?,
                        '\t' => f.write_str("\\t")?,
                        c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
            Self::Duration(ns) => f.write_str(&go_duration(*ns)),
            Self::Status(status) => f.write_str(status_name(*status)),
            Self::Kind(kind) => f.write_str(kind.as_str()),
        }
    }
}

/// Whether `c` may stand in an attribute name unquoted, as Tempo's lexer
/// has it: anything but white space and `{}()=~!<>&|^,` (and the quote,
/// which starts a quoted part).
pub(super) fn is_attribute_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ',' | '"'
        )
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = match self.scope {
            AttributeScope::None => "",
            AttributeScope::Span => "span.",
            AttributeScope::Resource => "resource.",
            AttributeScope::Event => "event.",
        };
        let parent = if self.parent { "parent." } else { "" };
        let lead = if parent.is_empty() && scope.is_empty() {
            "."
        } else {
            ""
        };
        write!(f, "{parent}{scope}{lead}")?;
        // Quoted when it could read otherwise: `.5` is a number, and
        // `parent.span.x` the span scope's `x`.
        let misread = match (self.parent, self.scope) {
            (false, AttributeScope::None) => self.name.starts_with(|c: char| c.is_ascii_digit()),
            (true, AttributeScope::None) => {
                self.name.starts_with("span.") || self.name.starts_with("resource.")
            }
            _ => false,
        };
        if !self.name.is_empty() && !misread && self.name.chars().all(is_attribute_char) {
            f.write_str(&self.name)
        } else {
            f.write_str("\"")?;
            for c in self.name.chars() {
                if matches!(c, '"' | '\\') {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (5, "5ns"),
            (1_500, "1.5µs"),
            (100_000_000, "100ms"),
            (83_333_333, "83.333333ms"),
            (1_500_000_000, "1.5s"),
            (120_000_000_000, "2m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (5_430_500_000_000, "1h30m30.5s"),
            (-2_000_000, "-2ms"),
        ];
        for (ns, text) in cases {
            assert_eq!(go_duration(*ns), *text, "{ns}");
        }
    }
}
