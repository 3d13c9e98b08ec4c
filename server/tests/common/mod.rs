//! Shared helpers of the integration tests: run the real `leadline` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_leadline"))
}

pub fn fixtures() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [here.join("../../shared/fixtures"), here.join("../shared/fixtures")];
    candidates.into_iter().find(|p| p.is_dir()).expect("../shared/fixtures beside the checkout")
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).env_remove("LEADLINE_DATA").output().expect("run leadline")
}

/// `leadline rebuild --data DIR ARGS…`, which must succeed.
pub fn rebuild(dir: &Path, args: &[&str]) {
    let mut all = vec!["rebuild", "--data"];
    let dir = dir.display().to_string();
    all.push(&dir);
    all.extend_from_slice(args);
    let out = run(&all);
    assert!(out.status.success(), "leadline rebuild failed: {}", String::from_utf8_lossy(&out.stderr));
}

pub fn ingest(dir: &Path, files: &[&Path]) -> Output {
    let mut args = vec!["ingest".to_string(), "--data".into(), dir.display().to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs)
}

/// Parses `file: appended A, duplicates D, conflicts C, rejected R`.
pub fn summary(out: &Output) -> Vec<[u64; 4]> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let tail = l.rsplit_once(": appended ")?.1;
            let nums: Vec<u64> = tail.split(", ").map(|p| p.rsplit(' ').next().unwrap().parse().unwrap()).collect();
            Some([nums[0], nums[1], nums[2], nums[3]])
        })
        .collect()
}

pub fn query(dir: &Path, sql: &str) -> Vec<serde_json::Value> {
    query_with(dir, sql, &[])
}

pub fn query_with(dir: &Path, sql: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let d = dir.display().to_string();
    let mut args = vec!["query", "--data", &d, "--format", "json"];
    args.extend_from_slice(extra);
    args.push(sql);
    let out = run(&args);
    assert!(out.status.success(), "query failed: {sql}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json output")
}

pub fn scalar(dir: &Path, sql: &str) -> i64 {
    let rows = query(dir, sql);
    let v = rows[0].as_object().unwrap().values().next().unwrap().clone();
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

pub fn generate(path: &Path, seed: u64, services: u32, days: u32) {
    let p = path.display().to_string();
    let out = run(&[
        "generate",
        "--seed",
        &seed.to_string(),
        "--services",
        &services.to_string(),
        "--days",
        &days.to_string(),
        "--output",
        &p,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
