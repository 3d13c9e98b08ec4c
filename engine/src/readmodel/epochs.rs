//! A component's history folded in *epochs*: spans of time cut at the
//! starts of ISO weeks (Mondays, UTC: [`PERIOD`]), or, when a deployment or
//! an incident is in progress then, at the latest time before when none is
//! ([`Quiet::before`]); each folded on its own and stored as its own files,
//! so an append refolds the epochs its events land in, not the whole history.
//!
//! A cut at T is *clean* when folding the events before T (L) and those at
//! or after T (R) apart gives the rows of folding them together. It is when
//! (SPEC §2):
//! (a) no deployment or incident id, and (b) no commit sha, is named on
//!     both sides: every entity's events, every explicit link (rollbacks,
//!     explicit causes, remediations, `change_ids`, a deployment's head
//!     commit) and every sha's earliest commit event stay on one side;
//! (c) R deploys a service S that has commits in L only to environments L
//!     deployed S to: rules 2 and 3 ship "every commit of S up to … not
//!     shipped to E before", so a first deployment to a new environment
//!     ships S's whole history. The commits L left unshipped to an
//!     environment it deployed S to are *carried* into R's fold
//!     ([`Carried`]: with where they did ship), which ships them as the
//!     whole fold does. (A deployment in L never ships a commit of R: rule 3
//!     looks back from its finish, rule 2 from its head commit, in L by (b).)
//! (d) no incident of R is inferred to be caused by a deployment of L: for
//!     each (S, E), if L's last live deployment lies within the attribution
//!     window before R's earliest incident, a successful deployment of R
//!     went live at or before that incident (it then wins for every later
//!     incident of R too). An incident of L never blames a deployment of R
//!     (one that is live before the incident opened lies in L).
//!     Inferred rework stays on one side with (a): an incident of L is
//!     resolved in L, so its fix finished in L; one of R opened in R. So do
//!     failed deployments and recovery times (rollbacks by (a), incidents
//!     by (a) and (d)), and the quality counts, which add up.
//! A sha that R *links* (a deployment's head commit, an explicit list)
//! while its commit events lie in L is named on both sides, yet the cut is
//! clean when L carries that commit into R: R's fold then knows when it was
//! committed and where it had shipped, which is all rules 1-3 ask of it (an
//! explicit list does not ship a carried commit again where it had). R
//! keeps such shas ([`Epoch::borrowed`]) and is clean only while the carry
//! into it still holds them.
//! (a) and (b) are checked on the events of the epochs being folded (see
//! [`fold_component`]); (c) and (d) on each epoch's [`Summary`], kept in the
//! manifest, so a cut is checked without reading the other side's events.
//! An unclean cut is removed: its two epochs are folded as one.
//!
//! An epoch's fold so depends on the epochs before it (its [`Head`]: their
//! carried commits, the environments they deployed each service to, and the
//! previous epoch's tails, below); an epoch whose head changes is refolded.
//!
//! Metric rows: a bucket (a month; a day or week too when the cut is not at
//! a week's start) can straddle a cut. Its row belongs to the epoch holding
//! the bucket's end: the epoch before keeps what it collected for that
//! bucket ([`PartialBucket`]s, its `tails`, kept in a file of their own
//! beside the manifest) and the later one adds them to its own
//! (`metric_rows_within`), so every row is the whole fold's. An epoch whose
//! tails change makes the next one refold.
//!
//! Files: each epoch has one file per published table. A component folded
//! whole keeps its last [`RECENT_EPOCHS`] weeks as epochs of their own and
//! its settled history in epochs of about [`SETTLED_EVENTS`] events, so a
//! late event refolds that many, not the history (and, when their head
//! changes, the epochs after it); an append later than everything opens a
//! new epoch for its week; past [`max_epochs`], the two adjacent epochs
//! with the fewest events, after the first, are joined as one (see
//! [`make_room`]): from their stored rows when the append touches neither
//! ([`join_rows`]), else folded again.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringArray};
use leadline_udfs::{Grain, bucket_start};
use serde::{Deserialize, Serialize};

use super::memo::{Learnt, Memo, rows_hash};
use super::spares::Spares;
use super::{
    Component, DIR, MAX_SEGMENTS, Manifest, PARTS, Part, SEGMENT_ROWS, SegmentWriter, component_file, encode_parquet,
    keys, published, read_checked, segment, tails_file,
};
use crate::error::Result;
use crate::event::{Event, EventType};
use crate::log::{Ingested, Stamped, read_stored_events_in};
use crate::metrics::{PartialBucket, ProjectedCounts, metric_rows_within};
use crate::project::changes::{self, Carried};
use crate::project::tables::{Table, table_batch};
use crate::project::widen;
use crate::project::{Projected, project_carrying};

/// Most epochs a component of few events has; one more joins two (see
/// [`make_room`]).
pub(super) const MAX_EPOCHS: usize = 5;
/// Periods a component folded whole keeps as epochs of their own.
const RECENT_EPOCHS: usize = 2;
/// Events (about: its cuts fall at period starts) an epoch of the settled
/// history of a component folded whole holds: what a late event refolds.
/// Small enough that a late batch into a 50M-event log refolds a little
/// of each service it touches; large enough that a component keeps few
/// epochs (their files and manifest entries). Tests cut at a few weeks.
const SETTLED_EVENTS: u64 = if cfg!(test) { 40 } else { 16_384 };

/// Most epochs a component of `events` events has: [`MAX_EPOCHS`], and one
/// more for each [`SETTLED_EVENTS`] of its history.
pub(super) fn max_epochs(events: u64) -> usize {
    MAX_EPOCHS + (events / SETTLED_EVENTS) as usize
}

/// One epoch of a component: its events are those with `occurred_at` from
/// `from` (`None`: the beginning) to the next epoch's `from`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Epoch {
    pub from: Option<i64>,
    /// Names the files it writes (`tables/<table>/<id>.parquet`) and its tails.
    pub id: String,
    /// The name (`id`) of its file in each published table, in [`PARTS`]
    /// order: its own, or that of the epoch it replaced, of the same start,
    /// when its rows there encode to the same bytes (an append of commits
    /// alone rewrites `changes`, not the other five tables). None when
    /// every file is its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    pub counts: ProjectedCounts,
    pub span: Option<(i64, i64)>,
    pub pairs: Vec<(String, String)>,
    pub ingested: Option<(i64, i64)>,
    pub summary: Summary,
    /// The last cut inside it found unclean (not tried again).
    #[serde(default)]
    pub unclean: Option<i64>,
    /// The distinct teams its rows name (`None`: not known).
    #[serde(default)]
    pub teams: Option<Vec<String>>,
    /// The shas its events link whose commit events lie in an earlier epoch
    /// (see the module doc): a fold of it must find them in the carry.
    #[serde(default)]
    pub borrowed: Vec<String>,
}

impl Epoch {
    /// The name (`id`) of its file in `part`'s table.
    pub fn file(&self, part: Part) -> &str {
        self.files.get(part.index()).map_or(self.id.as_str(), String::as_str)
    }
}

/// What the checks of a cut need to know of each side (see the module doc).
/// Maps are by service, then environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Summary {
    /// Commits (distinct shas with a commit event) per service: the
    /// services with history that a new environment would ship (c).
    commits: BTreeMap<String, u64>,
    /// Per (S, E): the earliest and latest `deployment_succeeded` of its
    /// successful deployments.
    live: BTreeMap<String, BTreeMap<String, (i64, i64)>>,
    /// Per (S, E): its earliest incident's `opened_at`.
    incidents: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Summary {
    fn of(commits: &changes::Commits, p: &Projected) -> Summary {
        let mut s = Summary::default();
        for c in commits.values() {
            *s.commits.entry(c.service.to_string()).or_default() += 1;
        }
        for d in p.deployments.iter().filter(|d| d.is_successful()) {
            let (Some(&first), Some(&last)) = (d.succeeded_at.iter().min(), d.succeeded_at.iter().max()) else {
                continue;
            };
            let live = s.live.entry(d.service.clone()).or_default();
            live.entry(d.environment.clone())
                .and_modify(|(f, l)| (*f, *l) = ((*f).min(first), (*l).max(last)))
                .or_insert((first, last));
        }
        for i in &p.incidents {
            let opened = s.incidents.entry(i.service.clone()).or_default();
            opened.entry(i.environment.clone()).and_modify(|o| *o = (*o).min(i.opened_at)).or_insert(i.opened_at);
        }
        s
    }

    /// The summary of several epochs whose cuts are clean.
    fn sum<'a>(all: impl Iterator<Item = &'a Summary>) -> Summary {
        let mut s = Summary::default();
        for x in all {
            for (k, n) in &x.commits {
                *s.commits.entry(k.clone()).or_default() += n;
            }
            for (k, envs) in &x.live {
                for (e, &(first, last)) in envs {
                    s.live
                        .entry(k.clone())
                        .or_default()
                        .entry(e.clone())
                        .and_modify(|(f, l)| (*f, *l) = ((*f).min(first), (*l).max(last)))
                        .or_insert((first, last));
                }
            }
            for (k, envs) in &x.incidents {
                for (e, &o) in envs {
                    s.incidents
                        .entry(k.clone())
                        .or_default()
                        .entry(e.clone())
                        .and_modify(|x| *x = (*x).min(o))
                        .or_insert(o);
                }
            }
        }
        s
    }
}

/// Conditions (c) and (d) of the module doc for a cut between the epochs
/// summed in `before` and in `after`, with attribution `window`.
pub(super) fn clean(before: &Summary, after: &Summary, window: Option<i64>) -> bool {
    for (s, envs) in &after.live {
        let known = before.live.get(s);
        if before.commits.get(s).is_some_and(|&n| n > 0)
            && envs.keys().any(|e| known.is_none_or(|k| !k.contains_key(e)))
        {
            return false;
        }
    }
    for (s, envs) in &after.incidents {
        for (e, &opened) in envs {
            let Some(&(_, last)) = before.live.get(s).and_then(|l| l.get(e)) else { continue };
            let live_after = after.live.get(s).and_then(|l| l.get(e)).is_some_and(|&(first, _)| first <= opened);
            if window.is_none_or(|w| opened - last <= w) && !live_after {
                return false;
            }
        }
    }
    true
}

