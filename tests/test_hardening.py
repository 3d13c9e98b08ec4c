"""Hostile input and bugs, with real clients (issue 11): every number the
input sets is checked (no panic, no wrap-around), every text field of an
event has a size limit, a panic is an XX000 error for its client only, and
there is no way past authentication or around a read-only role."""
import json
import os
import socket
import struct
import subprocess

import psycopg
import pytest

from leadline_pg import Server, binary, ingest, query_json
from test_pg_safety import config_with_users


@pytest.fixture(scope="module")
def server(data):
    # No backtraces: the test reads the server's stderr only at the end.
    s = Server(data, env={"RUST_BACKTRACE": "0"})
    yield s
    s.stop()


def sqlstate_of(conn, sql, params=None):
    with pytest.raises(psycopg.Error) as e:
        conn.execute(sql, params).fetchall()
    return e.value.sqlstate, str(e.value)


# --- numbers the input sets -------------------------------------------------


def test_an_attribution_window_too_long_for_microseconds_is_22015(server):
    """Regression: this multiplied with overflow, panicking the connection's
    task (a test build; the client hung) or wrapping silently (release)."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for window in ("9999999999:00:00", "1e300 hours", "106751992 days"):
            state, msg = sqlstate_of(conn, f"SET leadline.attribution_window = '{window}'")
            assert state == "22015", msg
        assert sqlstate_of(conn, "SET leadline.attribution_window = 'nan hours'")[0] == "22007"
        assert sqlstate_of(conn, "SET leadline.attribution_window = '-1 hours'")[0] == "22023"
        assert sqlstate_of(conn, "SET leadline.as_of = 'yesterday'")[0] == "22007"
        assert conn.execute("SHOW leadline.attribution_window").fetchone()[0] == "24 hours"
        conn.execute("SET leadline.attribution_window = '2562047788:00:00'")
        assert conn.execute("SELECT count(*) FROM incidents").fetchone()[0] > 0


def test_cli_numbers_are_checked_too(data):
    out = subprocess.run([str(binary()), "query", "--data", str(data), "--attribution-window", "9999999999:00:00",
                          "SELECT 1"], capture_output=True, text=True)
    assert out.returncode == 1 and "out of range" in out.stderr and "panicked" not in out.stderr, out.stderr
    out = subprocess.run([str(binary()), "serve", "--data", str(data), "--listen", "127.0.0.1:0",
                          "--statement-timeout-ms", str(2**63)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "statement_timeout_ms must be at most" in out.stderr, out.stderr


def test_a_statement_timeout_past_what_an_instant_holds_is_refused(server):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for value in ("99999999999999999999", "2147483648", "1e30", "-5"):
            assert sqlstate_of(conn, f"SET statement_timeout = '{value}'")[0] == "22023", value
        conn.execute("SET statement_timeout = '2147483647'")
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_dora_metrics_caps_its_bucket_count(server):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        state, msg = sqlstate_of(conn, "SELECT count(*) FROM dora_metrics('day', '0001-01-01', '9999-12-31')")
        assert state == "54000" and "at most 100000 buckets" in msg, msg
        n = conn.execute("SELECT count(*) FROM dora_metrics('month', '2000-01-01', '9999-12-31')").fetchone()[0]
        pairs = conn.execute("SELECT count(*) FROM (SELECT DISTINCT service, environment FROM dora_metrics('week'))").fetchone()[0]
        assert n == pairs * 8000 * 12


def test_a_grain_that_is_no_grain_is_22023(server):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for grain in ("fortnight", "", "days"):
            state, msg = sqlstate_of(conn, f"SELECT * FROM dora_metrics('{grain}')")
            assert state == "22023" and "expected one of 'day', 'week', 'month'" in msg, (grain, msg)
        state, msg = sqlstate_of(conn, "SELECT deployment_frequency(finished_at, 'fortnight') FROM deployments")
        assert state == "22023" and "expected one of 'day', 'week', 'month'" in msg, msg
        assert conn.execute("SELECT count(*) FROM dora_metrics(' WEEK ')").fetchone()[0] > 0


def test_parquet_timestamps_of_every_unit_are_checked(tmp_path):
    """Regression: a timestamp[s] of 9e15 was multiplied into µs unchecked and
    stored wrapped around."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    ok = {"s": 1_767_225_600, "ms": 1_767_225_600_000, "us": 1_767_225_600_000_000, "ns": 1_767_225_600_000_000_000}
    # s and ms: too many µs for an i64; µs: past the year 9999; ns always fit.
    extremes = {"s": 9 * 10**15, "ms": 9 * 10**17, "us": 2**62, "ns": 2**62}
    values, ids, units = [], [], []
    for unit, good in ok.items():
        for n, value in enumerate([good, extremes[unit], -extremes[unit]]):
            ids.append(f"pq-{unit}-{n}")
            values.append(value)
            units.append(unit)
    data = tmp_path / "data"
    for unit in ok:
        rows = [i for i, u in enumerate(units) if u == unit]
        table = pa.table({
            "event_id": [ids[i] for i in rows],
            "event_type": ["commit"] * len(rows),
            "occurred_at": pa.array([values[i] for i in rows], pa.timestamp(unit, tz="UTC")),
            "service": ["svc-pq"] * len(rows),
            "commit_sha": [f"sha-{i}" for i in rows],
        })
        pq.write_table(table, tmp_path / f"{unit}.parquet")
        out = ingest(data, tmp_path / f"{unit}.parquet")
        assert out.returncode == (0 if unit == "ns" else 2) and "panicked" not in out.stderr, out.stderr
    stored = query_json(data, "SELECT event_id, CAST(occurred_at AS VARCHAR) AS t FROM events ORDER BY event_id")
    assert [r["event_id"] for r in stored] == ["pq-ms-0", "pq-ns-0", "pq-ns-1", "pq-ns-2", "pq-s-0", "pq-us-0"]
    assert {r["t"] for r in stored if r["event_id"].endswith("-0")} == {"2026-01-01T00:00:00Z"}
    # A row whose timestamp the reader cannot hold is named by file and row.
    rejected = query_json(data, "SELECT source, line, reason FROM rejected_events")
    by_row = {(r["source"].rsplit("/", 1)[-1], r["line"]): r["reason"] for r in rejected}
    assert sorted(by_row) == [("ms.parquet", 2), ("ms.parquet", 3), ("s.parquet", 2), ("s.parquet", 3),
                              ("us.parquet", 2), ("us.parquet", 3)]
    # Parquet has no seconds: pyarrow writes timestamp[s] as milliseconds.
    assert "occurred_at: the timestamp 9000000000000000000 milliseconds after 1970-01-01 is out of range" in by_row[("s.parquet", 2)]
    assert "milliseconds after 1970-01-01 is out of range" in by_row[("ms.parquet", 3)]
    assert "outside the years 0000-9999" in by_row[("us.parquet", 2)]


