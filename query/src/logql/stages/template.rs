//! The subset of Go's text/template that `line_format` and `label_format`
//! take: text, `{{ pipeline }}` actions with `|` chains and parenthesised
//! pipelines, `.label` fields, string/number/bool literals, `if`/`else
//! if`/`else`/`end`, trim markers `{{-`/`-}}` and comments. Parsing is
//! done once, when the pipeline is compiled; nesting (of `if`s and of
//! parentheses together) is refused past `query.max_depth`, so evaluation,
//! which recurses along the nesting, stays within the stack the query
//! threads are given.

use std::borrow::Cow;

use regex::Regex;
use sextant_model::depth;

use super::Labels;
use super::funcs::{self, Func};
use super::gofmt;
use super::gotime;

/// The largest text a template may produce, and the largest string a
/// function inside one may build.
pub(super) const MAX_OUTPUT: usize = 16 << 20;

/// What a template sees: the labels as `.name`, the line as `__line__`,
/// the entry's time as `__timestamp__`.
#[derive(Debug)]
pub(super) struct Env<'a> {
    pub(super) labels: &'a Labels,
    pub(super) line: &'a str,
    pub(super) ts: i64,
}

/// A value inside a template.
#[derive(Debug, Clone)]
pub(super) enum Value<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Nanoseconds since the epoch (Go's `time.Time`).
    Time(i64),
    /// `.` itself: the labels (Go's `map[string]string`).
    Labels(&'a Labels),
    Nil,
}

impl Value<'_> {
    /// Go's type name, for error messages.
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Bool(_) => "bool",
            Value::Time(_) => "time.Time",
            Value::Labels(_) => "map[string]string",
            Value::Nil => "<nil>",
        }
    }

    /// Go's truth (for `if`, `and`, `or`, `not`): non-empty, non-zero.
    pub(super) fn truth(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty(),
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Bool(b) => *b,
            Value::Time(_) => true,
            Value::Labels(l) => !l.is_empty(),
            Value::Nil => false,
        }
    }

    /// sprig's `empty` (for `default`): like falsehood, but a time is never empty.
    pub(super) fn is_empty(&self) -> bool {
        !self.truth()
    }

    /// Go's `fmt.Print` of the value.
    pub(super) fn print(&self, out: &mut String) {
        match self {
            Value::Str(s) => out.push_str(s),
            Value::Int(i) => {
                use std::fmt::Write as _;
                let _ = write!(out, "{i}");
            }
            Value::Float(f) => out.push_str(&gofmt::format_float(*f, 'g', None)),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Time(t) => out.push_str(&gotime::time_string(*t)),
            Value::Labels(l) => {
                out.push_str("map[");
                for (i, (k, v)) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    out.push_str(v);
                }
                out.push(']');
            }
            Value::Nil => out.push_str("<nil>"),
        }
    }
}

/// A compiled template.
#[derive(Debug)]
pub(super) struct Template {
    nodes: Vec<Node>,
    /// When the whole template is `{{.name}}`: the name.
    simple_field: Option<String>,
}

#[derive(Debug)]
enum Node {
    Text(String),
    Action(Pipe),
    /// `if` / `else if` branches in order, then the `else` body.
    If(Vec<(Pipe, Vec<Node>)>, Vec<Node>),
}

#[derive(Debug)]
struct Pipe {
    cmds: Vec<Cmd>,
}

#[derive(Debug)]
enum Cmd {
    Call(Call),
    Operand(Operand),
}

#[derive(Debug)]
struct Call {
    func: Func,
    args: Vec<Operand>,
    /// The first argument compiled, when the function takes a regex and
    /// it is written as a literal.
    regex: Option<Regex>,
}

