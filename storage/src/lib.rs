//! Sextant's storage: everything that lives on disk under the data directory.
//!
//! This room will hold the time-series engine (write-ahead log, head, compressed
//! chunks, blocks, label index, retention) and the search engine (the tantivy
//! index of logs and spans). It is the only crate that knows a file format or
//! tantivy; the others write and read through its traits. Today it owns the
//! data directory itself: creating it, and the lock that keeps a second Sextant
//! from sharing it.

mod data_dir;
mod error;
mod retention;
pub mod tsdb;

pub use data_dir::DataDir;
pub use error::{Error, Result};
pub use retention::RetentionConfig;
