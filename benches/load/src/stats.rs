//! What the run measured: per kind of request, its latencies and outcomes;
//! the report as a table or JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

/// What was measured for one kind of request (or for connecting).
#[derive(Debug, Default, Clone)]
pub struct KindStats {
    /// Every request's latency, whatever its outcome.
    pub latencies: Vec<Duration>,
    pub ok: u64,
    /// Errors by SQLSTATE (or `closed`, `timeout`, `client` when the
    /// server sent none).
    pub errors: BTreeMap<String, u64>,
    /// The first message seen for each error code.
    pub messages: BTreeMap<String, String>,
}

impl KindStats {
    pub fn ok(&mut self, took: Duration) {
        self.latencies.push(took);
        self.ok += 1;
    }

    pub fn error(&mut self, took: Duration, code: &str, message: String) {
        self.latencies.push(took);
        *self.errors.entry(code.to_string()).or_default() += 1;
        self.messages.entry(code.to_string()).or_insert(message);
    }

    pub fn merge(&mut self, other: KindStats) {
        self.latencies.extend(other.latencies);
        self.ok += other.ok;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        for (code, m) in other.messages {
            self.messages.entry(code).or_insert(m);
        }
    }

    pub fn count(&self) -> u64 {
        self.latencies.len() as u64
    }

    /// Latency percentiles in ms (nearest rank): p50, p95, p99, max.
    pub fn percentiles(&self) -> Option<[f64; 4]> {
        if self.latencies.is_empty() {
            return None;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let at = |p: f64| {
            let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            sorted[rank - 1].as_secs_f64() * 1000.0
        };
        Some([at(0.50), at(0.95), at(0.99), at(1.0)])
    }
}

/// A worker's (or the whole run's) measurements, by operation name:
/// `connect`, then the request kinds.
#[derive(Debug, Default)]
pub struct Recorder {
    pub ops: BTreeMap<&'static str, KindStats>,
}

impl Recorder {
    pub fn op(&mut self, name: &'static str) -> &mut KindStats {
        self.ops.entry(name).or_default()
    }

    pub fn merge(&mut self, other: Recorder) {
        for (name, stats) in other.ops {
            self.op(name).merge(stats);
        }
    }
}

/// The outcome of checking the acknowledged inserts against `events`.
#[derive(Debug, Default)]
pub struct Verification {
    pub acknowledged: u64,
    /// Acknowledged and present exactly once.
    pub verified: u64,
    pub missing: Vec<String>,
    /// Present more than once: (event_id, count).
    pub duplicated: Vec<(String, u64)>,
    /// Present although their INSERT failed or timed out (allowed: the
    /// server may commit and then fail to answer).
    pub unacknowledged_present: u64,
    /// Why the check could not run, if it could not.
    pub failed: Option<String>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.failed.is_none() && self.missing.is_empty() && self.duplicated.is_empty()
    }
}

/// The server's memory, from /proc/PID/status.
#[derive(Debug, Clone, Copy)]
pub struct ServerMemory {
    pub pid: u32,
    pub peak_kib: u64,
    pub rss_kib: u64,
}

pub fn server_memory(pid: u32) -> Result<ServerMemory, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok(ServerMemory { pid, peak_kib: field("VmHWM:")?, rss_kib: field("VmRSS:")? })
}

/// What the open loop offered and how far behind it fell.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenLoop {
    /// Requests per second offered.
    pub rate: f64,
    /// Requests due during the run.
    pub scheduled: u64,
    /// Requests due but not sent (every 100 ms): the largest seen, the
    /// largest in the first half, and at the end (those were never sent).
    pub backlog_max: u64,
    pub backlog_first_half_max: u64,
    pub backlog_end: u64,
}

impl OpenLoop {
    /// The backlog did not grow: at the end no larger than in the first half,
    /// or than one waiting request per connection.
    pub fn sustained(&self, connections: usize) -> bool {
        self.backlog_end <= self.backlog_first_half_max.max(connections as u64)
    }
}

