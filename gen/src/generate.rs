//! The simulation: services, their commits, deployment trains and incidents,
//! day by day, and the volume controller of `events` mode (see the crate
//! docs for the shape of the history).

use std::collections::VecDeque;
use std::io::Write;

use chrono::{Datelike, Days, NaiveDate, NaiveTime};

use crate::error::GenerateError;
use crate::ndjson::NdjsonWriter;
use crate::plan::{Attributes, Environment, EventBuilder, PlannedEvent, Source};
use crate::rng::Rng;
use crate::verify::ReadBack;
use crate::{DAY, EventType, HOUR, MIN, SEC};

/// What `leadline generate` was asked for.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    pub seed: u64,
    /// At least 1.
    pub services: u32,
    /// At least 1.
    pub days: u32,
    /// About how many events to write (at least 1; see the crate docs);
    /// `None`: the volume follows `services x days`.
    pub events: Option<u64>,
    /// First day of the history (00:00 UTC).
    pub start: NaiveDate,
}

impl GenerateConfig {
    /// Whether this config can be generated ([`generate`] checks it too;
    /// this is for callers that want to know before opening an output).
    pub fn validate(&self) -> Result<(), GenerateError> {
        let bad = |reason: String| Err(GenerateError::Config(reason));
        if self.services == 0 {
            return bad("services must be at least 1, got 0".into());
        }
        if self.days == 0 {
            return bad("days must be at least 1, got 0".into());
        }
        if self.events == Some(0) {
            return bad("events must be at least 1 when given, got 0".into());
        }
        let in_four_digit_years = |d: NaiveDate| (0..=9999).contains(&d.year());
        let last_day = self.start.checked_add_days(Days::new(u64::from(self.days) - 1));
        if !in_four_digit_years(self.start) || !last_day.is_some_and(in_four_digit_years) {
            return bad(format!(
                "{} days from {} do not fit in the years 0000-9999 (RFC 3339 timestamps have four-digit years)",
                self.days, self.start
            ));
        }
        Ok(())
    }
}

