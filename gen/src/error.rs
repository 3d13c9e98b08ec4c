//! What can go wrong generating a history.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The config asks for something the generator cannot write.
    #[error("cannot generate this history: {0}")]
    Config(String),
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A generated line that the engine's ingest path rejects or reads back
    /// as another event: a bug in this crate (checked with debug assertions).
    #[error("generated line {line} does not ingest as written: {reason}")]
    Unreadable { line: u64, reason: String },
}
