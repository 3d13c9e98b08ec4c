//! SPEC §2 "Changes shipped by a successful deployment" and "Change": which
//! commits each successful deployment shipped, and each commit's first
//! arrival in each environment.

use std::collections::BTreeMap;

use datafusion::common::{HashMap, HashSet};

use super::deployments::Deployment;
use crate::event::{Event, EventType};

/// The commit event that defines a `commit_sha` (borrowed from it).
#[derive(Debug, Clone, PartialEq)]
pub struct Commit<'a> {
    pub sha: &'a str,
    pub service: &'a str,
    pub committed_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub commit_sha: String,
    /// The shipping deployment's service: lead times belong to it.
    pub service: String,
    pub environment: String,
    /// The shipping deployment's team.
    pub team: Option<String>,
    /// `None`: no commit event for this id (unknown lead time).
    pub committed_at: Option<i64>,
    pub deployment_id: String,
    pub deployed_at: i64,
}

impl Change {
    /// `deployed_at - committed_at`, in µs; may be negative.
    pub fn raw_lead_time(&self) -> Option<i64> {
        self.committed_at.map(|c| self.deployed_at - c)
    }
    /// The lead time every statistic uses: unknown and negative ones excluded.
    pub fn lead_time(&self) -> Option<i64> {
        self.raw_lead_time().filter(|l| *l >= 0)
    }
}

/// Commits by sha.
pub type Commits<'a> = HashMap<&'a str, Commit<'a>>;

/// Commits by sha: when several events share one, the earliest wins (ties:
/// smallest event_id).
pub fn commits(events: &[Event]) -> Commits<'_> {
    let mut best: HashMap<&str, &Event> = HashMap::new();
    for e in events.iter().filter(|e| e.event_type == EventType::Commit) {
        let Some(sha) = e.commit_sha.as_deref() else { continue };
        best.entry(sha)
            .and_modify(|cur| {
                if (e.occurred_at, &e.event_id) < (cur.occurred_at, &cur.event_id) {
                    *cur = e;
                }
            })
            .or_insert(e);
    }
    best.into_iter().map(|(sha, e)| (sha, Commit { sha, service: &e.service, committed_at: e.occurred_at })).collect()
}

/// When and by which deployment a change first shipped.
type FirstShip<'a> = (i64, &'a Deployment);

/// A commit of an earlier part of a history folded in parts (see
/// `readmodel::epochs`) that had not yet shipped to every environment its
/// service deploys to, and where it had: a later part's deployments ship it
/// by rules 2 and 3 as the whole history's would.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Carried {
    pub sha: String,
    pub service: String,
    pub committed_at: i64,
    pub shipped_to: Vec<String>,
}

/// One row per (commit, environment) a successful deployment shipped it to,
/// with the first such deployment. Sorted by environment, deployment order,
/// sha. `commits` includes the carried ones; `shipped` holds (sha,
/// environment) of carried commits already shipped there.
pub fn changes<'a>(
    deployments: &'a [Deployment],
    commits: &Commits<'a>,
    shipped_before: &HashSet<(&str, &str)>,
) -> Vec<Change> {
    // Each service's commits in time order, for the "every commit up to" rules.
    let mut by_service: HashMap<&str, Vec<&Commit>> = HashMap::new();
    for c in commits.values() {
        by_service.entry(c.service).or_default().push(c);
    }
    for list in by_service.values_mut() {
        list.sort_unstable_by(|a, b| (a.committed_at, a.sha).cmp(&(b.committed_at, b.sha)));
    }
    // Successful deployments of each (service, environment), in finished_at
    // order (ties: deployment_id).
    let mut streams: BTreeMap<(&str, &str), Vec<&Deployment>> = BTreeMap::new();
    for d in deployments.iter().filter(|d| d.is_successful()) {
        streams.entry((d.service.as_str(), d.environment.as_str())).or_default().push(d);
    }
    // First shipment of each (sha, environment): the earliest deployment by
    // (finished_at, deployment_id). Keys borrow; rows are built once at the end.
    let mut first: HashMap<(&str, &str), FirstShip> = HashMap::new();
    for ((service, env), mut stream) in streams {
        stream.sort_by(|a, b| (a.finished_at, &a.deployment_id).cmp(&(b.finished_at, &b.deployment_id)));
        let mut service_commits = by_service.get(service).map(Vec::as_slice).unwrap_or(&[]);
        let unshipped: Vec<&Commit>;
        if !shipped_before.is_empty() {
            unshipped = service_commits.iter().copied().filter(|c| !shipped_before.contains(&(c.sha, env))).collect();
            service_commits = &unshipped;
        }
        let mut shipped: HashSet<&str> = HashSet::new();
        // Commits before `swept` (in time order) have all shipped: rules 2
        // and 3 only ever look past it, so the stream costs O(commits).
        let mut swept = 0;
        for d in stream {
            let Some(finished_at) = d.finished_at else { continue };
            let before = |id: &str| shipped_before.contains(&(id, env));
            for id in shipped_by(d, finished_at, commits, service_commits, &shipped, &before, &mut swept) {
                shipped.insert(id);
                first
                    .entry((id, env))
                    .and_modify(|cur| {
                        if (finished_at, &d.deployment_id) < (cur.0, &cur.1.deployment_id) {
                            *cur = (finished_at, d);
                        }
                    })
                    .or_insert((finished_at, d));
            }
        }
    }
    // Sort the small tuples, not the rows.
    let mut firsts: Vec<_> = first.into_iter().collect();
    firsts.sort_unstable_by(|((id_a, env_a), (t_a, d_a)), ((id_b, env_b), (t_b, d_b))| {
        (env_a, t_a, &d_a.deployment_id, id_a).cmp(&(env_b, t_b, &d_b.deployment_id, id_b))
    });
    firsts
        .into_iter()
        .map(|((id, env), (deployed_at, d))| Change {
            commit_sha: id.to_string(),
            service: d.service.clone(),
            environment: env.to_string(),
            team: d.team.clone(),
            committed_at: commits.get(id).map(|c| c.committed_at),
            deployment_id: d.deployment_id.clone(),
            deployed_at,
        })
        .collect()
}