# --- sizes -------------------------------------------------------------------


def test_a_text_field_over_its_limit_rejects_the_row_and_is_never_stored(tmp_path):
    """Regression: a 256 MiB commit_sha was appended as is."""
    data = tmp_path / "data"
    f = tmp_path / "big.ndjson"
    big = "a" * (8 << 20)
    with f.open("w") as out:
        out.write(json.dumps({"event_id": "big-1", "event_type": "commit", "occurred_at": "2026-03-01T00:00:00Z",
                              "service": "svc", "commit_sha": big}) + "\n")
        out.write(json.dumps({"event_id": "ok-1", "event_type": "commit", "occurred_at": "2026-03-01T00:00:00Z",
                              "service": "svc", "commit_sha": "a" * 4096}) + "\n")
    out = ingest(data, f)
    assert "appended 1" in out.stdout and "rejected 1" in out.stdout, out.stdout + out.stderr
    assert "commit_sha is 8388608 bytes long; at most 4096 are allowed" in out.stdout + out.stderr
    rej = query_json(data, "SELECT event_id, reason, length(raw) AS n, raw LIKE '%[cut: the row is%' AS cut FROM rejected_events")
    assert rej[0]["event_id"] == "big-1" and rej[0]["cut"], rej
    assert rej[0]["n"] <= (1 << 20) + 100
    assert query_json(data, "SELECT max(length(commit_sha)) AS n FROM events")[0]["n"] == 4096
    size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    assert size < 4 << 20, size


