//! The check that every generated line is what ingest reads back: each line
//! goes through the engine's own NDJSON reader and SPEC §1 validation
//! ([`Event::from_raw_owned`]) and must come out as the very event it was
//! rendered from. Costly (a copy and a parse per event), so the generator
//! runs it in builds with debug assertions only.

use std::io::Cursor;

use crate::error::GenerateError;
use crate::{Event, ndjson_rows};

/// The events written since the last check, and how many lines came before.
pub(crate) struct ReadBack {
    pending: Vec<Event>,
    lines_checked: u64,
}

impl ReadBack {
    pub(crate) fn new() -> Self {
        ReadBack { pending: Vec::new(), lines_checked: 0 }
    }

    /// Notes that the next line written is `event`.
    pub(crate) fn expect(&mut self, event: &Event) {
        self.pending.push(event.clone());
    }

    /// Reads `lines` (the lines of the events noted since the last call, in
    /// order) as ingest would and compares each with its event.
    pub(crate) fn check(&mut self, lines: &[u8]) -> Result<(), GenerateError> {
        let mut expected = self.pending.drain(..);
        let mut read = 0u64;
        for row in ndjson_rows(Cursor::new(lines.to_vec())) {
            let line = self.lines_checked + read + 1;
            read += 1;
            let unreadable = |reason: String| GenerateError::Unreadable { line, reason };
            let row = row.map_err(|e| unreadable(e.to_string()))?;
            let want = expected.next().ok_or_else(|| unreadable("one line more than events written".into()))?;
            match row.fields.and_then(Event::from_raw_owned) {
                Ok(back) if back == want => {}
                Ok(back) => return Err(unreadable(format!("reads back as {back:?}, not as written: {want:?}"))),
                Err(reason) => return Err(unreadable(reason)),
            }
        }
        if expected.next().is_some() {
            let line = self.lines_checked + read + 1;
            return Err(GenerateError::Unreadable { line, reason: "fewer lines than events written".into() });
        }
        self.lines_checked += read;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventType;

    fn event(id: &str) -> Event {
        Event {
            event_id: id.into(),
            event_type: EventType::IncidentResolved,
            occurred_at: 0,
            service: "s".into(),
            environment: Some("production".into()),
            commit_sha: None,
            deployment_id: None,
            incident_id: Some("i".into()),
            change_ids: None,
            team: None,
            source: None,
            attributes: None,
            schema_version: 1,
        }
    }

    const GOOD: &str = "{\"event_id\":\"a\",\"event_type\":\"incident_resolved\",\"occurred_at\":\"1970-01-01T00:00:00Z\",\
                        \"service\":\"s\",\"environment\":\"production\",\"incident_id\":\"i\"}\n";

    #[test]
    fn a_faithful_line_passes_and_lines_are_counted_across_checks() {
        let mut rb = ReadBack::new();
        rb.expect(&event("a"));
        rb.check(GOOD.as_bytes()).unwrap();
        rb.expect(&event("b"));
        let err = rb.check(GOOD.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("not as written"), "{err}");
    }

    #[test]
    fn a_rejected_line_or_a_missing_one_is_an_error() {
        let mut rb = ReadBack::new();
        rb.expect(&event("a"));
        let err = rb.check(GOOD.replace("production", "").as_bytes()).unwrap_err().to_string();
        assert!(err.contains("environment is required for incident_resolved events"), "{err}");
        let mut rb = ReadBack::new();
        rb.expect(&event("a"));
        rb.expect(&event("a"));
        assert!(rb.check(GOOD.as_bytes()).unwrap_err().to_string().contains("fewer lines"));
    }
}
