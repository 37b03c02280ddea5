use sextant_model::SourceError;

/// Everything that can go wrong in alerting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule file is missing, unreadable or invalid.
    #[error(transparent)]
    RuleFile(#[from] SourceError),
    /// A `rule_files` glob is malformed.
    #[error("rule_files pattern {pattern:?} is not a valid glob: {message}")]
    InvalidGlob {
        /// The pattern as written.
        pattern: String,
        /// What is wrong.
        message: String,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