def test_an_insert_over_the_limit_is_a_warning_and_a_quarantined_row(server):
    notices = []
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        cur = conn.execute(
            "INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) VALUES (%s, 'commit', %s, %s, 'c')",
            ["size-1", "2026-03-01T00:00:00Z", "s" * 5000],
        )
        assert cur.rowcount == 0
        assert any("service is 5000 bytes long; at most 4096" in n for n in notices), notices
        assert conn.execute("SELECT count(*) FROM events WHERE event_id = 'size-1'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM rejected_events WHERE event_id = 'size-1'").fetchone()[0] == 1


# --- panics -------------------------------------------------------------------


def test_a_panic_is_an_xx000_error_for_its_client_and_the_server_goes_on(data):
    s = Server(data, env={"RUST_BACKTRACE": "0"})
    try:
        other = psycopg.connect(s.dsn(), autocommit=True)
        with psycopg.connect(s.dsn(), autocommit=True) as conn:
            if sqlstate_of(conn, "SELECT leadline_debug_panic('probe')")[0] == "42883":
                pytest.skip("a release build has no leadline_debug_panic()")
            # Extended protocol (psycopg's default), planning and streaming.
            state, msg = sqlstate_of(conn, "SELECT leadline_debug_panic(%s)", ["extended"])
            assert state == "XX000" and "leadline hit a bug" in msg, msg
            state, msg = sqlstate_of(conn, "SELECT event_id, leadline_debug_panic(event_id) FROM events")
            assert state == "XX000", msg
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] > 0
            # Simple protocol, in the middle of a multi-statement query.
            cur = psycopg.ClientCursor(conn)
            with pytest.raises(psycopg.Error) as e:
                cur.execute("SELECT 1; SELECT leadline_debug_panic('simple'); SELECT 2")
            assert e.value.sqlstate == "XX000"
            cur.execute("SELECT 3")
            assert cur.fetchone()[0] == 3
        # psql (libpq, simple protocol) sees the error and carries on.
        out = subprocess.run(["psql", s.dsn(), "-X", "-c", "SELECT leadline_debug_panic('psql')", "-c", "SELECT 42"],
                             capture_output=True, text=True, timeout=60)
        assert "XX000" in out.stderr or "leadline hit a bug" in out.stderr, out.stderr
        # The other connection never noticed.
        assert other.execute("SELECT 1").fetchone()[0] == 1
        other.close()
    finally:
        s.stop()
    log = s.proc.stderr.read()
    assert log.count("bug: a panic while serving a client") >= 3, log


def test_a_panic_in_a_transaction_block_fails_the_block(server):
    """A panic is an error like any other for the block it ran in: the block
    is failed (25P02 until ROLLBACK) and its rows are never committed; an
    implicit block (a multi-statement query) writes nothing; the connection
    goes on."""
    insert = ("INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) "
              "VALUES ('{}', 'commit', '2026-03-01T00:00:00Z', 'svc', 'c')")
    with psycopg.connect(server.dsn()) as conn:  # psycopg opens a block (extended protocol)
        conn.execute(insert.format("tx-panic-1"))
        state, msg = sqlstate_of(conn, "SELECT leadline_debug_panic('in a block')")
        if state == "42883":
            pytest.skip("a release build has no leadline_debug_panic()")
        assert state == "XX000", msg
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        assert sqlstate_of(conn, "SELECT 1")[0] == "25P02"
        conn.rollback()
        conn.execute(insert.format("tx-panic-2"))
        conn.commit()
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        cur = psycopg.ClientCursor(conn)  # the simple protocol
        with pytest.raises(psycopg.Error) as e:
            cur.execute(insert.format("tx-panic-3") + "; SELECT leadline_debug_panic('implicit')")
        assert e.value.sqlstate == "XX000"
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        cur.execute("BEGIN; " + insert.format("tx-panic-4"))
        with pytest.raises(psycopg.Error) as e:
            cur.execute("SELECT leadline_debug_panic('explicit')")
        assert e.value.sqlstate == "XX000"
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        cur.execute("COMMIT")
        assert cur.statusmessage == "ROLLBACK"
        ids = conn.execute("SELECT event_id FROM events WHERE event_id LIKE 'tx-panic-%' ORDER BY 1").fetchall()
        assert ids == [("tx-panic-2",)]


# --- authentication -----------------------------------------------------------


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def startup(user: str, **params) -> bytes:
    body = struct.pack("!i", 196608)
    for k, v in {"user": user, "database": "leadline", **params}.items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