/// The columns of `part` whose every value in an epoch's rows lies in the
/// epoch's time bounds ([`bounds`]), so a scan filtered on them skips the
/// epochs outside its range. By (a) every entity's events are in one
/// epoch, so are its own times: a deployment's start and finish, an
/// incident's opening and resolution, and a change's `deployed_at` (its
/// row is the shipping deployment's epoch's; a commit's own time may be
/// earlier: it can be carried). Metric rows: see the module doc.
pub fn bounded_columns(part: Part) -> &'static [&'static str] {
    match part {
        Part::Rows(Table::Deployments) => &["started_at", "finished_at"],
        Part::Rows(Table::Changes) => &["deployed_at"],
        Part::Rows(Table::Incidents) => &["opened_at", "resolved_at"],
        Part::Metrics(_) => &["bucket_start"],
    }
}

/// The range [lo, hi) holding the [`bounded_columns`] of `part` in the rows
/// of the epoch of events from `from` to `to` (`None`: unbounded): a
/// bucket's row belongs to the epoch holding the bucket's end, so it may
/// start before `from` (a bucket that straddles the cut).
pub fn bounds(part: Part, from: Option<i64>, to: Option<i64>) -> (Option<i64>, Option<i64>) {
    match part {
        Part::Metrics(grain) => (from.map(|f| bucket_start(f, grain)), to),
        Part::Rows(_) => (from, to),
    }
}

/// The calendar period epochs are cut at the starts of.
const PERIOD: Grain = Grain::Week;

fn period_start(t: i64) -> i64 {
    bucket_start(t, PERIOD)
}

/// Where a component's events allow a clean cut, as far as they tell
/// without folding (`settle` still checks the cut): (a) for deployments and
/// incidents, and (d).
struct Quiet<'a> {
    /// The spans [first, last] of `occurred_at` of each deployment and
    /// incident whose events are not all at one time.
    spans: Vec<(i64, i64)>,
    pairs: HashMap<(&'a str, &'a str), PairTimes>,
    window: Option<i64>,
}

/// Of one (service, environment): its deployments' first event and first
/// success, by success; its incidents' openings, in order.
#[derive(Default)]
struct PairTimes {
    deployments: Vec<(i64, i64)>,
    incidents: Vec<i64>,
}

impl<'a> Quiet<'a> {
    fn of(all: &'a [Stamped], window: Option<i64>) -> Quiet<'a> {
        let mut spans: HashMap<(u8, &str), (i64, i64)> = HashMap::new();
        let mut succeeded: HashMap<&str, ((&str, &str), i64)> = HashMap::new();
        let mut pairs: HashMap<(&str, &str), PairTimes> = HashMap::new();
        for e in all.iter().flat_map(|s| &s.events) {
            let t = e.occurred_at;
            let pair = (e.service.as_str(), e.environment.as_deref().unwrap_or_default());
            let ids = e.deployment_id.as_deref().map(|d| (0, d)).into_iter();
            for id in ids.chain(e.incident_id.as_deref().map(|i| (1, i))) {
                spans.entry(id).and_modify(|(lo, hi)| (*lo, *hi) = ((*lo).min(t), (*hi).max(t))).or_insert((t, t));
            }
            match (e.event_type, e.deployment_id.as_deref()) {
                (EventType::DeploymentSucceeded, Some(d)) => {
                    succeeded.entry(d).and_modify(|(_, at)| *at = (*at).min(t)).or_insert((pair, t));
                }
                (EventType::IncidentOpened, _) => pairs.entry(pair).or_default().incidents.push(t),
                _ => {}
            }
        }
        for (d, (pair, at)) in succeeded {
            pairs.entry(pair).or_default().deployments.push((spans[&(0, d)].0, at));
        }
        for p in pairs.values_mut() {
            p.deployments.sort_unstable_by_key(|&(_, at)| at);
            p.incidents.sort_unstable();
        }
        Quiet { spans: spans.into_values().filter(|(lo, hi)| lo < hi).collect(), pairs, window }
    }

    /// The latest time at or before `t` where a cut keeps every deployment
    /// and incident on one side (a), and blames no incident after it on a
    /// deployment before it (d): a cut at a period's start can split a
    /// deployment still running or an incident still open, or leave the
    /// first incident of the week to the last deployment of the one before.
    fn before(&self, mut t: i64) -> i64 {
        // Each step moves `t` earlier; the bound only caps pathological histories.
        for _ in 0..1000 {
            if let Some(start) = self.spans.iter().filter(|&&(lo, hi)| lo < t && t <= hi).map(|&(lo, _)| lo).min() {
                t = start;
                continue;
            }
            let mut earlier: Option<i64> = None;
            for PairTimes { deployments, incidents } in self.pairs.values() {
                let Some(&opened) = incidents.get(incidents.partition_point(|&o| o < t)) else { continue };
                let after = deployments.partition_point(|&(_, at)| at < t);
                let Some(&(start, live)) = after.checked_sub(1).map(|i| &deployments[i]) else { continue };
                let blamed = self.window.is_none_or(|w| opened - live <= w);
                if blamed && deployments.get(after).is_none_or(|&(_, at)| at > opened) {
                    // Cut before that deployment: it goes live after the cut.
                    earlier = Some(earlier.map_or(start, |e| e.min(start)));
                }
            }
            match earlier {
                Some(e) if e < t => t = e,
                _ => break,
            }
        }
        t
    }
}

/// The metric grains, in [`PARTS`] order.
fn grains() -> impl Iterator<Item = Grain> {
    PARTS.into_iter().filter_map(|p| match p {
        Part::Metrics(g) => Some(g),
        Part::Rows(_) => None,
    })
}

/// A fold of one epoch's events, not yet written.
struct Piece {
    from: Option<i64>,
    parts: Vec<Vec<RecordBatch>>,
    counts: ProjectedCounts,
    span: Option<(i64, i64)>,
    pairs: Vec<(String, String)>,
    ingested: Option<(i64, i64)>,
    summary: Summary,
    tails: Vec<Vec<PartialBucket>>,
    carry: Vec<Carried>,
    unclean: Option<i64>,
    /// What it was folded with.
    head: Head,
    /// Hashes of the ids its events name (conditions (a) and (b); see
    /// [`Checks`]), but for the shas it borrows.
    keys: HashSet<u64>,
    /// The shas its events link that the carry into it holds (see [`Epoch::borrowed`]).
    borrowed: Vec<String>,
    /// Shas it must find in the carry if its events link them: those the
    /// epochs it was folded from borrowed, and those new events link that
    /// older events of other epochs named.
    expect: BTreeSet<String>,
    /// Whether it links one of `expect` that the carry into it does not hold
    /// (nor it defines): its cut with the epoch before is then unclean.
    unmet: bool,
}

/// An epoch as the fold goes: the stored one, or a fold of it.
enum Slot {
    Kept(Epoch),
    Fresh(Piece),
}

impl Slot {
    fn from(&self) -> Option<i64> {
        match self {
            Slot::Kept(e) => e.from,
            Slot::Fresh(p) => p.from,
        }
    }
    fn summary(&self) -> &Summary {
        match self {
            Slot::Kept(e) => &e.summary,
            Slot::Fresh(p) => &p.summary,
        }
    }
    /// The shas a fold of it must find in the carry if it links them.
    fn expected(&self) -> impl Iterator<Item = &String> {
        let (borrowed, expect) = match self {
            Slot::Kept(e) => (&e.borrowed, None),
            Slot::Fresh(p) => (&p.borrowed, Some(&p.expect)),
        };
        borrowed.iter().chain(expect.into_iter().flatten())
    }
}

/// What [`fold_component`] made of one component.
pub(super) struct Folded {
    pub component: Component,
    /// Checksums of the files written, by name.
    pub checksums: BTreeMap<String, u64>,
    /// Per service whose segments were rewritten: the old ones and the new.
    pub segments: Vec<(u32, Vec<String>, Vec<Segment>)>,
    /// The files it wrote (tables and tails), to make durable.
    pub written: Vec<std::path::PathBuf>,
    /// Its new table files' `add`s, by table.
    pub added: Vec<(Part, crate::log::delta::AddFile)>,
    /// What the writer's [`Memo`] gets from it.
    pub learnt: Learnt,
}

/// A segment written: its name and span of `occurred_at`.
pub(super) type Segment = (String, (i64, i64));

/// How a component is folded: `old` is its model before this update when
/// it is the same component (no services joined it), `touched` the starts
/// of the epochs the new events (ingested after `after`) were routed to,
/// `seen` the hashes of ids the new events name that older events named.
pub(super) struct Plan<'a> {
    pub old: Option<&'a Component>,
    pub touched: BTreeSet<Option<i64>>,
    pub after: Option<i64>,
    pub seen: &'a HashSet<u64>,
}

impl Plan<'_> {
    /// Whether an event ingested at `ingested_at` is one this update appends.
    fn is_new(&self, ingested_at: i64) -> bool {
        self.after.is_none_or(|a| ingested_at > a)
    }
}

