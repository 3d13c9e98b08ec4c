//! Planned events and how one becomes an engine [`Event`].
//!
//! The simulation decides events well before they are written (a resolve
//! days ahead, a late arrival), so the queue holds compact plans (numbers
//! and small enums, ~90 bytes) rather than `Event`s with their strings; a
//! plan becomes an `Event` only when it is written.

use crate::ndjson::DEFAULT_SCHEMA_VERSION;
use crate::{Event, EventType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Environment {
    Staging,
    Production,
}

impl Environment {
    fn as_str(self) -> &'static str {
        match self {
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Github,
    Gitlab,
    Pagerduty,
    Manual,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Github => "github",
            Source::Gitlab => "gitlab",
            Source::Pagerduty => "pagerduty",
            Source::Manual => "manual",
        }
    }
}

/// The `attributes` object of an event, by kind and number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attributes {
    /// `{"pr":N}`
    PullRequest(u32),
    /// `{"pipeline":N}`
    Pipeline(u32),
    /// `{"severity":"sevN"}`
    Severity(u32),
}

/// One event decided but not yet written. Ids are numbers, turned into text
/// by [`EventBuilder`].
#[derive(Debug, Clone)]
pub(crate) struct PlannedEvent {
    /// When the line is written (`at`, or later for late arrivals and
    /// redeliveries).
    pub emit: i64,
    /// Queue order: the tie-break of `emit`, unique.
    pub seq: u64,
    /// `occurred_at`, µs since the epoch.
    pub at: i64,
    /// `evt-<seed>-<id>`.
    pub id: u64,
    /// Commit number (written as a sha), 0 = none.
    pub commit: u64,
    /// Deployment number, 0 = none.
    pub deployment: u64,
    /// Incident number, 0 = none.
    pub incident: u64,
    /// Explicit `change_ids` (commit numbers).
    pub changes: Option<Box<[u64]>>,
    /// Index of the service.
    pub service: u32,
    pub kind: EventType,
    pub environment: Option<Environment>,
    pub source: Option<Source>,
    pub attributes: Option<Attributes>,
    /// Whether the event names the service's team.
    pub team: bool,
}

impl PlannedEvent {
    pub(crate) fn new(kind: EventType, at: i64, service: u32) -> Self {
        PlannedEvent {
            emit: 0,
            seq: 0,
            at,
            id: 0,
            commit: 0,
            deployment: 0,
            incident: 0,
            changes: None,
            service,
            kind,
            environment: None,
            source: None,
            attributes: None,
            team: false,
        }
    }
}

/// Turns plans into [`Event`]s. It holds one `Event` and rebuilds it for
/// each plan in the strings of the previous ones: the generator's hot loop
/// allocates nothing per event.
pub(crate) struct EventBuilder {
    seed: u64,
    /// Key mixed into commit shas.
    sha_key: u64,
    event: Event,
    /// Strings of fields that earlier events had and later ones did not.
    spare: Vec<String>,
    /// An emptied `change_ids` list.
    spare_list: Vec<String>,
}

impl EventBuilder {
    pub(crate) fn new(seed: u64, sha_key: u64) -> Self {
        EventBuilder {
            seed,
            sha_key,
            event: Event {
                event_id: String::new(),
                event_type: EventType::Commit,
                occurred_at: 0,
                service: String::new(),
                environment: None,
                commit_sha: None,
                deployment_id: None,
                incident_id: None,
                change_ids: None,
                team: None,
                source: None,
                attributes: None,
                // So that lines leave it out.
                schema_version: DEFAULT_SCHEMA_VERSION,
            },
            spare: Vec::new(),
            spare_list: Vec::new(),
        }
    }

    /// The event `plan` stands for, of service `service` in team `team`.
    pub(crate) fn build(&mut self, plan: &PlannedEvent, service: &str, team: &str) -> &Event {
        let (seed, sha_key) = (self.seed, self.sha_key);
        let spare = &mut self.spare;
        let e = &mut self.event;
        e.event_id.clear();
        push_id(&mut e.event_id, "evt-", seed, plan.id);
        e.event_type = plan.kind;
        e.occurred_at = plan.at;
        e.service.clear();
        e.service.push_str(service);
        set_text(&mut e.environment, spare, plan.environment.map(|env| move |s: &mut String| s.push_str(env.as_str())));
        set_text(
            &mut e.commit_sha,
            spare,
            (plan.commit != 0).then_some(|s: &mut String| push_sha(s, sha_key, plan.commit)),
        );
        set_text(
            &mut e.deployment_id,
            spare,
            (plan.deployment != 0).then_some(|s: &mut String| push_id(s, "dep-", seed, plan.deployment)),
        );
        set_text(
            &mut e.incident_id,
            spare,
            (plan.incident != 0).then_some(|s: &mut String| push_id(s, "inc-", seed, plan.incident)),
        );
        // Explicit lists are rare: their strings go through the spares.
        let mut list = e.change_ids.take().unwrap_or_else(|| std::mem::take(&mut self.spare_list));
        spare.append(&mut list);
        match &plan.changes {
            Some(commits) => {
                list.extend(commits.iter().map(|&no| {
                    let mut sha = spare.pop().unwrap_or_default();
                    sha.clear();
                    push_sha(&mut sha, sha_key, no);
                    sha
                }));
                e.change_ids = Some(list);
            }
            None => self.spare_list = list,
        }
        set_text(&mut e.team, spare, plan.team.then_some(|s: &mut String| s.push_str(team)));
        set_text(&mut e.source, spare, plan.source.map(|source| move |s: &mut String| s.push_str(source.as_str())));
        set_text(
            &mut e.attributes,
            spare,
            plan.attributes.map(|attributes| move |s: &mut String| push_attributes(s, attributes)),
        );
        &self.event
    }
}

