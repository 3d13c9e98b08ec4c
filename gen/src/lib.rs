//! Synthetic delivery history for `leadline generate`, the benchmarks and the
//! tests.
//!
//! Writes a realistic, deterministic (per seed and config) NDJSON event log of
//! the engine's canonical [`Event`]s (SPEC §1): commits, staged then
//! production deployments, retries, rollbacks and production incidents, plus
//! the noise a real feed has (redeliveries and late arrivals). Every line is a
//! valid event; invalid rows are the business of the tests that want them.
//!
//! Each line is rendered from an `Event` value. Builds with debug assertions
//! (tests, the dev profile) read every line back through the engine's own
//! NDJSON reader and validation ([`Event::from_raw_owned`]) and fail if it is
//! rejected or reads back as anything but the event that was written; release
//! builds skip that check for speed.
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
//!   for 3% of deployments. 30% of the successes with an explicit list of
//!   two or more go live in two parts (SPEC v2): a first
//!   `deployment_succeeded` halfway through naming the first half of the
//!   list (its head: the last of them), then the second naming the rest.
//! * 5% of successful production deployments get a `deployment_rolled_back`
//!   5 min-6 h later. A successful production deployment causes an incident
//!   with probability 8% (40% if rolled back), opened 10 min-20 h after it
//!   went live; half of those name the deployment (`deployment_id`), the
//!   rest leave attribution to inference. Plus background incidents,
//!   Poisson(0.02 x intensity) per service and day, with no cause.
//!   Incidents are resolved after 5 min-4 h (70%), 4 h-1 d (25%) or
//!   1-5 d (5%). 25% of incidents get a hotfix: a production
//!   `deployment_succeeded` that names the incident (`incident_id`, SPEC v2
//!   rework) and goes live 30-90% of the way to the first resolve, shipping
//!   a fix commit of its own made 1-30 min before (70%) or an explicit empty
//!   `change_ids` list. 10% are reopened (a second `incident_opened` 10 min-12 h
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
//! volume (typically well under 1%). The intensity is clamped to 0.02..=60
//! (and lower for very many services, to keep one day's buffer near a
//! million events), so when `n` is far from what `services x days` can
//! hold, the history stops before `days` (small `n`) or runs past `days`
//! (large `n`) instead.
//!
//! No services, no days or `events = Some(0)` is a [`GenerateError::Config`],
//! and so is a history that would reach past 9999-12-31 (RFC 3339 has
//! four-digit years).
//!
//! # Performance and memory
//!
//! The history is simulated day by day; the events of a day (plus future
//! events already decided, such as resolves, and late arrivals) wait in a
//! buffer of compact plans ordered by emit time, flushed at each day
//! boundary. Memory is thus bounded by about one day's volume, not the
//! history. A plan becomes an `Event` only when it is written, in one reused
//! `Event` whose strings keep their allocations, and lines are rendered into
//! a 1 MiB buffer.
//!
//! Determinism: the RNG is ChaCha8 seeded with the seed, consumed only
//! through `next_u64` with this crate's own samplers, so the same seed and
//! config give byte-identical output.

mod error;
mod generate;
mod ndjson;
mod plan;
mod rng;
mod verify;

// Everything this crate takes from the engine, in one place: when the
// engine's module paths move, this is the line to fix.
use leadline_engine::input::ndjson_rows;
use leadline_engine::{Event, EventType};

pub use error::GenerateError;
pub use generate::{GenerateConfig, generate};

// Durations in µs, the unit of `Event::occurred_at`.
const SEC: i64 = 1_000_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
