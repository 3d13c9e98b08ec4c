"""The PostgreSQL dialect BI tools and drivers send, through real clients
against `leadline serve`: Grafana's and Metabase's statements replayed with
psycopg 3 (extended protocol, binary results), postgres.js with untyped
`LIMIT $n`, and pgcli's completion queries. Values are checked against
`leadline query`."""
import pathlib
import re

import pytest

from leadline_pg import node_package, query_json, run_node

CORPUS = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "pg-corpus"

# Statements of the corpus that PostgreSQL itself answers only with an
# extension.
NOT_YET = {
    "time_bucket(": "TimescaleDB's function: PostgreSQL without the extension fails too",
}


def corpus_statements(name):
    """The statements of a corpus file: comments dropped, split at a `;` ending a line."""
    text = (CORPUS / name).read_text()
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


@pytest.mark.parametrize("name", ["grafana.sql", "metabase.sql"])
def test_corpus_replays_over_extended_protocol_with_binary_results(server, name):
    import psycopg

    statements = corpus_statements(name)
    assert len(statements) > 10
    failures = []
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for sql in statements:
            if any(marker in sql for marker in NOT_YET):
                continue
            session = sql.split()[0].lower() in ("set", "show")
            try:
                cur = conn.cursor(binary=True)
                if session:
                    cur.execute(sql)
                else:
                    cur.execute(sql, prepare=True)
                if cur.description:
                    cur.fetchall()
            except psycopg.Error as e:
                failures.append(f"{e.sqlstate}: {str(e).splitlines()[0]}\n  {sql[:200]}")
    assert not failures, "\n".join(failures)


def test_table_functions_resolve_like_tables(server, data):
    import psycopg

    want = query_json(data, "SELECT count(*) AS n FROM dora_metrics('week')")[0]["n"]
    with psycopg.connect(server.dsn()) as conn:
        for relation in ["DORA_METRICS('week')", "\"dora_metrics\"('week')", "public.dora_metrics('week')",
                         "leadline.public.dora_metrics('week')", "Public.Dora_Metrics('week')"]:
            got = conn.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
            assert got == want, relation
        quality = query_json(data, "SELECT count(*) AS n FROM dora_quality")[0]["n"]
        assert conn.execute("SELECT count(*) FROM PUBLIC.DORA_QUALITY()").fetchone()[0] == quality
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SELECT * FROM no_such_function('week')")
        assert e.value.sqlstate == "42883"
        conn.rollback()
        with pytest.raises(psycopg.Error) as e:
            conn.execute("SELECT * FROM \"DORA_METRICS\"('week')")
        assert e.value.sqlstate == "42883"