/// Folds the epochs of component `root` (its `services`) that `plan` needs
/// and writes their files.
pub(super) fn fold_component(
    data: &Path,
    m: &Manifest,
    memo: &Memo,
    spares: &Spares,
    root: u32,
    services: &[u32],
    plan: &Plan,
) -> Result<Folded> {
    let reader = Reader { data, dir: &data.join(DIR), m, services, memo, spares, learnt: RefCell::default() };
    if let Some(old) = plan.old
        && let Some(slots) = incremental(&reader, old, plan)?
    {
        return finish(&reader, root, slots, plan.old, None);
    }
    // Folded whole: its settled history and its last periods apart.
    let all = reader.read(None, None)?;
    let mut times: Vec<i64> = all.iter().flat_map(|s| &s.events).map(|e| e.occurred_at).collect();
    times.sort_unstable();
    let mut cuts = Vec::new();
    if let (Some(&lo), Some(&hi)) = (times.first(), times.last()) {
        let quiet = Quiet::of(&all, m.window);
        let mut c = quiet.before(period_start(hi));
        while cuts.len() < RECENT_EPOCHS && c > lo {
            cuts.push(c);
            c = quiet.before(period_start(c - 1));
        }
        // The settled history before them, in epochs of about SETTLED_EVENTS.
        while let Some(&end) = cuts.last() {
            let before = times.partition_point(|&t| t < end);
            let Some(&t) = before.checked_sub(SETTLED_EVENTS as usize).and_then(|i| times.get(i)) else { break };
            // Before `end`, since `period_start(t) <= t < end`.
            let c = quiet.before(period_start(t));
            if c <= lo {
                break;
            }
            cuts.push(c);
        }
        cuts.reverse();
    }
    let mut bounds: Vec<Option<i64>> = vec![None];
    bounds.extend(cuts.iter().map(|&c| Some(c)));
    let mut slots = Vec::new();
    for (i, &from) in bounds.iter().enumerate() {
        let to = bounds.get(i + 1).copied().flatten();
        let head = head_after(&reader, &slots)?;
        let events = within(&all, from, to);
        slots.push(Slot::Fresh(fold_piece(&events, from, to, head, m.window, WHOLE, BTreeSet::new())?));
    }
    let slots = settle(&reader, slots, WHOLE)?;
    finish(&reader, root, slots, plan.old, Some(all))
}

/// The events of a component's services, read from their segments.
struct Reader<'a> {
    /// The data directory.
    data: &'a Path,
    /// Its model's.
    dir: &'a Path,
    m: &'a Manifest,
    services: &'a [u32],
    memo: &'a Memo,
    /// Where its new files come from.
    spares: &'a Spares,
    /// What this fold adds to `memo`.
    learnt: RefCell<Learnt>,
}

impl Reader<'_> {
    /// Per service, its events with `occurred_at` in [`from`, `to`), from
    /// the segments whose span meets that.
    fn read(&self, from: Option<i64>, to: Option<i64>) -> Result<Vec<Stamped>> {
        let inside = |t: i64| from.is_none_or(|f| t >= f) && to.is_none_or(|e| t < e);
        let mut out = Vec::with_capacity(self.services.len());
        for &s in self.services {
            let mut events = Stamped::default();
            for seg in &self.m.segments[s as usize] {
                if let Some(&(lo, hi)) = self.m.spans.get(seg)
                    && (to.is_some_and(|e| lo >= e) || from.is_some_and(|f| hi < f))
                {
                    continue;
                }
                self.segment(seg, &inside, &mut events)?;
            }
            out.push(events);
        }
        Ok(out)
    }

    /// What epoch `id` passes to the next one's fold, kept beside the
    /// manifest (`model/tails/<id>.json`, when it passes anything): only a
    /// fold of the epoch after reads it, and it is most of a manifest that
    /// held it (every lead time of the buckets its end cuts, and the sha of
    /// each commit it left unshipped).
    fn passed(&self, id: &str) -> Result<Passed> {
        let name = tails_file(id);
        let Some(&checksum) = self.m.checksums.get(&name) else { return Ok(Passed::default()) };
        let path = self.dir.join(&name);
        let bytes = read_checked(&path, Some(checksum))?;
        serde_json::from_slice(&bytes).map_err(|e| crate::Error::damaged(&path, e, super::MODEL_AFFECTS))
    }

    /// The events of the segments `names`.
    fn segments(&self, names: &[String]) -> Result<Stamped> {
        let mut events = Stamped::default();
        names.iter().try_for_each(|seg| self.segment(seg, &|_| true, &mut events))?;
        Ok(events)
    }

    /// Adds the events of segment `seg` whose `occurred_at` is `inside` to
    /// `out`, the segment checked against its checksum first.
    fn segment(&self, seg: &str, inside: &dyn Fn(i64) -> bool, out: &mut Stamped) -> Result<()> {
        let copy = |all: &Stamped, out: &mut Stamped| {
            for (e, &at) in all.events.iter().zip(&all.ingested_at) {
                if inside(e.occurred_at) {
                    out.events.push(e.clone());
                    out.ingested_at.push(at);
                }
            }
        };
        if let Some(all) = self.memo.segment(seg) {
            copy(all, out);
            self.learnt.borrow_mut().used.push(seg.to_string());
        } else if self.memo.remembers_segments() {
            let mut all = Stamped::default();
            self.decode(seg, &|_| true, &mut all)?;
            copy(&all, out);
            self.learnt.borrow_mut().segments.push((seg.to_string(), Arc::new(all)));
        } else {
            self.decode(seg, inside, out)?;
        }
        Ok(())
    }

    /// [`Reader::segment`] from the file.
    fn decode(&self, seg: &str, inside: &dyn Fn(i64) -> bool, out: &mut Stamped) -> Result<()> {
        let path = self.dir.join(seg);
        let bytes = read_checked(&path, self.m.checksums.get(seg).copied())?;
        let range = Ingested::default();
        read_stored_events_in(bytes, &path, super::MODEL_AFFECTS, range, segment::restore, &mut |batch| {
            for (e, at) in batch.events.into_iter().zip(batch.ingested_at) {
                if inside(e.occurred_at) {
                    out.events.push(e);
                    out.ingested_at.push(at);
                }
            }
            Ok(())
        })
    }
}

/// `events` before `cut` and from it.
fn split(events: &Stamped, cut: i64) -> (Stamped, Stamped) {
    let one = std::slice::from_ref(events);
    (within(one, None, Some(cut)), within(one, Some(cut), None))
}

/// The events of `all` (per service) in [`from`, `to`), as one list.
fn within(all: &[Stamped], from: Option<i64>, to: Option<i64>) -> Stamped {
    let inside = |t: i64| from.is_none_or(|f| t >= f) && to.is_none_or(|e| t < e);
    let mut out = Stamped::default();
    for s in all {
        for (e, &at) in s.events.iter().zip(&s.ingested_at) {
            if inside(e.occurred_at) {
                out.events.push(e.clone());
                out.ingested_at.push(at);
            }
        }
    }
    out
}

fn flatten(per_service: Vec<Stamped>) -> Stamped {
    let mut out = Stamped::default();
    per_service.into_iter().for_each(|s| out.extend(s));
    out
}

/// The hash of an id as [`keys`] has it (without its service).
fn id_hash(kind: u8, id: &str) -> u64 {
    keys::hash(keys::key(kind, id, 0))
}

/// The shas of `carry`.
fn carried(carry: &[Carried]) -> HashSet<&str> {
    carry.iter().map(|c| c.sha.as_str()).collect()
}

/// What a fold checks of its events' ids between the epochs folded in one
/// update (conditions (a) and (b)).
#[derive(Clone, Copy)]
struct Checks<'a> {
    /// Keep the ids of every event; otherwise (appending to epochs whose
    /// cuts were clean) only those of the plan's new events.
    every_id: bool,
    /// Appending: which events are new, and the ids they name that older
    /// events named.
    plan: Option<&'a Plan<'a>>,
}

impl Checks<'_> {
    fn keeps(&self, ingested_at: i64) -> bool {
        self.every_id || self.plan.is_some_and(|p| p.is_new(ingested_at))
    }
}

/// The checks of a component folded whole: every id, nothing older.
const WHOLE: Checks = Checks { every_id: true, plan: None };

/// What an epoch passes to the next one's fold (see [`Reader::passed`]).
#[derive(Debug, Serialize, Deserialize)]
struct Passed {
    /// Per metric grain (in [`PARTS`] order), what it collected for the
    /// bucket its end cuts, which the next epoch's row includes.
    tails: Vec<Vec<PartialBucket>>,
    /// The commits it (and the epochs before) left unshipped somewhere,
    /// which the next epoch's deployments may ship.
    carry: Vec<Carried>,
}

impl Default for Passed {
    fn default() -> Self {
        Passed { tails: vec![Vec::new(); grains().count()], carry: Vec::new() }
    }
}

/// What folding an epoch takes from the epochs before it.
#[derive(Debug, Clone, Default, PartialEq)]
struct Head {
    /// The previous epoch's tails.
    tails: Vec<Vec<PartialBucket>>,
    /// The commits they left unshipped somewhere.
    carry: Vec<Carried>,
    /// Per service, the environments they deployed it to.
    envs: BTreeMap<String, BTreeSet<String>>,
}

/// The head of the epoch after `slots` (a kept epoch's tails are read only
/// here, when a fold needs them).
fn head_after(reader: &Reader, slots: &[Slot]) -> Result<Head> {
    let mut envs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for slot in slots {
        for (service, live) in &slot.summary().live {
            envs.entry(service.clone()).or_default().extend(live.keys().cloned());
        }
    }
    let Passed { tails, carry } = match slots.last() {
        Some(Slot::Kept(e)) => reader.passed(&e.id)?,
        Some(Slot::Fresh(p)) => Passed { tails: p.tails.clone(), carry: p.carry.clone() },
        None => Passed::default(),
    };
    Ok(Head { tails, carry, envs })
}

