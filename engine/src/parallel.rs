//! Work spread over threads: a scoped pool pulling items from a shared
//! counter, for the write path's folds and fsyncs (no async runtime there).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// As many threads as there are cores (CPU-bound work).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Calls `f` on each of `items`, `threads` at a time; the results in the
/// order of `items`, or the first error (the items not started then are
/// left alone).
pub fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(item);
                    let failed = result.is_err();
                    if let Ok(mut done) = done.lock() {
                        done.push((i, result));
                    }
                    if failed {
                        next.store(items.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut done = done.into_inner().map_err(|_| Error::Internal("a worker thread panicked".into()))?;
    if done.len() < items.len() && done.iter().all(|(_, r)| r.is_ok()) {
        return Err(Error::Internal("a worker thread panicked".into()));
    }
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, r)| r).collect()
}

/// [`in_parallel`] for work that takes its item (closing a writer, say).
pub fn in_parallel_owned<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let items: Vec<Mutex<Option<T>>> = items.into_iter().map(|item| Mutex::new(Some(item))).collect();
    in_parallel(&items, threads, |item| {
        let taken = item.lock().ok().and_then(|mut item| item.take());
        f(taken.ok_or_else(|| Error::Internal("an item was taken twice".into()))?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_items_are_each_taken_once_and_answered_in_order() {
        let items: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let lengths = in_parallel_owned(items.clone(), 4, |s: String| Ok(s.len())).unwrap();
        assert_eq!(lengths, items.iter().map(String::len).collect::<Vec<_>>());
        let failed =
            in_parallel_owned(
                items,
                4,
                |s: String| {
                    if s == "42" { Err(Error::Internal(format!("item {s}"))) } else { Ok(s) }
                },
            );
        assert!(matches!(failed, Err(Error::Internal(m)) if m == "item 42"));
    }
}
