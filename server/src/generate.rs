//! Synthetic delivery history for `leadline generate`.
//!
//! Writes a realistic, deterministic (per seed and config) NDJSON event log in
//! the canonical shape of SPEC §1: commits, staged then production
//! deployments, retries, rollbacks and production incidents, plus the noise a
//! real feed has (redeliveries and late arrivals). Every line is a valid event;
//! invalid rows are the business of the tests that want them.
//!
//! # Shape of the history
//!
//! * Services `svc-000`.. (zero-padded to at least three digits), grouped
//!   into teams `team-0`.. of 2 to 6 consecutive services. Each service is
//!   hosted on `github` (75%) or `gitlab`, has an activity factor (0.4..1.6)
//!   and a deploy cadence factor (0.5..1.5), and works in one of a few time
//!   zones (work hours shifted by -8..+5 hours).
//! * Per service and day, at intensity 1: Poisson(18 x activity) commits on a
//!   weekday, 15% of that on weekends; 85% of them in work hours. Commits
//!   have whole-second timestamps and a unique 40-hex `commit_sha`.
//! * Deployment trains: Poisson(4 x cadence) attempts per weekday (15% on
//!   weekends), in work hours, one at a time per service (a train starts
//!   after the previous one finished; a train that would start after
//!   midnight is dropped), and only when there are commits not yet in
//!   staging. A train deploys the newest commit to `staging` (2-20 min,
//!   fails 8%), then 10 min-3 h later to `production` (3-60 min, fails 6%).
//!   A failed attempt is retried with a new `deployment_id` 60% of the time,
//!   at most twice. Deployment events carry millisecond timestamps.
//!   `deployment_succeeded` carries `commit_sha` = the deployed head (5% of
//!   them leave it to their `deployment_started`), and 10% of them also an
//!   explicit `change_ids` list: exactly the commits the SPEC §2 rule would
//!   ship (at most 100; longer lists fall back to the implicit rule).
//!   `deployment_started` carries the head 60% of the time and is missing
//!   for 3% of deployments.
//! * 5% of successful production deployments get a `deployment_rolled_back`
//!   5 min-6 h later. A successful production deployment causes an incident
//!   with probability 8% (40% if rolled back), opened 10 min-20 h after it
//!   went live; half of those name the deployment (`deployment_id`), the
//!   rest leave attribution to inference. Plus background incidents,
//!   Poisson(0.02 x intensity) per service and day, with no cause.
//!   Incidents are resolved after 5 min-4 h (70%), 4 h-1 d (25%) or
//!   1-5 d (5%); 10% are reopened (a second `incident_opened` 10 min-12 h
//!   after the resolve, then another resolve). Events that would fall after
//!   the end of the history are not written, which leaves some incidents
//!   open (and the odd deployment unfinished).
//! * `source`: the service's host for commits and deployments (3% of
//!   deployments `manual`), `pagerduty` (85%) or `manual` (10%) for
//!   incidents; 3-5% of events carry no source. `team` is present on 70% of
//!   commits and 90% of the other events. `attributes` on some events:
//!   `{"pr":N}` (15% of commits), `{"pipeline":N}` (10% of
//!   `deployment_started`), `{"severity":"sevN"}` (30% of first
//!   `incident_opened`).
//! * At intensity 1 that is about 33 events per service per weekday, 5 per
//!   weekend day, about 25 averaged over a week.
//! * Noise: 0.5% of events are redelivered (the identical line again, 1 min
//!   to 12 h of emit time later), 2% arrive late (written up to 24 h after
//!   their `occurred_at`); otherwise the file is in `occurred_at` order.
//!   `event_id`s are `evt-<seed>-<n>`, `deployment_id`s `dep-<seed>-<n>`,
//!   `incident_id`s `inc-<seed>-<n>`.
//!
//! # Volume
//!
//! Without `events`, the history spans exactly `days` days at intensity 1.
//! With `events = Some(n)`, the intensity of each day (a multiplier of the
//! commit, train and incident rates) is steered so that the total lands at
//! about `n` (aiming 0.5% high) over `days` days, and generation stops at
//! the first day boundary at which at least `n` events are in the file: the
//! returned count is always >= n, overshooting by at most about one day's
//! volume (typically well under 1%). The
//! intensity is clamped to 0.02..=60 (and lower for very many services, to
//! keep one day's buffer near a million events), so when `n` is far from
//! what `services x days` can hold, the history stops before `days` (small
//! `n`) or runs past `days` (large `n`) instead.
//!
//! # Performance and memory
//!
//! The history is simulated day by day; the events of a day (plus future
//! events already decided, such as resolves, and late arrivals) wait in a
//! buffer ordered by emit time, flushed at each day boundary. Memory is thus
//! bounded by about one day's volume, not the history. Lines are formatted
//! by hand into a 1 MiB buffer (no per-event allocation).
//!
//! Determinism: the RNG is ChaCha8 seeded with the seed, consumed only
//! through `next_u64` with this module's own samplers, so the same seed and
//! config give byte-identical output.

