//! How deep a PromQL expression's syntax tree can be, measured on the text
//! before `promql-parser` sees it.
//!
//! The parser itself is an LR automaton, but building the tree is not flat:
//! every binary node asks its left side for its type, recursively, so a
//! 10,000-term `1+1+...` both overflows the stack and takes quadratic time
//! inside the parser; and everything after it (type checks, `Display`,
//! `prettify`, our evaluator, `Drop`) recurses once per level. So the text is
//! measured first, in one linear pass, and refused over `query.max_depth`.
//!
//! The measure is an upper bound on the tree's depth: every node of a path
//! from the root to a leaf comes from a bracket that encloses the leaf (a
//! call, an aggregation, a parenthesis) or from an operator inside one of
//! those brackets (binary operators chain, unary signs stack, and a range or
//! subquery `[...]` wraps what comes before it). So the bound of a bracketed group is one for the bracket,
//! plus every operator directly inside it, plus the deepest group inside it.
//! Label matchers (`{...}`) and durations (`[...]`) hold no expressions, so
//! nothing in them counts beyond their bracket. Counting too much is
//! harmless (`1e-3`'s sign counts); counting too little is not, so strings
//! and comments are skipped exactly as the lexer skips them.

/// One open bracket.
struct Group {
    /// `(`, `[` or `{`.
    open: u8,
    /// Operators directly inside this group.
    operators: usize,
    /// The largest bound of a closed group inside this one.
    deepest_child: usize,
}

impl Group {
    fn new(open: u8) -> Self {
        Self {
            open,
            operators: 0,
            deepest_child: 0,
        }
    }

    fn bound(&self) -> usize {
        self.operators.saturating_add(self.deepest_child)
    }
}

/// An upper bound on the depth of the syntax tree of `query`.
pub(crate) fn depth_bound(query: &str) -> usize {
    let bytes = query.as_bytes();
    let mut stack = vec![Group::new(0)];
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let inside_expression = stack.last().is_some_and(|g| g.open == b'(' || g.open == 0);
        match b {
            b'"' | b'\'' | b'`' => {
                // A string: to its closing quote; `\` escapes in all but raw strings.
                i += 1;
                while i < bytes.len() && bytes[i] != b {
                    if bytes[i] == b'\\' && b != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => stack.push(Group::new(b)),
            b')' | b']' | b'}' if stack.len() > 1 => close(&mut stack),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' if inside_expression => {
                stack.last_mut().expect("the root").operators += 1;
            }
            b'=' | b'!' if inside_expression && bytes.get(i + 1) == Some(&b'=') => {
                stack.last_mut().expect("the root").operators += 1;
                i += 1;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i + 1 < bytes.len()
                    && (bytes[i + 1].is_ascii_alphanumeric() || matches!(bytes[i + 1], b'_' | b':'))
                {
                    i += 1;
                }
                let word = &query[start..=i];
                if inside_expression
                    && ["and", "or", "unless", "atan2"]
                        .iter()
                        .any(|k| word.eq_ignore_ascii_case(k))
                {
                    stack.last_mut().expect("the root").operators += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    // Brackets left open (a parse error to come) close at the end.
    while stack.len() > 1 {
        close(&mut stack);
    }
    stack[0].bound() + 1
}

/// Closes the innermost group into its parent. A `[...]` (a range or a
/// subquery) also wraps the expression before it, as an operator does.
fn close(stack: &mut Vec<Group>) {
    let closed = stack.pop().expect("more than the root");
    let parent = stack.last_mut().expect("the root");
    parent.deepest_child = parent.deepest_child.max(closed.bound() + 1);
    if closed.open == b'[' {
        parent.operators += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real depth of a parsed expression, walked without recursion.
    fn tree_depth(expr: &promql_parser::parser::Expr) -> usize {
        use promql_parser::parser::Expr;
        let mut deepest = 0;
        let mut todo = vec![(expr, 1usize)];
        while let Some((e, d)) = todo.pop() {
            deepest = deepest.max(d);
            match e {
                Expr::Aggregate(a) => {
                    todo.push((&a.expr, d + 1));
                    if let Some(p) = &a.param {
                        todo.push((p, d + 1));
                    }
                }
                Expr::Unary(u) => todo.push((&u.expr, d + 1)),
                Expr::Binary(b) => {
                    todo.push((&b.lhs, d + 1));
                    todo.push((&b.rhs, d + 1));
                }
                Expr::Paren(p) => todo.push((&p.expr, d + 1)),
                Expr::Subquery(s) => todo.push((&s.expr, d + 1)),
                Expr::Call(c) => todo.extend(c.args.args.iter().map(|a| (&**a, d + 1))),
                Expr::MatrixSelector(_) => deepest = deepest.max(d + 1),
                _ => {}
            }
        }
        deepest
    }

    #[test]
    fn the_bound_is_never_below_the_tree() {
        let queries = [
            "1",
            "up",
            "-up",
            "- - -1",
            "1 + 2 * 3 ^ 4 - 5",
            "sum by (job) (rate(http_requests_total{code=~\"5..\", a!=\"b\"}[5m]))",
            "(((up))) + 1 + 1 + 1",
            "((1 + 1 + 1) + (1 + (1 + 1)))",
            "max_over_time(max_over_time(rate(x[5m])[10m:1m])[1h:5m])",
            "a and b or c unless d atan2 e",
            "a AND b OR c",
            "x > bool on(job) group_left(instance) y",
            "histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m] offset -5m)))",
            "topk(3, x) == 1 != 2 >= 3 <= 4",
            "label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\")",
            "sum(x) # a comment (((( \n + 1",
        ];
        for q in queries {
            let expr = promql_parser::parser::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
            let real = tree_depth(&expr);
            let bound = depth_bound(q);
            assert!(bound >= real, "{q}: bound {bound} < depth {real}");
            // Close enough to be a fair limit: within a few levels.
            assert!(
                bound <= real + 8,
                "{q}: bound {bound} far above depth {real}"
            );
        }
    }

    #[test]
    fn hostile_shapes_are_measured_in_full() {
        let n = 10_000;
        let nested_sum = format!("{}up{}", "sum(".repeat(n), ")".repeat(n));
        assert!(depth_bound(&nested_sum) > n);
        let chain = vec!["1"; n].join("+");
        assert!(depth_bound(&chain) >= n);
        let ors = vec!["up"; n].join(" or ");
        assert!(depth_bound(&ors) >= n);
        // A chain inside each of many nested groups multiplies.
        let group = format!("{}1{}", "(1+1+1+".repeat(100), ")".repeat(100));
        assert!(depth_bound(&group) > 300);
        // Brackets inside strings and comments do not hide real ones...
        let quoted = format!(
            "\"{}\" + {}1{}",
            ")".repeat(n),
            "(".repeat(n),
            ")".repeat(n)
        );
        assert!(depth_bound(&quoted) > n);
        // ...and are not counted as nesting either.
        assert!(depth_bound(&format!("x{{a=\"{}\"}}", "(".repeat(n))) < 5);
    }
}
