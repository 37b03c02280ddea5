//! Sextant's query side: PromQL evaluation over the metrics store, log search,
//! trace assembly in Jaeger's model, and the correlation of logs and spans that
//! share a request id.
//!
//! This room reads through storage's reader interface only: it never opens a
//! file, never sees tantivy, and never writes. It knows nothing of HTTP either;
//! the server maps its results and errors onto the wire.

mod error;
mod gostr;
mod selector;
mod time;

pub use error::{Error, Result};
pub use selector::parse_selector;
pub use time::parse_time;
pub mod logql;
pub mod promql;
pub mod promqltest;
pub mod traceql;
pub mod traces;