use std::collections::VecDeque;
use std::io::{self, Write};

use chrono::NaiveDate;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What `leadline generate` was asked for.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    pub seed: u64,
    pub services: u32,
    pub days: u32,
    /// About how many events to write (see the module docs); `None`: the
    /// volume follows `services x days`.
    pub events: Option<u64>,
    /// First day of the history (00:00 UTC).
    pub start: NaiveDate,
}

/// Writes the history as NDJSON to `out` and returns the number of lines
/// (events, redeliveries included) written. `progress` is called with the
/// count so far every 65,536 events and once at the end.
pub fn generate(cfg: &GenerateConfig, out: &mut impl Write, progress: &mut dyn FnMut(u64)) -> io::Result<u64> {
    if cfg.services == 0 || (cfg.events.is_none() && cfg.days == 0) || cfg.events == Some(0) {
        out.flush()?;
        progress(0);
        return Ok(0);
    }
    let mut g = Gen::new(cfg);
    let day0 = cfg.start.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_micros();
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
    out.write_all(&g.buf)?;
    g.buf.clear();
    out.flush()?;
    progress(g.written);
    Ok(g.written)
}

const SEC: i64 = 1_000_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
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

const K_COMMIT: u8 = 0;
const K_STARTED: u8 = 1;
const K_SUCCEEDED: u8 = 2;
const K_FAILED: u8 = 3;
const K_ROLLED_BACK: u8 = 4;
const K_OPENED: u8 = 5;
const K_RESOLVED: u8 = 6;
const KIND_NAMES: [&[u8]; 7] = [
    b"commit",
    b"deployment_started",
    b"deployment_succeeded",
    b"deployment_failed",
    b"deployment_rolled_back",
    b"incident_opened",
    b"incident_resolved",
];

const ENV_NONE: u8 = 0;
const ENV_STAGING: u8 = 1;
const ENV_PRODUCTION: u8 = 2;
const ENV_NAMES: [&[u8]; 3] = [b"", b"staging", b"production"];

const SRC_NONE: u8 = 0;
const SRC_GITHUB: u8 = 1;
const SRC_GITLAB: u8 = 2;
const SRC_PAGERDUTY: u8 = 3;
const SRC_MANUAL: u8 = 4;
const SRC_NAMES: [&[u8]; 5] = [b"", b"github", b"gitlab", b"pagerduty", b"manual"];

const ATTR_NONE: u8 = 0;
const ATTR_PR: u8 = 1;
const ATTR_PIPELINE: u8 = 2;
const ATTR_SEVERITY: u8 = 3;

