//! A session's memory pool: its statement may use up to a per-query limit,
//! drawn from the pool the whole catalog shares (all sessions and the
//! caches), so neither one session nor the sum of them can exceed its bound.

use std::fmt;
use std::sync::Arc;

use datafusion::common::Result as DfResult;
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryLimit, MemoryPool, MemoryReservation};

#[derive(Debug)]
pub(super) struct SessionPool {
    shared: Arc<dyn MemoryPool>,
    own: GreedyMemoryPool,
    limit: usize,
}

impl SessionPool {
    pub(super) fn new(shared: Arc<dyn MemoryPool>, limit: usize) -> Self {
        Self { shared, own: GreedyMemoryPool::new(limit), limit }
    }
}

impl fmt::Display for SessionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionPool({} of {} bytes; shared: {})", self.own.reserved(), self.limit, self.shared)
    }
}

impl MemoryPool for SessionPool {
    fn name(&self) -> &str {
        "leadline_session"
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.own.grow(reservation, additional);
        self.shared.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.own.shrink(reservation, shrink);
        self.shared.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        self.own.try_grow(reservation, additional)?;
        if let Err(e) = self.shared.try_grow(reservation, additional) {
            self.own.shrink(reservation, additional);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.own.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::MemoryConsumer;

    #[test]
    fn a_session_is_bounded_by_its_own_limit_and_by_the_shared_pool() {
        let shared: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(100));
        let a: Arc<dyn MemoryPool> = Arc::new(SessionPool::new(shared.clone(), 60));
        let b: Arc<dyn MemoryPool> = Arc::new(SessionPool::new(shared.clone(), 60));
        let ra = MemoryConsumer::new("a").register(&a);
        let rb = MemoryConsumer::new("b").register(&b);
        assert!(ra.try_grow(61).is_err(), "over the session's own limit");
        ra.try_grow(60).unwrap();
        assert!(rb.try_grow(41).is_err(), "over what the shared pool has left");
        assert_eq!(shared.reserved(), 60, "a failed grow gives back what it took");
        assert_eq!(b.reserved(), 0);
        rb.try_grow(40).unwrap();
        drop(ra);
        assert_eq!(shared.reserved(), 40);
        rb.try_grow(20).unwrap();
        assert_eq!(shared.reserved(), 60);
    }
}
