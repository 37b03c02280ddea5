//! LogQL, Loki's query language, over the log store: a parser with the
//! depth budget every language here has, the pipeline stages, and the
//! evaluator that pushes what the index can decide down to it.

pub mod ast;
pub mod eval;
mod lex;
pub mod parse;
pub mod stages;
