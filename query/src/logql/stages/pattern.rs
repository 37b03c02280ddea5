//! Loki's pattern expressions: literals and `<name>` / `<_>` captures, for
//! `| pattern` and for the `|>` / `!>` line filters.

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Literal(String),
    /// `<name>` (`Some(index into names)`) or `<_>` (`None`).
    Capture(Option<usize>),
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    nodes: Vec<Node>,
    names: Vec<String>,
}

/// Splits a pattern into literals and captures. A capture is `<` then a
/// letter or `_`, letters, digits and `_`, then `>`; every other character
/// is literal text.
fn lex(text: &str) -> (Vec<Node>, Vec<String>) {
    let mut nodes = Vec::new();
    let mut names = Vec::new();
    let mut literal = String::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'<' && i + 1 < b.len() && (b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'_') {
            let mut j = i + 2;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j < b.len() && b[j] == b'>' {
                if !literal.is_empty() {
                    nodes.push(Node::Literal(std::mem::take(&mut literal)));
                }
                let name = &text[i + 1..j];
                if name == "_" {
                    nodes.push(Node::Capture(None));
                } else {
                    names.push(name.to_owned());
                    nodes.push(Node::Capture(Some(names.len() - 1)));
                }
                i = j + 1;
                continue;
            }
        }
        let ch = text[i..].chars().next().unwrap_or('\u{FFFD}');
        literal.push(ch);
        i += ch.len_utf8();
    }
    if !literal.is_empty() {
        nodes.push(Node::Literal(literal));
    }
    (nodes, names)
}

fn no_consecutive_captures(nodes: &[Node]) -> Result<(), String> {
    for pair in nodes.windows(2) {
        if let [Node::Capture(_), Node::Capture(_)] = pair {
            return Err(
                "found consecutive captures: two captures must be separated by literal text"
                    .to_owned(),
            );
        }
    }
    Ok(())
}

impl Pattern {
    /// A pattern for `| pattern`: at least one named capture, names unique,
    /// no two captures side by side.
    pub(super) fn parser(text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("empty pattern".to_owned());
        }
        let (nodes, names) = lex(text);
        if names.is_empty() {
            return Err("at least one named capture is required".to_owned());
        }
        no_consecutive_captures(&nodes)?;
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(format!("duplicate capture name <{name}>"));
            }
        }
        Ok(Pattern { nodes, names })
    }

    /// A pattern for `|>` / `!>`: only `<_>` captures.
    pub(super) fn line_filter(text: &str) -> Result<Pattern, String> {
        let (nodes, names) = lex(text);
        if let Some(name) = names.first() {
            return Err(format!(
                "named captures are not allowed in a pattern line filter: found <{name}>"
            ));
        }
        no_consecutive_captures(&nodes)?;
        Ok(Pattern { nodes, names })
    }

    /// The capture names, in order.
    pub(super) fn names(&self) -> &[String] {
        &self.names
    }

    /// Loki's extraction: anchored at the start (a leading literal must
    /// begin the line); each capture runs to the next literal, or to the end
    /// of the line when it is last or the literal is missing (and then
    /// matching stops). Calls `capture(name_index, text)` for the named
    /// captures reached, in order.
    pub(super) fn extract<'l>(&self, line: &'l str, mut capture: impl FnMut(usize, &'l str)) {
        if line.is_empty() || self.nodes.is_empty() {
            return;
        }
        let mut rest = line;
        let mut nodes = &self.nodes[..];
        if let Some(Node::Literal(lit)) = nodes.first() {
            match rest.strip_prefix(lit.as_str()) {
                Some(r) => rest = r,
                None => return,
            }
            nodes = &nodes[1..];
        }
        while let Some(Node::Capture(name)) = nodes.first() {
            let Some(Node::Literal(lit)) = nodes.get(1) else {
                // Ends on a capture: it takes the rest of the line.
                if let Some(i) = name {
                    capture(*i, rest);
                }
                return;
            };
            match rest.find(lit.as_str()) {
                Some(at) => {
                    if let Some(i) = name {
                        capture(*i, &rest[..at]);
                    }
                    rest = &rest[at + lit.len()..];
                }
                None => {
                    if let Some(i) = name {
                        capture(*i, rest);
                    }
                    return;
                }
            }
            nodes = &nodes[2..];
        }
    }

    /// Whether the whole line matches: literals in order, every capture
    /// non-empty, the first literal at the start of the line (unless a
    /// capture comes first), the last at its end (unless a capture comes
    /// last). An empty pattern matches only the empty line.
    pub(super) fn matches(&self, line: &str) -> bool {
        if line.is_empty() || self.nodes.is_empty() {
            return line.is_empty() && self.nodes.is_empty();
        }
        let mut off = 0;
        for (i, node) in self.nodes.iter().enumerate() {
            let Node::Literal(lit) = node else { continue };
            let Some(j) = line[off..].find(lit.as_str()) else {
                return false;
            };
            if i == 0 && j != 0 {
                // A leading literal anchors the pattern at the line's start.
                return false;
            }
            if i != 0 && j == 0 {
                // The capture before this literal would be empty.
                return false;
            }
            off += j + lit.len();
        }
        let ends_on_capture = matches!(self.nodes.last(), Some(Node::Capture(_)));
        ends_on_capture == (off != line.len())
    }
}
