//! The server's one writer of its data directory, shared by every front that
//! appends: the pgwire INSERT and COPY and the HTTP webhooks and events
//! endpoint. The data directory's lock admits one [`Appender`] per process
//! as well as per directory, so they must share this one; appends are
//! serialized by its mutex, in arrival order.
//!
//! The writer is opened on the first append and kept while appends keep
//! coming (an `executemany`, a burst of webhooks); it is released after a
//! quiet second so that `leadline ingest` can take the lock in between.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use leadline_engine::{AppendReport, Appender, Error, Result};

use crate::telemetry;

/// How long an idle writer keeps the data directory's lock.
const KEEP_IDLE: Duration = Duration::from_secs(1);

pub struct SharedWriter {
    dir: PathBuf,
    appender: tokio::sync::Mutex<Option<Appender>>,
    /// Uses of the writer so far (to release it once idle).
    uses: AtomicU64,
}

impl SharedWriter {
    pub fn new(dir: PathBuf) -> Arc<Self> {
        Arc::new(Self { dir, appender: tokio::sync::Mutex::new(None), uses: AtomicU64::new(0) })
    }

    /// Runs one append (`append` gets the writer) when the writer is free,
    /// and counts what it did under `source`'s kind (its first word:
    /// `INSERT`, `COPY`, `github`, …) for `/metrics`. Blocks a worker
    /// thread while it runs (`block_in_place`): call it from the server's
    /// multi-threaded runtime.
    pub async fn append(
        self: &Arc<Self>,
        source: &str,
        append: impl FnOnce(&mut Appender) -> Result<AppendReport>,
    ) -> Result<AppendReport> {
        let result = self.with(append).await;
        match &result {
            Ok(report) => telemetry::global().appended(source, report),
            Err(e) => telemetry::global().append_failed(source, e),
        }
        result
    }

    /// Whether an append could start now: the writer is open (or opens),
    /// i.e. no other process holds the data directory's lock.
    pub async fn ready(self: &Arc<Self>) -> Result<()> {
        self.with(|_| Ok(())).await
    }

    async fn with<T>(self: &Arc<Self>, f: impl FnOnce(&mut Appender) -> Result<T>) -> Result<T> {
        let mut guard = self.appender.lock().await;
        let result = tokio::task::block_in_place(|| {
            if guard.is_none() {
                *guard = Some(Appender::open(&self.dir, "leadline serve")?);
            }
            let appender = guard.as_mut().ok_or_else(|| Error::Internal("the writer is gone".into()))?;
            f(appender)
        });
        let uses = self.uses.fetch_add(1, Ordering::SeqCst) + 1;
        if result.is_err() {
            // Open it afresh next time: a failed append may have left it mid-way.
            *guard = None;
        }
        drop(guard);
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(KEEP_IDLE).await;
            let mut w = this.appender.lock().await;
            if this.uses.load(Ordering::SeqCst) == uses {
                *w = None;
            }
        });
        result
    }
}
