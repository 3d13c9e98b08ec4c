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
    /// The published tables as of the last update, read incrementally.
    tables: readmodel::Publication,
}

impl Appender {
    /// Takes the data directory's lock (creating the directory and its
    /// tables if needed) and finishes whatever a crashed writer left behind.
    /// `holder` names this writer to others that find the lock taken.
    pub fn open(dir: &Path, holder: &str) -> Result<Appender> {
        Ok(Appender { writer: Writer::open(dir, holder)?, tables: readmodel::Publication::default() })
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
        self.append_inputs(source, std::iter::once((source, rows)), progress)
    }

    /// [`append`](Self::append) of several inputs as one atomic commit
    /// (`source` names the commit): the INSERTs and COPYs of a transaction
    /// block. Each input is named by its own source, as its rejected rows
    /// are in `rejected_events`.
    pub fn append_inputs<S: AsRef<str>, R: Iterator<Item = Result<InputRow>>>(
        &mut self,
        source: &str,
        inputs: impl Iterator<Item = (S, R)>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<AppendReport> {
        let report = self.writer.append_inputs(source, inputs, &mut |n| progress(Progress::Rows(n)))?;
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
        Ok(readmodel::catch_up(&snap, DEFAULT_ATTRIBUTION_WINDOW, from_scratch, &mut self.tables)?.version())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::RejectionKind;
    use crate::input::ndjson_rows;
    use crate::log::EventLog;

    fn rows(lines: &[&str]) -> Vec<InputRow> {
        ndjson_rows(std::io::Cursor::new(lines.join("\n").into_bytes())).map(|r| r.unwrap()).collect()
    }

    #[test]
    fn several_inputs_are_one_commit_and_keep_their_sources() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = Appender::open(dir.path(), "test").unwrap();
        let commit = |id: &str, sha: &str| {
            format!(
                r#"{{"event_id":"{id}","event_type":"commit","occurred_at":"2026-03-09T09:00:00Z","service":"s","commit_sha":"{sha}"}}"#
            )
        };
        let (a, b, b_again, a_changed) = (commit("a", "1"), commit("b", "2"), commit("b", "2"), commit("a", "9"));
        let inputs = vec![
            ("INSERT by x".to_string(), rows(&[&a, r#"{"event_id":"bad"}"#])),
            ("COPY by x".to_string(), rows(&[&b, &b_again, &a_changed])),
        ];
        let before = EventLog::open(dir.path()).unwrap().snapshot().unwrap().version;
        let report = appender
            .append_inputs("transaction by x", inputs.into_iter().map(|(s, r)| (s, r.into_iter().map(Ok))), &mut |_| {})
            .unwrap();
        let after = EventLog::open(dir.path()).unwrap().snapshot().unwrap();
        assert_eq!(after.version, before.map(|v| v + 1), "one commit");
        assert_eq!((report.appended, report.duplicates, report.conflicts, report.rejected), (2, 1, 1, 1));
        let sources: Vec<_> = report.first_rejections.iter().map(|r| (r.source.as_str(), r.line, r.kind)).collect();
        assert_eq!(sources, [("INSERT by x", 2, RejectionKind::Invalid), ("COPY by x", 3, RejectionKind::Conflict)]);
    }

    #[test]
    fn each_event_file_names_when_its_rows_were_ingested_through_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = Appender::open(dir.path(), "test").unwrap();
        let commit = |id: &str, day: u32| {
            format!(
                r#"{{"event_id":"{id}","event_type":"commit","occurred_at":"2026-03-{day:02}T09:00:00Z","service":"s","commit_sha":"{id}"}}"#
            )
        };
        for batch in [["a", "b"], ["c", "d"]] {
            let lines = [commit(batch[0], 9), commit(batch[1], 10)];
            let inputs = vec![("t".to_string(), rows(&[&lines[0], &lines[1]]).into_iter().map(Ok))];
            appender.append_inputs("t", inputs.into_iter(), &mut |_| {}).unwrap();
        }
        let snap = EventLog::open(dir.path()).unwrap().snapshot().unwrap();
        let at: Vec<i64> = snap.appends.iter().map(|a| a.ingested_at).collect();
        let mut ranges: Vec<_> = snap.event_files.iter().map(|f| f.ingested).collect();
        ranges.sort();
        assert_eq!(ranges, [(at[0], at[0]), (at[0], at[0]), (at[1], at[1]), (at[1], at[1])].map(Some));
        // Compaction joins each day's two files: the range spans both appends.
        appender.compact().unwrap();
        let snap = EventLog::open(dir.path()).unwrap().snapshot().unwrap();
        let ranges: Vec<_> = snap.event_files.iter().map(|f| f.ingested).collect();
        assert_eq!(ranges, [Some((at[0], at[1])); 2]);
        // An append after it folds only its own rows, and exactly.
        let line = commit("e", 11);
        appender
            .append_inputs("t", vec![("t".to_string(), rows(&[&line]).into_iter().map(Ok))].into_iter(), &mut |_| {})
            .unwrap();
        let model = crate::readmodel::ReadModel::open(dir.path()).unwrap().unwrap();
        assert_eq!(model.counts().events, 5);
    }
}
