//! The event-id index: what makes appends idempotent without holding every id
//! in memory.
//!
//! Ids are hashed (128-bit xxh3) into [`BUCKETS`] files beside the table
//! (`ids-NNNN.idx`). Each record is 16 bytes: the top 64 bits of the id
//! hash (its key), 48 bits of the content hash, and 16 bits of a check of the
//! record, so a damaged record is found when it is read instead of turning a
//! redelivery into a new event or a conflict. (Two ids whose 64-bit keys
//! agree are taken for one id, a conflict: ~N²/2^65 such pairs among N ids,
//! 7·10^-5 at 50M. A duplicate needs the content hash to agree too.) A key
//! is in the index at most once: a record is added only for an id not there.
//!
//! A bucket file is a head of records sorted by key, then a tail in the
//! order appends wrote it; `SORTED` says how many records each head holds.
//! A lookup reads a window of the head where the key's hash puts it (keys
//! are uniform within a bucket), then the tail: kilobytes, where a 50M-event
//! index has ~780 KB buckets. After each commit, a bucket whose tail has
//! outgrown [`MIN_TAIL`] and an eighth of its head is rewritten sorted
//! (atomically, by a rename), then `SORTED` is. Any prefix of a sorted file
//! is sorted, so a `SORTED` older than its buckets (a crash between the two)
//! only makes lookups read more; only committed records are ever sorted, so
//! cutting an uncommitted append's records (below) never reaches a head.
//!
//! An append looks an id up in its bucket's file until its lookups there have
//! read as much as the bucket holds, then loads the bucket, once, into a
//! compact form of 12 bytes an id (48 bits of the key and the content hash;
//! when those bits agree but the content does not, the bucket file decides).
//! It writes its new records before it commits; a `PENDING` marker names the
//! version being written and each bucket's length before it, so that, after a
//! crash, records of a version that never committed are cut away again
//! ([`IdIndex::recover`]). The index of earlier releases (32-byte records in
//! `bucket-NNNN.idx`, each with its version) is converted at the first open.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::delta::{create_dir_durable, remove_temp_files, sync_dir, sync_files, write_atomic};
use super::sorted;
use crate::error::{Error, Result};

pub const BUCKETS: usize = 1024;
pub const RECORD: usize = 16;
/// Bits of the content hash a record keeps.
const CONTENT_MASK: u64 = (1 << 48) - 1;
/// In-memory shards of the loaded index, by the top bits of the id key
/// (a bucket's ids fall in `SHARDS / BUCKETS` consecutive shards).
const SHARD_BITS: u32 = 16;
const SHARDS: usize = 1 << SHARD_BITS;
const SHARDS_PER_BUCKET: usize = SHARDS / BUCKETS;
/// New entries a shard keeps unsorted before merging them into its sorted run.
const FRESH: usize = 64;
/// Fewest records of a bucket's tail that are sorted into its head.
const MIN_TAIL: u64 = 512;
/// A tail is sorted into its head once it holds more than 1/`TAIL_SHARE`
/// of the head: so each record is rewritten ~`TAIL_SHARE` times as its
/// bucket grows, and a lookup reads at most that share of it unsorted.
const TAIL_SHARE: u64 = 8;
/// Unwritten new records buffered before they go to the bucket files.
const PENDING_BUDGET: usize = 1_000_000;
/// What a damaged bucket affects.
const BUCKET_AFFECTS: &str = "the event-id index: appends cannot tell new events from redeliveries of the ids \
    hashed to this bucket, so nothing is appended until it is rebuilt from the log (`leadline rebuild --index`) \
    or restored from a backup";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    New,
    Duplicate,
    Conflict,
}

/// The loaded entries of one shard: 12 bytes an id (a 32-bit key, the low
/// bits of the id key, and the content hash), where a hash map of full
/// records took ~40-55. `keys`/`contents` are sorted by key; `fresh_*` hold
/// the latest inserts, merged in every [`FRESH`].
#[derive(Default)]
struct Shard {
    keys: Vec<u32>,
    contents: Vec<u64>,
    fresh_keys: Vec<u32>,
    fresh_contents: Vec<u64>,
}

/// What the loaded entries say about an id.
enum Probe {
    /// No entry has its key: the id is not in the index.
    Absent,
    /// An entry with its key has this content hash: the same delivery.
    SameContent,
    /// Entries with its key, none with this content: the same id with other
    /// content, or another id whose 48 hashed bits agree (~1 in 10^7 lookups
    /// at 50M ids); the bucket file tells which.
    KeyOnly,
}

impl Shard {
    fn probe(&self, key: u32, content: u64) -> Probe {
        let mut seen = false;
        let start = self.keys.partition_point(|&k| k < key);
        for (i, &k) in self.keys[start..].iter().enumerate() {
            if k != key {
                break;
            }
            if self.contents[start + i] == content {
                return Probe::SameContent;
            }
            seen = true;
        }
        for (i, &k) in self.fresh_keys.iter().enumerate() {
            if k == key {
                if self.fresh_contents[i] == content {
                    return Probe::SameContent;
                }
                seen = true;
            }
        }
        if seen { Probe::KeyOnly } else { Probe::Absent }
    }

    fn insert(&mut self, key: u32, content: u64) {
        if self.fresh_keys.capacity() == 0 {
            self.fresh_keys.reserve_exact(FRESH);
            self.fresh_contents.reserve_exact(FRESH);
        }
        self.fresh_keys.push(key);
        self.fresh_contents.push(content);
        if self.fresh_keys.len() >= FRESH {
            self.merge_fresh();
        }
    }

    /// Sorts the fresh entries into the run, growing it exactly (no slack
    /// capacity: the run is most of the index's memory).
    fn merge_fresh(&mut self) {
        let mut fresh: Vec<(u32, u64)> = self.fresh_keys.drain(..).zip(self.fresh_contents.drain(..)).collect();
        fresh.sort_unstable_by_key(|&(k, _)| k);
        let (old, add) = (self.keys.len(), fresh.len());
        self.keys.reserve_exact(add);
        self.contents.reserve_exact(add);
        self.keys.resize(old + add, 0);
        self.contents.resize(old + add, 0);
        // Merge from the back, in place.
        let (mut i, mut j, mut out) = (old, add, old + add);
        while j > 0 {
            out -= 1;
            if i > 0 && self.keys[i - 1] > fresh[j - 1].0 {
                i -= 1;
                self.keys[out] = self.keys[i];
                self.contents[out] = self.contents[i];
            } else {
                j -= 1;
                (self.keys[out], self.contents[out]) = fresh[j];
            }
        }
    }
}