#[derive(Debug)]
enum Operand {
    Dot,
    /// `.a` (or `.a.b`, which fails at run time as Go's does on a string).
    Field(Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Call(Box<Call>),
    Pipe(Box<Pipe>),
}

/// A token inside `{{ }}`.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Bar,
    Dot,
    Field(Vec<String>),
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Go's `strconv.Unquote` of a double-quoted literal's inside.
fn unquote(inner: &str) -> Result<String, String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    let bad = || format!("invalid syntax in string literal \"{inner}\"");
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or_else(bad)?;
        let hex = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| {
            let mut v = 0u32;
            for _ in 0..n {
                v = v * 16 + chars.next().and_then(|c| c.to_digit(16)).ok_or_else(bad)?;
            }
            Ok::<u32, String>(v)
        };
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            'x' => {
                let v = hex(&mut chars, 2)?;
                // A byte: only ASCII keeps the text valid UTF-8.
                out.push(
                    char::from_u32(v)
                        .filter(char::is_ascii)
                        .unwrap_or('\u{FFFD}'),
                );
            }
            'u' => out.push(char::from_u32(hex(&mut chars, 4)?).ok_or_else(bad)?),
            'U' => out.push(char::from_u32(hex(&mut chars, 8)?).ok_or_else(bad)?),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    v = v * 8 + chars.next().and_then(|c| c.to_digit(8)).ok_or_else(bad)?;
                }
                out.push(
                    char::from_u32(v)
                        .filter(char::is_ascii)
                        .unwrap_or('\u{FFFD}'),
                );
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// Reads a number literal at the start of `text`: its length and value.
fn lex_number(text: &str) -> Result<(usize, Tok), String> {
    let b = text.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let is_hex = text[i..].starts_with("0x") || text[i..].starts_with("0X");
    while i < b.len() {
        let c = b[i];
        let ok = c.is_ascii_alphanumeric()
            || c == b'_'
            || c == b'.'
            || ((c == b'+' || c == b'-')
                && i > 0
                && matches!(b[i - 1], b'e' | b'E' | b'p' | b'P')
                && !(is_hex && matches!(b[i - 1], b'e' | b'E')));
        if !ok {
            break;
        }
        i += 1;
    }
    let word = &text[..i];
    let bad = || format!("bad number syntax: {word:?}");
    let is_float = !is_hex && word.contains(['.', 'e', 'E']);
    if is_float {
        let f: f64 = word.replace('_', "").parse().map_err(|_| bad())?;
        return Ok((i, Tok::Float(f)));
    }
    let v = funcs::parse_go_int(word).ok_or_else(bad)?;
    Ok((i, Tok::Int(v)))
}