def test_dialect_functions(server, data):
    import datetime as dt

    import psycopg

    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        row = conn.execute("SELECT CURRENT_SCHEMA, CURRENT_ROLE, SESSION_USER, CURRENT_USER").fetchone()
        assert row == ("public", "leadline", "leadline", "leadline")
        assert conn.execute("SELECT '{r,p}'::text[]").fetchone()[0] == ["r", "p"]
        relations = {r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relkind = ANY('{r,p}'::text[])")}
        assert {"events", "deployments"} <= relations
        assert conn.execute("SELECT format('%s|%I|%L|%%|%1$s', 'a', 'B c', 'it''s')").fetchone()[0] == 'a|"B c"|\'it\'\'s\'|%|a'
        assert conn.execute("SELECT parse_ident('public.\"My T\"')").fetchone()[0] == ["public", "My T"]
        assert conn.execute("SELECT pg_is_other_temp_schema(2200)").fetchone()[0] is False
        oid = conn.execute("SELECT CAST(CAST(FORMAT('%I.%I', 'public', 'deployments') AS REGCLASS) AS OID)").fetchone()[0]
        assert oid == conn.execute("SELECT oid FROM pg_class WHERE relname = 'deployments'").fetchone()[0]
        assert conn.execute(
            "SELECT TO_TIMESTAMP('2026-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US')").fetchone()[0] == \
            dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
        assert conn.execute("SELECT to_date('05 Dec 2000', 'DD Mon YYYY')").fetchone()[0] == dt.date(2000, 12, 5)
        assert conn.execute(
            "SELECT to_char(CAST('2026-03-02T21:05:00Z' AS TIMESTAMP WITH TIME ZONE), 'Dy DD Mon YYYY HH12:MI AM IYYY-IW TZ')"
        ).fetchone()[0] == "Mon 02 Mar 2026 09:05 PM 2026-10 UTC"
        assert [r[0] for r in conn.execute(
            "SELECT i FROM generate_series(array_lower(make_array(7, 8, 9), 1), array_upper(make_array(7, 8, 9), 1)) i"
        )] == [1, 2, 3]
        assert conn.execute("SELECT count(*) FROM pg_type WHERE typreceive != 0 AND typreceive::TEXT != 'array_recv'"
                            ).fetchone()[0] > 10
        assert {r[0] for r in conn.execute("SELECT lanname FROM pg_language")} >= {"internal", "sql"}
        # Values through the dialect match `leadline query`.
        want = query_json(data, "SELECT count(*) AS n FROM deployments WHERE finished_at >= "
                                "CAST('2026-06-01T00:00:00Z' AS TIMESTAMP WITH TIME ZONE)")[0]["n"]
        got = conn.execute("SELECT count(*) FROM deployments WHERE finished_at >= "
                           "TO_TIMESTAMP('2026-06-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US')").fetchone()[0]
        assert got == want
        for sql, state in [("SELECT to_timestamp('not a date', 'YYYY-MM-DD')", "22007"),
                           ("SELECT to_date('2026-02-30', 'YYYY-MM-DD')", "22008"),
                           ("SELECT format('%I', NULL)", "22004"),
                           ("SELECT parse_ident('a.')", "22023"),
                           ("SELECT CAST('no_such_table' AS REGCLASS)", "42P01"),
                           ("SELECT '{a,'::text[]", "22P02")]:
            with pytest.raises(psycopg.Error) as e:
                conn.execute(sql)
            assert e.value.sqlstate == state, sql


def test_untyped_parameters_take_their_type_from_context(server, data):
    import psycopg

    with psycopg.connect(server.dsn()) as conn:
        # psycopg sends strings untyped (oid 0): the server types them.
        rows = conn.execute("SELECT event_id FROM events ORDER BY event_id LIMIT %s OFFSET %s", ["3", "1"]).fetchall()
        want = query_json(data, "SELECT event_id FROM events ORDER BY event_id LIMIT 3 OFFSET 1")
        assert [r[0] for r in rows] == [w["event_id"] for w in want]
        got = {r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relkind = ANY(%s)", ["{r,p,f}"])}
        assert {"events", "deployments"} <= got


POSTGRES_JS = r"""
const postgres = require('postgres');
(async () => {
  const sql = postgres(process.argv[2], { max: 1 });
  const n = 4;
  const rows = await sql`SELECT event_id FROM events ORDER BY event_id LIMIT ${n}`;
  const dora = await sql`SELECT count(*)::bigint AS n FROM DORA_METRICS('week') LIMIT ${1}`;
  console.log(JSON.stringify({ ids: rows.map(r => r.event_id), dora: String(dora[0].n) }));
  await sql.end();
})().catch(e => { console.error(e); process.exit(1); });
"""


@pytest.mark.skipif(node_package("postgres") is None, reason="node or the postgres package missing")
def test_postgres_js_limit_parameter(server, data, tmp_path):
    got = run_node(POSTGRES_JS, server.dsn(), tmp_path, "postgres")
    want = query_json(data, "SELECT event_id FROM events ORDER BY event_id LIMIT 4")
    assert got["ids"] == [w["event_id"] for w in want]
    assert int(got["dora"]) == query_json(data, "SELECT count(*) AS n FROM dora_metrics('week')")[0]["n"]


def test_pgcli_completion_metadata(server, data):
    pgexecute = pytest.importorskip("pgcli.pgexecute")
    ex = pgexecute.PGExecute(dsn=server.dsn())
    tables = {t for _, t in ex.tables()}
    want = {r["table_name"] for r in query_json(
        data, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"events", "deployments", "changes", "incidents"} <= tables
    assert tables <= want | {"dora_quality"}
    columns = {(t, c) for _, t, c, *_ in ex.table_columns()}
    assert ("deployments", "service") in columns and ("events", "event_id") in columns
    functions = {f.func_name: f for f in ex.functions()}
    assert {"dora_metrics", "dora_quality", "lead_time", "dora_tier"} <= set(functions)
    assert list(functions["dora_metrics"].arg_types) == ["text", "timestamptz", "timestamptz"]
    assert functions["dora_metrics"].is_set_returning
    assert "public" in set(ex.schemata())