pub struct IdIndex {
    dir: PathBuf,
    /// Loaded entries, by [`shard_of`]; a bucket is loaded once per append,
    /// when its lookups have read as much as it holds.
    shards: Vec<Shard>,
    loaded: Vec<bool>,
    /// Per bucket not loaded, the bytes its lookups have read so far.
    read_by_lookups: Vec<u64>,
    cached: usize,
    /// New records per bucket not yet written to its file.
    unwritten: Vec<Vec<u8>>,
    unwritten_count: usize,
    /// Buckets written during this append (to fsync before commit).
    dirty: Vec<bool>,
    /// Each bucket file's length, with what this append wrote.
    lengths: Vec<u64>,
    /// Records at the head of each bucket file sorted by key.
    sorted: Vec<u64>,
}

/// What the index keeps of an id hash: its top 64 bits.
pub fn id_key(id_hash: u128) -> u64 {
    (id_hash >> 64) as u64
}

/// What the index keeps of a content hash.
pub fn content_key(content: u64) -> u64 {
    content & CONTENT_MASK
}

pub fn bucket_of(id_hash: u128) -> usize {
    bucket_of_key(id_key(id_hash))
}

/// Bits of an id key below those that pick its bucket.
const BUCKET_SHIFT: u32 = 64 - BUCKETS.trailing_zeros();

fn bucket_of_key(key: u64) -> usize {
    (key >> BUCKET_SHIFT) as usize % BUCKETS
}

/// Where `key` would be among `records` sorted keys of its bucket (the
/// bits below those of the bucket are evenly spread: it is a hash).
fn interpolate(key: u64, records: u64) -> u64 {
    sorted::interpolate(key & ((1 << BUCKET_SHIFT) - 1), BUCKET_SHIFT, records)
}

/// Shard of an id key: its top bits, so a bucket's shards are consecutive.
fn shard_of(key: u64) -> usize {
    (key >> (64 - SHARD_BITS)) as usize
}

/// Key of an id within its shard: the low 32 bits (disjoint from the shard's).
fn key_in_shard(key: u64) -> u32 {
    key as u32
}

/// The check of a record: 16 bits of the hash of its other 14 bytes.
fn check_bits(r: &[u8]) -> u16 {
    (xxhash_rust::xxh3::xxh3_64(&r[..RECORD - 2]) >> 48) as u16
}

/// One record as stored: id key, content hash, check.
pub fn encode_record(key: u64, content: u64) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[0..8].copy_from_slice(&key.to_le_bytes());
    r[8..14].copy_from_slice(&content.to_le_bytes()[..6]);
    let check = check_bits(&r);
    r[14..16].copy_from_slice(&check.to_le_bytes());
    r
}

/// A record's (id key, content hash) as stored, unchecked.
fn record(r: &[u8]) -> (u64, u64) {
    let key = u64::from_le_bytes(r[0..8].try_into().unwrap_or_default());
    let mut content = [0u8; 8];
    content[..6].copy_from_slice(&r[8..14]);
    (key, u64::from_le_bytes(content))
}

/// A stored record's (id key, content hash), or why it is damaged.
pub fn decode_record(r: &[u8]) -> std::result::Result<(u64, u64), &'static str> {
    if u16::from_le_bytes([r[14], r[15]]) != check_bits(r) {
        return Err("checksum mismatch");
    }
    Ok(record(r))
}

/// The records bucket file `path` of `len` bytes holds, or why it is
/// damaged: not a whole number of them.
fn whole_records(path: &Path, len: u64) -> Result<u64> {
    if !len.is_multiple_of(RECORD as u64) {
        let problem = format!("{len} bytes long, not a whole number of {RECORD}-byte records");
        return Err(Error::damaged(path, problem, BUCKET_AFFECTS));
    }
    Ok(len / RECORD as u64)
}

/// Checks that each record of `bytes`, records `first..` of bucket file
/// `path`, is what was written.
fn check_records(path: &Path, bytes: &[u8], first: u64) -> Result<()> {
    for (i, r) in bytes.chunks_exact(RECORD).enumerate() {
        decode_record(r).map_err(|problem| {
            Error::damaged(path, format!("record {}: {problem}", first + i as u64), BUCKET_AFFECTS)
        })?;
    }
    Ok(())
}

/// Checks that every record of bucket file `path` (its `bytes`) is whole
/// and what was written.
fn verify_bucket(path: &Path, bytes: &[u8]) -> Result<()> {
    whole_records(path, bytes.len() as u64)?;
    check_records(path, bytes, 0)
}

/// Records `from..to` of bucket file `f` (at `path`), each checked.
fn read_records(path: &Path, f: &File, from: u64, to: u64) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; (to.saturating_sub(from)) as usize * RECORD];
    f.read_exact_at(&mut bytes, from * RECORD as u64).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            Error::damaged(path, format!("shorter than the {to} records it held"), BUCKET_AFFECTS)
        }
        _ => Error::io(path, e),
    })?;
    check_records(path, &bytes, from)?;
    Ok(bytes)
}

/// The content hash of `key` among the first `head` records of bucket file
/// `f`, sorted by key ([`sorted::equal_range`], from where [`interpolate`]
/// puts it). Adds what it read to `read`. Only the records it reads are
/// checked (`leadline check` reads them all).
fn search_head(path: &Path, f: &File, head: u64, key: u64, read: &mut u64) -> Result<Option<u64>> {
    let window = |from: u64, to: u64| -> Result<Vec<u8>> {
        let bytes = read_records(path, f, from, to)?;
        *read += bytes.len() as u64;
        if bytes.chunks_exact(RECORD).map(|r| record(r).0).is_sorted() {
            Ok(bytes)
        } else {
            let problem = format!("records {from}..{to} are not sorted by id, though `SORTED` says they are");
            Err(Error::damaged(path, problem, BUCKET_AFFECTS))
        }
    };
    let found = sorted::equal_range(head, RECORD, key, interpolate(key, head), |r| record(r).0, window)?;
    Ok(found.chunks_exact(RECORD).next().map(|r| record(r).1))
}

/// The file that says how many records head each bucket file sorted.
fn sorted_path(dir: &Path) -> PathBuf {
    dir.join("SORTED")
}

