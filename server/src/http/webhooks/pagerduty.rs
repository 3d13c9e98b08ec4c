//! PagerDuty V3 webhooks: `incident.triggered` and `incident.reopened` →
//! `incident_opened`, `incident.resolved` → `incident_resolved`. The
//! service is PagerDuty's service name (or its mapping, by name or id), the
//! environment the mapping's or `production`, the team the mapping's or the
//! incident's first team. Signed with `X-PagerDuty-Signature:
//! v1=<HMAC-SHA256 of the body>`, which lists several signatures while a
//! secret is rotated: any one of them may match.

use serde_json::Value;

use super::{Delivery, at, environment, id, opt_text, row, service_mapping, set, text};
use crate::config::Mapping;
use crate::http::auth::signed_with;

pub const SIGNATURE_HEADER: &str = "x-pagerduty-signature";

const SOURCE: &str = "pagerduty";

/// Whether one of the `v1=` signatures of `header` signs `body` with `secret`.
pub fn verify(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    header.is_some_and(|h| {
        h.split(',').filter_map(|s| s.trim().strip_prefix("v1=")).any(|hex| signed_with(secret, body, hex))
    })
}

/// The canonical events of one V3 webhook delivery.
pub fn map(payload: &Value, map: &Mapping) -> Result<Delivery, String> {
    let event_type = match text(payload, "event.event_type")? {
        "incident.triggered" | "incident.reopened" => "incident_opened",
        "incident.resolved" => "incident_resolved",
        other => {
            return Ok(Delivery::Ignored(format!(
                "PagerDuty '{other}' events are not used (leadline maps incident.triggered, .reopened and .resolved)"
            )));
        }
    };
    let service_name = text(payload, "event.data.service.summary")?;
    let service_id = opt_text(payload, "event.data.service.id").unwrap_or_default();
    let mapped = service_mapping(map, &[service_name, service_id]);
    let service = mapped.and_then(|m| m.service.as_deref()).unwrap_or(service_name);
    let env = environment(map, mapped.and_then(|m| m.environment.as_deref()).unwrap_or("production"));
    let team = mapped.and_then(|m| m.team.as_deref()).or_else(|| {
        let teams = at(payload, "event.data.teams").and_then(Value::as_array);
        teams.and_then(|t| t.first()).and_then(|t| opt_text(t, "summary"))
    });
    let mut r = row(
        SOURCE,
        format!("{SOURCE}:{}", id(payload, "event.id")?),
        event_type,
        text(payload, "event.occurred_at")?,
        service,
    );
    set(&mut r, "environment", Some(&env));
    set(&mut r, "incident_id", Some(&format!("{SOURCE}:{}", id(payload, "event.data.id")?)));
    set(&mut r, "team", team);
    Ok(Delivery::Events(vec![r]))
}

#[cfg(test)]
mod tests {
    use leadline_engine::{Event, EventType};
    use serde_json::json;

    use super::*;
    use crate::config::ServiceMapping;
    use crate::http::auth::sign;

    fn incident(event_type: &str) -> Value {
        json!({"event": {
            "id": "01DEN0V2VIFEN5871PQGX72URP", "event_type": event_type, "resource_type": "incident",
            "occurred_at": "2026-03-04T09:30:00.250Z",
            "agent": {"id": "PUSR1", "type": "user_reference", "summary": "On Call"},
            "client": {"name": "PagerDuty"},
            "data": {
                "id": "Q1INC", "type": "incident", "number": 42, "status": "triggered", "title": "Checkout errors",
                "service": {"id": "PSVC1", "type": "service_reference", "summary": "Checkout API"},
                "teams": [{"id": "PTEAM", "type": "team_reference", "summary": "Payments"}],
                "urgency": "high"
            }
        }})
    }

    fn one(d: Delivery) -> Event {
        match d {
            Delivery::Events(rows) => Event::from_raw(&rows[0]).unwrap(),
            Delivery::Ignored(why) => panic!("ignored: {why}"),
        }
    }

    #[test]
    fn incidents_open_and_resolve() {
        let m = Mapping::default();
        for (t, et) in [
            ("incident.triggered", EventType::IncidentOpened),
            ("incident.reopened", EventType::IncidentOpened),
            ("incident.resolved", EventType::IncidentResolved),
        ] {
            let e = one(map(&incident(t), &m).unwrap());
            assert_eq!(e.event_type, et);
            assert_eq!(e.event_id, "pagerduty:01DEN0V2VIFEN5871PQGX72URP");
            assert_eq!(e.incident_id.as_deref(), Some("pagerduty:Q1INC"));
            assert_eq!(e.service, "Checkout API");
            assert_eq!(e.environment.as_deref(), Some("production"));
            assert_eq!(e.team.as_deref(), Some("Payments"));
        }
        for t in ["incident.acknowledged", "incident.annotated", "pagey.ping", "service.updated"] {
            assert!(matches!(map(&incident(t), &m), Ok(Delivery::Ignored(_))), "{t}");
        }
    }

    #[test]
    fn the_mapping_names_service_team_and_environment() {
        let mut m = Mapping::default();
        m.services.insert(
            "PSVC1".into(),
            ServiceMapping {
                service: Some("checkout".into()),
                team: Some("pay".into()),
                environment: Some("prod".into()),
            },
        );
        m.environments.insert("prod".into(), "production-eu".into());
        let e = one(map(&incident("incident.triggered"), &m).unwrap());
        assert_eq!(
            (e.service.as_str(), e.team.as_deref(), e.environment.as_deref()),
            ("checkout", Some("pay"), Some("production-eu"))
        );
    }

    #[test]
    fn malformed_deliveries_say_what_is_missing() {
        let m = Mapping::default();
        assert_eq!(map(&json!({"messages": []}), &m), Err("no event.event_type".into()));
        let mut p = incident("incident.triggered");
        p["event"]["data"].as_object_mut().unwrap().remove("service");
        assert_eq!(map(&p, &m), Err("no event.data.service.summary".into()));
        let mut p = incident("incident.resolved");
        p["event"].as_object_mut().unwrap().remove("occurred_at");
        assert_eq!(map(&p, &m), Err("no event.occurred_at".into()));
    }

    #[test]
    fn any_listed_signature_may_match() {
        let body = br#"{"event":{}}"#;
        let good = sign("new-secret", body);
        assert!(verify("new-secret", body, Some(&format!("v1={good}"))));
        assert!(verify("new-secret", body, Some(&format!("v1=00ff, v1={good}"))));
        assert!(!verify("new-secret", body, Some("v1=00ff")));
        assert!(!verify("new-secret", body, Some(&good)));
        assert!(!verify("old-secret", body, Some(&format!("v1={good}"))));
        assert!(!verify("new-secret", body, None));
    }
}
