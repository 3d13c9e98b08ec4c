"""Transaction blocks over the wire, with real clients: psycopg 3 and 2 in
their default (non-autocommit) mode, asyncpg, psql, pgjdbc and node-postgres. Inside
BEGIN … COMMIT writes are held until COMMIT appends them as one commit;
ROLLBACK, a failed block or a dropped connection discards them; after an
error every statement gets 25P02 until ROLLBACK; reads see one snapshot."""
import asyncio
import json
import shutil
import subprocess
import sys

import psycopg
import psycopg2
import pytest

from leadline_pg import Server, node_package, query_json, run_node
from test_pg_safety import config_with_users

INSERT = ("INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) "
          "VALUES (%s, 'commit', '2026-04-01T10:00:00Z', %s, %s)")
IDLE, INTRANS, INERROR = (psycopg.pq.TransactionStatus.IDLE, psycopg.pq.TransactionStatus.INTRANS,
                          psycopg.pq.TransactionStatus.INERROR)


def stored(data, service):
    """The event ids of `service`, as `leadline query` reads them."""
    return [r["event_id"] for r in query_json(data, f"SELECT event_id FROM events WHERE service = '{service}' ORDER BY 1")]


def commits(data):
    """Each commit of the events table: (version, its leadline facts or None)."""
    out = []
    for f in sorted((data / "events" / "_delta_log").glob("*.json")):
        facts = None
        for line in f.read_text().splitlines():
            info = json.loads(line).get("commitInfo")
            if info:
                facts = info.get("leadline")
        out.append((int(f.stem), facts))
    return out


def notices_of(conn):
    got = []
    conn.add_notice_handler(lambda d: got.append((d.sqlstate, d.message_primary)))
    return got


def test_commit_appends_the_block_as_one_commit(server, data):
    before = commits(data)
    with psycopg.connect(server.dsn()) as conn:  # autocommit off: psycopg opens the block
        notes = notices_of(conn)
        conn.execute(INSERT, ["tx-1", "svc-tx-commit", "a1"])
        assert conn.info.transaction_status == INTRANS
        conn.execute(INSERT, ["tx-2", "svc-tx-commit", "a2"])
        with conn.cursor().copy("COPY events (event_id, event_type, occurred_at, service, commit_sha) FROM STDIN") as cp:
            cp.write_row(["tx-3", "commit", "2026-04-01T10:01:00Z", "svc-tx-commit", "a3"])
        # Held: neither another connection nor the block's own reads see them.
        with psycopg.connect(server.dsn(), autocommit=True) as other:
            assert other.execute("SELECT count(*) FROM events WHERE service = 'svc-tx-commit'").fetchone()[0] == 0
        assert stored(data, "svc-tx-commit") == []
        assert conn.execute("SELECT count(*) FROM events WHERE service = 'svc-tx-commit'").fetchone()[0] == 0
        assert any("not visible until COMMIT" in m for _, m in notes), notes
        assert commits(data) == before
        conn.commit()
        assert conn.info.transaction_status == IDLE
        assert conn.execute("SELECT count(*) FROM events WHERE service = 'svc-tx-commit'").fetchone()[0] == 3
        conn.commit()
    assert stored(data, "svc-tx-commit") == ["tx-1", "tx-2", "tx-3"]
    after = commits(data)
    assert len(after) == len(before) + 1, "one commit for the whole block"
    version, facts = after[-1]
    assert version == before[-1][0] + 1
    assert facts["appended"] == 3 and "transaction" in facts["source"]
    ingested = query_json(data, "SELECT count(DISTINCT ingested_at) AS n FROM events WHERE service = 'svc-tx-commit'")
    assert ingested[0]["n"] == 1


def test_commit_reports_duplicates_and_conflicts(server, data):
    with psycopg.connect(server.dsn()) as conn:
        notes = notices_of(conn)
        conn.execute(INSERT, ["dup-1", "svc-tx-dup", "same"])
        conn.commit()
        assert notes == []
        assert conn.execute(INSERT, ["dup-1", "svc-tx-dup", "same"]).rowcount == 1, "held: not known yet"
        conn.execute(INSERT, ["dup-2", "svc-tx-dup", "d2"])
        conn.execute(INSERT, ["dup-1", "svc-tx-dup", "other"])
        assert notes == []
        conn.commit()
    warnings = [m for code, m in notes if code == "01000"]
    assert len(warnings) == 1 and warnings[0].startswith("INSERT by leadline, row 1: event_id 'dup-1'"), notes
    assert ("00000", "appended 1, duplicates 1, conflicts 1, rejected 0") in notes
    assert stored(data, "svc-tx-dup") == ["dup-1", "dup-2"]


