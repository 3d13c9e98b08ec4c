"""The HTTP front of `leadline serve --http`, driven with real HTTP (requests)
and read back over SQL (psycopg against the same server).

The payloads are written here from the vendors' documented webhook schemas
(GitHub `push` and `deployment_status`, GitLab push and deployment hooks,
PagerDuty V3 incident events): only the fields a sender documents, with
values of our own. Each delivery is signed as the vendor signs it."""
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import subprocess
import threading
import uuid

import psycopg
import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from leadline_pg import Server, binary

GITHUB_SECRET = "gh-webhook-secret"
GITLAB_TOKEN = "gl-token"
PAGERDUTY_SECRET = "pd-secret"
EVENTS_TOKEN = "events-token"
SECRETS = [GITHUB_SECRET, GITLAB_TOKEN, PAGERDUTY_SECRET, EVENTS_TOKEN]
MAX_BODY_MB = 0.25

CONFIG = {
    "http": {"max_body_mb": MAX_BODY_MB},
    "webhooks": {
        "github": {"secret": GITHUB_SECRET},
        "gitlab": {"token": GITLAB_TOKEN},
        "pagerduty": {"secret": PAGERDUTY_SECRET},
        "events": {"token": EVENTS_TOKEN},
        "map": {
            "services": {
                "acme/checkout": {"service": "checkout", "team": "payments"},
                "Checkout API": {"service": "checkout"},
                "shop/billing": {"service": "billing", "team": "money"},
            },
            "environments": {"prod": "production"},
        },
    },
}


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    """A server with the HTTP front over an empty data directory."""
    base = tmp_path_factory.mktemp("http")
    config = base / "leadline.json"
    config.write_text(json.dumps(CONFIG))
    log = base / "server.log"
    with open(log, "w") as stderr:
        s = Server(base / "data", "--http", "127.0.0.1:0", "--config", config, stderr=stderr,
                   env={"LEADLINE_LOG": "debug", "LEADLINE_LOG_FORMAT": "json"})
        yield s
        s.stop()
    # JSON lines, the connections' named by their span, and no secret in any.
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(line.get("span", {}).get("name") == "conn" for line in lines)
    for secret in SECRETS:
        assert secret not in log.read_text()


