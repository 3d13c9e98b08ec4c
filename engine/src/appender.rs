//! The write path in one place: input rows → validation and the durable log
//! append ([`Writer`]) → the read model caught up to the new log version.
//! Everything that writes a data directory goes through an [`Appender`]:
//! `leadline ingest`, the server's INSERT and COPY, `leadline compact` and
//! `leadline rebuild`.

use std::path::Path;

use crate::error::Result;
use crate::input::InputRow;
use crate::log::{AppendReport, Writer};
use crate::project::DEFAULT_ATTRIBUTION_WINDOW;
use crate::readmodel;

/// What an append is doing, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    /// Input rows read so far.
    Rows(u64),
    /// The rows are committed; the read model is being brought up to date.
    ReadModel,
}

/// The one writer of a data directory (it holds the directory's lock).
pub struct Appender {
    writer: Writer,
}

impl Appender {
    /// Takes the data directory's lock (creating the directory and its
    /// tables if needed) and finishes whatever a crashed writer left behind.
    /// `holder` names this writer to others that find the lock taken.
    pub fn open(dir: &Path, holder: &str) -> Result<Appender> {
        Ok(Appender { writer: Writer::open(dir, holder)? })
    }

    /// Appends every valid, new row of `rows` as one atomic commit and
    /// quarantines the rest (`source` names the input: a file name,
    /// `INSERT`…), then brings the read model up to date. The append is
    /// durable once committed: if the read model then fails, it is logged
    /// and the next append or `leadline rebuild` catches it up (queries fold
    /// the log in memory meanwhile).
    pub fn append(
        &mut self,
        source: &str,
        rows: impl Iterator<Item = Result<InputRow>>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<AppendReport> {
        let report = self.writer.append(source, rows, &mut |n| progress(Progress::Rows(n)))?;
        if report.version.is_some() {
            progress(Progress::ReadModel);
            if let Err(e) = self.catch_up(false) {
                tracing::warn!(error = %e, "the read model was not updated; `leadline rebuild` brings it up to date");
            }
        }
        Ok(report)
    }

    /// Merges small data files and deletes long-removed ones; returns (files
    /// before, files after). The data, and so the read model, do not change.
    pub fn compact(&mut self) -> Result<(usize, usize)> {
        self.writer.compact()
    }

    /// Writes the event-id index again from the log (every data file read
    /// whole and verified): the repair of a damaged index. Returns the
    /// number of ids indexed.
    pub fn rebuild_index(&mut self) -> Result<u64> {
        self.writer.rebuild_index()
    }

    /// Brings the read model up to date with the log, folding everything
    /// again when `from_scratch`. Returns the log version it now reflects.
    pub fn catch_up(&mut self, from_scratch: bool) -> Result<Option<u64>> {
        let snap = self.writer.log().snapshot()?;
        Ok(readmodel::catch_up(&snap, DEFAULT_ATTRIBUTION_WINDOW, from_scratch)?.version())
    }
}
