//! `leadline ingest` end to end: the shared fixtures, idempotency, every input
//! format, bad input, the writer lock, compaction, and kill -9 mid-ingest.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn expected_quality(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join(name).join("expected_quality.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn fixtures_give_the_expected_counts() {
    for name in ["worked", "mixed"] {
        let dir = tempfile::tempdir().unwrap();
        let file = fixtures().join(name).join("events.ndjson");
        let out = ingest(dir.path(), &[&file]);
        assert_eq!(out.status.code(), Some(2), "rows were rejected: exit 2\n{}", String::from_utf8_lossy(&out.stderr));
        let q = expected_quality(name);
        let [appended, duplicates, conflicts, rejected] = summary(&out)[0];
        assert_eq!(appended, q["appended"].as_u64().unwrap(), "{name} appended");
        assert_eq!(duplicates, q["duplicates"].as_u64().unwrap(), "{name} duplicates");
        assert_eq!(conflicts, q["conflicts"].as_u64().unwrap(), "{name} conflicts");
        assert_eq!(rejected, q["rejected"].as_u64().unwrap(), "{name} rejected");
        assert_eq!(scalar(dir.path(), "SELECT count(*) FROM events") as u64, appended);
        assert_eq!(scalar(dir.path(), "SELECT count(*) FROM rejected_events WHERE kind = 'invalid'") as u64, rejected);
        assert_eq!(
            scalar(dir.path(), "SELECT count(*) FROM rejected_events WHERE kind = 'conflict'") as u64,
            conflicts
        );
    }
}

#[test]
fn worked_rejections_name_line_and_reason_and_keep_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixtures().join("worked/events.ndjson");
    ingest(dir.path(), &[&file]);
    let rows = query(dir.path(), "SELECT line, kind, event_id, reason, raw FROM rejected_events ORDER BY line");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["line"], 18);
    assert_eq!(rows[0]["kind"], "conflict");
    assert_eq!(rows[0]["event_id"], "c1");
    assert!(rows[0]["raw"].as_str().unwrap().contains("a1-CHANGED"));
    assert_eq!(rows[1]["line"], 19);
    assert!(rows[1]["reason"].as_str().unwrap().starts_with("event_type 'deploy' is not one of"));
    assert_eq!(rows[2]["line"], 20);
    assert!(rows[2]["reason"].as_str().unwrap().starts_with("occurred_at has no UTC offset: '2026-03-02 09:00:00'"));
    // The first write of c1 stays.
    let c1 = query(dir.path(), "SELECT commit_sha FROM events WHERE event_id = 'c1'");
    assert_eq!(c1, vec![serde_json::json!({"commit_sha": "a1"})]);
}

#[test]
fn loading_twice_changes_nothing_and_redeliveries_count_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixtures().join("mixed/events.ndjson");
    ingest(dir.path(), &[&file]);
    let before = query(dir.path(), "SELECT event_id, ingested_at FROM events ORDER BY event_id");
    let out = ingest(dir.path(), &[&file]);
    let q = expected_quality("mixed");
    let [appended, duplicates, conflicts, _] = summary(&out)[0];
    assert_eq!(appended, 0);
    // Every stored row comes again, plus the in-file redeliveries.
    assert_eq!(duplicates, q["appended"].as_u64().unwrap() + q["duplicates"].as_u64().unwrap());
    assert_eq!(conflicts, q["conflicts"].as_u64().unwrap(), "conflicting rows are rejected again");
    let after = query(dir.path(), "SELECT event_id, ingested_at FROM events ORDER BY event_id");
    assert_eq!(before, after);
}

