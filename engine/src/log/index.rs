//! The event-id index: what makes appends idempotent without holding every id
//! in memory.
//!
//! Ids are hashed (128-bit xxh3) into [`BUCKETS`] append-only files beside the
//! table. Each record is 32 bytes: id hash (16), content hash (8), and the
//! table version (8) whose commit made it valid. An append loads only the
//! buckets its ids fall in, up to a memory budget, and writes its new records
//! before it commits; a `PENDING` marker names the version being written so
//! that, after a crash, records of a version that never committed are cut
//! away again ([`IdIndex::recover`]).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::delta::{create_dir_durable, sync_dir, write_atomic};
use crate::error::{Error, Result};

pub const BUCKETS: usize = 1024;
const RECORD: usize = 32;
/// Loaded entries kept in memory before the cache is dropped (~40 bytes each).
const CACHE_BUDGET: usize = 8_000_000;
/// Unwritten new records buffered before they go to the bucket files.
const PENDING_BUDGET: usize = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    New,
    Duplicate,
    Conflict,
}

pub struct IdIndex {
    dir: PathBuf,
    cache: Vec<Option<HashMap<u128, u64>>>,
    cached: usize,
    /// Entries the cache may hold before it is dropped.
    budget: usize,
    /// New records per bucket not yet written to its file.
    unwritten: Vec<Vec<u8>>,
    unwritten_count: usize,
    /// Buckets written during this append (to fsync before commit).
    dirty: Vec<bool>,
    version: u64,
}

fn bucket_of(id_hash: u128) -> usize {
    (id_hash >> 118) as usize % BUCKETS
}

impl IdIndex {
    fn bucket_path(dir: &Path, b: usize) -> PathBuf {
        dir.join(format!("bucket-{b:04}.idx"))
    }

    fn marker(dir: &Path) -> PathBuf {
        dir.join("PENDING")
    }

    /// Undoes the records of an append that wrote its index but never
    /// committed version `> committed`. Run under the writer lock, at open.
    pub fn recover(dir: &Path, committed: Option<u64>) -> Result<()> {
        let marker = Self::marker(dir);
        let pending = match fs::read_to_string(&marker) {
            Ok(s) => s.trim().parse::<u64>().map_err(|_| Error::Corrupt(format!("{}: not a version", marker.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&marker, e)),
        };
        if committed.is_none_or(|c| c < pending) {
            for b in 0..BUCKETS {
                let path = Self::bucket_path(dir, b);
                let Ok(bytes) = fs::read(&path) else { continue };
                let whole = bytes.len() / RECORD * RECORD;
                let kept: Vec<u8> = bytes[..whole]
                    .chunks_exact(RECORD)
                    .filter(|r| u64::from_le_bytes(r[24..32].try_into().unwrap_or_default()) < pending)
                    .flatten()
                    .copied()
                    .collect();
                if kept.len() != bytes.len() {
                    write_atomic(&path, &kept)?;
                }
            }
        }
        fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
        sync_dir(dir)
    }

    /// Starts an append that will commit as table `version`.
    pub fn begin(dir: &Path, version: u64) -> Result<Self> {
        create_dir_durable(dir)?;
        write_atomic(&Self::marker(dir), version.to_string().as_bytes())?;
        Ok(Self {
            dir: dir.to_path_buf(),
            cache: (0..BUCKETS).map(|_| None).collect(),
            cached: 0,
            budget: CACHE_BUDGET,
            unwritten: vec![Vec::new(); BUCKETS],
            unwritten_count: 0,
            dirty: vec![false; BUCKETS],
            version,
        })
    }

    fn load(&mut self, b: usize) -> Result<&mut HashMap<u128, u64>> {
        if self.cache[b].is_none() {
            let path = Self::bucket_path(&self.dir, b);
            let mut bytes = Vec::new();
            match File::open(&path) {
                Ok(mut f) => {
                    f.read_to_end(&mut bytes).map_err(|e| Error::io(&path, e))?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&path, e)),
            }
            let mut map = HashMap::with_capacity(bytes.len() / RECORD + 16);
            for r in bytes.chunks_exact(RECORD) {
                let id = u128::from_le_bytes(r[0..16].try_into().unwrap_or_default());
                let content = u64::from_le_bytes(r[16..24].try_into().unwrap_or_default());
                map.entry(id).or_insert(content);
            }
            // Records of this append that were written out but not yet cached.
            for r in self.unwritten[b].chunks_exact(RECORD) {
                let id = u128::from_le_bytes(r[0..16].try_into().unwrap_or_default());
                let content = u64::from_le_bytes(r[16..24].try_into().unwrap_or_default());
                map.entry(id).or_insert(content);
            }
            self.cached += map.len();
            self.cache[b] = Some(map);
        }
        self.cache[b].as_mut().ok_or_else(|| Error::Corrupt("index bucket vanished".into()))
    }

