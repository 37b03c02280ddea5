//! The Lucene-style query language users type (Kibana's, Jaeger's tags)
//! rewritten for tantivy's parser, for any index of the `splits` engine.

/// How an index's fields meet the query language.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect<'a> {
    /// The index's own field names; any other `name:` is a path in `fields`.
    pub top: &'a [&'a str],
    /// The JSON field that holds every other field.
    pub fields: &'a str,
    /// The fast-only JSON field that holds numbers again, for ranges.
    pub numbers: Option<&'a str>,
    /// Field names whose values are indexed whole in `correlation`.
    pub correlation_fields: &'a [String],
    pub correlation: &'a str,
}

impl Dialect<'_> {
    /// `route:x` as `fields.route:x`, a correlation field (`uuid:x`) as
    /// `corr:x`, and a range (`duration_ms:>500`, `qty:[1 TO 5]`) as
    /// `nums.duration_ms:>500`, where numbers have columns (a token's leading
    /// `-`, `+` or `(` kept).
    fn path(&self, token: &str) -> String {
        let start = token.len() - token.trim_start_matches(['-', '+', '(']).len();
        let (lead, rest) = token.split_at(start);
        match rest.split_once(':') {
            Some((name, value))
                if !name.is_empty()
                    && !name.starts_with('"')
                    && !self.top.contains(&name)
                    && !self.top.iter().any(|top| {
                        name.strip_prefix(top)
                            .is_some_and(|path| path.starts_with('.'))
                    }) =>
            {
                if self.correlation_fields.iter().any(|c| c == name) {
                    return format!("{lead}{}:{value}", self.correlation);
                }
                let root = match self.numbers {
                    Some(numbers) if value.starts_with(['>', '<', '[', '{']) => numbers,
                    _ => self.fields,
                };
                format!("{lead}{root}.{rest}")
            }
            _ => token.to_owned(),
        }
    }
}

/// Refuses a query longer than `query.max_query_bytes` or with more
/// brackets than `query.max_depth`, before tantivy's parser (which recurses
/// once per bracket) sees it; and control characters, which tantivy uses
/// inside its JSON-field terms (a NUL in a field name trips an assertion).
pub(crate) fn check_budget(text: &str) -> crate::Result<()> {
    use sextant_model::depth;
    if let Some(c) = text.chars().find(|c| c.is_control() && !c.is_whitespace()) {
        return Err(crate::Error::BadQuery(format!(
            "invalid query: control character {c:?} is not allowed"
        )));
    }
    depth::check_length(text)
        .and_then(|()| depth::check_depth(depth::paren_depth(text)))
        .map_err(|e| crate::Error::BadQuery(format!("invalid query: {e}")))?;
    // tantivy's parser takes time quadratic in the length of one unquoted
    // term (8 s for 40 KB): a longer one must be quoted.
    let mut quoted = false;
    let mut run = 0;
    for c in text.chars() {
        if c == '"' {
            quoted = !quoted;
            run = 0;
        } else if quoted || c.is_whitespace() || c == '(' || c == ')' {
            // Brackets end a term too (nesting has its own budget).
            run = 0;
        } else {
            run += 1;
            if run > MAX_UNQUOTED_TERM {
                return Err(crate::Error::BadQuery(format!(
                    "invalid query: a term of more than {MAX_UNQUOTED_TERM} characters outside quotes; put it in double quotes to search for it"
                )));
            }
        }
    }
    Ok(())
}

/// The longest term outside quotes a query may hold.
pub(crate) const MAX_UNQUOTED_TERM: usize = 1024;

/// Lucene's `NOT x` and `a AND NOT x` as tantivy's `-x` (with `*` in front
/// when nothing positive is left), outside quotes, and field names mapped
/// by the dialect.
pub(crate) fn rewrite_query(text: &str, dialect: &Dialect<'_>) -> crate::Result<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c.is_whitespace() && !quoted {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    let mut out: Vec<String> = Vec::new();
    let mut negate = false;
    let tokens: Vec<String> = tokens.into_iter().map(|t| dialect.path(&t)).collect();
    if let Some(numbers) = dialect.numbers {
        check_number_ranges(&tokens, numbers)?;
    }
    for token in tokens {
        if token == "NOT" {
            if out.last().is_some_and(|t| t == "AND") {
                out.pop();
            }
            negate = true;
            continue;
        }
        if negate {
            out.push(format!("-{token}"));
            negate = false;
        } else {
            out.push(token);
        }
    }
    let positive = out
        .iter()
        .any(|t| !t.starts_with('-') && !matches!(t.as_str(), "AND" | "OR"));
    if !positive {
        out.insert(0, "*".to_owned());
    }
    Ok(out.join(" "))
}

