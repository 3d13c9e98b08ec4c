"""Load (issue 11): 200 concurrent connections for a few seconds on loopback,
mixing dashboard panels, ad hoc aggregates, single-row INSERTs and cancelled
queries, driven by `leadline-load` (benches/load, tokio-postgres). Asserts
behaviour, not timing: only the expected SQLSTATEs, every acknowledged
insert stored exactly once, the server still answering, its peak RSS under
the configured memory bound; and the group commit's answers (issue 15)."""
import json
import os
import pathlib
import subprocess
import threading

import psycopg
import pytest

from leadline_pg import Server, binary, ingest, query_json

CONNECTIONS = 200
# Beyond the server's limit: these must be refused with 53300, not hang.
EXTRA = 10
MEMORY_MB = 2048


def driver() -> pathlib.Path:
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/leadline/target"))
    path = target / "debug" / "leadline-load"
    assert path.exists(), f"{path} missing: cargo build -p leadline-load (scripts/test builds it)"
    return path


def run_driver(server: Server, *args) -> tuple[int, dict]:
    out = subprocess.run(
        [str(driver()), "--url", server.dsn(), "--json", "--server-pid", str(server.proc.pid), *map(str, args)],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A generated history of 20 services over four months, served with
    room for CONNECTIONS connections and a MEMORY_MB memory bound."""
    work = tmp_path_factory.mktemp("load")
    history = work / "history.ndjson"
    out = subprocess.run([str(binary()), "generate", "--seed", "11", "--services", "20", "--days", "120",
                          "--events", "20000", "--output", str(history)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    data = work / "data"
    ingest(data, history)
    history.unlink()
    server = Server(data, "--max-connections", CONNECTIONS, "--memory-mb", MEMORY_MB)
    yield server
    server.stop()


def test_200_connections_mixing_every_kind(loaded):
    code, report = run_driver(
        loaded, "--connections", CONNECTIONS + EXTRA, "--duration", 3,
        "--mix", "panel=50,adhoc=10,insert=30,cancel=10", "--allow", "53300", "--request-timeout", 120,
    )
    kinds = report["kinds"]
    print(json.dumps(report, indent=1))
    # The connection limit answers with its SQLSTATE and a clear message.
    assert report["connected"] == CONNECTIONS, report
    connect = kinds["connect"]
    assert connect["ok"] == CONNECTIONS and set(connect["errors"]) == {"53300"}, connect
    assert connect["errors"]["53300"]["count"] == EXTRA
    assert "too many clients" in connect["errors"]["53300"]["message"]
    # Every kind ran, and failed only as expected: cancels with 57014.
    for kind in ("panel", "adhoc", "insert", "cancel"):
        assert kinds[kind]["count"] > 0, (kind, kinds[kind])
    for kind in ("panel", "adhoc", "insert"):
        assert kinds[kind]["errors"] == {}, (kind, kinds[kind]["errors"])
    assert set(kinds["cancel"]["errors"]) <= {"57014"}, kinds["cancel"]["errors"]
    assert kinds["cancel"]["errors"].get("57014", {}).get("count", 0) > 0, kinds["cancel"]
    # Every acknowledged insert is in the log exactly once.
    inserts = report["inserts"]
    assert inserts["acknowledged"] == kinds["insert"]["ok"] > 0
    assert inserts["passed"] and inserts["verified"] == inserts["acknowledged"], inserts
    assert report["unexpected_errors"] == 0 and report["passed"] and code == 0, report
    # The server answers afterwards, over the wire and with what the CLI reads.
    prefix = report["settings"]["id_prefix"]
    with psycopg.connect(loaded.dsn(), autocommit=True) as conn:
        stored = conn.execute("SELECT count(*) FROM events WHERE starts_with(event_id, %s)", [prefix + "-"]).fetchone()[0]
        assert conn.execute("SELECT count(*) FROM dora_metrics('week')").fetchone()[0] > 0
    assert stored == inserts["acknowledged"] + inserts["unacknowledged_present"]
    on_disk = query_json(loaded.data, f"SELECT count(DISTINCT event_id) AS n FROM events WHERE starts_with(event_id, '{prefix}-')")
    assert on_disk[0]["n"] == stored
    # Peak RSS under the configured bound (limits.memory_mb).
    peak_mib = report["server"]["peak_rss_kib"] / 1024
    assert 0 < peak_mib < MEMORY_MB, report["server"]


def test_sessions_each_on_a_new_connection(loaded):
    """`session`: each request opens a connection, sends a panel and closes,
    so the server opens and drops a session per request."""
    code, report = run_driver(loaded, "--connections", 4, "--duration", 2, "--mix", "session=1")
    session = report["kinds"]["session"]
    assert session["count"] > 4 and session["ok"] == session["count"] and session["errors"] == {}, session
    assert report["unexpected_errors"] == 0 and report["passed"] and code == 0, report
    # Sessions closed by their clients are let go: the server still takes one.
    with psycopg.connect(loaded.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_driver_reports_an_unreachable_server_and_bad_flags(tmp_path):
    out = subprocess.run([str(driver()), "--url", "postgresql://leadline@127.0.0.1:1/leadline", "--duration", "1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "connecting to" in out.stderr
    out = subprocess.run([str(driver()), "--mix", "panel=1,bogus=2"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "unknown kind" in out.stderr
    out = subprocess.run([str(driver()), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "CLOSED LOOP" in out.stdout


def event(event_id: str, sha: str) -> str:
    return (f"('{event_id}', 'commit', '2026-03-02T09:00:00Z', 'svc-group', '{sha}')")


def test_group_commit_answers_each_client_with_its_own_rows(loaded):
    """Many sessions INSERT at once, so their rows share commits: each is
    told about its own rows only (a rejected row reaches only its sender),
    and every acknowledged row is stored once."""
    sessions = 24
    barrier = threading.Barrier(sessions)
    results = [None] * sessions

    def client(i: int):
        notices = []
        with psycopg.connect(loaded.dsn(), autocommit=True) as conn:
            conn.add_notice_handler(lambda d: notices.append(d.message_primary))
            barrier.wait()
            rows = [event(f"group-{i}-{n}", f"{i:04x}{n:036x}") for n in range(3)]
            if i % 3 == 0:
                # An invalid row of this session's own (no commit_sha).
                rows.append(f"('group-{i}-bad', 'commit', '2026-03-02T09:00:00Z', 'svc-group', NULL)")
            if i % 4 == 1:
                # A conflict with this session's first row (same id, other sha).
                rows.append(event(f"group-{i}-0", "f" * 40))
            cur = conn.execute(
                "INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) VALUES " + ", ".join(rows)
            )
            results[i] = (cur.rowcount, notices)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for i, (rowcount, notices) in enumerate(results):
        assert rowcount == 3, (i, rowcount, notices)
        warnings = [n for n in notices if "row" in n and ":" in n and not n.startswith("appended")]
        expected = (i % 3 == 0) + (i % 4 == 1)
        assert len(warnings) == expected, (i, notices)
        if i % 3 == 0:
            assert any("row 4" in w and "commit_sha" in w for w in warnings), (i, notices)
        if i % 4 == 1:
            assert any(f"group-{i}-0" in w and "different content" in w for w in warnings), (i, notices)
        # Nobody hears of another session's rows.
        assert not any(f"group-{j}-" in n for n in notices for j in range(sessions) if j != i), (i, notices)
    stored = query_json(loaded.data, "SELECT event_id, commit_sha FROM events WHERE starts_with(event_id, 'group-')")
    assert sorted(r["event_id"] for r in stored) == sorted(f"group-{i}-{n}" for i in range(sessions) for n in range(3))
    # The first write of a conflicting id stays.
    assert all(r["commit_sha"] != "f" * 40 for r in stored)
    rejected = query_json(loaded.data, "SELECT source, event_id FROM rejected_events WHERE starts_with(event_id, 'group-')")
    assert sorted(r["event_id"] for r in rejected) == sorted(
        [f"group-{i}-bad" for i in range(sessions) if i % 3 == 0] + [f"group-{i}-0" for i in range(sessions) if i % 4 == 1]
    )