/// The commits of an epoch (its own and those `carried` into it) not
/// shipped by its end to every environment their service was deployed to
/// (`envs`) by then, in time order.
fn carry_out(
    commits: &changes::Commits,
    p: &Projected,
    carried: &[Carried],
    envs: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<Carried> {
    let mut shipped: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for c in &p.changes {
        shipped.entry(c.commit_sha.as_str()).or_default().insert(c.environment.as_str());
    }
    let mut out = Vec::new();
    let mut keep = |sha: &str, service: &str, committed_at: i64, before: &[String]| {
        let mut to: BTreeSet<&str> = before.iter().map(String::as_str).collect();
        to.extend(shipped.get(sha).into_iter().flatten());
        if envs.get(service).is_some_and(|envs| envs.iter().any(|e| !to.contains(e.as_str()))) {
            let shipped_to = to.into_iter().map(str::to_string).collect();
            out.push(Carried { sha: sha.to_string(), service: service.to_string(), committed_at, shipped_to });
        }
    };
    for c in commits.values() {
        keep(c.sha, c.service, c.committed_at, &[]);
    }
    for c in carried {
        keep(&c.sha, &c.service, c.committed_at, &c.shipped_to);
    }
    out.sort_by(|a, b| (a.committed_at, &a.sha).cmp(&(b.committed_at, &b.sha)));
    out
}

/// Folds the events of one epoch, [`from`, `to`), after the epochs `head`
/// sums up.
fn fold_piece(
    events: &Stamped,
    from: Option<i64>,
    to: Option<i64>,
    head: Head,
    window: Option<i64>,
    checks: Checks,
    mut expect: BTreeSet<String>,
) -> Result<Piece> {
    let p = project_carrying(&events.events, window, &head.carry);
    let mut parts = Vec::with_capacity(PARTS.len());
    let mut tails = Vec::new();
    let mut grain_index = 0;
    for part in PARTS {
        parts.push(vec![match part {
            Part::Rows(table) => table_batch(table, &p)?,
            Part::Metrics(grain) => {
                let (rows, tail) = metric_rows_within(&p, grain, to, &head.tails[grain_index])?;
                grain_index += 1;
                tails.push(tail);
                rows
            }
        }]);
    }
    // The epoch's own commits, for its summary and what it carries out.
    let commits = changes::commits(&events.events);
    let carried_in = carried(&head.carry);
    let mut keys = HashSet::new();
    let mut borrowed = BTreeSet::new();
    let mut linked = HashSet::new();
    let mut old: Option<HashSet<(u8, &str)>> = None;
    for (e, &at) in events.events.iter().zip(&events.ingested_at) {
        for (kind, id, link) in named(e) {
            if link {
                linked.insert(id);
                if let Some(plan) = checks.plan
                    && plan.is_new(at)
                    && plan.seen.contains(&id_hash(kind, id))
                    && !old.get_or_insert_with(|| old_names(events, plan)).contains(&(kind, id))
                {
                    expect.insert(id.to_string());
                }
            }
            if link && !commits.contains_key(id) && carried_in.contains(id) {
                borrowed.insert(id);
            } else if checks.keeps(at) {
                keys.insert(id_hash(kind, id));
            }
        }
    }
    let unmet = expect.iter().any(|x| {
        let x = x.as_str();
        linked.contains(x) && !commits.contains_key(x) && !carried_in.contains(x)
    });
    let borrowed = borrowed.into_iter().map(str::to_string).collect();
    let summary = Summary::of(&commits, &p);
    let mut envs = head.envs.clone();
    for (service, live) in &summary.live {
        envs.entry(service.clone()).or_default().extend(live.keys().cloned());
    }
    let carry = carry_out(&commits, &p, &head.carry, &envs);
    Ok(Piece {
        from,
        parts,
        counts: ProjectedCounts::of(&p),
        span: p.span,
        pairs: p.pairs.iter().cloned().collect(),
        ingested: events.ingested_range(),
        summary,
        tails,
        carry,
        unclean: None,
        head,
        keys,
        borrowed,
        expect,
        unmet,
    })
}

/// The slots of an append to `old`: its epochs, those the new events land
/// in folded again (and a new epoch for a period later than everything).
/// `None` when the component must be folded whole: a new event names an id
/// that an event of an epoch not folded here names, or the epochs would be
/// too many.
fn incremental(reader: &Reader, old: &Component, plan: &Plan) -> Result<Option<Vec<Slot>>> {
    let epochs = &old.epochs;
    let mut last = epochs.len() - 1;
    let mut touched: BTreeSet<usize> =
        plan.touched.iter().filter_map(|f| epochs.iter().position(|e| e.from == *f)).collect();
    if touched.len() != plan.touched.len() {
        return Ok(None);
    }
    // An epoch before the last of many more events than the settled
    // history's (a model of an earlier release kept that history as one
    // epoch): folded whole, which cuts it, rather than refolded at length.
    if touched.iter().any(|&i| i < last && epochs[i].counts.events > 4 * SETTLED_EVENTS) {
        return Ok(None);
    }
    let mut slots: Vec<Slot> = epochs.iter().cloned().map(Slot::Kept).collect();
    let appended = Checks { every_id: false, plan: Some(plan) };
    // Events already read, by slot, and whether the ids of their new events
    // were checked (see `ids_stay`).
    let mut read: HashMap<usize, (Stamped, bool)> = HashMap::new();
    // The last epoch's two halves when it is cut in two.
    let mut split_at: Option<(usize, usize)> = None;
    if touched.contains(&last) {
        let events = flatten(reader.read(epochs[last].from, None)?);
        let news = events.events.iter().zip(&events.ingested_at).filter(|(_, at)| plan.is_new(**at));
        let first_new = news.map(|(e, _)| e);
        let cut = first_new.map(|e| e.occurred_at).min().map(period_start);
        let last_old = epochs[last].span.map(|(_, hi)| hi);
        match cut {
            // New events all in a period after the last epoch's events: they
            // open an epoch of their own.
            Some(cut) if epochs[last].from.is_none_or(|f| cut > f) && last_old.is_some_and(|hi| hi < cut) => {
                let (before, after) = split(&events, cut);
                if !ids_stay(&after, plan, &carried(&head_after(reader, &slots[..=last])?.carry)) {
                    // It names ids of the epoch before: one epoch with it.
                    read.insert(last, (events, false));
                } else {
                    let Some(l) = make_room(reader, &mut slots, &mut touched, &mut read, last)? else {
                        return Ok(None);
                    };
                    last = l;
                    touched.remove(&last);
                    // The last epoch is unchanged; its rows change only if
                    // its events reach into a bucket the new cut falls in.
                    let straddled = grains().map(|g| bucket_start(cut, g)).filter(|&b| b < cut).min();
                    if straddled.is_some_and(|b| last_old.is_some_and(|hi| hi >= b)) {
                        touched.insert(last);
                        read.insert(last, (before, true));
                    }
                    slots.push(Slot::Kept(Epoch { from: Some(cut), ..placeholder() }));
                    touched.insert(last + 1);
                    read.insert(last + 1, (after, true));
                }
            }
            _ => {
                // The last epoch, folded again anyway, is cut at the start
                // of its last period when it spans more than one (`settle`
                // joins them again if that cut is unclean; it is not tried
                // again at the same period).
                if !ids_stay(&events, plan, &carried(&head_after(reader, &slots[..last])?.carry)) {
                    return Ok(None);
                }
                let hi = events.events.iter().map(|e| e.occurred_at).max();
                let lo = events.events.iter().map(|e| e.occurred_at).min();
                let quiet = Quiet::of(std::slice::from_ref(&events), reader.m.window);
                match (lo, hi.map(|hi| quiet.before(period_start(hi)))) {
                    (Some(lo), Some(cut))
                        if lo < cut
                            && epochs[last].from.is_none_or(|f| cut > f)
                            && epochs[last].unclean != Some(cut) =>
                    {
                        let Some(l) = make_room(reader, &mut slots, &mut touched, &mut read, last)? else {
                            return Ok(None);
                        };
                        last = l;
                        let (before, after) = split(&events, cut);
                        read.insert(last, (before, true));
                        // Either half may link what the last epoch borrowed.
                        let borrowed = slots[last].expected().cloned().collect();
                        slots.push(Slot::Kept(Epoch { from: Some(cut), borrowed, ..placeholder() }));
                        touched.insert(last + 1);
                        read.insert(last + 1, (after, true));
                        split_at = Some((last, last + 1));
                    }
                    _ => {
                        read.insert(last, (events, true));
                    }
                }
            }
        }
    }
    // Fold the touched epochs (and the next of one whose tails changed),
    // checking the ids their new events name.
    for i in 0..slots.len() {
        if !touched.contains(&i) {
            continue;
        }
        let (from, to) = (slots[i].from(), slots.get(i + 1).and_then(Slot::from));
        let (events, checked) = match read.remove(&i) {
            Some(read) => read,
            None => (flatten(reader.read(from, to)?), false),
        };
        let head = head_after(reader, &slots[..i])?;
        if !checked && !ids_stay(&events, plan, &carried(&head.carry)) {
            return Ok(None);
        }
        // The two halves of a last epoch cut in two: their old events may
        // name ids across the new cut.
        let halves = split_at.is_some_and(|(a, b)| i == a || i == b);
        let checks = Checks { every_id: halves, ..appended };
        let expect = slots[i].expected().cloned().collect();
        let mut piece = fold_piece(&events, from, to, head, reader.m.window, checks, expect)?;
        if let Slot::Kept(e) = &slots[i] {
            piece.unclean = e.unclean;
        }
        let before = head_after(reader, &slots[..=i])?;
        slots[i] = Slot::Fresh(piece);
        if head_after(reader, &slots[..=i])? != before {
            touched.insert(i + 1);
        }
    }
    Ok(Some(settle(reader, slots, appended)?))
}

/// Makes room for one more epoch when there are [`max_epochs`]: joins the
/// two adjacent epochs, after the first and before
/// `last`, with the fewest events between them (removing a cut is always
/// right). Joining the smallest keeps the epochs' sizes growing towards the
/// past, so an event is folded again a few times over its life, never the
/// whole history at once. Two epochs the append does not touch are joined
/// from their rows ([`join_rows`]); else the joined epoch is folded again.
/// Returns where `last` is now; `None` when there are not two such epochs.
fn make_room(
    reader: &Reader,
    slots: &mut Vec<Slot>,
    touched: &mut BTreeSet<usize>,
    read: &mut HashMap<usize, (Stamped, bool)>,
    last: usize,
) -> Result<Option<usize>> {
    let events = |s: &Slot| match s {
        Slot::Kept(e) => e.counts.events,
        Slot::Fresh(p) => p.counts.events,
    };
    if slots.len() < max_epochs(slots.iter().map(events).sum()) {
        return Ok(Some(last));
    }
    let Some(j) = (1..last.saturating_sub(1)).min_by_key(|&j| events(&slots[j]) + events(&slots[j + 1])) else {
        return Ok(None);
    };
    let untouched = !touched.contains(&j) && !touched.contains(&(j + 1));
    let removed = slots.remove(j + 1);
    let joined = match (&slots[j], &removed) {
        (Slot::Kept(l), Slot::Kept(r)) if untouched => Some(join_rows(reader, &slots[..j], l, r)?),
        _ => None,
    };
    let refold = joined.is_none();
    match joined {
        Some(piece) => slots[j] = Slot::Fresh(piece),
        None => {
            let borrowed = removed.expected().cloned();
            match &mut slots[j] {
                Slot::Kept(e) => {
                    e.borrowed.extend(borrowed);
                    e.borrowed.sort_unstable();
                    e.borrowed.dedup();
                }
                Slot::Fresh(p) => p.expect.extend(borrowed),
            }
        }
    }
    // Indices after the removed epoch move down one; its own go to `j`.
    let moved = |i: usize| if i > j + 1 { i - 1 } else { i.min(j) };
    *touched = touched.iter().map(|&i| moved(i)).chain(refold.then_some(j)).collect();
    read.remove(&j);
    read.remove(&(j + 1));
    *read = std::mem::take(read).into_iter().map(|(i, r)| (moved(i), r)).collect();
    Ok(Some(last - 1))
}

/// Kept epochs `l` and `r` (adjacent, after the epochs `before`) as one,
/// from their stored rows rather than a fold of their events: their cut was
/// clean, so a fold of both has the rows of each (a bucket the cut falls in
/// is in `r`'s rows, with what `l` collected of it), their counts and
/// summaries add up, and what the two carry out and their tails are `r`'s.
/// What `l`'s events link that `r` borrows, the joined epoch may not: it
/// borrows both sets, which can only make a later check refold it.
fn join_rows(reader: &Reader, before: &[Slot], l: &Epoch, r: &Epoch) -> Result<Piece> {
    let mut parts = Vec::with_capacity(PARTS.len());
    for part in PARTS {
        let mut rows = super::epoch_rows(reader.data, reader.m, part, l.file(part))?;
        rows.extend(super::epoch_rows(reader.data, reader.m, part, r.file(part))?);
        if rows.is_empty() {
            // A file of no rows reads back as no batch; a fold's has one.
            rows.push(RecordBatch::new_empty(part.schema()));
        }
        parts.push(rows);
    }
    let mut counts = l.counts;
    counts += r.counts;
    let pairs: BTreeSet<(String, String)> = l.pairs.iter().chain(&r.pairs).cloned().collect();
    let borrowed: BTreeSet<String> = l.borrowed.iter().chain(&r.borrowed).cloned().collect();
    let passed = reader.passed(&r.id)?;
    Ok(Piece {
        from: l.from,
        parts,
        counts,
        span: widen(l.span, r.span),
        pairs: pairs.into_iter().collect(),
        ingested: widen(l.ingested, r.ingested),
        summary: Summary::sum([&l.summary, &r.summary].into_iter()),
        tails: passed.tails,
        carry: passed.carry,
        unclean: r.unclean.or(l.unclean),
        head: head_after(reader, before)?,
        // Old events only: `ids_stay` checked the new ones against them.
        keys: HashSet::new(),
        borrowed: borrowed.into_iter().collect(),
        expect: BTreeSet::new(),
        unmet: false,
    })
}

/// Whether every id the new events of `events` (one epoch's) name that an
/// older event named is named by an older event of this epoch, or is a
/// commit carried into it (`carried`) that they link: then, the cuts having
/// been clean, by none of another (but as a commit the next epochs borrow).
fn ids_stay(events: &Stamped, plan: &Plan, carried: &HashSet<&str>) -> bool {
    let mut old: Option<HashSet<(u8, &str)>> = None;
    for (e, &at) in events.events.iter().zip(&events.ingested_at) {
        if !plan.is_new(at) {
            continue;
        }
        for (kind, id, link) in named(e) {
            if !plan.seen.contains(&id_hash(kind, id)) {
                continue;
            }
            if kind == 2 && carried.contains(id) {
                // Linked, it is borrowed; committed again, it would have
                // commit events in two epochs.
                if link {
                    continue;
                }
                return false;
            }
            if !old.get_or_insert_with(|| old_names(events, plan)).contains(&(kind, id)) {
                return false;
            }
        }
    }
    true
}

/// The ids the events of `events` that `plan` does not append name.
fn old_names<'e>(events: &'e Stamped, plan: &Plan) -> HashSet<(u8, &'e str)> {
    let olds = events.events.iter().zip(&events.ingested_at).filter(|(_, at)| !plan.is_new(**at));
    olds.flat_map(|(e, _)| named(e)).map(|(kind, id, _)| (kind, id)).collect()
}

