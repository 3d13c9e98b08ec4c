"""Errors, writes over the wire and the server's safety limits: SQLSTATEs,
INSERT/COPY through the event log, SCRAM users, read-only role, TLS,
connection limit, statement timeout, memory limit, cancel, disconnects."""
import datetime as dt
import json
import shutil
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from leadline_pg import Server, binary, ingest, query_json


@pytest.fixture(scope="module")
def server(data):
    s = Server(data, "--max-connections", 20)
    yield s
    s.stop()


@pytest.mark.parametrize(
    "sql,state",
    [
        ("SELEC 1", "42601"),
        ("SELECT * FROM no_such_table", "42P01"),
        ("SELECT no_such_function(1)", "42883"),
        ("SELECT no_such_column FROM events", "42703"),
        ("SELECT CAST('abc' AS INT)", "22P02"),
        ("SELECT CAST('not a time' AS TIMESTAMP)", "22007"),
        ("DELETE FROM events", "0A000"),
        ("SHOW no_such_setting", "42704"),
    ],
)
def test_errors_have_sqlstates_and_keep_the_connection(server, sql, state):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as e:
            conn.execute(sql).fetchall()
        assert e.value.sqlstate == state, str(e.value)
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_timezone_setting_is_honoured_in_text_results(server):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        sql = "SELECT CAST('2026-03-02T09:00:00Z' AS TIMESTAMP WITH TIME ZONE)"
        instant = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
        conn.execute("SET TIME ZONE 'Europe/Paris'")
        got = conn.execute(sql).fetchone()[0]
        assert got == instant and got.utcoffset() == dt.timedelta(hours=1)
        conn.execute("SET TimeZone = 'Asia/Kolkata'")
        got = conn.execute(sql).fetchone()[0]
        assert got == instant and got.utcoffset() == dt.timedelta(hours=5, minutes=30)
        assert conn.cursor(binary=True).execute(sql).fetchone()[0] == instant
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SET TIME ZONE 'Mars/Olympus'")
        assert e.value.sqlstate == "22023"
        conn.execute("RESET TimeZone")
        assert conn.execute(sql).fetchone()[0].utcoffset() == dt.timedelta(0)


def test_insert_appends_and_reports_rejections(server, data):
    notices = []
    before = query_json(data, "SELECT count(*) AS n FROM events")[0]["n"]
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        cur = conn.execute(
            "INSERT INTO events (event_id, event_type, occurred_at, service, environment, deployment_id, change_ids) VALUES "
            "('wire-1', 'deployment_succeeded', '2026-03-02T09:00:00Z', 'svc-wire', 'production', 'dw-1', ARRAY['c1','c2']), "
            "('wire-2', 'deploy', '2026-03-02T09:00:00Z', 'svc-wire', 'production', 'dw-2', NULL)"
        )
        assert cur.rowcount == 1
        assert any("row 2" in n and "event_type" in n for n in notices), notices
        # Idempotent: the same event again appends nothing.
        cur = conn.execute(
            "INSERT INTO events (event_id, event_type, occurred_at, service, environment, deployment_id, change_ids) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s)",
            ["wire-1", "deployment_succeeded", "2026-03-02T09:00:00Z", "svc-wire", "production", "dw-1", ["c1", "c2"]],
        )
        assert cur.rowcount == 0
        row = conn.execute("SELECT change_ids FROM events WHERE event_id = 'wire-1'").fetchone()
        assert row[0] == ["c1", "c2"]
        rej = conn.execute("SELECT count(*) FROM rejected_events WHERE reason LIKE '%event_type%'").fetchone()[0]
        assert rej >= 1
    assert query_json(data, "SELECT count(*) AS n FROM events")[0]["n"] == before + 1


def test_cli_ingest_runs_beside_the_server(server, data, tmp_path):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) "
            "VALUES ('beside-1', 'commit', '2026-03-05T10:00:00Z', 'svc-beside', 'b1')"
        )
        time.sleep(1.5)  # the server releases the writer lock when idle
        f = tmp_path / "more.ndjson"
        f.write_text('{"event_id": "beside-2", "event_type": "commit", "occurred_at": "2026-03-05T10:01:00Z", "service": "svc-beside", "commit_sha": "b2"}\n')
        out = ingest(data, f)
        assert "appended 1" in out.stdout, out.stderr
        assert conn.execute("SELECT count(*) FROM events WHERE service = 'svc-beside'").fetchone()[0] == 2


