//! SPEC §2–§4 against the golden fixtures, loaded through `leadline ingest`,
//! and the properties that make the projections event-sourced: arrival
//! order, batching and redelivery never change the answer.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

const INTERVALS: [&str; 4] =
    ["lead_time_p50", "lead_time_p90", "time_to_restore_p50", "failed_deployment_recovery_p50"];
const FLOATS: [&str; 3] = ["deployment_frequency", "change_failure_rate", "rework_rate"];

/// `dora_metrics(grain)` with the columns a fixture lists (`worked/` and
/// `mixed/` list v1's, `v2/` every one), intervals as seconds so they
/// compare with the fixtures' numbers.
fn metrics_sql(grain: &str, columns: &[String]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| if INTERVALS.contains(&c.as_str()) { format!("date_part('epoch', {c}) AS {c}") } else { c.clone() })
        .collect();
    format!("SELECT {} FROM dora_metrics('{grain}') ORDER BY service, environment, bucket_start", cols.join(", "))
}

fn instant(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}")).timestamp()
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Compares `dora_metrics(grain)` with `expected_{grain}.csv`, cell by cell.
fn assert_metrics(data: &Path, fixture: &Path, grain: &str) {
    let mut rdr = csv::Reader::from_path(fixture.join(format!("expected_{grain}.csv"))).unwrap();
    let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    let got = query(data, &metrics_sql(grain, &header));
    let expected: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(got.len(), expected.len(), "{grain}: row count");
    for (row, (g, e)) in got.iter().zip(&expected).enumerate() {
        for (col, want) in header.iter().zip(e.iter()) {
            let have = &g[col];
            let ctx = format!(
                "{} {grain} row {row} ({} {} {}) column {col}: got {have}, want {want:?}",
                fixture.display(),
                &e[0],
                &e[1],
                &e[2]
            );
            if want.is_empty() {
                assert!(have.is_null(), "{ctx}");
            } else if col == "bucket_start" {
                assert_eq!(instant(have.as_str().unwrap()), instant(want), "{ctx}");
            } else if INTERVALS.contains(&col.as_str()) || FLOATS.contains(&col.as_str()) {
                let h = have.as_f64().unwrap_or_else(|| panic!("{ctx}"));
                assert!(close(h, want.parse().unwrap()), "{ctx}");
            } else if col == "deployments" {
                assert_eq!(have.as_i64(), Some(want.parse().unwrap()), "{ctx}");
            } else {
                assert_eq!(have.as_str(), Some(want), "{ctx}");
            }
        }
    }
}

fn assert_quality(data: &Path, fixture: &Path) {
    let want: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("expected_quality.json")).unwrap()).unwrap();
    for sql in ["SELECT * FROM dora_quality", "SELECT * FROM dora_quality()"] {
        let got = query(data, sql);
        assert_eq!(got.len(), 1);
        for (k, v) in want.as_object().unwrap() {
            assert_eq!(got[0][k], *v, "{}: dora_quality.{k}", fixture.display());
        }
    }
}

#[test]
fn fixtures_give_the_expected_metrics_and_quality() {
    for name in ["worked", "mixed", "v2"] {
        let fixture = fixtures().join(name);
        let dir = tempfile::tempdir().unwrap();
        ingest(dir.path(), &[&fixture.join("events.ndjson")]);
        for grain in ["day", "week", "month"] {
            assert_metrics(dir.path(), &fixture, grain);
        }
        assert_quality(dir.path(), &fixture);
    }
}

fn all_metrics(data: &Path) -> Vec<Value> {
    let mut out = query(data, "SELECT * FROM dora_metrics('week') ORDER BY service, environment, bucket_start");
    out.extend(query(data, "SELECT * FROM dora_metrics('day') ORDER BY service, environment, bucket_start"));
    out.extend(query(data, "SELECT * FROM deployments ORDER BY deployment_id"));
    out.extend(query(data, "SELECT * FROM changes ORDER BY environment, commit_sha"));
    out.extend(query(data, "SELECT * FROM incidents ORDER BY incident_id"));
    out
}

/// A tiny deterministic shuffle (no test-only RNG crate needed).
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

