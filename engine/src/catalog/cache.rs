//! Projections folded in memory (for `leadline.as_of`, a window other than
//! the read model's, or a read model that is behind), kept for the next
//! query: bounded in bytes and reserved in the catalog's memory pool, so the
//! memory limit sees them. The least recently used entry goes first.

use std::sync::{Arc, Mutex};

use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};

use crate::error::{Error, Result};
use crate::log::{Snapshot, load_events};
use crate::readmodel::{Part, ReadModel, Refolded};

/// (log version, as_of, attribution window, the part asked for).
type Key = (Option<u64>, Option<i64>, Option<i64>, Option<Part>);

#[derive(Debug)]
pub(super) struct ProjectionCache {
    budget: usize,
    state: Mutex<Entries>,
}

#[derive(Debug)]
struct Entries {
    /// Oldest use first.
    entries: Vec<(Key, Arc<Refolded>, usize)>,
    reservation: MemoryReservation,
}

impl ProjectionCache {
    pub(super) fn new(pool: Arc<dyn MemoryPool>, budget: usize) -> Self {
        let reservation = MemoryConsumer::new("leadline projection cache").register(&pool);
        Self { budget, state: Mutex::new(Entries { entries: Vec::new(), reservation }) }
    }

    /// The projections of `snap` as of `as_of` with `window`, and the rows of
    /// `part`: cached, or refolded by `model` (the read model of `snap`)
    /// component by component, or without one folded from the whole log.
    /// Reads files and takes a while on a big log: call it off the async
    /// workers.
    pub(super) fn get_or_fold(
        &self,
        snap: &Snapshot,
        model: Option<&ReadModel>,
        as_of: Option<i64>,
        window: Option<i64>,
        part: Option<Part>,
    ) -> Result<Arc<Refolded>> {
        let key = (snap.version, as_of, window, part);
        {
            let mut state = self.lock()?;
            if let Some(i) = state.entries.iter().position(|(k, _, _)| *k == key) {
                let entry = state.entries.remove(i);
                let p = entry.1.clone();
                state.entries.push(entry);
                return Ok(p);
            }
        }
        let started = std::time::Instant::now();
        let parts = part.as_slice();
        let folded = match model {
            Some(m) => m.refold(as_of, window, parts)?,
            None => {
                let events = load_events(snap, as_of)?;
                tracing::info!(events = events.len(), "no read model for this snapshot: folding the whole log");
                Refolded::of_events(&events, window, parts)?
            }
        };
        let folded = Arc::new(folded);
        let bytes = folded.bytes();
        tracing::info!(?as_of, ?window, ?part, bytes, took = ?started.elapsed(), "folded in memory");
        self.insert(key, folded.clone(), bytes)?;
        Ok(folded)
    }

    fn insert(&self, key: Key, p: Arc<Refolded>, bytes: usize) -> Result<()> {
        if bytes > self.budget {
            return Ok(());
        }
        let mut state = self.lock()?;
        state.entries.retain(|(k, _, _)| *k != key);
        let Entries { entries, reservation } = &mut *state;
        let mut held: usize = entries.iter().map(|e| e.2).sum();
        while held + bytes > self.budget && !entries.is_empty() {
            held -= entries.remove(0).2;
        }
        reservation.resize(held);
        // The queries' own memory comes first: a full pool means no caching.
        if reservation.try_grow(bytes).is_ok() {
            entries.push((key, p, bytes));
        }
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Entries>> {
        self.state.lock().map_err(|_| Error::Internal("the projection cache is poisoned".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    fn projected(n: usize) -> Arc<Refolded> {
        let pairs = (0..n).map(|i| (format!("service-{i}"), "production".to_string())).collect();
        Arc::new(Refolded { pairs, ..Default::default() })
    }

    #[test]
    fn entries_are_bounded_in_bytes_and_reserved_in_the_pool() {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 20));
        let p = projected(100);
        let size = p.bytes();
        let cache = ProjectionCache::new(pool.clone(), size * 2 + size / 2);
        cache.insert((Some(1), None, None, None), p.clone(), size).unwrap();
        cache.insert((Some(2), None, None, None), p.clone(), size).unwrap();
        assert_eq!(pool.reserved(), 2 * size);
        // A third evicts the least recently used.
        cache.insert((Some(3), None, None, None), p.clone(), size).unwrap();
        assert_eq!(pool.reserved(), 2 * size);
        let keys: Vec<Key> = cache.lock().unwrap().entries.iter().map(|e| e.0).collect();
        assert_eq!(keys, vec![(Some(2), None, None, None), (Some(3), None, None, None)]);
        // Bigger than the whole budget: not kept.
        let big = projected(1000);
        cache.insert((Some(4), None, None, None), big.clone(), big.bytes()).unwrap();
        assert_eq!(cache.lock().unwrap().entries.len(), 2);
    }

    #[test]
    fn a_full_pool_means_no_caching() {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1000));
        let query = MemoryConsumer::new("a query").register(&pool);
        query.try_grow(900).unwrap();
        let cache = ProjectionCache::new(pool.clone(), 10_000);
        cache.insert((Some(1), None, None, None), projected(1), 500).unwrap();
        assert!(cache.lock().unwrap().entries.is_empty());
        assert_eq!(pool.reserved(), 900);
        drop(query);
        cache.insert((Some(1), None, None, None), projected(1), 500).unwrap();
        assert_eq!(pool.reserved(), 500);
    }
}