def test_copy_from_stdin_csv(server, data):
    notices = []
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        with conn.cursor() as cur:
            with cur.copy("COPY events (event_id, event_type, occurred_at, service, commit_sha) FROM STDIN WITH (FORMAT csv, HEADER true)") as cp:
                cp.write("event_id,event_type,occurred_at,service,commit_sha\n")
                cp.write("copy-1,commit,2026-03-02T08:00:00Z,svc-copy,abc1\n")
                cp.write("copy-2,commit,2026-03-02T08:05:00Z,svc-copy,abc2\n")
                cp.write("copy-3,commit,2026-03-02 08:10:00,svc-copy,abc3\n")
            assert cur.rowcount == 2
        assert any("line 4" in n and "occurred_at" in n for n in notices), notices
        n = conn.execute("SELECT count(*) FROM events WHERE service = 'svc-copy'").fetchone()[0]
        assert n == 2


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql missing")
def test_psql_copy_text_format(server, tmp_path):
    f = tmp_path / "events.tsv"
    f.write_text("psql-1\tcommit\t2026-03-03T08:00:00Z\tsvc-psql\tdef1\npsql-2\tcommit\t2026-03-03T08:01:00Z\tsvc-psql\t\\N\n")
    out = subprocess.run(
        ["psql", server.dsn(), "-X", "-c", f"\\copy events (event_id, event_type, occurred_at, service, commit_sha) from '{f}'"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "COPY 1" in out.stdout
    assert "line 2" in out.stderr and "commit_sha" in out.stderr


def test_copy_to_stdout(server, data):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        with conn.cursor().copy(
            "COPY (SELECT event_id, team, change_ids FROM events WHERE service = 'svc-001' ORDER BY event_id LIMIT 5) TO STDOUT WITH (FORMAT csv, HEADER)"
        ) as cp:
            text = b"".join(bytes(b) for b in cp).decode()
        with conn.cursor().copy("COPY events (event_id, environment) TO STDOUT") as cp:
            lines = b"".join(bytes(b) for b in cp).decode().splitlines()
    want = query_json(data, "SELECT event_id, team FROM events WHERE service = 'svc-001' ORDER BY event_id LIMIT 5")
    rows = text.splitlines()
    assert rows[0] == "event_id,team,change_ids"
    assert [r.split(",")[0] for r in rows[1:]] == [w["event_id"] for w in want]
    assert [r.split(",")[1] for r in rows[1:]] == [w["team"] or "" for w in want]
    assert len(lines) == query_json(data, "SELECT count(*) AS n FROM events")[0]["n"]
    assert any(l.endswith("\t\\N") for l in lines)  # commits have no environment: \N


def config_with_users(tmp_path, tls=None):
    def verifier(pw):
        out = subprocess.run([str(binary()), "passwd", "x"], input=pw + "\n", capture_output=True, text=True, check=True)
        return json.loads(out.stdout)["scram"]

    cfg = {
        "users": [
            {"name": "alice", "scram": verifier("wonderland")},
            {"name": "reader", "scram": verifier("readonly"), "read_only": True},
        ]
    }
    if tls:
        cfg["tls"] = tls
    p = tmp_path / "leadline.json"
    p.write_text(json.dumps(cfg))
    assert "wonderland" not in p.read_text()
    return p


def test_scram_users_and_read_only_role(data, tmp_path):
    s = Server(data, "--config", config_with_users(tmp_path))
    try:
        with psycopg.connect(s.dsn("alice", "wonderland")) as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == "alice"
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(s.dsn("alice", "wrong"))
        assert "password authentication failed" in str(e.value).lower()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(s.dsn("mallory", "x"))
        with psycopg.connect(s.dsn("reader", "readonly"), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] > 0
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) VALUES ('ro', 'commit', '2026-01-01T00:00:00Z', 's', 'x')")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with conn.cursor().copy("COPY events FROM STDIN WITH (FORMAT csv)") as cp:
                    cp.write("x\n")
            assert conn.execute("SELECT 1").fetchone()[0] == 1
    finally:
        s.stop()


def test_non_loopback_without_auth_is_refused(data):
    out = subprocess.run([str(binary()), "serve", "--data", str(data), "--listen", "0.0.0.0:0"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "without authentication" in out.stderr


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl missing")
def test_tls_required(data, tmp_path):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "server.key"),
         "-out", str(tmp_path / "server.crt"), "-days", "2", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )
    cfg = config_with_users(tmp_path, tls={"cert": "server.crt", "key": "server.key", "required": True})
    s = Server(data, "--config", cfg)
    try:
        with psycopg.connect(s.dsn("alice", "wonderland", sslmode="require")) as conn:
            assert conn.info.pgconn.ssl_in_use
            assert conn.execute("SELECT 1").fetchone()[0] == 1
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(s.dsn("alice", "wonderland", sslmode="disable"))
        assert "TLS" in str(e.value)
    finally:
        s.stop()


def test_connection_limit(data):
    s = Server(data, "--max-connections", 2)
    try:
        a = psycopg.connect(s.dsn())
        b = psycopg.connect(s.dsn())
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(s.dsn())
        assert "too many clients" in str(e.value)
        a.close()
        time.sleep(0.3)
        c = psycopg.connect(s.dsn())
        assert c.execute("SELECT 1").fetchone()[0] == 1
        b.close()
        c.close()
    finally:
        s.stop()


SLOW = "SELECT count(*) FROM events a CROSS JOIN events b WHERE a.event_id < b.event_id"
WIDE = "SELECT a.event_id, a.occurred_at, b.event_id FROM events a CROSS JOIN events b"


def test_statement_timeout_covers_execution_and_streaming(server):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("SET statement_timeout = 300")
        for sql in (SLOW, WIDE):
            t = time.time()
            with pytest.raises(psycopg.errors.QueryCanceled) as e:
                conn.execute(sql).fetchall()
            assert "timeout" in str(e.value)
            assert time.time() - t < 30
        conn.execute("SET statement_timeout = 0")
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_cancel_request(server):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        threading.Timer(0.5, conn.cancel).start()
        t = time.time()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute(SLOW).fetchall()
        assert time.time() - t < 30
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_memory_limit_per_query(data):
    s = Server(data, "--query-memory-mb", 1)
    try:
        with psycopg.connect(s.dsn(), autocommit=True) as conn:
            with pytest.raises(psycopg.Error) as e:
                conn.execute("SELECT * FROM events ORDER BY attributes, event_id DESC").fetchall()
            assert e.value.sqlstate == "53200", str(e.value)
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] > 0
    finally:
        s.stop()


