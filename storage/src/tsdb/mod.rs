//! The time-series engine: write-ahead log, in-memory head of compressed
//! chunks, immutable blocks with a label index, compaction and retention.

mod bits;
pub mod chunk;