/// Writes the history as NDJSON to `out` and returns the number of lines
/// (events, redeliveries included) written. `progress` is called with the
/// count so far every 65,536 events and once at the end.
pub fn generate(
    cfg: &GenerateConfig,
    out: &mut impl Write,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, GenerateError> {
    cfg.validate()?;
    let mut g = Gen::new(cfg);
    let day0 = cfg.start.and_time(NaiveTime::MIN).and_utc().timestamp_micros();
    let epoch_day0 = day0.div_euclid(DAY);
    let services = cfg.services as f64;
    let lam_max = (1.0e6 / (services * BASE_EVENTS_PER_UNIT)).clamp(1.0, 60.0);
    // Sum of intensity x weekday factor x services so far, for the rate estimate.
    let mut units = 0.0f64;
    let mut d: u64 = 0;
    loop {
        let day_start = day0 + d as i64 * DAY;
        let lam = match cfg.events {
            None => {
                if d >= cfg.days as u64 {
                    break;
                }
                1.0
            }
            Some(n) => {
                let produced = g.written + g.pending.iter().filter(|e| e.at < day_start).count() as u64;
                if produced >= n || d >= MAX_DAYS {
                    break;
                }
                // Aim 0.5% high so that the count is reached within `days`.
                let remaining = n as f64 * (1.0 + TARGET_MARGIN) - produced as f64;
                let rate = if units > 0.0 && produced > 0 { produced as f64 / units } else { BASE_EVENTS_PER_UNIT };
                let left = if d < cfg.days as u64 {
                    weekday_factor_sum(epoch_day0 + d as i64, cfg.days as u64 - d)
                } else {
                    weekday_factor(epoch_day0 + d as i64)
                };
                (remaining / (rate * services * left)).clamp(0.02, lam_max)
            }
        };
        let wf = weekday_factor(epoch_day0 + d as i64);
        units += lam * wf * services;
        for s in 0..g.svcs.len() {
            g.service_day(s, day_start, lam, wf);
        }
        g.flush(day_start + DAY, i64::MAX, out, progress)?;
        d += 1;
    }
    let end = day0 + d as i64 * DAY;
    g.flush(i64::MAX, end, out, progress)?;
    g.write_out(out)?;
    out.flush()?;
    progress(g.written);
    Ok(g.written)
}

/// Safety stop for `events` mode (about 270 years).
const MAX_DAYS: u64 = 100_000;
/// Events per unit of intensity x weekday factor per service-day (measured),
/// the prior of the volume controller.
const BASE_EVENTS_PER_UNIT: f64 = 33.0;
const WEEKEND_FACTOR: f64 = 0.15;
/// How far past `events` the volume controller aims.
const TARGET_MARGIN: f64 = 0.005;

const COMMITS_PER_DAY: f64 = 18.0;
const TRAINS_PER_DAY: f64 = 4.0;
const BACKGROUND_INCIDENTS_PER_DAY: f64 = 0.02;
const STAGING_FAIL: f64 = 0.08;
const PRODUCTION_FAIL: f64 = 0.06;
const RETRY: f64 = 0.6;
const ROLLBACK: f64 = 0.05;
const INCIDENT_AFTER_DEPLOY: f64 = 0.08;
const INCIDENT_AFTER_ROLLBACK: f64 = 0.4;
const EXPLICIT_CAUSE: f64 = 0.5;
const REOPEN: f64 = 0.10;
const EXPLICIT_CHANGES: f64 = 0.10;
const MAX_EXPLICIT_CHANGES: usize = 100;
/// Of the successes with an explicit list of two or more: shipped in two parts.
const TWO_PARTS: f64 = 0.3;
/// Of the incidents: a hotfix deployment that names the incident goes live
/// before it is resolved.
const HOTFIX: f64 = 0.25;
/// Of the hotfixes: they ship a fix commit of their own (else an explicit
/// empty list: a config change that ships no commit).
const HOTFIX_COMMIT: f64 = 0.7;
const REDELIVER: f64 = 0.005;
const LATE: f64 = 0.02;
/// Commits kept per service and environment for explicit change lists.
const MAX_PENDING_COMMITS: usize = 10_000;

/// 0 = Monday .. 6 = Sunday; 1970-01-01 was a Thursday.
fn weekday(epoch_day: i64) -> i64 {
    (epoch_day + 3).rem_euclid(7)
}

fn weekday_factor(epoch_day: i64) -> f64 {
    if weekday(epoch_day) >= 5 { WEEKEND_FACTOR } else { 1.0 }
}

/// Sum of the weekday factors of `n` days from `epoch_day`.
fn weekday_factor_sum(epoch_day: i64, n: u64) -> f64 {
    let weeks = n / 7;
    let mut sum = weeks as f64 * (5.0 + 2.0 * WEEKEND_FACTOR);
    for i in 0..(n % 7) as i64 {
        sum += weekday_factor(epoch_day + i);
    }
    sum
}

struct Svc {
    name: String,
    team: u32,
    host: Source,
    activity: f64,
    cadence: f64,
    /// Shift of the work hours, in µs.
    shift: i64,
    /// Commits (time, number) not yet shipped to staging / production.
    staging_pending: VecDeque<(i64, u64)>,
    production_pending: VecDeque<(i64, u64)>,
    /// Newest commit so far (number), 0 = none.
    latest_commit: u64,
    /// End of the last train: the next one starts after it.
    busy_until: i64,
    next_pr: u32,
}

struct Gen {
    rng: Rng,
    svcs: Vec<Svc>,
    teams: Vec<String>,
    pending: Vec<PlannedEvent>,
    spare: Vec<PlannedEvent>,
    ready: Vec<PlannedEvent>,
    next_event: u64,
    next_seq: u64,
    next_commit: u64,
    next_deployment: u64,
    next_incident: u64,
    next_pipeline: u32,
    written: u64,
    /// Reused per service-day.
    commit_times: Vec<i64>,
    train_times: Vec<i64>,
    events: EventBuilder,
    ndjson: NdjsonWriter,
    /// Rendered lines not yet written to the output.
    buf: Vec<u8>,
    /// With debug assertions: the check that `buf` ingests as its events.
    read_back: Option<ReadBack>,
}

/// Size of the output buffer (written out when full).
const OUT_BUF: usize = 1 << 20;

impl Gen {
    fn new(cfg: &GenerateConfig) -> Self {
        let mut rng = Rng::seeded(cfg.seed);
        let sha_key = rng.u64();
        let width = (cfg.services.saturating_sub(1)).to_string().len().max(3);
        let mut svcs = Vec::with_capacity(cfg.services as usize);
        let mut teams = Vec::new();
        let mut team_left = 0;
        for i in 0..cfg.services {
            if team_left == 0 {
                team_left = 2 + rng.below(5);
                teams.push(format!("team-{}", teams.len()));
            }
            team_left -= 1;
            let host = if rng.chance(0.75) { Source::Github } else { Source::Gitlab };
            let activity = 0.4 + 1.2 * rng.unit();
            let cadence = 0.5 + rng.unit();
            let shift = [-8, -5, -5, 0, 0, 0, 1, 1, 2, 5][rng.below(10) as usize] * HOUR;
            svcs.push(Svc {
                name: format!("svc-{i:0width$}"),
                team: teams.len() as u32 - 1,
                host,
                activity,
                cadence,
                shift,
                staging_pending: VecDeque::new(),
                production_pending: VecDeque::new(),
                latest_commit: 0,
                busy_until: i64::MIN,
                next_pr: 1 + rng.below(2000) as u32,
            });
        }
        Gen {
            rng,
            svcs,
            teams,
            pending: Vec::new(),
            spare: Vec::new(),
            ready: Vec::new(),
            next_event: 0,
            next_seq: 0,
            next_commit: 1,
            next_deployment: 1,
            next_incident: 1,
            next_pipeline: 10_000,
            written: 0,
            commit_times: Vec::new(),
            train_times: Vec::new(),
            events: EventBuilder::new(cfg.seed, sha_key),
            ndjson: NdjsonWriter::new(),
            buf: Vec::with_capacity(OUT_BUF + 4096),
            read_back: cfg!(debug_assertions).then(ReadBack::new),
        }
    }

    /// Queues an event (giving it its id), maybe late, maybe redelivered.
    fn push(&mut self, mut ev: PlannedEvent) {
        ev.id = self.next_event;
        self.next_event += 1;
        ev.emit = if self.rng.chance(LATE) { ev.at + self.rng.range(MIN, DAY + 1) } else { ev.at };
        ev.seq = self.next_seq;
        self.next_seq += 1;
        if self.rng.chance(REDELIVER) {
            let mut dup = ev.clone();
            dup.emit = ev.emit + self.rng.range(MIN, 12 * HOUR);
            dup.seq = self.next_seq;
            self.next_seq += 1;
            self.pending.push(dup);
        }
        self.pending.push(ev);
    }

    /// Work-hours time of day in [lo_h, hi_h) local, shifted, wrapped into the day.
    fn time_in_day(&mut self, day_start: i64, shift: i64, lo_h: i64, hi_h: i64, unit: i64) -> i64 {
        let local = self.rng.range(lo_h * HOUR, hi_h * HOUR);
        let t = (local + shift).rem_euclid(DAY);
        day_start + t / unit * unit
    }

    fn service_day(&mut self, s: usize, day_start: i64, lam: f64, wf: f64) {
        let (activity, cadence, shift) = {
            let v = &self.svcs[s];
            (v.activity, v.cadence, v.shift)
        };
        let day_end = day_start + DAY;

        let mut commits = std::mem::take(&mut self.commit_times);
        commits.clear();
        let n = self.rng.poisson(lam * wf * activity * COMMITS_PER_DAY);
        for _ in 0..n {
            let t = if self.rng.chance(0.85) {
                self.time_in_day(day_start, shift, 8, 19, SEC)
            } else {
                day_start + self.rng.range(0, DAY) / SEC * SEC
            };
            commits.push(t);
        }
        commits.sort_unstable();

        let mut trains = std::mem::take(&mut self.train_times);
        trains.clear();
        let k = self.rng.poisson(lam * wf * cadence * TRAINS_PER_DAY);
        for _ in 0..k {
            let t = self.time_in_day(day_start, shift, 9, 20, 1000);
            trains.push(t);
        }
        trains.sort_unstable();

        let mut ci = 0;
        for &tt in &trains {
            let t = tt.max(self.svcs[s].busy_until);
            if t >= day_end {
                break;
            }
            while ci < commits.len() && commits[ci] <= t {
                self.commit(s, commits[ci]);
                ci += 1;
            }
            self.train(s, t);
        }
        while ci < commits.len() {
            self.commit(s, commits[ci]);
            ci += 1;
        }
        self.commit_times = commits;
        self.train_times = trains;

        let b = self.rng.poisson(lam * BACKGROUND_INCIDENTS_PER_DAY);
        for _ in 0..b {
            let t = day_start + self.rng.range(0, DAY) / SEC * SEC;
            self.incident(s, t, None);
        }
    }

    fn commit(&mut self, s: usize, at: i64) {
        let no = self.next_commit;
        self.next_commit += 1;
        let mut ev = PlannedEvent::new(EventType::Commit, at, s as u32);
        ev.commit = no;
        ev.team = self.rng.chance(0.7);
        ev.source = if self.rng.chance(0.03) { None } else { Some(self.svcs[s].host) };
        if self.rng.chance(0.15) {
            ev.attributes = Some(Attributes::PullRequest(self.svcs[s].next_pr));
            self.svcs[s].next_pr += 1 + self.rng.below(3) as u32;
        }
        self.push(ev);
        let v = &mut self.svcs[s];
        v.latest_commit = no;
        for q in [&mut v.staging_pending, &mut v.production_pending] {
            q.push_back((at, no));
            if q.len() > MAX_PENDING_COMMITS {
                q.pop_front();
            }
        }
    }

    /// One train: staging, then production, then maybe rollback and incident.
    fn train(&mut self, s: usize, t: i64) {
        // The newest commit, if staging does not have it yet.
        let Some(&(head_at, head)) = self.svcs[s].staging_pending.back() else {
            return;
        };
        debug_assert_eq!(head, self.svcs[s].latest_commit);
        let (ok, end) = self.deploy(s, Environment::Staging, head, head_at, t);
        self.svcs[s].busy_until = end;
        if ok.is_none() {
            return;
        }
        let t2 = end + self.rng.log_uniform(10 * MIN, 3 * HOUR) / 1000 * 1000;
        let (ok, end2) = self.deploy(s, Environment::Production, head, head_at, t2);
        self.svcs[s].busy_until = end2;
        let Some(dep) = ok else { return };
        let mut rolled = false;
        if self.rng.chance(ROLLBACK) {
            rolled = true;
            let at = end2 + self.rng.log_uniform(5 * MIN, 6 * HOUR) / 1000 * 1000;
            let mut ev = PlannedEvent::new(EventType::DeploymentRolledBack, at, s as u32);
            ev.environment = Some(Environment::Production);
            ev.deployment = dep;
            ev.team = self.rng.chance(0.9);
            ev.source = Some(if self.rng.chance(0.3) { Source::Manual } else { self.svcs[s].host });
            self.push(ev);
            self.svcs[s].busy_until = at;
        }
        let p = if rolled { INCIDENT_AFTER_ROLLBACK } else { INCIDENT_AFTER_DEPLOY };
        if self.rng.chance(p) {
            let at = end2 + self.rng.log_uniform(10 * MIN, 20 * HOUR) / SEC * SEC;
            self.incident(s, at, Some(dep));
        }
    }

    /// Deploys `head` to `env` from `t`, retrying failures. Returns the
    /// successful deployment (if any) and when the last attempt ended.
    fn deploy(&mut self, s: usize, env: Environment, head: u64, head_at: i64, t: i64) -> (Option<u64>, i64) {
        const ATTEMPTS: u32 = 3;
        let mut t = t;
        let (fail, lo, hi) = match env {
            Environment::Staging => (STAGING_FAIL, 2 * MIN, 20 * MIN),
            Environment::Production => (PRODUCTION_FAIL, 3 * MIN, 60 * MIN),
        };
        let svc = s as u32;
        let mut end = t;
        for attempt in 1..=ATTEMPTS {
            let dep = self.next_deployment;
            self.next_deployment += 1;
            let source = match self.rng.below(100) {
                0..3 => Some(Source::Manual),
                3..6 => None,
                _ => Some(self.svcs[s].host),
            };
            let started_sha = self.rng.chance(0.6);
            let has_started = !self.rng.chance(0.03);
            if has_started {
                let mut ev = PlannedEvent::new(EventType::DeploymentStarted, t, svc);
                ev.environment = Some(env);
                ev.deployment = dep;
                ev.source = source;
                ev.team = self.rng.chance(0.9);
                if started_sha {
                    ev.commit = head;
                }
                if self.rng.chance(0.1) {
                    ev.attributes = Some(Attributes::Pipeline(self.next_pipeline));
                    self.next_pipeline += 1;
                }
                self.push(ev);
            }
            end = t + self.rng.range(lo, hi) / 1000 * 1000;
            if self.rng.chance(fail) {
                let mut ev = PlannedEvent::new(EventType::DeploymentFailed, end, svc);
                ev.environment = Some(env);
                ev.deployment = dep;
                ev.source = source;
                ev.team = self.rng.chance(0.9);
                ev.commit = head;
                self.push(ev);
                if attempt < ATTEMPTS && self.rng.chance(RETRY) {
                    t = end + self.rng.range(2 * MIN, 30 * MIN) / 1000 * 1000;
                    continue;
                }
                return (None, end);
            }
            let mut ev = PlannedEvent::new(EventType::DeploymentSucceeded, end, svc);
            ev.environment = Some(env);
            ev.deployment = dep;
            ev.source = source;
            ev.team = self.rng.chance(0.9);
            let explicit = self.rng.chance(EXPLICIT_CHANGES);
            let omit_sha = self.rng.chance(0.05);
            let q = match env {
                Environment::Staging => &mut self.svcs[s].staging_pending,
                Environment::Production => &mut self.svcs[s].production_pending,
            };
            let shipped = q.partition_point(|&(at, _)| at <= head_at);
            if explicit && shipped > 0 && shipped <= MAX_EXPLICIT_CHANGES {
                ev.changes = Some(q.iter().take(shipped).map(|&(_, no)| no).collect());
            }
            q.drain(..shipped);
            ev.commit = if ev.changes.is_none() && has_started && started_sha && omit_sha { 0 } else { head };
            // Two parts (two repositories, say), each naming its own changes;
            // the first goes live halfway through, with its last commit as head.
            if let Some(changes) = ev.changes.take_if(|c| c.len() >= 2 && self.rng.chance(TWO_PARTS)) {
                let (first, second) = changes.split_at(changes.len() / 2);
                let mut part = ev.clone();
                part.at = (t + (end - t) / 2) / 1000 * 1000;
                part.commit = first[first.len() - 1];
                part.changes = Some(first.into());
                self.push(part);
                ev.changes = Some(second.into());
            }
            self.push(ev);
            return (Some(dep), end);
        }
        // Not reached: the last attempt returns whether it fails or not.
        (None, end)
    }

    fn incident(&mut self, s: usize, at: i64, cause: Option<u64>) {
        let inc = self.next_incident;
        self.next_incident += 1;
        let svc = s as u32;
        let source = match self.rng.below(100) {
            0..85 => Some(Source::Pagerduty),
            85..95 => Some(Source::Manual),
            _ => None,
        };
        let mut ev = PlannedEvent::new(EventType::IncidentOpened, at, svc);
        ev.environment = Some(Environment::Production);
        ev.incident = inc;
        ev.source = source;
        ev.team = self.rng.chance(0.9);
        if let Some(dep) = cause
            && self.rng.chance(EXPLICIT_CAUSE)
        {
            ev.deployment = dep;
        }
        if self.rng.chance(0.3) {
            ev.attributes = Some(Attributes::Severity(1 + self.rng.below(4) as u32));
        }
        self.push(ev);
        let mut resolved = at + self.restore_time();
        if self.rng.chance(HOTFIX) {
            self.hotfix(s, inc, at, resolved);
        }
        self.resolve(svc, inc, source, resolved);
        if self.rng.chance(REOPEN) {
            let again = resolved + self.rng.log_uniform(10 * MIN, 12 * HOUR) / SEC * SEC;
            let mut ev = PlannedEvent::new(EventType::IncidentOpened, again, svc);
            ev.environment = Some(Environment::Production);
            ev.incident = inc;
            ev.source = source;
            ev.team = self.rng.chance(0.9);
            self.push(ev);
            resolved = again + self.restore_time();
            self.resolve(svc, inc, source, resolved);
        }
    }

    /// A production deployment, outside the trains, that names incident
    /// `inc` (opened at `opened`) and goes live before `resolved`.
    fn hotfix(&mut self, s: usize, inc: u64, opened: i64, resolved: i64) {
        let live = opened + (resolved - opened) * (30 + self.rng.below(60) as i64) / 100 / 1000 * 1000;
        if live <= opened {
            return;
        }
        let svc = s as u32;
        let mut ev = PlannedEvent::new(EventType::DeploymentSucceeded, live, svc);
        ev.environment = Some(Environment::Production);
        ev.deployment = self.next_deployment;
        self.next_deployment += 1;
        ev.incident = inc;
        ev.source = Some(self.svcs[s].host);
        ev.team = self.rng.chance(0.9);
        if self.rng.chance(HOTFIX_COMMIT) {
            // The fix: a commit of its own, outside the trains' queues (the
            // next staging deployment ships it there by the implicit rule).
            let no = self.next_commit;
            self.next_commit += 1;
            let mut fix =
                PlannedEvent::new(EventType::Commit, opened.max(live - self.rng.range(MIN, 30 * MIN)) / SEC * SEC, svc);
            fix.commit = no;
            fix.team = self.rng.chance(0.7);
            fix.source = Some(self.svcs[s].host);
            self.push(fix);
            ev.commit = no;
            ev.changes = Some(Box::new([no]));
        } else {
            ev.changes = Some(Box::new([]));
        }
        self.push(ev);
    }

    fn resolve(&mut self, svc: u32, inc: u64, source: Option<Source>, at: i64) {
        let mut ev = PlannedEvent::new(EventType::IncidentResolved, at, svc);
        ev.environment = Some(Environment::Production);
        ev.incident = inc;
        ev.source = source;
        ev.team = self.rng.chance(0.9);
        self.push(ev);
    }

    fn restore_time(&mut self) -> i64 {
        let u = self.rng.unit();
        let t = if u < 0.7 {
            self.rng.log_uniform(5 * MIN, 4 * HOUR)
        } else if u < 0.95 {
            self.rng.log_uniform(4 * HOUR, DAY)
        } else {
            self.rng.log_uniform(DAY, 5 * DAY)
        };
        t / SEC * SEC
    }

    /// Writes, in emit order, every queued event with `emit < boundary` and
    /// `at < end`; drops those with `at >= end` among them.
    fn flush(
        &mut self,
        boundary: i64,
        end: i64,
        out: &mut impl Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), GenerateError> {
        let mut old = std::mem::take(&mut self.pending);
        let mut keep = std::mem::take(&mut self.spare);
        let mut ready = std::mem::take(&mut self.ready);
        for ev in old.drain(..) {
            if ev.emit < boundary {
                if ev.at < end {
                    ready.push(ev);
                }
            } else {
                keep.push(ev);
            }
        }
        self.pending = keep;
        self.spare = old;
        ready.sort_unstable_by_key(|e| (e.emit, e.seq));
        for plan in ready.drain(..) {
            let svc = &self.svcs[plan.service as usize];
            let event = self.events.build(&plan, &svc.name, &self.teams[svc.team as usize]);
            self.ndjson.write_line(event, &mut self.buf)?;
            if let Some(read_back) = &mut self.read_back {
                read_back.expect(event);
            }
            self.written += 1;
            if self.written & 0xFFFF == 0 {
                progress(self.written);
            }
            if self.buf.len() >= OUT_BUF {
                self.write_out(out)?;
            }
        }
        self.ready = ready;
        Ok(())
    }

    /// Writes the buffered lines to `out` (checking them first, with debug
    /// assertions).
    fn write_out(&mut self, out: &mut impl Write) -> Result<(), GenerateError> {
        if let Some(read_back) = &mut self.read_back {
            read_back.check(&self.buf)?;
        }
        out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use serde_json::Value;

    use super::*;
    use crate::{Event, ndjson_rows};

    fn cfg(seed: u64, services: u32, days: u32, events: Option<u64>) -> GenerateConfig {
        GenerateConfig { seed, services, days, events, start: NaiveDate::from_ymd_opt(2026, 1, 5).unwrap() }
    }

    fn run(c: &GenerateConfig) -> (Vec<u8>, u64) {
        let mut out = Vec::new();
        let n = generate(c, &mut out, &mut |_| {}).unwrap();
        (out, n)
    }

    fn lines(bytes: &[u8]) -> Vec<&str> {
        std::str::from_utf8(bytes).unwrap().lines().collect()
    }

    /// The output as ingest reads it: through the engine's NDJSON reader and
    /// SPEC §1 validation, every line of it.
    fn ingested(bytes: &[u8]) -> Vec<Event> {
        ndjson_rows(std::io::Cursor::new(bytes.to_vec()))
            .map(|row| {
                let row = row.unwrap();
                let line = row.line;
                row.fields.and_then(Event::from_raw_owned).unwrap_or_else(|e| panic!("line {line}: {e}"))
            })
            .collect()
    }

    fn ts(v: &Value) -> i64 {
        chrono::DateTime::parse_from_rfc3339(v["occurred_at"].as_str().unwrap()).unwrap().timestamp_micros()
    }

    #[test]
    fn deterministic_per_seed() {
        let (a, na) = run(&cfg(7, 6, 20, None));
        let (b, nb) = run(&cfg(7, 6, 20, None));
        assert_eq!(na, nb);
        assert!(a == b, "same seed must give identical bytes");
        let (c, _) = run(&cfg(8, 6, 20, None));
        assert!(a != c, "different seeds must differ");
        assert_eq!(lines(&a).len() as u64, na);
    }

    #[test]
    fn every_line_is_a_valid_event() {
        let (out, n) = run(&cfg(42, 8, 45, None));
        assert!(out.ends_with(b"\n"));
        let all = ingested(&out);
        assert_eq!(all.len() as u64, n);
        let mut kinds: HashMap<EventType, u64> = HashMap::new();
        let mut commit_at: HashMap<&str, i64> = HashMap::new();
        let mut seen_ids = HashSet::new();
        let mut with_changes = 0;
        let mut with_cause = 0;
        let mut hotfixes = 0;
        let mut parts: HashMap<&str, u32> = HashMap::new();
        for e in &all {
            assert!(e.event_id.starts_with("evt-42-"));
            *kinds.entry(e.event_type).or_default() += 1;
            match e.event_type {
                EventType::Commit => {
                    let sha = e.commit_sha.as_deref().unwrap();
                    assert_eq!(sha.len(), 40);
                    assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()));
                    if seen_ids.insert(&e.event_id) {
                        assert!(commit_at.insert(sha, e.occurred_at).is_none(), "commit shas are unique");
                    }
                }
                t if t.is_deployment() => {
                    assert!(matches!(e.environment.as_deref(), Some("staging" | "production")));
                    assert!(e.deployment_id.as_deref().unwrap().starts_with("dep-42-"));
                    if e.change_ids.is_some() {
                        assert_eq!(t, EventType::DeploymentSucceeded);
                        with_changes += 1;
                    }
                    if let Some(inc) = e.incident_id.as_deref() {
                        // A hotfix, naming the incident it remediates.
                        assert!(inc.starts_with("inc-42-"));
                        assert_eq!((t, e.environment.as_deref()), (EventType::DeploymentSucceeded, Some("production")));
                        hotfixes += 1;
                    }
                    if t == EventType::DeploymentSucceeded {
                        *parts.entry(e.deployment_id.as_deref().unwrap()).or_default() += 1;
                    }
                }
                _ => {
                    assert_eq!(e.environment.as_deref(), Some("production"));
                    assert!(e.incident_id.as_deref().unwrap().starts_with("inc-42-"));
                    if e.deployment_id.is_some() {
                        with_cause += 1;
                    }
                }
            }
        }
        for k in EventType::ALL {
            assert!(kinds.get(&k).copied().unwrap_or(0) > 0, "no {k:?} in {kinds:?}");
        }
        assert!(with_changes > 0 && with_cause > 0 && hotfixes > 0);
        assert!(parts.values().any(|&n| n >= 2), "no deployment in two parts");
        // Per service and day: within the advertised 20-40.
        let per = n as f64 / (8.0 * 45.0);
        assert!((15.0..45.0).contains(&per), "{per} events per service-day");

        // Every commit a deployment names happened before it.
        for e in all.iter().filter(|e| e.event_type.is_deployment()) {
            for sha in e.commit_sha.iter().chain(e.change_ids.iter().flatten()) {
                let c = commit_at.get(sha.as_str()).unwrap_or_else(|| panic!("unknown commit {sha}"));
                assert!(*c <= e.occurred_at);
            }
        }
    }

    #[test]
    fn redeliveries_are_exact_earlier_duplicates_and_order_is_rough() {
        let (out, n) = run(&cfg(3, 10, 40, None));
        let mut first: HashMap<String, &str> = HashMap::new();
        let mut dups = 0u64;
        let mut max_at = i64::MIN;
        let mut late = 0u64;
        for line in lines(&out) {
            let v: Value = serde_json::from_str(line).unwrap();
            let id = v["event_id"].as_str().unwrap().to_string();
            if let Some(prev) = first.get(&id) {
                assert_eq!(*prev, line, "a redelivery is the exact same line");
                dups += 1;
            } else {
                first.insert(id, line);
            }
            let at = ts(&v);
            if at < max_at {
                late += 1;
                // Late by at most a day, redelivered at most 12 h after that.
                assert!(max_at - at <= DAY + 12 * HOUR + HOUR, "{line}");
            }
            max_at = max_at.max(at);
        }
        let rate = dups as f64 / n as f64;
        assert!(dups > 0 && rate < 0.012, "{dups} redeliveries of {n}");
        assert!(late > 0 && (late as f64) < 0.1 * n as f64, "{late} late of {n}");
    }

    #[test]
    fn incidents_reopen_and_some_stay_open() {
        let (out, _) = run(&cfg(11, 20, 60, None));
        let mut opens: HashMap<String, u32> = HashMap::new();
        let mut resolves: HashMap<String, u32> = HashMap::new();
        let mut succeeded = HashSet::new();
        let mut causes = Vec::new();
        for e in ingested(&out) {
            match e.event_type {
                EventType::IncidentOpened => {
                    *opens.entry(e.incident_id.unwrap()).or_default() += 1;
                    causes.extend(e.deployment_id);
                }
                EventType::IncidentResolved => *resolves.entry(e.incident_id.unwrap()).or_default() += 1,
                EventType::DeploymentSucceeded => {
                    succeeded.insert(e.deployment_id.unwrap());
                }
                _ => {}
            }
        }
        assert!(opens.values().any(|&c| c >= 2), "some incident is reopened");
        assert!(opens.keys().any(|k| !resolves.contains_key(k)), "some incident is still open");
        assert!(resolves.keys().all(|k| opens.contains_key(k)), "no orphan resolves");
        assert!(causes.iter().all(|d| succeeded.contains(d)));
    }

    #[test]
    fn event_count_lands_near_the_request() {
        for (services, days, want) in [(8, 30, 20_000u64), (50, 365, 3_000), (2, 5, 30_000)] {
            let c = cfg(5, services, days, Some(want));
            let (out, n) = run(&c);
            assert_eq!(lines(&out).len() as u64, n);
            assert!(n >= want, "{n} < {want}");
            assert!(n as f64 <= want as f64 * 1.1 + 2_000.0, "{n} for {want}");
        }
        let (out, n) = run(&cfg(5, 8, 30, Some(20_000)));
        let (out2, _) = run(&cfg(5, 8, 30, Some(20_000)));
        assert!(out == out2);
        // The requested days are used when the request fits them.
        let last: Value = serde_json::from_str(lines(&out).last().unwrap()).unwrap();
        let end = ts(&last);
        let start = cfg(5, 8, 30, None).start.and_time(NaiveTime::MIN).and_utc().timestamp_micros();
        assert!(end >= start + 25 * DAY && end < start + 32 * DAY, "{n}");
    }

    #[test]
    fn events_stay_within_the_requested_days() {
        let c = cfg(9, 5, 21, None);
        let start = c.start.and_time(NaiveTime::MIN).and_utc().timestamp_micros();
        let events = ingested(&run(&c).0);
        assert!(events.iter().all(|e| (start..start + 21 * DAY).contains(&e.occurred_at)));
        // Some land on the last day, so the range is used, not just respected.
        assert!(events.iter().any(|e| e.occurred_at >= start + 20 * DAY));
    }

    #[test]
    fn progress_is_reported() {
        let mut calls = Vec::new();
        let mut out = std::io::sink();
        let n = generate(&cfg(1, 30, 90, None), &mut out, &mut |c| calls.push(c)).unwrap();
        assert!(n > 65_536);
        assert_eq!(calls[0], 65_536);
        assert_eq!(*calls.last().unwrap(), n);
        assert!(calls.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn bad_configs_are_errors_that_say_why() {
        for (c, why) in [
            (cfg(1, 0, 10, None), "services must be at least 1"),
            (cfg(1, 0, 10, Some(100)), "services must be at least 1"),
            (cfg(1, 3, 0, None), "days must be at least 1"),
            (cfg(1, 3, 0, Some(100)), "days must be at least 1"),
            (cfg(1, 3, 10, Some(0)), "events must be at least 1"),
            (
                GenerateConfig { start: NaiveDate::from_ymd_opt(9999, 12, 25).unwrap(), ..cfg(1, 3, 10, None) },
                "10 days from 9999-12-25 do not fit in the years 0000-9999",
            ),
        ] {
            let mut out = Vec::new();
            let err = generate(&c, &mut out, &mut |_| {}).unwrap_err();
            assert!(matches!(err, GenerateError::Config(_)), "{err:?}");
            assert!(err.to_string().contains(why), "{err}");
            assert!(out.is_empty());
        }
        // The last day that fits is fine.
        let last = GenerateConfig { start: NaiveDate::from_ymd_opt(9999, 12, 31).unwrap(), ..cfg(1, 1, 1, None) };
        assert!(ingested(&run(&last).0).iter().all(|e| e.event_id.starts_with("evt-1-")));
    }
}
