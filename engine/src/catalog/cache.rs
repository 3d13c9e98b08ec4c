//! Projections folded in memory (for `leadline.as_of`, a window other than
//! the read model's, or a read model that is behind), kept for the next
//! query: bounded in bytes and reserved in the catalog's memory pool, so the
//! memory limit sees them. The least recently used entry goes first.

use std::sync::{Arc, Mutex};

use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};

use crate::error::{Error, Result};
use crate::log::{Snapshot, load_events};
use crate::project::{Projected, project};

/// (log version, as_of, attribution window).
type Key = (Option<u64>, Option<i64>, Option<i64>);

#[derive(Debug)]
pub(super) struct ProjectionCache {
    budget: usize,
    state: Mutex<Entries>,
}

#[derive(Debug)]
struct Entries {
    /// Oldest use first.
    entries: Vec<(Key, Arc<Projected>, usize)>,
    reservation: MemoryReservation,
}

impl ProjectionCache {
    pub(super) fn new(pool: Arc<dyn MemoryPool>, budget: usize) -> Self {
        let reservation = MemoryConsumer::new("leadline projection cache").register(&pool);
        Self { budget, state: Mutex::new(Entries { entries: Vec::new(), reservation }) }
    }

    /// The projections of `snap` as of `as_of` with `window`: cached, or
    /// folded from the log (which reads files and takes seconds on a big
    /// log: call it off the async workers).
    pub(super) fn get_or_fold(
        &self,
        snap: &Snapshot,
        as_of: Option<i64>,
        window: Option<i64>,
    ) -> Result<Arc<Projected>> {
        let key = (snap.version, as_of, window);
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
        let events = load_events(snap, as_of)?;
        let p = Arc::new(project(&events, window));
        let bytes = approx_bytes(&p);
        tracing::info!(events = events.len(), ?as_of, ?window, bytes, took = ?started.elapsed(), "folded the log in memory");
        drop(events);
        self.insert(key, p.clone(), bytes)?;
        Ok(p)
    }

    fn insert(&self, key: Key, p: Arc<Projected>, bytes: usize) -> Result<()> {
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

/// About how many bytes `p` holds on the heap.
fn approx_bytes(p: &Projected) -> usize {
    let text = |s: &str| s.len() + 24;
    let opt = |s: &Option<String>| s.as_deref().map_or(0, text);
    let deployments: usize = p
        .deployments
        .iter()
        .map(|d| {
            std::mem::size_of_val(d)
                + text(&d.deployment_id)
                + text(&d.service)
                + text(&d.environment)
                + opt(&d.team)
                + opt(&d.commit_sha)
                + d.change_ids.iter().flatten().map(|c| text(c)).sum::<usize>()
                + d.succeeded_at.len() * 8
        })
        .sum();
    let changes: usize = p
        .changes
        .iter()
        .map(|c| {
            std::mem::size_of_val(c)
                + text(&c.commit_sha)
                + text(&c.service)
                + text(&c.environment)
                + text(&c.deployment_id)
                + opt(&c.team)
        })
        .sum();
    let incidents: usize = p
        .incidents
        .iter()
        .map(|i| {
            std::mem::size_of_val(i)
                + text(&i.incident_id)
                + text(&i.service)
                + text(&i.environment)
                + opt(&i.team)
                + opt(&i.deployment_id)
        })
        .sum();
    let rest: usize = p.orphan_resolves.iter().map(|s| text(s)).sum::<usize>()
        + p.pairs.iter().map(|(s, e)| text(s) + text(e)).sum::<usize>();
    std::mem::size_of::<Projected>() + deployments + changes + incidents + rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    fn projected(n: usize) -> Arc<Projected> {
        Arc::new(Projected { orphan_resolves: (0..n).map(|i| format!("incident-{i}")).collect(), ..Default::default() })
    }

    #[test]
    fn entries_are_bounded_in_bytes_and_reserved_in_the_pool() {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 20));
        let p = projected(100);
        let size = approx_bytes(&p);
        let cache = ProjectionCache::new(pool.clone(), size * 2 + size / 2);
        cache.insert((Some(1), None, None), p.clone(), size).unwrap();
        cache.insert((Some(2), None, None), p.clone(), size).unwrap();
        assert_eq!(pool.reserved(), 2 * size);
        // A third evicts the least recently used.
        cache.insert((Some(3), None, None), p.clone(), size).unwrap();
        assert_eq!(pool.reserved(), 2 * size);
        let keys: Vec<Key> = cache.lock().unwrap().entries.iter().map(|e| e.0).collect();
        assert_eq!(keys, vec![(Some(2), None, None), (Some(3), None, None)]);
        // Bigger than the whole budget: not kept.
        let big = projected(1000);
        cache.insert((Some(4), None, None), big.clone(), approx_bytes(&big)).unwrap();
        assert_eq!(cache.lock().unwrap().entries.len(), 2);
    }

    #[test]
    fn a_full_pool_means_no_caching() {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1000));
        let query = MemoryConsumer::new("a query").register(&pool);
        query.try_grow(900).unwrap();
        let cache = ProjectionCache::new(pool.clone(), 10_000);
        cache.insert((Some(1), None, None), projected(1), 500).unwrap();
        assert!(cache.lock().unwrap().entries.is_empty());
        assert_eq!(pool.reserved(), 900);
        drop(query);
        cache.insert((Some(1), None, None), projected(1), 500).unwrap();
        assert_eq!(pool.reserved(), 500);
    }
}
