//! What a long-lived writer (the server's) remembers between updates so
//! that the next one does not redo it: the rows each table file it wrote
//! holds, as a hash ([`rows_hash`]), and the events of the input segments
//! it wrote or read. Under single-row inserts, each update refolds one
//! epoch per inserting service and almost all of those epochs' rows are
//! unchanged (a commit that no deployment ships yet changes none): without
//! this, every update decoded all those segments again and encoded every
//! table's rows only to find the bytes the same.
//!
//! Files are never changed once written (each has a name of its own), so
//! an entry is right for as long as its file exists; an update forgets the
//! files it lets go, and the segments' events are kept within
//! [`SEGMENT_EVENTS`].

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayData, RecordBatch};
use xxhash_rust::xxh3::Xxh3;

use crate::log::Stamped;

/// Most segment events remembered (a few hundred bytes each: about 50 MB).
const SEGMENT_EVENTS: usize = 100_000;

#[derive(Debug, Default)]
pub(super) struct Memo {
    /// By table file (`tables/<table>/<id>.parquet`): [`rows_hash`] of its rows.
    rows: HashMap<String, u64>,
    /// By segment (its name under `model/`): its events, as a fold reads
    /// them back, and the update that last used them.
    segments: HashMap<String, (Arc<Stamped>, u64)>,
    /// The events in `segments`.
    events: usize,
    /// Updates so far.
    update: u64,
}

impl Memo {
    /// The hash of the rows of table file `file`, when this writer knows it.
    pub fn rows(&self, file: &str) -> Option<u64> {
        self.rows.get(file).copied()
    }

    /// The events of segment `seg`, when remembered.
    pub fn segment(&self, seg: &str) -> Option<&Arc<Stamped>> {
        self.segments.get(seg).map(|(events, _)| events)
    }

    /// Whether segments' events are worth remembering: from a writer's
    /// second update on (a `leadline ingest` or `rebuild` updates once, and
    /// would only hold a copy of what it folds).
    pub fn remembers_segments(&self) -> bool {
        self.update > 0
    }

    /// Adds what a fold learnt.
    pub fn learn(&mut self, learnt: Learnt) {
        self.rows.extend(learnt.rows);
        let update = self.update;
        for (seg, events) in learnt.segments {
            self.events += events.events.len();
            if let Some((old, _)) = self.segments.insert(seg, (events, update)) {
                self.events -= old.events.len();
            }
        }
        for seg in learnt.used {
            if let Some((_, used)) = self.segments.get_mut(&seg) {
                *used = update;
            }
        }
    }

    /// Forgets `files`, which the model no longer names.
    pub fn forget<'a>(&mut self, files: impl IntoIterator<Item = &'a String>) {
        for file in files {
            self.rows.remove(file);
            if let Some((old, _)) = self.segments.remove(file) {
                self.events -= old.events.len();
            }
        }
    }

    /// Ends an update: past [`SEGMENT_EVENTS`], forgets the segments used
    /// longest ago.
    pub fn end_update(&mut self) {
        if self.events > SEGMENT_EVENTS {
            let mut by_age: Vec<(u64, String)> =
                self.segments.iter().map(|(seg, (_, used))| (*used, seg.clone())).collect();
            by_age.sort_unstable();
            for (_, seg) in by_age {
                if self.events <= SEGMENT_EVENTS {
                    break;
                }
                self.forget([&seg]);
            }
        }
        self.update += 1;
    }
}

/// What one fold adds to the [`Memo`] (folds run in parallel and only
/// read it).
#[derive(Debug, Default)]
pub(super) struct Learnt {
    /// Table files' rows hashes.
    pub rows: Vec<(String, u64)>,
    /// Segments' events, read or written.
    pub segments: Vec<(String, Arc<Stamped>)>,
    /// Remembered segments read again.
    pub used: Vec<String>,
}

/// A hash of `batches`' rows as their arrays lay them out in memory. Rows
/// built by the same code from the same events lay out the same; equal rows
/// laid out otherwise (a slice, a different null value) only hash apart,
/// which costs an encoding, never a wrong file.
pub(super) fn rows_hash(batches: &[RecordBatch]) -> u64 {
    let mut h = Xxh3::new();
    for batch in batches {
        h.update(&(batch.num_columns() as u64).to_le_bytes());
        for column in batch.columns() {
            hash_data(&column.to_data(), &mut h);
        }
    }
    h.digest()
}

