//! The shared data model of Sextant: the nouns every other crate speaks.
//!
//! This room holds plain types and pure functions only: label names, durations
//! written the way Prometheus writes them, errors that point into a user's file,
//! and the counters Sextant keeps about itself. It depends on no other crate of
//! ours and does no I/O; anything that touches a socket or a file belongs
//! elsewhere.

pub mod de;
pub mod depth;
mod duration;
mod exemplar;
pub mod histogram;
mod labels;
mod log;
mod matcher;
mod series;
mod source_error;
mod span;
pub mod telemetry;
pub mod time;

pub use duration::{DurationError, PromDuration};
pub use exemplar::{Exemplar, MAX_EXEMPLAR_LABEL_RUNES};
pub use histogram::{
    CounterResetHint, FloatHistogram, Histogram, HistogramError, HistogramSample, HistogramValue,
};
pub use labels::{LabelNameError, is_valid_label_name, is_valid_metric_name};
pub use log::{FieldValue, Level, LogRecord};
pub use matcher::{MatchOp, Matcher};
pub use series::{Label, Labels, METRIC_NAME, STALE_NAN_BITS, Sample, is_stale_nan, stale_nan};
pub use source_error::SourceError;
pub use span::{SpanEvent, SpanKind, SpanLink, SpanRecord, SpanStatus};