/// The ids `e` names, by kind (0 a deployment, 1 an incident, 2 a sha: the
/// kinds [`keys`] keeps apart), each with whether it is a link: a sha named
/// by any event but a commit's own.
pub(super) fn named(e: &Event) -> impl Iterator<Item = (u8, &str, bool)> {
    let own = e.event_type == EventType::Commit;
    let d = e.deployment_id.as_deref().map(|d| (0, d, false));
    let i = e.incident_id.as_deref().map(|i| (1, i, false));
    let head = e.commit_sha.iter().map(move |s| (2, s.as_str(), !own));
    let listed = e.change_ids.iter().flatten().map(|s| (2, s.as_str(), true));
    d.into_iter().chain(i).chain(head).chain(listed)
}

/// Removes unclean cuts until every cut is clean: two epochs whose cut is
/// unclean are folded as one (and the epoch after, if its head changed).
fn settle(reader: &Reader, mut slots: Vec<Slot>, checks: Checks) -> Result<Vec<Slot>> {
    loop {
        let mut unclean: BTreeSet<usize> = BTreeSet::new();
        // (a), (b) between fresh epochs: an id named in two. (A new event
        // naming an id of an epoch kept as it is was found by `ids_stay`;
        // the old events of two epochs name none.)
        let mut owner: HashMap<u64, usize> = HashMap::new();
        for (i, slot) in slots.iter().enumerate() {
            let Slot::Fresh(p) = slot else { continue };
            for &h in &p.keys {
                match owner.get(&h) {
                    Some(&j) if j != i => unclean.extend(j + 1..=i),
                    Some(_) => {}
                    None => {
                        owner.insert(h, i);
                    }
                }
            }
        }
        // (b) for what a fresh epoch borrows: the carry into it holds it.
        for (i, slot) in slots.iter().enumerate() {
            match slot {
                Slot::Fresh(p) if p.unmet && i == 0 => unclean.extend(1..slots.len()),
                Slot::Fresh(p) if p.unmet => {
                    unclean.insert(i);
                }
                _ => {}
            }
        }
        // (c), (d) at each cut.
        for cut in 1..slots.len() {
            let before = Summary::sum(slots[..cut].iter().map(Slot::summary));
            let after = Summary::sum(slots[cut..].iter().map(Slot::summary));
            if !clean(&before, &after, reader.m.window) {
                unclean.insert(cut);
            }
        }
        if unclean.is_empty() {
            return Ok(slots);
        }
        // The head each slot was folded with.
        let heads: Vec<Head> = (0..slots.len())
            .map(|i| match &slots[i] {
                Slot::Fresh(p) => Ok(p.head.clone()),
                Slot::Kept(_) => head_after(reader, &slots[..i]),
            })
            .collect::<Result<_>>()?;
        // Runs of slots joined by unclean cuts: (first, last) positions.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for i in 0..slots.len() {
            match runs.last_mut() {
                Some(run) if unclean.contains(&i) => run.1 = i,
                _ => runs.push((i, i)),
            }
        }
        let mut old: Vec<Option<Slot>> = slots.into_iter().map(Some).collect();
        let mut next: Vec<Slot> = Vec::with_capacity(runs.len());
        for (k, &(first, last)) in runs.iter().enumerate() {
            let from = old[first].as_ref().and_then(Slot::from);
            let to = runs.get(k + 1).and_then(|&(f, _)| old[f].as_ref().and_then(Slot::from));
            let head = head_after(reader, &next)?;
            if first == last && heads[first] == head {
                next.extend(old[first].take());
                continue;
            }
            let events = flatten(reader.read(from, to)?);
            let expect = old[first..=last].iter().flatten().flat_map(Slot::expected).cloned().collect();
            let mut piece = fold_piece(&events, from, to, head, reader.m.window, checks, expect)?;
            piece.unclean = (first < last).then(|| old[last].as_ref().and_then(Slot::from)).flatten();
            next.push(Slot::Fresh(piece));
        }
        slots = next;
    }
}

/// The distinct teams the rows of `parts` name, sorted.
fn teams_of(parts: &[Vec<RecordBatch>]) -> Result<Vec<String>> {
    let mut teams = BTreeSet::new();
    for batch in parts.iter().flatten() {
        let Some(column) = batch.column_by_name("team") else { continue };
        let column = column
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| crate::Error::Internal("a team column that is not text".into()))?;
        teams.extend(column.iter().flatten().map(str::to_string));
    }
    Ok(teams.into_iter().collect())
}

fn placeholder() -> Epoch {
    Epoch {
        from: None,
        id: String::new(),
        files: Vec::new(),
        counts: ProjectedCounts::default(),
        span: None,
        pairs: Vec::new(),
        ingested: None,
        summary: Summary::default(),
        unclean: None,
        teams: None,
        borrowed: Vec::new(),
    }
}

