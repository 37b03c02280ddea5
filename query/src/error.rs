/// Everything that can go wrong answering a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `match[]` or other selector does not parse.
    #[error("invalid series selector {selector:?}: {reason}")]
    BadSelector {
        /// As given.
        selector: String,
        /// What is wrong.
        reason: String,
    },
    /// A time parameter does not parse.
    #[error("invalid time {value:?} for {param}: expected RFC3339 or unix seconds")]
    BadTime {
        /// The parameter.
        param: String,
        /// As given.
        value: String,
    },
    /// A PromQL expression does not parse.
    #[error("parse error: {0}")]
    Parse(String),
    /// A query failed while evaluating.
    #[error("{0}")]
    Execution(String),
    /// A query ran past its timeout.
    #[error("{0}")]
    Timeout(String),
    /// A query would hold more samples than allowed.
    #[error(
        "query processing would load too many samples into memory in query execution (limit {0})"
    )]
    TooManySamples(usize),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] sextant_storage::Error),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
