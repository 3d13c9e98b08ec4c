//! The engine's one error type.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("data directory {dir} is locked by another writer ({holder}); only one writer at a time may append")]
    Locked { dir: PathBuf, holder: String },
    #[error("corrupt data directory: {0}")]
    Corrupt(String),
    /// A file of the data directory is not what was written (truncated,
    /// bit-flipped, unparsable): which one, what is wrong, and what it
    /// affects. Nothing is skipped or repaired silently on its account.
    #[error("{}: damaged: {problem}; {affects}", path.display())]
    Damaged { path: PathBuf, problem: String, affects: String },
    /// The input as a whole is unusable (unreadable, unknown format or column).
    #[error("{0}")]
    Input(String),
    /// No such data directory.
    #[error("data directory {0} does not exist (`leadline ingest` creates one)")]
    NoDataDirectory(PathBuf),
    /// A statement about a named relation (a view) that cannot be done as asked.
    #[error("{message}")]
    Relation { problem: RelationProblem, message: String },
    /// A bound of the engine was reached.
    #[error("{0}")]
    Limit(String),
    /// A bug or a failed thread: not the input's fault.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

/// Why a statement about a named relation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationProblem {
    /// The name is taken (by a table, a table function or another view).
    Exists,
    /// No view of that name.
    Missing,
    /// The relation is not a view (`DROP VIEW events`).
    NotAView,
    /// A view would read itself.
    Recursive,
}

impl Error {
    pub fn relation(problem: RelationProblem, message: impl Into<String>) -> Self {
        Error::Relation { problem, message: message.into() }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }

    pub fn damaged(path: &Path, problem: impl std::fmt::Display, affects: impl Into<String>) -> Self {
        Error::Damaged { path: path.to_path_buf(), problem: problem.to_string(), affects: affects.into() }
    }

    /// Whether the error is a full disk (or an exhausted quota) anywhere in
    /// its chain of causes: the write failed for want of space, and works
    /// again once space is freed.
    pub fn is_disk_full(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && is_no_space(io)
            {
                return true;
            }
            cause = e.source();
        }
        false
    }
}

fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}

impl From<Error> for datafusion::error::DataFusionError {
    fn from(e: Error) -> Self {
        match e {
            Error::DataFusion(e) => e,
            other => datafusion::error::DataFusionError::External(Box::new(other)),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