/// The three linking rules, in order. `shipped_before`: whether a carried
/// commit shipped to this environment in an earlier part (its first
/// shipment there was that part's, so an explicit list naming it again
/// ships nothing here, as in the whole history's fold).
fn shipped_by<'a>(
    d: &'a Deployment,
    finished_at: i64,
    commits: &Commits<'a>,
    service_commits: &[&Commit<'a>],
    shipped: &HashSet<&str>,
    shipped_before: &dyn Fn(&str) -> bool,
    swept: &mut usize,
) -> Vec<&'a str> {
    // 1. An explicit list, plus the head commit and each part's.
    if let Some(ids) = &d.change_ids {
        let mut out: Vec<&str> = ids.iter().map(String::as_str).collect();
        for h in d.commit_sha.iter().chain(&d.part_shas) {
            if !out.contains(&h.as_str()) {
                out.push(h);
            }
        }
        out.retain(|id| !shipped_before(id));
        return out;
    }
    // 2. Everything of the service up to the head commit; 3. up to finishing.
    let cutoff = match d.commit_sha.as_deref().and_then(|h| commits.get(h)) {
        Some(head) => head.committed_at,
        None => finished_at,
    };
    let upto = service_commits.partition_point(|c| c.committed_at <= cutoff);
    let from = (*swept).min(upto);
    *swept = (*swept).max(upto);
    service_commits[from..upto].iter().map(|c| c.sha).filter(|sha| !shipped.contains(sha)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::deployments::deployments;
    use crate::project::tests::ev;

    fn log() -> Vec<Event> {
        vec![
            ev("c1", "commit", 10).sha("a1").no_env(),
            ev("c2", "commit", 20).sha("a2").no_env(),
            ev("c2b", "commit", 5).sha("a2").no_env().svc("other"),
            ev("c3", "commit", 30).sha("a3").no_env(),
            ev("d1", "deployment_succeeded", 25).dep("D1").sha("a1"),
            ev("d2", "deployment_succeeded", 40).dep("D2").changes(&["a3", "zz"]),
            ev("d3", "deployment_succeeded", 50).dep("D3"),
            ev("s1", "deployment_succeeded", 60).dep("S1").env("staging"),
        ]
    }

    #[test]
    fn earliest_commit_event_defines_a_sha() {
        let events = log();
        let c = commits(&events);
        assert_eq!(c["a2"].committed_at, 5);
        assert_eq!(c["a2"].service, "other");
    }

    #[test]
    fn the_three_rules_and_first_shipment() {
        let events = log();
        let ch = changes(&deployments(&events), &commits(&events), &HashSet::new());
        let got: Vec<(&str, &str, &str, Option<i64>)> = ch
            .iter()
            .map(|c| (c.environment.as_str(), c.deployment_id.as_str(), c.commit_sha.as_str(), c.lead_time()))
            .collect();
        assert_eq!(
            got,
            vec![
                // rule 2: commits of svc up to a1's time (a2 belongs to "other")
                ("production", "D1", "a1", Some(15)),
                // rule 1: the explicit list; zz has no commit event
                ("production", "D2", "a3", Some(10)),
                ("production", "D2", "zz", None),
                // rule 3 on staging: every commit of svc up to finishing
                ("staging", "S1", "a1", Some(50)),
                ("staging", "S1", "a3", Some(30)),
            ]
        );
        // D3 (rule 3) found nothing new: a1 and a3 had shipped to production.
        assert!(ch.iter().all(|c| c.deployment_id != "D3"));
    }

    #[test]
    fn a_commit_shipped_again_by_another_service_stays_one_change() {
        let events = vec![
            ev("c1", "commit", 10).sha("a1").no_env(),
            ev("d1", "deployment_succeeded", 20).dep("D1").sha("a1"),
            ev("w1", "deployment_succeeded", 30).dep("W1").svc("web").changes(&["a1"]),
            ev("w0", "deployment_succeeded", 15).dep("W0").env("staging").svc("web").changes(&["a1"]),
        ];
        let ch = changes(&deployments(&events), &commits(&events), &HashSet::new());
        let got: Vec<(&str, &str)> = ch.iter().map(|c| (c.environment.as_str(), c.deployment_id.as_str())).collect();
        assert_eq!(got, vec![("production", "D1"), ("staging", "W0")]);
    }
}
