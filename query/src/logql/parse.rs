//! LogQL's parser: a hand-written recursive descent over [`super::lex`]'s
//! tokens, with precedence climbing for binary operators, following Loki's
//! grammar (`pkg/logql/syntax/syntax.y`) and its checks, and answering in its
//! error style: `parse error at line 1, col 15: syntax error: unexpected
//! ..., expecting ...`.
//!
//! The query's length is checked first, and every recursion (a bracket, an
//! aggregation's argument, a binary operand) checks the nesting budget
//! before it goes deeper, so no text can overflow the stack; chains that a
//! loop builds (`a + b + c`, `x="1" and y="2"`) count their height too, as
//! whatever walks the tree later recurses once per level.

use regex::Regex;
use sextant_model::{MatchOp, Matcher, depth, is_valid_label_name};

use super::ast::{
    AggOp, BinOp, Binary, CmpOp, Conversion, Expr, Group, Grouping, LabelFilter, LabelFmt,
    LabelReplace, LabelSel, LineFilter, LineOp, LogExpr, LogRange, MetricExpr, Parser, RangeAgg,
    RangeOp, Stage, Unwrap, VectorAgg, VectorMatching,
};
use super::lex::{Tk, Token, tokenize};
use crate::Error;

pub use super::lex::{parse_bytes, parse_duration_go};

/// Loki's words for a selector that would match every stream.
const ERR_EMPTY_COMPATIBLE: &str = "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will";

/// Parses a LogQL query: a log query (`{app="x"} |= "error" | json`) or a
/// metric query (`sum by (host) (rate({app="x"}[5m]))`). The error is
/// [`Error::Parse`] with Loki's wording and the line and column of the
/// problem.
pub fn parse(text: &str) -> Result<Expr, Error> {
    parse_text(text).map_err(Error::Parse)
}

/// Parses a log query only (`{app="x"} | json`), as `/series`' `match[]`
/// and the narrowing of label look-ups take; a metric query is an error.
pub fn parse_log_selector(text: &str) -> Result<LogExpr, Error> {
    match parse(text)? {
        Expr::Log(log) => Ok(log),
        Expr::Metric(_) => Err(Error::Parse(
            "parse error at line 1, col 1: only a log query (a stream selector and its pipeline) is supported here, not a metric query"
                .to_owned(),
        )),
    }
}

/// Errors inside the parser: the whole message, position included.
type R<T> = Result<T, String>;

/// A label filter and the height of its tree.
type Filter = (Box<LabelFilter>, usize);

/// Label filters read so far: those joined by `or`, and the `and` chain
/// after the last `or`.
#[derive(Debug, Default)]
struct FilterChain {
    or: Option<Filter>,
    and: Option<Filter>,
    /// Where the last join was.
    at: usize,
}

fn parse_text(text: &str) -> R<Expr> {
    if let Err(refusal) = depth::check_length(text) {
        let mut at = depth::max_query_bytes().min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        return Err(message_at(text, at, &refusal.to_string()));
    }
    let mut p = LogqlParser::new(text);
    let parsed = *p.binary(0, 1)?;
    if !matches!(p.kind(), Tk::Eof) {
        let expecting = match parsed.node {
            Node::Log(_) => "a pipeline stage, a line filter or the end of the query",
            Node::Metric(_) => "a binary operator or the end of the query",
        };
        return Err(p.unexpected(expecting));
    }
    match parsed.node {
        Node::Metric(metric) => Ok(Expr::Metric(*metric)),
        Node::Log(part) => {
            if let Some(at) = part.range_at {
                return Err(p.error_at(
                    at,
                    "syntax error: unexpected range: a range is only valid inside a range aggregation, such as count_over_time({app=\"x\"}[5m])",
                ));
            }
            if let Some(at) = part.unwrap_at {
                return Err(p.error_at(
                    at,
                    "unwrap requires a range aggregation that takes unwrap, such as sum_over_time({app=\"x\"} | unwrap bytes [5m])",
                ));
            }
            Ok(Expr::Log(part.log))
        }
    }
}

/// `parse error at line L, col C: message`, the column counted in characters.
fn message_at(src: &str, at: usize, message: &str) -> String {
    let before = &src[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("parse error at line {line}, col {col}: {message}")
}

/// What a sub-expression parsed to.
#[derive(Debug)]
enum Node {
    /// A selector and its pipeline, maybe with a range and an unwrap, which
    /// only a range aggregation takes.
    Log(Box<LogPart>),
    Metric(Box<MetricExpr>),
}

/// A parsed sub-expression, boxed small so that the recursion's frames are.
#[derive(Debug)]
struct Parsed {
    node: Node,
    /// The height of its tree, for the depth budget.
    height: usize,
    /// A number, or numbers combined: a set operator refuses it.
    scalar: bool,
    /// Byte offset of its first token.
    start: usize,
}

/// A log query on its way to being a query or a range aggregation's range.
#[derive(Debug)]
struct LogPart {
    log: LogExpr,
    unwrap: Option<Unwrap>,
    unwrap_at: Option<usize>,
    range_ms: Option<i64>,
    range_at: Option<usize>,
    offset_ms: i64,
    /// The height of its deepest label filter, plus one.
    height: usize,
}

/// A binary operator read, waiting for its right side.
#[derive(Debug)]
struct PendingBinary {
    op: BinOp,
    at: usize,
    return_bool: bool,
    matching: Option<VectorMatching>,
    lhs: Box<Parsed>,
}

/// What an operand is, once its first tokens are seen.
#[derive(Debug)]
enum Operand {
    /// Read whole: a number or `vector(n)`.
    Done(Box<Parsed>),
    /// `(` around a metric expression: read, and where it is.
    Bracket(usize),
    /// A log query, maybe in brackets.
    Log,
    Range(RangeOp),
    Agg(AggOp),
    LabelReplace,
}

/// A call up to its argument: `sum by (a) (`, `quantile_over_time(0.99,`.
#[derive(Debug)]
struct CallHead<'a> {
    start: usize,
    name: &'a str,
    before: Option<Grouping>,
    param: Option<(f64, &'a str)>,
}

/// The parser's state: the tokens and where it is among them.
#[derive(Debug)]
struct LogqlParser<'a> {
    src: &'a str,
    toks: Vec<Token<'a>>,
    /// For each token, the index of the first token from it on that is not
    /// `(`: whether `((({` starts a log query is one look-up, not a scan.
    after_parens: Vec<usize>,
    pos: usize,
}

/// The range aggregations, by name.
const RANGE_OPS: [(&str, RangeOp); 15] = [
    ("count_over_time", RangeOp::CountOverTime),
    ("rate", RangeOp::Rate),
    ("bytes_over_time", RangeOp::BytesOverTime),
    ("bytes_rate", RangeOp::BytesRate),
    ("absent_over_time", RangeOp::AbsentOverTime),
    ("sum_over_time", RangeOp::SumOverTime),
    ("avg_over_time", RangeOp::AvgOverTime),
    ("min_over_time", RangeOp::MinOverTime),
    ("max_over_time", RangeOp::MaxOverTime),
    ("stddev_over_time", RangeOp::StddevOverTime),
    ("stdvar_over_time", RangeOp::StdvarOverTime),
    ("quantile_over_time", RangeOp::QuantileOverTime),
    ("first_over_time", RangeOp::FirstOverTime),
    ("last_over_time", RangeOp::LastOverTime),
    ("rate_counter", RangeOp::RateCounter),
];

/// The vector aggregations, by name.
const AGG_OPS: [(&str, AggOp); 11] = [
    ("sum", AggOp::Sum),
    ("avg", AggOp::Avg),
    ("min", AggOp::Min),
    ("max", AggOp::Max),
    ("count", AggOp::Count),
    ("stddev", AggOp::Stddev),
    ("stdvar", AggOp::Stdvar),
    ("topk", AggOp::Topk),
    ("bottomk", AggOp::Bottomk),
    ("sort", AggOp::Sort),
    ("sort_desc", AggOp::SortDesc),
];

/// A binary operator's name as written, and its precedence (higher binds tighter).
fn binop_info(op: BinOp) -> (&'static str, u8) {
    match op {
        BinOp::Or => ("or", 1),
        BinOp::And => ("and", 2),
        BinOp::Unless => ("unless", 2),
        BinOp::Eq => ("==", 3),
        BinOp::Ne => ("!=", 3),
        BinOp::Gt => (">", 3),
        BinOp::Ge => (">=", 3),
        BinOp::Lt => ("<", 3),
        BinOp::Le => ("<=", 3),
        BinOp::Add => ("+", 4),
        BinOp::Sub => ("-", 4),
        BinOp::Mul => ("*", 5),
        BinOp::Div => ("/", 5),
        BinOp::Mod => ("%", 5),
        BinOp::Pow => ("^", 6),
    }
}

fn is_comparison(op: BinOp) -> bool {
    binop_info(op).1 == 3
}

fn is_set_operator(op: BinOp) -> bool {
    matches!(op, BinOp::And | BinOp::Or | BinOp::Unless)
}

impl<'a> LogqlParser<'a> {
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