#[test]
fn arrival_order_batching_and_redelivery_do_not_change_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.ndjson");
    generate(&log, 11, 3, 30);
    let base = dir.path().join("base");
    ingest(&base, &[&log]);
    let want = all_metrics(&base);
    assert!(query(&base, "SELECT count(*) AS n FROM deployments WHERE failed")[0]["n"].as_i64().unwrap() > 0);

    let text = std::fs::read_to_string(&log).unwrap();
    for seed in [1u64, 2] {
        let mut lines: Vec<&str> = text.lines().collect();
        shuffle(&mut lines, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        // Many batches, in shuffled order.
        let files: Vec<std::path::PathBuf> = lines
            .chunks(lines.len() / 9 + 1)
            .enumerate()
            .map(|(i, c)| {
                let p = dir.path().join(format!("s{seed}-{i}.ndjson"));
                std::fs::write(&p, c.join("\n")).unwrap();
                p
            })
            .collect();
        let data = dir.path().join(format!("shuffled-{seed}"));
        let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
        ingest(&data, &refs);
        assert_eq!(all_metrics(&data), want, "shuffled arrival (seed {seed}) changed the answer");
        // Loading everything twice changes nothing.
        ingest(&data, &[&log]);
        assert_eq!(all_metrics(&data), want, "redelivery changed the answer");
    }
}

#[test]
fn late_events_change_the_answer_to_what_the_full_log_implies() {
    let fixture = fixtures().join("worked/events.ndjson");
    let text = std::fs::read_to_string(&fixture).unwrap();
    let (late, early): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|l| l.contains("\"c4\"") || l.contains("\"i1o\"") || l.contains("\"c2\""));
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("early.ndjson"), dir.path().join("late.ndjson"));
    std::fs::write(&a, early.join("\n")).unwrap();
    std::fs::write(&b, late.join("\n")).unwrap();
    let data = dir.path().join("d");
    ingest(&data, &[&a]);
    let before = query(&data, "SELECT * FROM dora_metrics('week') ORDER BY service, environment, bucket_start");
    ingest(&data, &[&b]);
    // Same answer as the whole log loaded at once.
    let whole = dir.path().join("whole");
    ingest(&whole, &[&fixture]);
    let q = "SELECT * FROM dora_metrics('week') ORDER BY service, environment, bucket_start";
    assert_eq!(query(&data, q), query(&whole, q));
    assert_ne!(before, query(&data, q), "the late commit and incident moved the numbers");
    // And time travel to before the late batch gives the earlier answer back.
    let first_ingest =
        query(&data, "SELECT CAST(min(ingested_at) AS VARCHAR) AS t FROM events")[0]["t"].as_str().unwrap().to_string();
    assert_eq!(query_with(&data, q, &["--as-of", &first_ingest]), before);
}

#[test]
fn attribution_window_and_as_of_are_session_settings() {
    let fixture = fixtures().join("worked/events.ndjson");
    let dir = tempfile::tempdir().unwrap();
    ingest(dir.path(), &[&fixture]);
    let cause = "SELECT deployment_id, attribution FROM incidents WHERE incident_id = 'INC-1'";
    assert_eq!(query(dir.path(), cause)[0]["attribution"], "inferred");
    // INC-1 opened 2h after D2 went live.
    let narrow = query_with(dir.path(), cause, &["--attribution-window", "1 hour"]);
    assert!(narrow[0]["deployment_id"].is_null());
    let unbounded = query_with(dir.path(), cause, &["--attribution-window", "unbounded"]);
    assert_eq!(unbounded[0]["deployment_id"], "D2");
    let out = run(&["query", "--data", &dir.path().display().to_string(), "--attribution-window", "soon", "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid interval 'soon'"));
}