/// The tokens of the action starting at `src[start..]` (just after `{{`
/// and any trim marker), up to its `}}`: `(tokens, index after the }},
/// whether a right trim marker came before it)`.
fn lex_action(src: &str, start: usize) -> Result<(Vec<Tok>, usize, bool), String> {
    let b = src.as_bytes();
    let mut i = start;
    let mut toks = Vec::new();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80;
    loop {
        if i >= b.len() {
            return Err("unclosed action".to_owned());
        }
        let c = b[i];
        if is_space(c) {
            if src[i + 1..].starts_with("-}}") {
                return Ok((toks, i + 4, true));
            }
            i += 1;
            continue;
        }
        if src[i..].starts_with("}}") {
            return Ok((toks, i + 2, false));
        }
        match c {
            b'(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            b')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            b'|' => {
                toks.push(Tok::Bar);
                i += 1;
            }
            b'"' => {
                let mut j = i + 1;
                loop {
                    match b.get(j) {
                        None | Some(b'\n') => return Err("unterminated quoted string".to_owned()),
                        Some(b'\\') => j += 2,
                        Some(b'"') => break,
                        Some(_) => j += 1,
                    }
                }
                toks.push(Tok::Str(unquote(&src[i + 1..j])?));
                i = j + 1;
            }
            b'`' => {
                let end = src[i + 1..]
                    .find('`')
                    .ok_or_else(|| "unterminated raw quoted string".to_owned())?;
                toks.push(Tok::Str(src[i + 1..i + 1 + end].to_owned()));
                i += end + 2;
            }
            b'\'' => {
                // A character constant is an int.
                let rest = &src[i + 1..];
                let end = rest
                    .find('\'')
                    .ok_or_else(|| "unterminated character constant".to_owned())?;
                let text = unquote(&rest[..end])?;
                let mut it = text.chars();
                match (it.next(), it.next()) {
                    (Some(ch), None) => toks.push(Tok::Int(i64::from(u32::from(ch)))),
                    _ => return Err(format!("malformed character constant '{}'", &rest[..end])),
                }
                i += end + 2;
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let (len, tok) = lex_number(&src[i..])?;
                toks.push(tok);
                i += len;
            }
            b'.' => {
                let mut path = Vec::new();
                while i < b.len() && b[i] == b'.' {
                    let s = i + 1;
                    let mut j = s;
                    while j < b.len() && ident(b[j]) {
                        j += 1;
                    }
                    if j == s {
                        break;
                    }
                    path.push(src[s..j].to_owned());
                    i = j;
                }
                if path.is_empty() {
                    toks.push(Tok::Dot);
                    i += 1;
                } else {
                    toks.push(Tok::Field(path));
                }
            }
            b'$' => {
                let mut j = i + 1;
                while j < b.len() && ident(b[j]) {
                    j += 1;
                }
                if j > i + 1 {
                    return Err(format!("variables are not supported: {}", &src[i..j]));
                }
                // `$` is the data the template was given: the labels.
                i = j;
                if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(|&c| ident(c)) {
                    continue;
                }
                toks.push(Tok::Dot);
            }
            b'0'..=b'9' => {
                let (len, tok) = lex_number(&src[i..])?;
                toks.push(tok);
                i += len;
            }
            b'+' | b'-'
                if b.get(i + 1)
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'.') =>
            {
                let (len, tok) = lex_number(&src[i..])?;
                toks.push(tok);
                i += len;
            }
            b':' | b'=' => return Err("variable declarations are not supported".to_owned()),
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let mut j = i;
                while j < b.len() && ident(b[j]) {
                    j += 1;
                }
                toks.push(Tok::Ident(src[i..j].to_owned()));
                i = j;
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(format!("unexpected {ch:?} in action"));
            }
        }
    }
}

/// Parses a pipeline out of tokens.
struct PipeParser<'t> {
    toks: &'t [Tok],
    pos: usize,
}

impl PipeParser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    /// A pipeline: commands joined by `|`, up to `)` or the end.
    fn pipe(&mut self, depth: usize) -> Result<Pipe, String> {
        let mut cmds = Vec::new();
        loop {
            let at_end = |p: &Self| matches!(p.peek(), None | Some(Tok::Bar | Tok::RParen));
            if at_end(self) {
                return Err("missing value for command".to_owned());
            }
            let piped = !cmds.is_empty();
            let cmd = match self.operand(depth)? {
                Operand::Call(mut call) => {
                    while !at_end(self) {
                        let arg = self.operand(depth)?;
                        call.args.push(arg);
                    }
                    check_call(&mut call, piped)?;
                    Cmd::Call(*call)
                }
                other => {
                    if !at_end(self) || piped {
                        return Err(format!(
                            "can't give argument to non-function {}",
                            describe(&other)
                        ));
                    }
                    Cmd::Operand(other)
                }
            };
            cmds.push(cmd);
            if self.peek() == Some(&Tok::Bar) {
                self.pos += 1;
                continue;
            }
            break;
        }
        Ok(Pipe { cmds })
    }

    fn operand(&mut self, depth: usize) -> Result<Operand, String> {
        let tok = self.toks[self.pos].clone();
        self.pos += 1;
        Ok(match tok {
            Tok::Dot => Operand::Dot,
            Tok::Field(path) => Operand::Field(path),
            Tok::Str(s) => Operand::Str(s),
            Tok::Int(i) => Operand::Int(i),
            Tok::Float(f) => Operand::Float(f),
            Tok::Ident(name) => match name.as_str() {
                "true" => Operand::Bool(true),
                "false" => Operand::Bool(false),
                "nil" => Operand::Nil,
                "if" | "else" | "end" | "range" | "with" | "define" | "template" | "block"
                | "break" | "continue" => {
                    return Err(format!("unexpected {name:?} in operand"));
                }
                _ => {
                    let (func, ..) = funcs::lookup(&name)?;
                    let mut call = Call {
                        func,
                        args: Vec::new(),
                        regex: None,
                    };
                    // Called with no arguments when it is an argument itself;
                    // a command head gets its arguments (and is checked) later.
                    if !self.is_command_head() {
                        check_call(&mut call, false)?;
                    }
                    Operand::Call(Box::new(call))
                }
            },
            Tok::LParen => {
                let depth = depth + 1;
                depth::check_depth(depth).map_err(|e| e.to_string())?;
                let pipe = self.pipe(depth)?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err("unclosed left paren".to_owned());
                }
                self.pos += 1;
                if let Some(Tok::Field(path)) = self.peek() {
                    return Err(format!(
                        "field access on a parenthesised pipeline is not supported: .{}",
                        path.join(".")
                    ));
                }
                Operand::Pipe(Box::new(pipe))
            }
            Tok::RParen => return Err("unexpected right paren".to_owned()),
            Tok::Bar => return Err("unexpected \"|\"".to_owned()),
        })
    }

    /// Whether the operand just read starts a command (so that what follows
    /// up to `|` or `)` are its arguments).
    fn is_command_head(&self) -> bool {
        let prev = self.pos.checked_sub(2).map(|i| &self.toks[i]);
        matches!(prev, None | Some(Tok::Bar | Tok::LParen))
    }
}