def test_rollback_discards_the_block(server, data):
    conn = psycopg2.connect(server.dsn())
    cur = conn.cursor()
    cur.execute(INSERT, ("rb-1", "svc-tx-rollback", "r1"))
    assert cur.rowcount == 1
    conn.rollback()
    cur.execute(INSERT, ("rb-2", "svc-tx-rollback", "r2"))
    cur.execute("ABORT")
    cur.execute(INSERT, ("rb-3", "svc-tx-rollback", "r3"))
    conn.commit()
    conn.close()
    assert stored(data, "svc-tx-rollback") == ["rb-3"]


def test_an_error_fails_the_block_until_rollback(server, data):
    with psycopg.connect(server.dsn()) as conn:
        conn.execute(INSERT, ["err-1", "svc-tx-error", "e1"])
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute("SELECT no_such_column FROM events")
        assert conn.info.transaction_status == INERROR
        for sql in ["SELECT 1", "SHOW timezone", "SET timezone = 'UTC'", "SAVEPOINT s"]:
            with pytest.raises(psycopg.errors.InFailedSqlTransaction):
                conn.execute(sql)
            assert conn.info.transaction_status == INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute(INSERT, ["err-2", "svc-tx-error", "e2"])
        conn.rollback()
        assert conn.info.transaction_status == IDLE
        assert conn.execute("SELECT 1").fetchone()[0] == 1
        conn.execute(INSERT, ["err-3", "svc-tx-error", "e3"])
        conn.commit()
    assert stored(data, "svc-tx-error") == ["err-3"]


def test_commit_of_a_failed_block_rolls_back(server, data):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute(INSERT, ["fc-1", "svc-tx-failed-commit", "f1"])
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / 0")
        cur = conn.execute("COMMIT")
        assert cur.statusmessage == "ROLLBACK"
        assert conn.info.transaction_status == IDLE
        # Outside a block: PostgreSQL's warnings, and each statement is durable at once.
        notes = notices_of(conn)
        conn.execute("COMMIT")
        conn.execute(INSERT, ["fc-2", "svc-tx-failed-commit", "f2"])
        assert stored(data, "svc-tx-failed-commit") == ["fc-2"]
        conn.execute("BEGIN")
        conn.execute("BEGIN")
        conn.execute("ROLLBACK")
        assert [n[0] for n in notes] == ["25P01", "25001"], notes
        with pytest.raises(psycopg.errors.NoActiveSqlTransaction):
            conn.execute("SAVEPOINT s")
        with pytest.raises(psycopg.errors.NoActiveSqlTransaction):
            conn.execute("ROLLBACK TO s")
    assert stored(data, "svc-tx-failed-commit") == ["fc-2"]


def test_a_commit_that_cannot_append_fails_the_block(server, data):
    import fcntl

    with psycopg.connect(server.dsn()) as conn:
        conn.execute(INSERT, ["lock-1", "svc-tx-locked", "l1"])
        with open(data / "LOCK", "a+") as lock:
            # Another writer (as `leadline ingest` would) holds the data directory;
            # this waits for the server to let go of it after its last append.
            fcntl.flock(lock, fcntl.LOCK_EX)
            with pytest.raises(psycopg.errors.ObjectInUse):
                conn.commit()
            fcntl.flock(lock, fcntl.LOCK_UN)
        assert conn.info.transaction_status == INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        conn.execute(INSERT, ["lock-2", "svc-tx-locked", "l2"])
        conn.commit()
    assert stored(data, "svc-tx-locked") == ["lock-2"]


def test_copy_in_a_block_and_a_bad_copy_fails_it(server, data):
    with psycopg.connect(server.dsn()) as conn:
        notes = notices_of(conn)
        with conn.cursor() as cur:
            with cur.copy("COPY events (event_id, event_type, occurred_at, service, commit_sha) FROM STDIN (FORMAT csv)") as cp:
                cp.write("cp-1,commit,2026-04-02T10:00:00Z,svc-tx-copy,c1\n")
                cp.write("cp-2,bogus,2026-04-02T10:01:00Z,svc-tx-copy,c2\n")
            assert cur.rowcount == 1, "valid rows held"
        # The invalid row is reported at its statement, not at COMMIT.
        assert any(m.startswith("line 2: event_type") for _, m in notes), notes
        conn.commit()
        assert not any("line 2" in m for _, m in notes[1:]), notes
    assert stored(data, "svc-tx-copy") == ["cp-1"]
    rejected = query_json(data, "SELECT source, line FROM rejected_events WHERE raw LIKE '%cp-2%'")
    assert rejected == [{"source": "COPY by leadline", "line": 2}]

    with psycopg.connect(server.dsn()) as conn:
        conn.execute(INSERT, ["cp-3", "svc-tx-copy", "c3"])
        with pytest.raises(psycopg.errors.BadCopyFileFormat):
            with conn.cursor().copy("COPY events FROM STDIN (FORMAT binary)") as cp:
                cp.write(b"not a binary copy header at all")
        assert conn.info.transaction_status == INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
    assert stored(data, "svc-tx-copy") == ["cp-1"]