/// The bounds of every range on a number column (`duration_ms:>500`,
/// `qty:[1 TO 5]`, as mapped into `numbers`) are numbers or `*`: tantivy
/// panics on other text there (`[1 TO 5-]`).
fn check_number_ranges(tokens: &[String], numbers: &str) -> crate::Result<()> {
    let bad = |bound: &str| {
        crate::Error::BadQuery(format!(
            "invalid query: range bound {bound:?} is not a number (or *)"
        ))
    };
    let number = |bound: &str| bound == "*" || bound.parse::<f64>().is_ok_and(f64::is_finite);
    let prefix = format!("{numbers}.");
    let mut in_range = false;
    for token in tokens {
        // A bound is taken whole: `-` alone is no number.
        let value = if in_range {
            token.as_str()
        } else {
            let token = token.trim_start_matches(['-', '+', '(']);
            let Some(rest) = token.strip_prefix(&prefix) else {
                continue;
            };
            let Some((_, value)) = rest.split_once(':') else {
                continue;
            };
            if let Some(bound) = value
                .strip_prefix(">=")
                .or_else(|| value.strip_prefix("<="))
            {
                if !number(bound.trim_end_matches(')')) {
                    return Err(bad(bound));
                }
                continue;
            }
            if let Some(bound) = value.strip_prefix('>').or_else(|| value.strip_prefix('<')) {
                if !number(bound.trim_end_matches(')')) {
                    return Err(bad(bound));
                }
                continue;
            }
            match value.strip_prefix(['[', '{']) {
                Some(lower) => {
                    in_range = true;
                    lower
                }
                None => continue,
            }
        };
        // Inside `[a TO b]`: every piece but `TO` is a bound.
        let (piece, closes) = match value.trim_end_matches(')').strip_suffix([']', '}']) {
            Some(piece) => (piece, true),
            None => (value, false),
        };
        if !piece.is_empty() && piece != "TO" && !number(piece) {
            return Err(bad(piece));
        }
        if closes {
            in_range = false;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ranges_ids_and_negations_are_mapped() {
        let ids = ["uuid".to_owned()];
        let dialect = Dialect {
            top: &["service", "message", "fields"],
            fields: "fields",
            numbers: Some("nums"),
            correlation_fields: &ids,
            correlation: "corr",
        };
        let cases = [
            ("route:/orders", "fields.route:/orders"),
            ("service:a AND NOT failed", "service:a -failed"),
            ("NOT failed", "* -failed"),
            ("duration_ms:>500", "nums.duration_ms:>500"),
            ("qty:[1 TO 5]", "nums.qty:[1 TO 5]"),
            ("x -uuid:\"a b\"", "x -corr:\"a b\""),
            ("message:\"x: y\"", "message:\"x: y\""),
            ("fields.route:x", "fields.route:x"),
        ];
        for (input, expected) in cases {
            assert_eq!(rewrite_query(input, &dialect).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn number_ranges_need_number_bounds() {
        let ids = ["uuid".to_owned()];
        let dialect = Dialect {
            top: &["service", "message", "fields"],
            fields: "fields",
            numbers: Some("nums"),
            correlation_fields: &ids,
            correlation: "corr",
        };
        for good in [
            "duration_ms:[1 TO 5]",
            "duration_ms:{* TO 5.5}",
            "duration_ms:>=500",
            "(duration_ms:<1e3)",
            "route:x AND qty:[-1 TO *]",
            "qty:[-5 TO -1]",
        ] {
            rewrite_query(good, &dialect).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "duration_ms:[1 TO 5-]",
            "duration_ms:[1 TO -]",
            "duration_ms:[- TO 1]",
            "duration_ms:>-",
            "duration_ms:>abc",
            "duration_ms:[x TO 5]",
            "duration_ms:<=NaN",
        ] {
            let error = rewrite_query(bad, &dialect).unwrap_err().to_string();
            assert!(error.contains("is not a number"), "{bad}: {error}");
        }
    }

    #[test]
    fn long_unquoted_terms_are_refused_and_quoted_ones_taken() {
        let long = "o/a.".repeat(300);
        let error = check_budget(&long).unwrap_err().to_string();
        assert!(
            error.contains("more than 1024 characters outside quotes"),
            "{error}"
        );
        check_budget(&format!("\"{long}\"")).unwrap();
        check_budget(&format!("service:x {}", "a ".repeat(2000))).unwrap();
        check_budget(&"a".repeat(MAX_UNQUOTED_TERM)).unwrap();
        check_budget(&"message:(".repeat(1000)).unwrap();
    }
}