fn describe(op: &Operand) -> String {
    match op {
        Operand::Dot => ".".to_owned(),
        Operand::Field(p) => format!(".{}", p.join(".")),
        Operand::Str(s) => format!("{s:?}"),
        Operand::Int(i) => i.to_string(),
        Operand::Float(f) => f.to_string(),
        Operand::Bool(b) => b.to_string(),
        Operand::Nil => "nil".to_owned(),
        Operand::Call(c) => funcs::name(c.func).to_owned(),
        Operand::Pipe(_) => "(pipeline)".to_owned(),
    }
}

/// Checks a call's argument count (counting a piped value) and compiles
/// a literal regex argument.
fn check_call(call: &mut Call, piped: bool) -> Result<(), String> {
    let name = funcs::name(call.func);
    let (_, min, max) = funcs::lookup(name)?;
    let got = call.args.len() + usize::from(piped);
    if got < min || max.is_some_and(|m| got > m) {
        let want = match max {
            Some(m) if m == min => format!("{m}"),
            Some(m) => format!("{min} to {m}"),
            None => format!("at least {min}"),
        };
        return Err(format!(
            "wrong number of args for {name}: want {want} got {got}"
        ));
    }
    if funcs::takes_regex(call.func)
        && let Some(Operand::Str(pattern)) = call.args.first()
    {
        call.regex = Some(Regex::new(pattern).map_err(|e| format!("{name}: invalid regex: {e}"))?);
    }
    Ok(())
}

/// An `if` being built: its branches so far and, once `else` is seen, the
/// else body.
struct OpenIf {
    branches: Vec<(Pipe, Vec<Node>)>,
    otherwise: Option<Vec<Node>>,
}

impl OpenIf {
    fn body(&mut self) -> &mut Vec<Node> {
        match &mut self.otherwise {
            Some(body) => body,
            None => &mut self.branches.last_mut().expect("an if has a branch").1,
        }
    }
}