fn hash_data(data: &ArrayData, h: &mut Xxh3) {
    for n in [data.len(), data.offset(), data.buffers().len(), data.child_data().len()] {
        h.update(&(n as u64).to_le_bytes());
    }
    match data.nulls() {
        Some(nulls) => {
            h.update(&[1]);
            h.update(&(nulls.offset() as u64).to_le_bytes());
            h.update(nulls.validity());
        }
        None => h.update(&[0]),
    }
    for buffer in data.buffers() {
        h.update(&(buffer.len() as u64).to_le_bytes());
        h.update(buffer.as_slice());
    }
    for child in data.child_data() {
        hash_data(child, h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, ListArray, StringArray};
    use arrow::datatypes::Int64Type;

    fn batch(names: &[Option<&str>], lists: Vec<Option<Vec<Option<i64>>>>) -> RecordBatch {
        let names: Arc<dyn Array> = Arc::new(StringArray::from(names.to_vec()));
        let lists: Arc<dyn Array> = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(lists));
        RecordBatch::try_from_iter([("name", names), ("list", lists)]).unwrap()
    }

    #[test]
    fn equal_rows_hash_alike_and_any_change_hashes_apart() {
        let a = batch(&[Some("a"), None, Some("bc")], vec![Some(vec![Some(1)]), None, Some(vec![])]);
        let same = batch(&[Some("a"), None, Some("bc")], vec![Some(vec![Some(1)]), None, Some(vec![])]);
        assert_eq!(rows_hash(std::slice::from_ref(&a)), rows_hash(&[same]));
        let changed = [
            batch(&[Some("a"), None, Some("bd")], vec![Some(vec![Some(1)]), None, Some(vec![])]),
            batch(&[Some("ab"), None, Some("c")], vec![Some(vec![Some(1)]), None, Some(vec![])]),
            batch(&[Some("a"), Some(""), Some("bc")], vec![Some(vec![Some(1)]), None, Some(vec![])]),
            batch(&[Some("a"), None, Some("bc")], vec![Some(vec![Some(2)]), None, Some(vec![])]),
            batch(&[Some("a"), None, Some("bc")], vec![Some(vec![Some(1)]), Some(vec![]), Some(vec![])]),
            batch(&[Some("a"), None, Some("bc")], vec![Some(vec![Some(1)]), None, Some(vec![None])]),
        ];
        for other in changed {
            assert_ne!(rows_hash(std::slice::from_ref(&a)), rows_hash(&[other]));
        }
        // Rows split across batches differently are not the same batches.
        let one = Int64Array::from(vec![1, 2]);
        let split = RecordBatch::try_from_iter([("n", Arc::new(one) as Arc<dyn Array>)]).unwrap();
        assert_ne!(rows_hash(&[split.slice(0, 1), split.slice(1, 1)]), rows_hash(&[split]));
    }

    #[test]
    fn files_no_longer_named_are_forgotten_and_segments_kept_within_the_budget() {
        let event = crate::project::tests::ev("e", "commit", 0);
        let events = |n: usize| Arc::new(Stamped { events: vec![event.clone(); n], ingested_at: vec![0; n] });
        let mut memo = Memo::default();
        memo.learn(Learnt {
            rows: vec![("tables/changes/a.parquet".into(), 1), ("tables/changes/b.parquet".into(), 2)],
            segments: vec![("input/old".into(), events(SEGMENT_EVENTS))],
            used: vec![],
        });
        memo.forget(&["tables/changes/b.parquet".to_string()]);
        memo.end_update();
        assert_eq!(memo.rows("tables/changes/a.parquet"), Some(1));
        assert_eq!(memo.rows("tables/changes/b.parquet"), None);
        assert!(memo.segment("input/old").is_some());
        assert!(memo.remembers_segments(), "from a writer's second update on");
        memo.learn(Learnt { rows: vec![], segments: vec![("input/new".into(), events(10))], used: vec![] });
        memo.end_update();
        assert!(memo.segment("input/old").is_none(), "the least recently used goes first");
        assert!(memo.segment("input/new").is_some());
    }
}