/// One event waiting to be written. Ids are numbers, formatted on output.
#[derive(Clone)]
struct Ev {
    /// When the line is written (`at`, or later for late arrivals and
    /// redeliveries).
    emit: i64,
    /// Push order: the tie-break of `emit`, unique.
    seq: u64,
    /// `occurred_at`, µs since the epoch.
    at: i64,
    /// `evt-<seed>-<id>`.
    id: u64,
    /// Commit number (formatted as a sha), 0 = none.
    commit: u64,
    /// 0 = none.
    deployment: u64,
    /// 0 = none.
    incident: u64,
    /// Explicit `change_ids` (commit numbers).
    changes: Option<Box<[u64]>>,
    service: u32,
    attr_val: u32,
    kind: u8,
    env: u8,
    source: u8,
    attr: u8,
    team: bool,
}

impl Ev {
    fn new(kind: u8, at: i64, service: u32) -> Self {
        Ev {
            emit: 0,
            seq: 0,
            at,
            id: 0,
            commit: 0,
            deployment: 0,
            incident: 0,
            changes: None,
            service,
            attr_val: 0,
            kind,
            env: ENV_NONE,
            source: SRC_NONE,
            attr: ATTR_NONE,
            team: false,
        }
    }
}

/// The RNG and this module's samplers (only `next_u64` of ChaCha8 is used,
/// so the stream does not depend on `rand`'s distribution code).
struct Rng(ChaCha8Rng);

impl Rng {
    fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: u64) -> u64 {
        ((self.u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(hi > lo);
        lo + self.below((hi - lo) as u64) as i64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Log-uniform in [lo, hi).
    fn log_uniform(&mut self, lo: i64, hi: i64) -> i64 {
        let v = (lo as f64 * ((hi as f64 / lo as f64).ln() * self.unit()).exp()) as i64;
        v.clamp(lo, hi - 1)
    }

    fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            0
        } else if mean < 30.0 {
            let limit = (-mean).exp();
            let mut k = 0;
            let mut p = self.unit();
            while p > limit {
                k += 1;
                p *= self.unit();
            }
            k
        } else {
            // Normal approximation; Irwin-Hall keeps it to plain arithmetic.
            let mut z = -6.0;
            for _ in 0..12 {
                z += self.unit();
            }
            (mean + mean.sqrt() * z).round().max(0.0) as u64
        }
    }
}

struct Svc {
    name: Vec<u8>,
    team: u32,
    host: u8,
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
    seed: u64,
    /// Key mixed into commit shas.
    sha_key: u64,
    svcs: Vec<Svc>,
    teams: Vec<Vec<u8>>,
    pending: Vec<Ev>,
    spare: Vec<Ev>,
    ready: Vec<Ev>,
    next_event: u64,
    next_seq: u64,
    next_commit: u64,
    next_deployment: u64,
    next_incident: u64,
    next_pipeline: u32,
    written: u64,
    buf: Vec<u8>,
    /// Reused per service-day.
    commit_times: Vec<i64>,
    train_times: Vec<i64>,
    /// Formatting cache: epoch day and its `YYYY-MM-DDT`.
    date_day: i64,
    date_text: [u8; 11],
}

const OUT_BUF: usize = 1 << 20;