impl Template {
    /// Parses a template; Err says what is wrong with it.
    pub(super) fn parse(src: &str) -> Result<Template, String> {
        let mut root: Vec<Node> = Vec::new();
        let mut open: Vec<OpenIf> = Vec::new();
        let b = src.as_bytes();
        let mut pos = 0;
        let mut trim_next = false;
        fn current<'n>(root: &'n mut Vec<Node>, open: &'n mut [OpenIf]) -> &'n mut Vec<Node> {
            match open.last_mut() {
                Some(top) => top.body(),
                None => root,
            }
        }
        while pos < b.len() {
            let Some(rel) = src[pos..].find("{{") else {
                let mut text = &src[pos..];
                if trim_next {
                    text = text.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
                }
                if !text.is_empty() {
                    current(&mut root, &mut open).push(Node::Text(text.to_owned()));
                }
                break;
            };
            let open_at = pos + rel;
            let mut inner = open_at + 2;
            let left_trim =
                b.get(inner) == Some(&b'-') && b.get(inner + 1).is_some_and(|&c| is_space(c));
            let mut text = &src[pos..open_at];
            if trim_next {
                text = text.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
            }
            if left_trim {
                text = text.trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8));
                inner += 2;
            }
            if !text.is_empty() {
                current(&mut root, &mut open).push(Node::Text(text.to_owned()));
            }
            // A comment: `{{/* ... */}}`, with optional trim markers.
            let after_ws = inner + src[inner..].len() - src[inner..].trim_start().len();
            if src[after_ws..].starts_with("/*") {
                let end = src[after_ws + 2..]
                    .find("*/")
                    .ok_or_else(|| "unclosed comment".to_owned())?
                    + after_ws
                    + 4;
                let rest = &src[end..];
                if let Some(r) = rest.strip_prefix(" -}}") {
                    trim_next = true;
                    pos = src.len() - r.len();
                } else if let Some(r) = rest.strip_prefix("}}") {
                    trim_next = false;
                    pos = src.len() - r.len();
                } else {
                    return Err("comment ends before closing delimiter".to_owned());
                }
                continue;
            }
            let (toks, next, right_trim) = lex_action(src, inner)?;
            pos = next;
            trim_next = right_trim;
            let keyword = match toks.first() {
                Some(Tok::Ident(k)) => k.as_str(),
                _ => "",
            };
            // Measured before anything recurses: the `if`s around this
            // action (and the one it opens) and its deepest parentheses.
            let nesting = match keyword {
                "if" => open.len() + 1,
                "end" => 0,
                _ => open.len(),
            };
            depth::check_depth(nesting + paren_depth(&toks)).map_err(|e| e.to_string())?;
            match keyword {
                "if" => {
                    let pipe = parse_pipe(&toks[1..], open.len() + 1)?;
                    open.push(OpenIf {
                        branches: vec![(pipe, Vec::new())],
                        otherwise: None,
                    });
                }
                "else" => {
                    let top = open
                        .last_mut()
                        .ok_or_else(|| "unexpected {{else}}".to_owned())?;
                    if top.otherwise.is_some() {
                        return Err("unexpected {{else}} after {{else}}".to_owned());
                    }
                    match toks.get(1) {
                        None => top.otherwise = Some(Vec::new()),
                        Some(Tok::Ident(k)) if k == "if" => {
                            let pipe = parse_pipe(&toks[2..], open.len())?;
                            open.last_mut()
                                .expect("checked above")
                                .branches
                                .push((pipe, Vec::new()));
                        }
                        Some(_) => return Err("unexpected tokens after else".to_owned()),
                    }
                }
                "end" => {
                    if toks.len() > 1 {
                        return Err("unexpected tokens after end".to_owned());
                    }
                    let done = open.pop().ok_or_else(|| "unexpected {{end}}".to_owned())?;
                    let node = Node::If(done.branches, done.otherwise.unwrap_or_default());
                    current(&mut root, &mut open).push(node);
                }
                "range" | "with" | "define" | "template" | "block" | "break" | "continue" => {
                    return Err(format!("{{{{{keyword}}}}} is not supported"));
                }
                _ => {
                    let pipe = parse_pipe(&toks, open.len())?;
                    current(&mut root, &mut open).push(Node::Action(pipe));
                }
            }
        }
        if !open.is_empty() {
            return Err("unexpected EOF: {{if}} without {{end}}".to_owned());
        }
        let simple_field = match root.as_slice() {
            [Node::Action(Pipe { cmds })] => match cmds.as_slice() {
                [Cmd::Operand(Operand::Field(path))] if path.len() == 1 => Some(path[0].clone()),
                _ => None,
            },
            _ => None,
        };
        Ok(Template {
            nodes: root,
            simple_field,
        })
    }

    /// When the whole template is `{{.name}}`: the name.
    pub(super) fn simple_field(&self) -> Option<&str> {
        self.simple_field.as_deref()
    }

    /// Renders into `out` (appending); Err says what failed.
    pub(super) fn render<'a>(&'a self, env: &Env<'a>, out: &mut String) -> Result<(), String> {
        exec(&self.nodes, env, out)
    }
}