/// Records at the head of each bucket of the index in `dir` sorted by key
/// (none where `SORTED` is missing: an index of an earlier release).
pub fn sorted_heads(dir: &Path) -> Result<Vec<u64>> {
    let path = sorted_path(dir);
    let text = match fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![0; BUCKETS]),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let heads = text.split_whitespace().map(|n| n.parse::<u64>()).collect::<std::result::Result<Vec<_>, _>>();
    heads.ok().filter(|h| h.len() == BUCKETS).ok_or_else(|| {
        let affects = "the event-id index's lookups, which read whole buckets until appends sort them again";
        Error::damaged(&path, format!("not {BUCKETS} record counts"), affects)
    })
}

fn write_sorted_heads(dir: &Path, heads: &[u64]) -> Result<()> {
    let text: Vec<String> = heads.iter().map(u64::to_string).collect();
    write_atomic(&sorted_path(dir), format!("{}\n", text.join(" ")).as_bytes())
}

/// The bucket files of the index in `dir` (those that exist), by bucket.
pub fn bucket_files(dir: &Path) -> Vec<(usize, PathBuf)> {
    (0..BUCKETS).map(|b| (b, IdIndex::bucket_path(dir, b))).filter(|(_, p)| p.exists()).collect()
}

/// The `PENDING` marker of an append under way (or of one that died): the
/// version it would commit and each bucket's length before it wrote (none
/// in a marker of an earlier release, whose records carried their version).
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub version: u64,
    pub lengths: Option<Vec<u64>>,
}

impl Pending {
    /// The marker in `dir`, if any.
    pub fn read(dir: &Path) -> Result<Option<Pending>> {
        let path = IdIndex::marker(dir);
        let text = match fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let bad = || Error::damaged(&path, "not a version and bucket lengths", BUCKET_AFFECTS);
        let mut lines = text.lines();
        let version = lines.next().and_then(|l| l.trim().parse::<u64>().ok()).ok_or_else(bad)?;
        let lengths = match lines.next() {
            None => None,
            Some(l) => {
                let lengths =
                    l.split_whitespace().map(|n| n.parse::<u64>()).collect::<std::result::Result<Vec<_>, _>>();
                Some(lengths.ok().filter(|v| v.len() == BUCKETS).ok_or_else(bad)?)
            }
        };
        Ok(Some(Pending { version, lengths }))
    }

    /// The marker's text for an append committing as `version`, its bucket
    /// files `lengths` long before it.
    fn text(version: u64, lengths: &[u64]) -> String {
        let mut s = format!("{version}\n");
        for (i, len) in lengths.iter().enumerate() {
            s.push_str(if i == 0 { "" } else { " " });
            s.push_str(&len.to_string());
        }
        s.push('\n');
        s
    }

    /// Records of bucket `b` at or past this record number are the pending
    /// append's (all of them when the marker does not say).
    pub fn first_record(&self, b: usize) -> u64 {
        self.lengths.as_ref().map_or(u64::MAX, |l| l[b] / RECORD as u64)
    }
}

/// The index of earlier releases: 32-byte records (id hash, content hash,
/// version and check) in `bucket-NNNN.idx`.
mod legacy {
    use super::*;

    pub const RECORD: usize = 32;
    const VERSION_MASK: u64 = (1 << 40) - 1;
    const CHECKED: u64 = 1 << 63;

    pub fn bucket_path(dir: &Path, b: usize) -> PathBuf {
        dir.join(format!("bucket-{b:04}.idx"))
    }

    fn check_bits(id: u128, content: u64, version: u64) -> u64 {
        let mut b = [0u8; 32];
        b[0..16].copy_from_slice(&id.to_le_bytes());
        b[16..24].copy_from_slice(&content.to_le_bytes());
        b[24..32].copy_from_slice(&(version & VERSION_MASK).to_le_bytes());
        CHECKED | ((xxhash_rust::xxh3::xxh3_64(&b) >> 41) << 40)
    }

    #[cfg(test)]
    pub fn encode_record(id: u128, content: u64, version: u64) -> [u8; RECORD] {
        let mut r = [0u8; RECORD];
        r[0..16].copy_from_slice(&id.to_le_bytes());
        r[16..24].copy_from_slice(&content.to_le_bytes());
        r[24..32].copy_from_slice(&((version & VERSION_MASK) | check_bits(id, content, version)).to_le_bytes());
        r
    }

    /// A record's (id hash, content hash, version), or why it is damaged.
    pub fn decode_record(r: &[u8]) -> std::result::Result<(u128, u64, u64), &'static str> {
        let id = u128::from_le_bytes(r[0..16].try_into().unwrap_or_default());
        let content = u64::from_le_bytes(r[16..24].try_into().unwrap_or_default());
        let tail = u64::from_le_bytes(r[24..32].try_into().unwrap_or_default());
        let version = tail & VERSION_MASK;
        let check = tail & !VERSION_MASK;
        // Zero: a record written before records were checked.
        if check != 0 && check != check_bits(id, content, version) {
            return Err("checksum mismatch");
        }
        Ok((id, content, version))
    }

    /// Rewrites each bucket of the earlier format in the current one,
    /// without the records of a `pending` version that never committed,
    /// then removes the old files. A crash leaves the old files to convert
    /// again; a damaged one is left out (its ids are then missing, which
    /// stops appends until `leadline rebuild --index`).
    pub fn convert(dir: &Path, pending: Option<u64>, committed: Option<u64>) -> Result<()> {
        let uncommitted = |v: u64| pending.is_some_and(|p| committed.is_none_or(|c| c < p) && v >= p);
        let mut old = Vec::new();
        for b in 0..BUCKETS {
            let path = bucket_path(dir, b);
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&path, e)),
            };
            let mut records = Vec::with_capacity(bytes.len() / 2);
            // A partial last record is a crashed append's.
            for (i, r) in bytes.chunks_exact(RECORD).enumerate() {
                match decode_record(r) {
                    Ok((id, content, version)) if !uncommitted(version) => {
                        records.extend_from_slice(&super::encode_record(id_key(id), content_key(content)))
                    }
                    Ok(_) => {}
                    Err(problem) => {
                        let e = Error::damaged(&path, format!("record {i}: {problem}"), BUCKET_AFFECTS);
                        tracing::error!("converting the event-id index: {e}");
                        records.clear();
                        break;
                    }
                }
            }
            if !records.is_empty() {
                write_atomic(&IdIndex::bucket_path(dir, b), &records)?;
            }
            old.push(path);
        }
        for path in old {
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
        sync_dir(dir)
    }

    pub fn exists(dir: &Path) -> bool {
        (0..BUCKETS).any(|b| bucket_path(dir, b).exists())
    }
}

