//! TraceQL's parser: a hand-written recursive descent over [`super::lex`]'s
//! tokens, with precedence climbing for binary operators as Tempo's grammar
//! (`pkg/traceql/expr.y`) ranks them, Tempo's type checks
//! (`ast_validate.go`), and its error style: `parse error at line 1, col
//! 15: syntax error: unexpected ..., expecting ...`.
//!
//! Precedence, loosest first, as in Tempo: `|` between pipeline elements;
//! `&&` and `||` together (left to right: `a || b && c` is `(a || b) &&
//! c`, in conditions and between spansets alike); the comparisons, `=~`,
//! `!~` and the structural operators (`>`, `>>`, `~`...); `+` and `-`;
//! unary `!` and `-`; `*`, `/` and `%`; `^`, right-associative.
//!
//! The query's length is checked first, and every recursion (a bracket, a
//! filter, a unary operator, a binary operand) checks the nesting budget
//! before it goes deeper, so no text can overflow the stack; chains that a
//! loop builds (`a && b && c`, `{} && {} && {}`) count their height too, as
//! whatever walks the tree later recurses once per level.

use regex::Regex;
use sextant_model::{SpanKind, SpanStatus, depth};

use super::ast::{
    Aggregate, AggregateOp, Attribute, AttributeScope, BinaryExpr, BinaryOp, Element, FieldExpr,
    Hint, Intrinsic, Pipeline, Query, RegexMatch, ScalarBinary, ScalarExpr, ScalarFilter,
    SpansetExpr, SpansetOp, SpansetOperator, Static, UnaryOp,
};
use super::lex::{AttrScope, Tk, Token, tokenize};
use crate::Error;

/// Parses a TraceQL query: `{ resource.service.name = "cart" && status =
/// error } | count() > 2`. The error is [`Error::Parse`] with Tempo's
/// wording and the line and column of the problem.
pub fn parse(text: &str) -> Result<Query, Error> {
    parse_text(text).map_err(Error::Parse)
}

/// Errors inside the parser: the whole message, position included.
type R<T> = Result<T, String>;

/// The static type of a field expression, as Tempo's checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Nil,
    /// Only known when the query runs: an attribute, or arithmetic on one.
    Attribute,
    Int,
    Float,
    Str,
    Bool,
    Duration,
    Status,
    Kind,
}

impl Type {
    fn is_numeric(self) -> bool {
        matches!(self, Self::Int | Self::Float | Self::Duration)
    }

    /// Whether two types may meet in a binary operation.
    fn matches(self, other: Self) -> bool {
        self == Self::Attribute
            || other == Self::Attribute
            || self == other
            || (self.is_numeric() && other.is_numeric())
            || self == Self::Nil
            || other == Self::Nil
    }

    /// Whether `op` applies to this type.
    fn takes(self, op: BinaryOp) -> bool {
        use BinaryOp as B;
        match self {
            Self::Attribute => true,
            Self::Bool => matches!(op, B::And | B::Or | B::Eq | B::Ne),
            Self::Int | Self::Float | Self::Duration => op.is_arithmetic() || op.is_comparison(),
            Self::Str => op.is_comparison(),
            Self::Nil | Self::Status | Self::Kind => matches!(op, B::Eq | B::Ne),
        }
    }
}

/// A parsed field expression with what the checks and the budget need.
#[derive(Debug)]
struct Field {
    expr: FieldExpr,
    ty: Type,
    /// The height of its tree.
    height: usize,
    /// Whether it reads the span (an attribute or an intrinsic).
    reads_span: bool,
}

/// A parsed spanset expression and its height.
#[derive(Debug)]
struct Spanset {
    expr: SpansetExpr,
    height: usize,
}

/// A parsed scalar expression.
#[derive(Debug)]
struct Scalar {
    expr: ScalarExpr,
    ty: Type,
    height: usize,
    has_aggregate: bool,
}

/// The parser's state: the tokens and where it is among them.
#[derive(Debug)]
struct TraceqlParser<'a> {
    src: &'a str,
    toks: Vec<Token<'a>>,
    /// For each token, the index of the first token from it on that is not
    /// `(`: whether `((count()` may start a scalar filter is one look-up.
    after_parens: Vec<usize>,
    pos: usize,
}

/// Tempo's metrics functions, which trace search does not run.
const METRICS: [&str; 11] = [
    "rate",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "sum_over_time",
    "quantile_over_time",
    "histogram_over_time",
    "compare",
    "topk",
    "bottomk",
];

/// The aggregates, by name.
const AGGREGATES: [(&str, AggregateOp); 5] = [
    ("count", AggregateOp::Count),
    ("avg", AggregateOp::Avg),
    ("min", AggregateOp::Min),
    ("max", AggregateOp::Max),
    ("sum", AggregateOp::Sum),
];

/// Unscoped intrinsics, by name.
const INTRINSICS: [(&str, Intrinsic); 8] = [
    ("duration", Intrinsic::Duration),
    ("name", Intrinsic::Name),
    ("status", Intrinsic::Status),
    ("statusMessage", Intrinsic::StatusMessage),
    ("kind", Intrinsic::Kind),
    ("rootName", Intrinsic::RootName),
    ("rootServiceName", Intrinsic::RootServiceName),
    ("traceDuration", Intrinsic::TraceDuration),
];

/// Scoped intrinsics, by scope and name.
const SCOPED_INTRINSICS: [(&str, &str, Intrinsic); 18] = [
    ("trace", "duration", Intrinsic::TraceDuration),
    ("trace", "rootName", Intrinsic::RootName),
    ("trace", "rootService", Intrinsic::RootServiceName),
    ("trace", "id", Intrinsic::TraceId),
    ("span", "duration", Intrinsic::Duration),
    ("span", "name", Intrinsic::Name),
    ("span", "kind", Intrinsic::Kind),
    ("span", "status", Intrinsic::Status),
    ("span", "statusMessage", Intrinsic::StatusMessage),
    ("span", "id", Intrinsic::SpanId),
    ("span", "parentID", Intrinsic::ParentId),
    ("span", "childCount", Intrinsic::ChildCount),
    ("event", "name", Intrinsic::EventName),
    ("event", "timeSinceStart", Intrinsic::EventTimeSinceStart),
    ("link", "traceID", Intrinsic::LinkTraceId),
    ("link", "spanID", Intrinsic::LinkSpanId),
    ("instrumentation", "name", Intrinsic::InstrumentationName),
    (
        "instrumentation",
        "version",
        Intrinsic::InstrumentationVersion,
    ),
];

/// Literal words.
fn keyword_static(word: &str) -> Option<Static> {
    Some(match word {
        "true" => Static::Bool(true),
        "false" => Static::Bool(false),
        "nil" => Static::Nil,
        "ok" => Static::Status(SpanStatus::Ok),
        "error" => Static::Status(SpanStatus::Error),
        "unset" => Static::Status(SpanStatus::Unset),
        "unspecified" => Static::Kind(SpanKind::Unspecified),
        "internal" => Static::Kind(SpanKind::Internal),
        "server" => Static::Kind(SpanKind::Server),
        "client" => Static::Kind(SpanKind::Client),
        "producer" => Static::Kind(SpanKind::Producer),
        "consumer" => Static::Kind(SpanKind::Consumer),
        "minInt" => Static::Int(i64::MIN),
        "maxInt" => Static::Int(i64::MAX),
        _ => return None,
    })
}

fn static_type(value: &Static) -> Type {
    match value {
        Static::Nil => Type::Nil,
        Static::Bool(_) => Type::Bool,
        Static::Int(_) => Type::Int,
        Static::Float(_) => Type::Float,
        Static::Str(_) => Type::Str,
        Static::Duration(_) => Type::Duration,
        Static::Status(_) => Type::Status,
        Static::Kind(_) => Type::Kind,
    }
}

fn intrinsic_type(intrinsic: Intrinsic) -> Type {
    use Intrinsic as I;
    match intrinsic {
        I::Duration | I::TraceDuration | I::EventTimeSinceStart => Type::Duration,
        I::Status => Type::Status,
        I::Kind => Type::Kind,
        I::ChildCount => Type::Int,
        I::Name
        | I::StatusMessage
        | I::RootName
        | I::RootServiceName
        | I::TraceId
        | I::SpanId
        | I::ParentId
        | I::EventName
        | I::LinkTraceId
        | I::LinkSpanId
        | I::InstrumentationName
        | I::InstrumentationVersion => Type::Str,
    }
}

