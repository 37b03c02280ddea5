//! Go-template-style expansion of alert labels and annotations, the part of
//! Prometheus's templating that rule files use: `{{ $labels.queue }}`,
//! `{{ $value }}`, `{{ .Labels.queue }}`, `{{ .Value }}`, `{{ $externalURL }}`,
//! pipelines (`{{ $value | humanize }}`) and the functions `humanize`,
//! `humanize1024`, `humanizePercentage`, `humanizeDuration`, `printf`,
//! `toUpper`, `toLower`, `title`, `index`. Anything else is refused when the
//! rule loads, with the reason, as Prometheus refuses it.

use std::collections::BTreeMap;

/// What a template sees.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub value: f64,
    pub external_url: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Value,
    Labels,
    Label(String),
    ExternalUrl,
    Text(String),
    Number(f64),
    Call(String, Vec<Arg>),
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action(Arg),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

const FUNCTIONS: [&str; 9] = [
    "humanize",
    "humanize1024",
    "humanizePercentage",
    "humanizeDuration",
    "printf",
    "toUpper",
    "toLower",
    "title",
    "index",
];

/// A word of an action: a quoted string or a bare token.
fn words(action: &str) -> Result<Vec<(bool, String)>, String> {
    let mut out = Vec::new();
    let mut chars = action.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' || c == '`' {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted string".to_owned()),
                    Some(q) if q == c => break,
                    Some('\\') if c == '"' => match chars.next() {
                        Some('n') => text.push('\n'),
                        Some('t') => text.push('\t'),
                        Some(other) => text.push(other),
                        None => return Err("unterminated quoted string".to_owned()),
                    },
                    Some(other) => text.push(other),
                }
            }
            out.push((true, text));
        } else if c == '|' || c == '(' || c == ')' {
            chars.next();
            out.push((false, c.to_string()));
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '|' || c == '(' || c == ')' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            out.push((false, word));
        }
    }
    Ok(out)
}

fn operand(quoted: bool, word: &str) -> Result<Arg, String> {
    if quoted {
        return Ok(Arg::Text(word.to_owned()));
    }
    Ok(match word {
        "$value" | ".Value" => Arg::Value,
        "$labels" | ".Labels" => Arg::Labels,
        "$externalURL" | ".ExternalURL" => Arg::ExternalUrl,
        _ => {
            if let Some(name) = word
                .strip_prefix("$labels.")
                .or_else(|| word.strip_prefix(".Labels."))
            {
                Arg::Label(name.to_owned())
            } else if let Ok(x) = word.parse::<f64>() {
                Arg::Number(x)
            } else if word.starts_with('$') {
                return Err(format!("undefined variable {word:?}"));
            } else {
                return Err(format!("function {word:?} not defined"));
            }
        }
    })
}

/// Parses `a b c` (a command) into one argument: a function call or an operand.
fn command(words: &[(bool, String)], piped: Option<Arg>) -> Result<Arg, String> {
    let Some((quoted, first)) = words.first() else {
        return Err("missing value for command".to_owned());
    };
    if !quoted && FUNCTIONS.contains(&first.as_str()) {
        let mut args = words[1..]
            .iter()
            .map(|(q, w)| operand(*q, w))
            .collect::<Result<Vec<_>, _>>()?;
        args.extend(piped);
        let wanted = match first.as_str() {
            "printf" => None,
            "index" => Some(2),
            _ => Some(1),
        };
        if wanted.is_some_and(|n| n != args.len()) || (first == "printf" && args.is_empty()) {
            return Err(format!(
                "wrong number of args for {first}: got {}",
                args.len()
            ));
        }
        return Ok(Arg::Call(first.clone(), args));
    }
    let value = operand(*quoted, first)?;
    if words.len() > 1 || piped.is_some() {
        return Err(format!("can't give argument to non-function {first}"));
    }
    Ok(value)
}

fn action(text: &str) -> Result<Arg, String> {
    let words = words(text)?;
    if words.iter().any(|(q, w)| !q && (w == "(" || w == ")")) {
        return Err("parenthesised pipelines are not supported".to_owned());
    }
    // Each stage wraps the one before it, and evaluation recurses through
    // them: a pipeline is as deep as it is long.
    let stages = words.iter().filter(|(q, w)| !q && w == "|").count() + 1;
    sextant_model::depth::check_depth(stages).map_err(|_| {
        format!(
            "a pipeline of {stages} commands is longer than the limit of {} (query.max_depth)",
            sextant_model::depth::max_depth()
        )
    })?;
    let mut current = None;
    for stage in words.split(|(q, w)| !q && w == "|") {
        current = Some(command(stage, current)?);
    }
    current.ok_or_else(|| "empty action".to_owned())
}

impl Template {
    /// Parses `text`; the error says what is wrong, as Go's parser would.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let mut before = &rest[..open];
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("unclosed action in {text:?}"))?;
            let mut inner = &after[..close];
            if let Some(trimmed) = inner.strip_prefix('-') {
                before = before.trim_end();
                inner = trimmed;
            }
            let mut next = &after[close + 2..];
            if let Some(trimmed) = inner.strip_suffix('-') {
                inner = trimmed;
                next = next.trim_start();
            }
            if !before.is_empty() {
                parts.push(Part::Text(before.to_owned()));
            }
            let inner = inner.trim();
            if !inner.starts_with("/*") {
                parts.push(Part::Action(
                    action(inner).map_err(|e| format!("{e} in {{{{ {inner} }}}}"))?,
                ));
            }
            rest = next;
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// A template that is only text.
    pub fn literal(text: String) -> Self {
        Self {
            parts: vec![Part::Text(text)],
        }
    }

    /// The text with every action replaced by its value.
    pub fn expand(&self, context: &Context<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Action(arg) => out.push_str(&eval(arg, context).text()),
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
enum Val {
    Number(f64),
    Text(String),
    Map(BTreeMap<String, String>),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Number(x) => format_number(*x),
            Val::Text(t) => t.clone(),
            Val::Map(m) => {
                let pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("map[{}]", pairs.join(" "))
            }
        }
    }

    fn number(&self) -> f64 {
        match self {
            Val::Number(x) => *x,
            Val::Text(t) => t.trim().parse().unwrap_or(f64::NAN),
            Val::Map(_) => f64::NAN,
        }
    }
}

/// A float as Go's `%v` writes it: shortest form, exponent for big and small.
fn format_number(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let abs = x.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        let s = format!("{x:e}");
        // Go writes e+06, Rust e6.
        if let Some((mantissa, exp)) = s.split_once('e') {
            let (sign, digits) = exp.strip_prefix('-').map_or(("+", exp), |d| ("-", d));
            return format!("{mantissa}e{sign}{digits:0>2}");
        }
        return s;
    }
    x.to_string()
}

fn eval(arg: &Arg, context: &Context<'_>) -> Val {
    match arg {
        Arg::Value => Val::Number(context.value),
        Arg::Labels => Val::Map(context.labels.clone()),
        Arg::Label(name) => Val::Text(context.labels.get(name).cloned().unwrap_or_default()),
        Arg::ExternalUrl => Val::Text(context.external_url.to_owned()),
        Arg::Text(t) => Val::Text(t.clone()),
        Arg::Number(x) => Val::Number(*x),
        Arg::Call(name, args) => {
            let values: Vec<Val> = args.iter().map(|a| eval(a, context)).collect();
            call(name, &values)
        }
    }
}

fn call(name: &str, args: &[Val]) -> Val {
    match name {
        "humanize" => Val::Text(humanize(args[0].number(), 1000.0, &SI_UP, &SI_DOWN)),
        "humanize1024" => Val::Text(humanize(args[0].number(), 1024.0, &IEC, &[])),
        "humanizePercentage" => Val::Text(format!("{}%", format_g4(args[0].number() * 100.0))),
        "humanizeDuration" => Val::Text(humanize_duration(args[0].number())),
        "toUpper" => Val::Text(args[0].text().to_uppercase()),
        "toLower" => Val::Text(args[0].text().to_lowercase()),
        "title" => Val::Text(
            args[0]
                .text()
                .split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    c.next().map_or_else(String::new, |f| {
                        f.to_uppercase().collect::<String>() + c.as_str()
                    })
                })
                .collect::<Vec<_>>()
                .join(" "),
        ),
        "index" => match &args[0] {
            Val::Map(m) => Val::Text(m.get(&args[1].text()).cloned().unwrap_or_default()),
            other => Val::Text(format!(
                "<error calling index: cannot index {}>",
                other.text()
            )),
        },
        "printf" => Val::Text(printf(&args[0].text(), &args[1..])),
        _ => Val::Text(String::new()),
    }
}

const SI_UP: [&str; 8] = ["k", "M", "G", "T", "P", "E", "Z", "Y"];
const SI_DOWN: [&str; 8] = ["m", "u", "n", "p", "f", "a", "z", "y"];
const IEC: [&str; 8] = ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"];

/// Go's `%.4g`.
fn format_g4(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format_number(x);
    }
    let exp = x.abs().log10().floor() as i32;
    if !(-4..4).contains(&exp) {
        let s = format!("{x:.3e}");
        let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = trim_zeros(mantissa);
        let e: i32 = e.parse().unwrap_or(0);
        return format!("{mantissa}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    let decimals = (3 - exp).max(0) as usize;
    trim_zeros(&format!("{x:.decimals$}"))
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s.to_owned()
    }
}

/// Prometheus's `humanize`: SI prefixes, four significant digits.
fn humanize(x: f64, base: f64, up: &[&str], down: &[&str]) -> String {
    if x == 0.0 || !x.is_finite() {
        return format_g4(x);
    }
    let mut v = x;
    if v.abs() >= 1.0 {
        let mut prefix = "";
        for p in up {
            if v.abs() < base {
                break;
            }
            prefix = p;
            v /= base;
        }
        return format!("{}{prefix}", format_g4(v));
    }
    let mut prefix = "";
    for p in down {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}", format_g4(v))
}

/// Prometheus's `humanizeDuration`: `1d 2h 3m 4s`, or `1.5s` / `150ms` below a minute.
fn humanize_duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return format_number(seconds);
    }
    let sign = if seconds < 0.0 { "-" } else { "" };
    let v = seconds.abs();
    if v >= 60.0 {
        let total = v as u64;
        let (d, h, m, s) = (
            total / 86_400,
            total / 3600 % 24,
            total / 60 % 60,
            total % 60,
        );
        return if d > 0 {
            format!("{sign}{d}d {h}h {m}m {s}s")
        } else if h > 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else {
            format!("{sign}{m}m {s}s")
        };
    }
    if v >= 1.0 || v == 0.0 {
        return format!("{sign}{}s", format_g4(v));
    }
    let mut v = v;
    for unit in ["ms", "us", "ns", "ps"] {
        v *= 1000.0;
        if v >= 1.0 {
            return format!("{sign}{}{unit}", format_g4(v));
        }
    }
    format!("{sign}{}s", format_g4(seconds.abs()))
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %f %e %g %q %%`
/// with width and precision.
fn printf(format: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_digit() || c == '.' || c == '-' || c == '+' {
                spec.push(c);
                chars.next();
            } else {
                break;
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        // Widths and precisions past what any message needs are refused, as
        // Go refuses absurd ones (`%!(BADWIDTH)`), rather than allocated.
        const MAX_WIDTH: usize = 1024;
        let digits = spec.trim_start_matches(['-', '+']);
        let (w, p) = digits
            .split_once('.')
            .map_or((digits, None), |(w, p)| (w, Some(p)));
        let Some(width) = (if w.is_empty() {
            Some(0)
        } else {
            w.parse::<usize>().ok()
        })
        .filter(|w| *w <= MAX_WIDTH) else {
            out.push_str("%!(BADWIDTH)");
            continue;
        };
        let precision = match p {
            None => None,
            Some(p) => match (if p.is_empty() {
                Some(0)
            } else {
                p.parse::<usize>().ok()
            })
            .filter(|p| *p <= MAX_WIDTH)
            {
                Some(p) => Some(p),
                None => {
                    out.push_str("%!(BADPREC)");
                    continue;
                }
            },
        };
        let text = match verb {
            'd' => format!("{}", arg.number() as i64),
            'f' | 'F' => format!("{:.*}", precision.unwrap_or(6), arg.number()),
            'e' => format!("{:.*e}", precision.unwrap_or(6), arg.number()),
            'g' => match precision {
                Some(4) => format_g4(arg.number()),
                _ => format_number(arg.number()),
            },
            'q' => format!("{:?}", arg.text()),
            _ => arg.text(),
        };
        if spec.starts_with('-') {
            out.push_str(&format!("{text:<width$}"));
        } else {
            out.push_str(&format!("{text:>width$}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, value: f64) -> String {
        let labels = BTreeMap::from([
            ("queue".to_owned(), "orders".to_owned()),
            ("instance".to_owned(), "rabbit:9419".to_owned()),
        ]);
        let context = Context {
            labels: &labels,
            value,
            external_url: "http://sextant:7070",
        };
        Template::parse(text).unwrap().expand(&context)
    }

    #[test]
    fn pipelines_longer_than_the_depth_budget_are_refused() {
        let max = sextant_model::depth::max_depth();
        let within = format!("{{{{ $value{} }}}}", " | toUpper".repeat(max - 1));
        assert_eq!(run(&within, 1.0), "1");
        for stages in [max, 100_000] {
            let long = format!("{{{{ $value{} }}}}", " | toUpper".repeat(stages));
            let err = Template::parse(&long).unwrap_err();
            assert!(err.contains("query.max_depth"), "{err}");
        }
    }

    #[test]
    fn the_forms_rule_files_use_expand_as_prometheus_expands_them() {
        assert_eq!(
            run("{{ $labels.queue }} holds {{ $value }} messages", 142.0),
            "orders holds 142 messages"
        );
        assert_eq!(
            run("{{ .Labels.instance }} {{ .Value }}", 0.5),
            "rabbit:9419 0.5"
        );
        assert_eq!(run("{{ $value | humanize }}", 1234567.0), "1.235M");
        assert_eq!(run("{{ humanize $value }}", 0.0123), "12.3m");
        assert_eq!(run("{{ $value | humanizePercentage }}", 0.256), "25.6%");
        assert_eq!(run("{{ humanizeDuration $value }}", 3725.0), "1h 2m 5s");
        assert_eq!(run("{{ humanizeDuration $value }}", 0.25), "250ms");
        assert_eq!(run("{{ humanize1024 $value }}", 2048.0), "2ki");
        assert_eq!(run(r#"{{ printf "%.2f" $value }}"#, 1.23456), "1.23");
        assert_eq!(
            run(r#"{{ index $labels "queue" | toUpper }}"#, 0.0),
            "ORDERS"
        );
        assert_eq!(run("{{- $labels.queue -}} !", 0.0), "orders!");
        assert_eq!(
            run("{{ $externalURL }}/alerts", 0.0),
            "http://sextant:7070/alerts"
        );
        assert_eq!(run("{{ $labels.missing }}", 0.0), "");
        assert_eq!(run("{{ $value }}", 1e21), "1e+21");
        assert_eq!(
            run(r#"{{ printf "%5d|%-4s|" $value "ab" }}"#, 42.0),
            "   42|ab  |"
        );
        assert_eq!(
            run(r#"{{ printf "%99999999999999999999f" $value }}"#, 1.0),
            "%!(BADWIDTH)"
        );
    }

    #[test]
    fn what_prometheus_refuses_is_refused_with_the_reason() {
        for (text, reason) in [
            ("{{ $labels.queue ", "unclosed action"),
            ("{{ $nope }}", "undefined variable \"$nope\""),
            (
                "{{ frobnicate $value }}",
                "function \"frobnicate\" not defined",
            ),
            ("{{ humanize }}", "wrong number of args for humanize"),
            ("{{ $value $value }}", "can't give argument to non-function"),
        ] {
            let err = Template::parse(text).unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