impl IdIndex {
    /// Whether the index in `dir` is of an earlier release, which only a
    /// writer converts (readers and `leadline check` leave it alone).
    pub fn of_earlier_release(dir: &Path) -> bool {
        legacy::exists(dir)
    }

    pub fn bucket_path(dir: &Path, b: usize) -> PathBuf {
        dir.join(format!("ids-{b:04}.idx"))
    }

    fn marker(dir: &Path) -> PathBuf {
        dir.join("PENDING")
    }

    /// Undoes the records of an append that wrote its index but never
    /// committed version `> committed`. Run under the writer lock, at open.
    pub fn recover(dir: &Path, committed: Option<u64>) -> Result<()> {
        remove_temp_files(dir);
        let pending = Pending::read(dir)?;
        let legacy = legacy::exists(dir);
        if pending.is_none() && !legacy {
            return Ok(());
        }
        if legacy {
            // The converted buckets are not sorted.
            let sorted = sorted_path(dir);
            if sorted.exists() {
                fs::remove_file(&sorted).map_err(|e| Error::io(&sorted, e))?;
            }
            legacy::convert(dir, pending.as_ref().map(|p| p.version), committed)?;
        } else if let Some(p) = &pending
            && committed.is_none_or(|c| c < p.version)
            && let Some(lengths) = &p.lengths
        {
            for (b, &len) in lengths.iter().enumerate() {
                let path = Self::bucket_path(dir, b);
                let now = match fs::metadata(&path) {
                    Ok(m) => m.len(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(&path, e)),
                };
                if now > len {
                    let f = OpenOptions::new().write(true).open(&path).map_err(|e| Error::io(&path, e))?;
                    f.set_len(len).and_then(|()| f.sync_all()).map_err(|e| Error::io(&path, e))?;
                }
                // Shorter than before the append: damage, which appends find
                // (the count) and `leadline check` names.
            }
        }
        if pending.is_some() {
            let marker = Self::marker(dir);
            fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
        }
        sync_dir(dir)
    }

    /// Checks, with a `stat` of each bucket file (what opening a writer can
    /// afford), that each holds whole records and that together they hold
    /// one for each of the `events` the log stores: each new event gets
    /// one record, nothing else does, and compaction keeps the count. So a
    /// bucket cut at a record's end is found too (`leadline check` then
    /// names it). Records themselves are checked as buckets load.
    /// Returns the lengths it read (for [`IdIndex::begin`]); none for an
    /// index of an earlier release.
    pub fn verify_lengths(dir: &Path, events: u64) -> Result<Option<Vec<u64>>> {
        if Self::of_earlier_release(dir) {
            tracing::info!(dir = %dir.display(), "the event-id index is of an earlier release: the next writer converts it");
            return Ok(None);
        }
        let lengths = Self::bucket_lengths(dir)?;
        let mut records = 0;
        for (b, &len) in lengths.iter().enumerate() {
            records += whole_records(&Self::bucket_path(dir, b), len)?;
        }
        // Records of an append in progress (or of one that died, cut by
        // the next writer) are not in the log's count yet.
        if records != events && !Self::marker(dir).exists() {
            let problem = format!(
                "its buckets hold {records} records for the {events} events the log stores (`leadline check` \
                 names the buckets that differ)"
            );
            let affects = "the event-id index: appends cannot tell new events from redeliveries, so nothing is \
                appended until it is rebuilt from the log (`leadline rebuild --index`) or restored from a backup";
            return Err(Error::damaged(dir, problem, affects));
        }
        Ok(Some(lengths))
    }