/// Everything the report shows.
pub struct Report<'a> {
    pub settings: Value,
    pub connections: usize,
    pub connected: usize,
    pub elapsed: Duration,
    pub recorder: &'a Recorder,
    pub order: &'a [&'static str],
    /// (operation, SQLSTATE) pairs that are expected outcomes.
    pub expected: &'a dyn Fn(&str, &str) -> bool,
    pub verification: Option<&'a Verification>,
    pub memory: Option<Result<ServerMemory, String>>,
    pub open_loop: Option<OpenLoop>,
}

/// What is not a request: connecting, resent cancels, the open loop's lag.
const NOT_REQUESTS: [&str; 3] = ["connect", "resent", "lag"];

impl Report<'_> {
    pub fn unexpected_errors(&self) -> u64 {
        let mut n = 0;
        for (op, stats) in &self.recorder.ops {
            for (code, count) in &stats.errors {
                if !(self.expected)(op, code) {
                    n += count;
                }
            }
        }
        n
    }

    pub fn passed(&self) -> bool {
        self.unexpected_errors() == 0 && self.verification.is_none_or(Verification::passed)
    }

    fn qps(&self, stats: &KindStats) -> f64 {
        stats.count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Requests answered (whatever the outcome) per second of the run.
    fn achieved(&self) -> f64 {
        let answered: u64 =
            self.recorder.ops.iter().filter(|(n, _)| !NOT_REQUESTS.contains(n)).map(|(_, s)| s.count()).sum();
        answered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn open_loop_json(&self) -> Option<Value> {
        let o = self.open_loop?;
        Some(json!({
            "offered_qps": o.rate, "achieved_qps": self.achieved(), "scheduled": o.scheduled,
            "backlog_max": o.backlog_max, "backlog_first_half_max": o.backlog_first_half_max,
            "backlog_end": o.backlog_end, "sustained": o.sustained(self.connections),
        }))
    }

    pub fn json(&self) -> Value {
        let mut ops = serde_json::Map::new();
        for name in self.order {
            let Some(stats) = self.recorder.ops.get(name) else { continue };
            let p = stats.percentiles();
            let pick = |i: usize| p.map(|p| p[i]);
            let errors: BTreeMap<&String, Value> = stats
                .errors
                .iter()
                .map(|(code, n)| {
                    let message = stats.messages.get(code).cloned().unwrap_or_default();
                    (code, json!({"count": n, "expected": (self.expected)(name, code), "message": message}))
                })
                .collect();
            ops.insert(
                name.to_string(),
                json!({
                    "count": stats.count(), "ok": stats.ok, "qps": self.qps(stats),
                    "p50_ms": pick(0), "p95_ms": pick(1), "p99_ms": pick(2), "max_ms": pick(3),
                    "errors": errors,
                }),
            );
        }
        let verification = self.verification.map(|v| {
            json!({
                "acknowledged": v.acknowledged, "verified": v.verified,
                "missing": v.missing.len(), "missing_ids": v.missing.iter().take(20).collect::<Vec<_>>(),
                "duplicated": v.duplicated.len(), "duplicated_ids": v.duplicated.iter().take(20).collect::<Vec<_>>(),
                "unacknowledged_present": v.unacknowledged_present, "failed": v.failed, "passed": v.passed(),
            })
        });
        let server = self.memory.as_ref().map(|m| match m {
            Ok(m) => json!({"pid": m.pid, "peak_rss_kib": m.peak_kib, "rss_kib": m.rss_kib}),
            Err(e) => json!({"error": e}),
        });
        json!({
            "settings": self.settings,
            "connections": self.connections,
            "connected": self.connected,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "kinds": ops,
            "inserts": verification,
            "open_loop": self.open_loop_json(),
            "server": server,
            "unexpected_errors": self.unexpected_errors(),
            "passed": self.passed(),
        })
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let line = |out: &mut String, s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        let mode = match self.open_loop {
            Some(o) => format!("open loop at {} q/s (latency from each request's due time)", o.rate),
            None => "closed loop".to_string(),
        };
        line(
            &mut out,
            format!(
                "leadline-load: {} connections ({} connected), {:.1} s, {mode}",
                self.connections,
                self.connected,
                self.elapsed.as_secs_f64()
            ),
        );
        line(
            &mut out,
            format!(
                "{:<8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}  errors (SQLSTATE×count)",
                "kind", "count", "ok", "q/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
            ),
        );
        for name in self.order {
            let Some(stats) = self.recorder.ops.get(name) else { continue };
            let p = stats.percentiles().unwrap_or([f64::NAN; 4]);
            let errors: Vec<String> = stats
                .errors
                .iter()
                .map(|(code, n)| {
                    let mark = if (self.expected)(name, code) { "" } else { " UNEXPECTED" };
                    format!("{code}×{n}{mark}")
                })
                .collect();
            line(
                &mut out,
                format!(
                    "{:<8} {:>8} {:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}  {}",
                    name,
                    stats.count(),
                    stats.ok,
                    self.qps(stats),
                    p[0],
                    p[1],
                    p[2],
                    p[3],
                    errors.join(" ")
                ),
            );
        }
        for (name, stats) in &self.recorder.ops {
            for (code, message) in &stats.messages {
                line(&mut out, format!("  {name} {code}: {message}"));
            }
        }
        if let Some(v) = self.verification {
            match &v.failed {
                Some(e) => line(&mut out, format!("inserts: the check could not run: {e}")),
                None => line(
                    &mut out,
                    format!(
                        "inserts: {} acknowledged, {} present exactly once, {} missing, {} duplicated \
                         ({} unacknowledged but present)",
                        v.acknowledged,
                        v.verified,
                        v.missing.len(),
                        v.duplicated.len(),
                        v.unacknowledged_present
                    ),
                ),
            }
            for id in v.missing.iter().take(10) {
                line(&mut out, format!("  missing: {id}"));
            }
            for (id, n) in v.duplicated.iter().take(10) {
                line(&mut out, format!("  {n} times: {id}"));
            }
        }
        if let Some(o) = self.open_loop {
            line(
                &mut out,
                format!(
                    "open loop: offered {:.1} q/s, achieved {:.1} q/s; {} due, backlog max {} (first half {}), \
                     {} never sent: {}",
                    o.rate,
                    self.achieved(),
                    o.scheduled,
                    o.backlog_max,
                    o.backlog_first_half_max,
                    o.backlog_end,
                    if o.sustained(self.connections) { "SUSTAINED" } else { "NOT SUSTAINED (the backlog grew)" }
                ),
            );
        }
        match &self.memory {
            Some(Ok(m)) => line(
                &mut out,
                format!(
                    "server pid {}: peak RSS (VmHWM) {:.1} MiB, RSS now {:.1} MiB",
                    m.pid,
                    m.peak_kib as f64 / 1024.0,
                    m.rss_kib as f64 / 1024.0
                ),
            ),
            Some(Err(e)) => line(&mut out, format!("server memory: {e}")),
            None => {}
        }
        line(
            &mut out,
            format!(
                "unexpected errors: {}; {}",
                self.unexpected_errors(),
                if self.passed() { "PASSED" } else { "FAILED" }
            ),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = KindStats::default();
        for ms in 1..=100 {
            s.ok(Duration::from_millis(ms));
        }
        assert_eq!(s.percentiles(), Some([50.0, 95.0, 99.0, 100.0]));
        assert_eq!(KindStats::default().percentiles(), None);
    }

    #[test]
    fn an_open_loop_is_sustained_when_its_backlog_does_not_grow() {
        let o =
            |first_half, end| OpenLoop { backlog_first_half_max: first_half, backlog_end: end, ..Default::default() };
        assert!(o(0, 0).sustained(50));
        assert!(o(0, 50).sustained(50), "one waiting request per connection");
        assert!(!o(0, 51).sustained(50));
        assert!(o(120, 100).sustained(50));
        assert!(!o(120, 400).sustained(50));
    }

    #[test]
    fn reads_this_process_memory() {
        let m = server_memory(std::process::id()).unwrap();
        assert!(m.peak_kib >= m.rss_kib && m.rss_kib > 0);
        assert!(server_memory(u32::MAX).is_err());
    }
}