/// The type arithmetic on `a` and `b` gives.
fn arithmetic_type(a: Type, b: Type) -> Type {
    if a == Type::Attribute || b == Type::Attribute {
        Type::Attribute
    } else if a == Type::Duration || b == Type::Duration {
        Type::Duration
    } else if a == Type::Float || b == Type::Float {
        Type::Float
    } else {
        Type::Int
    }
}

/// Binding power of a binary operator in conditions.
fn field_precedence(op: BinaryOp) -> u8 {
    use BinaryOp as B;
    match op {
        B::And | B::Or => 1,
        B::Eq | B::Ne | B::Gt | B::Ge | B::Lt | B::Le => 2,
        B::Add | B::Sub => 3,
        B::Mul | B::Div | B::Mod => 5,
        B::Pow => 6,
    }
}

/// What unary `!` and `-` bind: tighter than `+`, looser than `*`.
const UNARY_OPERAND: u8 = 5;

/// Binding power of a spanset operator.
fn spanset_precedence(op: SpansetOperator) -> u8 {
    match op {
        SpansetOperator::And | SpansetOperator::Or => 1,
        _ => 2,
    }
}

fn parse_text(text: &str) -> R<Query> {
    if let Err(refusal) = depth::check_length(text) {
        let mut at = depth::max_query_bytes().min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        return Err(message_at(text, at, &refusal.to_string()));
    }
    let mut p = TraceqlParser::new(text);
    let (pipeline, _) = *p.pipeline(1)?;
    let hints = if p.is_word("with") {
        p.hints()?
    } else {
        Vec::new()
    };
    if !matches!(p.kind(), Tk::Eof) {
        return Err(p.unexpected(
            "\"|\", an operator between spansets (&&, ||, >, >>, ~...), with(...) or the end of the query",
        ));
    }
    Ok(Query { pipeline, hints })
}

