//! A data directory at a glance, read without the writer's lock: what
//! `leadline status` prints and the server's `/metrics` exports.

use std::path::Path;

use crate::error::Result;
use crate::log::EventLog;
use crate::readmodel::ReadModel;

/// The state of a data directory's log and read model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DataStatus {
    /// The events log's latest commit (`None`: empty log).
    pub log_version: Option<u64>,
    /// The log version the read model reflects (`None`: no model yet).
    pub read_model_version: Option<u64>,
    /// Events stored.
    pub events: u64,
    /// Rows in the quarantine (`rejected_events`).
    pub rejected: u64,
    /// Bytes of the live data files of both tables.
    pub data_bytes: u64,
    /// Live data files of both tables.
    pub data_files: usize,
    /// Appends committed, and the ingestion time (µs since the epoch) of the latest.
    pub appends: usize,
    pub last_append: Option<i64>,
}

impl DataStatus {
    /// Reads the status of the data directory `dir`.
    pub fn read(dir: &Path) -> Result<DataStatus> {
        Self::of(&EventLog::open(dir)?)
    }

    /// The status of an open log (which reads only the commits it has not seen yet).
    pub fn of(log: &EventLog) -> Result<DataStatus> {
        let snap = log.snapshot()?;
        let model = ReadModel::open(log.root())?;
        let files = snap.event_files.iter().chain(&snap.rejected_files);
        Ok(DataStatus {
            log_version: snap.version,
            read_model_version: model.and_then(|m| m.version()),
            events: snap.event_files.iter().map(|f| f.num_records).sum(),
            rejected: snap.rejected_files.iter().map(|f| f.num_records).sum(),
            data_bytes: files.clone().map(|f| f.size).sum(),
            data_files: files.count(),
            appends: snap.appends.len(),
            last_append: snap.appends.iter().map(|a| a.ingested_at).max(),
        })
    }

    /// Log commits the read model has not folded yet (queries fold the log
    /// in memory while it is behind). A log without appends needs no model.
    pub fn read_model_lag(&self) -> u64 {
        match (self.log_version, self.read_model_version) {
            (None, _) => 0,
            (Some(_), None) if self.appends == 0 => 0,
            (Some(log), None) => log + 1,
            (Some(log), Some(model)) => log.saturating_sub(model),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::appender::Appender;
    use crate::input::ndjson_rows;

    #[test]
    fn counts_what_the_appends_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = Appender::open(dir.path(), "test").unwrap();
        let empty = DataStatus::read(dir.path()).unwrap();
        assert_eq!((empty.events, empty.rejected, empty.appends, empty.read_model_lag()), (0, 0, 0, 0));
        let lines = [
            r#"{"event_id":"a","event_type":"commit","occurred_at":"2026-03-09T09:00:00Z","service":"s","commit_sha":"1"}"#,
            r#"{"event_id":"b","event_type":"nonsense","occurred_at":"2026-03-09T09:00:00Z","service":"s"}"#,
        ];
        let rows = ndjson_rows(std::io::Cursor::new(lines.join("\n").into_bytes()));
        let report = appender.append("t.ndjson", rows, &mut |_| {}).unwrap();
        let s = DataStatus::read(dir.path()).unwrap();
        assert_eq!((s.events, s.rejected, s.appends), (1, 1, 1));
        assert_eq!(s.log_version, report.version);
        assert_eq!(s.last_append, Some(report.ingested_at));
        assert_eq!(s.read_model_lag(), 0, "the append caught the model up");
        assert!(s.data_bytes > 0 && s.data_files == 2);
    }
}