/// Sets an optional text field to what `write` writes, or to `None`. Its
/// string is reused when it had one, else a spare is; a dropped one becomes
/// a spare.
fn set_text(field: &mut Option<String>, spare: &mut Vec<String>, write: Option<impl FnOnce(&mut String)>) {
    let Some(write) = write else {
        spare.extend(field.take());
        return;
    };
    let s = field.get_or_insert_with(|| spare.pop().unwrap_or_default());
    s.clear();
    write(s);
}

/// `<prefix><seed>-<no>`: the generator's event, deployment and incident ids.
fn push_id(s: &mut String, prefix: &str, seed: u64, no: u64) {
    let mut digits = itoa::Buffer::new();
    s.push_str(prefix);
    s.push_str(digits.format(seed));
    s.push('-');
    s.push_str(digits.format(no));
}

fn push_attributes(s: &mut String, attributes: Attributes) {
    let mut digits = itoa::Buffer::new();
    let (open, value, close) = match attributes {
        Attributes::PullRequest(n) => ("{\"pr\":", n, "}"),
        Attributes::Pipeline(n) => ("{\"pipeline\":", n, "}"),
        Attributes::Severity(n) => ("{\"severity\":\"sev", n, "\"}"),
    };
    s.push_str(open);
    s.push_str(digits.format(value));
    s.push_str(close);
}

/// SplitMix64's finalizer: a bijection on u64.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 40 hex digits for commit number `no`. The first 16 are a bijection of
/// `no` (for a given key), so shas never collide within one history.
fn push_sha(s: &mut String, key: u64, no: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let a = mix64(no ^ key);
    let b = mix64(a ^ 0x9e37_79b9_7f4a_7c15);
    let c = mix64(b.wrapping_add(key));
    let mut hex = [0u8; 40];
    for (i, byte) in
        a.to_be_bytes().into_iter().chain(b.to_be_bytes()).chain(c.to_be_bytes().into_iter().take(4)).enumerate()
    {
        hex[2 * i] = HEX[(byte >> 4) as usize];
        hex[2 * i + 1] = HEX[(byte & 15) as usize];
    }
    // Hex digits are ASCII: never the empty default.
    s.push_str(std::str::from_utf8(&hex).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_events_reuse_nothing_of_the_previous_one() {
        let mut builder = EventBuilder::new(7, 99);
        let mut deploy = PlannedEvent::new(EventType::DeploymentSucceeded, 1_500, 0);
        deploy.id = 12;
        deploy.commit = 3;
        deploy.deployment = 4;
        deploy.changes = Some(vec![2, 3].into_boxed_slice());
        deploy.environment = Some(Environment::Production);
        deploy.source = Some(Source::Github);
        deploy.attributes = Some(Attributes::Pipeline(10_000));
        deploy.team = true;
        let first = builder.build(&deploy, "svc-001", "team-0").clone();
        assert_eq!(first.event_id, "evt-7-12");
        assert_eq!(first.deployment_id.as_deref(), Some("dep-7-4"));
        assert_eq!(first.commit_sha.as_ref().map(String::len), Some(40));
        let changes = first.change_ids.clone().unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(Some(&changes[1]), first.commit_sha.as_ref(), "commit 3 is the same sha in both fields");
        assert_eq!(first.attributes.as_deref(), Some("{\"pipeline\":10000}"));
        assert_eq!(first.team.as_deref(), Some("team-0"));

        let mut incident = PlannedEvent::new(EventType::IncidentOpened, 2_000, 1);
        incident.id = 13;
        incident.incident = 5;
        incident.environment = Some(Environment::Production);
        incident.attributes = Some(Attributes::Severity(2));
        let second = builder.build(&incident, "svc-002", "team-1").clone();
        let want = Event {
            event_id: "evt-7-13".into(),
            event_type: EventType::IncidentOpened,
            occurred_at: 2_000,
            service: "svc-002".into(),
            environment: Some("production".into()),
            commit_sha: None,
            deployment_id: None,
            incident_id: Some("inc-7-5".into()),
            change_ids: None,
            team: None,
            source: None,
            attributes: Some("{\"severity\":\"sev2\"}".into()),
            schema_version: 1,
        };
        assert_eq!(second, want);
        // The same plan again gives the same event, whatever came before.
        assert_eq!(*builder.build(&deploy, "svc-001", "team-0"), first);
    }
}