/// `parse error at line L, col C: message`, the column counted in characters.
fn message_at(src: &str, at: usize, message: &str) -> String {
    let before = &src[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("parse error at line {line}, col {col}: {message}")
}

/// Quoted, and cut to a length an error message can carry.
fn short(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

/// A regex error on one line: the crate's syntax errors draw a caret under
/// the pattern over several lines; the last line names the problem.
fn regex_error(error: &regex::Error) -> String {
    match error {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or(text)
            .to_owned(),
        regex::Error::CompiledTooBig(limit) => {
            format!("the compiled regex is larger than {limit} bytes")
        }
        other => other.to_string(),
    }
}

impl<'a> TraceqlParser<'a> {
    fn new(src: &'a str) -> Self {
        let toks = tokenize(src);
        let mut after_parens = vec![0; toks.len()];
        for i in (0..toks.len()).rev() {
            after_parens[i] = match toks[i].kind {
                Tk::Punct("(") if i + 1 < toks.len() => after_parens[i + 1],
                _ => i,
            };
        }
        Self {
            src,
            toks,
            after_parens,
            pos: 0,
        }
    }

    // ---- tokens -------------------------------------------------------

    fn kind(&self) -> &Tk<'a> {
        &self.toks[self.pos].kind
    }

    fn kind_at(&self, index: usize) -> &Tk<'a> {
        &self.toks[index.min(self.toks.len() - 1)].kind
    }

    fn peek(&self, ahead: usize) -> &Tk<'a> {
        self.kind_at(self.pos + ahead)
    }

    fn at(&self) -> usize {
        self.toks[self.pos].start
    }

    /// Moves past the current token; the last (the end or an error) stays.
    fn bump(&mut self) {
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.kind(), Tk::Punct(q) if *q == p)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        let found = self.is_punct(p);
        if found {
            self.bump();
        }
        found
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.kind(), Tk::Ident(w) if *w == word)
    }

    fn expect_punct(&mut self, p: &str, expecting: &str) -> R<()> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.unexpected(expecting))
        }
    }

    fn error_at(&self, at: usize, message: &str) -> String {
        message_at(self.src, at, message)
    }

    /// The current token was not what the grammar allows here.
    fn unexpected(&self, expecting: &str) -> String {
        let token = &self.toks[self.pos];
        let found = match &token.kind {
            Tk::Err(message) => return self.error_at(token.start, message),
            Tk::Eof => "end of query".to_owned(),
            Tk::Ident(name) => format!("identifier {name:?}"),
            Tk::Punct("==") => {
                return self.error_at(
                    token.start,
                    "syntax error: unexpected \"==\": TraceQL compares with = (and !=, >, >=, <, <=, =~, !~)",
                );
            }
            Tk::Punct(p) => format!("\"{p}\""),
            Tk::Colon(scope) => format!("\"{scope}:\""),
            kind => {
                let what = match kind {
                    Tk::Attr(_) => "attribute",
                    Tk::Str(_) => "string",
                    Tk::Dur(_) => "duration",
                    _ => "number",
                };
                format!("{what} {}", short(&self.src[token.start..token.end]))
            }
        };
        self.error_at(
            token.start,
            &format!("syntax error: unexpected {found}, expecting {expecting}"),
        )
    }

    /// Refuses going deeper than the budget.
    fn enter(&self, depth: usize) -> R<()> {
        depth::check_depth(depth).map_err(|e| self.error_at(self.at(), &e.to_string()))
    }

    /// Refuses a tree taller than the budget.
    fn check_height(&self, height: usize, at: usize) -> R<()> {
        depth::check_depth(height).map_err(|e| self.error_at(at, &e.to_string()))
    }

    // ---- pipelines ------------------------------------------------------
    //
    // The functions a nesting recurses through (`pipeline`, `element`,
    // `spanset_expr`, `spanset_operand`, `field_expr`, `field_operand`,
    // `scalar_expr`, `scalar_operand`) hold only small values and leave the
    // rest to helpers that return before the recursion goes on: a debug
    // build gives every temporary its own stack slot, and the whole budget
    // must fit a test thread's 2 MiB.

    /// Elements joined by `|`, and the height of the tallest.
    fn pipeline(&mut self, depth: usize) -> R<Box<(Pipeline, usize)>> {
        self.enter(depth)?;
        let mut out = Box::new((
            Pipeline {
                elements: Vec::new(),
            },
            0,
        ));
        loop {
            let element = self.element(depth)?;
            out.1 = out.1.max(element.1);
            out.0.elements.push(element.0);
            if !self.eat_punct("|") {
                return Ok(out);
            }
        }
    }

    /// One pipeline element and its height.
    fn element(&mut self, depth: usize) -> R<Box<(Element, usize)>> {
        match self.element_kind() {
            ElementKind::By => self.by(depth),
            ElementKind::Coalesce => self.coalesce(),
            ElementKind::Select => self.select(),
            ElementKind::Scalar => {
                let filter = self.scalar_filter(depth);
                filter.map(|(f, h)| Box::new((Element::Scalar(f), h)))
            }
            ElementKind::Metrics(name) => Err(self.error_at(
                self.at(),
                &format!(
                    "metrics queries ({name}) are not supported by trace search: a query here is a spanset pipeline such as {{ status = error }} | count() > 1"
                ),
            )),
            ElementKind::Spanset => {
                let spanset = self.spanset_expr(0, depth);
                spanset.map(|s| Box::new((Element::Spanset(s.expr), s.height)))
            }
            ElementKind::Either => self.scalar_or_spanset(depth),
        }
    }

    /// A bracketed scalar filter, else a spanset expression; when neither
    /// reads, the error of the one that read further.
    #[inline(never)]
    fn scalar_or_spanset(&mut self, depth: usize) -> R<Box<(Element, usize)>> {
        let start = self.pos;
        let scalar_error = match self.scalar_filter(depth) {
            Ok((filter, height)) => return Ok(Box::new((Element::Scalar(filter), height))),
            Err(e) => e,
        };
        let scalar_reached = self.pos;
        self.pos = start;
        match self.spanset_expr(0, depth) {
            Ok(s) => Ok(Box::new((Element::Spanset(s.expr), s.height))),
            Err(_) if scalar_reached > self.pos => Err(scalar_error),
            Err(e) => Err(e),
        }
    }

    /// What the element here is, from its first tokens.
    fn element_kind(&self) -> ElementKind {
        let call = |name: &str| {
            matches!(self.kind(), Tk::Ident(w) if *w == name)
                && matches!(self.peek(1), Tk::Punct("("))
        };
        if call("by") {
            return ElementKind::By;
        }
        if call("coalesce") {
            return ElementKind::Coalesce;
        }
        if call("select") {
            return ElementKind::Select;
        }
        if let Tk::Ident(w) = *self.kind()
            && let Some(name) = METRICS.iter().find(|m| **m == w)
            && matches!(self.peek(1), Tk::Punct("("))
        {
            return ElementKind::Metrics(name);
        }
        let first = self.after_parens[self.pos];
        let scalar = match self.kind_at(first) {
            Tk::Ident(w) => {
                AGGREGATES.iter().any(|(a, _)| a == w)
                    && matches!(self.kind_at(first + 1), Tk::Punct("("))
            }
            Tk::Int(_) | Tk::Float(_) | Tk::Dur(_) | Tk::Punct("-") => true,
            _ => false,
        };
        match (scalar, first == self.pos) {
            (false, _) => ElementKind::Spanset,
            (true, true) => ElementKind::Scalar,
            // `(count() + 1) > 2` or `(count() > 1) > { }`.
            (true, false) => ElementKind::Either,
        }
    }

    /// `by(expr)`.
    fn by(&mut self, depth: usize) -> R<Box<(Element, usize)>> {
        let start = self.at();
        self.bump();
        self.bump();
        let field = self.field_expr(0, depth + 1)?;
        self.expect_punct(")", "\")\" to close by(")?;
        if !field.reads_span {
            return Err(self.error_at(
                start,
                &format!(
                    "grouping field expressions must reference the span: by({})",
                    short(&field.expr.to_string())
                ),
            ));
        }
        let height = field.height + 1;
        self.check_height(height, start)?;
        Ok(Box::new((Element::By(field.expr), height)))
    }

    /// `coalesce()`.
    fn coalesce(&mut self) -> R<Box<(Element, usize)>> {
        self.bump();
        self.bump();
        self.expect_punct(")", "\")\": coalesce() takes nothing")?;
        Ok(Box::new((Element::Coalesce, 1)))
    }

    /// `select(span.a, resource.b, duration)`.
    fn select(&mut self) -> R<Box<(Element, usize)>> {
        self.bump();
        self.bump();
        let mut fields = Vec::new();
        loop {
            let (at, pos) = (self.at(), self.pos);
            let field = match self.field_leaf(at)? {
                Some(field @ (FieldExpr::Attribute(_) | FieldExpr::Intrinsic(_))) => field,
                _ => {
                    self.pos = pos;
                    return Err(self.unexpected(
                        "an attribute such as span.http.route or an intrinsic such as duration in select(...)",
                    ));
                }
            };
            fields.push(field);
            if !self.eat_punct(",") {
                break;
            }
        }
        self.expect_punct(")", "\",\" or \")\" to close select(")?;
        Ok(Box::new((Element::Select(fields), 1)))
    }

    /// `with(name=value, ...)` after the pipeline.
    fn hints(&mut self) -> R<Vec<Hint>> {
        self.bump();
        self.expect_punct("(", "\"(\" after with")?;
        let mut hints = Vec::new();
        loop {
            let Tk::Ident(name) = *self.kind() else {
                return Err(self.unexpected("a hint name such as most_recent"));
            };
            self.bump();
            self.expect_punct("=", "\"=\" after a hint name")?;
            let value = match self.kind() {
                Tk::Str(s) => Static::Str(s.clone()),
                Tk::Int(i) => Static::Int(*i),
                Tk::Float(x) => Static::Float(*x),
                Tk::Dur(ns) => Static::Duration(*ns),
                Tk::Ident("true") => Static::Bool(true),
                Tk::Ident("false") => Static::Bool(false),
                _ => {
                    return Err(self.unexpected(
                        "a hint value: a string, a number, a duration, true or false",
                    ));
                }
            };
            self.bump();
            hints.push(Hint {
                name: name.to_owned(),
                value,
            });
            if !self.eat_punct(",") {
                break;
            }
        }
        self.expect_punct(")", "\",\" or \")\" to close with(")?;
        Ok(hints)
    }

    // ---- spanset expressions -------------------------------------------

    /// Spanset operators binding at least as tightly as `min_prec`, left to right.
    #[allow(clippy::question_mark)]
    fn spanset_expr(&mut self, min_prec: u8, depth: usize) -> R<Box<Spanset>> {
        let mut lhs = match self.spanset_operand(depth) {
            Ok(lhs) => lhs,
            err => return err,
        };
        while let Some(op) = self.spanset_operator()
            && spanset_precedence(op) >= min_prec
        {
            let at = self.at();
            self.bump();
            let rhs = self.spanset_expr(spanset_precedence(op) + 1, depth + 1);
            lhs = match self.join_spansets(op, lhs, rhs, at) {
                Ok(joined) => joined,
                err => return err,
            };
        }
        Ok(lhs)
    }

    fn spanset_operator(&self) -> Option<SpansetOperator> {
        use SpansetOperator as S;
        let Tk::Punct(p) = *self.kind() else {
            return None;
        };
        Some(match p {
            "&&" => S::And,
            "||" => S::Or,
            ">" => S::Child,
            "<" => S::Parent,
            ">>" => S::Descendant,
            "<<" => S::Ancestor,
            "~" => S::Sibling,
            "!>" => S::NotChild,
            "!<" => S::NotParent,
            "!>>" => S::NotDescendant,
            "!<<" => S::NotAncestor,
            "!~" => S::NotSibling,
            "&>" => S::UnionChild,
            "&<" => S::UnionParent,
            "&>>" => S::UnionDescendant,
            "&<<" => S::UnionAncestor,
            "&~" => S::UnionSibling,
            _ => return None,
        })
    }

    // Boxed operands keep the recursing caller's frame small.
    #[allow(clippy::boxed_local)]
    #[inline(never)]
    fn join_spansets(
        &self,
        op: SpansetOperator,
        lhs: Box<Spanset>,
        rhs: R<Box<Spanset>>,
        at: usize,
    ) -> R<Box<Spanset>> {
        let rhs = rhs?;
        let height = lhs.height.max(rhs.height) + 1;
        self.check_height(height, at)?;
        Ok(Box::new(Spanset {
            expr: SpansetExpr::Op(Box::new(SpansetOp {
                op,
                lhs: lhs.expr,
                rhs: rhs.expr,
            })),
            height,
        }))
    }

    /// `{ ... }` or `( pipeline )`.
    fn spanset_operand(&mut self, depth: usize) -> R<Box<Spanset>> {
        self.enter(depth)?;
        if self.is_punct("{") {
            let start = self.at();
            self.bump();
            if self.eat_punct("}") {
                return Ok(Box::new(Spanset {
                    expr: SpansetExpr::Filter(FieldExpr::Static(Static::Bool(true))),
                    height: 1,
                }));
            }
            let field = self.field_expr(0, depth + 1);
            return self.close_filter(field, start);
        }
        if self.is_punct("(") {
            let start = self.at();
            self.bump();
            let inner = self.pipeline(depth + 1);
            return self.close_wrapped(inner, start);
        }
        Err(self.unexpected("a spanset filter such as { span.http.method = \"GET\" }, or \"(\""))
    }

    #[inline(never)]
    fn close_filter(&mut self, field: R<Box<Field>>, start: usize) -> R<Box<Spanset>> {
        let field = field?;
        self.expect_punct(
            "}",
            "\"}\" or an operator (&&, ||, =, !=, >, <, =~, +, ...)",
        )?;
        if !matches!(field.ty, Type::Bool | Type::Attribute) {
            return Err(self.error_at(
                start,
                &format!(
                    "span filter field expressions must resolve to a boolean: {{ {} }}",
                    short(&field.expr.to_string())
                ),
            ));
        }
        let height = field.height + 1;
        self.check_height(height, start)?;
        Ok(Box::new(Spanset {
            expr: SpansetExpr::Filter(field.expr),
            height,
        }))
    }

    #[inline(never)]
    fn close_wrapped(&mut self, inner: R<Box<(Pipeline, usize)>>, start: usize) -> R<Box<Spanset>> {
        let mut inner = inner?;
        self.expect_punct(")", "\")\", \"|\" or an operator between spansets")?;
        // A bracketed spanset expression is that expression.
        if inner.0.elements.len() == 1
            && let Some(Element::Spanset(_)) = inner.0.elements.first()
            && let Some(Element::Spanset(expr)) = inner.0.elements.pop()
        {
            return Ok(Box::new(Spanset {
                expr,
                height: inner.1,
            }));
        }
        let height = inner.1 + 1;
        self.check_height(height, start)?;
        Ok(Box::new(Spanset {
            expr: SpansetExpr::Wrapped(Box::new(inner.0)),
            height,
        }))
    }

    // ---- scalar filters -------------------------------------------------

    /// `count() > 3`, `avg(duration) >= 1s`, `2 < sum(span.x) / 2`.
    fn scalar_filter(&mut self, depth: usize) -> R<(ScalarFilter, usize)> {
        let start = self.at();
        let lhs = self.scalar_expr(0, depth + 1)?;
        let op = match self.kind() {
            Tk::Punct("=") => BinaryOp::Eq,
            Tk::Punct("!=") => BinaryOp::Ne,
            Tk::Punct(">") => BinaryOp::Gt,
            Tk::Punct(">=") => BinaryOp::Ge,
            Tk::Punct("<") => BinaryOp::Lt,
            Tk::Punct("<=") => BinaryOp::Le,
            _ => {
                return Err(self.unexpected(
                    "a comparison (=, !=, <, <=, >, >=) after an aggregate, as in count() > 3",
                ));
            }
        };
        let at = self.at();
        self.bump();
        let rhs = self.scalar_expr(0, depth + 1)?;
        let filter = ScalarFilter {
            op,
            lhs: lhs.expr,
            rhs: rhs.expr,
        };
        if !lhs.has_aggregate && !rhs.has_aggregate {
            return Err(self.error_at(
                start,
                &format!(
                    "a scalar filter needs an aggregate (count(), avg(...), min(...), max(...), sum(...)): {}",
                    short(&filter.to_string())
                ),
            ));
        }
        if !lhs.ty.matches(rhs.ty) {
            return Err(self.error_at(
                at,
                &format!(
                    "binary operations must operate on the same type: {}",
                    short(&filter.to_string())
                ),
            ));
        }
        let height = lhs.height.max(rhs.height) + 1;
        self.check_height(height, start)?;
        Ok((filter, height))
    }

    /// Arithmetic on aggregates and numbers, by precedence climbing.
    #[allow(clippy::question_mark)]
    fn scalar_expr(&mut self, min_prec: u8, depth: usize) -> R<Box<Scalar>> {
        let mut lhs = match self.scalar_operand(depth) {
            Ok(lhs) => lhs,
            err => return err,
        };
        while let Some(op) = self.arithmetic_operator()
            && field_precedence(op) >= min_prec
        {
            let at = self.at();
            self.bump();
            let prec = field_precedence(op);
            let next = if op == BinaryOp::Pow { prec } else { prec + 1 };
            let rhs = self.scalar_expr(next, depth + 1);
            lhs = match self.join_scalars(op, lhs, rhs, at) {
                Ok(joined) => joined,
                err => return err,
            };
        }
        Ok(lhs)
    }

    fn arithmetic_operator(&self) -> Option<BinaryOp> {
        Some(match self.kind() {
            Tk::Punct("+") => BinaryOp::Add,
            Tk::Punct("-") => BinaryOp::Sub,
            Tk::Punct("*") => BinaryOp::Mul,
            Tk::Punct("/") => BinaryOp::Div,
            Tk::Punct("%") => BinaryOp::Mod,
            Tk::Punct("^") => BinaryOp::Pow,
            _ => return None,
        })
    }

    // Boxed operands keep the recursing caller's frame small.
    #[allow(clippy::boxed_local)]
    #[inline(never)]
    fn join_scalars(
        &self,
        op: BinaryOp,
        lhs: Box<Scalar>,
        rhs: R<Box<Scalar>>,
        at: usize,
    ) -> R<Box<Scalar>> {
        let rhs = rhs?;
        let height = lhs.height.max(rhs.height) + 1;
        self.check_height(height, at)?;
        let ty = arithmetic_type(lhs.ty, rhs.ty);
        let has_aggregate = lhs.has_aggregate || rhs.has_aggregate;
        let expr = ScalarExpr::Binary(Box::new(ScalarBinary {
            op,
            lhs: lhs.expr,
            rhs: rhs.expr,
        }));
        Ok(Box::new(Scalar {
            expr,
            ty,
            height,
            has_aggregate,
        }))
    }

    /// An aggregate, a number or duration (negative ones folded), or a bracket.
    fn scalar_operand(&mut self, depth: usize) -> R<Box<Scalar>> {
        self.enter(depth)?;
        if self.eat_punct("(") {
            let inner = self.scalar_expr(0, depth + 1);
            return match inner {
                Ok(inner) => {
                    self.expect_punct(")", "\")\" or an arithmetic operator")?;
                    Ok(inner)
                }
                err => err,
            };
        }
        self.scalar_leaf(depth)
    }

    #[inline(never)]
    fn scalar_leaf(&mut self, depth: usize) -> R<Box<Scalar>> {
        let negative = self.eat_punct("-");
        let value = match *self.kind() {
            Tk::Int(i) => Some(Static::Int(if negative { i.wrapping_neg() } else { i })),
            Tk::Float(x) => Some(Static::Float(if negative { -x } else { x })),
            Tk::Dur(ns) => Some(Static::Duration(if negative { -ns } else { ns })),
            _ => None,
        };
        if let Some(value) = value {
            self.bump();
            return Ok(Box::new(Scalar {
                ty: static_type(&value),
                expr: ScalarExpr::Static(value),
                height: 1,
                has_aggregate: false,
            }));
        }
        let aggregate = match *self.kind() {
            Tk::Ident(w) if !negative && matches!(self.peek(1), Tk::Punct("(")) => {
                AGGREGATES.iter().find(|(a, _)| *a == w).map(|(_, op)| *op)
            }
            _ => None,
        };
        let Some(op) = aggregate else {
            return Err(self.unexpected(
                "an aggregate (count(), avg(...), min(...), max(...), sum(...)), a number or a duration",
            ));
        };
        let start = self.at();
        self.bump();
        self.bump();
        if op == AggregateOp::Count {
            self.expect_punct(")", "\")\": count() takes nothing")?;
            return Ok(Box::new(Scalar {
                expr: ScalarExpr::Aggregate(Box::new(Aggregate { op, field: None })),
                ty: Type::Int,
                height: 1,
                has_aggregate: true,
            }));
        }
        let field = self.field_expr(0, depth + 1)?;
        self.expect_punct(")", "\")\" or an operator")?;
        let aggregate = Aggregate {
            op,
            field: Some(field.expr),
        };
        if field.ty != Type::Attribute && !field.ty.is_numeric() {
            return Err(self.error_at(
                start,
                &format!(
                    "aggregate field expressions must resolve to a number type: {}",
                    short(&aggregate.to_string())
                ),
            ));
        }
        if !field.reads_span {
            return Err(self.error_at(
                start,
                &format!(
                    "aggregate field expressions must reference the span: {}",
                    short(&aggregate.to_string())
                ),
            ));
        }
        let height = field.height + 1;
        self.check_height(height, start)?;
        Ok(Box::new(Scalar {
            expr: ScalarExpr::Aggregate(Box::new(aggregate)),
            ty: field.ty,
            height,
            has_aggregate: true,
        }))
    }

    // ---- field expressions ------------------------------------------------

    /// Operators binding at least as tightly as `min_prec`; `^` is
    /// right-associative, the rest left.
    #[allow(clippy::question_mark)]
    fn field_expr(&mut self, min_prec: u8, depth: usize) -> R<Box<Field>> {
        let mut lhs = match self.field_operand(depth) {
            Ok(lhs) => lhs,
            err => return err,
        };
        while let Some(op) = self.field_operator()
            && op.precedence() >= min_prec
        {
            let at = self.at();
            self.bump();
            let prec = op.precedence();
            let next = if op == FieldOp::Binary(BinaryOp::Pow) {
                prec
            } else {
                prec + 1
            };
            let rhs = self.field_expr(next, depth + 1);
            lhs = match self.join_fields(op, lhs, rhs, at) {
                Ok(joined) => joined,
                err => return err,
            };
        }
        Ok(lhs)
    }

    fn field_operator(&self) -> Option<FieldOp> {
        use BinaryOp as B;
        let Tk::Punct(p) = *self.kind() else {
            return None;
        };
        Some(FieldOp::Binary(match p {
            "&&" => B::And,
            "||" => B::Or,
            "=" => B::Eq,
            "!=" => B::Ne,
            ">" => B::Gt,
            ">=" => B::Ge,
            "<" => B::Lt,
            "<=" => B::Le,
            "+" => B::Add,
            "-" => B::Sub,
            "*" => B::Mul,
            "/" => B::Div,
            "%" => B::Mod,
            "^" => B::Pow,
            "=~" => return Some(FieldOp::Regex { negated: false }),
            "!~" => return Some(FieldOp::Regex { negated: true }),
            _ => return None,
        }))
    }

    /// Two operands and the operator between them, checked as Tempo checks them.
    // Boxed operands keep the recursing caller's frame small.
    #[allow(clippy::boxed_local)]
    #[inline(never)]
    fn join_fields(
        &self,
        op: FieldOp,
        lhs: Box<Field>,
        rhs: R<Box<Field>>,
        at: usize,
    ) -> R<Box<Field>> {
        let rhs = rhs?;
        let height = lhs.height.max(rhs.height) + 1;
        self.check_height(height, at)?;
        let reads_span = lhs.reads_span || rhs.reads_span;
        let op = match op {
            FieldOp::Regex { negated } => return self.regex(*lhs, *rhs, negated, height, at),
            FieldOp::Binary(op) => op,
        };
        let lhs_nil = matches!(lhs.expr, FieldExpr::Static(Static::Nil));
        let rhs_nil = matches!(rhs.expr, FieldExpr::Static(Static::Nil));
        if matches!(op, BinaryOp::Eq | BinaryOp::Ne) && (lhs_nil || rhs_nil) {
            return self.nil_test(op, *lhs, *rhs, height, at);
        }
        let ty = if op.is_arithmetic() {
            arithmetic_type(lhs.ty, rhs.ty)
        } else {
            Type::Bool
        };
        let (lhs_ty, rhs_ty) = (lhs.ty, rhs.ty);
        let expr = FieldExpr::Binary(Box::new(BinaryExpr {
            op,
            lhs: lhs.expr,
            rhs: rhs.expr,
        }));
        if !lhs_ty.matches(rhs_ty) {
            return Err(self.error_at(
                at,
                &format!(
                    "binary operations must operate on the same type: {}",
                    short(&expr.to_string())
                ),
            ));
        }
        if !lhs_ty.takes(op) || !rhs_ty.takes(op) {
            return Err(self.error_at(
                at,
                &format!(
                    "illegal operation for the given types: {}",
                    short(&expr.to_string())
                ),
            ));
        }
        Ok(Box::new(Field {
            expr,
            ty,
            height,
            reads_span,
        }))
    }

    /// `x = nil`, `x != nil` (either way round).
    fn nil_test(
        &self,
        op: BinaryOp,
        lhs: Field,
        rhs: Field,
        height: usize,
        at: usize,
    ) -> R<Box<Field>> {
        let other = if matches!(lhs.expr, FieldExpr::Static(Static::Nil)) {
            rhs
        } else {
            lhs
        };
        if matches!(other.expr, FieldExpr::Static(Static::Nil)) {
            // `nil = nil` and `nil != nil` are false, as in Tempo.
            return Ok(Box::new(Field {
                expr: FieldExpr::Static(Static::Bool(false)),
                ty: Type::Bool,
                height: 1,
                reads_span: false,
            }));
        }
        if op == BinaryOp::Eq {
            let never_nil = match &other.expr {
                FieldExpr::Intrinsic(_) => Some("intrinsics cannot be nil"),
                FieldExpr::Attribute(a)
                    if a.scope == AttributeScope::Resource
                        && !a.parent
                        && a.name == "service.name" =>
                {
                    Some("resource.service.name cannot be nil")
                }
                _ => None,
            };
            if let Some(why) = never_nil {
                return Err(self.error_at(
                    at,
                    &format!("{} = nil is not valid because {why}", other.expr),
                ));
            }
        }
        let unary = if op == BinaryOp::Eq {
            UnaryOp::NotExists
        } else {
            UnaryOp::Exists
        };
        Ok(Box::new(Field {
            expr: FieldExpr::Unary(unary, Box::new(other.expr)),
            ty: Type::Bool,
            height,
            reads_span: other.reads_span,
        }))
    }

    /// `lhs =~ "pattern"`: the pattern a literal string that compiles.
    fn regex(
        &self,
        lhs: Field,
        rhs: Field,
        negated: bool,
        height: usize,
        at: usize,
    ) -> R<Box<Field>> {
        let op = if negated { "!~" } else { "=~" };
        let FieldExpr::Static(Static::Str(pattern)) = rhs.expr else {
            return Err(self.error_at(
                at,
                &format!(
                    "invalid type for =~ or !~: {}: the right-hand side must be a string",
                    short(&rhs.expr.to_string())
                ),
            ));
        };
        if !matches!(lhs.ty, Type::Str | Type::Attribute) {
            return Err(self.error_at(
                at,
                &format!(
                    "binary operations must operate on the same type: {} {op} {}",
                    short(&lhs.expr.to_string()),
                    Static::Str(short(&pattern))
                ),
            ));
        }
        let regex = Regex::new(&format!("^(?s:{pattern})$")).map_err(|e| {
            self.error_at(
                at,
                &format!(
                    "invalid regex {}: {}",
                    Static::Str(short(&pattern)),
                    regex_error(&e)
                ),
            )
        })?;
        Ok(Box::new(Field {
            expr: FieldExpr::Regex(Box::new(RegexMatch {
                lhs: lhs.expr,
                negated,
                pattern,
                regex,
            })),
            ty: Type::Bool,
            height,
            reads_span: lhs.reads_span,
        }))
    }

    /// A bracket, a unary operator and its operand, or a leaf.
    fn field_operand(&mut self, depth: usize) -> R<Box<Field>> {
        self.enter(depth)?;
        if self.eat_punct("(") {
            let inner = self.field_expr(0, depth + 1);
            return self.close_field_bracket(inner);
        }
        let unary = match self.kind() {
            Tk::Punct("!") => Some(UnaryOp::Not),
            Tk::Punct("-") => Some(UnaryOp::Neg),
            _ => None,
        };
        if let Some(op) = unary {
            let at = self.at();
            self.bump();
            let inner = self.field_expr(UNARY_OPERAND, depth + 1);
            return self.unary(op, inner, at);
        }
        self.field_leaf_checked()
    }

    #[inline(never)]
    fn close_field_bracket(&mut self, inner: R<Box<Field>>) -> R<Box<Field>> {
        let inner = inner?;
        self.expect_punct(")", "\")\" or an operator")?;
        Ok(inner)
    }

    #[inline(never)]
    fn unary(&self, op: UnaryOp, inner: R<Box<Field>>, at: usize) -> R<Box<Field>> {
        let inner = inner?;
        let fits = match op {
            UnaryOp::Not => matches!(inner.ty, Type::Bool | Type::Attribute),
            _ => inner.ty == Type::Attribute || inner.ty.is_numeric(),
        };
        let height = inner.height + 1;
        self.check_height(height, at)?;
        let ty = if op == UnaryOp::Not {
            Type::Bool
        } else {
            inner.ty
        };
        let expr = FieldExpr::Unary(op, Box::new(inner.expr));
        if !fits {
            return Err(self.error_at(
                at,
                &format!(
                    "illegal operation for the given type: {}",
                    short(&expr.to_string())
                ),
            ));
        }
        Ok(Box::new(Field {
            expr,
            ty,
            height,
            reads_span: inner.reads_span,
        }))
    }

    #[inline(never)]
    fn field_leaf_checked(&mut self) -> R<Box<Field>> {
        let at = self.at();
        let Some(expr) = self.field_leaf(at)? else {
            return Err(self.unexpected(
                "a field expression: an attribute such as span.http.method, an intrinsic such as duration, or a value",
            ));
        };
        let (ty, reads_span) = match &expr {
            FieldExpr::Static(value) => (static_type(value), false),
            FieldExpr::Intrinsic(i) => (intrinsic_type(*i), true),
            _ => (Type::Attribute, true),
        };
        Ok(Box::new(Field {
            expr,
            ty,
            height: 1,
            reads_span,
        }))
    }

    /// A literal, an intrinsic or an attribute; `None` (nothing read) when
    /// the token is none of them.
    fn field_leaf(&mut self, at: usize) -> R<Option<FieldExpr>> {
        let expr = match self.kind() {
            Tk::Str(s) => FieldExpr::Static(Static::Str(s.clone())),
            Tk::Int(i) => FieldExpr::Static(Static::Int(*i)),
            Tk::Float(x) => FieldExpr::Static(Static::Float(*x)),
            Tk::Dur(ns) => FieldExpr::Static(Static::Duration(*ns)),
            Tk::Ident(word) => {
                let word = *word;
                if let Some(value) = keyword_static(word) {
                    FieldExpr::Static(value)
                } else if let Some((_, i)) = INTRINSICS.iter().find(|(n, _)| *n == word) {
                    FieldExpr::Intrinsic(*i)
                } else if matches!(
                    word,
                    "parent" | "nestedSetLeft" | "nestedSetRight" | "nestedSetParent"
                ) {
                    return Err(self.error_at(at, &format!("intrinsic ({word}) not yet supported")));
                } else {
                    return Err(self.error_at(
                        at,
                        &format!(
                            "unknown identifier: {word} (an attribute needs its scope: span.{word}, resource.{word} or .{word})"
                        ),
                    ));
                }
            }
            Tk::Colon(scope) => {
                let scope = *scope;
                self.bump();
                let found = match *self.kind() {
                    Tk::Ident(name) => SCOPED_INTRINSICS
                        .iter()
                        .find(|(s, n, _)| *s == scope && *n == name),
                    _ => None,
                };
                let Some((_, _, intrinsic)) = found else {
                    let known: Vec<&str> = SCOPED_INTRINSICS
                        .iter()
                        .filter(|(s, _, _)| *s == scope)
                        .map(|(_, n, _)| *n)
                        .collect();
                    return Err(self
                        .unexpected(&format!("an intrinsic of {scope}: ({})", known.join(", "))));
                };
                FieldExpr::Intrinsic(*intrinsic)
            }
            Tk::Attr(token) => {
                let scope = match token.scope {
                    AttrScope::Known(scope) => scope,
                    AttrScope::Link => {
                        return Err(self.error_at(
                            at,
                            "link attributes are not kept by Sextant (link:traceID and link:spanID are)",
                        ));
                    }
                    AttrScope::Instrumentation => {
                        return Err(self.error_at(
                            at,
                            "instrumentation scope attributes are not kept by Sextant (instrumentation:name and instrumentation:version are)",
                        ));
                    }
                };
                FieldExpr::Attribute(Attribute {
                    scope,
                    parent: token.parent,
                    name: token.name.clone(),
                })
            }
            _ => return Ok(None),
        };
        self.bump();
        Ok(Some(expr))
    }
}