def test_a_block_reads_one_snapshot(server, data):
    count = "SELECT count(*) FROM events WHERE service = 'svc-tx-snapshot'"
    deployments = "SELECT count(*) FROM deployments"
    with psycopg.connect(server.dsn()) as mine, psycopg.connect(server.dsn(), autocommit=True) as other:
        assert mine.execute(count).fetchone()[0] == 0
        seen = mine.execute(deployments).fetchone()[0]
        other.execute(INSERT, ["snap-1", "svc-tx-snapshot", "s1"])
        other.execute("INSERT INTO events (event_id, event_type, occurred_at, service, environment, deployment_id, change_ids) "
                      "VALUES ('snap-d', 'deployment_succeeded', '2026-04-01T11:00:00Z', 'svc-tx-snapshot', 'production', "
                      "'snap-dep', '{s1}')")
        assert other.execute(count).fetchone()[0] == 2
        assert mine.execute(count).fetchone()[0] == 0, "another connection's commit is invisible to my block"
        assert mine.execute(deployments).fetchone()[0] == seen
        mine.commit()
        assert mine.execute(count).fetchone()[0] == 2
        assert mine.execute(deployments).fetchone()[0] == seen + 1
        mine.rollback()


def test_savepoints_psycopg_nested_transactions(server, data):
    with psycopg.connect(server.dsn()) as conn:
        conn.execute(INSERT, ["sp-1", "svc-tx-savepoint", "p1"])
        with conn.transaction():
            conn.execute(INSERT, ["sp-2", "svc-tx-savepoint", "p2"])
            with pytest.raises(psycopg.errors.UndefinedColumn):
                with conn.transaction():  # SAVEPOINT, then ROLLBACK TO it and RELEASE
                    conn.execute(INSERT, ["sp-3", "svc-tx-savepoint", "p3"])
                    conn.execute("SELECT nope FROM events")
            assert conn.info.transaction_status == INTRANS, "ROLLBACK TO recovered the block"
            conn.execute(INSERT, ["sp-4", "svc-tx-savepoint", "p4"])
        # The same over the extended protocol (prepared statements).
        conn.execute("SAVEPOINT x", prepare=True)
        conn.execute(INSERT, ["sp-5", "svc-tx-savepoint", "p5"])
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute("SELECT nope FROM events", prepare=True)
        with pytest.raises(psycopg.errors.InvalidSavepointSpecification):
            conn.execute("ROLLBACK TO SAVEPOINT no_such_savepoint", prepare=True)
        assert conn.info.transaction_status == INERROR
        conn.execute("ROLLBACK TO SAVEPOINT x", prepare=True)
        assert conn.info.transaction_status == INTRANS
        conn.execute("RELEASE SAVEPOINT x", prepare=True)
        conn.commit()
    assert stored(data, "svc-tx-savepoint") == ["sp-1", "sp-2", "sp-4"]


def test_asyncpg_transactions(server, data):
    import asyncpg

    sql = ("INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) "
           "VALUES ($1, 'commit', '2026-04-07T10:00:00Z', 'svc-tx-asyncpg', $2)")

    async def run():
        c = await asyncpg.connect(server.dsn())
        async with c.transaction():
            await c.execute(sql, "apg-1", "a1")
            assert c.is_in_transaction()
            try:
                async with c.transaction():  # a savepoint
                    await c.execute(sql, "apg-2", "a2")
                    await c.execute("SELECT 1 / 0")
            except asyncpg.DivisionByZeroError:
                pass
            await c.execute(sql, "apg-3", "a3")
        assert not c.is_in_transaction()
        try:
            async with c.transaction():
                await c.execute(sql, "apg-4", "a4")
                raise RuntimeError("the block rolls back")
        except RuntimeError:
            pass
        n = await c.fetchval("SELECT count(*) FROM events WHERE service = 'svc-tx-asyncpg'")
        await c.close()
        return n

    assert asyncio.run(run()) == 2
    assert stored(data, "svc-tx-asyncpg") == ["apg-1", "apg-3"]


