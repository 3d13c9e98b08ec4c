"""Real PostgreSQL clients against `leadline serve`: psycopg 3 and 2, asyncpg,
SQLAlchemy + pandas, psql, pgjdbc and node-postgres. Each asserts real
answers: our tables listed, columns typed, values equal to `leadline query`."""
import asyncio
import datetime as dt
import os
import shutil
import subprocess

import pytest

from leadline_pg import node_package, query_json, run_node

EVENT_COLUMNS = [
    "event_id", "event_type", "occurred_at", "service", "environment", "commit_sha", "deployment_id",
    "incident_id", "change_ids", "team", "source", "attributes", "schema_version", "ingested_at",
]
DORA_SQL = (
    "SELECT service, environment, bucket_start, deployments, deployment_frequency, change_failure_rate, "
    "deployment_frequency_tier FROM dora_metrics('week') ORDER BY service, environment, bucket_start"
)


def expected_dora(data):
    return query_json(data, DORA_SQL)


def test_psycopg3_types_text_and_binary(server, data):
    import psycopg

    with psycopg.connect(server.dsn()) as conn:
        assert conn.info.server_version >= 160000
        n = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        assert n == query_json(data, "SELECT count(*) AS n FROM events")[0]["n"]
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            cur.execute(
                "SELECT CAST(42 AS BIGINT) AS i8, CAST(7 AS INT) AS i4, CAST(3 AS SMALLINT) AS i2, 1.5::double AS f8, "
                "true AS b, 'x' AS t, NULL AS n, CAST('2026-03-02T09:00:00Z' AS TIMESTAMP WITH TIME ZONE) AS ts, "
                "INTERVAL '1 day 2 hours' AS iv, make_array('a', 'b c') AS arr"
            )
            row = cur.fetchone()
            names = [d.name for d in cur.description]
            assert names == ["i8", "i4", "i2", "f8", "b", "t", "n", "ts", "iv", "arr"]
            assert row[:7] == (42, 7, 3, 1.5, True, "x", None)
            assert row[7] == dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
            assert row[8] == dt.timedelta(days=1, hours=2)
            assert row[9] == ["a", "b c"]
        # A bound parameter (extended protocol), typed by inference.
        got = conn.execute("SELECT count(*) FROM events WHERE event_type = %s", ["commit"]).fetchone()[0]
        want = query_json(data, "SELECT count(*) AS n FROM events WHERE event_type = 'commit'")[0]["n"]
        assert got == want
        rows = conn.execute("SELECT event_id, change_ids FROM events WHERE change_ids IS NOT NULL LIMIT 3").fetchall()
        assert rows and all(isinstance(r[1], list) for r in rows)


def test_psycopg3_dora_metrics_equal_in_process(server, data):
    import psycopg

    with psycopg.connect(server.dsn()) as conn:
        rows = conn.execute(DORA_SQL).fetchall()
    want = expected_dora(data)
    assert len(rows) == len(want) > 0
    for got, exp in zip(rows, want):
        assert got[0] == exp["service"] and got[1] == exp["environment"]
        assert got[3] == exp["deployments"]
        assert got[4] == pytest.approx(exp["deployment_frequency"])
        if exp["change_failure_rate"] is None:
            assert got[5] is None
        else:
            assert got[5] == pytest.approx(exp["change_failure_rate"])
        assert got[6] == exp["deployment_frequency_tier"]


def test_server_side_cursors_declare_fetch(server, data):
    import psycopg
    import psycopg2

    total = query_json(data, "SELECT count(*) AS n FROM events")[0]["n"]
    with psycopg.connect(server.dsn()) as conn:
        with conn.cursor(name="c1") as cur:  # DECLARE … CURSOR, then FETCH FORWARD n
            cur.itersize = 1000
            cur.execute("SELECT event_id, occurred_at FROM events ORDER BY event_id")
            first = cur.fetchmany(150)
            assert len(first) == 150 and first[0][0] < first[-1][0]
            rest = cur.fetchall()
            assert len(first) + len(rest) == total
    conn2 = psycopg2.connect(server.dsn())
    with conn2.cursor(name="c2") as cur:
        cur.itersize = 500
        cur.execute("SELECT event_id FROM events")
        assert sum(1 for _ in cur) == total
    conn2.close()
    # Execute(max_rows) portal suspension: asyncpg cursors fetch in chunks.
    import asyncpg

    async def run():
        c = await asyncpg.connect(server.dsn())
        async with c.transaction():
            n = 0
            async for _ in c.cursor("SELECT event_id FROM events", prefetch=700):
                n += 1
        await c.close()
        return n

    assert asyncio.run(run()) == total


