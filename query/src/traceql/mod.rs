//! TraceQL, Grafana Tempo's trace query language, over the span store: a
//! parser with the depth budget every language here has, and the search
//! that finds the traces a query matches, pushing down to the store what
//! every match surely has.

pub mod ast;
pub mod eval;
mod lex;
pub mod parse;

pub use eval::{MatchedSpan, SearchRequest, SpanSet, TraceMatch, search};
pub use parse::parse;