#[test]
fn csv_and_parquet_inputs_are_equivalent_to_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("in.csv");
    std::fs::write(
        &csv,
        "event_id,event_type,occurred_at,service,environment,deployment_id,commit_sha,change_ids,team\n\
         e1,deployment_succeeded,2026-03-04T08:00:00Z,checkout,production,D2,,a3;a4,payments\n\
         e2,commit,2026-03-03T08:00:00+01:00,checkout,,,a3,,\n\
         e3,commit,2026-03-03T08:00:00,checkout,,,a9,,\n\
         e4,incident_opened\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = ingest(&data, &[&csv]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(summary(&out)[0], [2, 0, 0, 2]);
    let rows = query(&data, "SELECT event_id, change_ids, occurred_at FROM events ORDER BY event_id");
    assert_eq!(rows[0]["change_ids"], "[a3, a4]");
    assert_eq!(rows[1]["occurred_at"], "2026-03-03T07:00:00Z");
    let rej = query(&data, "SELECT line, reason FROM rejected_events ORDER BY line");
    assert_eq!(rej[0]["line"], 4);
    assert_eq!(rej[1]["reason"], "row has 2 fields, the header has 9");

    // The same events as NDJSON are duplicates of the CSV ones.
    let nd = dir.path().join("same.ndjson");
    std::fs::write(
        &nd,
        "{\"event_id\":\"e1\",\"event_type\":\"deployment_succeeded\",\"occurred_at\":\"2026-03-04T09:00:00+01:00\",\"service\":\"checkout\",\"environment\":\"production\",\"deployment_id\":\"D2\",\"change_ids\":[\"a3\",\"a4\"],\"team\":\"payments\"}\n",
    )
    .unwrap();
    assert_eq!(summary(&ingest(&data, &[&nd]))[0], [0, 1, 0, 0]);

    // Our own data files are valid Parquet input for another data directory.
    let part = walk(&data.join("events")).into_iter().find(|p| p.extension().is_some_and(|e| e == "parquet")).unwrap();
    let pq = dir.path().join("export.parquet");
    std::fs::copy(part, &pq).unwrap();
    let other = dir.path().join("other");
    let out = ingest(&other, &[&pq]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let n = summary(&out)[0][0];
    assert!(n >= 1);
    let cols = "SELECT event_id, event_type, occurred_at, change_ids, team FROM events";
    let copied = query(&other, &format!("{cols} ORDER BY event_id"));
    let ids: Vec<String> = copied.iter().map(|r| format!("'{}'", r["event_id"].as_str().unwrap())).collect();
    let original = query(&data, &format!("{cols} WHERE event_id IN ({}) ORDER BY event_id", ids.join(",")));
    assert_eq!(copied.len() as u64, n);
    assert_eq!(copied, original);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A truncated NDJSON file: the cut line is rejected, the rest appended.
    let full = std::fs::read_to_string(fixtures().join("worked/events.ndjson")).unwrap();
    let cut = &full[..full.len() - 40];
    let trunc = dir.path().join("truncated.ndjson");
    std::fs::write(&trunc, cut).unwrap();
    let out = ingest(&data, &[&trunc]);
    assert_eq!(out.status.code(), Some(2));
    let rej = query(&data, "SELECT reason FROM rejected_events WHERE line = 20");
    assert!(rej[0]["reason"].as_str().unwrap().starts_with("line is not valid JSON"), "{rej:?}");

    // A truncated Parquet file is an error: exit 1, nothing appended.
    let before = scalar(&data, "SELECT count(*) FROM events");
    let part = walk(&data.join("events")).into_iter().find(|p| p.extension().is_some_and(|e| e == "parquet")).unwrap();
    let bytes = std::fs::read(part).unwrap();
    let broken = dir.path().join("broken.parquet");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let out = ingest(&data, &[&broken]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing from it was appended"));
    assert_eq!(scalar(&data, "SELECT count(*) FROM events"), before);

    // Unknown format, missing file, CSV with an unknown column.
    assert_eq!(ingest(&data, &[Path::new("x.xml")]).status.code(), Some(1));
    assert_eq!(ingest(&data, &[&dir.path().join("missing.ndjson")]).status.code(), Some(1));
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "event_id,evnt_type\n").unwrap();
    let out = ingest(&data, &[&csv]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown column 'evnt_type'"));
}

#[test]
fn a_second_writer_is_refused_with_the_holder_named() {
    let dir = tempfile::tempdir().unwrap();
    let _held = leadline_engine::Appender::open(dir.path(), "test holder").unwrap();
    let out = ingest(dir.path(), &[&fixtures().join("worked/events.ndjson")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked by another writer") && err.contains("(test holder)"), "{err}");
    // Readers are not blocked by the writer.
    assert_eq!(scalar(dir.path(), "SELECT count(*) FROM events"), 0);
}

#[test]
fn ingested_at_is_assigned_and_monotonic() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.ndjson");
    let b = dir.path().join("b.ndjson");
    let line = |id: &str| {
        format!(
            "{{\"event_id\":\"{id}\",\"event_type\":\"commit\",\"occurred_at\":\"2026-03-02T09:00:00Z\",\"service\":\"s\",\"commit_sha\":\"{id}\",\"ingested_at\":\"1999-01-01T00:00:00Z\"}}\n"
        )
    };
    std::fs::write(&a, line("x")).unwrap();
    std::fs::write(&b, line("y")).unwrap();
    let data = dir.path().join("d");
    ingest(&data, &[&a, &b]);
    let rows = query(&data, "SELECT event_id, CAST(ingested_at AS BIGINT) AS t FROM events ORDER BY event_id");
    let (tx, ty) = (rows[0]["t"].as_i64().unwrap(), rows[1]["t"].as_i64().unwrap());
    assert!(ty > tx, "second file ingested later: {tx} {ty}");
    assert!(tx > 1_700_000_000_000_000, "set by the engine, not the input");
    // Time travel to between the two appends sees only the first.
    let mid = chrono::DateTime::from_timestamp_micros(tx).unwrap().to_rfc3339();
    let seen = query_with(&data, "SELECT event_id FROM events", &["--as-of", &mid]);
    assert_eq!(seen, vec![serde_json::json!({"event_id": "x"})]);
}

#[test]
fn many_small_appends_are_compacted_without_changing_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mut files = vec![];
    for i in 0..20 {
        let f = dir.path().join(format!("{i}.ndjson"));
        std::fs::write(&f, format!("{{\"event_id\":\"e{i}\",\"event_type\":\"commit\",\"occurred_at\":\"2026-03-02T{:02}:00:00Z\",\"service\":\"s\",\"commit_sha\":\"c{i}\"}}\n", i % 24)).unwrap();
        files.push(f);
    }
    let refs: Vec<&Path> = files.iter().map(|f| f.as_path()).collect();
    assert!(ingest(&data, &refs).status.success());
    let parquet_files =
        |d: &Path| walk(&d.join("events")).iter().filter(|p| p.extension().is_some_and(|e| e == "parquet")).count();
    let q = "SELECT event_id, occurred_at, ingested_at FROM events ORDER BY event_id";
    let before = query(&data, q);
    assert_eq!(before.len(), 20);
    let snapshot = leadline_engine::EventLog::open(&data).unwrap().snapshot().unwrap();
    assert!(
        snapshot.event_files.len() <= leadline_engine::AUTO_COMPACT_FILES,
        "auto-compacted: {}",
        snapshot.event_files.len()
    );
    let out = run(&["compact", "--data", &data.display().to_string()]);
    assert!(out.status.success());
    let snapshot = leadline_engine::EventLog::open(&data).unwrap().snapshot().unwrap();
    assert_eq!(snapshot.event_files.len(), 1);
    assert_eq!(query(&data, q), before);
    // Removed files stay on disk for readers of older snapshots until the retention passes.
    assert!(parquet_files(&data) > 1);
}

#[test]
fn orphan_files_of_a_crashed_write_are_invisible_and_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    ingest(&data, &[&fixtures().join("worked/events.ndjson")]);
    let orphan_dir = data.join("events/event_date=2026-03-02");
    let orphan = orphan_dir.join("part-orphan.snappy.parquet");
    std::fs::write(&orphan, b"PAR1 half a file").unwrap();
    assert_eq!(scalar(&data, "SELECT count(*) FROM events"), 16);
    drop(leadline_engine::Appender::open(&data, "test").unwrap());
    assert!(!orphan.exists());
}

/// Kills `leadline ingest` at random points, over and over, and checks that
/// every acknowledged file's events are there exactly once.
#[test]
fn kill_9_during_ingest_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let all = dir.path().join("all.ndjson");
    generate(&all, 7, 8, 40);
    let text = std::fs::read_to_string(&all).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let chunks: Vec<std::path::PathBuf> = lines
        .chunks(lines.len() / 30 + 1)
        .enumerate()
        .map(|(i, c)| {
            let p = dir.path().join(format!("chunk-{i:02}.ndjson"));
            std::fs::write(&p, c.join("\n") + "\n").unwrap();
            p
        })
        .collect();
    let data = dir.path().join("d");
    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut kills = 0;
    for round in 0..60 {
        let pending: Vec<&std::path::PathBuf> =
            chunks.iter().filter(|c| !acknowledged.contains(&c.display().to_string())).collect();
        if pending.is_empty() {
            break;
        }
        let mut cmd = Command::new(bin());
        cmd.arg("ingest").arg("--data").arg(&data).args(&pending).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Late rounds let the ingest finish, however slow the disk's fsyncs
        // are, so that every chunk is eventually acknowledged.
        if round <= 40 {
            std::thread::sleep(Duration::from_millis(seed % 250));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                kills += 1;
            }
        }
        let out = child.wait_with_output().unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((file, _)) = line.split_once(": appended ") {
                acknowledged.insert(file.to_string());
            }
        }
        // After every crash, what is visible is whole: acknowledged files are
        // all there, exactly once.
        if data.join("events/_delta_log").exists() {
            let dupes = scalar(&data, "SELECT count(*) - count(DISTINCT event_id) FROM events");
            assert_eq!(dupes, 0, "round {round}: an event is stored twice");
        }
    }
    assert!(kills >= 3, "the test killed only {kills} ingests");
    assert_eq!(acknowledged.len(), chunks.len(), "every chunk was eventually acknowledged");
    let unique: HashSet<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(scalar(&data, "SELECT count(DISTINCT event_id) FROM events") as usize, unique.len());
    assert_eq!(scalar(&data, "SELECT count(*) FROM events") as usize, unique.len());
    // The index agrees: loading everything again appends nothing.
    let out = ingest(&data, &[&all]);
    assert_eq!(summary(&out)[0][0], 0);
    // Kills also landed while the read model was being updated: it still
    // agrees with folding the log in memory (a far `as_of` takes that path).
    for sql in [
        "SELECT * FROM dora_metrics('week') ORDER BY service, environment, bucket_start",
        "SELECT * FROM changes ORDER BY environment, commit_sha",
        "SELECT * FROM dora_quality",
    ] {
        assert_eq!(query(&data, sql), query_with(&data, sql, &["--as-of", "9999-01-01T00:00:00Z"]), "{sql}");
    }
}
