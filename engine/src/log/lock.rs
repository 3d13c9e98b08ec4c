//! One writer per data directory: an advisory lock on `DIR/LOCK`, whose text
//! names the holder so that the second writer's error says who it is.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Held for as long as it lives; the OS drops the lock if the process dies.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    pub fn acquire(dir: &Path, holder: &str) -> Result<Self> {
        let path = dir.join("LOCK");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut who = String::new();
                let _ = file.read_to_string(&mut who);
                let who = if who.trim().is_empty() { "unknown holder".to_string() } else { who.trim().to_string() };
                return Err(Error::Locked { dir: dir.to_path_buf(), holder: who });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let text =
            format!("pid {} ({holder}) since {}", std::process::id(), chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(text.as_bytes()))
            .map_err(|e| Error::io(&path, e))?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let held = WriterLock::acquire(dir.path(), "leadline ingest").unwrap();
        let err = WriterLock::acquire(dir.path(), "leadline serve").unwrap_err().to_string();
        assert!(err.contains("locked by another writer"), "{err}");
        assert!(err.contains(&format!("pid {} (leadline ingest)", std::process::id())), "{err}");
        drop(held);
        WriterLock::acquire(dir.path(), "leadline serve").unwrap();
    }
}