def test_a_dropped_connection_discards_its_block(server, data, tmp_path):
    conn = psycopg.connect(server.dsn())
    conn.execute(INSERT, ["drop-1", "svc-tx-drop", "d1"])
    conn.close()  # Terminate, no COMMIT
    script = tmp_path / "client.py"
    script.write_text(
        "import os, sys, psycopg\n"
        "conn = psycopg.connect(sys.argv[1])\n"
        f"conn.execute({INSERT!r}, ['drop-2', 'svc-tx-drop', 'd2'])\n"
        "print('held', flush=True)\n"
        "os._exit(0)  # the socket just closes\n"
    )
    out = subprocess.run([sys.executable, str(script), server.dsn()], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "held", out.stderr
    with psycopg.connect(server.dsn()) as other:
        other.execute(INSERT, ["drop-3", "svc-tx-drop", "d3"])
    assert stored(data, "svc-tx-drop") == ["drop-3"]


def test_the_rows_a_block_holds_are_bounded(data):
    s = Server(data, "--write-buffer-mb", 1)
    try:
        values = ", ".join(f"('lim-{i}', 'commit', '2026-04-03T10:00:00Z', 'svc-tx-limit', '{'x' * 40}{i}')" for i in range(2000))
        insert = f"INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) VALUES {values}"
        with psycopg.connect(s.dsn()) as conn:
            statements = 0
            with pytest.raises(psycopg.errors.ProgramLimitExceeded) as e:
                for statements in range(1, 100):
                    conn.execute(insert)
            assert statements > 1 and "COMMIT" in str(e.value.diag.message_hint)
            assert conn.info.transaction_status == INERROR
            with pytest.raises(psycopg.errors.InFailedSqlTransaction):
                conn.execute("SELECT 1")
            conn.rollback()
            # Outside a block the same limit bounds one COPY.
            conn.autocommit = True
            with pytest.raises(psycopg.errors.ProgramLimitExceeded):
                with conn.cursor().copy("COPY events (event_id, event_type, occurred_at, service, commit_sha) FROM STDIN") as cp:
                    for i in range(30000):
                        cp.write(f"limc-{i}\tcommit\t2026-04-03T10:00:00Z\tsvc-tx-limit\t{'y' * 40}\n")
            assert conn.execute("SELECT 1").fetchone()[0] == 1
        assert stored(data, "svc-tx-limit") == []
    finally:
        s.stop()


def test_read_only_users_cannot_write_in_a_block(data, tmp_path):
    s = Server(data, "--config", config_with_users(tmp_path))
    try:
        with psycopg.connect(s.dsn("reader", "readonly")) as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] > 0
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(INSERT, ["ro-1", "svc-tx-read-only", "r1"])
            assert conn.info.transaction_status == INERROR
            conn.rollback()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with conn.cursor().copy("COPY events FROM STDIN") as cp:
                    cp.write("x\n")
            conn.rollback()
        assert stored(data, "svc-tx-read-only") == []
    finally:
        s.stop()


def test_views_in_a_block_take_effect_at_once(server):
    with psycopg.connect(server.dsn()) as conn:
        notes = notices_of(conn)
        conn.execute("CREATE VIEW tx_view AS SELECT 1 AS one")
        assert any("not transactional" in m for _, m in notes), notes
        conn.rollback()
        assert conn.execute("SELECT one FROM tx_view").fetchone()[0] == 1
        conn.execute("DROP VIEW tx_view")
        conn.commit()


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql missing (scripts/test installs postgresql-client)")
def test_a_multi_statement_query_is_one_implicit_block(server, data):
    def psql(sql):
        return subprocess.run(["psql", server.dsn(), "-X", "-c", sql], capture_output=True, text=True, timeout=60)

    row = "('{0}', 'commit', '2026-04-04T10:00:00Z', 'svc-tx-implicit', '{0}')"
    insert = "INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) VALUES " + row
    before = commits(data)
    out = psql(f"{insert.format('imp-1')}; {insert.format('imp-2')}; SELECT 1")
    assert out.returncode == 0, out.stderr
    assert len(commits(data)) == len(before) + 1, "both INSERTs in one commit"
    out = psql(f"{insert.format('imp-3')}; SELECT no_such_column FROM events")
    assert "no_such_column" in out.stderr
    out = psql(f"{insert.format('imp-4')}; COMMIT; {insert.format('imp-5')}; SELECT 1 / 0")
    assert "25P01" in out.stderr or "no transaction in progress" in out.stderr
    out = psql(f"BEGIN; {insert.format('imp-6')}")  # the block outlives the query; the session ends it
    assert out.returncode == 0, out.stderr
    assert stored(data, "svc-tx-implicit") == ["imp-1", "imp-2", "imp-4"]