    /// Records `id` with `content` unless it is known: the verdict for one row.
    pub fn check_and_insert(&mut self, id: u128, content: u64) -> Result<Seen> {
        let b = bucket_of(id);
        let map = self.load(b)?;
        match map.get(&id) {
            Some(&c) if c == content => Ok(Seen::Duplicate),
            Some(_) => Ok(Seen::Conflict),
            None => {
                map.insert(id, content);
                self.cached += 1;
                if self.cached > self.budget {
                    self.drop_cache()?;
                }
                let rec = &mut self.unwritten[b];
                rec.extend_from_slice(&id.to_le_bytes());
                rec.extend_from_slice(&content.to_le_bytes());
                rec.extend_from_slice(&self.version.to_le_bytes());
                self.unwritten_count += 1;
                if self.unwritten_count >= PENDING_BUDGET {
                    self.write_unwritten()?;
                }
                Ok(Seen::New)
            }
        }
    }

    /// Frees the loaded buckets (their new records go to the files first, so
    /// a bucket loaded again sees them): memory stays within the budget.
    fn drop_cache(&mut self) -> Result<()> {
        self.write_unwritten()?;
        self.cache.iter_mut().for_each(|c| *c = None);
        self.cached = 0;
        Ok(())
    }

    fn write_unwritten(&mut self) -> Result<()> {
        for b in 0..BUCKETS {
            if self.unwritten[b].is_empty() {
                continue;
            }
            let path = Self::bucket_path(&self.dir, b);
            let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, e))?;
            f.write_all(&self.unwritten[b]).map_err(|e| Error::io(&path, e))?;
            self.unwritten[b].clear();
            self.dirty[b] = true;
        }
        self.unwritten_count = 0;
        Ok(())
    }

    /// Makes every record of this append durable. Call before the commit.
    pub fn flush(&mut self) -> Result<()> {
        self.write_unwritten()?;
        for b in 0..BUCKETS {
            if self.dirty[b] {
                let path = Self::bucket_path(&self.dir, b);
                File::open(&path).and_then(|f| f.sync_all()).map_err(|e| Error::io(&path, e))?;
            }
        }
        sync_dir(&self.dir)
    }

    /// After the commit: the records are now valid, the marker goes.
    pub fn finish(self) -> Result<()> {
        let marker = Self::marker(&self.dir);
        fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_survive_reopen_and_uncommitted_records_are_undone() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("index");
        let mut ix = IdIndex::begin(&d, 1).unwrap();
        assert_eq!(ix.check_and_insert(7, 1).unwrap(), Seen::New);
        assert_eq!(ix.check_and_insert(7, 1).unwrap(), Seen::Duplicate);
        assert_eq!(ix.check_and_insert(7, 2).unwrap(), Seen::Conflict);
        ix.flush().unwrap();
        ix.finish().unwrap();
        IdIndex::recover(&d, Some(1)).unwrap();

        // Version 2 writes its records, then "crashes" before committing.
        let mut ix = IdIndex::begin(&d, 2).unwrap();
        assert_eq!(ix.check_and_insert(7, 1).unwrap(), Seen::Duplicate);
        assert_eq!(ix.check_and_insert(u128::MAX - 3, 9).unwrap(), Seen::New);
        ix.flush().unwrap();
        drop(ix);
        IdIndex::recover(&d, Some(1)).unwrap();
        let mut ix = IdIndex::begin(&d, 2).unwrap();
        assert_eq!(ix.check_and_insert(u128::MAX - 3, 10).unwrap(), Seen::New, "record of the lost version was undone");
        assert_eq!(ix.check_and_insert(7, 3).unwrap(), Seen::Conflict);
    }

    #[test]
    fn the_cache_stays_within_its_budget_and_still_sees_everything() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = IdIndex::begin(dir.path(), 1).unwrap();
        ix.budget = 50;
        let id = |i: u128| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        for i in 0..2_000 {
            assert_eq!(ix.check_and_insert(id(i), i as u64).unwrap(), Seen::New);
            assert!(ix.cached <= 50 + 1, "cache grew to {}", ix.cached);
        }
        for i in 0..2_000 {
            assert_eq!(ix.check_and_insert(id(i), i as u64).unwrap(), Seen::Duplicate, "id {i} forgotten after eviction");
        }
        assert_eq!(ix.check_and_insert(id(3), 99).unwrap(), Seen::Conflict);
    }
}
