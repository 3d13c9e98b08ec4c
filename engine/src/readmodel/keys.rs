//! Which services share an entity id, found through sorted runs of keys.
//!
//! A key packs a 48-bit hash of an id (a deployment, incident or commit)
//! with the 16-bit number of a service that named it, so sorting keys groups
//! every service of one id together. Runs are files of sorted keys; a new run
//! is looked up against the old ones (by windows of positioned reads where
//! each hash lies when it is small, by one sequential pass when it is large)
//! and then kept beside them. Once there are too many, the newest are
//! merged, up to an older run much larger than they are together
//! ([`to_merge`]): a small append into a big history merges a few small
//! runs, not the whole history's keys (hundreds of MB at 50M events) every
//! few appends. A hash collision can only join two components that need not
//! be joined: slower, never wrong.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::log::files::HashingFile;
use crate::log::sorted;

/// Services a key can name: 16 bits.
pub const MAX_SERVICES: usize = 1 << 16;
/// More runs than this are merged (see [`to_merge`]).
const MAX_RUNS: usize = 8;
/// A run this many times larger than the newer runs together is not merged
/// with them: each key is merged again only a few times over its life.
const TIER: u64 = 4;

/// The key of id `id` of kind `kind` named by service `service`.
pub fn key(kind: u8, id: &str, service: u32) -> u64 {
    let h = xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), kind as u64);
    (h & !0xFFFF) | service as u64
}

/// The id's part of a key (without the service).
pub fn hash(key: u64) -> u64 {
    key & !0xFFFF
}

pub fn service(key: u64) -> u32 {
    (key & 0xFFFF) as u32
}

/// Sorts and deduplicates `keys`, then calls `joined(a, b)` for every two
/// services that share a hash, within `keys` or with any of `runs`, and
/// puts in `seen` the hashes of `keys` that `runs` hold.
pub fn shared(
    dir: &Path,
    runs: &[String],
    keys: &mut Vec<u64>,
    joined: &mut dyn FnMut(u32, u32),
    seen: &mut HashSet<u64>,
) -> Result<()> {
    keys.sort_unstable();
    keys.dedup();
    for w in keys.windows(2) {
        if hash(w[0]) == hash(w[1]) {
            joined(service(w[0]), service(w[1]));
        }
    }
    for run in runs {
        let path = dir.join(run);
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len() / 8;
        // Looked up when that reads less than the whole run.
        if (keys.len() as u64) * 2 * sorted::WINDOW < len {
            probe(&file, len, keys, joined, seen).map_err(|e| Error::io(&path, e))?;
        } else {
            let mut reader = Keys(BufReader::with_capacity(1 << 20, file));
            let mut i = 0;
            while i < keys.len()
                && let Some(old) = reader.next_key().map_err(|e| Error::io(&path, e))?
            {
                while i < keys.len() && hash(keys[i]) < hash(old) {
                    i += 1;
                }
                keys[i..].iter().take_while(|&&k| hash(k) == hash(old)).for_each(|&k| {
                    seen.insert(hash(k));
                    joined(service(k), service(old))
                });
            }
        }
    }
    Ok(())
}

/// Each of `keys`' hashes looked up in a run of `len` keys
/// ([`sorted::equal_range`]: the hashes are evenly spread).
fn probe(
    file: &File,
    len: u64,
    keys: &[u64],
    joined: &mut dyn FnMut(u32, u32),
    seen: &mut HashSet<u64>,
) -> std::io::Result<()> {
    let read = |from: u64, to: u64| {
        let mut b = vec![0u8; (to - from) as usize * 8];
        file.read_exact_at(&mut b, from * 8).map(|()| b)
    };
    let key_of = |r: &[u8]| hash(u64::from_le_bytes(r.try_into().unwrap_or_default()));
    for &k in keys {
        let guess = sorted::interpolate(hash(k) >> 16, 48, len);
        for old in sorted::equal_range(len, 8, hash(k), guess, key_of, read)?.chunks_exact(8) {
            seen.insert(hash(k));
            joined(service(k), service(u64::from_le_bytes(old.try_into().unwrap_or_default())));
        }
    }
    Ok(())
}

struct Keys<R>(R);