def read_messages(sock):
    """Every message the server sends until it closes the connection (or
    stops for 10 s): [(type, body)]."""
    sock.settimeout(10)
    buf = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    out = []
    while len(buf) >= 5:
        kind, length = buf[:1], struct.unpack("!i", buf[1:5])[0]
        out.append((kind, buf[5:1 + length]))
        buf = buf[1 + length:]
    return out


def auth_ok(msgs):
    """AuthenticationOk, or a session that goes on (ReadyForQuery before any
    error: pgwire follows a FATAL error with one before it hangs up)."""
    before_error = msgs[:next((i for i, (k, _) in enumerate(msgs) if k == b"E"), len(msgs))]
    return any(k == b"R" and struct.unpack("!i", b[:4])[0] == 0 for k, b in msgs) or any(k == b"Z" for k, _ in before_error)


def sasl_exchange(port, answer: bytes):
    """Starts a session as alice, and answers the server's SASL request with
    `answer` (a whole message) followed by a query."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(startup("alice"))
        sock.settimeout(10)
        first = sock.recv(65536)
        assert first[:1] == b"R" and struct.unpack("!i", first[5:9])[0] == 10, first  # AuthenticationSASL
        assert b"SCRAM-SHA-256" in first
        sock.sendall(answer + message(b"Q", b"SELECT count(*) FROM events\0"))
        return read_messages(sock)


def scram_first(mechanism: bytes, gs2: bytes) -> bytes:
    client_first = gs2 + b"n=,r=abcdefghijklmnopqrstuv"
    return message(b"p", mechanism + b"\0" + struct.pack("!i", len(client_first)) + client_first)


def test_no_way_past_scram(data, tmp_path):
    s = Server(data, "--config", config_with_users(tmp_path))
    try:
        # The right password works; wrong ones and unknown users do not.
        with psycopg.connect(s.dsn("alice", "wonderland")) as conn:
            assert conn.execute("SELECT 1").fetchone()[0] == 1
        for user, pw in (("alice", "wrong"), ("mallory", "wonderland"), ("alice", ""), ("", "wonderland")):
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(s.dsn(user, pw) if user else f"postgresql://:{pw}@127.0.0.1:{s.port}/leadline")
        # Downgrades: the password in clear or as md5 where SCRAM was asked
        # for, another mechanism, channel binding the connection cannot have.
        attempts = {
            "cleartext password": message(b"p", b"wonderland\0"),
            "md5 password": message(b"p", b"md5" + b"0" * 32 + b"\0"),
            "PLAIN mechanism": message(b"p", b"PLAIN\0" + struct.pack("!i", 18) + b"\0alice\0wonderland"),
            "SCRAM-SHA-1": scram_first(b"SCRAM-SHA-1", b"n,,"),
            "SCRAM-SHA-256-PLUS without TLS": scram_first(b"SCRAM-SHA-256-PLUS", b"p=tls-server-end-point,,"),
            "channel binding flag without TLS": scram_first(b"SCRAM-SHA-256", b"p=tls-server-end-point,,"),
            "no answer, straight to a query": b"",
            "garbage": message(b"p", os.urandom(64)),
        }
        for name, answer in attempts.items():
            msgs = sasl_exchange(s.port, answer)
            assert not auth_ok(msgs), name
            assert not any(k == b"D" for k, _ in msgs), name
            assert any(k == b"E" for k, _ in msgs) or msgs == [], (name, msgs)
            assert not any(b"XX000" in b for _, b in msgs), (name, msgs)
        # A replication connection (walsender) is refused before anything else.
        with pytest.raises(psycopg.OperationalError) as e:
            psycopg.connect(s.dsn("alice", "wonderland", replication="database"))
        assert "replication" in str(e.value)
        with socket.create_connection(("127.0.0.1", s.port)) as sock:
            sock.sendall(startup("alice", replication="true"))
            msgs = read_messages(sock)
            assert msgs[0][0] == b"E" and b"0A000" in msgs[0][1] and not auth_ok(msgs)
        # The server is fine afterwards.
        with psycopg.connect(s.dsn("alice", "wonderland")) as conn:
            assert conn.execute("SELECT 1").fetchone()[0] == 1
    finally:
        s.stop()


def test_replication_is_refused_without_users_too(server):
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(server.dsn(replication="database"))
    assert "does not support replication" in str(e.value)
    with psycopg.connect(server.dsn(replication="off")) as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def test_length_fields_claiming_gigabytes_allocate_nothing(server):
    before = vm_hwm_kib(server.proc.pid)
    for packet in (
        struct.pack("!ii", 2**31 - 1, 196608),  # a startup packet claiming 2 GiB
        struct.pack("!ii", 8, 80877103) + message(b"Q", b"x")[:1] + struct.pack("!i", 2**30 - 2),  # after SSLRequest
        startup("leadline") + b"Q" + struct.pack("!i", 2**30 - 2) + b"SELECT",  # a 1 GiB query, 6 bytes sent
        startup("leadline") + b"d" + struct.pack("!i", 2**31 - 1),  # CopyData claiming 2 GiB outside COPY
    ):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(packet)
            sock.shutdown(socket.SHUT_WR)
            read_messages(sock)
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1
    assert vm_hwm_kib(server.proc.pid) - before < 64 << 10


# --- read-only users -------------------------------------------------------------


def test_read_only_users_cannot_write_by_any_path(data, tmp_path):
    s = Server(data, "--config", config_with_users(tmp_path))
    before = query_json(data, "SELECT count(*) AS n FROM events")[0]["n"]
    views = sorted(p.name for p in (data / "views").glob("*.json")) if (data / "views").exists() else []
    try:
        with psycopg.connect(s.dsn("alice", "wonderland"), autocommit=True) as conn:
            conn.execute("CREATE VIEW ro_target AS SELECT 1 AS one")
        with psycopg.connect(s.dsn("reader", "readonly"), autocommit=True) as conn:
            refused = [
                ("INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) "
                 "VALUES ('ro-1', 'commit', '2026-01-01T00:00:00Z', 's', 'x')", None),
                ("INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) "
                 "VALUES (%s, 'commit', %s, 's', 'x')", ["ro-2", "2026-01-01T00:00:00Z"]),
                ("CREATE VIEW ro_view AS SELECT 1 AS one", None),
                ("CREATE OR REPLACE VIEW ro_target AS SELECT 2 AS two", None),
                ("CREATE TEMP VIEW ro_temp AS SELECT 1 AS one", None),
                ("DROP VIEW ro_target", None),
                ("DROP VIEW IF EXISTS ro_target", None),
                ("ALTER TABLE ro_target RENAME TO ro_renamed", None),
                ("DELETE FROM events", None),
                ("UPDATE events SET service = 'x'", None),
                ("TRUNCATE events", None),
                ("DROP TABLE events", None),
                ("CREATE TABLE t (a int)", None),
            ]
            for sql, params in refused:
                state, msg = sqlstate_of(conn, sql, params)
                assert state == "42501", (sql, state, msg)
            for copy in ("COPY events FROM STDIN", "COPY events (event_id) FROM STDIN WITH (FORMAT csv)",
                         "COPY events FROM STDIN (FORMAT binary)"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    with conn.cursor().copy(copy) as cp:
                        cp.write("ro-3\tcommit\t2026-01-01T00:00:00Z\ts\tx\n")
            # Other paths to a write fail for every user, read-only ones included.
            for sql in ("COPY events FROM '/etc/passwd'", "COPY (SELECT 1) TO '/tmp/leadline-ro.csv'",
                        "EXPLAIN ANALYZE INSERT INTO events (event_id) VALUES ('ro-4')",
                        "WITH x AS (INSERT INTO events (event_id) VALUES ('ro-5') RETURNING 1) SELECT * FROM x"):
                state, msg = sqlstate_of(conn, sql)
                assert state in ("42501", "0A000"), (sql, state, msg)
            # Session settings are the session's own: they change no stored data.
            conn.execute("SET leadline.attribution_window = 'unbounded'")
            conn.execute("SET leadline.as_of = '2026-01-01T00:00:00Z'")
            conn.execute("RESET ALL")
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == before
        out = subprocess.run(["psql", s.dsn("reader", "readonly"), "-X", "-c",
                              f"\\copy events (event_id) from '{tmp_path / 'leadline.json'}'"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and "42501" in out.stderr or "permission denied" in out.stderr, out.stderr
    finally:
        s.stop()
    assert query_json(data, "SELECT count(*) AS n FROM events")[0]["n"] == before
    assert not (tmp_path / "leadline-ro.csv").exists() and not os.path.exists("/tmp/leadline-ro.csv")
    after = sorted(p.name for p in (data / "views").glob("*.json"))
    assert after == sorted(views + ["ro_target.json"]), after
