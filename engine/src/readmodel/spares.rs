//! Files the model is done with are kept, emptied, for its new files to take
//! over, rather than deleted while new ones are created.
//!
//! Why: on ext4 without a journal (the machines leadline is measured on),
//! finding a free inode skips every inode freed in the last five minutes
//! (five more while its table block is dirty), one buffer-cache lookup each.
//! Under steady appends, files are let go as fast as they are written, so
//! each new file cost ~0.4 ms and creating them took half the CPU of an
//! update of fifty rows. A rename and a truncate take neither an inode nor a
//! scan. (PostgreSQL recycles its WAL segments for the same reason.)
//!
//! Spares wait under `model/spare/`, named by a number; a spare is empty,
//! holds no blocks and no reader can have it open under its old name past
//! the grace period that let it go. Nothing names the directory: a crash
//! loses nothing but spares, and a spare left there is taken over by the
//! next writer. Past [`MAX_SPARES`], a file let go is deleted.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// The most spares kept: a few minutes of new files under steady appends.
const MAX_SPARES: usize = 1 << 18;

const DIR: &str = "spare";

#[derive(Debug)]
pub(super) struct Spares {
    dir: PathBuf,
    /// The spares' numbers.
    free: Mutex<Vec<u64>>,
    /// The next number given (random, so another process's spares are
    /// never overwritten).
    next: AtomicU64,
}

impl Spares {
    /// The spares of model directory `model`, those a previous writer left
    /// included.
    pub fn open(model: &Path) -> Spares {
        let dir = model.join(DIR);
        // Without it, nothing is kept: every file let go is deleted.
        let _ = std::fs::create_dir_all(&dir);
        let free: Vec<u64> = std::fs::read_dir(&dir)
            .map(|entries| entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
            .unwrap_or_default();
        let next = AtomicU64::new(uuid::Uuid::new_v4().as_u64_pair().0 >> 1);
        Spares { dir, free: Mutex::new(free), next }
    }

    /// Keeps the file at `path` as a spare (deleting it when there are enough,
    /// or it cannot be kept).
    pub fn give(&self, path: &Path) {
        if path.is_dir() {
            return super::remove(path);
        }
        let full = self.free.lock().map_or(true, |free| free.len() >= MAX_SPARES);
        if !full {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let spare = self.dir.join(n.to_string());
            let kept = std::fs::rename(path, &spare)
                .and_then(|()| OpenOptions::new().write(true).truncate(true).open(&spare).map(drop));
            match kept {
                Ok(()) => return self.free.lock().map_or((), |mut free| free.push(n)),
                // Renamed, but not emptied: not kept.
                Err(_) if !path.exists() => return super::remove(&spare),
                Err(_) => {}
            }
        }
        super::remove(path)
    }

    /// A new, empty file at `path` (a spare taken over when there is one).
    pub fn create(&self, path: &Path) -> Result<File> {
        if let Some(n) = self.free.lock().ok().and_then(|mut free| free.pop()) {
            if std::fs::rename(self.dir.join(n.to_string()), path).is_ok() {
                return OpenOptions::new().write(true).truncate(true).open(path).map_err(|e| Error::io(path, e));
            }
            // Gone from under this writer (the model deleted, another writer
            // took it): the others are not counted on either.
            if let Ok(mut free) = self.free.lock() {
                free.clear();
            }
        }
        File::create(path).map_err(|e| Error::io(path, e))
    }

    /// Writes `bytes` as the new file `path` (made durable with the update's
    /// other files).
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.create(path)?.write_all(bytes).map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_given_is_taken_over_empty_by_the_next_new_file_and_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let spares = Spares::open(dir.path());
        let old = dir.path().join("old");
        std::fs::write(&old, b"rows of a file let go").unwrap();
        spares.give(&old);
        assert!(!old.exists());
        let kept: Vec<_> = std::fs::read_dir(dir.path().join(DIR)).unwrap().flatten().collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].metadata().unwrap().len(), 0, "a spare holds no blocks");

        // A new writer takes over what the last one left.
        let spares = Spares::open(dir.path());
        let new = dir.path().join("new");
        spares.write(&new, b"new").unwrap();
        assert_eq!(std::fs::read(&new).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path().join(DIR)).unwrap().count(), 0);

        // A spare gone from under it: a file is created, and no other spare
        // counted on.
        spares.free.lock().unwrap().extend([7, 8]);
        let other = dir.path().join("other");
        spares.write(&other, b"x").unwrap();
        assert_eq!(std::fs::read(&other).unwrap(), b"x");
        assert!(spares.free.lock().unwrap().is_empty());

        // A directory let go is deleted, not kept.
        let sub = dir.path().join("out");
        std::fs::create_dir_all(sub.join("inner")).unwrap();
        spares.give(&sub);
        assert!(!sub.exists());
        assert!(spares.free.lock().unwrap().is_empty());
    }
}
