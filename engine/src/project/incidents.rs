//! SPEC §2 "Incident" and "Failed deployment": fold incident events, find
//! each incident's cause, and mark failed deployments with their recovery.

use std::collections::BTreeMap;

use datafusion::common::HashMap;

use super::chronological;
use super::deployments::Deployment;
use crate::event::{Event, EventType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribution {
    Explicit,
    Inferred,
}

impl Attribution {
    pub fn as_str(self) -> &'static str {
        match self {
            Attribution::Explicit => "explicit",
            Attribution::Inferred => "inferred",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub incident_id: String,
    pub service: String,
    pub environment: String,
    pub team: Option<String>,
    pub opened_at: i64,
    /// `None` while open (never resolved, or reopened after its last resolve).
    pub resolved_at: Option<i64>,
    /// The cause.
    pub deployment_id: Option<String>,
    pub attribution: Option<Attribution>,
}

impl Incident {
    pub fn restore_time(&self) -> Option<i64> {
        self.resolved_at.map(|r| r - self.opened_at)
    }
}

/// Incidents (sorted by id) and the ids of orphan resolves: incidents
/// resolved but never opened, which are counted and not used.
pub fn incidents(events: &[Event]) -> (Vec<Incident>, Vec<String>) {
    let mut by_id: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.event_type.is_incident()) {
        if let Some(id) = e.incident_id.as_deref() {
            by_id.entry(id).or_default().push(e);
        }
    }
    let mut out = Vec::new();
    let mut orphans = Vec::new();
    for (id, evs) in by_id {
        let evs = chronological(evs);
        let opens: Vec<&&Event> = evs.iter().filter(|e| e.event_type == EventType::IncidentOpened).collect();
        let Some(first_open) = opens.first() else {
            orphans.push(id.to_string());
            continue;
        };
        let last_open = opens.last().map_or(first_open.occurred_at, |e| e.occurred_at);
        let last_resolve =
            evs.iter().filter(|e| e.event_type == EventType::IncidentResolved).map(|e| e.occurred_at).max();
        let resolved_at = last_resolve.filter(|r| *r >= last_open);
        let explicit = evs.iter().find_map(|e| e.deployment_id.clone());
        out.push(Incident {
            incident_id: id.to_string(),
            service: first_open.service.clone(),
            environment: first_open.environment.clone().unwrap_or_default(),
            team: first_open.team.clone(),
            opened_at: first_open.occurred_at,
            resolved_at,
            attribution: explicit.as_ref().map(|_| Attribution::Explicit),
            deployment_id: explicit,
        });
    }
    (out, orphans)
}

/// Fills in inferred causes (within `window` µs before opening; `None` =
/// unbounded), then marks failed deployments and their recovery time.
pub fn attribute(incidents: &mut [Incident], deployments: &mut [Deployment], window: Option<i64>) {
    // Each successful deployment's go-live times, per (service, environment).
    let mut live: HashMap<(&str, &str), Vec<(i64, &str)>> = HashMap::new();
    for d in deployments.iter().filter(|d| d.is_successful()) {
        for &t in &d.succeeded_at {
            live.entry((d.service.as_str(), d.environment.as_str())).or_default().push((t, d.deployment_id.as_str()));
        }
    }
    for times in live.values_mut() {
        times.sort();
    }
    for inc in incidents.iter_mut().filter(|i| i.attribution.is_none()) {
        let Some(times) = live.get(&(inc.service.as_str(), inc.environment.as_str())) else { continue };
        // Latest go-live at or before opening; ties: greatest deployment_id
        // (the sort puts it last).
        let upto = times.partition_point(|(t, _)| *t <= inc.opened_at);
        if let Some(&(t, id)) = upto.checked_sub(1).map(|i| &times[i])
            && window.is_none_or(|w| inc.opened_at - t <= w)
        {
            inc.deployment_id = Some(id.to_string());
            inc.attribution = Some(Attribution::Inferred);
        }
    }
    drop(live);

    let mut caused: HashMap<&str, Vec<&Incident>> = HashMap::new();
    for inc in incidents.iter() {
        if let Some(d) = inc.deployment_id.as_deref() {
            caused.entry(d).or_default().push(inc);
        }
    }
    for d in deployments.iter_mut() {
        if !d.is_successful() {
            continue;
        }
        let own = caused.get(d.deployment_id.as_str());
        let failed = d.rolled_back || own.is_some();
        d.failed = Some(failed);
        if !failed {
            continue;
        }
        let recovered_at = match own {
            Some(incs) if incs.iter().all(|i| i.resolved_at.is_some()) => {
                incs.iter().filter_map(|i| i.resolved_at).max()
            }
            Some(_) => None,
            None => d.first_rollback_at,
        };
        d.recovery_time = recovered_at.zip(d.finished_at).map(|(r, f)| r - f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::deployments::deployments;
    use crate::project::tests::ev;

    const H: i64 = 3_600_000_000;

    #[test]
    fn reopened_incidents_are_open_and_orphans_are_set_apart() {
        let (incs, orphans) = incidents(&[
            ev("o1", "incident_opened", 10).inc("I1"),
            ev("r1", "incident_resolved", 20).inc("I1"),
            ev("o2", "incident_opened", 30).inc("I1"),
            ev("r2", "incident_resolved", 5).inc("I2"),
            ev("o3", "incident_opened", 1).inc("I3"),
            ev("r3", "incident_resolved", 8).inc("I3"),
        ]);
        assert_eq!(orphans, vec!["I2".to_string()]);
        assert_eq!(incs[0].resolved_at, None, "reopened after its last resolve");
        assert_eq!(incs[0].opened_at, 10);
        assert_eq!(incs[1].restore_time(), Some(7));
    }

    #[test]
    fn inferred_cause_is_the_last_live_within_the_window() {
        let events = vec![
            ev("a", "deployment_succeeded", 0).dep("D1"),
            ev("b", "deployment_succeeded", 2 * H).dep("D2"),
            ev("b2", "deployment_succeeded", 2 * H).dep("D0"),
            ev("c", "deployment_succeeded", 5 * H).dep("D3"),
            ev("o", "incident_opened", 3 * H).inc("I"),
            ev("r", "incident_resolved", 4 * H).inc("I"),
            ev("o2", "incident_opened", 40 * H).inc("J"),
        ];
        let mut deps = deployments(&events);
        let (mut incs, _) = incidents(&events);
        attribute(&mut incs, &mut deps, Some(24 * H));
        assert_eq!(incs[0].deployment_id.as_deref(), Some("D2"), "ties: greatest id");
        assert_eq!(incs[0].attribution, Some(Attribution::Inferred));
        assert_eq!(incs[1].attribution, None, "D3 went live 35h before: outside 24h");
        let d2 = deps.iter().find(|d| d.deployment_id == "D2").unwrap();
        assert_eq!((d2.failed, d2.recovery_time), (Some(true), Some(2 * H)));

        let mut deps = deployments(&events);
        let (mut incs, _) = incidents(&events);
        attribute(&mut incs, &mut deps, None);
        assert_eq!(incs[1].deployment_id.as_deref(), Some("D3"), "unbounded window");
        let d3 = deps.iter().find(|d| d.deployment_id == "D3").unwrap();
        assert_eq!((d3.failed, d3.recovery_time), (Some(true), None), "its incident is still open");
    }

    #[test]
    fn explicit_cause_naming_no_success_marks_nothing() {
        let events = vec![
            ev("f", "deployment_failed", 0).dep("DF"),
            ev("o", "incident_opened", 10).inc("I").dep("DF"),
            ev("s", "deployment_succeeded", 5).dep("DS"),
            ev("rb", "deployment_rolled_back", 50).dep("DS"),
        ];
        let mut deps = deployments(&events);
        let (mut incs, _) = incidents(&events);
        attribute(&mut incs, &mut deps, Some(24 * H));
        assert_eq!(incs[0].attribution, Some(Attribution::Explicit));
        assert_eq!(incs[0].deployment_id.as_deref(), Some("DF"));
        let df = deps.iter().find(|d| d.deployment_id == "DF").unwrap();
        assert_eq!(df.failed, None);
        let ds = deps.iter().find(|d| d.deployment_id == "DS").unwrap();
        assert_eq!((ds.failed, ds.recovery_time), (Some(true), Some(45)), "recovered by its rollback");
    }
}
