//! The depth budget every recursive parser, rewriter and evaluator keeps to.
//!
//! A query language read from the network (PromQL, the Lucene dialect of log
//! search, alert templates) is a tree, and code that walks a tree recurses.
//! Unbounded, one request nested a few thousand levels deep overflows a
//! thread's stack, and Rust answers a stack overflow by aborting the whole
//! process. So each language measures its nesting *before* it recurses
//! (before it hands text to a third-party parser that recurses) and refuses
//! anything deeper than [`max_depth`], the `query.max_depth` setting; and the
//! threads that parse and evaluate queries are given [`stack_size`] bytes of
//! stack, enough for that budget with room to spare, so a recursion that a
//! check missed costs one refused query, never the process.
//!
//! The budget is process-wide because every language shares one setting and
//! the parsers sit in crates that know nothing of the server's config.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// `query.max_depth` when the config says nothing. No real dashboard or rule
/// nests a tenth as deep; the stack test in `query` proves the stack holds it.
pub const DEFAULT_MAX_DEPTH: usize = 1000;

/// `query.max_query_bytes` when the config says nothing: the longest query
/// text any language accepts.
pub const DEFAULT_MAX_QUERY_BYTES: usize = 256 * 1024;

static MAX_DEPTH: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_DEPTH);
static MAX_QUERY_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_QUERY_BYTES);

/// The nesting budget in force (`query.max_depth`).
pub fn max_depth() -> usize {
    MAX_DEPTH.load(Ordering::Relaxed)
}

/// The longest query text in force, in bytes (`query.max_query_bytes`).
pub fn max_query_bytes() -> usize {
    MAX_QUERY_BYTES.load(Ordering::Relaxed)
}

static FROZEN: AtomicBool = AtomicBool::new(false);

/// Sets the budgets, unless [`freeze`] was called: threads already started
/// have stacks sized for the budget they started with, so a reloaded config
/// cannot raise it. Returns whether the budgets were set.
pub fn set_limits(max_depth: usize, max_query_bytes: usize) -> bool {
    if FROZEN.load(Ordering::Acquire) {
        return false;
    }
    MAX_DEPTH.store(max_depth.max(1), Ordering::Relaxed);
    MAX_QUERY_BYTES.store(max_query_bytes.max(1), Ordering::Relaxed);
    true
}

/// Fixes the budgets for the life of the process; the server calls it once
/// it has started threads with [`stack_size`].
pub fn freeze() {
    FROZEN.store(true, Ordering::Release);
}

/// Stack for one nesting level of the deepest recursion we have (the
/// PromQL evaluator in a debug build, measured at about 20 KiB a level in
/// `query`'s stack test), doubled for headroom.
const STACK_PER_LEVEL: usize = 48 * 1024;
/// Stack for everything that is not nesting.
const STACK_BASE: usize = 16 * 1024 * 1024;

/// Bytes of stack a thread that parses or evaluates queries needs so that
/// any input within [`max_depth`] fits. Only touched pages cost memory.
pub fn stack_size() -> usize {
    stack_size_for(max_depth())
}

/// [`stack_size`] for a given budget.
pub fn stack_size_for(max_depth: usize) -> usize {
    STACK_BASE.saturating_add(max_depth.saturating_mul(STACK_PER_LEVEL))
}

/// Why a query was refused before it was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Nested deeper than `query.max_depth`.
    TooDeep { depth: usize, limit: usize },
    /// Longer than `query.max_query_bytes`.
    TooLong { bytes: usize, limit: usize },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooDeep { depth, limit } => write!(
                f,
                "the query may nest {depth} levels deep (counting brackets, calls and operators), more than the limit of {limit} (query.max_depth)"
            ),
            Self::TooLong { bytes, limit } => write!(
                f,
                "the query is {bytes} bytes long, more than the limit of {limit} bytes (query.max_query_bytes)"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// Refuses `text` longer than [`max_query_bytes`].
pub fn check_length(text: &str) -> Result<(), Refusal> {
    let limit = max_query_bytes();
    if text.len() > limit {
        return Err(Refusal::TooLong {
            bytes: text.len(),
            limit,
        });
    }
    Ok(())
}

/// Refuses a measured `depth` over [`max_depth`].
pub fn check_depth(depth: usize) -> Result<(), Refusal> {
    let limit = max_depth();
    if depth > limit {
        return Err(Refusal::TooDeep { depth, limit });
    }
    Ok(())
}

/// How deep a Lucene-style query parser may recurse on `text`: every `(`
/// counts, quoted or escaped or not. Tracking quotes and escapes would give
/// the true depth, but any place where our reading of them differed from
/// the parser's (`a"b`, `\\(`) would let closing brackets we think are real
/// hide an unbounded nesting; a count cannot be fooled, and no real log
/// search has a thousand brackets.
pub fn paren_depth(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'(').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_paren_counts() {
        assert_eq!(paren_depth("a"), 0);
        assert_eq!(paren_depth("(a OR (b AND c)) (d)"), 3);
        // Closing brackets a parser may read as quoted cannot hide depth.
        assert_eq!(paren_depth(r#"(((( "))))" (((("#), 8);
        assert_eq!(paren_depth(&"(".repeat(10_000)), 10_000);
    }

    #[test]
    fn refusals_name_their_setting() {
        let deep = Refusal::TooDeep {
            depth: 5000,
            limit: 1000,
        };
        assert!(deep.to_string().contains("query.max_depth"), "{deep}");
        let long = Refusal::TooLong { bytes: 5, limit: 4 };
        assert!(long.to_string().contains("query.max_query_bytes"), "{long}");
    }
}
