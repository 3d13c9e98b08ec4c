//! SPEC §2 "Rework": which successful deployments were rework (unplanned,
//! made because of an incident) and which incident each remediates.

use datafusion::common::HashMap;

use super::deployments::Deployment;
use super::incidents::Incident;

/// Each (service, environment)'s successful deployments as (finished_at,
/// id, index), sorted.
type Finishes<'a> = HashMap<(&'a str, &'a str), Vec<(i64, &'a str, usize)>>;

/// Marks every successful deployment's `rework` and `remediates`. A
/// deployment that names an incident is rework, remediating the incident it
/// names (whether or not that incident is in the log). For each resolved
/// incident, the last successful deployment of its service and environment
/// that finished after it opened and no later than it was resolved (ties:
/// greatest `deployment_id`) is rework too, remediating it unless it names
/// an incident itself (an explicit link wins). When one deployment is the
/// inferred fix of several incidents, it remediates the one that opened
/// first (ties: smallest `incident_id`).
pub fn rework(deployments: &mut [Deployment], incidents: &[Incident]) {
    let mut live: Finishes = HashMap::new();
    for (i, d) in deployments.iter().enumerate().filter(|(_, d)| d.is_successful()) {
        if let Some(f) = d.finished_at {
            live.entry((d.service.as_str(), d.environment.as_str())).or_default().push((f, &d.deployment_id, i));
        }
    }
    for times in live.values_mut() {
        times.sort_unstable();
    }
    let mut resolved: Vec<&Incident> = incidents.iter().filter(|i| i.resolved_at.is_some()).collect();
    resolved.sort_by(|a, b| (a.opened_at, &a.incident_id).cmp(&(b.opened_at, &b.incident_id)));
    // Deployment index → the incident it is the inferred fix of.
    let mut inferred: HashMap<usize, &str> = HashMap::new();
    for inc in resolved {
        let (Some(resolved_at), Some(times)) =
            (inc.resolved_at, live.get(&(inc.service.as_str(), inc.environment.as_str())))
        else {
            continue;
        };
        // The last with finished_at ≤ resolved_at (the sort puts the greatest
        // id last among equal times), if it finished after opening.
        let upto = times.partition_point(|(t, _, _)| *t <= resolved_at);
        if let Some(&(t, _, i)) = upto.checked_sub(1).map(|k| &times[k])
            && t > inc.opened_at
        {
            inferred.entry(i).or_insert(&inc.incident_id);
        }
    }
    drop(live);
    for (i, d) in deployments.iter_mut().enumerate() {
        if !d.is_successful() {
            continue;
        }
        d.remediates = d.names_incident.clone().or_else(|| inferred.get(&i).map(|id| id.to_string()));
        d.rework = Some(d.remediates.is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::deployments::deployments;
    use crate::project::incidents::incidents;
    use crate::project::tests::ev;

    fn marked(events: &[crate::event::Event]) -> Vec<(String, Option<bool>, Option<String>)> {
        let mut deps = deployments(events);
        let (incs, _) = incidents(events);
        rework(&mut deps, &incs);
        deps.into_iter().map(|d| (d.deployment_id, d.rework, d.remediates)).collect()
    }

    fn row(id: &str, rework: Option<bool>, remediates: Option<&str>) -> (String, Option<bool>, Option<String>) {
        (id.into(), rework, remediates.map(Into::into))
    }

    #[test]
    fn explicit_and_inferred_rework() {
        let got = marked(&[
            ev("d0", "deployment_succeeded", 5).dep("D0"),
            ev("o", "incident_opened", 10).inc("I"),
            ev("d1", "deployment_succeeded", 12).dep("D1").inc("I"),
            ev("d2", "deployment_succeeded", 15).dep("D2"),
            ev("d3", "deployment_succeeded", 20).dep("D3"),
            ev("d3b", "deployment_succeeded", 20).dep("D3b"),
            ev("r", "incident_resolved", 20).inc("I"),
            ev("d4", "deployment_succeeded", 25).dep("D4"),
            // Names an incident the log does not have: still rework.
            ev("d5", "deployment_succeeded", 30).dep("D5").inc("ELSEWHERE"),
            // Not successful: neither rework nor not.
            ev("d6", "deployment_failed", 31).dep("D6").inc("I"),
        ]);
        assert_eq!(
            got,
            vec![
                row("D0", Some(false), None),
                row("D1", Some(true), Some("I")),
                row("D2", Some(false), None),
                // The last before the resolve, ties: the greatest id.
                row("D3", Some(false), None),
                row("D3b", Some(true), Some("I")),
                row("D4", Some(false), None),
                row("D5", Some(true), Some("ELSEWHERE")),
                row("D6", None, None),
            ]
        );
    }

    #[test]
    fn open_incidents_infer_nothing_and_explicit_links_win() {
        let got = marked(&[
            ev("o", "incident_opened", 10).inc("OPEN"),
            ev("d1", "deployment_succeeded", 12).dep("D1"),
            ev("o2", "incident_opened", 20).inc("J"),
            ev("d2", "deployment_succeeded", 25).dep("D2").inc("K"),
            ev("r2", "incident_resolved", 30).inc("J"),
            // Another environment's deployment is no fix for J.
            ev("s", "deployment_succeeded", 26).dep("S").env("staging"),
        ]);
        assert_eq!(
            got,
            vec![row("D1", Some(false), None), row("D2", Some(true), Some("K")), row("S", Some(false), None)]
        );
    }
}
