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
    /// A write was refused for now: the index is recovering from a failed
    /// write (a full disk); a retry succeeds once it has.
    #[error("{0}")]
    Unavailable(String),
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

impl Error {
    /// Whether the failure was the disk running out of space (or quota):
    /// nothing was acknowledged, and a retry succeeds once space is freed.
    pub fn is_disk_full(&self) -> bool {
        let full = |e: &std::io::Error| {
            e.kind() == std::io::ErrorKind::StorageFull
                || e.kind() == std::io::ErrorKind::QuotaExceeded
                || matches!(e.raw_os_error(), Some(28 | 122)) // ENOSPC, EDQUOT
        };
        match self {
            Self::Io { source, .. } | Self::DataDir { source, .. } => full(source),
            // tantivy reports its I/O errors as text.
            Self::Index(text) => text.contains("No space left on device"),
            _ => false,
        }
    }
}

impl Error {
    /// Whether the failure was the object store being unreachable (a
    /// query over blocks only in the bucket): retryable, and the message
    /// names the store.
    pub fn is_remote_unavailable(&self) -> bool {
        match self {
            Self::Io { source, .. } => crate::remote::is_unavailable(source),
            // tantivy reports the errors of a split's reads as text.
            Self::Index(text) => text.contains(crate::remote::UNAVAILABLE),
            _ => false,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