PERCENTILES = (
    "SELECT k, date_part('epoch', lead_time(x)) AS p50, date_part('epoch', lead_time(x, 0.9)) AS p90 "
    "FROM (SELECT value % 3 AS k, arrow_cast(value * 7 % 1000003, 'Duration(Second)') AS x "
    "FROM range(0, 3000000)) t GROUP BY k ORDER BY k"
)


def test_percentiles_over_the_memory_limit_fail_with_53200(data):
    # 3M lead times (24 MB held once for p50 and p90) against 4 MiB a query:
    # a clear error, and the connection keeps working.
    s = Server(data, "--query-memory-mb", 4)
    try:
        with psycopg.connect(s.dsn(), autocommit=True) as conn:
            with pytest.raises(psycopg.Error) as e:
                conn.execute(PERCENTILES).fetchall()
            assert e.value.sqlstate == "53200", str(e.value)
            assert conn.execute("SELECT 1").fetchone()[0] == 1
    finally:
        s.stop()
    s = Server(data, "--query-memory-mb", 256)
    try:
        with psycopg.connect(s.dsn(), autocommit=True) as conn:
            rows = conn.execute(PERCENTILES).fetchall()
    finally:
        s.stop()
    expected = query_json(data, PERCENTILES)
    assert [(r["k"], r["p50"], r["p90"]) for r in expected] == [(k, float(p50), float(p90)) for k, p50, p90 in rows]


CLIENT = """
import sys, psycopg
conn = psycopg.connect(sys.argv[1])
cur = conn.cursor(binary=True)
print("started", flush=True)
cur.execute(sys.argv[2])
"""


@pytest.mark.parametrize(
    "sql",
    [
        # Streaming: the server is writing rows when the client dies.
        "SELECT a.event_id, a.occurred_at, b.event_id FROM events a CROSS JOIN (SELECT event_id FROM events LIMIT 200) b",
        # Still executing: nothing written yet; the server notices the hang-up.
        SLOW,
    ],
)
def test_client_vanishing_mid_result_frees_its_connection(data, tmp_path, sql):
    s = Server(data, "--max-connections", 1)
    try:
        script = tmp_path / "client.py"
        script.write_text(CLIENT)
        p = subprocess.Popen([sys.executable, str(script), s.dsn(), sql], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "started"
        time.sleep(1.5)
        p.kill()
        p.wait()
        deadline = time.time() + 20
        while True:
            try:
                with psycopg.connect(s.dsn()) as conn:
                    assert conn.execute("SELECT 1").fetchone()[0] == 1
                break
            except psycopg.OperationalError:
                assert time.time() < deadline, "the vanished client's connection was never freed"
                time.sleep(0.3)
    finally:
        s.stop()