def test_demo_loads_the_sample_once_and_serves(tmp_path):
    import psycopg

    from leadline_pg import binary
    import re as _re

    d = tmp_path / "demo"
    counts = []
    for _ in range(2):
        p = subprocess.Popen([str(binary()), "demo", "--data", str(d), "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
        try:
            port = None
            lines = []
            for line in p.stdout:
                lines.append(line)
                m = _re.search(r'psql "postgresql://leadline@127\.0\.0\.1:(\d+)/leadline"', line)
                if m:
                    port = int(m.group(1))
                    break
            assert port, lines
            with psycopg.connect(f"postgresql://leadline@127.0.0.1:{port}/leadline") as conn:
                counts.append(conn.execute("SELECT count(*) FROM events").fetchone()[0])
                assert conn.execute("SELECT count(*) FROM dora_metrics('week')").fetchone()[0] > 0
        finally:
            p.terminate()
            p.wait(10)
    assert counts[0] == counts[1] > 10000


def test_psycopg2_and_session_statements(server, data):
    import psycopg2

    conn = psycopg2.connect(server.dsn())
    cur = conn.cursor()
    cur.execute("SELECT version()")
    assert cur.fetchone()[0].startswith("PostgreSQL 16")
    for stmt in [
        "SET extra_float_digits = 3", "SET application_name = 'x'", "SET TIME ZONE 'UTC'", "SET search_path TO public",
        "SET DateStyle = 'ISO, MDY'", "DISCARD ALL", "RESET ALL", "UNLISTEN *", "CLOSE ALL", "DEALLOCATE ALL",
    ]:
        cur.execute(stmt)
    for name, want in [("server_version", "16.6"), ("standard_conforming_strings", "on"), ("timezone", "UTC"),
                       ("transaction isolation level", "repeatable read"), ("client_encoding", "UTF8")]:
        cur.execute(f"SHOW {name}")
        assert cur.fetchone()[0] == want
    cur.execute("SELECT current_schema(), current_database(), current_user, pg_backend_pid() > 0")
    assert cur.fetchone() == ("public", "leadline", "leadline", True)
    cur.execute("SELECT count(*) FROM deployments WHERE status = %s", ("succeeded",))
    got = cur.fetchone()[0]
    assert got == query_json(data, "SELECT count(*) AS n FROM deployments WHERE status = 'succeeded'")[0]["n"]
    conn.commit()
    conn.close()


def test_time_travel_settings(server, data):
    import psycopg

    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        total = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        conn.execute("SET leadline.as_of = '2000-01-01T00:00:00Z'")
        assert conn.execute("SHOW leadline.as_of").fetchone()[0] == "2000-01-01T00:00:00Z"
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0
        conn.execute("RESET leadline.as_of")
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == total
        conn.execute("SET leadline.attribution_window = 'unbounded'")
        assert conn.execute("SHOW leadline.attribution_window").fetchone()[0] == "unbounded"


def test_asyncpg_prepared_and_pool(server, data):
    import asyncpg

    async def run():
        pool = await asyncpg.create_pool(server.dsn(), min_size=1, max_size=2)
        async with pool.acquire() as c:
            stmt = await c.prepare("SELECT count(*) FROM events WHERE schema_version >= $1")
            assert await stmt.fetchval(1) == query_json(data, "SELECT count(*) AS n FROM events")[0]["n"]
            row = await c.fetchrow("select 1::int4, now(), '1 day'::interval, 1.5::numeric")
            assert row[0] == 1 and row[2] == dt.timedelta(days=1) and float(row[3]) == 1.5
            assert isinstance(row[1], dt.datetime)
            rows = await c.fetch("SELECT deployment_id, finished_at FROM deployments ORDER BY deployment_id LIMIT 5")
            assert len(rows) == 5 and isinstance(rows[0]["finished_at"], (dt.datetime, type(None)))
        async with pool.acquire() as c:  # pool release ran RESET ALL etc. in between
            assert await c.fetchval("SELECT 2") == 2
        await pool.close()

    asyncio.run(run())


def test_sqlalchemy_inspect_and_pandas(server, data):
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(server.dsn().replace("postgresql://", "postgresql+psycopg2://"))
    insp = sa.inspect(engine)
    assert "public" in insp.get_schema_names()
    tables = insp.get_table_names()
    for t in ["events", "rejected_events", "deployments", "changes", "incidents"]:
        assert t in tables
    assert insp.has_table("events")
    cols = {c["name"]: c for c in insp.get_columns("events")}
    assert list(cols) == EVENT_COLUMNS
    assert isinstance(cols["occurred_at"]["type"], sa.types.TIMESTAMP) and cols["occurred_at"]["type"].timezone
    assert isinstance(cols["schema_version"]["type"], sa.types.SmallInteger)
    assert isinstance(cols["change_ids"]["type"], sa.types.ARRAY)
    assert cols["event_id"]["nullable"] is False and cols["team"]["nullable"] is True
    assert insp.get_pk_constraint("events")["constrained_columns"] == []
    assert insp.get_indexes("events") == []
    with engine.connect() as conn:
        df = pd.read_sql("SELECT event_type, count(*) AS n FROM events GROUP BY event_type ORDER BY event_type", conn)
    want = query_json(data, "SELECT event_type, count(*) AS n FROM events GROUP BY event_type ORDER BY event_type")
    assert df.to_dict("records") == want
    with engine.connect() as conn:
        df = pd.read_sql_table("deployments", conn)
    assert len(df) == query_json(data, "SELECT count(*) AS n FROM deployments")[0]["n"]
    assert "recovery_time" in df.columns


def psql(server, *commands):
    args = ["psql", server.dsn(), "-X", "-v", "ON_ERROR_STOP=1"]
    for c in commands:
        args += ["-c", c]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql missing (scripts/test installs postgresql-client)")
def test_psql_meta_commands(server):
    out = psql(server, r"\l")
    assert "leadline" in out and "UTF8" in out
    out = psql(server, r"\dn")
    assert "public" in out
    out = psql(server, r"\dt")
    for t in ["events", "rejected_events", "deployments", "changes", "incidents"]:
        assert f" {t} " in out
    out = psql(server, r"\d")
    assert "events" in out and "table" in out
    out = psql(server, r"\d events")
    assert 'Table "public.events"' in out
    assert "occurred_at" in out and "timestamp with time zone" in out
    assert "change_ids" in out and "text[]" in out
    assert "schema_version" in out and "smallint" in out and "not null" in out


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql missing")
def test_psql_more_meta_commands(server):
    out = psql(server, r"\d+ events")
    assert "ingested_at" in out and "extended" in out
    out = psql(server, r"\dt+")
    assert " events " in out and "permanent" in out
    out = psql(server, r"\l+")
    assert "leadline" in out and "pg_default" in out
    out = psql(server, r"\du")
    assert "leadline" in out
    psql(server, r"\df", r"\dv", r"\di", r"\dx", r"\dT")


JAVA = r"""
import java.sql.*;
import java.util.*;

public class Meta {
    public static void main(String[] a) throws Exception {
        Connection c = DriverManager.getConnection(a[0], "leadline", "");
        DatabaseMetaData md = c.getMetaData();
        List<String> out = new ArrayList<>();
        try (ResultSet rs = md.getSchemas()) { while (rs.next()) out.add("schema " + rs.getString("TABLE_SCHEM")); }
        try (ResultSet rs = md.getTables(null, "public", "%", new String[]{"TABLE"})) {
            while (rs.next()) out.add("table " + rs.getString("TABLE_NAME"));
        }
        try (ResultSet rs = md.getColumns(null, "public", "events", "%")) {
            while (rs.next()) out.add("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME") + " " + rs.getInt("DATA_TYPE"));
        }
        try (ResultSet rs = md.getPrimaryKeys(null, "public", "events")) { while (rs.next()) out.add("pk " + rs.getString("COLUMN_NAME")); }
        try (PreparedStatement ps = c.prepareStatement("select count(*) from events where schema_version >= ?")) {
            for (int i = 0; i < 7; i++) { ps.setInt(1, 1); try (ResultSet rs = ps.executeQuery()) { rs.next(); out.add("count " + rs.getLong(1)); } }
        }
        c.setAutoCommit(false);
        try (Statement st = c.createStatement()) {
            st.setFetchSize(100);
            long n = 0;
            try (ResultSet rs = st.executeQuery("select event_id, occurred_at from events")) { while (rs.next()) n++; }
            out.add("fetched " + n);
        }
        c.commit();
        c.close();
        for (String s : out) System.out.println(s);
    }
}
"""


def jdbc_jar():
    for p in ["/usr/share/java/postgresql.jar", "/usr/share/java/postgresql-jdbc4.jar"]:
        if os.path.exists(p):
            return p
    return None


@pytest.mark.skipif(shutil.which("javac") is None or jdbc_jar() is None, reason="JDK or libpostgresql-jdbc-java missing")
def test_pgjdbc_database_metadata(server, data, tmp_path):
    src = tmp_path / "Meta.java"
    src.write_text(JAVA)
    jar = jdbc_jar()
    subprocess.run(["javac", "-cp", jar, "-d", str(tmp_path), str(src)], check=True, capture_output=True)
    url = f"jdbc:postgresql://127.0.0.1:{server.port}/leadline"
    out = subprocess.run(["java", "-cp", f"{jar}:{tmp_path}", "Meta", url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "schema public" in lines
    for t in ["events", "deployments", "changes", "incidents"]:
        assert f"table {t}" in lines
    cols = [l for l in lines if l.startswith("column ")]
    assert [c.split()[1] for c in cols] == EVENT_COLUMNS
    assert "column occurred_at timestamptz 93" in lines
    assert "column schema_version int2 5" in lines
    assert not [l for l in lines if l.startswith("pk ")]
    total = query_json(data, "SELECT count(*) AS n FROM events")[0]["n"]
    assert lines.count(f"count {total}") == 7
    assert f"fetched {total}" in lines


NODE = r"""
const { Client } = require('pg');
(async () => {
  const c = new Client({ connectionString: process.argv[2] });
  await c.connect();
  const r = await c.query('SELECT count(*)::bigint AS n FROM events WHERE event_type = $1', ['commit']);
  const t = await c.query("SELECT true AS b, 1.5::double AS f, CAST('2026-03-02T09:00:00Z' AS TIMESTAMP WITH TIME ZONE) AS ts, make_array('a','b') AS arr, NULL AS z");
  const tables = await c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1");
  console.log(JSON.stringify({ n: r.rows[0].n, row: t.rows[0], ts: t.rows[0].ts.toISOString(), tables: tables.rows.map(x => x.table_name) }));
  await c.end();
})().catch(e => { console.error(e); process.exit(1); });
"""


@pytest.mark.skipif(node_package("pg") is None, reason="node or the pg package missing")
def test_node_postgres(server, data, tmp_path):
    got = run_node(NODE, server.dsn(), tmp_path, "pg")
    want = query_json(data, "SELECT count(*) AS n FROM events WHERE event_type = 'commit'")[0]["n"]
    assert int(got["n"]) == want
    assert got["row"]["b"] is True and got["row"]["f"] == 1.5 and got["row"]["arr"] == ["a", "b"] and got["row"]["z"] is None
    assert got["ts"] == "2026-03-02T09:00:00.000Z"
    assert {"events", "deployments", "incidents"} <= set(got["tables"])
