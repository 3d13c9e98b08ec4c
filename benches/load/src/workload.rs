//! What the driver sends: the dashboard's panel queries, ad hoc DORA
//! aggregates, single-row INSERTs and a long query to cancel, built from the
//! services, teams, environments and dates found in the data.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use tokio_postgres::{Client, SimpleQueryMessage};

/// The kinds of request, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Trend,
    Panel,
    Adhoc,
    Insert,
    Cancel,
    Session,
}

impl Kind {
    pub const ALL: [Kind; 6] = [Kind::Trend, Kind::Panel, Kind::Adhoc, Kind::Insert, Kind::Cancel, Kind::Session];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Trend => "trend",
            Kind::Panel => "panel",
            Kind::Adhoc => "adhoc",
            Kind::Insert => "insert",
            Kind::Cancel => "cancel",
            Kind::Session => "session",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--mix`: each kind with its weight, e.g. `panel=70,adhoc=10,insert=15,cancel=5`.
#[derive(Debug, Clone)]
pub struct Mix(pub Vec<(Kind, u32)>);

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut mix = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').ok_or_else(|| format!("`{part}`: expected KIND=WEIGHT"))?;
            let kind = Kind::ALL
                .into_iter()
                .find(|k| k.name() == name.trim())
                .ok_or_else(|| format!("unknown kind `{name}` (trend, panel, adhoc, insert, cancel, session)"))?;
            let weight: u32 = weight.trim().parse().map_err(|_| format!("`{part}`: the weight must be an integer"))?;
            if mix.iter().any(|(k, _)| *k == kind) {
                return Err(format!("`{name}` is given twice"));
            }
            if weight > 0 {
                mix.push((kind, weight));
            }
        }
        if mix.is_empty() {
            return Err("the mix has no kind with a weight above 0".into());
        }
        Ok(Mix(mix))
    }
}

impl Mix {
    pub fn pick(&self, rng: &mut StdRng) -> Kind {
        let total: u32 = self.0.iter().map(|(_, w)| w).sum();
        let mut at = rng.random_range(0..total);
        for (kind, weight) in &self.0 {
            if at < *weight {
                return *kind;
            }
            at -= weight;
        }
        self.0[0].0
    }
}

/// One deployment target found in the data.
#[derive(Debug, Clone)]
pub struct Target {
    pub service: String,
    pub team: Option<String>,
    pub environment: String,
}

/// What the data holds, read once before the run.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub targets: Vec<Target>,
    pub teams: Vec<String>,
    /// The span of the deployments' `finished_at`.
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

fn rows(messages: Vec<SimpleQueryMessage>) -> Vec<tokio_postgres::SimpleQueryRow> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect()
}

impl Dataset {
    /// Reads the services, teams, environments and date span from the
    /// `deployments` projection. An empty log gives one made-up service, so
    /// that inserts still have somewhere to go.
    pub async fn discover(client: &Client) -> Result<Dataset, tokio_postgres::Error> {
        let found = rows(
            client
                .simple_query(
                    "SELECT DISTINCT service, team, environment FROM deployments ORDER BY service, environment, team",
                )
                .await?,
        );
        let mut targets: Vec<Target> = found
            .iter()
            .filter_map(|r| {
                Some(Target {
                    service: r.get(0)?.to_string(),
                    team: r.get(1).map(str::to_string),
                    environment: r.get(2)?.to_string(),
                })
            })
            .collect();
        // A (service, environment) once, with its first team.
        targets.dedup_by(|a, b| a.service == b.service && a.environment == b.environment);
        let mut teams: Vec<String> = targets.iter().filter_map(|t| t.team.clone()).collect();
        teams.sort();
        teams.dedup();
        let span = rows(
            client
                .simple_query(
                    "SELECT CAST(date_part('epoch', min(finished_at)) AS BIGINT), \
                     CAST(date_part('epoch', max(finished_at)) AS BIGINT) FROM deployments",
                )
                .await?,
        );
        let epoch = |i: usize| {
            span.first()
                .and_then(|r| r.get(i))
                .and_then(|s| s.parse::<i64>().ok())
                .and_then(|s| DateTime::from_timestamp(s, 0))
        };
        let now = Utc::now();
        let (first, last) = match (epoch(0), epoch(1)) {
            (Some(a), Some(b)) => (a, b),
            _ => (now - chrono::Duration::days(90), now),
        };
        if targets.is_empty() {
            targets.push(Target { service: "load-svc".into(), team: None, environment: "production".into() });
        }
        Ok(Dataset { targets, teams, first, last })
    }

    fn target<'a>(&'a self, rng: &mut StdRng) -> &'a Target {
        // Dashboards mostly show production: pick it when the service has it.
        let t = &self.targets[rng.random_range(0..self.targets.len())];
        if rng.random_bool(0.8)
            && let Some(prod) = self.targets.iter().find(|p| p.service == t.service && p.environment == "production")
        {
            return prod;
        }
        t
    }

    /// A dashboard's date range: the last 7, 30 or 90 days up to a day
    /// inside the data (mostly its end).
    fn range(&self, rng: &mut StdRng) -> (DateTime<Utc>, DateTime<Utc>) {
        let days = [7, 30, 90][rng.random_range(0..3)];
        let span = (self.last - self.first).num_seconds().max(1);
        let to = if rng.random_bool(0.7) {
            self.last
        } else {
            self.first + chrono::Duration::seconds(rng.random_range(0..span))
        };
        (to - chrono::Duration::days(days), to)
    }

    /// One panel of a DORA dashboard for one service (or team), one
    /// environment and a date range, as a dashboard tool would send it;
    /// with `trend`, always the filtered `dora_metrics` trend.
    pub fn panel(&self, rng: &mut StdRng, trend: bool) -> String {
        let t = self.target(rng);
        let (from, to) = self.range(rng);
        let (from, to) = (ts(from), ts(to));
        let env = quote(&t.environment);
        // A team's dashboard: dora_metrics has no team column, so it filters
        // on the team's services; the projections have one.
        let team = (!self.teams.is_empty() && rng.random_bool(0.25))
            .then(|| &self.teams[rng.random_range(0..self.teams.len())]);
        let (who, team_or_service) = match team {
            Some(team) => {
                let services: Vec<String> = self
                    .targets
                    .iter()
                    .filter(|x| x.team.as_deref() == Some(team.as_str()))
                    .map(|x| quote(&x.service))
                    .collect();
                (format!("service IN ({})", services.join(", ")), format!("team = {}", quote(team)))
            }
            None => (format!("service = {}", quote(&t.service)), format!("service = {}", quote(&t.service))),
        };
        let panel = rng.random_range(0..5);
        match if trend { 0 } else { panel } {
            // The trend chart: the weekly metrics over the range.
            0 | 1 => format!(
                "SELECT service, bucket_start, deployments, deployment_frequency, lead_time_p50, lead_time_p90, \
                 change_failure_rate, rework_rate, time_to_restore_p50, failed_deployment_recovery_p50, \
                 lead_time_tier, deployment_frequency_tier, change_failure_rate_tier, time_to_restore_tier \
                 FROM dora_metrics('week', {from}, {to}) WHERE {who} AND environment = {env} \
                 ORDER BY service, bucket_start"
            ),
            // The stat panels: each metric over the whole range.
            2 => format!(
                "SELECT count(*) AS deployments, deployment_frequency(finished_at, 'week') AS per_day, \
                 change_failure_rate(failed) AS cfr, rework_rate(rework) AS rework, \
                 failed_deployment_recovery_time(recovery_time) AS fdrt \
                 FROM deployments WHERE {team_or_service} AND environment = {env} AND status = 'succeeded' \
                 AND finished_at >= {from} AND finished_at < {to}"
            ),
            // The recent deployments table.
            3 => format!(
                "SELECT deployment_id, service, status, finished_at, commit_sha, rolled_back, failed \
                 FROM deployments WHERE {team_or_service} AND environment = {env} \
                 AND finished_at >= {from} AND finished_at < {to} ORDER BY finished_at DESC LIMIT 20"
            ),
            // Incidents in the range, open ones first.
            _ => format!(
                "SELECT incident_id, service, opened_at, resolved_at, restore_time, deployment_id \
                 FROM incidents WHERE {team_or_service} AND environment = {env} \
                 AND opened_at >= {from} AND opened_at < {to} ORDER BY resolved_at NULLS FIRST, opened_at DESC LIMIT 20"
            ),
        }
    }

    /// An ad hoc question over the projections: DORA aggregates with a
    /// GROUP BY of the analyst's choosing.
    pub fn adhoc(&self, rng: &mut StdRng) -> String {
        let env = quote(&self.target(rng).environment);
        let (from, _) = self.range(rng);
        let from = ts(from);
        match rng.random_range(0..4) {
            0 => format!(
                "SELECT team, date_trunc('month', finished_at) AS month, count(*) AS deployments, \
                 change_failure_rate(failed) AS cfr, failed_deployment_recovery_time(recovery_time) AS fdrt \
                 FROM deployments WHERE status = 'succeeded' AND environment = {env} GROUP BY 1, 2 ORDER BY 1, 2"
            ),
            1 => format!(
                "SELECT service, lead_time(lead_time) AS p50, lead_time(lead_time, 0.9) AS p90, count(*) AS changes \
                 FROM changes WHERE environment = {env} AND deployed_at >= {from} GROUP BY service ORDER BY p90 DESC"
            ),
            2 => "SELECT service, environment, count(*) AS incidents, time_to_restore(restore_time) AS ttr, \
                  count(*) FILTER (WHERE resolved_at IS NULL) AS open FROM incidents GROUP BY 1, 2 ORDER BY 3 DESC"
                .to_string(),
            _ => format!(
                "SELECT team, deployment_frequency(finished_at, 'week') AS per_day, \
                 dora_tier('deployment_frequency', deployment_frequency(finished_at, 'week')) AS tier \
                 FROM deployments WHERE status = 'succeeded' AND environment = {env} AND finished_at >= {from} \
                 GROUP BY team ORDER BY team"
            ),
        }
    }

    /// A valid new event with id `event_id`: a commit, or a successful
    /// deployment of one, late by up to a week from the data's end.
    pub fn insert(&self, rng: &mut StdRng, event_id: &str) -> String {
        let t = &self.targets[rng.random_range(0..self.targets.len())];
        let at = ts(self.last - chrono::Duration::seconds(rng.random_range(0..7 * 86_400)));
        let sha: String = (0..40).map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0')).collect();
        let id = quote(event_id);
        let service = quote(&t.service);
        let team = t.team.as_deref().map_or("NULL".to_string(), quote);
        if rng.random_bool(0.7) {
            format!(
                "INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha, team, source) \
                 VALUES ({id}, 'commit', {at}, {service}, '{sha}', {team}, 'leadline-load')"
            )
        } else {
            let env = quote(&t.environment);
            let deployment = quote(&format!("dep-{event_id}"));
            format!(
                "INSERT INTO events (event_id, event_type, occurred_at, service, environment, deployment_id, \
                 commit_sha, team, source) \
                 VALUES ({id}, 'deployment_succeeded', {at}, {service}, {env}, {deployment}, '{sha}', {team}, 'leadline-load')"
            )
        }
    }
}

/// A SQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A timestamptz literal.
fn ts(t: DateTime<Utc>) -> String {
    quote(&t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn mix_parses_and_picks_by_weight() {
        let mix: Mix = "panel=3, insert=1,cancel=0".parse().unwrap();
        assert_eq!(mix.0, [(Kind::Panel, 3), (Kind::Insert, 1)], "a weight of 0 leaves the kind out");
        let mut rng = StdRng::seed_from_u64(1);
        let panels = (0..4000).filter(|_| mix.pick(&mut rng) == Kind::Panel).count();
        assert!((2700..3300).contains(&panels), "{panels}");
        for bad in ["", "panel", "panel=x", "nope=1", "panel=1,panel=2", "panel=0"] {
            assert!(bad.parse::<Mix>().is_err(), "{bad}");
        }
    }

    #[test]
    fn quotes_escape() {
        assert_eq!(quote("o'neil"), "'o''neil'");
    }
}