    fn tok(&self) -> &Token<'a> {
        &self.toks[self.pos]
    }

    fn kind(&self) -> &Tk<'a> {
        &self.toks[self.pos].kind
    }

    fn peek(&self, ahead: usize) -> &Tk<'a> {
        let last = self.toks.len() - 1;
        &self.toks[(self.pos + ahead).min(last)].kind
    }

    fn at(&self) -> usize {
        self.tok().start
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

    /// Whether the current token is the word `kw`, in any case.
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.kind(), Tk::Ident(w) if w.eq_ignore_ascii_case(kw))
    }

    fn expect_punct(&mut self, p: &str, expecting: &str) -> R<()> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.unexpected(expecting))
        }
    }

    /// A string token's value (taken: no token is read twice).
    fn string(&mut self, expecting: &str) -> R<(String, usize)> {
        let at = self.at();
        match &mut self.toks[self.pos].kind {
            Tk::Str(s) => {
                let s = std::mem::take(s);
                self.bump();
                Ok((s, at))
            }
            _ => Err(self.unexpected(expecting)),
        }
    }

    fn ident(&mut self, expecting: &str) -> R<(&'a str, usize)> {
        let at = self.at();
        match *self.kind() {
            Tk::Ident(name) => {
                self.bump();
                Ok((name, at))
            }
            _ => Err(self.unexpected(expecting)),
        }
    }

    /// A label name as Prometheus has them (selectors, groupings).
    fn label_name(&mut self) -> R<String> {
        let (name, at) = self.ident("a label name")?;
        if !is_valid_label_name(name) {
            return Err(self.error_at(
                at,
                &format!("invalid label name {name:?}: it must match [a-zA-Z_][a-zA-Z0-9_]*"),
            ));
        }
        Ok(name.to_owned())
    }

    /// A label matcher; a bad regex is an error at `at`, on one line.
    fn matcher(
        &self,
        name: impl Into<String>,
        op: MatchOp,
        value: String,
        at: usize,
    ) -> R<Matcher> {
        if matches!(op, MatchOp::Regex | MatchOp::NotRegex)
            && let Err(e) = Regex::new(&value)
        {
            let message = format!("invalid regex {}: {}", short(&value), regex_error(&e));
            return Err(self.error_at(at, &message));
        }
        Matcher::new(name, op, value).map_err(|e| self.error_at(at, &e))
    }

    fn error_at(&self, at: usize, message: &str) -> String {
        message_at(self.src, at, message)
    }

    /// The current token was not what the grammar allows here.
    fn unexpected(&self, expecting: &str) -> String {
        let token = self.tok();
        let found = match &token.kind {
            Tk::Err(message) => return self.error_at(token.start, message),
            Tk::Eof => "end of query".to_owned(),
            Tk::Ident(name) => format!("identifier {}", short(name)),
            Tk::Punct(p) => format!("\"{p}\""),
            Tk::Flag(f) => format!("flag {f}"),
            kind => {
                let what = match kind {
                    Tk::Str(_) => "string",
                    Tk::Num(_) => "number",
                    Tk::Dur(_) => "duration",
                    Tk::Bytes(_) => "byte size",
                    _ => "range",
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

    // ---- metric expressions ---------------------------------------------
    //
    // The functions a nesting recurses through (`binary`, `operand`, the
    // aggregations, `log_part`, the `label_filter` family) hold only small
    // values, and leave the rest to helpers that return before the recursion
    // goes on: a debug build gives every temporary its own stack slot, and
    // the whole budget must fit a test thread's 2 MiB.

    /// Operators binding at least as tightly as `min_prec`, by precedence
    /// climbing; `^` is right-associative. Brackets recurse here directly.
    #[allow(clippy::question_mark)]
    fn binary(&mut self, min_prec: u8, depth: usize) -> R<Box<Parsed>> {
        // Written without `?`: in a debug build each `?` costs this frame
        // slots of its own, and the frame is paid once per level of nesting.
        let operand = match self.classify(depth) {
            Ok(Operand::Done(parsed)) => Ok(parsed),
            Ok(Operand::Bracket(start)) => {
                let inner = self.binary(0, depth + 1);
                self.close_bracket(inner, start)
            }
            Ok(Operand::Log) => self.log_operand(depth),
            Ok(Operand::Range(op)) => self.range_agg(op, depth),
            Ok(Operand::Agg(op)) => self.vector_agg(op, depth),
            Ok(Operand::LabelReplace) => self.label_replace(depth),
            Err(e) => Err(e),
        };
        let mut lhs = match operand {
            Ok(lhs) => lhs,
            err => return err,
        };
        while let Some(op) = self.binop_from(min_prec) {
            let pending = match self.begin_binary(op, lhs) {
                Ok(pending) => pending,
                Err(e) => return Err(e),
            };
            let rhs = self.binary(next_precedence(op), depth + 1);
            lhs = match self.combine(pending, rhs) {
                Ok(lhs) => lhs,
                err => return err,
            };
        }
        Ok(lhs)
    }

    /// The binary operator here, if it binds at least as tightly as `min_prec`.
    fn binop_from(&self, min_prec: u8) -> Option<BinOp> {
        self.binop().filter(|op| binop_info(*op).1 >= min_prec)
    }

    fn binop(&self) -> Option<BinOp> {
        Some(match self.kind() {
            Tk::Punct("+") => BinOp::Add,
            Tk::Punct("-") => BinOp::Sub,
            Tk::Punct("*") => BinOp::Mul,
            Tk::Punct("/") => BinOp::Div,
            Tk::Punct("%") => BinOp::Mod,
            Tk::Punct("^") => BinOp::Pow,
            Tk::Punct("==") => BinOp::Eq,
            Tk::Punct("!=") => BinOp::Ne,
            Tk::Punct(">") => BinOp::Gt,
            Tk::Punct(">=") => BinOp::Ge,
            Tk::Punct("<") => BinOp::Lt,
            Tk::Punct("<=") => BinOp::Le,
            Tk::Ident(w) if w.eq_ignore_ascii_case("or") => BinOp::Or,
            Tk::Ident(w) if w.eq_ignore_ascii_case("and") => BinOp::And,
            Tk::Ident(w) if w.eq_ignore_ascii_case("unless") => BinOp::Unless,
            _ => return None,
        })
    }

    /// The operator and its modifiers: `bool`, `on (..)`/`ignoring (..)`,
    /// `group_left (..)`/`group_right (..)`.
    #[inline(never)]
    fn begin_binary(&mut self, op: BinOp, lhs: Box<Parsed>) -> R<Box<PendingBinary>> {
        let at = self.at();
        self.bump();
        let mut pending = Box::new(PendingBinary {
            op,
            at,
            return_bool: false,
            matching: None,
            lhs,
        });
        if self.is_kw("bool") {
            if !is_comparison(op) {
                return Err(self.error_at(
                    self.at(),
                    "bool modifier can only be used on comparison operators",
                ));
            }
            self.bump();
            pending.return_bool = true;
        }
        let on = self.is_kw("on");
        if !on && !self.is_kw("ignoring") {
            if self.is_kw("group_left") || self.is_kw("group_right") {
                return Err(self.error_at(
                    self.at(),
                    "syntax error: group_left and group_right need on (...) or ignoring (...) before them",
                ));
            }
            return Ok(pending);
        }
        self.bump();
        self.expect_punct("(", "\"(\" and the labels to match on")?;
        let labels = self.label_list()?;
        let mut matching = VectorMatching {
            on,
            labels,
            group: None,
        };
        let left = self.is_kw("group_left");
        if left || self.is_kw("group_right") {
            if is_set_operator(op) {
                let (name, _) = binop_info(op);
                return Err(self.error_at(
                    self.at(),
                    &format!("no grouping allowed for \"{name}\" operation"),
                ));
            }
            self.bump();
            let include = if self.eat_punct("(") {
                self.label_list()?
            } else {
                Vec::new()
            };
            matching.group = Some(Group { left, include });
        }
        pending.matching = Some(matching);
        Ok(pending)
    }

    /// Labels up to and including `)`; the `(` is read. May be empty.
    fn label_list(&mut self) -> R<Vec<String>> {
        let mut labels = Vec::new();
        loop {
            if self.eat_punct(")") {
                return Ok(labels);
            }
            labels.push(self.label_name()?);
            if !self.eat_punct(",") && !self.is_punct(")") {
                return Err(self.unexpected("\",\" or \")\""));
            }
        }
    }

    /// Makes a binary node once both sides are read.
    // Boxed parts come from the recursion's frame, which holds pointers only.
    #[allow(clippy::boxed_local)]
    #[inline(never)]
    fn combine(&self, pending: Box<PendingBinary>, rhs: R<Box<Parsed>>) -> R<Box<Parsed>> {
        let rhs = rhs?;
        let PendingBinary {
            op,
            at,
            return_bool,
            matching,
            lhs,
        } = *pending;
        let (name, _) = binop_info(op);
        let side = |parsed: Box<Parsed>, leg: &str| {
            match parsed.node {
            Node::Metric(metric) => Ok(metric),
            Node::Log(_) => Err(self.error_at(
                parsed.start,
                &format!(
                    "unexpected type for {leg} leg of binary operation ({name}): a log query; only metric queries combine (count its lines with a range aggregation such as count_over_time({{app=\"x\"}}[5m]))"
                ),
            )),
        }
        };
        let scalar = lhs.scalar && rhs.scalar;
        let height = lhs.height.max(rhs.height) + 1;
        let start = lhs.start;
        if is_set_operator(op) {
            for (parsed, leg) in [(&*lhs, "left"), (&*rhs, "right")] {
                if parsed.scalar {
                    return Err(self.error_at(
                        parsed.start,
                        &format!(
                            "unexpected literal for {leg} leg of logical/set binary operation ({name}): {name} takes series on both sides"
                        ),
                    ));
                }
            }
        }
        let lhs = side(lhs, "left")?;
        let rhs = side(rhs, "right")?;
        self.check_height(height, at)?;
        Ok(Box::new(Parsed {
            node: Node::Metric(Box::new(MetricExpr::Binary(Box::new(Binary {
                op,
                lhs: *lhs,
                rhs: *rhs,
                return_bool,
                matching,
            })))),
            height,
            scalar,
            start,
        }))
    }

    /// A log query as an operand (only a range aggregation may take it).
    #[inline(never)]
    fn log_operand(&mut self, depth: usize) -> R<Box<Parsed>> {
        let start = self.at();
        let part = self.log_part(depth + 1)?;
        Ok(Box::new(Parsed {
            height: part.height,
            node: Node::Log(part),
            scalar: false,
            start,
        }))
    }

    #[inline(never)]
    fn close_bracket(&mut self, inner: R<Box<Parsed>>, start: usize) -> R<Box<Parsed>> {
        let mut inner = inner?;
        self.expect_punct(")", "\")\" or a binary operator")?;
        inner.start = start;
        Ok(inner)
    }

    /// What an operand starts with; numbers and `vector(n)` read whole.
    #[inline(never)]
    fn classify(&mut self, depth: usize) -> R<Operand> {
        self.enter(depth)?;
        let start = self.at();
        if self.is_punct("(") {
            // `((({` is a log query in brackets (maybe with a range after).
            if matches!(self.toks[self.after_parens[self.pos]].kind, Tk::Punct("{")) {
                return Ok(Operand::Log);
            }
            self.bump();
            return Ok(Operand::Bracket(start));
        }
        if self.is_punct("{") {
            return Ok(Operand::Log);
        }
        if let Some(value) = self.number()? {
            return Ok(Operand::Done(leaf(MetricExpr::Literal(value), start, true)));
        }
        let expecting =
            "a stream selector such as {app=\"x\"}, a function such as rate(...) or a number";
        let Tk::Ident(name) = *self.kind() else {
            return Err(self.unexpected(expecting));
        };
        let lower = name.to_ascii_lowercase();
        let call = matches!(self.peek(1), Tk::Punct("("));
        let grouped_call = matches!(self.peek(1), Tk::Ident(w) if w.eq_ignore_ascii_case("by") || w.eq_ignore_ascii_case("without"))
            && matches!(self.peek(2), Tk::Punct("("));
        let range_op = RANGE_OPS
            .iter()
            .find(|(n, _)| *n == lower)
            .map(|(_, op)| *op);
        let agg_op = AGG_OPS.iter().find(|(n, _)| *n == lower).map(|(_, op)| *op);
        match (range_op, agg_op, lower.as_str()) {
            (Some(op), _, _) if call => Ok(Operand::Range(op)),
            (_, Some(op), _) if call || grouped_call => Ok(Operand::Agg(op)),
            (_, _, "label_replace") if call => Ok(Operand::LabelReplace),
            (_, _, "vector") if call => {
                self.bump();
                self.bump();
                let Some(value) = self.number()? else {
                    return Err(self.unexpected("a number"));
                };
                self.expect_punct(")", "\")\"")?;
                Ok(Operand::Done(leaf(
                    MetricExpr::VectorOf(value),
                    start,
                    false,
                )))
            }
            (_, _, "approx_topk") if call => Err(self.error_at(
                start,
                "approx_topk is not supported; use topk, which gives the exact answer",
            )),
            (None, None, "vector" | "label_replace") | (Some(_), _, _) | (_, Some(_), _) => {
                self.bump();
                Err(self.unexpected(&format!("\"(\" after {name}")))
            }
            _ if call => Err(self.error_at(start, &format!("unknown function {}", short(name)))),
            _ => Err(self.unexpected(expecting)),
        }
    }

    /// `5`, `-1.5`, `+2`, `Inf`, `-NaN`; `None` (nothing read) if not a number.
    fn number(&mut self) -> R<Option<f64>> {
        let sign = match self.kind() {
            Tk::Punct("-") => -1.0,
            Tk::Punct("+") => 1.0,
            _ => return Ok(self.unsigned_number()),
        };
        self.bump();
        match self.unsigned_number() {
            Some(value) => Ok(Some(sign * value)),
            None => Err(self.unexpected("a number after the sign")),
        }
    }

    fn unsigned_number(&mut self) -> Option<f64> {
        let value = match *self.kind() {
            Tk::Num(value) => value,
            Tk::Ident(w)
                if w.eq_ignore_ascii_case("inf") && !matches!(self.peek(1), Tk::Punct("(")) =>
            {
                f64::INFINITY
            }
            Tk::Ident(w)
                if w.eq_ignore_ascii_case("nan") && !matches!(self.peek(1), Tk::Punct("(")) =>
            {
                f64::NAN
            }
            _ => return None,
        };
        self.bump();
        Some(value)
    }

    /// A function's name, its grouping if before the `(`, the `(`, and a
    /// leading `N,` parameter.
    #[inline(never)]
    fn call_head(&mut self, takes_param: bool) -> R<Box<CallHead<'a>>> {
        let start = self.at();
        let Tk::Ident(name) = *self.kind() else {
            return Err(self.unexpected("a function"));
        };
        self.bump();
        let before = self.grouping()?;
        self.expect_punct("(", "\"(\"")?;
        let mut param = None;
        if let Tk::Num(value) = *self.kind()
            && takes_param
            && matches!(self.peek(1), Tk::Punct(","))
        {
            param = Some((value, &self.src[self.tok().start..self.tok().end]));
            self.bump();
            self.bump();
        }
        Ok(Box::new(CallHead {
            start,
            name,
            before,
            param,
        }))
    }

    /// `by (a, b)` or `without (c)`, if there.
    fn grouping(&mut self) -> R<Option<Grouping>> {
        let without = self.is_kw("without");
        if !without && !self.is_kw("by") {
            return Ok(None);
        }
        self.bump();
        self.expect_punct("(", "\"(\" and the labels to group by")?;
        let labels = self.label_list()?;
        Ok(Some(Grouping { without, labels }))
    }

    /// `rate({...}[5m])`, `quantile_over_time(0.99, {...} | unwrap x [5m]) by (a)`.
    fn range_agg(&mut self, op: RangeOp, depth: usize) -> R<Box<Parsed>> {
        match self.call_head(true) {
            Ok(head) => {
                let part = if self.is_punct("{") || self.is_punct("(") {
                    self.log_part(depth + 1)
                } else {
                    Err(self.unexpected("a log range such as {app=\"x\"}[5m]"))
                };
                self.finish_range_agg(op, head, part)
            }
            Err(e) => Err(e),
        }
    }

    /// The rest of a range aggregation, Loki's checks, and the node.
    // Boxed parts come from the recursion's frame, which holds pointers only.
    #[allow(clippy::boxed_local)]
    #[inline(never)]
    fn finish_range_agg(
        &mut self,
        op: RangeOp,
        head: Box<CallHead<'a>>,
        part: R<Box<LogPart>>,
    ) -> R<Box<Parsed>> {
        let part = part?;
        if part.range_ms.is_none() {
            return Err(self.unexpected("a range such as [5m] (or a pipeline stage)"));
        }
        self.expect_punct(")", "\")\"")?;
        let grouping = self.grouping()?;
        let CallHead {
            start, name, param, ..
        } = *head;
        let name = name.to_ascii_lowercase();
        let fail = |message: String| Err(self.error_at(start, &message));
        match param {
            Some((_, text)) if op != RangeOp::QuantileOverTime => {
                return fail(format!(
                    "parameter {text} not supported for operation {name}"
                ));
            }
            None if op == RangeOp::QuantileOverTime => {
                return fail(format!(
                    "parameter required for operation {name}: quantile_over_time(0.99, ...)"
                ));
            }
            _ => {}
        }
        use RangeOp as O;
        if grouping.is_some()
            && !matches!(
                op,
                O::AvgOverTime
                    | O::StddevOverTime
                    | O::StdvarOverTime
                    | O::QuantileOverTime
                    | O::MaxOverTime
                    | O::MinOverTime
                    | O::FirstOverTime
                    | O::LastOverTime
            )
        {
            return fail(format!(
                "grouping not allowed for {name} aggregation (group with an outer aggregation such as sum by (...) instead)"
            ));
        }
        let takes_unwrap = !matches!(op, O::CountOverTime | O::BytesOverTime | O::BytesRate);
        let takes_lines = matches!(
            op,
            O::CountOverTime | O::Rate | O::BytesOverTime | O::BytesRate | O::AbsentOverTime
        );
        if part.unwrap.is_some() && !takes_unwrap {
            return fail(format!(
                "invalid aggregation {name} with unwrap: {name} counts log lines and takes no unwrapped value"
            ));
        }
        if part.unwrap.is_none() && !takes_lines {
            return fail(format!(
                "invalid aggregation {name} without unwrap: add | unwrap <label> before the range"
            ));
        }
        let height = part.height + 1;
        self.check_height(height, start)?;
        let part = *part;
        let range = LogRange {
            log: part.log,
            range_ms: part.range_ms.unwrap_or_default(),
            offset_ms: part.offset_ms,
            unwrap: part.unwrap,
        };
        let agg = RangeAgg {
            op,
            range,
            param: param.map(|(value, _)| value),
            grouping,
        };
        Ok(leaf_with_height(MetricExpr::Range(agg), start, height))
    }

    /// `sum by (a) (...)`, `topk(3, ...)`, `sort_desc(...)`.
    fn vector_agg(&mut self, op: AggOp, depth: usize) -> R<Box<Parsed>> {
        match self.call_head(true) {
            Ok(head) => {
                let inner = self.binary(0, depth + 1);
                self.finish_vector_agg(op, head, inner)
            }
            Err(e) => Err(e),
        }
    }

    /// The rest of a vector aggregation, Loki's checks, and the node.
    // Boxed parts come from the recursion's frame, which holds pointers only.
    #[allow(clippy::boxed_local)]
    #[inline(never)]
    fn finish_vector_agg(
        &mut self,
        op: AggOp,
        head: Box<CallHead<'a>>,
        inner: R<Box<Parsed>>,
    ) -> R<Box<Parsed>> {
        let inner = inner?;
        self.expect_punct(")", "\")\" or a binary operator")?;
        let after_at = self.at();
        let after = self.grouping()?;
        let CallHead {
            start,
            name,
            before,
            param,
        } = *head;
        let name = name.to_ascii_lowercase();
        let grouping = match (before, after) {
            (Some(_), Some(_)) => {
                return Err(self.error_at(
                    after_at,
                    &format!(
                        "syntax error: {name} has by/without both before and after its argument; give it once"
                    ),
                ));
            }
            (before, after) => before.or(after),
        };
        let fail = |message: String| Err(self.error_at(start, &message));
        let param = match (op, param) {
            (AggOp::Topk | AggOp::Bottomk, None) => {
                return fail(format!(
                    "parameter required for operation {name}: {name}(5, ...)"
                ));
            }
            (AggOp::Topk | AggOp::Bottomk, Some((k, text))) => {
                if k.fract() != 0.0 || !k.is_finite() || k > i64::MAX as f64 {
                    return fail(format!(
                        "invalid parameter {name}({text},: it must be a whole number"
                    ));
                }
                if k <= 0.0 {
                    return fail(format!(
                        "invalid parameter (must be greater than 0) {name}({text}"
                    ));
                }
                Some(k)
            }
            (_, Some((_, text))) => {
                return fail(format!(
                    "unsupported parameter for operation {name}({text},: only topk and bottomk take one"
                ));
            }
            (_, None) => None,
        };
        if matches!(op, AggOp::Sort | AggOp::SortDesc)
            && grouping.as_ref().is_some_and(|g| !g.labels.is_empty())
        {
            return fail("sort and sort_desc doesn't allow grouping by labels".to_owned());
        }
        let Node::Metric(metric) = inner.node else {
            return Err(self.error_at(
                inner.start,
                &format!(
                    "{name} takes a metric query, not a log query: count the lines with a range aggregation such as {name}(count_over_time({{app=\"x\"}}[5m]))"
                ),
            ));
        };
        let height = inner.height + 1;
        self.check_height(height, start)?;
        let agg = VectorAgg {
            op,
            grouping,
            param,
            inner: metric,
        };
        Ok(leaf_with_height(MetricExpr::Vector(agg), start, height))
    }

    /// `label_replace(expr, "dst", "replacement", "src", "regex")`.
    fn label_replace(&mut self, depth: usize) -> R<Box<Parsed>> {
        match self.call_head(false) {
            Ok(head) => {
                let inner = self.binary(0, depth + 1);
                self.finish_label_replace(head, inner)
            }
            Err(e) => Err(e),
        }
    }

    /// The strings after label_replace's expression, their checks, and the node.
    // Boxed parts come from the recursion's frame, which holds pointers only.
    #[allow(clippy::boxed_local)]
    #[inline(never)]
    fn finish_label_replace(
        &mut self,
        head: Box<CallHead<'a>>,
        inner: R<Box<Parsed>>,
    ) -> R<Box<Parsed>> {
        let inner = inner?;
        let mut strings: Vec<(String, usize)> = Vec::with_capacity(4);
        for what in [
            "the destination label",
            "the replacement",
            "the source label",
            "the regex",
        ] {
            self.expect_punct(",", &format!("\",\" and {what}"))?;
            strings.push(self.string(&format!("a string: {what}"))?);
        }
        self.expect_punct(")", "\")\"")?;
        let start = head.start;
        if head.before.is_some() {
            return Err(self.error_at(start, "syntax error: label_replace takes no by or without"));
        }
        let Node::Metric(metric) = inner.node else {
            return Err(self.error_at(
                inner.start,
                "label_replace takes a metric query, not a log query",
            ));
        };
        let mut strings = strings.into_iter();
        let mut next = || strings.next().unwrap_or_default();
        let (dst, dst_at) = next();
        let (replacement, _) = next();
        let (src, _) = next();
        let (regex, regex_at) = next();
        if !is_valid_label_name(&dst) {
            return Err(self.error_at(
                dst_at,
                &format!("invalid destination label name in label_replace(): {dst}"),
            ));
        }
        // The regex on its own too: anchoring it could balance a stray `)`.
        if let Err(e) = Regex::new(&regex).and_then(|_| Regex::new(&format!("^(?s:{regex})$"))) {
            return Err(self.error_at(
                regex_at,
                &format!("invalid regex in label_replace: {}", regex_error(&e)),
            ));
        }
        let height = inner.height + 1;
        self.check_height(height, start)?;
        let node = MetricExpr::LabelReplace(Box::new(LabelReplace {
            inner: *metric,
            dst,
            replacement,
            src,
            regex,
        }));
        Ok(leaf_with_height(node, start, height))
    }

    // ---- log queries ----------------------------------------------------

    /// `{...}` and its pipeline, with a range, offset and unwrap where Loki
    /// allows them (the range after the selector or after the pipeline), or
    /// the same in brackets followed by a range: `({...} | json)[5m]`.
    fn log_part(&mut self, depth: usize) -> R<Box<LogPart>> {
        self.enter(depth)?;
        if self.eat_punct("(") {
            let part = self.log_part(depth + 1)?;
            return self.close_log_bracket(part);
        }
        self.log_query(depth)
    }

    /// `)` after a bracketed log query, and the range that may follow it.
    #[inline(never)]
    fn close_log_bracket(&mut self, mut part: Box<LogPart>) -> R<Box<LogPart>> {
        let expecting = if part.range_ms.is_some() {
            "\")\""
        } else {
            "a pipeline stage, a range such as [5m] or \")\""
        };
        self.expect_punct(")", expecting)?;
        if part.range_ms.is_none() && matches!(self.kind(), Tk::Range(_)) {
            self.range_and_offset(&mut part)?;
        }
        Ok(part)
    }

    /// A selector and what follows it.
    #[inline(never)]
    fn log_query(&mut self, depth: usize) -> R<Box<LogPart>> {
        if !self.is_punct("{") {
            return Err(self.unexpected("a stream selector such as {app=\"x\"}"));
        }
        let selector = self.selector()?;
        let mut part = Box::new(LogPart {
            log: LogExpr {
                selector,
                pipeline: Vec::new(),
            },
            unwrap: None,
            unwrap_at: None,
            range_ms: None,
            range_at: None,
            offset_ms: 0,
            height: 1,
        });
        self.pipeline(&mut part, depth)?;
        Ok(part)
    }

    /// `{a="b", c=~"d"}`.
    fn selector(&mut self) -> R<Vec<Matcher>> {
        let open = self.at();
        self.bump();
        let mut matchers = Vec::new();
        loop {
            if self.eat_punct("}") {
                break;
            }
            if !matches!(self.kind(), Tk::Ident(_)) {
                return Err(self.unexpected("a label matcher such as app=\"x\", or \"}\""));
            }
            let name = self.label_name()?;
            let op = match self.kind() {
                Tk::Punct("=") => MatchOp::Equal,
                Tk::Punct("!=") => MatchOp::NotEqual,
                Tk::Punct("=~") => MatchOp::Regex,
                Tk::Punct("!~") => MatchOp::NotRegex,
                _ => return Err(self.unexpected("=, !=, =~ or !~")),
            };
            self.bump();
            let (value, at) = self.string("a string")?;
            matchers.push(self.matcher(name, op, value, at)?);
            if !self.eat_punct(",") && !self.is_punct("}") {
                return Err(self.unexpected("\"}\" or \",\""));
            }
        }
        if matchers.iter().all(Matcher::matches_empty) {
            return Err(self.error_at(open, ERR_EMPTY_COMPATIBLE));
        }
        Ok(matchers)
    }

    /// The stages, range, offset and unwrap after a selector.
    fn pipeline(&mut self, part: &mut LogPart, depth: usize) -> R<()> {
        loop {
            match *self.kind() {
                Tk::Range(_) => {
                    if part.range_ms.is_some() {
                        return Err(self.unexpected("a pipeline stage: the range is already given"));
                    }
                    self.range_and_offset(part)?;
                }
                Tk::Punct("|=" | "!=" | "|~" | "!~" | "|>" | "!>") => {
                    if part.unwrap.is_some() {
                        return Err(self.error_at(
                            self.at(),
                            "syntax error: only label filters may follow unwrap",
                        ));
                    }
                    let filter = self.line_filter()?;
                    part.log.pipeline.push(Stage::LineFilter(filter));
                }
                Tk::Punct("|") => {
                    self.bump();
                    if self.is_kw("unwrap") {
                        if part.unwrap.is_some() {
                            return Err(self
                                .error_at(self.at(), "syntax error: unwrap may appear only once"));
                        }
                        part.unwrap_at = Some(self.at());
                        part.unwrap = Some(self.unwrap()?);
                    } else if part.unwrap.is_some() {
                        if self.is_stage_keyword() {
                            return Err(self.error_at(
                                self.at(),
                                "syntax error: only label filters may follow unwrap",
                            ));
                        }
                        let (filter, height) = self.label_filter(depth + 1)?;
                        part.height = part.height.max(height + 1);
                        if let Some(unwrap) = &mut part.unwrap {
                            unwrap.post_filters.push(*filter);
                        }
                    } else {
                        let (stage, height) = self.stage(depth)?;
                        part.height = part.height.max(height + 1);
                        part.log.pipeline.push(stage);
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn is_stage_keyword(&self) -> bool {
        [
            "json",
            "logfmt",
            "regexp",
            "pattern",
            "unpack",
            "line_format",
            "label_format",
            "drop",
            "keep",
            "decolorize",
        ]
        .iter()
        .any(|k| self.is_kw(k))
    }

    /// `[5m]` and an optional `offset 1h` after it.
    fn range_and_offset(&mut self, part: &mut LogPart) -> R<()> {
        if let Tk::Range(ms) = *self.kind() {
            part.range_ms = Some(ms);
            part.range_at = Some(self.at());
            self.bump();
        }
        if self.is_kw("offset") {
            self.bump();
            let negative = self.eat_punct("-");
            let Tk::Dur(seconds) = *self.kind() else {
                return Err(self.unexpected("a duration such as 1h after offset"));
            };
            let ms = (seconds * 1000.0).round();
            if !ms.is_finite() || ms.abs() >= i64::MAX as f64 {
                return Err(self.error_at(self.at(), "offset too large"));
            }
            part.offset_ms = if negative { -ms } else { ms } as i64;
            self.bump();
        }
        Ok(())
    }

    /// `|= "a" or "b"` and the other line filters.
    fn line_filter(&mut self) -> R<LineFilter> {
        let op = match self.kind() {
            Tk::Punct("|=") => LineOp::Contains,
            Tk::Punct("!=") => LineOp::NotContains,
            Tk::Punct("|~") => LineOp::Regex,
            Tk::Punct("!~") => LineOp::NotRegex,
            Tk::Punct("|>") => LineOp::Pattern,
            _ => LineOp::NotPattern,
        };
        self.bump();
        let mut values = vec![self.line_filter_value(op)?];
        while self.is_kw("or")
            && (matches!(self.peek(1), Tk::Str(_))
                || matches!(self.peek(1), Tk::Ident(w) if w.eq_ignore_ascii_case("ip")))
        {
            self.bump();
            values.push(self.line_filter_value(op)?);
        }
        Ok(LineFilter { op, values })
    }

    fn line_filter_value(&mut self, op: LineOp) -> R<String> {
        if self.is_kw("ip") && matches!(self.peek(1), Tk::Punct("(")) {
            return Err(self.error_at(
                self.at(),
                "ip(...) filters are not supported; match the address with a regex (|~) instead",
            ));
        }
        let (value, at) = self.string("a string")?;
        let problem = match op {
            LineOp::Regex | LineOp::NotRegex => Regex::new(&value)
                .err()
                .map(|e| format!("invalid regex {}: {}", short(&value), regex_error(&e))),
            LineOp::Pattern | LineOp::NotPattern => check_pattern(&value, true)
                .err()
                .map(|e| format!("invalid pattern {}: {e}", short(&value))),
            LineOp::Contains | LineOp::NotContains => None,
        };
        match problem {
            Some(message) => Err(self.error_at(at, &message)),
            None => Ok(value),
        }
    }

    /// `unwrap x`, `unwrap duration(x)`, `unwrap duration_seconds(x)`, `unwrap bytes(x)`.
    fn unwrap(&mut self) -> R<Unwrap> {
        self.bump();
        let conversion = match *self.kind() {
            Tk::Ident(w) if matches!(self.peek(1), Tk::Punct("(")) => {
                match w.to_ascii_lowercase().as_str() {
                    "bytes" => Conversion::Bytes,
                    "duration" | "duration_seconds" => Conversion::Duration,
                    _ => {
                        return Err(self.error_at(
                            self.at(),
                            &format!(
                                "unknown unwrap conversion {}: use bytes(...), duration(...) or duration_seconds(...)",
                                short(w)
                            ),
                        ));
                    }
                }
            }
            _ => Conversion::Number,
        };
        let bracketed = conversion != Conversion::Number;
        if bracketed {
            self.bump();
            self.bump();
        }
        let (label, _) = self.ident("a label name to unwrap")?;
        if bracketed {
            self.expect_punct(")", "\")\"")?;
        }
        Ok(Unwrap {
            label: label.to_owned(),
            conversion,
            post_filters: Vec::new(),
        })
    }

    /// One stage after `|` (not unwrap), and its height.
    fn stage(&mut self, depth: usize) -> R<(Stage, usize)> {
        let word = match *self.kind() {
            Tk::Ident(w) => w.to_ascii_lowercase(),
            Tk::Punct("(") => String::new(),
            _ => {
                return Err(self.unexpected(
                    "a parser (json, logfmt, regexp, pattern, unpack), a label filter, line_format, label_format, drop, keep, decolorize or unwrap",
                ));
            }
        };
        let stage = match word.as_str() {
            "json" => {
                self.bump();
                Stage::Parser(Parser::Json(self.extractions()?))
            }
            "logfmt" => {
                self.bump();
                let (mut strict, mut keep_empty) = (false, false);
                while let Tk::Flag(flag) = *self.kind() {
                    match flag {
                        "--strict" => strict = true,
                        _ => keep_empty = true,
                    }
                    self.bump();
                }
                let params = self.extractions()?;
                Stage::Parser(Parser::Logfmt {
                    strict,
                    keep_empty,
                    params,
                })
            }
            "regexp" => {
                self.bump();
                let (regex, at) = self.string("a string: the regular expression")?;
                check_regexp_parser(&regex).map_err(|e| self.error_at(at, &e))?;
                Stage::Parser(Parser::Regexp(regex))
            }
            "pattern" => {
                self.bump();
                let (pattern, at) = self.string("a string: the pattern")?;
                check_pattern(&pattern, false).map_err(|e| {
                    self.error_at(at, &format!("invalid pattern {}: {e}", short(&pattern)))
                })?;
                Stage::Parser(Parser::Pattern(pattern))
            }
            "unpack" => {
                self.bump();
                Stage::Parser(Parser::Unpack)
            }
            "line_format" => {
                self.bump();
                Stage::LineFormat(self.string("a string: the line template")?.0)
            }
            "label_format" => {
                self.bump();
                Stage::LabelFormat(self.label_formats()?)
            }
            "drop" => {
                self.bump();
                Stage::Drop(self.label_selections()?)
            }
            "keep" => {
                self.bump();
                Stage::Keep(self.label_selections()?)
            }
            "decolorize" => {
                self.bump();
                Stage::Decolorize
            }
            _ => {
                let (filter, height) = self.label_filter(depth + 1)?;
                return Ok((Stage::LabelFilter(*filter), height));
            }
        };
        Ok((stage, 1))
    }

    /// `a="b.c", d` after json or logfmt: the label and the key to read.
    fn extractions(&mut self) -> R<Vec<(String, String)>> {
        let mut params = Vec::new();
        if !matches!(self.kind(), Tk::Ident(_)) {
            return Ok(params);
        }
        loop {
            let name = self.label_name()?;
            let key = if self.eat_punct("=") {
                self.string("a string: the key to extract")?.0
            } else {
                name.clone()
            };
            params.push((name, key));
            if !self.eat_punct(",") {
                return Ok(params);
            }
        }
    }

    /// `dst=src, dst2="{{.a}}"` after label_format.
    fn label_formats(&mut self) -> R<Vec<LabelFmt>> {
        let mut formats: Vec<LabelFmt> = Vec::new();
        loop {
            let at = self.at();
            let dst = self.label_name()?;
            let dst = dst.as_str();
            self.expect_punct("=", "\"=\"")?;
            let format = match *self.kind() {
                Tk::Ident(src) => {
                    self.bump();
                    LabelFmt::Rename {
                        dst: dst.to_owned(),
                        src: src.to_owned(),
                    }
                }
                _ => LabelFmt::Template {
                    dst: dst.to_owned(),
                    template: self
                        .string("a label name to rename from or a template string")?
                        .0,
                },
            };
            if dst == "__error__" {
                return Err(self.error_at(at, "__error__ cannot be formatted"));
            }
            let seen = formats.iter().any(|f| match f {
                LabelFmt::Rename { dst: d, .. } | LabelFmt::Template { dst: d, .. } => d == dst,
            });
            if seen {
                return Err(self.error_at(
                    at,
                    &format!(
                        "multiple label name '{dst}' not allowed in a single format operation"
                    ),
                ));
            }
            formats.push(format);
            if !self.eat_punct(",") {
                return Ok(formats);
            }
        }
    }

    /// `a, b="x", c=~"y"` after drop or keep.
    fn label_selections(&mut self) -> R<Vec<LabelSel>> {
        let mut selections = Vec::new();
        loop {
            let (name, _) = self.ident("a label name")?;
            let op = match self.kind() {
                Tk::Punct("=") => Some(MatchOp::Equal),
                Tk::Punct("!=") => Some(MatchOp::NotEqual),
                Tk::Punct("=~") => Some(MatchOp::Regex),
                Tk::Punct("!~") => Some(MatchOp::NotRegex),
                _ => None,
            };
            selections.push(match op {
                None => LabelSel::Name(name.to_owned()),
                Some(op) => {
                    self.bump();
                    let (value, at) = self.string("a string")?;
                    LabelSel::Matcher(self.matcher(name, op, value, at)?)
                }
            });
            if !self.eat_punct(",") {
                return Ok(selections);
            }
        }
    }

    // ---- label filters --------------------------------------------------

    /// Label filters joined by `and` (or `,`, or nothing but space) and by
    /// `or`, which binds looser; brackets recurse here directly, the rest is
    /// a loop, so a nesting costs one small frame per level.
    fn label_filter(&mut self, depth: usize) -> R<Filter> {
        self.enter(depth)?;
        let mut chain = Box::<FilterChain>::default();
        loop {
            let primary = if self.eat_punct("(") {
                match self.label_filter(depth + 1) {
                    Ok(inner) => self.close_filter_bracket(inner),
                    err => err,
                }
            } else {
                self.comparison()
            };
            if !self.join_filter(&mut chain, primary)? {
                return self.finish_filters(&mut chain);
            }
        }
    }

    #[inline(never)]
    fn close_filter_bracket(&mut self, inner: Filter) -> R<Filter> {
        self.expect_punct(")", "\")\", and, or")?;
        Ok(inner)
    }

    /// Adds a filter to the chain and reads what joins it to the next:
    /// whether there is a next.
    #[inline(never)]
    fn join_filter(&mut self, chain: &mut FilterChain, filter: R<Filter>) -> R<bool> {
        let filter = filter?;
        let joined = match chain.and.take() {
            None => filter,
            Some(lhs) => self.join_filters(lhs, filter, chain.at, true)?,
        };
        chain.and = Some(joined);
        chain.at = self.at();
        if self.is_kw("or") {
            self.bump();
            let and = chain.and.take();
            chain.or = match (chain.or.take(), and) {
                (Some(lhs), Some(rhs)) => Some(self.join_filters(lhs, rhs, chain.at, false)?),
                (lhs, rhs) => lhs.or(rhs),
            };
            return Ok(true);
        }
        if self.is_punct(",") || self.is_kw("and") {
            self.bump();
            return Ok(true);
        }
        // A filter joined to the one before by a space.
        Ok(match self.kind() {
            Tk::Punct("(") => true,
            Tk::Ident(_) => matches!(
                self.peek(1),
                Tk::Punct("=" | "!=" | "=~" | "!~" | "==" | ">" | ">=" | "<" | "<=")
            ),
            _ => false,
        })
    }

    #[inline(never)]
    fn finish_filters(&self, chain: &mut FilterChain) -> R<Filter> {
        match (chain.or.take(), chain.and.take()) {
            (Some(lhs), Some(rhs)) => self.join_filters(lhs, rhs, chain.at, false),
            (Some(only), None) | (None, Some(only)) => Ok(only),
            (None, None) => Err(self.unexpected("a label filter")),
        }
    }

    #[inline(never)]
    fn join_filters(&self, lhs: Filter, rhs: Filter, at: usize, and: bool) -> R<Filter> {
        let height = lhs.1.max(rhs.1) + 1;
        self.check_height(height, at)?;
        let joined = if and {
            LabelFilter::And(lhs.0, rhs.0)
        } else {
            LabelFilter::Or(lhs.0, rhs.0)
        };
        Ok((Box::new(joined), height))
    }

    /// `name = "v"`, `name =~ "re"`, `name > 5`, `name >= 250ms`, `name < 20MB`.
    #[inline(never)]
    fn comparison(&mut self) -> R<Filter> {
        let Tk::Ident(name) = *self.kind() else {
            return Err(self.unexpected("a label filter such as level=\"error\" or duration > 1s"));
        };
        self.bump();
        let (string_op, number_op) = match self.kind() {
            Tk::Punct("=") => (Some(MatchOp::Equal), Some(CmpOp::Eq)),
            Tk::Punct("!=") => (Some(MatchOp::NotEqual), Some(CmpOp::Ne)),
            Tk::Punct("=~") => (Some(MatchOp::Regex), None),
            Tk::Punct("!~") => (Some(MatchOp::NotRegex), None),
            Tk::Punct("==") => (None, Some(CmpOp::Eq)),
            Tk::Punct(">") => (None, Some(CmpOp::Gt)),
            Tk::Punct(">=") => (None, Some(CmpOp::Ge)),
            Tk::Punct("<") => (None, Some(CmpOp::Lt)),
            Tk::Punct("<=") => (None, Some(CmpOp::Le)),
            _ => {
                return Err(self.unexpected(&format!(
                    "a comparison (=, !=, =~, !~, ==, >, >=, <, <=) after label {} (or is it a misspelt stage such as json or logfmt?)",
                    short(name)
                )));
            }
        };
        self.bump();
        if self.is_kw("ip") && matches!(self.peek(1), Tk::Punct("(")) {
            return Err(self.error_at(
                self.at(),
                "ip(...) label filters are not supported; match the address with =~ instead",
            ));
        }
        if let (Some(op), Tk::Str(_)) = (string_op, self.kind()) {
            let (value, at) = self.string("a string")?;
            let matcher = self.matcher(name, op, value, at)?;
            return Ok((Box::new(LabelFilter::Match(matcher)), 1));
        }
        let Some(op) = number_op else {
            return Err(self.unexpected("a string (a regular expression)"));
        };
        let negative = self.eat_punct("-");
        if !negative {
            self.eat_punct("+");
        }
        let expecting = if string_op.is_some() {
            "a string, a number, a duration such as 250ms or a byte size such as 20MB"
        } else {
            "a number, a duration such as 250ms or a byte size such as 20MB"
        };
        let sign = if negative { -1.0 } else { 1.0 };
        let filter = match *self.kind() {
            Tk::Num(value) => LabelFilter::Number {
                name: name.to_owned(),
                op,
                value: sign * value,
            },
            Tk::Dur(seconds) => LabelFilter::Duration {
                name: name.to_owned(),
                op,
                seconds: sign * seconds,
            },
            Tk::Bytes(bytes) if !negative => LabelFilter::Bytes {
                name: name.to_owned(),
                op,
                bytes,
            },
            _ => return Err(self.unexpected(expecting)),
        };
        self.bump();
        Ok((Box::new(filter), 1))
    }
}

/// A metric node of height one.
fn leaf(node: MetricExpr, start: usize, scalar: bool) -> Box<Parsed> {
    Box::new(Parsed {
        node: Node::Metric(Box::new(node)),
        height: 1,
        scalar,
        start,
    })
}

fn leaf_with_height(node: MetricExpr, start: usize, height: usize) -> Box<Parsed> {
    Box::new(Parsed {
        node: Node::Metric(Box::new(node)),
        height,
        scalar: false,
        start,
    })
}

/// The precedence the right side of `op` must bind at least as tightly as.
fn next_precedence(op: BinOp) -> u8 {
    let (_, prec) = binop_info(op);
    if op == BinOp::Pow { prec } else { prec + 1 }
}

/// Quoted, and cut to a length an error message can carry.
fn short(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{:?}...", &text[..at]),
        None => format!("{text:?}"),
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

/// `| regexp`: it compiles, and names at least one group, each a label name.
fn check_regexp_parser(regex: &str) -> Result<(), String> {
    let compiled = Regex::new(regex).map_err(|e| {
        format!(
            "invalid regexp parser {}: {}",
            short(regex),
            regex_error(&e)
        )
    })?;
    let mut named = 0;
    for name in compiled.capture_names().flatten() {
        if !is_valid_label_name(name) {
            return Err(format!(
                "invalid regexp parser: invalid extracted label name '{name}'"
            ));
        }
        named += 1;
    }
    if named == 0 {
        return Err(format!(
            "invalid regexp parser {}: at least one named capture such as (?P<name>...) is required",
            short(regex)
        ));
    }
    Ok(())
}

/// A pattern (`<ip> - <_> "<method> <path>"`): captures are `<name>` (or
/// `<_>`, captured and dropped); the rest is literal. Two captures may not
/// touch. The `pattern` parser needs a named capture and no name twice; a
/// line filter (`|>`) takes `<_>` only.
fn check_pattern(pattern: &str, line_filter: bool) -> Result<(), String> {
    if line_filter && pattern.is_empty() {
        return Ok(());
    }
    let bytes = pattern.as_bytes();
    let mut names: Vec<&str> = Vec::new();
    let mut previous_capture: Option<&str> = None;
    let mut i = 0;
    while i < bytes.len() {
        let capture = (bytes[i] == b'<')
            .then(|| {
                let len = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                let name = &pattern[i + 1..i + 1 + len];
                let starts_well = name
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
                (starts_well && bytes.get(i + 1 + len) == Some(&b'>')).then_some(name)
            })
            .flatten();
        match capture {
            Some(name) => {
                if let Some(previous) = previous_capture {
                    return Err(format!(
                        "found consecutive capture '<{previous}><{name}>': two captures need literal text between them"
                    ));
                }
                if name != "_" {
                    if line_filter {
                        return Err(format!(
                            "named captures are not allowed: found '<{name}>' (a line filter pattern takes <_> only)"
                        ));
                    }
                    if names.contains(&name) {
                        return Err(format!("duplicate capture name ({name})"));
                    }
                    names.push(name);
                }
                previous_capture = Some(name);
                i += name.len() + 2;
            }
            None => {
                previous_capture = None;
                i += 1;
            }
        }
    }
    if !line_filter && names.is_empty() {
        return Err("at least one capture such as <name> is required".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::ast::{LabelFmt, LabelSel};

    // ---- a compact rendering of the tree, to assert it whole ------------

    fn show(expr: &Expr) -> String {
        match expr {
            Expr::Log(log) => show_log(log),
            Expr::Metric(metric) => show_metric(metric),
        }
    }

    fn join<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
        items.iter().map(f).collect::<Vec<_>>().join(",")
    }

    fn show_log(log: &LogExpr) -> String {
        let mut out = format!("{{{}}}", join(&log.selector, ToString::to_string));
        for stage in &log.pipeline {
            out.push(' ');
            out.push_str(&show_stage(stage));
        }
        out
    }

    fn show_params(params: &[(String, String)]) -> String {
        join(params, |(name, key)| format!(" {name}={key:?}"))
    }

    fn show_stage(stage: &Stage) -> String {
        match stage {
            Stage::LineFilter(f) => {
                let op = match f.op {
                    LineOp::Contains => "|=",
                    LineOp::NotContains => "!=",
                    LineOp::Regex => "|~",
                    LineOp::NotRegex => "!~",
                    LineOp::Pattern => "|>",
                    LineOp::NotPattern => "!>",
                };
                let values: Vec<String> = f.values.iter().map(|v| format!("{v:?}")).collect();
                format!("{op} {}", values.join(" or "))
            }
            Stage::Parser(Parser::Json(params)) => format!("| json{}", show_params(params)),
            Stage::Parser(Parser::Logfmt {
                strict,
                keep_empty,
                params,
            }) => format!(
                "| logfmt{}{}{}",
                if *strict { " --strict" } else { "" },
                if *keep_empty { " --keep-empty" } else { "" },
                show_params(params)
            ),
            Stage::Parser(Parser::Regexp(re)) => format!("| regexp {re:?}"),
            Stage::Parser(Parser::Pattern(p)) => format!("| pattern {p:?}"),
            Stage::Parser(Parser::Unpack) => "| unpack".to_owned(),
            Stage::LabelFilter(f) => format!("| {}", show_filter(f)),
            Stage::LineFormat(t) => format!("| line_format {t:?}"),
            Stage::LabelFormat(formats) => format!(
                "| label_format {}",
                join(formats, |f| match f {
                    LabelFmt::Rename { dst, src } => format!("{dst}={src}"),
                    LabelFmt::Template { dst, template } => format!("{dst}={template:?}"),
                })
            ),
            Stage::Drop(sels) => format!("| drop {}", show_sels(sels)),
            Stage::Keep(sels) => format!("| keep {}", show_sels(sels)),
            Stage::Decolorize => "| decolorize".to_owned(),
        }
    }

    fn show_sels(sels: &[LabelSel]) -> String {
        join(sels, |s| match s {
            LabelSel::Name(n) => n.clone(),
            LabelSel::Matcher(m) => m.to_string(),
        })
    }

    fn show_cmp(op: CmpOp) -> &'static str {
        match op {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        }
    }

    fn show_filter(f: &LabelFilter) -> String {
        match f {
            LabelFilter::And(a, b) => format!("({} and {})", show_filter(a), show_filter(b)),
            LabelFilter::Or(a, b) => format!("({} or {})", show_filter(a), show_filter(b)),
            LabelFilter::Match(m) => m.to_string(),
            LabelFilter::Number { name, op, value } => format!("{name}{}{value}", show_cmp(*op)),
            LabelFilter::Duration { name, op, seconds } => {
                format!("{name}{}{seconds}s", show_cmp(*op))
            }
            LabelFilter::Bytes { name, op, bytes } => format!("{name}{}{bytes}B", show_cmp(*op)),
        }
    }

    fn show_grouping(g: &Option<Grouping>) -> String {
        match g {
            None => String::new(),
            Some(g) => format!(
                " {}({})",
                if g.without { "without" } else { "by" },
                g.labels.join(",")
            ),
        }
    }

    fn show_metric(m: &MetricExpr) -> String {
        match m {
            MetricExpr::Range(r) => {
                let param = r.param.map(|p| format!("{p}, ")).unwrap_or_default();
                let mut unwrap = String::new();
                if let Some(u) = &r.range.unwrap {
                    unwrap = format!(" | unwrap {:?}({})", u.conversion, u.label);
                    for f in &u.post_filters {
                        unwrap.push_str(&format!(" | {}", show_filter(f)));
                    }
                }
                let offset = match r.range.offset_ms {
                    0 => String::new(),
                    ms => format!(" offset {ms}ms"),
                };
                format!(
                    "{:?}({param}{}{unwrap} [{}ms]{offset}){}",
                    r.op,
                    show_log(&r.range.log),
                    r.range.range_ms,
                    show_grouping(&r.grouping)
                )
            }
            MetricExpr::Vector(v) => {
                let param = v.param.map(|p| format!("{p}, ")).unwrap_or_default();
                format!(
                    "{:?}{}({param}{})",
                    v.op,
                    show_grouping(&v.grouping),
                    show_metric(&v.inner)
                )
            }
            MetricExpr::Binary(b) => {
                let (name, _) = binop_info(b.op);
                let mut modifiers = String::new();
                if b.return_bool {
                    modifiers.push_str(" bool");
                }
                if let Some(m) = &b.matching {
                    let kind = if m.on { "on" } else { "ignoring" };
                    modifiers.push_str(&format!(" {kind}({})", m.labels.join(",")));
                    if let Some(g) = &m.group {
                        let side = if g.left { "group_left" } else { "group_right" };
                        modifiers.push_str(&format!(" {side}({})", g.include.join(",")));
                    }
                }
                format!(
                    "({} {name}{modifiers} {})",
                    show_metric(&b.lhs),
                    show_metric(&b.rhs)
                )
            }
            MetricExpr::Literal(v) => format!("{v}"),
            MetricExpr::VectorOf(v) => format!("vector({v})"),
            MetricExpr::LabelReplace(l) => format!(
                "label_replace({}, {:?}, {:?}, {:?}, {:?})",
                show_metric(&l.inner),
                l.dst,
                l.replacement,
                l.src,
                l.regex
            ),
        }
    }

    #[track_caller]
    fn check(query: &str, expected: &str) {
        match parse(query) {
            Ok(expr) => assert_eq!(show(&expr), expected, "query: {query}"),
            Err(e) => panic!("{query}: {e}"),
        }
    }

    #[track_caller]
    fn error_of(query: &str) -> String {
        match parse(query) {
            Ok(expr) => panic!("{query} parsed: {}", show(&expr)),
            Err(Error::Parse(message)) => message,
            Err(other) => panic!("{query}: not a parse error: {other}"),
        }
    }

    // ---- good queries ---------------------------------------------------

    #[test]
    fn documented_log_queries() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{app="mysql",name="mysql-backup"}"#,
                r#"{app="mysql",name="mysql-backup"}"#,
            ),
            (
                r#"{job="mysql"} |= "error" != "timeout""#,
                r#"{job="mysql"} |= "error" != "timeout""#,
            ),
            (
                r#"{container="query-frontend",namespace="loki-dev"} |= "metrics.go" | logfmt | duration > 10s and throughput_mb < 500"#,
                r#"{container="query-frontend",namespace="loki-dev"} |= "metrics.go" | logfmt | (duration>10s and throughput_mb<500)"#,
            ),
            (
                r#"{app="foo"} | logfmt | duration > 1m and bytes_consumed > 20MB"#,
                r#"{app="foo"} | logfmt | (duration>60s and bytes_consumed>20000000B)"#,
            ),
            // `and` binds tighter than `or`; `,` and a plain space mean `and`.
            (
                r#"{a="b"} | duration >= 20ms or size == 20KB and method!~"2..""#,
                r#"{a="b"} | (duration>=0.02s or (size==20000B and method!~"2.."))"#,
            ),
            (
                r#"{a="b"} | duration >= 20ms or size == 20KB , method!~"2..""#,
                r#"{a="b"} | (duration>=0.02s or (size==20000B and method!~"2.."))"#,
            ),
            (
                r#"{a="b"} | duration >= 20ms or size == 20KB  method!~"2..""#,
                r#"{a="b"} | (duration>=0.02s or (size==20000B and method!~"2.."))"#,
            ),
            (
                r#"{a="b"} | (duration >= 20ms or size == 20KB) and method!~"2..""#,
                r#"{a="b"} | ((duration>=0.02s or size==20000B) and method!~"2..")"#,
            ),
            (
                r#"{a="b"} | duration >= 20ms or size == 20KB | method!~"2..""#,
                r#"{a="b"} | (duration>=0.02s or size==20000B) | method!~"2..""#,
            ),
            (
                r#"{cluster="ops-tools1", namespace="loki-dev", job="loki-dev/query-frontend"} |= "metrics.go" != "out of order" | logfmt | duration > 30s or status_code != "200""#,
                r#"{cluster="ops-tools1",namespace="loki-dev",job="loki-dev/query-frontend"} |= "metrics.go" != "out of order" | logfmt | (duration>30s or status_code!="200")"#,
            ),
            (
                r#"{container="frontend"} | logfmt | line_format "{{.ip}} {{.status}} {{div .duration 1000}}""#,
                r#"{container="frontend"} | logfmt | line_format "{{.ip}} {{.status}} {{div .duration 1000}}""#,
            ),
            (
                "{job=\"security\"}\n    |~ \"Invalid user.*\"\n    | regexp \"(^(?P<user>\\\\S+ {1,2}){8})\"\n    | line_format \"IP = {{.ip}}\\tUSER = {{.user}}\"",
                r#"{job="security"} |~ "Invalid user.*" | regexp "(^(?P<user>\\S+ {1,2}){8})" | line_format "IP = {{.ip}}\tUSER = {{.user}}""#,
            ),
            (
                r#"{job="loki-ops/query-frontend"} | logfmt | line_format "{{.msg}}" | regexp "(?P<method>\\w+) (?P<path>[\\w|/]+) \\((?P<status>\\d+?)\\) (?P<duration>.*)""#,
                r#"{job="loki-ops/query-frontend"} | logfmt | line_format "{{.msg}}" | regexp "(?P<method>\\w+) (?P<path>[\\w|/]+) \\((?P<status>\\d+?)\\) (?P<duration>.*)""#,
            ),
            (
                r#"{name="querier"} |= "metrics.go" | logfmt | query != "" | label_format query="{{ Replace .query \"\\n\" \"\" -1 }}""#,
                r#"{name="querier"} |= "metrics.go" | logfmt | query!="" | label_format query="{{ Replace .query \"\\n\" \"\" -1 }}""#,
            ),
            (
                r#"{a="b"} | json first_server="servers[0]", ua="request.headers[\"User-Agent\"]", level"#,
                r#"{a="b"} | json first_server="servers[0]", ua="request.headers[\"User-Agent\"]", level="level""#,
            ),
            (
                r#"{a="b"} | logfmt --strict --keep-empty host, lvl="level""#,
                r#"{a="b"} | logfmt --strict --keep-empty host="host", lvl="level""#,
            ),
            (
                r#"{a="b"} | logfmt --keep-empty"#,
                r#"{a="b"} | logfmt --keep-empty"#,
            ),
            (
                r#"{a="b"} | pattern `<ip> - - <_> "<method> <uri> <_>" <status> <size> <_> "<agent>" <_>`"#,
                r#"{a="b"} | pattern "<ip> - - <_> \"<method> <uri> <_>\" <status> <size> <_> \"<agent>\" <_>""#,
            ),
            (
                r#"{a="b"} | unpack | decolorize"#,
                r#"{a="b"} | unpack | decolorize"#,
            ),
            (
                r#"{a="b"} | keep level, app="x", pod=~"api-.*" | drop __error__, __error_details__"#,
                r#"{a="b"} | keep level,app="x",pod=~"api-.*" | drop __error__,__error_details__"#,
            ),
            (
                r#"{a="b"} | label_format dst=src, t="{{.a}}-{{.b}}""#,
                r#"{a="b"} | label_format dst=src,t="{{.a}}-{{.b}}""#,
            ),
            (
                r#"{a="b"} |= "x" or "y" |~ "a.+b" or `c\d` |> "<_> error <_>" !> "<_> debug <_>" !~ "z""#,
                r#"{a="b"} |= "x" or "y" |~ "a.+b" or "c\\d" |> "<_> error <_>" !> "<_> debug <_>" !~ "z""#,
            ),
            (
                r#"{app=~"api|web", env!="dev", pod!~"canary-.*",}"#,
                r#"{app=~"api|web",env!="dev",pod!~"canary-.*"}"#,
            ),
            (
                r#"{a="b"} | status = 200 | status != 404 | code == 5 | ratio > -1.5e1"#,
                r#"{a="b"} | status==200 | status!=404 | code==5 | ratio>-15"#,
            ),
            (
                r#"{a="b"} | size > 1.5KiB | latency <= 1h30m | t < 10us | u >= 5µs | v > 1d"#,
                r#"{a="b"} | size>1536B | latency<=5400s | t<0.00001s | u>=0.000005s | v>86400s"#,
            ),
            // Comments, newlines, raw strings, Go escapes, brackets, case.
            (
                "{a=\"b\"} # all of b\n  |= \"\\u00e9\\x41\\t\" # and more\n  |~ `\\d+`",
                "{a=\"b\"} |= \"éA\\t\" |~ \"\\\\d+\"",
            ),
            (r#"(({a="b"} | JSON))"#, r#"{a="b"} | json"#),
            (
                r#"{a="b"} | json | line_format "{{.x}}" | label_format y=x | drop z | __error__="""#,
                r#"{a="b"} | json | line_format "{{.x}}" | label_format y=x | drop z | __error__="""#,
            ),
            (
                r#"{a="b"} | service.name="x" and (a=~"1|2" or b!~"3")"#,
                r#"{a="b"} | (service.name="x" and (a=~"1|2" or b!~"3"))"#,
            ),
        ];
        for (query, expected) in cases {
            check(query, expected);
        }
    }

    #[test]
    fn documented_metric_queries() {
        let cases: &[(&str, &str)] = &[
            (
                r#"count_over_time({job="mysql"}[5m])"#,
                r#"CountOverTime({job="mysql"} [300000ms])"#,
            ),
            (
                r#"sum by (host) (rate({job="mysql"} |= "error" != "timeout" | json | duration > 10s [1m]))"#,
                r#"Sum by(host)(Rate({job="mysql"} |= "error" != "timeout" | json | duration>10s [60000ms]))"#,
            ),
            (
                r#"count_over_time({job="mysql"}[5m] offset 5m)"#,
                r#"CountOverTime({job="mysql"} [300000ms] offset 300000ms)"#,
            ),
            (
                "quantile_over_time(0.99,\n  {cluster=\"ops-tools1\",container=\"ingress-nginx\"}\n    | json\n    | __error__ = \"\"\n    | unwrap request_time [1m]) by (path)",
                r#"QuantileOverTime(0.99, {cluster="ops-tools1",container="ingress-nginx"} | json | __error__="" | unwrap Number(request_time) [60000ms]) by(path)"#,
            ),
            (
                r#"sum by (org_id) (sum_over_time({cluster="ops-tools1",container="loki-dev"} |= "metrics.go" | logfmt | unwrap bytes_processed [1m]))"#,
                r#"Sum by(org_id)(SumOverTime({cluster="ops-tools1",container="loki-dev"} |= "metrics.go" | logfmt | unwrap Number(bytes_processed) [60000ms]))"#,
            ),
            (
                r#"topk(10,sum(rate({region="us-east1"}[5m])) by (name))"#,
                r#"Topk(10, Sum by(name)(Rate({region="us-east1"} [300000ms])))"#,
            ),
            (
                r#"sum(count_over_time({job="mysql"}[5m])) by (level)"#,
                r#"Sum by(level)(CountOverTime({job="mysql"} [300000ms]))"#,
            ),
            (
                r#"avg(rate(({job="nginx"} |= "GET" | json | path="/home")[10s])) by (region)"#,
                r#"Avg by(region)(Rate({job="nginx"} |= "GET" | json | path="/home" [10000ms]))"#,
            ),
            (
                r#"sum by (level, detected_level) (count_over_time({service_name="x"} | drop __error__ [1m]))"#,
                r#"Sum by(level,detected_level)(CountOverTime({service_name="x"} | drop __error__ [60000ms]))"#,
            ),
            (
                r#"sum(count_over_time({namespace="traefik"}[5m])) # nothing
                   or
                   vector(0) # 0"#,
                r#"(Sum(CountOverTime({namespace="traefik"} [300000ms])) or vector(0))"#,
            ),
            // Grafana's health check.
            ("vector(1)+vector(1)", "(vector(1) + vector(1))"),
            // The range after the selector, before the pipeline, with an offset.
            (
                r#"count_over_time({job="x"}[5m] |= "y")"#,
                r#"CountOverTime({job="x"} |= "y" [300000ms])"#,
            ),
            (
                r#"count_over_time({job="x"}[5m] offset 1h | json)"#,
                r#"CountOverTime({job="x"} | json [300000ms] offset 3600000ms)"#,
            ),
            (
                r#"rate({a="b"} | unwrap bytes(size) [1m])"#,
                r#"Rate({a="b"} | unwrap Bytes(size) [60000ms])"#,
            ),
            (
                r#"sum_over_time({a="b"} | logfmt | unwrap duration(latency) | __error__="" [5m] offset -1m)"#,
                r#"SumOverTime({a="b"} | logfmt | unwrap Duration(latency) | __error__="" [300000ms] offset -60000ms)"#,
            ),
            (
                r#"max_over_time({a="b"} | unwrap duration_seconds(latency) [5m]) without (pod)"#,
                r#"MaxOverTime({a="b"} | unwrap Duration(latency) [300000ms]) without(pod)"#,
            ),
            (
                r#"quantile_over_time(0.5, ({a="b"} | json | unwrap x)[5m]) by ()"#,
                r#"QuantileOverTime(0.5, {a="b"} | json | unwrap Number(x) [300000ms]) by()"#,
            ),
            (
                r#"rate_counter({a="b"} | logfmt | unwrap requests [1m])"#,
                r#"RateCounter({a="b"} | logfmt | unwrap Number(requests) [60000ms])"#,
            ),
            (
                r#"absent_over_time({a="b"}[1h]) + bytes_rate({a="b"}[1m]) - bytes_over_time({a="b"}[1d])"#,
                r#"((AbsentOverTime({a="b"} [3600000ms]) + BytesRate({a="b"} [60000ms])) - BytesOverTime({a="b"} [86400000ms]))"#,
            ),
            (
                r#"avg_over_time({a="b"} | unwrap x [1m]) / min_over_time({a="b"} | unwrap x [1m]) * stddev_over_time({a="b"} | unwrap x [1m]) % stdvar_over_time({a="b"} | unwrap x [1m])"#,
                r#"(((AvgOverTime({a="b"} | unwrap Number(x) [60000ms]) / MinOverTime({a="b"} | unwrap Number(x) [60000ms])) * StddevOverTime({a="b"} | unwrap Number(x) [60000ms])) % StdvarOverTime({a="b"} | unwrap Number(x) [60000ms]))"#,
            ),
            (
                r#"first_over_time({a="b"} | unwrap x [1m]) by (a) > last_over_time({a="b"} | unwrap x [1m])"#,
                r#"(FirstOverTime({a="b"} | unwrap Number(x) [60000ms]) by(a) > LastOverTime({a="b"} | unwrap Number(x) [60000ms]))"#,
            ),
            // Precedence and associativity as PromQL has them.
            ("1 + 2 * 3 ^ 2 ^ 2 - 4", "((1 + (2 * (3 ^ (2 ^ 2)))) - 4)"),
            ("(1 + 2) * -1.5 / 1e3", "(((1 + 2) * -1.5) / 1000)"),
            (
                "2 > bool 1 == bool NaN + -Inf",
                "((2 > bool 1) == bool (NaN + -inf))",
            ),
            (
                r#"sum(rate({a="b"}[1m])) / on (pod) group_left (node) sum by (pod, node) (rate({c="d"}[1m]))"#,
                r#"(Sum(Rate({a="b"} [60000ms])) / on(pod) group_left(node) Sum by(pod,node)(Rate({c="d"} [60000ms])))"#,
            ),
            (
                r#"rate({a="b"}[1m]) * ignoring () group_right rate({c="d"}[1m])"#,
                r#"(Rate({a="b"} [60000ms]) * ignoring() group_right() Rate({c="d"} [60000ms]))"#,
            ),
            (
                r#"count_over_time({a="b"}[1m]) > 10 and on (x) count_over_time({c="d"}[1m]) < 5 or count_over_time({e="f"}[1m]) unless vector(1)"#,
                r#"(((CountOverTime({a="b"} [60000ms]) > 10) and on(x) (CountOverTime({c="d"} [60000ms]) < 5)) or (CountOverTime({e="f"} [60000ms]) unless vector(1)))"#,
            ),
            (
                r#"label_replace(rate({a="b"}[1m]), "dst", "$1", "src", "(.*)")"#,
                r#"label_replace(Rate({a="b"} [60000ms]), "dst", "$1", "src", "(.*)")"#,
            ),
            (
                r#"sort_desc(sum by (a) (count_over_time({b="c"}[1m])))"#,
                r#"SortDesc(Sum by(a)(CountOverTime({b="c"} [60000ms])))"#,
            ),
            (
                r#"bottomk(3, sort(avg without (x) (min(max(count(stddev(stdvar(rate({a="b"}[1m])))))))))"#,
                r#"Bottomk(3, Sort(Avg without(x)(Min(Max(Count(Stddev(Stdvar(Rate({a="b"} [60000ms])))))))))"#,
            ),
            (
                "SUM BY (a) (RATE({b=\"c\"}[1m]))",
                r#"Sum by(a)(Rate({b="c"} [60000ms]))"#,
            ),
            (
                "\n sum\n without\n (\n a\n )\n (\n rate\n (\n {b=\"c\"}\n [30s]\n )\n )\n",
                r#"Sum without(a)(Rate({b="c"} [30000ms]))"#,
            ),
            ("-1.5", "-1.5"),
            ("(((2)))", "2"),
            ("vector(-3)", "vector(-3)"),
        ];
        for (query, expected) in cases {
            check(query, expected);
        }
    }

    #[test]
    fn log_selector_only() {
        let log = parse_log_selector(r#"{a="b"} |= "x""#).unwrap();
        assert_eq!(show_log(&log), r#"{a="b"} |= "x""#);
        let err = parse_log_selector(r#"rate({a="b"}[1m])"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("only a log query"), "{err}");
    }

    // ---- errors -----------------------------------------------------------

    #[test]
    fn errors_name_the_problem_and_where() {
        let cases: &[(&str, &str, &str)] = &[
            (r#"{a="b}"#, "line 1, col 4", "literal not terminated"),
            (
                r#"{a="b""#,
                "line 1, col 7",
                "unexpected end of query, expecting \"}\" or \",\"",
            ),
            (
                "{}",
                "line 1, col 1",
                "at least one regexp or equality matcher",
            ),
            (r#"{a=~".*"}"#, "line 1, col 1", "app=~\".+\" will"),
            (r#"{a!="x", b=""}"#, "line 1, col 1", "empty-compatible"),
            (
                r#"{a=b}"#,
                "line 1, col 4",
                "unexpected identifier \"b\", expecting a string",
            ),
            (
                r#"{a="\q"}"#,
                "line 1, col 4",
                "invalid escape sequence \\q",
            ),
            (
                r#"foo({a="b"}[5m])"#,
                "line 1, col 1",
                "unknown function \"foo\"",
            ),
            (
                r#"sum_over_time({a="b"}[5m])"#,
                "line 1, col 1",
                "invalid aggregation sum_over_time without unwrap",
            ),
            (
                r#"count_over_time({a="b"} | unwrap x [5m])"#,
                "line 1, col 1",
                "invalid aggregation count_over_time with unwrap",
            ),
            (
                r#"quantile_over_time({a="b"} | unwrap x [5m])"#,
                "line 1, col 1",
                "parameter required for operation quantile_over_time",
            ),
            (
                r#"sum_over_time(5, {a="b"} | unwrap x [5m])"#,
                "line 1, col 1",
                "parameter 5 not supported for operation sum_over_time",
            ),
            (
                r#"rate({a="b"}[5m]) by (x)"#,
                "line 1, col 1",
                "grouping not allowed for rate aggregation",
            ),
            (
                r#"{a="b"} |~ "(""#,
                "line 1, col 12",
                "invalid regex \"(\": unclosed group",
            ),
            (r#"{a="b"} | x=~"[""#, "line 1, col 14", "invalid regex"),
            (
                r#"count_over_time({a="b"}[5x])"#,
                "line 1, col 24",
                "invalid duration \"5x\"",
            ),
            (
                r#"count_over_time({a="b"}[5m)"#,
                "line 1, col 24",
                "missing closing ']'",
            ),
            (r#"rate({a="b"}[0s])"#, "line 1, col 13", "longer than zero"),
            (
                r#"{a="b"} | json a="#,
                "line 1, col 18",
                "unexpected end of query, expecting a string",
            ),
            (
                r#"{a="b"} + 1"#,
                "line 1, col 1",
                "unexpected type for left leg of binary operation (+): a log query",
            ),
            (
                r#"1 + ({a="b"} |= "x")"#,
                "line 1, col 5",
                "unexpected type for right leg of binary operation (+): a log query",
            ),
            (
                r#"count_over_time({a="b"}[5m]) foo"#,
                "line 1, col 30",
                "unexpected identifier \"foo\", expecting a binary operator or the end of the query",
            ),
            (r#"{a="b"} )"#, "line 1, col 9", "unexpected \")\""),
            (
                r#"sum(rate({a="b"}[5m])"#,
                "line 1, col 22",
                "unexpected end of query, expecting \")\"",
            ),
            (
                r#"rate({a="b"})"#,
                "line 1, col 13",
                "expecting a range such as [5m]",
            ),
            (
                r#"{a="b"}[5m]"#,
                "line 1, col 8",
                "a range is only valid inside a range aggregation",
            ),
            (
                r#"{a="b"} | unwrap x"#,
                "line 1, col 11",
                "unwrap requires a range aggregation that takes unwrap",
            ),
            (
                r#"sum_over_time({a="b"} | unwrap x | json [5m])"#,
                "line 1, col 36",
                "only label filters may follow unwrap",
            ),
            (
                r#"topk(sum(rate({a="b"}[5m])))"#,
                "line 1, col 1",
                "parameter required for operation topk",
            ),
            (
                r#"topk(1.5, rate({a="b"}[5m]))"#,
                "line 1, col 1",
                "invalid parameter topk(1.5,",
            ),
            (
                r#"bottomk(0, rate({a="b"}[5m]))"#,
                "line 1, col 1",
                "must be greater than 0",
            ),
            (
                r#"sum(3, rate({a="b"}[5m]))"#,
                "line 1, col 1",
                "unsupported parameter for operation sum(3,",
            ),
            (
                r#"sort by (a) (rate({a="b"}[5m]))"#,
                "line 1, col 1",
                "sort and sort_desc doesn't allow grouping",
            ),
            (
                r#"sum by (a) (rate({a="b"}[5m])) by (b)"#,
                "line 1, col 32",
                "both before and after",
            ),
            (
                r#"sum({a="b"})"#,
                "line 1, col 5",
                "sum takes a metric query, not a log query",
            ),
            (
                r#"{a="b"} | regexp "(\\d+)""#,
                "line 1, col 18",
                "at least one named capture",
            ),
            (
                r#"{a="b"} | regexp "(?P<1x>a)""#,
                "line 1, col 18",
                "invalid regexp parser",
            ),
            (
                r#"{a="b"} | pattern "<a><b>""#,
                "line 1, col 19",
                "found consecutive capture '<a><b>'",
            ),
            (
                r#"{a="b"} | pattern "foo""#,
                "line 1, col 19",
                "at least one capture",
            ),
            (
                r#"{a="b"} | pattern "<a> <a>""#,
                "line 1, col 19",
                "duplicate capture name (a)",
            ),
            (
                r#"{a="b"} |> "<a> x""#,
                "line 1, col 12",
                "named captures are not allowed",
            ),
            (
                r#"{a="b"} |= ip("1.2.3.4")"#,
                "line 1, col 12",
                "ip(...) filters are not supported",
            ),
            (
                r#"{a="b"} | addr = ip("1.2.3.4")"#,
                "line 1, col 18",
                "not supported",
            ),
            (
                r#"{a="b"} | label_format a=b, a=c"#,
                "line 1, col 29",
                "multiple label name 'a' not allowed",
            ),
            (
                r#"{a="b"} | label_format __error__=x"#,
                "line 1, col 24",
                "__error__ cannot be formatted",
            ),
            (
                r#"{a="b"} | x > "5""#,
                "line 1, col 15",
                "unexpected string \"\\\"5\\\"\", expecting a number, a duration",
            ),
            (
                r#"{a="b"} | x =~ 5"#,
                "line 1, col 16",
                "expecting a string (a regular expression)",
            ),
            (
                r#"{a="b"} | logfmt --bogus"#,
                "line 1, col 18",
                "unknown flag --bogus",
            ),
            (
                r#"{a="b"} | jsno"#,
                "line 1, col 15",
                "expecting a comparison",
            ),
            (
                r#"{a="b"} | line_format"#,
                "line 1, col 22",
                "expecting a string",
            ),
            (
                r#"sum(rate({a="b"}[5m])) and 1"#,
                "line 1, col 28",
                "unexpected literal for right leg of logical/set binary operation (and)",
            ),
            (
                r#"rate({a="b"}[5m]) + bool 1"#,
                "line 1, col 21",
                "bool modifier can only be used on comparison operators",
            ),
            (
                r#"rate({a="b"}[5m]) / group_left rate({a="b"}[5m])"#,
                "line 1, col 21",
                "need on (...) or ignoring (...)",
            ),
            (
                r#"label_replace(rate({a="b"}[5m]), "dst", "$1", "src", "(")"#,
                "line 1, col 54",
                "invalid regex in label_replace: unclosed group",
            ),
            (
                r#"label_replace(rate({a="b"}[5m]), "1dst", "$1", "src", "(.*)")"#,
                "line 1, col 34",
                "invalid destination label name",
            ),
            (
                r#"approx_topk(3, rate({a="b"}[5m]))"#,
                "line 1, col 1",
                "approx_topk is not supported",
            ),
            (
                "sum by (host) (\n  rate({job=\"mysql\"}\n    | json\n    | duration >\n  [1m]))",
                "line 5, col 3",
                "unexpected range \"[1m]\", expecting a number, a duration",
            ),
            (
                "rate",
                "line 1, col 5",
                "unexpected end of query, expecting \"(\" after rate",
            ),
            ("", "line 1, col 1", "unexpected end of query"),
            (
                "{a=\"é\"} |= `x",
                "line 1, col 12",
                "literal not terminated",
            ),
            (
                "{a=\"b\"} | x > 1 ; y",
                "line 1, col 17",
                "unexpected character ';'",
            ),
            (
                r#"{a.b="c"}"#,
                "line 1, col 2",
                "invalid label name \"a.b\"",
            ),
            (
                r#"- rate({a="b"}[5m])"#,
                "line 1, col 3",
                "expecting a number after the sign",
            ),
        ];
        for (query, position, problem) in cases {
            let message = error_of(query);
            assert!(
                message.starts_with(&format!("parse error at {position}: ")),
                "{query}: wrong position: {message}"
            );
            assert!(message.contains(problem), "{query}: {message}");
        }
    }

    #[test]
    fn too_deep_is_refused_without_overflowing_the_stack() {
        let started = std::time::Instant::now();
        let n = 100_000;
        let nest = |open: &str, inner: &str, close: &str, n: usize| {
            format!("{}{inner}{}", open.repeat(n), close.repeat(n))
        };
        let queries = [
            nest("(", "1", ")", n),
            nest("sum(", r#"rate({a="b"}[1m])"#, ")", n),
            nest("(", r#"{a="b"}"#, ")", n),
            format!(r#"{{a="b"}} | {}"#, nest("(", "x=\"1\"", ")", n)),
            nest("topk(1, ", "vector(1)", ")", n),
            vec!["2"; n].join("^"),
            vec!["1"; 5_000].join("+"),
            vec!["vector(1)"; 5_000].join(" or "),
            format!(r#"{{a="b"}} | {}"#, vec![r#"x="1""#; 5_000].join(" and ")),
            format!(r#"{{a="b"}} | {}"#, vec![r#"x="1""#; 5_000].join(" or ")),
            format!(r#"{{a="b"}} | {}"#, vec![r#"x="1""#; 5_000].join(" ")),
            format!("sum({})", nest("(", "1", ")", n)),
            nest("label_replace(", "vector(1)", r#", "a", "b", "c", "d")"#, n),
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
        check(&nest("(", "1", ")"), "1");
        let deep = [
            nest("sum(", r#"rate({a="b"}[1m])"#, ")"),
            nest("topk(1, ", "vector(1)", ")"),
            nest("label_replace(", "vector(1)", r#", "a", "b", "c", "d")"#),
            nest("(", r#"{a="b"}"#, ")"),
            // Two levels each.
            format!(
                r#"{}rate({{a="b"}}[1m]){}"#,
                "sum((".repeat(depth / 2),
                "))".repeat(depth / 2)
            ),
            format!(r#"{{a="b"}} | {}"#, nest("(", r#"x="1""#, ")")),
            vec!["1"; depth].join(" + "),
            vec!["2"; depth].join(" ^ "),
            vec!["vector(1)"; depth].join(" or "),
            format!(r#"{{a="b"}} | {}"#, vec![r#"x="1""#; depth].join(" and ")),
        ];
        for query in &deep {
            if let Err(e) = parse(query) {
                panic!("{}...: {e}", &query[..40]);
            }
        }
    }

    #[test]
    fn too_long_is_refused_by_name() {
        let long = format!(r#"{{a="{}"}}"#, "x".repeat(1 << 20));
        let message = error_of(&long);
        assert!(message.contains("query.max_query_bytes"), "{message}");
        assert!(
            message.starts_with("parse error at line 1, col "),
            "{message}"
        );
    }

    // ---- durations and byte sizes ---------------------------------------

    #[test]
    fn go_durations() {
        let cases: &[(&str, Option<f64>)] = &[
            ("0", Some(0.0)),
            ("-0", Some(0.0)),
            ("250ms", Some(0.25)),
            ("1.5s", Some(1.5)),
            ("1h2m", Some(3720.0)),
            ("1h30m10s", Some(5410.0)),
            ("10us", Some(0.00001)),
            ("5µs", Some(0.000005)),
            ("5μs", Some(0.000005)),
            ("3ns", Some(0.000000003)),
            ("-1.5h", Some(-5400.0)),
            ("+2m", Some(120.0)),
            (".5s", Some(0.5)),
            ("1.s", Some(1.0)),
            ("2m1h", Some(3720.0)),
            ("", None),
            ("5", None),
            ("1d", None),
            ("s", None),
            (".s", None),
            ("1.5", None),
            ("10 s", None),
            ("1e3s", None),
            ("3000000h", None),
        ];
        for (text, expected) in cases {
            let got = parse_duration_go(text);
            match (got, expected) {
                (Some(g), Some(e)) => assert!((g - e).abs() < 1e-12, "{text}: {g} != {e}"),
                (None, None) => {}
                _ => panic!("{text}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn byte_sizes() {
        let cases: &[(&str, Option<f64>)] = &[
            ("20MB", Some(20_000_000.0)),
            ("1KiB", Some(1024.0)),
            ("5 B", Some(5.0)),
            ("42", Some(42.0)),
            ("1.5gb", Some(1_500_000_000.0)),
            ("1.5GiB", Some(1_610_612_736.0)),
            ("2kB", Some(2000.0)),
            ("2KB", Some(2000.0)),
            ("3k", Some(3000.0)),
            ("1Mi", Some(1_048_576.0)),
            ("1TB", Some(1e12)),
            ("1TiB", Some(1_099_511_627_776.0)),
            ("1PB", Some(1e15)),
            ("1PiB", Some(1_125_899_906_842_624.0)),
            ("1EB", Some(1e18)),
            ("1,000 kB", Some(1_000_000.0)),
            ("0.5B", Some(0.0)),
            (" 7 mb ", Some(7_000_000.0)),
            ("", None),
            ("MB", None),
            ("5 XB", None),
            ("-5MB", None),
            ("5MBB", None),
            ("1.2.3KB", None),
            ("100EB", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_bytes(text), *expected, "{text}");
        }
    }

    #[test]
    fn numbers_with_units_become_durations_or_bytes_in_filters() {
        check(
            r#"{a="b"} | d > 1m30s | e < 100ms | s >= 1KB | t == 2 | u != 3k"#,
            r#"{a="b"} | d>90s | e<0.1s | s>=1000B | t==2 | u!=3000B"#,
        );
        // Prometheus units first (`1d`), then Go's (`1.5s`).
        check(
            r#"{a="b"} | d > 1d | e > 1.5s | f > 2w"#,
            r#"{a="b"} | d>86400s | e>1.5s | f>1209600s"#,
        );
        // A unit is read up to 64 characters after its number: 30 hours
        // written out one by one are a duration, 40 are not (and a text of
        // many numbers is not read again from each of them).
        check(
            &format!(r#"{{a="b"}} | d > 1h{}"#, "1h".repeat(29)),
            r#"{a="b"} | d>108000s"#,
        );
        let long = format!(r#"{{a="b"}} | d > 1h{}"#, "1h".repeat(39));
        assert!(error_of(&long).starts_with("parse error"));
        let dots = format!(r#"{{a="b"}} | d > 1{}"#, ".8".repeat(20_000));
        assert!(error_of(&dots).starts_with("parse error"));
    }
}