#[test]
fn aggregate_functions_agree_with_dora_metrics() {
    // `v2` has rework (explicit and inferred) and deployments in two parts.
    for name in ["v2", "worked"] {
        let fixture = fixtures().join(name).join("events.ndjson");
        let dir = tempfile::tempdir().unwrap();
        ingest(dir.path(), &[&fixture]);
        let adhoc = query(
            dir.path(),
            "SELECT d.service, date_trunc('week', d.finished_at) AS week, \
                    count(*) AS deployments, change_failure_rate(d.failed) AS cfr, rework_rate(d.rework) AS rework, \
                    deployment_frequency(d.finished_at, 'week') AS df, \
                    failed_deployment_recovery_time(d.recovery_time) AS fdrt \
             FROM deployments d WHERE d.status = 'succeeded' AND d.environment = 'production' \
             GROUP BY 1, 2 ORDER BY 1, 2",
        );
        let table = query(
            dir.path(),
            "SELECT service, bucket_start, deployments, change_failure_rate AS cfr, rework_rate AS rework, deployment_frequency AS df, \
                    failed_deployment_recovery_p50 AS fdrt \
             FROM dora_metrics('week') WHERE environment = 'production' AND deployments > 0 ORDER BY 1, 2",
        );
        assert_eq!(adhoc.len(), table.len());
        for (a, t) in adhoc.iter().zip(&table) {
            assert_eq!(a["deployments"], t["deployments"]);
            assert_eq!(a["cfr"], t["cfr"]);
            assert_eq!(a["rework"], t["rework"]);
            assert_eq!(a["df"], t["df"]);
            assert_eq!(a["fdrt"], t["fdrt"]);
        }
    }
    let fixture = fixtures().join("worked/events.ndjson");
    let dir = tempfile::tempdir().unwrap();
    ingest(dir.path(), &[&fixture]);
    let lead = query(
        dir.path(),
        "SELECT lead_time(lead_time) AS p50, lead_time(lead_time, 0.9) AS p90, dora_tier('lead_time', lead_time(lead_time)) AS tier \
         FROM changes WHERE environment = 'production' AND deployed_at < '2026-03-09T00:00:00Z'",
    );
    let want = query(
        dir.path(),
        "SELECT lead_time_p50 AS p50, lead_time_p90 AS p90, lead_time_tier AS tier FROM dora_metrics('week') WHERE service = 'checkout' AND bucket_start = '2026-03-02T00:00:00Z'",
    );
    assert_eq!(lead, want);
}

/// Every projection and metric, read at `as_of` (`None`: from the read model).
fn everything(data: &Path, as_of: Option<&str>) -> Vec<Value> {
    let extra: Vec<&str> = as_of.map(|t| vec!["--as-of", t]).unwrap_or_default();
    everything_with(data, &extra)
}

/// Every projection and metric, read with the `leadline query` options `extra`.
fn everything_with(data: &Path, extra: &[&str]) -> Vec<Value> {
    let mut out = Vec::new();
    for sql in [
        "SELECT * FROM dora_metrics('day') ORDER BY service, environment, bucket_start",
        "SELECT * FROM dora_metrics('week') ORDER BY service, environment, bucket_start",
        "SELECT * FROM dora_metrics('month', '2026-01-15', '2026-04-01') ORDER BY service, environment, bucket_start",
        "SELECT * FROM deployments ORDER BY deployment_id",
        "SELECT * FROM changes ORDER BY environment, commit_sha",
        "SELECT * FROM incidents ORDER BY incident_id",
        "SELECT * FROM dora_quality",
    ] {
        out.extend(query_with(data, sql, extra));
    }
    out
}