JAVA = r"""
import java.sql.*;

public class Tx {
    public static void main(String[] a) throws Exception {
        Connection c = DriverManager.getConnection(a[0], "leadline", "");
        c.setAutoCommit(false);
        String sql = "INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) VALUES (?, 'commit', '2026-04-05T10:00:00Z', 'svc-tx-jdbc', ?)";
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            for (int i = 1; i <= 3; i++) { ps.setString(1, "jdbc-" + i); ps.setString(2, "j" + i); ps.addBatch(); }
            ps.executeBatch();
            Savepoint sp = c.setSavepoint("before_four");
            ps.setString(1, "jdbc-4"); ps.setString(2, "j4"); ps.executeUpdate();
            c.rollback(sp);
            c.releaseSavepoint(sp);
            c.commit();
            ps.setString(1, "jdbc-5"); ps.setString(2, "j5"); ps.executeUpdate();
            try (Statement st = c.createStatement()) { st.executeQuery("SELECT no_such_column FROM events"); }
            catch (SQLException e) { System.out.println("error " + e.getSQLState()); }
            try (Statement st = c.createStatement()) { st.executeQuery("SELECT 1"); }
            catch (SQLException e) { System.out.println("then " + e.getSQLState()); }
            c.rollback();
        }
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM events WHERE service = 'svc-tx-jdbc'")) {
            rs.next();
            System.out.println("count " + rs.getLong(1));
        }
        c.close();
    }
}
"""


def jdbc_jar():
    for p in ["/usr/share/java/postgresql.jar", "/usr/share/java/postgresql-jdbc4.jar"]:
        if shutil.os.path.exists(p):
            return p
    return None


@pytest.mark.skipif(shutil.which("javac") is None or jdbc_jar() is None, reason="JDK or libpostgresql-jdbc-java missing")
def test_pgjdbc_batch_savepoint_and_rollback(server, data, tmp_path):
    src = tmp_path / "Tx.java"
    src.write_text(JAVA)
    jar = jdbc_jar()
    subprocess.run(["javac", "-cp", jar, "-d", str(tmp_path), str(src)], check=True, capture_output=True)
    url = f"jdbc:postgresql://127.0.0.1:{server.port}/leadline"
    out = subprocess.run(["java", "-cp", f"{jar}:{tmp_path}", "Tx", url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["error 42703", "then 25P02", "count 3"], out.stdout
    assert stored(data, "svc-tx-jdbc") == ["jdbc-1", "jdbc-2", "jdbc-3"]


NODE = r"""
const { Client } = require('pg');
(async () => {
  const c = new Client({ connectionString: process.argv[2] });
  await c.connect();
  const sql = "INSERT INTO events (event_id, event_type, occurred_at, service, commit_sha) VALUES ($1, 'commit', '2026-04-06T10:00:00Z', 'svc-tx-node', $2)";
  await c.query('BEGIN');
  await c.query(sql, ['node-1', 'n1']);
  await c.query('ROLLBACK');
  await c.query('BEGIN');
  await c.query(sql, ['node-2', 'n2']);
  let failed = null;
  try { await c.query('SELECT 1 / 0'); } catch (e) { failed = e.code; }
  let then = null;
  try { await c.query(sql, ['node-3', 'n3']); } catch (e) { then = e.code; }
  const ended = (await c.query('COMMIT')).command;
  await c.query('BEGIN');
  await c.query(sql, ['node-4', 'n4']);
  await c.query('COMMIT');
  const n = (await c.query("SELECT count(*)::bigint AS n FROM events WHERE service = 'svc-tx-node'")).rows[0].n;
  await c.end();
  console.log(JSON.stringify({ failed, then, ended, n }));
})().catch((e) => { console.error(e); process.exit(1); });
"""


@pytest.mark.skipif(node_package("pg") is None, reason="node or the pg package missing")
def test_node_postgres_blocks(server, data, tmp_path):
    got = run_node(NODE, server.dsn(), tmp_path, "pg")
    assert got == {"failed": "22012", "then": "25P02", "ended": "ROLLBACK", "n": "1"}
    assert stored(data, "svc-tx-node") == ["node-4"]