impl<R: Read> Keys<R> {
    fn next_key(&mut self) -> std::io::Result<Option<u64>> {
        let mut b = [0u8; 8];
        match self.0.read_exact(&mut b) {
            Ok(()) => Ok(Some(u64::from_le_bytes(b))),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Writes sorted `keys` as a run file, durably; returns its checksum.
pub fn write_run(path: &Path, keys: impl Iterator<Item = u64>) -> Result<u64> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, HashingFile::new(file));
    for k in keys {
        w.write_all(&k.to_le_bytes()).map_err(|e| Error::io(path, e))?;
    }
    let (file, checksum) = w.into_inner().map_err(|e| Error::io(path, e.into_error()))?.finish();
    file.sync_all().map_err(|e| Error::io(path, e))?;
    Ok(checksum)
}

/// Where the runs to merge start, when there are too many: the newest two,
/// and each older one no larger than [`TIER`] times those after it.
pub fn to_merge(dir: &Path, runs: &[String]) -> Result<Option<usize>> {
    if runs.len() <= MAX_RUNS {
        return Ok(None);
    }
    let size = |run: &String| {
        let path = dir.join(run);
        std::fs::metadata(&path).map(|m| m.len()).map_err(|e| Error::io(&path, e))
    };
    let mut from = runs.len() - 2;
    let mut newer = size(&runs[from])? + size(&runs[from + 1])?;
    while from > 0 {
        let older = size(&runs[from - 1])?;
        if older > TIER * newer {
            break;
        }
        from -= 1;
        newer += older;
    }
    Ok(Some(from))
}

/// Merges sorted runs into one sorted, deduplicated run at `into`; returns
/// its checksum.
pub fn merge_runs(dir: &Path, runs: &[String], into: &Path) -> Result<u64> {
    let mut readers = Vec::new();
    for run in runs {
        let path = dir.join(run);
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        readers.push(Keys(BufReader::with_capacity(1 << 18, file)));
    }
    let mut heads: std::collections::BinaryHeap<std::cmp::Reverse<(u64, usize)>> = Default::default();
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(k) = r.next_key().map_err(|e| Error::io(dir, e))? {
            heads.push(std::cmp::Reverse((k, i)));
        }
    }
    let mut err = None;
    let mut last = None;
    let merged = std::iter::from_fn(|| {
        while let Some(std::cmp::Reverse((k, i))) = heads.pop() {
            match readers[i].next_key() {
                Ok(Some(n)) => heads.push(std::cmp::Reverse((n, i))),
                Ok(None) => {}
                Err(e) => {
                    err = Some(e);
                    return None;
                }
            }
            if last != Some(k) {
                last = Some(k);
                return Some(k);
            }
        }
        None
    });
    let checksum = write_run(into, merged)?;
    match err {
        Some(e) => Err(Error::io(dir, e)),
        None => Ok(checksum),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(dir: &Path, runs: &[String], mut keys: Vec<u64>) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        shared(dir, runs, &mut keys, &mut |a, b| out.push((a.min(b), a.max(b))), &mut HashSet::new()).unwrap();
        out.retain(|(a, b)| a != b);
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn services_sharing_an_id_are_found_within_and_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = vec![key(0, "D1", 1), key(0, "D2", 2), key(1, "I1", 3), key(0, "D1", 4)];
        assert_eq!(pairs(dir.path(), &[], first.clone()), vec![(1, 4)]);
        first.sort_unstable();
        write_run(&dir.path().join("a"), first.into_iter()).unwrap();
        let runs = vec!["a".to_string()];
        // Small lookups probe; the same id of another kind is another key.
        assert_eq!(pairs(dir.path(), &runs, vec![key(0, "D2", 5)]), vec![(2, 5)]);
        assert_eq!(pairs(dir.path(), &runs, vec![key(1, "D2", 5)]), vec![]);
        // A large batch scans the run instead; both find the same.
        let mut many: Vec<u64> = (0..500).map(|i| key(2, &format!("c{i}"), 9)).collect();
        many.push(key(1, "I1", 7));
        assert_eq!(pairs(dir.path(), &runs, many), vec![(3, 7)]);
    }

    #[test]
    fn merged_runs_are_sorted_and_unique() {
        let dir = tempfile::tempdir().unwrap();
        write_run(&dir.path().join("a"), [1u64 << 16, 3 << 16, 5 << 16].into_iter()).unwrap();
        write_run(&dir.path().join("b"), [2u64 << 16, 3 << 16].into_iter()).unwrap();
        merge_runs(dir.path(), &["a".into(), "b".into()], &dir.path().join("c")).unwrap();
        let bytes = std::fs::read(dir.path().join("c")).unwrap();
        let got: Vec<u64> = bytes.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap()) >> 16).collect();
        assert_eq!(got, vec![1, 2, 3, 5]);
    }

    #[test]
    fn too_many_runs_merge_the_newest_up_to_a_much_larger_one() {
        let dir = tempfile::tempdir().unwrap();
        let run = |name: &str, n: u64| {
            write_run(&dir.path().join(name), (0..n).map(|k| k << 16)).unwrap();
            name.to_string()
        };
        // A big history, a middle run, then small appends' runs.
        let mut runs = vec![run("big", 10_000), run("mid", 250)];
        assert_eq!(to_merge(dir.path(), &runs).unwrap(), None);
        for i in 0..7 {
            runs.push(run(&format!("s{i}"), 10));
        }
        // Nine runs: the seven small ones merge with `mid` (250 ≤ 4 × 70),
        // not with `big`.
        assert_eq!(to_merge(dir.path(), &runs).unwrap(), Some(1));
        // Each about as large as all newer ones: all merge.
        let even: Vec<String> = (0..9).map(|i| run(&format!("e{i}"), 1 << (9 - i).min(8))).collect();
        assert_eq!(to_merge(dir.path(), &even).unwrap(), Some(0));
    }
}