#[test]
fn the_read_model_built_batch_by_batch_agrees_with_folding_the_whole_log() {
    // `mixed` has deployments and commits named from two services: the model
    // must join those services into one component even when the two halves
    // arrive in different batches. The generated log has many services.
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("gen.ndjson");
    generate(&generated, 5, 12, 40);
    for (name, source) in [("mixed", fixtures().join("mixed/events.ndjson")), ("gen", generated)] {
        let text = std::fs::read_to_string(&source).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        shuffle(&mut lines, 0x5eed);
        let data = dir.path().join(name);
        for (i, chunk) in lines.chunks(lines.len() / 7 + 1).enumerate() {
            let p = dir.path().join(format!("{name}-{i}.ndjson"));
            std::fs::write(&p, chunk.join("\n")).unwrap();
            ingest(&data, &[&p]);
        }
        assert!(data.join("model/MANIFEST.json").is_file(), "ingest keeps the read model");
        let in_memory = everything(&data, Some("9999-01-01T00:00:00Z"));
        assert!(in_memory.len() > 20);
        assert_eq!(everything(&data, None), in_memory, "{name}: read model and in-memory fold differ");

        // Without a usable model, queries fold the log in memory (they never
        // write); `leadline rebuild` makes it again. Same answers throughout.
        std::fs::remove_dir_all(data.join("model")).unwrap();
        assert_eq!(everything(&data, None), in_memory, "{name}: answers without a model differ");
        assert!(!data.join("model").exists(), "{name}: a query wrote the read model");
        rebuild(&data, &[]);
        assert!(data.join("model/MANIFEST.json").is_file(), "{name}: rebuild makes the read model");
        assert_eq!(everything(&data, None), in_memory, "{name}: rebuilt model differs");
        std::fs::write(data.join("model/MANIFEST.json"), "{not json").unwrap();
        assert_eq!(everything(&data, None), in_memory, "{name}: answers with a damaged model differ");
        rebuild(&data, &["--from-scratch"]);
        assert_eq!(everything(&data, None), in_memory, "{name}: model rebuilt after damage differs");
        // A model of an older format (v1 had no rework) is not read, and the
        // next writer rebuilds it in the current format.
        let manifest = data.join("model/MANIFEST.json");
        let current: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        let mut old = current.clone();
        old["format"] = Value::from(current["format"].as_u64().unwrap() - 1);
        std::fs::write(&manifest, old.to_string()).unwrap();
        assert_eq!(everything(&data, None), in_memory, "{name}: answers with an older model differ");
        rebuild(&data, &[]);
        let rebuilt: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        assert_eq!(rebuilt["format"], current["format"], "{name}: rebuild upgrades an older model");
        assert_eq!(everything(&data, None), in_memory, "{name}: upgraded model differs");
    }
}

#[test]
fn a_history_folded_in_epochs_agrees_with_folding_the_whole_log() {
    // Half a year appended in time order (each component's last months
    // become epochs of their own, see `readmodel/epochs.rs`), then batches
    // later than everything, late ones into settled and recent months, and
    // a fixture whose ids join services: after each, the model answers as
    // the in-memory fold of the log, and `leadline check` agrees.
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.ndjson");
    generate(&history, 21, 6, 180);
    let text = std::fs::read_to_string(&history).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let data = dir.path().join("data");
    let check = |what: &str| {
        let want = everything(&data, Some("9999-01-01T00:00:00Z"));
        assert!(want.len() > 100, "{what}");
        assert_same(&everything(&data, None), &want, what);
    };
    for (i, chunk) in lines.chunks(lines.len() / 12 + 1).enumerate() {
        let p = dir.path().join(format!("part-{i}.ndjson"));
        std::fs::write(&p, chunk.join("\n")).unwrap();
        ingest(&data, &[&p]);
        if i % 4 == 3 {
            check(&format!("in order, part {i}"));
        }
    }
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("model/MANIFEST.json")).unwrap()).unwrap();
    let epochs = manifest["components"].as_object().unwrap().values().map(|c| c["epochs"].as_array().unwrap().len());
    assert!(epochs.clone().any(|n| n > 1), "{:?}", epochs.collect::<Vec<_>>());
    for (name, start, seed) in [
        ("later", "2026-07-10", "1021"),
        ("late into settled history", "2026-02-02", "2021"),
        ("late into a recent month", "2026-06-03", "3021"),
        ("later again", "2026-07-20", "4021"),
    ] {
        let p = dir.path().join(format!("{seed}.ndjson"));
        let args = ["generate", "--seed", seed, "--services", "6", "--days", "7", "--start", start, "--events", "400"];
        let out = run(&[&args[..], &["--output", &p.display().to_string()]].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        ingest(&data, &[&p]);
        check(name);
    }
    ingest(&data, &[&fixtures().join("mixed/events.ndjson")]);
    check("mixed");
    let out = run(&["check", "--data", &data.display().to_string()]);
    assert!(out.status.success(), "leadline check: {}", String::from_utf8_lossy(&out.stdout));
}

/// Asserts `got == want`, naming the first row that differs.
fn assert_same(got: &[Value], want: &[Value], ctx: &str) {
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        panic!(
            "{ctx} differs at row {i} of {}/{}: got {:?}, want {:?}",
            got.len(),
            want.len(),
            got.get(i),
            want.get(i)
        );
    }
}