/// Writes the fresh epochs' files and the segments to rewrite; `old`: the
/// component before this update (a fresh epoch keeps the file of the old
/// one of its start for each table where it encodes the same bytes);
/// `all`: the component's events per service when it was read whole.
fn finish(
    reader: &Reader,
    root: u32,
    slots: Vec<Slot>,
    old: Option<&Component>,
    mut all: Option<Vec<Stamped>>,
) -> Result<Folded> {
    let (data, dir) = (reader.data, reader.dir);
    let m = reader.m;
    let mut checksums = BTreeMap::new();
    let mut epochs = Vec::with_capacity(slots.len());
    let mut written = Vec::new();
    let mut added = Vec::new();
    let mut learnt = Learnt::default();
    let cuts: Vec<i64> = slots.iter().filter_map(Slot::from).collect();
    for slot in slots {
        epochs.push(match slot {
            Slot::Kept(e) => e,
            Slot::Fresh(p) => {
                let id = format!("c{root}-{}", uuid::Uuid::new_v4());
                let before = old.and_then(|c| c.epochs.iter().find(|e| e.from == p.from));
                let mut files = Vec::with_capacity(PARTS.len());
                for (part, batches) in PARTS.into_iter().zip(&p.parts) {
                    let rows = rows_hash(batches);
                    let before = before.map(|e| e.file(part));
                    // Rows the writer knows the file it replaces to hold: kept unencoded.
                    let remembered = before.and_then(|name| {
                        let file = component_file(part, name);
                        let checksum = *m.checksums.get(&file)?;
                        (reader.memo.rows(&file) == Some(rows)).then(|| (name.to_string(), checksum))
                    });
                    let (name, checksum) = match remembered {
                        Some(kept) => kept,
                        None => {
                            let (bytes, num_records) = encode_parquet(batches)?;
                            let checksum = xxhash_rust::xxh3::xxh3_64(&bytes);
                            let same = before.filter(|name| {
                                m.checksums.get(&component_file(part, name)) == Some(&checksum)
                                    && published::file(data, part, name)
                                        .metadata()
                                        .is_ok_and(|f| f.len() == bytes.len() as u64)
                            });
                            match same {
                                Some(name) => (name.to_string(), checksum),
                                None => {
                                    let path = published::file(data, part, &id);
                                    reader.spares.write(&path, &bytes)?;
                                    written.push(path);
                                    let size = bytes.len() as u64;
                                    let add = published::add_of(published::file_name(&id), size, num_records, checksum);
                                    added.push((part, add));
                                    (id.clone(), checksum)
                                }
                            }
                        }
                    };
                    let file = component_file(part, &name);
                    learnt.rows.push((file.clone(), rows));
                    checksums.insert(file, checksum);
                    files.push(name);
                }
                if p.tails.iter().any(|t| !t.is_empty()) || !p.carry.is_empty() {
                    let name = tails_file(&id);
                    let passed = Passed { tails: p.tails, carry: p.carry };
                    let text = serde_json::to_vec(&passed)
                        .map_err(|e| crate::Error::Internal(format!("what an epoch passes on: {e}")))?;
                    reader.spares.write(&dir.join(&name), &text)?;
                    checksums.insert(name.clone(), xxhash_rust::xxh3::xxh3_64(&text));
                    written.push(dir.join(&name));
                }
                let teams = Some(teams_of(&p.parts)?);
                // Its own in every table: named by `id` alone (see `Epoch::file`).
                if files.iter().all(|f| *f == id) {
                    files.clear();
                }
                Epoch {
                    from: p.from,
                    id,
                    files,
                    counts: p.counts,
                    span: p.span,
                    pairs: p.pairs,
                    ingested: p.ingested,
                    summary: p.summary,
                    unclean: p.unclean,
                    teams,
                    borrowed: p.borrowed,
                }
            }
        });
    }
    // Segments: each within one epoch (routing splits new events at the
    // cuts; new cuts of a component folded whole split its old segments), at
    // most MAX_SEGMENTS of a service in one.
    let epoch_of = |t: i64| cuts.iter().take_while(|&&c| c <= t).count();
    let mut segments = Vec::new();
    for (k, &s) in reader.services.iter().enumerate() {
        let names = &m.segments[s as usize];
        // Those that straddle a cut, and the smallest of an epoch with too
        // many, are written again; the others stay as they are.
        let mut groups: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let mut rewrite = Vec::new();
        // Epochs that a rewritten segment's events may reach: each gets a new segment.
        let mut reached = BTreeSet::new();
        for seg in names {
            match m.spans.get(seg) {
                Some(&(lo, hi)) if epoch_of(lo) == epoch_of(hi) => {
                    groups.entry(epoch_of(lo)).or_default().push(seg.clone())
                }
                span => {
                    let (lo, hi) = span.map_or((0, cuts.len()), |&(lo, hi)| (epoch_of(lo), epoch_of(hi)));
                    reached.extend(lo..=hi);
                    rewrite.push(seg.clone())
                }
            }
        }
        let crowded = |(epoch, g): &(usize, Vec<String>)| g.len() + usize::from(reached.contains(epoch)) > MAX_SEGMENTS;
        for (_, group) in groups.into_iter().filter(crowded) {
            // Its smallest, merged into one, bring it back to MAX_SEGMENTS;
            // the large ones (merged before, or two joined epochs') stay.
            let size = |seg: &String| dir.join(seg).metadata().map_or(0, |f| f.len());
            let mut by_size: Vec<(u64, String)> = group.into_iter().map(|seg| (size(&seg), seg)).collect();
            by_size.sort_unstable();
            let merged = by_size.len() - MAX_SEGMENTS + 1;
            rewrite.extend(by_size.into_iter().take(merged).map(|(_, seg)| seg));
        }
        if rewrite.is_empty() {
            continue;
        }
        let events = match all.as_mut() {
            Some(all) if rewrite.len() == names.len() => std::mem::take(&mut all[k]),
            _ => reader.segments(&rewrite)?,
        };
        let old_names = rewrite;
        let mut parts: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, e) in events.events.iter().enumerate() {
            parts.entry(epoch_of(e.occurred_at)).or_default().push(i);
        }
        let mut new = Vec::new();
        for rows in parts.values() {
            let mut w = SegmentWriter::create(dir, s, reader.memo.remembers_segments(), reader.spares)?;
            for chunk in rows.chunks(SEGMENT_ROWS) {
                chunk.iter().for_each(|&i| w.push(events.events[i].clone(), events.ingested_at[i]));
                w.encode()?;
            }
            let super::SegmentFile { name, checksum, span, events } = w.finish()?;
            learnt.segments.extend(events.map(|events| (name.clone(), Arc::new(events))));
            checksums.insert(name.clone(), checksum);
            new.push((name, span));
        }
        segments.push((s, old_names, new));
    }
    let read = reader.learnt.take();
    learnt.segments.extend(read.segments);
    learnt.used.extend(read.used);
    Ok(Folded { component: Component::of(epochs), checksums, segments, written, added, learnt })
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use arrow::array::{Array, RecordBatch, TimestampMicrosecondArray};
    use arrow::util::display::array_value_to_string;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::super::{Manifest, PARTS, Publication, ReadModel, Refolded, catch_up, read_manifest};
    use super::{max_epochs, period_start};
    use crate::input::ndjson_rows;
    use crate::log::{Writer, load_events};

    const HOUR: i64 = 3_600_000_000;
    const DAY: i64 = 24 * HOUR;
    /// 2026-01-05T00:00:00Z, a Monday.
    const START: i64 = 1_767_571_200_000_000;

    fn at(t: i64) -> String {
        chrono::DateTime::from_timestamp_micros(t).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }

    fn commit(svc: &str, sha: &str, t: i64) -> String {
        format!(
            r#"{{"event_id":"c-{sha}","event_type":"commit","occurred_at":"{}","service":"{svc}","commit_sha":"{sha}"}}"#,
            at(t)
        )
    }

    fn deploy(svc: &str, env: &str, id: &str, t: i64, sha: Option<&str>) -> String {
        let sha = sha.map(|s| format!(r#","commit_sha":"{s}""#)).unwrap_or_default();
        format!(
            r#"{{"event_id":"d-{id}","event_type":"deployment_succeeded","occurred_at":"{}","service":"{svc}","environment":"{env}","deployment_id":"{id}"{sha}}}"#,
            at(t)
        )
    }

    fn incident(kind: &str, svc: &str, id: &str, t: i64) -> String {
        format!(
            r#"{{"event_id":"{kind}-{id}","event_type":"incident_{kind}","occurred_at":"{}","service":"{svc}","environment":"production","incident_id":"{id}"}}"#,
            at(t)
        )
    }

    fn rollback(svc: &str, id: &str, t: i64) -> String {
        format!(
            r#"{{"event_id":"rb-{id}","event_type":"deployment_rolled_back","occurred_at":"{}","service":"{svc}","environment":"production","deployment_id":"{id}"}}"#,
            at(t)
        )
    }

    /// Day `d`'s events of service `svc`: a commit, its deployment (rules
    /// 2 and 3 in turn), a staging deployment now and then, an incident
    /// every fifth day (caused by that day's deployment).
    fn day(svc: &str, d: i64) -> Vec<String> {
        let t = START + d * DAY;
        let sha = format!("{svc}-{d}");
        let mut out = vec![commit(svc, &sha, t + 9 * HOUR)];
        let head = (d % 3 != 0).then_some(sha.as_str());
        out.push(deploy(svc, "production", &format!("p-{sha}"), t + 15 * HOUR, head));
        if d % 4 == 0 {
            out.push(deploy(svc, "staging", &format!("s-{sha}"), t + 12 * HOUR, None));
        }
        if d % 5 == 0 {
            out.push(incident("opened", svc, &format!("i-{sha}"), t + 16 * HOUR));
            out.push(incident("resolved", svc, &format!("i-{sha}"), t + 18 * HOUR));
        }
        out
    }

    /// Days `range` (from 2026-01-05) of `services`, as NDJSON lines.
    pub(crate) fn days(services: &[&str], range: std::ops::Range<i64>) -> Vec<String> {
        range.flat_map(|d| services.iter().flat_map(move |s| day(s, d))).collect()
    }

    /// A data directory whose read model (with `window`) is caught up after
    /// each append and checked against a whole fold of the log.
    struct Data {
        dir: tempfile::TempDir,
        writer: Writer,
        tables: Publication,
        window: Option<i64>,
    }

    impl Data {
        fn new(window: Option<i64>) -> Data {
            let dir = tempfile::tempdir().unwrap();
            let writer = Writer::open(dir.path(), "test").unwrap();
            Data { dir, writer, tables: Publication::default(), window }
        }

        fn root(&self) -> &Path {
            self.dir.path()
        }

        /// Appends `lines` as one batch, catches the model up and checks it.
        fn append(&mut self, lines: &[String]) -> Manifest {
            let rows = ndjson_rows(std::io::Cursor::new(lines.join("\n").into_bytes()));
            self.writer.append_inputs("t", std::iter::once(("t", rows)), &mut |_| {}).unwrap();
            let snap = self.writer.log().snapshot().unwrap();
            catch_up(&snap, self.window, false, &mut self.tables).unwrap();
            self.assert_exact();
            self.manifest()
        }

        fn manifest(&self) -> Manifest {
            read_manifest(&self.root().join(super::super::DIR)).unwrap().unwrap()
        }

        /// The stored rows of every table are a whole fold's, and so are
        /// the counts.
        fn assert_exact(&self) {
            let snap = self.writer.log().snapshot().unwrap();
            let events = load_events(&snap, None).unwrap();
            let whole = Refolded::of_events(&events, self.window, &PARTS).unwrap();
            let model = ReadModel::open(self.root()).unwrap().unwrap();
            for (k, part) in PARTS.into_iter().enumerate() {
                let mut stored = Vec::new();
                for c in model.manifest.components.values() {
                    stored.extend(model.read_component(part, c).unwrap());
                }
                assert_eq!(rows(&stored), rows(&whole.parts[k]), "{}", part.name());
            }
            assert_eq!(model.counts(), whole.counts);
            // Each epoch's rows lie within its bounds, which scans prune by.
            for c in model.manifest.components.values() {
                for (k, e) in c.epochs.iter().enumerate() {
                    let to = c.epochs.get(k + 1).and_then(|next| next.from);
                    for part in PARTS {
                        let (lo, hi) = super::bounds(part, e.from, to);
                        let bytes = std::fs::read(super::published::file(self.root(), part, e.file(part))).unwrap();
                        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap();
                        for batch in reader.build().unwrap() {
                            let batch = batch.unwrap();
                            for name in super::bounded_columns(part) {
                                let column = batch.column_by_name(name).unwrap();
                                let times = column.as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
                                for t in times.iter().flatten() {
                                    let within = lo.is_none_or(|lo| t >= lo) && hi.is_none_or(|hi| t < hi);
                                    assert!(within, "{}.{name} {t} outside {lo:?}..{hi:?}", part.name());
                                }
                            }
                        }
                    }
                }
            }
            // Each segment lies within one epoch of its component.
            let m = &model.manifest;
            for (s, segments) in m.segments.iter().enumerate() {
                let c = &m.components[&m.find(s as u32)];
                let cuts: Vec<i64> = c.epochs.iter().filter_map(|e| e.from).collect();
                let epoch = |t: i64| cuts.iter().take_while(|&&c| c <= t).count();
                let mut per_epoch = BTreeMap::new();
                for seg in segments {
                    let (lo, hi) = m.spans[seg];
                    assert_eq!(epoch(lo), epoch(hi), "{seg} straddles a cut of {cuts:?}");
                    *per_epoch.entry(epoch(lo)).or_insert(0) += 1;
                }
                assert!(
                    per_epoch.values().all(|&n| n <= super::super::MAX_SEGMENTS),
                    "too many segments: {per_epoch:?}"
                );
            }
        }
    }

    /// Rows as text, sorted: the files' order is the model's business.
    fn rows(batches: &[RecordBatch]) -> Vec<String> {
        let mut out = Vec::new();
        for b in batches {
            for r in 0..b.num_rows() {
                let cells: Vec<String> = b.columns().iter().map(|c| array_value_to_string(c, r).unwrap()).collect();
                out.push(cells.join("|"));
            }
        }
        out.sort();
        out
    }

    /// The epoch starts of the component of service 0.
    fn cuts(m: &Manifest) -> Vec<Option<i64>> {
        m.components.values().next().unwrap().epochs.iter().map(|e| e.from).collect()
    }

    fn ids(m: &Manifest) -> Vec<String> {
        m.components.values().flat_map(|c| c.epochs.iter().map(|e| e.id.clone())).collect()
    }

    const SERVICES: [&str; 2] = ["a", "b"];

    /// 150 days appended a week at a time, in order.
    fn in_order(window: Option<i64>) -> Data {
        let mut data = Data::new(window);
        for w in 0..22 {
            let m = data.append(&days(&SERVICES, w * 7..w * 7 + 7));
            for c in m.components.values() {
                assert!(c.epochs.len() <= max_epochs(c.counts.events), "{:?}", c.epochs.len());
            }
        }
        data
    }

    #[test]
    fn appends_later_than_everything_open_epochs_and_fold_only_those() {
        let mut data = Data::new(crate::project::DEFAULT_ATTRIBUTION_WINDOW);
        for w in 0..21 {
            data.append(&days(&SERVICES, w * 7..w * 7 + 7));
        }
        // Monday to Wednesday of week 21 (from 2026-06-01, a month start too).
        let m = data.append(&days(&SERVICES, 147..150));
        assert_eq!(m.components.len(), 2);
        assert!(cuts(&m).len() > 1, "{:?}", cuts(&m));
        // A batch in the last epoch's week: only the last epoch is new.
        let before = ids(&m);
        let m = data.append(&days(&SERVICES, 150..152));
        let after = ids(&m);
        let kept = before.iter().filter(|id| after.contains(id)).count();
        assert_eq!(kept, before.len() - 2, "one epoch per component refolded: {before:?} {after:?}");
    }

    #[test]
    fn months_of_appends_join_recent_epochs_and_never_refold_the_settled_history() {
        let mut data = Data::new(crate::project::DEFAULT_ATTRIBUTION_WINDOW);
        // Eight weeks first: one fold, its settled history and recent months.
        let m = data.append(&days(&SERVICES, 0..56));
        // Its segments were split at the cuts in the same update: the
        // whole ones, which no manifest named, are gone rather than kept.
        assert!(m.segments.iter().all(|s| s.len() > 1), "{:?}", m.segments);
        let let_go = super::super::grace::LetGo::read(&data.root().join(super::super::DIR));
        assert!(let_go.model_files().next().is_none(), "{let_go:?}");
        let input = data.root().join(super::super::DIR).join("input");
        let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(input)
            .unwrap()
            .map(|e| format!("input/{}", e.unwrap().file_name().to_string_lossy()))
            .collect();
        assert_eq!(on_disk, m.segments.iter().flatten().cloned().collect());
        // The month the last cut falls in straddles it: the epoch before
        // keeps its part in a file beside the manifest, not in it.
        for c in m.components.values() {
            let kept = c.epochs.iter().filter(|e| m.checksums.contains_key(&super::super::tails_file(&e.id)));
            assert!(kept.count() > 0, "{:?}", m.checksums.keys());
        }
        let text = std::fs::read_to_string(data.root().join(super::super::DIR).join(super::super::MANIFEST)).unwrap();
        assert!(!text.contains("\"tails\"") && !text.contains("\"carry\"") && text.contains("\"epochs\""), "{text}");
        let settled = |m: &Manifest| m.components.values().map(|c| c.epochs[0].id.clone()).collect::<Vec<_>>();
        let first = settled(&data.manifest());
        let mut reached = false;
        // Then ten months a week at a time, each checked against a whole fold.
        for w in 8..52 {
            let m = data.append(&days(&SERVICES, w * 7..w * 7 + 7));
            for c in m.components.values() {
                reached |= c.epochs.len() == max_epochs(c.counts.events);
                assert!(c.epochs.len() <= max_epochs(c.counts.events), "{:?}", c.epochs.len());
            }
            assert_eq!(settled(&m), first, "week {w}: the settled history was folded again");
        }
        assert!(reached, "the epochs reached their most and were joined");
    }

    #[test]
    fn a_late_batch_refolds_the_settled_epoch_it_lands_in_not_the_history() {
        let mut data = Data::new(crate::project::DEFAULT_ATTRIBUTION_WINDOW);
        // Forty weeks folded whole: the settled history in epochs of about
        // SETTLED_EVENTS (a cut falls at a period's start: a week more at most).
        let m = data.append(&days(&SERVICES, 0..280));
        for c in m.components.values() {
            let chunks = c.counts.events / (2 * super::SETTLED_EVENTS);
            assert!(c.epochs.len() > super::RECENT_EPOCHS + chunks as usize, "{:?}", c.epochs.len());
            let week = c.counts.events / 40;
            for e in &c.epochs[1..c.epochs.len() - super::RECENT_EPOCHS] {
                assert!((super::SETTLED_EVENTS..=super::SETTLED_EVENTS + week).contains(&e.counts.events), "{e:?}");
            }
        }
        // New ids in week 14 of `a`: its epoch is folded again (and the one
        // after, whose head holds its tails), nothing else.
        let t = START + 100 * DAY;
        let before = ids(&m);
        let m = data.append(&[
            commit("a", "late-1", t + 10 * HOUR),
            deploy("a", "production", "late-d1", t + 11 * HOUR, Some("late-1")),
        ]);
        let changed = ids(&m).iter().filter(|id| !before.contains(id)).count();
        assert!((1..=2).contains(&changed), "{changed} epochs folded again");
    }

    #[test]
    fn late_batches_refold_their_epoch_and_unclean_cuts_merge() {
        let window = crate::project::DEFAULT_ATTRIBUTION_WINDOW;
        let mut data = in_order(window);
        let m = data.manifest();
        let cuts_before = cuts(&m);
        let n = cuts_before.len();
        assert!(n >= 3, "{cuts_before:?}");
        let last_cut = cuts_before[n - 1].unwrap();
        let prev_cut = cuts_before[n - 2].unwrap();

        // A clean late batch inside the epoch before last: new ids, shipped
        // within it.
        let t = prev_cut + 3 * DAY;
        let before = ids(&m);
        let m = data.append(&[
            commit("a", "late-1", t + 10 * HOUR),
            deploy("a", "production", "late-d1", t + 11 * HOUR, Some("late-1")),
        ]);
        assert_eq!(cuts(&m), cuts_before, "a clean late batch keeps the cuts");
        let changed = ids(&m).iter().filter(|id| !before.contains(id)).count();
        assert!(changed <= 2, "only the epoch it lands in (and its successor) refold: {changed}");

        // A commit of `a` left unshipped at the end of the epoch before
        // last: carried into the last, whose first deployment ships it.
        let m = data.append(&[commit("a", "unshipped", last_cut - HOUR)]);
        assert_eq!(cuts(&m), cuts_before, "an unshipped commit is carried");

        // (c) A first deployment of `a` to a new environment in the last
        // epoch ships all of its history there.
        let m = data.append(&[deploy("a", "qa", "first-qa", last_cut + 2 * DAY, None)]);
        let a = &m.components.values().next().unwrap().epochs;
        assert!(!a.iter().any(|e| e.from == Some(last_cut)), "the cut at {last_cut} is unclean: {:?}", cuts(&m));

        // (a) A rollback in the last epoch of a deployment of the one before.
        let m = data.manifest();
        let cuts_b: Vec<Option<i64>> = m.components.values().nth(1).unwrap().epochs.iter().map(|e| e.from).collect();
        let cut = cuts_b.last().unwrap().unwrap();
        let last_day = (cut - START) / DAY - 1;
        let m = data.append(&[rollback("b", &format!("p-b-{last_day}"), cut + 2 * HOUR)]);
        let b: Vec<Option<i64>> = m.components.values().nth(1).unwrap().epochs.iter().map(|e| e.from).collect();
        assert!(!b.contains(&Some(cut)), "a rollback across {cut} joins its epochs: {b:?}");
    }

    #[test]
    fn an_incident_inferred_across_a_cut_merges_its_epochs() {
        for window in [Some(24 * HOUR), None] {
            let mut data = in_order(window);
            let m = data.manifest();
            let c = cuts(&m);
            let cut = c[c.len() - 1].unwrap();
            // Opened before the first deployment of the month: the last
            // deployment of the month before (9.5 h earlier) caused it.
            let m = data.append(&[incident("opened", "a", "across", cut + 30 * 60_000_000)]);
            assert!(!cuts(&m).contains(&Some(cut)), "{window:?}: {:?}", cuts(&m));
            // Later in the month, after a deployment of the month: clean.
            let m = data.manifest();
            let c = cuts(&m);
            let late = c.last().unwrap().unwrap() + 10 * DAY + 20 * HOUR;
            let m = data.append(&[incident("opened", "b", "inside", late)]);
            assert!(m.components.values().nth(1).map(|c| c.epochs.len()).unwrap() > 1);
        }
    }

    #[test]
    fn deployments_linking_commits_carried_across_a_cut_keep_it() {
        const MINUTE: i64 = 60_000_000;
        let mut data = in_order(crate::project::DEFAULT_ATTRIBUTION_WINDOW);
        let cuts_before = cuts(&data.manifest());
        let cut = cuts_before.last().unwrap().unwrap();
        let epochs = |m: &Manifest, k: usize| m.components.values().nth(k).unwrap().epochs.clone();
        // A commit of `a` after the last production deployment before the
        // cut: carried into the last epoch.
        let m = data.append(&[commit("a", "z", cut - 90 * MINUTE)]);
        let earlier: Vec<String> = epochs(&m, 0).iter().rev().skip(1).map(|e| e.id.clone()).collect();
        // Its production deployment after the cut names it as its head
        // (rule 2): the last epoch borrows it, and only it is folded again.
        let m = data.append(&[deploy("a", "production", "z-prod", cut + 2 * HOUR, Some("z"))]);
        assert_eq!(cuts(&m), cuts_before, "a link to a carried commit keeps the cut");
        let a = epochs(&m, 0);
        assert_eq!(a.last().unwrap().borrowed, ["z"]);
        assert_eq!(a.iter().rev().skip(1).map(|e| e.id.clone()).collect::<Vec<_>>(), earlier);
        // A production deployment before the cut ships it there first (it
        // is still carried: staging has not had it) ...
        let m = data.append(&[deploy("a", "production", "z-early", cut - 30 * MINUTE, Some("z"))]);
        assert_eq!(cuts(&m), cuts_before);
        // ... and then staging: the carry no longer holds it, and the cut goes.
        let m = data.append(&[deploy("a", "staging", "z-staging", cut - 20 * MINUTE, Some("z"))]);
        assert!(!cuts(&m).contains(&Some(cut)), "{:?}", cuts(&m));

        // `b`: a commit shipped everywhere before the cut, then listed by a
        // deployment after it (rule 1): not carried, so the cut goes.
        data.append(&[
            commit("b", "y", cut - 5 * HOUR),
            deploy("b", "staging", "y-st", cut - 4 * HOUR, None),
            deploy("b", "production", "y-prod", cut - 3 * HOUR, None),
        ]);
        let listed = format!(
            r#"{{"event_id":"d-y-list","event_type":"deployment_succeeded","occurred_at":"{}","service":"b","environment":"production","deployment_id":"y-list","change_ids":["y"]}}"#,
            at(cut + 2 * HOUR)
        );
        let m = data.append(&[listed]);
        let b: Vec<Option<i64>> = epochs(&m, 1).iter().map(|e| e.from).collect();
        assert!(!b.contains(&Some(cut)), "{b:?}");
    }

    #[test]
    fn a_cut_moves_back_to_where_no_incident_is_open_or_blamed_across_it() {
        let mut data = Data::new(crate::project::DEFAULT_ATTRIBUTION_WINDOW);
        // Eight weeks, with an incident of `a` open across the start of the
        // last (day 49, a Monday), 8 h after the day's production deployment.
        let mut lines = days(&SERVICES, 0..56);
        lines.push(incident("opened", "a", "night", START + 49 * DAY - HOUR));
        lines.push(incident("resolved", "a", "night", START + 49 * DAY + HOUR));
        let m = data.append(&lines);
        // Before the incident would blame a deployment across the cut: the
        // cut is just before that deployment, and splits its day and week.
        let a = cuts(&m);
        assert_eq!(a.last(), Some(&Some(START + 48 * DAY + 15 * HOUR)), "{a:?}");
        let b: Vec<Option<i64>> = m.components.values().nth(1).unwrap().epochs.iter().map(|e| e.from).collect();
        assert_eq!(b.last(), Some(&Some(START + 49 * DAY)), "{b:?}");
        // Later weeks, appended one at a time, stay exact.
        for w in 8..12 {
            data.append(&days(&SERVICES, w * 7..w * 7 + 7));
        }
    }

    #[test]
    fn a_last_epoch_cut_in_two_across_an_id_stays_one() {
        let mut data = in_order(crate::project::DEFAULT_ATTRIBUTION_WINDOW);
        let c = cuts(&data.manifest());
        let last = c.last().unwrap().unwrap();
        let next = period_start(last + 32 * DAY);
        let first_day = (next - START) / DAY;
        // Started at the end of the last epoch's month, finished in the next
        // month: cutting the last epoch at that month would split it.
        let started = deploy("a", "production", "across-months", next - 2 * HOUR, None)
            .replace("deployment_succeeded", "deployment_started")
            .replace("d-across-months", "s-across-months");
        let mut lines = days(&SERVICES, first_day - 2..first_day);
        lines.push(started);
        data.append(&lines);
        // With events of the last epoch's month too: no epoch of its own,
        // the last epoch (spanning two months now) is cut at the second.
        let mut lines = days(&SERVICES, first_day + 1..first_day + 2);
        lines.push(deploy("a", "production", "across-months", next + 2 * HOUR, None));
        lines.extend(SERVICES.iter().map(|s| commit(s, &format!("{s}-late-june"), next - HOUR)));
        let m = data.append(&lines);
        assert!(!cuts(&m).contains(&Some(next)), "{:?}", cuts(&m));
        // Service b has no such deployment: its last epoch is cut in two.
        let b: Vec<Option<i64>> = m.components.values().nth(1).unwrap().epochs.iter().map(|e| e.from).collect();
        assert!(b.contains(&Some(next)), "{b:?}");
    }

    #[test]
    fn shuffled_batches_with_late_events_stay_exact() {
        for window in [Some(HOUR), None] {
            let mut lines = days(&["a", "b", "c"], 0..100);
            // A deployment named from two services joins them.
            lines.push(deploy("c", "production", "p-a-50", START + 50 * DAY + 15 * HOUR, None));
            let mut seed = 0x5eed_u64;
            for i in (1..lines.len()).rev() {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                lines.swap(i, (seed >> 33) as usize % (i + 1));
            }
            let mut data = Data::new(window);
            for chunk in lines.chunks(lines.len() / 9 + 1) {
                data.append(chunk);
            }
            // Late events in old months, and later than everything.
            data.append(&days(&["a"], 100..103));
            data.append(&[commit("b", "old", START + 20 * DAY), incident("resolved", "c", "i-c-95", START + 96 * DAY)]);
        }
    }
}