/// What a pipeline element is.
#[derive(Debug, Clone, Copy)]
enum ElementKind {
    Spanset,
    Scalar,
    /// A bracket, then what may start a scalar filter.
    Either,
    By,
    Coalesce,
    Select,
    Metrics(&'static str),
}

/// A binary operator of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldOp {
    Binary(BinaryOp),
    Regex { negated: bool },
}

impl FieldOp {
    fn precedence(self) -> u8 {
        match self {
            Self::Binary(op) => field_precedence(op),
            Self::Regex { .. } => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `query` parses to the tree `expected` shows, and that text parses
    /// back to the same tree.
    #[track_caller]
    fn check(query: &str, expected: &str) {
        match parse(query) {
            Ok(tree) => assert_eq!(tree.to_string(), expected, "query: {query}"),
            Err(e) => panic!("{query}: {e}"),
        }
        match parse(expected) {
            Ok(tree) => assert_eq!(tree.to_string(), expected, "shown again"),
            Err(e) => panic!("{expected}: {e}"),
        }
    }

    #[track_caller]
    fn error_of(query: &str) -> String {
        match parse(query) {
            Ok(tree) => panic!("{query} parsed: {tree}"),
            Err(Error::Parse(message)) => message,
            Err(other) => panic!("{query}: not a parse error: {other}"),
        }
    }

    // ---- good queries ---------------------------------------------------

    #[test]
    fn documented_queries() {
        let cases: &[(&str, &str)] = &[
            ("{}", "{ }"),
            ("{ }", "{ }"),
            (
                r#"{ span.http.method = "GET" }"#,
                r#"{ (span.http.method = "GET") }"#,
            ),
            (
                r#"{ resource.service.name = "frontend" && span.http.status_code = 200 }"#,
                r#"{ ((resource.service.name = "frontend") && (span.http.status_code = 200)) }"#,
            ),
            (
                "{ .http.status_code >= 400 && .http.status_code < 500 }",
                "{ ((.http.status_code >= 400) && (.http.status_code < 500)) }",
            ),
            (
                r#"{ name = "HTTP GET - root" }"#,
                r#"{ (name = "HTTP GET - root") }"#,
            ),
            ("{ status = error }", "{ (status = error) }"),
            ("{ status != ok }", "{ (status != ok) }"),
            ("{ kind = server }", "{ (kind = server) }"),
            ("{ duration > 2s }", "{ (duration > 2s) }"),
            ("{ traceDuration > 2s }", "{ (traceDuration > 2s) }"),
            (
                r#"{ rootServiceName = "frontend" }"#,
                r#"{ (rootServiceName = "frontend") }"#,
            ),
            (
                r#"{ rootName = "GET /api" }"#,
                r#"{ (rootName = "GET /api") }"#,
            ),
            (
                r#"{ statusMessage = "Forbidden" }"#,
                r#"{ (statusMessage = "Forbidden") }"#,
            ),
            (
                "{ span:status = error && span:duration > 100ms && span:kind = client }",
                "{ (((status = error) && (duration > 100ms)) && (kind = client)) }",
            ),
            (
                r#"{ trace:rootService = "a" && trace:rootName = "b" && trace:duration < 1m }"#,
                r#"{ (((rootServiceName = "a") && (rootName = "b")) && (traceDuration < 1m0s)) }"#,
            ),
            (
                r#"{ span:name = "x" && span:statusMessage = "y" && span:id = "z" && trace:id = "t" }"#,
                r#"{ ((((name = "x") && (statusMessage = "y")) && (span:id = "z")) && (trace:id = "t")) }"#,
            ),
            (
                r#"{ span:parentID = "a" || span:childCount > 2 }"#,
                r#"{ ((span:parentID = "a") || (span:childCount > 2)) }"#,
            ),
            (
                r#"{ .http.method =~ "GET|POST" }"#,
                r#"{ (.http.method =~ "GET|POST") }"#,
            ),
            (r#"{ name !~ "health.*" }"#, r#"{ (name !~ "health.*") }"#),
            (
                "{ span.http.request_content_length > 10 * 1024 }",
                "{ (span.http.request_content_length > (10 * 1024)) }",
            ),
            (
                r#"{ span.http.method = "GET" } && { resource.service.name = "cart" }"#,
                r#"({ (span.http.method = "GET") } && { (resource.service.name = "cart") })"#,
            ),
            (
                r#"{ span.http.method = "GET" } || { status = error }"#,
                r#"({ (span.http.method = "GET") } || { (status = error) })"#,
            ),
            (
                r#"{ resource.service.name = "frontend" } >> { status = error }"#,
                r#"({ (resource.service.name = "frontend") } >> { (status = error) })"#,
            ),
            (
                r#"{ resource.service.name = "frontend" } > { resource.service.name = "cart" }"#,
                r#"({ (resource.service.name = "frontend") } > { (resource.service.name = "cart") })"#,
            ),
            (
                r#"{ span.http.url = "/a" } ~ { span.db.name = "postgresql" }"#,
                r#"({ (span.http.url = "/a") } ~ { (span.db.name = "postgresql") })"#,
            ),
            (
                "{ .a = 1 } << { .b = 2 } < { .c = 3 }",
                "(({ (.a = 1) } << { (.b = 2) }) < { (.c = 3) })",
            ),
            (
                "{ .a = 1 } !>> { .b = 2 } && { } &>> { status = error } !~ { }",
                "(({ (.a = 1) } !>> { (.b = 2) }) && (({ } &>> { (status = error) }) !~ { }))",
            ),
            (
                "{ } &> { } &< { } &<< { } &~ { } !> { } !< { } !<< { }",
                "((((((({ } &> { }) &< { }) &<< { }) &~ { }) !> { }) !< { }) !<< { })",
            ),
            ("{ } | count() > 3", "{ } | count() > 3"),
            (
                "{ status = error } | by(resource.service.name) | count() > 1",
                "{ (status = error) } | by(resource.service.name) | count() > 1",
            ),
            ("{ } | avg(duration) > 20ms", "{ } | avg(duration) > 20ms"),
            (
                "{ } | max(duration) > 1s | min(span.x) <= 2.5 | sum(span:duration) >= 1h",
                "{ } | max(duration) > 1s | min(span.x) <= 2.5 | sum(duration) >= 1h0m0s",
            ),
            (
                "{ status != error } | select(span.http.status_code, resource.host, duration)",
                "{ (status != error) } | select(span.http.status_code, resource.host, duration)",
            ),
            (
                "{ } | by(span.a) | coalesce()",
                "{ } | by(span.a) | coalesce()",
            ),
            (
                r#"({ span.http.method = "GET" } | count() > 2) && ({ status = error } | count() > 1)"#,
                r#"(({ (span.http.method = "GET") } | count() > 2) && ({ (status = error) } | count() > 1))"#,
            ),
            (
                "({ .a = 1 } && { .b = 2 }) || { .c = 3 }",
                "(({ (.a = 1) } && { (.b = 2) }) || { (.c = 3) })",
            ),
            ("{ span.foo = nil }", "{ (span.foo = nil) }"),
            ("{ nil != span.foo }", "{ (span.foo != nil) }"),
            (
                r#"{ span."foo bar" = "baz" && resource."a\"b" = 1 }"#,
                r#"{ ((span."foo bar" = "baz") && (resource."a\"b" = 1)) }"#,
            ),
            (
                r#"{ span.http.method = "GET" && (status = error || duration > 1s) }"#,
                r#"{ ((span.http.method = "GET") && ((status = error) || (duration > 1s))) }"#,
            ),
            // `&&` and `||` bind alike, left to right, as in Tempo.
            ("{ .a || .b && .c }", "{ ((.a || .b) && .c) }"),
            (
                r#"{ !(span.http.method = "GET") }"#,
                r#"{ !(span.http.method = "GET") }"#,
            ),
            (
                r#"{ event.exception.message =~ ".*timeout.*" && event:name = "exception" }"#,
                r#"{ ((event.exception.message =~ ".*timeout.*") && (event:name = "exception")) }"#,
            ),
            (
                "{ event:timeSinceStart > 1ms && link:traceID != nil && link:spanID != nil }",
                "{ (((event:timeSinceStart > 1ms) && (link:traceID != nil)) && (link:spanID != nil)) }",
            ),
            (
                r#"{ instrumentation:name = "io.opentelemetry" && instrumentation:version = "1" }"#,
                r#"{ ((instrumentation:name = "io.opentelemetry") && (instrumentation:version = "1")) }"#,
            ),
            (
                r#"{ parent.span.x = "y" && parent.resource.z = 1 && parent.w != nil }"#,
                r#"{ (((parent.span.x = "y") && (parent.resource.z = 1)) && (parent.w != nil)) }"#,
            ),
            (
                r#"{ resource.cloud.region = "us-east-1" } with (most_recent=true)"#,
                r#"{ (resource.cloud.region = "us-east-1") } with(most_recent=true)"#,
            ),
            (
                "{ span.url = `/api/v1\\d` }",
                r#"{ (span.url = "/api/v1\\d") }"#,
            ),
            (
                "{ duration >= 1.5s && duration < 1h30m && duration != 10us && duration > 5ns }",
                "{ ((((duration >= 1.5s) && (duration < 1h30m0s)) && (duration != 10µs)) && (duration > 5ns)) }",
            ),
            (
                "{ span.a + 2 * span.b ^ 2 ^ 3 > -span.c - 1 }",
                "{ ((span.a + (2 * (span.b ^ (2 ^ 3)))) > (-span.c - 1)) }",
            ),
            (
                "{ span.ratio > 0.5 && span.big < 1e3 && span.flag = true && span.off != false }",
                "{ ((((span.ratio > 0.5) && (span.big < 1000.0)) && (span.flag = true)) && (span.off != false)) }",
            ),
            (
                "{ kind = client || kind = producer || kind = consumer || kind = internal || kind = unspecified }",
                "{ (((((kind = client) || (kind = producer)) || (kind = consumer)) || (kind = internal)) || (kind = unspecified)) }",
            ),
            ("{ status = unset }", "{ (status = unset) }"),
            ("{ span.x > minInt }", "{ (span.x > minInt) }"),
            ("count() > 1", "count() > 1"),
            ("{ } | 2 < count() * 2 - 1", "{ } | 2 < ((count() * 2) - 1)"),
            ("{ } | -1 < count()", "{ } | -1 < count()"),
            ("{ } | (count() > 1)", "{ } | (count() > 1)"),
            ("{ } | (count()) > -1", "{ } | count() > -1"),
            (
                "{ } | ((count() + 1) * 2) > 2",
                "{ } | ((count() + 1) * 2) > 2",
            ),
            (
                "{ } && (count() > 1) > { }",
                "({ } && ((count() > 1) > { }))",
            ),
            (
                "{ .a = 1 } | { .b = 2 } | select(.c)",
                "{ (.a = 1) } | { (.b = 2) } | select(.c)",
            ),
            ("{ .a }", "{ .a }"),
            (r#"{ ."5" = 1 }"#, r#"{ (."5" = 1) }"#),
            (r#"{ parent."span.x" = 1 }"#, r#"{ (parent."span.x" = 1) }"#),
            (r#"{ span."" = 1 }"#, r#"{ (span."" = 1) }"#),
            (
                "{ span.s = \"a\\\"b\\n\\u0001\" }",
                "{ (span.s = \"a\\\"b\\n\\u0001\") }",
            ),
            ("{ true } && { 1 = 1 }", "({ } && { (1 = 1) })"),
            (
                "{\n  span.a = \"b\"\n}\n| count() > 1",
                r#"{ (span.a = "b") } | count() > 1"#,
            ),
        ];
        for (query, expected) in cases {
            check(query, expected);
        }
        assert!(cases.len() >= 30);
    }

    #[test]
    fn display_parses_back_to_the_same_tree() {
        let queries = [
            r#"{ span."a b".c = "x\"y" && resource.k8s.pod.name =~ "web-.*" } >> { status = error } | by(.x) | count() >= 2"#,
            "{ duration > 83333333ns && traceDuration < 2h } | avg(duration) > 1.5ms",
            "({ .a = 1 } | count() > 1) && { } | select(span:id, .b)",
        ];
        for query in queries {
            let once = parse(query).unwrap().to_string();
            let twice = parse(&once).unwrap().to_string();
            assert_eq!(once, twice, "{query}");
        }
    }

    #[test]
    fn regexes_match_the_whole_value() {
        let Ok(query) = parse(r#"{ name =~ "GET.*" && name !~ "a|b" }"#) else {
            panic!()
        };
        let Element::Spanset(SpansetExpr::Filter(FieldExpr::Binary(b))) =
            &query.pipeline.elements[0]
        else {
            panic!("{query}")
        };
        let FieldExpr::Regex(r) = &b.lhs else {
            panic!()
        };
        assert!(r.regex.is_match("GET /a\nb"));
        assert!(!r.regex.is_match("a GET"));
        let FieldExpr::Regex(r) = &b.rhs else {
            panic!()
        };
        assert!(r.negated);
        assert!(r.regex.is_match("a") && !r.regex.is_match("ab"));
    }

    // ---- bad queries ------------------------------------------------------

    #[test]
    fn errors_name_the_problem_and_where() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "{",
                "line 1, col 2",
                "unexpected end of query, expecting a field expression",
            ),
            (
                "{ span.a = }",
                "line 1, col 12",
                "unexpected \"}\", expecting a field expression",
            ),
            (
                "{ span.a == 1 }",
                "line 1, col 10",
                "TraceQL compares with =",
            ),
            (
                r#"{ status = "error" }"#,
                "line 1, col 10",
                "binary operations must operate on the same type: (status = \"error\")",
            ),
            (
                r#"{ duration > "1s" }"#,
                "line 1, col 12",
                "binary operations must operate on the same type",
            ),
            (
                "{ name > 5 }",
                "line 1, col 8",
                "binary operations must operate on the same type",
            ),
            (
                "{ kind = 1 }",
                "line 1, col 8",
                "binary operations must operate on the same type",
            ),
            (
                "{ status > error }",
                "line 1, col 10",
                "illegal operation for the given types",
            ),
            (
                "{ 1 }",
                "line 1, col 1",
                "span filter field expressions must resolve to a boolean: { 1 }",
            ),
            ("{ nil }", "line 1, col 1", "must resolve to a boolean"),
            (
                "{ span.a =~ 5 }",
                "line 1, col 10",
                "invalid type for =~ or !~: 5",
            ),
            (
                r#"{ span.a =~ "(" }"#,
                "line 1, col 10",
                "invalid regex \"(\": unclosed group",
            ),
            (
                r#"{ duration =~ "1.*" }"#,
                "line 1, col 12",
                "must operate on the same type",
            ),
            (
                "{ foo = 1 }",
                "line 1, col 3",
                "unknown identifier: foo (an attribute needs its scope",
            ),
            (
                r#"{ span.a = "x }"#,
                "line 1, col 12",
                "literal not terminated",
            ),
            (
                "{ span. = 1 }",
                "line 1, col 8",
                "expecting an attribute name after the scope",
            ),
            (
                "{ . = 1 }",
                "line 1, col 4",
                "expecting an attribute name after the scope",
            ),
            (
                r#"{ span."a = 1 }"#,
                "line 1, col 8",
                "expecting \" to close a quoted attribute name",
            ),
            (
                "{ } | count()",
                "line 1, col 14",
                "unexpected end of query, expecting a comparison (=, !=, <, <=, >, >=)",
            ),
            (
                "{ } | avg(name) > 1",
                "line 1, col 7",
                "aggregate field expressions must resolve to a number type: avg(name)",
            ),
            (
                "{ } | sum(1) > 1",
                "line 1, col 7",
                "aggregate field expressions must reference the span: sum(1)",
            ),
            (
                "{ } | rate()",
                "line 1, col 7",
                "metrics queries (rate) are not supported",
            ),
            (
                "{ } | count() > \"a\"",
                "line 1, col 17",
                "unexpected string \"a\", expecting an aggregate (count(), avg(...), min(...), max(...), sum(...)), a number or a duration",
            ),
            (
                "{ } | 1 > 2",
                "line 1, col 7",
                "a scalar filter needs an aggregate",
            ),
            (
                "{ duration = nil }",
                "line 1, col 12",
                "duration = nil is not valid because intrinsics cannot be nil",
            ),
            (
                "{ resource.service.name = nil }",
                "line 1, col 25",
                "resource.service.name cannot be nil",
            ),
            (
                "{ link.foo = 1 }",
                "line 1, col 3",
                "link attributes are not kept",
            ),
            (
                "{ instrumentation.foo = 1 }",
                "line 1, col 3",
                "instrumentation scope attributes are not kept",
            ),
            (
                "{ } |",
                "line 1, col 6",
                "unexpected end of query, expecting a spanset filter",
            ),
            (
                "{ } && ",
                "line 1, col 8",
                "unexpected end of query, expecting a spanset filter",
            ),
            (
                "{ span.a = 1 } }",
                "line 1, col 16",
                "unexpected \"}\", expecting \"|\", an operator between spansets",
            ),
            (
                "{ span:foo = 1 }",
                "line 1, col 8",
                "expecting an intrinsic of span: (duration, name, kind, status",
            ),
            (
                "{ nestedSetLeft = 1 }",
                "line 1, col 3",
                "intrinsic (nestedSetLeft) not yet supported",
            ),
            (
                "{ span.a = 5xx }",
                "line 1, col 13",
                "unexpected identifier \"xx\"",
            ),
            (
                "{ span.a = 99999999999999999999 }",
                "line 1, col 12",
                "integer 99999999999999999999 is out of range",
            ),
            (
                "{ duration > 300y }",
                "line 1, col 14",
                "duration 300y is out of range",
            ),
            (
                "{ } | by(1)",
                "line 1, col 7",
                "grouping field expressions must reference the span: by(1)",
            ),
            (
                "{ !name }",
                "line 1, col 3",
                "illegal operation for the given type: !name",
            ),
            (
                "{ -name = 1 }",
                "line 1, col 3",
                "illegal operation for the given type",
            ),
            (
                "{\n  span.a = \n}",
                "line 3, col 1",
                "unexpected \"}\", expecting a field expression",
            ),
            (
                "{ span.a = 'x' }",
                "line 1, col 12",
                "unexpected character '\\''",
            ),
            (
                "{ } | select(1)",
                "line 1, col 14",
                "expecting an attribute such as span.http.route",
            ),
            ("{ } with (a=)", "line 1, col 13", "expecting a hint value"),
            (
                "{ span.a = \"\\q\" }",
                "line 1, col 12",
                "invalid escape sequence \\q",
            ),
            (
                "{ } | coalesce(1)",
                "line 1, col 16",
                "coalesce() takes nothing",
            ),
            ("{ } ( { } )", "line 1, col 5", "unexpected \"(\""),
        ];
        for (query, position, problem) in cases {
            let message = error_of(query);
            assert!(
                message.starts_with(&format!("parse error at {position}: ")),
                "{query}: wrong position: {message}"
            );
            assert!(message.contains(problem), "{query}: {message}");
        }
        assert!(cases.len() >= 20);
    }

    #[test]
    fn too_deep_is_refused_without_overflowing_the_stack() {
        let started = std::time::Instant::now();
        let n = 100_000;
        let nest = |open: &str, inner: &str, close: &str| {
            format!("{}{inner}{}", open.repeat(n), close.repeat(n))
        };
        // Chains are shorter: they must stay within the length limit to
        // reach the depth budget.
        let chain = 5_000;
        let queries = [
            nest("(", "{ }", ")"),
            format!("{{ {} }}", nest("(", "true", ")")),
            format!("{{ {}.a }}", "!".repeat(n)),
            format!("{{ {}.a > 1 }}", "-".repeat(n)),
            format!("{{ {} }}", vec![".a = 1"; chain].join(" && ")),
            format!("{{ {} }}", vec![".a = 1"; chain].join(" || ")),
            format!("{{ .a = {} }}", vec!["2"; n].join("^")),
            format!("{{ .a = {} }}", vec!["2"; n].join("+")),
            vec!["{ }"; chain].join(" && "),
            vec!["{ }"; chain].join(" >> "),
            format!("{}{{ }}{}", "({ } | ".repeat(chain), ")".repeat(chain)),
            format!("{}{{ }}{}", "({ } && ".repeat(chain), ")".repeat(chain)),
            format!("{{ }} | count() > {}", nest("(", "1", ")")),
            format!("{{ }} | {} > 1", vec!["count()"; chain].join("+")),
            format!("{{ }} | {} > 1", vec!["count()"; chain].join("^")),
            format!("{{ }} | by({})", nest("(", ".a", ")")),
            format!("{{ }} | avg({}) > 1", nest("(", ".a", ")")),
        ];
        for query in &queries {
            let message = error_of(query);
            assert!(
                message.contains("query.max_depth") || message.contains("query.max_query_bytes"),
                "{}: {message}",
                &query[..50]
            );
            assert!(
                message.starts_with("parse error at line 1, col "),
                "{message}"
            );
        }
        // Braces cannot nest at all: the second is an error at once.
        let message = error_of(&"{".repeat(n));
        assert!(
            message.starts_with("parse error at line 1, col 2: "),
            "{message}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn deep_but_within_budget_parses_on_a_test_thread() {
        // The budget is 1000 levels; a test thread has 2 MiB of stack, so
        // each level's frames must stay under 2 KiB in a debug build.
        let depth = depth::max_depth() - 10;
        let nest = |open: &str, inner: &str, close: &str| {
            format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
        };
        let deep = [
            nest("(", "{ }", ")"),
            format!("{{ {} }}", nest("(", "true", ")")),
            format!("{{ {}.a }}", "!".repeat(depth)),
            format!("{{ {}.a > 1 }}", "-".repeat(depth)),
            format!("{{ {} }}", vec![".a = 1"; depth / 2].join(" && ")),
            format!("{{ .a = {} }}", vec!["2"; depth].join(" ^ ")),
            vec!["{ }"; depth].join(" && "),
            nest("({ } | ", "{ }", ")"),
            format!("{{ }} | count() > {}", nest("(", "1", ")")),
            format!("{{ }} | {} > 1", vec!["count()"; depth].join(" ^ ")),
        ];
        for query in &deep {
            if let Err(e) = parse(query) {
                panic!("{}...: {e}", &query[..40]);
            }
        }
    }

    #[test]
    fn too_long_is_refused_by_name() {
        let long = format!(r#"{{ .a = "{}" }}"#, "x".repeat(1 << 20));
        let message = error_of(&long);
        assert!(message.contains("query.max_query_bytes"), "{message}");
        assert!(
            message.starts_with("parse error at line 1, col "),
            "{message}"
        );
    }
}