    /// Replaces the index in `dir` by one of `ids` (id hash, content hash),
    /// the log's events. Each bucket file is replaced atomically, so a crash
    /// leaves every bucket either as it was or rebuilt.
    pub fn rebuild(dir: &Path, mut ids: Vec<(u128, u64)>) -> Result<()> {
        create_dir_durable(dir)?;
        ids.sort_unstable_by_key(|&(id, _)| (bucket_of(id), id));
        ids.dedup_by_key(|&mut (id, _)| id);
        let mut by_bucket: Vec<Vec<u8>> = vec![Vec::new(); BUCKETS];
        for (id, content) in ids {
            by_bucket[bucket_of(id)].extend_from_slice(&encode_record(id_key(id), content_key(content)));
        }
        for (b, records) in by_bucket.iter().enumerate() {
            let path = Self::bucket_path(dir, b);
            if !records.is_empty() {
                write_atomic(&path, records)?;
            } else if path.exists() {
                fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
            let old = legacy::bucket_path(dir, b);
            if old.exists() {
                fs::remove_file(&old).map_err(|e| Error::io(&old, e))?;
            }
        }
        sync_dir(dir)?;
        // Each bucket is written sorted by key (that is, by id hash).
        write_sorted_heads(dir, &by_bucket.iter().map(|r| (r.len() / RECORD) as u64).collect::<Vec<_>>())
    }

    /// Each bucket file's length (0 for one not there).
    fn bucket_lengths(dir: &Path) -> Result<Vec<u64>> {
        let mut lengths = vec![0u64; BUCKETS];
        for (b, path) in bucket_files(dir) {
            lengths[b] = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
        }
        Ok(lengths)
    }

    /// Starts an append that will commit as table `version`. `lengths`:
    /// the bucket files' lengths as the last append of this writer left
    /// them (see [`IdIndex::finish`]) or as [`IdIndex::verify_lengths`]
    /// read them, or `None` to `stat` them.
    pub fn begin(dir: &Path, version: u64, lengths: Option<Vec<u64>>) -> Result<Self> {
        create_dir_durable(dir)?;
        let lengths = match lengths.filter(|l| l.len() == BUCKETS) {
            Some(lengths) => lengths,
            None => Self::bucket_lengths(dir)?,
        };
        write_atomic(&Self::marker(dir), Pending::text(version, &lengths).as_bytes())?;
        let sorted = match sorted_heads(dir) {
            Ok(sorted) => sorted,
            Err(e) => {
                tracing::warn!(error = %e, "the index's sorted heads are not known: its lookups read whole buckets until they are sorted again");
                vec![0; BUCKETS]
            }
        };
        // A head is never longer than its file (`SORTED` may be older than a rebuild).
        let sorted = sorted.iter().zip(&lengths).map(|(&s, &len)| s.min(len / RECORD as u64)).collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            loaded: vec![false; BUCKETS],
            read_by_lookups: vec![0; BUCKETS],
            cached: 0,
            unwritten: vec![Vec::new(); BUCKETS],
            unwritten_count: 0,
            dirty: vec![false; BUCKETS],
            lengths,
            sorted,
        })
    }

    /// Reads bucket `b`'s file: its records, then this append's records
    /// not written out yet.
    fn read_bucket(&self, b: usize) -> Result<Vec<u8>> {
        let path = Self::bucket_path(&self.dir, b);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(|e| Error::io(&path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
        verify_bucket(&path, &bytes)?;
        bytes.extend_from_slice(&self.unwritten[b]);
        Ok(bytes)
    }

    fn load(&mut self, b: usize) -> Result<()> {
        if self.loaded[b] {
            return Ok(());
        }
        let bytes = self.read_bucket(b)?;
        let mut by_shard: Vec<Vec<(u32, u64)>> = vec![Vec::new(); SHARDS_PER_BUCKET];
        for r in bytes.chunks_exact(RECORD) {
            let (key, content) = record(r);
            by_shard[shard_of(key) % SHARDS_PER_BUCKET].push((key_in_shard(key), content));
        }
        for (i, mut entries) in by_shard.into_iter().enumerate() {
            entries.sort_unstable();
            entries.dedup();
            let shard = &mut self.shards[b * SHARDS_PER_BUCKET + i];
            shard.keys = entries.iter().map(|&(k, _)| k).collect();
            shard.contents = entries.iter().map(|&(_, c)| c).collect();
            self.cached += entries.len();
        }
        self.loaded[b] = true;
        Ok(())
    }

    /// What bucket `b`'s records (written and unwritten) say of id `key`
    /// with `content`: a duplicate, a conflict, or nothing. Reads a window
    /// of the bucket's sorted head and its tail, and counts what it read.
    fn find_in_bucket(&mut self, b: usize, key: u64, content: u64) -> Result<Option<Seen>> {
        let verdict = |c: u64| if c == content { Seen::Duplicate } else { Seen::Conflict };
        let path = Self::bucket_path(&self.dir, b);
        let records = whole_records(&path, self.lengths[b])?;
        if records > 0 {
            let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
            let head = self.sorted[b];
            if let Some(c) = search_head(&path, &f, head, key, &mut self.read_by_lookups[b])? {
                return Ok(Some(verdict(c)));
            }
            let tail = read_records(&path, &f, head, records)?;
            self.read_by_lookups[b] += tail.len() as u64;
            if let Some((_, c)) = tail.chunks_exact(RECORD).map(record).find(|&(k, _)| k == key) {
                return Ok(Some(verdict(c)));
            }
        }
        let mut unwritten = self.unwritten[b].chunks_exact(RECORD).map(record);
        Ok(unwritten.find(|&(k, _)| k == key).map(|(_, c)| verdict(c)))
    }

    /// Records `id` with `content` unless it is known: the verdict for one row.
    pub fn check_and_insert(&mut self, id: u128, content: u64) -> Result<Seen> {
        let (key, content) = (id_key(id), content_key(content));
        let b = bucket_of_key(key);
        if !self.loaded[b] && self.read_by_lookups[b] < self.lengths[b] {
            if let Some(seen) = self.find_in_bucket(b, key, content)? {
                return Ok(seen);
            }
        } else {
            self.load(b)?;
            let (s, k) = (shard_of(key), key_in_shard(key));
            match self.shards[s].probe(k, content) {
                Probe::SameContent => return Ok(Seen::Duplicate),
                Probe::KeyOnly => {
                    if let Some(seen) = self.find_in_bucket(b, key, content)? {
                        return Ok(seen);
                    }
                }
                Probe::Absent => {}
            }
            self.shards[s].insert(k, content);
            self.cached += 1;
        }
        // A bucket loaded later reads this record with the rest.
        self.unwritten[b].extend_from_slice(&encode_record(key, content));
        self.unwritten_count += 1;
        if self.unwritten_count >= PENDING_BUDGET {
            self.write_unwritten()?;
        }
        Ok(Seen::New)
    }

    fn write_unwritten(&mut self) -> Result<()> {
        for b in 0..BUCKETS {
            if self.unwritten[b].is_empty() {
                continue;
            }
            let path = Self::bucket_path(&self.dir, b);
            let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io(&path, e))?;
            f.write_all(&self.unwritten[b]).map_err(|e| Error::io(&path, e))?;
            self.lengths[b] += self.unwritten[b].len() as u64;
            self.unwritten[b].clear();
            self.dirty[b] = true;
        }
        self.unwritten_count = 0;
        Ok(())
    }

    /// Makes every record of this append durable. Call before the commit.
    pub fn flush(&mut self) -> Result<()> {
        self.write_unwritten()?;
        let mut dirty: Vec<PathBuf> =
            (0..BUCKETS).filter(|&b| self.dirty[b]).map(|b| Self::bucket_path(&self.dir, b)).collect();
        // With the directory: the buckets created here.
        dirty.push(self.dir.clone());
        sync_files(&dirty)
    }

    /// After the commit: the records are now valid, the marker goes.
    /// Returns the bucket files' lengths, for the writer's next append
    /// (which so need not `stat` 1,024 files: they change only by appends,
    /// and the writer holds the data directory's lock).
    pub fn finish(self) -> Result<Vec<u64>> {
        let marker = Self::marker(&self.dir);
        fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
        sync_dir(&self.dir)?;
        // The append is committed: what follows only speeds lookups up.
        if let Err(e) = self.sort_tails() {
            tracing::warn!(error = %e, "sorting the index's grown buckets failed; a later append sorts them");
        }
        Ok(self.lengths)
    }

    /// Rewrites sorted each bucket this append wrote to whose tail has
    /// outgrown [`MIN_TAIL`] and its share of the head, then `SORTED`.
    /// Every record is committed by now, so no head ever holds one that
    /// [`IdIndex::recover`] would cut.
    fn sort_tails(&self) -> Result<()> {
        let grown: Vec<usize> = (0..BUCKETS)
            .filter(|&b| {
                let tail = self.lengths[b] / RECORD as u64 - self.sorted[b];
                self.dirty[b] && tail > MIN_TAIL.max(self.sorted[b] / TAIL_SHARE)
            })
            .collect();
        if grown.is_empty() {
            return Ok(());
        }
        let mut written = Vec::with_capacity(grown.len());
        for &b in &grown {
            let path = Self::bucket_path(&self.dir, b);
            let mut bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
            verify_bucket(&path, &bytes)?;
            let records: &mut [[u8; RECORD]] = bytes.as_chunks_mut().0;
            records.sort_unstable_by_key(|r| record(r).0);
            let tmp = self.dir.join(format!(".{b:04}.tmp"));
            fs::write(&tmp, &bytes).map_err(|e| Error::io(&tmp, e))?;
            written.push((tmp, path));
        }
        let tmps: Vec<PathBuf> = written.iter().map(|(tmp, _)| tmp.clone()).collect();
        sync_files(&tmps)?;
        for (tmp, path) in &written {
            fs::rename(tmp, path).map_err(|e| Error::io(path, e))?;
        }
        // The sorted files are in place before `SORTED` says so.
        sync_dir(&self.dir)?;
        let mut sorted = self.sorted.clone();
        for &b in &grown {
            sorted[b] = self.lengths[b] / RECORD as u64;
        }
        write_sorted_heads(&self.dir, &sorted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_survive_reopen_and_uncommitted_records_are_undone() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("index");
        let mut ix = IdIndex::begin(&d, 1, None).unwrap();
        assert_eq!(ix.check_and_insert(7, 1).unwrap(), Seen::New);
        assert_eq!(ix.check_and_insert(7, 1).unwrap(), Seen::Duplicate);
        assert_eq!(ix.check_and_insert(7, 2).unwrap(), Seen::Conflict);
        ix.flush().unwrap();
        ix.finish().unwrap();
        IdIndex::recover(&d, Some(1)).unwrap();

        // Version 2 writes its records, then "crashes" before committing.
        let mut ix = IdIndex::begin(&d, 2, None).unwrap();
        assert_eq!(ix.check_and_insert(7, 1).unwrap(), Seen::Duplicate);
        assert_eq!(ix.check_and_insert(u128::MAX - 3, 9).unwrap(), Seen::New);
        ix.flush().unwrap();
        drop(ix);
        IdIndex::recover(&d, Some(1)).unwrap();
        let mut ix = IdIndex::begin(&d, 2, None).unwrap();
        assert_eq!(ix.check_and_insert(u128::MAX - 3, 10).unwrap(), Seen::New, "record of the lost version was undone");
        assert_eq!(ix.check_and_insert(7, 3).unwrap(), Seen::Conflict);
    }

    #[test]
    fn many_ids_across_merges_and_appends_keep_their_verdicts() {
        let dir = tempfile::tempdir().unwrap();
        let id = |i: u128| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        let n = 20_000u128;
        let mut ix = IdIndex::begin(dir.path(), 1, None).unwrap();
        for i in 0..n {
            assert_eq!(ix.check_and_insert(id(i), i as u64).unwrap(), Seen::New);
        }
        for i in 0..n {
            assert_eq!(ix.check_and_insert(id(i), i as u64).unwrap(), Seen::Duplicate, "id {i} forgotten");
        }
        assert_eq!(ix.check_and_insert(id(3), 99).unwrap(), Seen::Conflict);
        assert_eq!(ix.cached, n as usize);
        ix.flush().unwrap();
        // The lengths the writer keeps for its next append are the files'.
        let lengths = ix.finish().unwrap();
        let mut stated = vec![0u64; BUCKETS];
        bucket_files(dir.path()).into_iter().for_each(|(b, p)| stated[b] = fs::metadata(p).unwrap().len());
        assert_eq!(lengths, stated);
        assert_eq!(lengths.iter().sum::<u64>(), n as u64 * RECORD as u64);
        // The next append loads the buckets from their files.
        let mut ix = IdIndex::begin(dir.path(), 2, Some(lengths.clone())).unwrap();
        assert_eq!(Pending::read(dir.path()).unwrap().unwrap().lengths, Some(lengths), "the marker holds them");
        for i in (0..n).step_by(7) {
            assert_eq!(ix.check_and_insert(id(i), i as u64).unwrap(), Seen::Duplicate, "id {i} not loaded");
            assert_eq!(ix.check_and_insert(id(i), i as u64 + 1).unwrap(), Seen::Conflict);
        }
        assert_eq!(ix.check_and_insert(id(n), 1).unwrap(), Seen::New);
    }

    /// Id `i` of those hashed to bucket `b`.
    fn in_bucket(b: usize, i: u128) -> u128 {
        ((b as u128) << 118) | (i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) >> 10)
    }

    /// `n` ids of bucket `b` from `from`, content = their number, committed as `version`.
    fn commit_ids(d: &Path, version: u64, b: usize, ids: std::ops::Range<u128>) {
        let mut ix = IdIndex::begin(d, version, None).unwrap();
        for i in ids {
            assert_eq!(ix.check_and_insert(in_bucket(b, i), i as u64).unwrap(), Seen::New);
        }
        ix.flush().unwrap();
        ix.finish().unwrap();
    }

    #[test]
    fn a_few_ids_of_a_bucket_are_looked_up_in_its_file_and_more_load_it() {
        let dir = tempfile::tempdir().unwrap();
        let b = 5;
        commit_ids(dir.path(), 1, b, 0..5_000);
        assert_eq!(sorted_heads(dir.path()).unwrap()[b], 5_000, "the grown tail was sorted");
        let mut ix = IdIndex::begin(dir.path(), 2, None).unwrap();
        let size = ix.lengths[b];
        // Lookups in the file: a redelivery, a conflict, a new id, and that
        // id again (found among this append's unwritten records).
        assert_eq!(ix.check_and_insert(in_bucket(b, 17), 17).unwrap(), Seen::Duplicate);
        assert_eq!(ix.check_and_insert(in_bucket(b, 4_000), 1).unwrap(), Seen::Conflict);
        assert_eq!(ix.check_and_insert(in_bucket(b, 5_000), 1).unwrap(), Seen::New);
        assert_eq!(ix.check_and_insert(in_bucket(b, 5_000), 1).unwrap(), Seen::Duplicate);
        assert!(!ix.loaded[b] && ix.cached == 0, "looked up, not loaded");
        assert!(
            ix.read_by_lookups[b] <= 4 * 2 * sorted::WINDOW * RECORD as u64,
            "{} bytes read",
            ix.read_by_lookups[b]
        );
        // Once its lookups have read as much as it holds, the bucket loads,
        // this append's new record with it.
        let mut i = 0;
        while !ix.loaded[b] {
            assert!(ix.read_by_lookups[b] < size + 2 * sorted::WINDOW * RECORD as u64);
            assert_eq!(ix.check_and_insert(in_bucket(b, i), i as u64).unwrap(), Seen::Duplicate);
            i += 1;
        }
        assert!(i >= 4, "loaded after {i} more lookups");
        assert_eq!(ix.check_and_insert(in_bucket(b, 5_000), 2).unwrap(), Seen::Conflict);
        assert_eq!(ix.check_and_insert(in_bucket(b, 4_999), 4_999).unwrap(), Seen::Duplicate);
        assert_eq!(ix.check_and_insert(in_bucket(b, 5_001), 1).unwrap(), Seen::New);
        assert_eq!(ix.check_and_insert(in_bucket(b, 5_001), 1).unwrap(), Seen::Duplicate);
        ix.flush().unwrap();
        ix.finish().unwrap();
        // Two records are no tail to sort: they stay after the head.
        assert_eq!(sorted_heads(dir.path()).unwrap()[b], 5_000);
        let mut ix = IdIndex::begin(dir.path(), 3, None).unwrap();
        assert_eq!(ix.check_and_insert(in_bucket(b, 5_000), 1).unwrap(), Seen::Duplicate);
        assert_eq!(ix.check_and_insert(in_bucket(b, 5_001), 3).unwrap(), Seen::Conflict);
        assert_eq!(ix.check_and_insert(in_bucket(b, 5_002), 1).unwrap(), Seen::New);
    }

    #[test]
    fn lookups_in_a_sorted_head_find_every_id_and_a_stale_sorted_file_only_costs_reads() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (b, n) = (700, 20_000u128);
        commit_ids(d, 1, b, 0..n);
        // A tail past its share of the head is sorted in; a smaller one stays.
        commit_ids(d, 2, b, n..n + 2_400);
        assert_eq!(sorted_heads(d).unwrap()[b], n as u64, "2,400 records are not an eighth of the head");
        commit_ids(d, 3, b, n + 2_400..n + 2_600);
        assert_eq!(sorted_heads(d).unwrap()[b], n as u64 + 2_600, "2,600 are: sorted in");
        commit_ids(d, 4, b, n + 2_600..n + 2_700);
        assert_eq!(sorted_heads(d).unwrap()[b], n as u64 + 2_600, "100 records stay unsorted");
        let all = n + 2_700;
        let bytes = fs::read(IdIndex::bucket_path(d, b)).unwrap();
        let keys: Vec<u64> = bytes.chunks_exact(RECORD).map(|r| record(r).0).collect();
        assert!(keys[..(n + 2_600) as usize].is_sorted());
        // Every id, by lookups alone (a fresh index per probe keeps the bucket unloaded).
        let verdicts = |expect_sorted: bool| {
            for i in (0..all).step_by(97).chain([0, n - 1, n, all - 1]) {
                let mut ix = IdIndex::begin(d, 5, None).unwrap();
                assert_eq!(ix.check_and_insert(in_bucket(b, i), i as u64).unwrap(), Seen::Duplicate, "id {i}");
                assert_eq!(ix.check_and_insert(in_bucket(b, i), i as u64 + 1).unwrap(), Seen::Conflict, "id {i}");
                assert_eq!(ix.check_and_insert(in_bucket(b, all + i), 0).unwrap(), Seen::New, "id {}", all + i);
                if expect_sorted {
                    assert!(!ix.loaded[b]);
                    // Three lookups: windows of the head and the 100-record tail each.
                    let most = 3 * (3 * sorted::WINDOW + 100) * RECORD as u64;
                    assert!(ix.read_by_lookups[b] <= most, "id {i}: {} bytes read", ix.read_by_lookups[b]);
                }
                drop(ix);
                IdIndex::recover(d, Some(4)).unwrap();
            }
        };
        verdicts(true);
        // `SORTED` damaged, or older than the buckets (a crash before it
        // was written), or lost: still every verdict.
        for stale in ["", "0"] {
            let heads = if stale.is_empty() { vec![] } else { vec![stale; BUCKETS] };
            fs::write(sorted_path(d), heads.join(" ")).unwrap();
            verdicts(false);
        }
        fs::remove_file(sorted_path(d)).unwrap();
        verdicts(false);
        // A head out of order where `SORTED` says it is sorted: named, not misread.
        let mut records: Vec<[u8; RECORD]> = bytes.chunks_exact(RECORD).map(|r| r.try_into().unwrap()).collect();
        records.swap(100, 9_000);
        fs::write(IdIndex::bucket_path(d, b), records.concat()).unwrap();
        write_sorted_heads(d, &vec![(n + 2_600) as u64; BUCKETS]).unwrap();
        let problems: Vec<String> = (0..n)
            .step_by(50)
            .filter_map(|i| {
                let mut ix = IdIndex::begin(d, 5, None).unwrap();
                match ix.check_and_insert(in_bucket(b, i), i as u64) {
                    Ok(Seen::Duplicate) => None,
                    Err(Error::Damaged { problem, .. }) => Some(problem),
                    other => panic!("id {i}: {other:?}"),
                }
            })
            .collect();
        assert!(!problems.is_empty() && problems.iter().all(|p| p.contains("not sorted")), "{problems:?}");
    }

    #[test]
    fn ids_that_share_a_key_are_told_apart_by_the_bucket_file() {
        let dir = tempfile::tempdir().unwrap();
        // Same shard (top bits) and key (low 32 bits of the id key), different in between.
        let id = |middle: u128| (0xabcd_u128 << 112) | (middle << 96) | (0x1234_5678 << 64);
        let (a, b, c) = (id(1), id(2), id(3));
        let loaded = |id| (shard_of(id_key(id)), key_in_shard(id_key(id)));
        assert_eq!(loaded(a), loaded(b));
        let mut ix = IdIndex::begin(dir.path(), 1, None).unwrap();
        assert_eq!(ix.check_and_insert(a, 10).unwrap(), Seen::New);
        assert_eq!(ix.check_and_insert(b, 20).unwrap(), Seen::New, "b is another id, not a conflict with a");
        assert_eq!(ix.check_and_insert(a, 10).unwrap(), Seen::Duplicate);
        assert_eq!(ix.check_and_insert(b, 20).unwrap(), Seen::Duplicate);
        assert_eq!(ix.check_and_insert(a, 11).unwrap(), Seen::Conflict);
        assert_eq!(ix.check_and_insert(b, 12).unwrap(), Seen::Conflict);
        // (b, 10) would be taken for a duplicate: the hashes cannot tell it
        // from (a, 10). Real content hashes cover the event id, so two ids
        // sharing 48 id-hash bits *and* a content hash is a ~2^-96 event.
        ix.write_unwritten().unwrap(); // the check reads written and unwritten records alike
        assert_eq!(ix.check_and_insert(c, 30).unwrap(), Seen::New);
        assert_eq!(ix.check_and_insert(c, 31).unwrap(), Seen::Conflict);
    }

    #[test]
    fn a_damaged_bucket_is_named_when_it_loads() {
        let dir = tempfile::tempdir().unwrap();
        let id = 0x1234_5678_9abc_def0_u128 << 64;
        let other = id + (1 << 64);
        let mut ix = IdIndex::begin(dir.path(), 1, None).unwrap();
        assert_eq!(ix.check_and_insert(id, 1).unwrap(), Seen::New);
        assert_eq!(ix.check_and_insert(other, 2).unwrap(), Seen::New);
        ix.flush().unwrap();
        ix.finish().unwrap();
        let path = IdIndex::bucket_path(dir.path(), bucket_of(id));
        let good = fs::read(&path).unwrap();
        assert_eq!(good.len(), 2 * RECORD);
        let damage = |bytes: &[u8]| {
            fs::write(&path, bytes).unwrap();
            let mut ix = IdIndex::begin(dir.path(), 2, None).unwrap();
            match ix.check_and_insert(id, 1) {
                Err(Error::Damaged { path: p, problem, affects }) => {
                    assert_eq!(p, path);
                    assert!(affects.contains("event-id index"), "{affects}");
                    problem
                }
                other => panic!("damage not found: {other:?}"),
            }
        };
        // Every bit of every record, flipped, is found.
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bytes = good.clone();
                bytes[i] ^= 1 << bit;
                let problem = damage(&bytes);
                assert!(problem.contains("checksum mismatch"), "byte {i} bit {bit}: {problem}");
            }
        }
        assert!(damage(&good[..RECORD + 5]).contains("not a whole number"));
        assert!(matches!(IdIndex::verify_lengths(dir.path(), 2), Err(Error::Damaged { .. })));
        // Cut at a record's end: the count tells (once no append is under way).
        fs::write(&path, &good[..RECORD]).unwrap();
        assert!(IdIndex::verify_lengths(dir.path(), 2).is_ok(), "an append under way has records of its own");
        fs::remove_file(IdIndex::marker(dir.path())).unwrap();
        match IdIndex::verify_lengths(dir.path(), 2) {
            Err(Error::Damaged { problem, .. }) => assert!(problem.contains("1 records for the 2 events"), "{problem}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_index_of_earlier_releases_is_converted_without_uncommitted_records() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let id = |i: u128| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        let mut by_bucket: Vec<Vec<u8>> = vec![Vec::new(); BUCKETS];
        // Ids 0..100 committed by versions 0 and 1; 100..110 by a version 2 that never committed.
        for i in 0..110u128 {
            let version = if i < 50 {
                0
            } else if i < 100 {
                1
            } else {
                2
            };
            by_bucket[bucket_of(id(i))].extend_from_slice(&legacy::encode_record(id(i), i as u64, version));
        }
        for (b, bytes) in by_bucket.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
            fs::write(legacy::bucket_path(d, b), bytes).unwrap();
        }
        fs::write(IdIndex::marker(d), "2").unwrap();
        // A reader leaves it alone and does not call it damaged.
        assert!(IdIndex::of_earlier_release(d));
        IdIndex::verify_lengths(d, 100).unwrap();
        IdIndex::recover(d, Some(1)).unwrap();
        assert!(!legacy::exists(d) && !IdIndex::marker(d).exists() && !IdIndex::of_earlier_release(d));
        IdIndex::verify_lengths(d, 100).unwrap();
        let mut ix = IdIndex::begin(d, 2, None).unwrap();
        for i in 0..100u128 {
            assert_eq!(ix.check_and_insert(id(i), i as u64).unwrap(), Seen::Duplicate, "id {i}");
        }
        assert_eq!(ix.check_and_insert(id(5), 6).unwrap(), Seen::Conflict);
        assert_eq!(ix.check_and_insert(id(105), 1).unwrap(), Seen::New, "the uncommitted record was dropped");
    }

    #[test]
    fn records_past_the_lengths_of_an_uncommitted_append_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut ix = IdIndex::begin(d, 0, None).unwrap();
        let id = |i: u128| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        for i in 0..1000u128 {
            assert_eq!(ix.check_and_insert(id(i), i as u64).unwrap(), Seen::New);
        }
        ix.flush().unwrap();
        ix.finish().unwrap();
        let mut ix = IdIndex::begin(d, 1, None).unwrap();
        for i in 1000..3000u128 {
            assert_eq!(ix.check_and_insert(id(i), i as u64).unwrap(), Seen::New);
        }
        ix.flush().unwrap();
        drop(ix);
        let pending = Pending::read(d).unwrap().unwrap();
        assert_eq!(pending.version, 1);
        assert_eq!(pending.lengths.as_ref().unwrap().iter().sum::<u64>(), 1000 * RECORD as u64);
        IdIndex::recover(d, Some(0)).unwrap();
        IdIndex::verify_lengths(d, 1000).unwrap();
        // A marker of a version that did commit cuts nothing.
        let mut ix = IdIndex::begin(d, 1, None).unwrap();
        assert_eq!(ix.check_and_insert(id(5000), 1).unwrap(), Seen::New);
        ix.flush().unwrap();
        drop(ix);
        IdIndex::recover(d, Some(1)).unwrap();
        IdIndex::verify_lengths(d, 1001).unwrap();
    }

    #[test]
    fn merging_keeps_every_entry_sorted() {
        let mut s = Shard::default();
        let keys: Vec<u32> = (0..1000u32).map(|i| i.wrapping_mul(2_654_435_761) % 5000).collect();
        for (i, &k) in keys.iter().enumerate() {
            s.insert(k, i as u64);
        }
        assert!(s.keys.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(s.keys.len() + s.fresh_keys.len(), 1000);
        for (i, &k) in keys.iter().enumerate() {
            assert!(matches!(s.probe(k, i as u64), Probe::SameContent), "key {k}");
        }
        assert!(matches!(s.probe(5001, 0), Probe::Absent));
    }
}