impl Gen {
    fn new(cfg: &GenerateConfig) -> Self {
        let mut rng = Rng(ChaCha8Rng::seed_from_u64(cfg.seed));
        let sha_key = rng.u64();
        let width = (cfg.services.saturating_sub(1)).to_string().len().max(3);
        let mut svcs = Vec::with_capacity(cfg.services as usize);
        let mut teams = Vec::new();
        let mut team_left = 0;
        for i in 0..cfg.services {
            if team_left == 0 {
                team_left = 2 + rng.below(5);
                teams.push(format!("team-{}", teams.len()).into_bytes());
            }
            team_left -= 1;
            let host = if rng.chance(0.75) { SRC_GITHUB } else { SRC_GITLAB };
            let activity = 0.4 + 1.2 * rng.unit();
            let cadence = 0.5 + rng.unit();
            let shift = [-8, -5, -5, 0, 0, 0, 1, 1, 2, 5][rng.below(10) as usize] * HOUR;
            svcs.push(Svc {
                name: format!("svc-{i:0width$}").into_bytes(),
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
            seed: cfg.seed,
            sha_key,
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
            buf: Vec::with_capacity(OUT_BUF + 4096),
            commit_times: Vec::new(),
            train_times: Vec::new(),
            date_day: i64::MIN,
            date_text: [0; 11],
        }
    }

    /// Queues an event (giving it its id), maybe late, maybe redelivered.
    fn push(&mut self, mut ev: Ev) {
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
        let mut ev = Ev::new(K_COMMIT, at, s as u32);
        ev.commit = no;
        ev.team = self.rng.chance(0.7);
        ev.source = if self.rng.chance(0.03) { SRC_NONE } else { self.svcs[s].host };
        if self.rng.chance(0.15) {
            ev.attr = ATTR_PR;
            ev.attr_val = self.svcs[s].next_pr;
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
        let (ok, end) = self.deploy(s, ENV_STAGING, head, head_at, t);
        self.svcs[s].busy_until = end;
        if ok.is_none() {
            return;
        }
        let t2 = end + self.rng.log_uniform(10 * MIN, 3 * HOUR) / 1000 * 1000;
        let (ok, end2) = self.deploy(s, ENV_PRODUCTION, head, head_at, t2);
        self.svcs[s].busy_until = end2;
        let Some(dep) = ok else { return };
        let mut rolled = false;
        if self.rng.chance(ROLLBACK) {
            rolled = true;
            let at = end2 + self.rng.log_uniform(5 * MIN, 6 * HOUR) / 1000 * 1000;
            let mut ev = Ev::new(K_ROLLED_BACK, at, s as u32);
            ev.env = ENV_PRODUCTION;
            ev.deployment = dep;
            ev.team = self.rng.chance(0.9);
            ev.source = if self.rng.chance(0.3) { SRC_MANUAL } else { self.svcs[s].host };
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
    fn deploy(&mut self, s: usize, env: u8, head: u64, head_at: i64, t: i64) -> (Option<u64>, i64) {
        let mut t = t;
        let (fail, lo, hi) =
            if env == ENV_STAGING { (STAGING_FAIL, 2 * MIN, 20 * MIN) } else { (PRODUCTION_FAIL, 3 * MIN, 60 * MIN) };
        let svc = s as u32;
        for attempt in 0..3 {
            let dep = self.next_deployment;
            self.next_deployment += 1;
            let source = match self.rng.below(100) {
                0..3 => SRC_MANUAL,
                3..6 => SRC_NONE,
                _ => self.svcs[s].host,
            };
            let started_sha = self.rng.chance(0.6);
            let has_started = !self.rng.chance(0.03);
            if has_started {
                let mut ev = Ev::new(K_STARTED, t, svc);
                ev.env = env;
                ev.deployment = dep;
                ev.source = source;
                ev.team = self.rng.chance(0.9);
                if started_sha {
                    ev.commit = head;
                }
                if self.rng.chance(0.1) {
                    ev.attr = ATTR_PIPELINE;
                    ev.attr_val = self.next_pipeline;
                    self.next_pipeline += 1;
                }
                self.push(ev);
            }
            let end = t + self.rng.range(lo, hi) / 1000 * 1000;
            if self.rng.chance(fail) {
                let mut ev = Ev::new(K_FAILED, end, svc);
                ev.env = env;
                ev.deployment = dep;
                ev.source = source;
                ev.team = self.rng.chance(0.9);
                ev.commit = head;
                self.push(ev);
                if attempt < 2 && self.rng.chance(RETRY) {
                    t = end + self.rng.range(2 * MIN, 30 * MIN) / 1000 * 1000;
                    continue;
                }
                return (None, end);
            }
            let mut ev = Ev::new(K_SUCCEEDED, end, svc);
            ev.env = env;
            ev.deployment = dep;
            ev.source = source;
            ev.team = self.rng.chance(0.9);
            let explicit = self.rng.chance(EXPLICIT_CHANGES);
            let omit_sha = self.rng.chance(0.05);
            let q = if env == ENV_STAGING {
                &mut self.svcs[s].staging_pending
            } else {
                &mut self.svcs[s].production_pending
            };
            let shipped = q.partition_point(|&(at, _)| at <= head_at);
            if explicit && shipped > 0 && shipped <= MAX_EXPLICIT_CHANGES {
                ev.changes = Some(q.iter().take(shipped).map(|&(_, no)| no).collect());
            }
            q.drain(..shipped);
            ev.commit = if ev.changes.is_none() && has_started && started_sha && omit_sha { 0 } else { head };
            self.push(ev);
            return (Some(dep), end);
        }
        unreachable!("the third attempt returns")
    }

    fn incident(&mut self, s: usize, at: i64, cause: Option<u64>) {
        let inc = self.next_incident;
        self.next_incident += 1;
        let svc = s as u32;
        let source = match self.rng.below(100) {
            0..85 => SRC_PAGERDUTY,
            85..95 => SRC_MANUAL,
            _ => SRC_NONE,
        };
        let mut ev = Ev::new(K_OPENED, at, svc);
        ev.env = ENV_PRODUCTION;
        ev.incident = inc;
        ev.source = source;
        ev.team = self.rng.chance(0.9);
        if let Some(dep) = cause
            && self.rng.chance(EXPLICIT_CAUSE)
        {
            ev.deployment = dep;
        }
        if self.rng.chance(0.3) {
            ev.attr = ATTR_SEVERITY;
            ev.attr_val = 1 + self.rng.below(4) as u32;
        }
        self.push(ev);
        let mut resolved = at + self.restore_time();
        self.resolve(svc, inc, source, resolved);
        if self.rng.chance(REOPEN) {
            let again = resolved + self.rng.log_uniform(10 * MIN, 12 * HOUR) / SEC * SEC;
            let mut ev = Ev::new(K_OPENED, again, svc);
            ev.env = ENV_PRODUCTION;
            ev.incident = inc;
            ev.source = source;
            ev.team = self.rng.chance(0.9);
            self.push(ev);
            resolved = again + self.restore_time();
            self.resolve(svc, inc, source, resolved);
        }
    }

    fn resolve(&mut self, svc: u32, inc: u64, source: u8, at: i64) {
        let mut ev = Ev::new(K_RESOLVED, at, svc);
        ev.env = ENV_PRODUCTION;
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
    ) -> io::Result<()> {
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
        for ev in ready.drain(..) {
            self.format(&ev);
            self.written += 1;
            if self.written & 0xFFFF == 0 {
                progress(self.written);
            }
            if self.buf.len() >= OUT_BUF {
                out.write_all(&self.buf)?;
                self.buf.clear();
            }
        }
        self.ready = ready;
        Ok(())
    }

    fn format(&mut self, e: &Ev) {
        let seed = self.seed;
        self.buf.extend_from_slice(b"{\"event_id\":\"evt-");
        push_u64(&mut self.buf, seed);
        self.buf.push(b'-');
        push_u64(&mut self.buf, e.id);
        self.buf.extend_from_slice(b"\",\"event_type\":\"");
        self.buf.extend_from_slice(KIND_NAMES[e.kind as usize]);
        self.buf.extend_from_slice(b"\",\"occurred_at\":\"");
        self.push_ts(e.at);
        self.buf.extend_from_slice(b"\",\"service\":\"");
        self.buf.extend_from_slice(&self.svcs[e.service as usize].name);
        self.buf.push(b'"');
        if e.env != ENV_NONE {
            self.buf.extend_from_slice(b",\"environment\":\"");
            self.buf.extend_from_slice(ENV_NAMES[e.env as usize]);
            self.buf.push(b'"');
        }
        if e.commit != 0 {
            self.buf.extend_from_slice(b",\"commit_sha\":\"");
            push_sha(&mut self.buf, self.sha_key, e.commit);
            self.buf.push(b'"');
        }
        if e.deployment != 0 {
            self.buf.extend_from_slice(b",\"deployment_id\":\"dep-");
            push_u64(&mut self.buf, seed);
            self.buf.push(b'-');
            push_u64(&mut self.buf, e.deployment);
            self.buf.push(b'"');
        }
        if e.incident != 0 {
            self.buf.extend_from_slice(b",\"incident_id\":\"inc-");
            push_u64(&mut self.buf, seed);
            self.buf.push(b'-');
            push_u64(&mut self.buf, e.incident);
            self.buf.push(b'"');
        }
        if let Some(changes) = &e.changes {
            self.buf.extend_from_slice(b",\"change_ids\":[");
            for (i, &c) in changes.iter().enumerate() {
                if i > 0 {
                    self.buf.push(b',');
                }
                self.buf.push(b'"');
                push_sha(&mut self.buf, self.sha_key, c);
                self.buf.push(b'"');
            }
            self.buf.push(b']');
        }
        if e.team {
            self.buf.extend_from_slice(b",\"team\":\"");
            let team = self.svcs[e.service as usize].team as usize;
            self.buf.extend_from_slice(&self.teams[team]);
            self.buf.push(b'"');
        }
        if e.source != SRC_NONE {
            self.buf.extend_from_slice(b",\"source\":\"");
            self.buf.extend_from_slice(SRC_NAMES[e.source as usize]);
            self.buf.push(b'"');
        }
        match e.attr {
            ATTR_PR => {
                self.buf.extend_from_slice(b",\"attributes\":\"{\\\"pr\\\":");
                push_u64(&mut self.buf, e.attr_val as u64);
                self.buf.extend_from_slice(b"}\"");
            }
            ATTR_PIPELINE => {
                self.buf.extend_from_slice(b",\"attributes\":\"{\\\"pipeline\\\":");
                push_u64(&mut self.buf, e.attr_val as u64);
                self.buf.extend_from_slice(b"}\"");
            }
            ATTR_SEVERITY => {
                self.buf.extend_from_slice(b",\"attributes\":\"{\\\"severity\\\":\\\"sev");
                push_u64(&mut self.buf, e.attr_val as u64);
                self.buf.extend_from_slice(b"\\\"}\"");
            }
            _ => {}
        }
        self.buf.extend_from_slice(b"}\n");
    }

    /// RFC 3339 UTC: seconds, milliseconds or microseconds, whichever is exact.
    fn push_ts(&mut self, micros: i64) {
        let day = micros.div_euclid(DAY);
        let rem = micros.rem_euclid(DAY);
        if day != self.date_day {
            self.date_day = day;
            let (y, m, d) = leadline_udfs::civil_from_days(day);
            let y = y.clamp(0, 9999) as u32;
            let t = &mut self.date_text;
            t[0] = b'0' + (y / 1000) as u8;
            t[1] = b'0' + (y / 100 % 10) as u8;
            t[2] = b'0' + (y / 10 % 10) as u8;
            t[3] = b'0' + (y % 10) as u8;
            t[4] = b'-';
            t[5] = b'0' + (m / 10) as u8;
            t[6] = b'0' + (m % 10) as u8;
            t[7] = b'-';
            t[8] = b'0' + (d / 10) as u8;
            t[9] = b'0' + (d % 10) as u8;
            t[10] = b'T';
        }
        self.buf.extend_from_slice(&self.date_text);
        let secs = rem / SEC;
        let frac = rem % SEC;
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        self.buf.extend_from_slice(&[
            b'0' + (h / 10) as u8,
            b'0' + (h % 10) as u8,
            b':',
            b'0' + (m / 10) as u8,
            b'0' + (m % 10) as u8,
            b':',
            b'0' + (s / 10) as u8,
            b'0' + (s % 10) as u8,
        ]);
        if frac != 0 {
            self.buf.push(b'.');
            let (v, digits) = if frac % 1000 == 0 { (frac / 1000, 3) } else { (frac, 6) };
            let mut tmp = [b'0'; 6];
            let mut v = v;
            for i in (0..digits).rev() {
                tmp[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            self.buf.extend_from_slice(&tmp[..digits]);
        }
        self.buf.push(b'Z');
    }
}

fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// SplitMix64's finalizer: a bijection on u64.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 40 hex digits for commit number `no`. The first 16 are a bijection of
/// `no` (for a given key), so shas never collide within one history.
fn push_sha(buf: &mut Vec<u8>, key: u64, no: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let a = mix64(no ^ key);
    let b = mix64(a ^ 0x9e37_79b9_7f4a_7c15);
    let c = mix64(b.wrapping_add(key));
    let mut out = [0u8; 40];
    for (i, byte) in
        a.to_be_bytes().into_iter().chain(b.to_be_bytes()).chain(c.to_be_bytes().into_iter().take(4)).enumerate()
    {
        out[2 * i] = HEX[(byte >> 4) as usize];
        out[2 * i + 1] = HEX[(byte & 15) as usize];
    }
    buf.extend_from_slice(&out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::{HashMap, HashSet};

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
        let all = lines(&out);
        assert_eq!(all.len() as u64, n);
        assert!(out.ends_with(b"\n"));
        let mut kinds: HashMap<String, u64> = HashMap::new();
        let mut commit_at: HashMap<String, i64> = HashMap::new();
        let mut seen_ids = HashSet::new();
        let mut with_changes = 0;
        let mut with_cause = 0;
        for line in &all {
            let v: Value = serde_json::from_str(line).unwrap();
            let o = v.as_object().unwrap();
            for k in o.keys() {
                assert!(
                    [
                        "event_id",
                        "event_type",
                        "occurred_at",
                        "service",
                        "environment",
                        "commit_sha",
                        "deployment_id",
                        "incident_id",
                        "change_ids",
                        "team",
                        "source",
                        "attributes"
                    ]
                    .contains(&k.as_str()),
                    "unexpected field {k}"
                );
                assert!(!o[k].is_null(), "absent fields are omitted, not null: {line}");
            }
            let id = o["event_id"].as_str().unwrap();
            assert!(id.starts_with("evt-42-") && !id.is_empty() && id.len() <= 256);
            let at = o["occurred_at"].as_str().unwrap();
            assert!(at.ends_with('Z'), "{at}");
            let frac = at.split('.').nth(1).map(|f| f.len() - 1).unwrap_or(0);
            assert!(frac <= 6);
            ts(&v);
            assert!(!o["service"].as_str().unwrap().is_empty());
            let ty = o["event_type"].as_str().unwrap();
            *kinds.entry(ty.to_string()).or_default() += 1;
            match ty {
                "commit" => {
                    assert!(!o.contains_key("environment"));
                    let sha = o["commit_sha"].as_str().unwrap();
                    assert_eq!(sha.len(), 40);
                    assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()));
                    if seen_ids.insert(id.to_string()) {
                        assert!(commit_at.insert(sha.to_string(), ts(&v)).is_none(), "commit shas are unique");
                    }
                }
                "deployment_started" | "deployment_succeeded" | "deployment_failed" | "deployment_rolled_back" => {
                    let env = o["environment"].as_str().unwrap();
                    assert!(env == "staging" || env == "production");
                    assert!(o["deployment_id"].as_str().unwrap().starts_with("dep-42-"));
                    assert!(!o.contains_key("incident_id"));
                    if o.contains_key("change_ids") {
                        assert_eq!(ty, "deployment_succeeded");
                        assert!(o["change_ids"].as_array().unwrap().iter().all(|c| c.is_string()));
                        with_changes += 1;
                    }
                }
                "incident_opened" | "incident_resolved" => {
                    assert_eq!(o["environment"].as_str().unwrap(), "production");
                    assert!(o["incident_id"].as_str().unwrap().starts_with("inc-42-"));
                    if o.contains_key("deployment_id") {
                        with_cause += 1;
                    }
                }
                other => panic!("unknown event_type {other}"),
            }
            if let Some(a) = o.get("attributes") {
                let parsed: Value = serde_json::from_str(a.as_str().unwrap()).unwrap();
                assert!(parsed.is_object());
            }
        }
        for k in KIND_NAMES {
            let k = std::str::from_utf8(k).unwrap();
            assert!(kinds.get(k).copied().unwrap_or(0) > 0, "no {k} in {kinds:?}");
        }
        assert!(with_changes > 0 && with_cause > 0);
        // Per service and day: within the advertised 20-40.
        let per = n as f64 / (8.0 * 45.0);
        assert!((15.0..45.0).contains(&per), "{per} events per service-day");

        // Every commit a deployment names happened before it.
        for line in &all {
            let v: Value = serde_json::from_str(line).unwrap();
            if !v["event_type"].as_str().unwrap().starts_with("deployment_") {
                continue;
            }
            let at = ts(&v);
            let mut shas: Vec<&str> = v["commit_sha"].as_str().into_iter().collect();
            if let Some(list) = v["change_ids"].as_array() {
                shas.extend(list.iter().map(|c| c.as_str().unwrap()));
            }
            for sha in shas {
                let c = commit_at.get(sha).unwrap_or_else(|| panic!("unknown commit {sha}"));
                assert!(*c <= at);
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
        for line in lines(&out) {
            let v: Value = serde_json::from_str(line).unwrap();
            match v["event_type"].as_str().unwrap() {
                "incident_opened" => {
                    let inc = v["incident_id"].as_str().unwrap().to_string();
                    *opens.entry(inc).or_default() += 1;
                    if let Some(d) = v["deployment_id"].as_str() {
                        causes.push(d.to_string());
                    }
                }
                "incident_resolved" => {
                    *resolves.entry(v["incident_id"].as_str().unwrap().to_string()).or_default() += 1;
                }
                "deployment_succeeded" => {
                    succeeded.insert(v["deployment_id"].as_str().unwrap().to_string());
                }
                _ => {}
            }
        }
        assert!(opens.values().any(|&c| c >= 2), "some incident is reopened");
        assert!(opens.iter().any(|(k, _)| !resolves.contains_key(k)), "some incident is still open");
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
        let start = cfg(5, 8, 30, None).start.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros();
        assert!(end >= start + 25 * DAY && end < start + 32 * DAY, "{n}");
    }

    #[test]
    fn progress_is_reported() {
        let mut calls = Vec::new();
        let mut out = io::sink();
        let n = generate(&cfg(1, 30, 90, None), &mut out, &mut |c| calls.push(c)).unwrap();
        assert!(n > 65_536);
        assert_eq!(calls[0], 65_536);
        assert_eq!(*calls.last().unwrap(), n);
        assert!(calls.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn empty_configs() {
        assert_eq!(run(&cfg(1, 0, 10, None)).1, 0);
        assert_eq!(run(&cfg(1, 3, 0, None)).1, 0);
        assert_eq!(run(&cfg(1, 0, 10, Some(100))).1, 0);
    }

    #[test]
    fn timestamps_format() {
        let c = cfg(1, 1, 1, None);
        let mut g = Gen::new(&c);
        for (micros, want) in [
            (0i64, "1970-01-01T00:00:00Z"),
            (1_500_000, "1970-01-01T00:00:01.500Z"),
            (1_000_001, "1970-01-01T00:00:01.000001Z"),
            (-SEC, "1969-12-31T23:59:59Z"),
            (1_772_442_000 * SEC, "2026-03-02T09:00:00Z"),
        ] {
            g.buf.clear();
            g.date_day = i64::MIN;
            g.push_ts(micros);
            assert_eq!(std::str::from_utf8(&g.buf).unwrap(), want);
        }
    }
}
