//! One writer at a time: an advisory lock on a file (`DIR/LOCK` for the
//! log), whose text names the holder so that the second writer's error says
//! who it is.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Held for as long as it lives; the OS drops the lock if the process dies.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// The log's writer lock, `dir/LOCK`, or an error naming its holder.
    pub fn acquire(dir: &Path, holder: &str) -> Result<Self> {
        Self::acquire_file(&dir.join("LOCK"), holder, Duration::ZERO)
            .and_then(|held| held.map_err(|holder| Error::Locked { dir: dir.to_path_buf(), holder }))
    }

    /// Locks `path` (creating it), waiting up to `patience` for another
    /// holder to let go; `Ok(Err(holder))` names the one that did not.
    pub fn acquire_file(path: &Path, holder: &str, patience: Duration) -> Result<Result<Self, String>> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let deadline = Instant::now() + patience;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut who = String::new();
                    let _ = file.read_to_string(&mut who);
                    let who = if who.trim().is_empty() { "unknown holder".to_string() } else { who.trim().to_string() };
                    return Ok(Err(who));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
            }
        }
        let text =
            format!("pid {} ({holder}) since {}", std::process::id(), chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(text.as_bytes()))
            .map_err(|e| Error::io(path, e))?;
        Ok(Ok(Self { _file: file }))
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

    #[test]
    fn a_patient_writer_waits_for_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let held = WriterLock::acquire_file(&path, "first", Duration::ZERO).unwrap().unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
        });
        WriterLock::acquire_file(&path, "second", Duration::from_secs(10)).unwrap().unwrap();
        release.join().unwrap();
    }
}