def utc(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(dt.timezone.utc)


def sql(server, query, params=None):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def count(server, table="events", where="true", params=None):
    return sql(server, f"SELECT count(*) FROM {table} WHERE {where}", params)[0][0]


def hub_signature(body: bytes, secret=GITHUB_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github(server, event: str, payload, secret=GITHUB_SECRET, signature=None, raw: bytes = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature if signature is not None else hub_signature(body, secret),
        "User-Agent": "GitHub-Hookshot/test",
    }
    return requests.post(server.url("/webhooks/github"), data=body, headers=headers, timeout=30)


def gitlab(server, event: str, payload, token=GITLAB_TOKEN):
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": event, "X-Gitlab-Event-UUID": str(uuid.uuid4())}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return requests.post(server.url("/webhooks/gitlab"), data=json.dumps(payload), headers=headers, timeout=30)


def pagerduty(server, payload, secrets=(PAGERDUTY_SECRET,)):
    body = json.dumps(payload).encode()
    sigs = ",".join("v1=" + hmac.new(s.encode(), body, hashlib.sha256).hexdigest() for s in secrets)
    headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": sigs}
    return requests.post(server.url("/webhooks/pagerduty"), data=body, headers=headers, timeout=30)


def events_api(server, lines, token=EVENTS_TOKEN):
    body = "\n".join(json.dumps(l) if isinstance(l, dict) else l for l in lines)
    headers = {"Content-Type": "application/x-ndjson"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(server.url("/v1/events"), data=body.encode(), headers=headers, timeout=30)


# Payloads, after GitHub's documented schemas.

REPO = {"id": 4242, "name": "checkout", "full_name": "acme/checkout", "private": True,
        "owner": {"login": "acme", "id": 1}, "default_branch": "main",
        "html_url": "https://github.com/acme/checkout"}


def gh_push(commits, ref="refs/heads/main"):
    return {
        "ref": ref, "before": "0" * 40, "after": commits[-1][0] if commits else "0" * 40,
        "created": False, "deleted": False, "forced": False, "base_ref": None,
        "compare": "https://github.com/acme/checkout/compare/x...y",
        "commits": [
            {"id": sha, "tree_id": "t" + sha[1:], "distinct": True, "message": f"change {sha[:7]}",
             "timestamp": ts, "url": f"https://github.com/acme/checkout/commit/{sha}",
             "author": {"name": "Dev", "email": "dev@example.com", "username": "dev"},
             "committer": {"name": "Dev", "email": "dev@example.com", "username": "dev"},
             "added": [], "removed": [], "modified": ["app.py"]}
            for sha, ts in commits
        ],
        "head_commit": None, "repository": REPO, "pusher": {"name": "dev", "email": "dev@example.com"},
        "sender": {"login": "dev", "id": 2},
    }


def gh_deployment_status(status_id, state, created_at, deployment_id, sha, environment="prod"):
    return {
        "action": "created",
        "deployment_status": {
            "url": f"https://api.github.com/repos/acme/checkout/deployments/{deployment_id}/statuses/{status_id}",
            "id": status_id, "node_id": f"DES_{status_id}", "state": state, "description": "",
            "environment": environment, "target_url": "", "log_url": "", "created_at": created_at,
            "updated_at": created_at, "creator": {"login": "deploy-bot", "id": 3},
        },
        "deployment": {
            "url": f"https://api.github.com/repos/acme/checkout/deployments/{deployment_id}",
            "id": deployment_id, "node_id": f"DE_{deployment_id}", "sha": sha, "ref": "main", "task": "deploy",
            "payload": {}, "original_environment": environment, "environment": environment,
            "description": None, "created_at": created_at, "updated_at": created_at,
            "creator": {"login": "deploy-bot", "id": 3},
        },
        "repository": REPO, "sender": {"login": "deploy-bot", "id": 3},
    }


def pd_incident(event_id, event_type, occurred_at, incident_id, service="Checkout API"):
    return {"event": {
        "id": event_id, "event_type": event_type, "resource_type": "incident", "occurred_at": occurred_at,
        "agent": {"html_url": "https://acme.pagerduty.com/users/PAGENT", "id": "PAGENT",
                  "self": "https://api.pagerduty.com/users/PAGENT", "summary": "On-call", "type": "user_reference"},
        "client": {"name": "Monitoring"},
        "data": {
            "id": incident_id, "type": "incident", "self": f"https://api.pagerduty.com/incidents/{incident_id}",
            "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}", "number": 7,
            "status": "resolved" if event_type == "incident.resolved" else "triggered",
            "incident_key": "k-" + incident_id, "created_at": occurred_at, "title": "Checkout errors",
            "service": {"html_url": "https://acme.pagerduty.com/services/PSVC", "id": "PSVC",
                        "self": "https://api.pagerduty.com/services/PSVC", "summary": service,
                        "type": "service_reference"},
            "assignees": [], "escalation_policy": {"id": "PEP", "summary": "Default", "type": "escalation_policy_reference"},
            "teams": [{"id": "PTEAM", "summary": "Payments", "type": "team_reference"}],
            "priority": None, "urgency": "high", "conference_bridge": None, "resolve_reason": None,
        },
    }}


C1, C2 = "a1" + "0" * 38, "b2" + "0" * 38
PUSH = [(C1, "2026-03-02T09:00:00Z"), (C2, "2026-03-02T10:30:00+01:00")]
DEPLOY = 501
STARTED = (1001, "in_progress", "2026-03-02T10:00:00Z")
SUCCEEDED = (1002, "success", "2026-03-02T10:20:00Z")
OPENED = ("01EVT-OPEN", "incident.triggered", "2026-03-02T11:00:00Z")
RESOLVED = ("01EVT-RESOLVE", "incident.resolved", "2026-03-02T11:45:00Z")


def test_health_and_readiness(http):
    assert requests.get(http.url("/healthz"), timeout=10).json() == {"status": "ok"}
    r = requests.get(http.url("/readyz"), timeout=10)
    assert r.status_code == 200 and r.json() == {"ready": True}


def test_github_push_deployment_and_pagerduty_incident_give_dora_numbers(http):
    r = github(http, "push", gh_push(PUSH))
    assert r.status_code == 200, r.text
    assert r.json()["appended"] == 2
    for status_id, state, at in (STARTED, SUCCEEDED):
        r = github(http, "deployment_status", gh_deployment_status(status_id, state, at, DEPLOY, C2))
        assert r.status_code == 200 and r.json()["appended"] == 1, r.text
    for event_id, kind, at in (OPENED, RESOLVED):
        r = pagerduty(http, pd_incident(event_id, kind, at, "PINC1"))
        assert r.status_code == 200 and r.json()["appended"] == 1, r.text

    deployment_id = f"github:acme/checkout:{DEPLOY}"
    finished = utc(SUCCEEDED[2])
    changes = sql(http, "SELECT commit_sha, service, environment, deployment_id, deployed_at, lead_time "
                        "FROM changes ORDER BY commit_sha")
    assert changes == [
        (sha, "checkout", "production", deployment_id, finished, finished - utc(ts)) for sha, ts in PUSH
    ]
    deployments = sql(http, "SELECT deployment_id, service, environment, started_at, finished_at, status, "
                            "commit_sha, failed, recovery_time FROM deployments")
    restore = utc(RESOLVED[2]) - utc(OPENED[2])
    assert deployments == [(deployment_id, "checkout", "production", utc(STARTED[2]), finished, "succeeded", C2,
                            True, utc(RESOLVED[2]) - finished)]
    incidents = sql(http, "SELECT incident_id, service, environment, opened_at, resolved_at, restore_time, "
                          "deployment_id, attribution FROM incidents")
    assert incidents == [("pagerduty:PINC1", "checkout", "production", utc(OPENED[2]), utc(RESOLVED[2]), restore,
                          deployment_id, "inferred")]
    # The mapping's team, the vendor as the source.
    assert sql(http, "SELECT DISTINCT team, source FROM events WHERE event_type = 'commit'") == [("payments", "github")]


def test_redelivery_stores_nothing_new(http):
    before = count(http)
    r = github(http, "push", gh_push(PUSH))
    assert r.status_code == 200 and (r.json()["appended"], r.json()["duplicates"]) == (0, 2), r.text
    # The same commit pushed again along with a new one: only the new one is stored.
    c3 = ("c3" + "0" * 38, "2026-03-02T12:00:00Z")
    r = github(http, "push", gh_push([PUSH[1], c3]))
    assert (r.json()["appended"], r.json()["duplicates"]) == (1, 1), r.text
    r = github(http, "deployment_status", gh_deployment_status(*SUCCEEDED, DEPLOY, C2))
    assert (r.json()["appended"], r.json()["duplicates"]) == (0, 1), r.text
    r = pagerduty(http, pd_incident(*RESOLVED, "PINC1"))
    assert (r.json()["appended"], r.json()["duplicates"]) == (0, 1), r.text
    assert count(http) == before + 1


def test_wrong_or_missing_signatures_are_refused_and_store_nothing(http):
    before, rejected = count(http), count(http, "rejected_events")
    push = gh_push([("d4" + "0" * 38, "2026-03-03T09:00:00Z")])
    assert github(http, "push", push, secret="not-the-secret").status_code == 401
    assert github(http, "push", push, signature="").status_code == 401
    assert github(http, "push", push, signature=hub_signature(b"{}")).status_code == 401
    deployment = {"object_kind": "deployment", "status": "success"}
    assert gitlab(http, "Deployment Hook", deployment, token="wrong").status_code == 401
    assert gitlab(http, "Deployment Hook", deployment, token=None).status_code == 401
    incident = pd_incident("01EVT-X", "incident.triggered", "2026-03-03T09:00:00Z", "PINC9")
    assert pagerduty(http, incident, secrets=("old-secret",)).status_code == 401
    r = events_api(http, [{"event_id": "x"}], token="wrong")
    assert r.status_code == 401 and "bearer" in r.json()["error"]
    assert events_api(http, [{"event_id": "x"}], token=None).status_code == 401
    assert (count(http), count(http, "rejected_events")) == (before, rejected)
    # While a secret is rotated PagerDuty signs with both: one match is enough.
    r = pagerduty(http, incident, secrets=("old-secret", PAGERDUTY_SECRET))
    assert r.status_code == 200 and r.json()["appended"] == 1


def test_malformed_payloads_are_400_and_kept_in_quarantine(http):
    before = count(http)
    r = github(http, "push", None, raw=b'{"ref": "refs/heads/main", "commits": [')
    assert r.status_code == 400 and "not JSON" in r.json()["error"], r.text
    push = gh_push([("e5" + "0" * 38, "2026-03-03T09:00:00Z")])
    del push["commits"][0]["timestamp"]
    r = github(http, "push", push)
    assert r.status_code == 400 and "commits[0]: no timestamp" in r.json()["error"], r.text
    # What the mapping makes but SPEC §1 refuses: a timestamp without an offset.
    r = github(http, "push", gh_push([("f6" + "0" * 38, "2026-03-03 09:00:00")]))
    assert r.status_code == 400 and r.json()["rejected"] == 1, r.text
    assert "offset" in r.json()["rejections"][0]["reason"]
    r = pagerduty(http, {"event": {"event_type": "incident.triggered"}})
    assert r.status_code == 400 and "no event.data.service.summary" in r.json()["error"]
    assert count(http) == before
    kept = sql(http, "SELECT source, reason, raw FROM rejected_events WHERE source LIKE 'github%%' "
                     "OR source LIKE 'pagerduty%%' ORDER BY rejected_at")
    reasons = [k[1] for k in kept]
    assert any("malformed github payload: the payload is not JSON" in k for k in reasons), reasons
    assert any("malformed github payload: commits[0]: no timestamp" in k for k in reasons), reasons
    assert any("offset" in k for k in reasons), reasons
    assert any("malformed pagerduty payload" in k for k in reasons), reasons
    # The payload is kept verbatim.
    assert any(k[2] == '{"ref": "refs/heads/main", "commits": [' for k in kept)


def test_events_leadline_does_not_use_are_ignored(http):
    before = count(http)
    r = github(http, "ping", {"zen": "Design for failure.", "hook_id": 1, "repository": REPO})
    assert r.status_code == 200 and "ignored" in r.json()
    assert github(http, "issues", {"action": "opened", "repository": REPO}).json().keys() == {"ignored"}
    assert github(http, "push", gh_push([("a7" + "0" * 38, "2026-03-03T09:00:00Z")], ref="refs/heads/wip")).json()[
        "ignored"].startswith("pushes to wip")
    assert "ignored" in github(http, "deployment_status", gh_deployment_status(1009, "inactive", "2026-03-03T09:00:00Z", 9, C2)).json()
    incident = pd_incident("01EVT-ACK", "incident.acknowledged", "2026-03-03T09:00:00Z", "PINC1")
    assert "ignored" in pagerduty(http, incident).json()
    assert "ignored" in gitlab(http, "Pipeline Hook", {"object_kind": "pipeline", "project": {}}).json()
    assert count(http) == before


def test_oversized_bodies_are_413(http):
    before, rejected = count(http), count(http, "rejected_events")
    big = [{"event_id": f"big-{i}", "event_type": "commit", "occurred_at": "2026-03-03T09:00:00Z",
            "service": "big", "commit_sha": f"{i:040x}"} for i in range(3000)]
    assert len("\n".join(map(json.dumps, big))) > MAX_BODY_MB * 2**20
    r = events_api(http, big)
    assert r.status_code == 413 and "max_body_mb" in r.json()["error"]
    # Chunked, without a Content-Length: stopped at the limit all the same.
    body = "\n".join(map(json.dumps, big)).encode()
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
    r = requests.post(http.url("/v1/events"), data=chunks, timeout=30,
                      headers={"Authorization": f"Bearer {EVENTS_TOKEN}"})
    assert r.status_code == 413
    push = gh_push([(f"{i:040x}", "2026-03-03T09:00:00Z") for i in range(1500)])
    assert github(http, "push", push).status_code == 413
    assert (count(http), count(http, "rejected_events")) == (before, rejected)


def test_canonical_events_report_every_rejected_line(http):
    good = [{"event_id": f"ci-deploy-{n}", "event_type": "deployment_succeeded", "occurred_at": "2026-03-04T10:00:00Z",
             "service": "api", "environment": "production", "deployment_id": f"ci-{n}"} for n in range(2)]
    lines = good + ['{"event_id": "ci-bad", "event_type": "deploy"}', "not json",
                    dict(good[0], occurred_at="2026-03-04T11:00:00Z")]
    r = events_api(http, lines)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("appended", "duplicates", "conflicts", "rejected")} == \
        {"appended": 2, "duplicates": 0, "conflicts": 1, "rejected": 2}
    by_line = {x["line"]: x for x in body["rejections"]}
    assert sorted(by_line) == [3, 4, 5]
    assert by_line[3]["kind"] == "invalid" and "deploy" in by_line[3]["reason"]
    assert by_line[4]["kind"] == "invalid"
    assert by_line[5]["kind"] == "conflict"
    # What the quarantine keeps says the same.
    kept = sql(http, "SELECT line, kind FROM rejected_events WHERE source = 'events POST /v1/events' ORDER BY line")
    assert kept == [(3, "invalid"), (4, "invalid"), (5, "conflict")]
    again = events_api(http, good).json()
    assert (again["appended"], again["duplicates"]) == (0, 2)


def test_gitlab_push_and_deployment_hooks(http):
    project = {"id": 15, "name": "Billing", "path_with_namespace": "shop/billing", "default_branch": "main",
               "web_url": "https://gitlab.example.com/shop/billing", "namespace": "shop"}
    sha = "9f" + "1" * 38
    push = {"object_kind": "push", "event_name": "push", "before": "0" * 40, "after": sha, "ref": "refs/heads/main",
            "checkout_sha": sha, "user_name": "Dev", "project_id": 15, "project": project, "total_commits_count": 1,
            "commits": [{"id": sha, "message": "m\n", "title": "m", "timestamp": "2026-03-05T08:00:00+02:00",
                         "url": f"https://gitlab.example.com/shop/billing/-/commit/{sha}",
                         "author": {"name": "Dev", "email": "dev@example.com"}, "added": [], "modified": [],
                         "removed": []}],
            "repository": {"name": "Billing", "homepage": "https://gitlab.example.com/shop/billing"}}
    r = gitlab(http, "Push Hook", push)
    assert r.status_code == 200 and r.json()["appended"] == 1, r.text

    def deployment(status, at):
        return {"object_kind": "deployment", "status": status, "status_changed_at": at, "deployment_id": 31,
                "deployable_id": 800, "deployable_url": "https://gitlab.example.com/shop/billing/-/jobs/800",
                "environment": "prod", "environment_tier": "production", "environment_slug": "prod",
                "project": project, "short_sha": sha[:8], "user": {"name": "Dev"},
                "commit_url": f"https://gitlab.example.com/shop/billing/-/commit/{sha}", "commit_title": "m"}

    for status, at in [("running", "2026-03-05 09:00:00 +0200"), ("success", "2026-03-05 09:30:00 +0200")]:
        r = gitlab(http, "Deployment Hook", deployment(status, at))
        assert r.status_code == 200 and r.json()["appended"] == 1, r.text
    rows = sql(http, "SELECT deployment_id, service, environment, status, commit_sha FROM deployments "
                     "WHERE service = 'billing'")
    assert rows == [("gitlab:shop/billing:31", "billing", "production", "succeeded", sha)]
    lead = sql(http, "SELECT lead_time FROM changes WHERE service = 'billing'")
    assert lead == [(utc("2026-03-05T07:30:00Z") - utc("2026-03-05T06:00:00Z"),)]


def metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def test_metrics_move_while_events_arrive(http):
    scrape = lambda: requests.get(http.url("/metrics"), timeout=10).text
    before = scrape()
    appended = metric(before, "leadline_events_appended_total", source="events")
    delivered = metric(before, "leadline_http_deliveries_total", source="events", status="200")
    refused = metric(before, "leadline_http_deliveries_total", source="github", status="401")
    queries = metric(before, "leadline_statement_duration_seconds_count", kind="query")
    batches, per_batch = 8, 25
    errors = []

    def send():
        for b in range(batches):
            lines = [{"event_id": f"m-{b}-{i}", "event_type": "commit", "occurred_at": "2026-03-06T09:00:00Z",
                      "service": "metered", "commit_sha": f"m{b}{i}"} for i in range(per_batch)]
            r = events_api(http, lines)
            if r.status_code != 200:
                errors.append(r.text)

    sender = threading.Thread(target=send)
    sender.start()
    seen = [appended]
    while sender.is_alive():
        seen.append(metric(scrape(), "leadline_events_appended_total", source="events"))
    sender.join()
    assert not errors
    github(http, "push", gh_push(PUSH), secret="wrong")
    assert count(http, where="service = 'metered'") == batches * per_batch
    after = scrape()
    seen.append(metric(after, "leadline_events_appended_total", source="events"))
    assert seen == sorted(seen), "counters only grow"
    assert seen[-1] == appended + batches * per_batch
    assert metric(after, "leadline_http_deliveries_total", source="events", status="200") == delivered + batches
    assert metric(after, "leadline_http_deliveries_total", source="github", status="401") == refused + 1
    assert metric(after, "leadline_statement_duration_seconds_count", kind="query") > queries
    assert metric(after, "leadline_events_stored") == count(http)
    assert metric(after, "leadline_rejected_stored") == count(http, "rejected_events")
    assert metric(after, "leadline_read_model_lag") == 0
    assert metric(after, "leadline_memory_pool_limit_bytes") > 0
    with psycopg.connect(http.dsn(), autocommit=True) as conn:
        conn.execute("SELECT 1")
        assert metric(scrape(), "leadline_pgwire_connections") >= 1


def test_a_held_writer_lock_is_503_with_retry_after(http):
    # Another process holds the data directory's writer lock (as `leadline
    # ingest` would); the server lets its own go after a quiet second.
    with open(http.data / "LOCK", "a+") as lock:
        for _ in range(600):
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                threading.Event().wait(0.05)
        else:
            pytest.fail("the server kept the writer lock")
        r = events_api(http, [{"event_id": "late", "event_type": "commit", "occurred_at": "2026-03-07T09:00:00Z",
                               "service": "s", "commit_sha": "l1"}])
        assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0, r.text
        assert "locked" in r.json()["error"]
        ready = requests.get(http.url("/readyz"), timeout=10)
        assert ready.status_code == 503 and not ready.json()["ready"]
        fcntl.flock(lock, fcntl.LOCK_UN)
    r = events_api(http, [{"event_id": "late", "event_type": "commit", "occurred_at": "2026-03-07T09:00:00Z",
                           "service": "s", "commit_sha": "l1"}])
    assert r.status_code == 200 and r.json()["appended"] == 1


def test_status_command_matches_sql(http):
    out = subprocess.run([str(binary()), "status", "--data", str(http.data), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["events"] == count(http)
    assert status["rejected"] == count(http, "rejected_events")
    assert status["read_model_lag"] == 0
    assert status["log_version"] == status["read_model_version"]
    last = sql(http, "SELECT max(ingested_at) FROM events")[0][0]
    assert utc(status["last_append"]) >= last
    text = subprocess.run([str(binary()), "status", "--data", str(http.data)], capture_output=True, text=True).stdout
    assert f"events:          {status['events']}" in text and "up to date" in text


def test_writes_beyond_the_queue_are_503_with_retry_after(tmp_path):
    """With room for one write, a second one while the first is still
    arriving is refused at once rather than queued."""
    import socket
    import time

    config = tmp_path / "leadline.json"
    config.write_text(json.dumps({"http": {"max_queued_appends": 1}, "webhooks": {"events": {"token": EVENTS_TOKEN}}}))
    s = Server(tmp_path / "data", "--http", "127.0.0.1:0", "--config", config)
    try:
        line = json.dumps({"event_id": "q1", "event_type": "commit", "occurred_at": "2026-03-08T09:00:00Z",
                           "service": "q", "commit_sha": "q1"}).encode()
        slow = socket.create_connection(("127.0.0.1", s.http_port), timeout=30)
        slow.sendall(b"POST /v1/events HTTP/1.1\r\nHost: leadline\r\nAuthorization: Bearer " + EVENTS_TOKEN.encode()
                     + b"\r\nContent-Length: " + str(len(line)).encode() + b"\r\n\r\n" + line[:10])
        # Its turn is taken once the server has its headers.
        deadline = time.time() + 30
        while requests.get(s.url("/readyz"), timeout=10).status_code == 200:
            assert time.time() < deadline, "the first write never took its turn"
            time.sleep(0.01)
        busy = events_api(s, [line.decode()])
        assert busy.status_code == 503 and int(busy.headers["Retry-After"]) >= 1, busy.text
        assert "max_queued_appends" in busy.json()["error"]
        slow.sendall(line[10:])
        answer = b""
        while not answer.endswith(b"}"):
            chunk = slow.recv(65536)
            assert chunk, answer
            answer += chunk
        answer = answer.decode()
        slow.close()
        assert answer.startswith("HTTP/1.1 200") and '"appended":1' in answer, answer
        again = events_api(s, [line.decode()])
        assert again.status_code == 200 and again.json()["duplicates"] == 1
        metrics = requests.get(s.url("/metrics"), timeout=10).text
        assert metric(metrics, "leadline_append_errors_total", source="events", reason="busy") == 1
        assert metric(metrics, "leadline_http_deliveries_total", source="events", status="503") == 1
    finally:
        s.stop()