/// How deep the parentheses in an action go.
fn paren_depth(toks: &[Tok]) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0;
    for tok in toks {
        match tok {
            Tok::LParen => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            Tok::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn parse_pipe(toks: &[Tok], depth: usize) -> Result<Pipe, String> {
    let mut p = PipeParser { toks, pos: 0 };
    let pipe = p.pipe(depth)?;
    if p.pos < toks.len() {
        return Err("unexpected right paren".to_owned());
    }
    Ok(pipe)
}

fn exec<'a>(nodes: &'a [Node], env: &Env<'a>, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(pipe) => eval_pipe(pipe, env)?.print(out),
            Node::If(branches, otherwise) => {
                let mut taken = false;
                for (cond, body) in branches {
                    if eval_pipe(cond, env)?.truth() {
                        exec(body, env, out)?;
                        taken = true;
                        break;
                    }
                }
                if !taken {
                    exec(otherwise, env, out)?;
                }
            }
        }
        if out.len() > MAX_OUTPUT {
            return Err(format!("output larger than {MAX_OUTPUT} bytes"));
        }
    }
    Ok(())
}

fn eval_pipe<'a>(pipe: &'a Pipe, env: &Env<'a>) -> Result<Value<'a>, String> {
    let mut value: Option<Value<'a>> = None;
    for cmd in &pipe.cmds {
        value = Some(match cmd {
            Cmd::Operand(op) => eval_operand(op, env)?,
            Cmd::Call(call) => eval_call(call, env, value.take())?,
        });
    }
    Ok(value.unwrap_or(Value::Nil))
}

fn eval_operand<'a>(op: &'a Operand, env: &Env<'a>) -> Result<Value<'a>, String> {
    Ok(match op {
        Operand::Dot => Value::Labels(env.labels),
        Operand::Field(path) => {
            if path.len() > 1 {
                return Err(format!("can't evaluate field {} in type string", path[1]));
            }
            Value::Str(Cow::Borrowed(
                env.labels.get(&path[0]).map_or("", String::as_str),
            ))
        }
        Operand::Str(s) => Value::Str(Cow::Borrowed(s)),
        Operand::Int(i) => Value::Int(*i),
        Operand::Float(f) => Value::Float(*f),
        Operand::Bool(b) => Value::Bool(*b),
        Operand::Nil => Value::Nil,
        Operand::Call(call) => eval_call(call, env, None)?,
        Operand::Pipe(pipe) => eval_pipe(pipe, env)?,
    })
}

fn eval_call<'a>(
    call: &'a Call,
    env: &Env<'a>,
    piped: Option<Value<'a>>,
) -> Result<Value<'a>, String> {
    let name = funcs::name(call.func);
    if matches!(call.func, Func::And | Func::Or) {
        // Go evaluates only as far as the answer is known, and gives back
        // the deciding value.
        let want = call.func == Func::Or;
        let mut last = Value::Nil;
        for op in &call.args {
            last = eval_operand(op, env)?;
            if last.truth() == want {
                return Ok(last);
            }
        }
        if let Some(p) = piped {
            last = p;
        }
        return Ok(last);
    }
    let mut args = Vec::with_capacity(call.args.len() + 1);
    for op in &call.args {
        args.push(eval_operand(op, env)?);
    }
    if let Some(p) = piped {
        args.push(p);
    }
    let result = funcs::call(call.func, &args, env, call.regex.as_ref())
        .map_err(|e| format!("error calling {name}: {e}"))?;
    // Each result is held to the limit, so nesting cannot multiply it.
    if let Value::Str(s) = &result
        && s.len() > MAX_OUTPUT
    {
        return Err(format!(
            "error calling {name}: result larger than {MAX_OUTPUT} bytes"
        ));
    }
    Ok(result)
}
