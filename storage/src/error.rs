use std::path::PathBuf;

/// Everything that can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory could not be created or opened.
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The underlying failure.
        source: std::io::Error,
    },
    /// A file operation of the stores failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying failure.
        source: std::io::Error,
    },
    /// The search index failed.
    #[error("log index: {0}")]
    Index(String),
    /// A log query could not be read.
    #[error("{0}")]
    BadQuery(String),
    /// Another process holds the data directory's lock.
    #[error(
        "data directory {path} is already in use by another Sextant process{holder}; \
         stop it or pass a different --data-dir"
    )]
    DataDirLocked {
        /// The directory.
        path: PathBuf,
        /// `" (pid N)"` when the holder wrote its pid, otherwise empty.
        holder: String,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