#[test]
fn as_of_and_other_windows_give_what_a_clean_fold_of_exactly_those_events_gives() {
    // A history appended in batches (shuffled, so every batch lands inside
    // the span): read as of each of several batches, with several windows,
    // it must answer as a data directory holding exactly the batches
    // ingested by then, and as the in-memory fold of the log without a
    // model. `mixed` joins services into one component.
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("gen.ndjson");
    generate(&generated, 9, 6, 40);
    for (name, source) in [("mixed", fixtures().join("mixed/events.ndjson")), ("gen", generated)] {
        let text = std::fs::read_to_string(&source).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        shuffle(&mut lines, 0xa50f);
        let data = dir.path().join(name);
        let batches: Vec<std::path::PathBuf> = lines
            .chunks(lines.len() / 4 + 1)
            .enumerate()
            .map(|(i, chunk)| {
                let p = dir.path().join(format!("{name}-{i}.ndjson"));
                std::fs::write(&p, chunk.join("\n")).unwrap();
                ingest(&data, &[&p]);
                p
            })
            .collect();
        let stamps: Vec<String> =
            query(&data, "SELECT DISTINCT CAST(ingested_at AS VARCHAR) AS t FROM events ORDER BY t")
                .iter()
                .map(|r| r["t"].as_str().unwrap().to_string())
                .collect();
        assert_eq!(stamps.len(), batches.len(), "{name}: one ingested_at per batch");
        let without_model = dir.path().join(format!("{name}-no-model"));
        std::fs::create_dir_all(&without_model).unwrap();
        for sub in ["events", "rejected", "index"] {
            let from = data.join(sub);
            if from.exists() {
                let status = std::process::Command::new("cp").arg("-a").arg(&from).arg(&without_model).status();
                assert!(status.unwrap().success());
            }
        }
        // Before the first batch: nothing; then after batches 1, 2 and all 4.
        let points: [(usize, &str); 4] =
            [(0, "2000-01-01T00:00:00Z"), (1, &stamps[0]), (2, &stamps[1]), (batches.len(), &stamps[3])];
        for (seen, as_of) in points {
            let clean = dir.path().join(format!("{name}-clean-{seen}"));
            std::fs::create_dir_all(&clean).unwrap();
            for batch in &batches[..seen] {
                ingest(&clean, &[batch]);
            }
            for window in [None, Some("6 hours"), Some("unbounded")] {
                let mut extra = vec!["--as-of", as_of];
                let mut plain = Vec::new();
                if let Some(w) = window {
                    extra.extend(["--attribution-window", w]);
                    plain.extend(["--attribution-window", w]);
                }
                let want = everything_with(&clean, &plain);
                let ctx = format!("{name}: as of batch {seen} ({as_of}), window {window:?}");
                assert_same(&everything_with(&data, &extra), &want, &format!("{ctx}: the read model's refold"));
                assert_same(&everything_with(&without_model, &extra), &want, &format!("{ctx}: the log's fold"));
            }
        }
        // Without an as-of, another window refolds every component.
        for window in ["1 hour", "unbounded"] {
            let extra = ["--attribution-window", window];
            assert_eq!(everything_with(&data, &extra), everything_with(&without_model, &extra), "{name} {window}");
        }
    }
}

#[test]
fn a_read_model_rebuild_killed_midway_is_finished_by_the_next_writer() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gen.ndjson");
    generate(&log, 9, 20, 60);
    let data = dir.path().join("d");
    ingest(&data, &[&log]);
    let want = everything(&data, Some("9999-01-01T00:00:00Z"));
    let mut killed = 0;
    for wait_ms in [5u64, 20, 40, 80, 120, 200] {
        std::fs::remove_dir_all(data.join("model")).unwrap();
        let mut child = std::process::Command::new(bin())
            .args(["rebuild", "--data"])
            .arg(&data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(wait_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        // Whatever the kill left (partial files, no manifest) is never read:
        // queries answer from the log meanwhile.
        assert_eq!(everything(&data, None), want, "after a kill at {wait_ms} ms");
        // The next writer cleans up and finishes the model.
        rebuild(&data, &[]);
        assert!(data.join("model/MANIFEST.json").is_file());
        assert_eq!(everything(&data, None), want, "rebuilt after a kill at {wait_ms} ms");
    }
    assert!(killed >= 2, "only {killed} updates were killed midway");
}
