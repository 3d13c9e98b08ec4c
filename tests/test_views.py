"""Views through real clients: CREATE [OR REPLACE] [TEMP] VIEW and DROP VIEW
over psycopg, seen by other connections, by `leadline query` and in the
catalog (pg_class, pg_views, information_schema, psql's \\dv), and a dbt
project whose view model is saved over `dora_metrics`."""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import psycopg
import pytest

from leadline_pg import Server, query_json
from test_pg_safety import config_with_users

WEEKLY = "SELECT service, environment, bucket_start, deployments, lead_time_tier FROM dora_metrics('week')"
ORDER = " ORDER BY service, environment, bucket_start"


def connect(server, **kw):
    return psycopg.connect(server.dsn(**kw), autocommit=True)


def test_a_view_is_seen_by_other_connections_and_by_leadline_query(server, data):
    with connect(server) as a, connect(server) as b:
        b.execute("SELECT 1")  # b's session exists before the view does
        a.execute(f"CREATE VIEW Weekly_Metrics AS {WEEKLY}")
        direct = a.execute(WEEKLY + ORDER).fetchall()
        assert len(direct) > 10
        assert b.execute("SELECT * FROM weekly_metrics" + ORDER).fetchall() == direct
        assert b.execute("SELECT * FROM public.WEEKLY_METRICS" + ORDER).fetchall() == direct
        cli = query_json(data, "SELECT service, environment, deployments FROM weekly_metrics" + ORDER)
        assert [(r["service"], r["environment"], r["deployments"]) for r in cli] == [(r[0], r[1], r[3]) for r in direct]
        # Column names given at CREATE; OR REPLACE changes it for everyone.
        a.execute("CREATE OR REPLACE VIEW weekly_metrics (svc, env) AS " + WEEKLY)
        cur = b.execute("SELECT * FROM weekly_metrics LIMIT 1")
        assert [c.name for c in cur.description] == ["svc", "env", "bucket_start", "deployments", "lead_time_tier"]
        a.execute("DROP VIEW weekly_metrics")
        with pytest.raises(psycopg.errors.UndefinedTable):
            b.execute("SELECT * FROM weekly_metrics")


def test_temporary_views_stay_in_their_session(server, data):
    with connect(server) as a, connect(server) as b:
        a.execute("CREATE TEMP VIEW mine AS SELECT count(*) AS n FROM deployments")
        a.execute("CREATE OR REPLACE TEMPORARY VIEW mine AS SELECT count(*) AS n FROM deployments")
        assert a.execute("SELECT n FROM mine").fetchone()[0] == query_json(data, "SELECT count(*) AS n FROM deployments")[0]["n"]
        with pytest.raises(psycopg.errors.UndefinedTable):
            b.execute("SELECT * FROM mine")
        assert a.execute("SELECT relpersistence FROM pg_class WHERE relname = 'mine'").fetchall() == [("t",)]
        assert b.execute("SELECT count(*) FROM pg_class WHERE relname = 'mine'").fetchone()[0] == 0
    assert not (data / "views" / "mine.json").exists()


def test_views_are_listed_in_the_catalog(server):
    with connect(server) as conn:
        conn.execute(f"CREATE VIEW listed AS {WEEKLY}")
        try:
            assert conn.execute("SELECT relkind FROM pg_class WHERE relname = 'listed'").fetchall() == [("v",)]
            (definition,) = conn.execute("SELECT definition FROM pg_views WHERE viewname = 'listed'").fetchone()
            assert "dora_metrics('week')" in definition
            assert conn.execute(
                "SELECT table_type FROM information_schema.tables WHERE table_name = 'listed'"
            ).fetchall() == [("VIEW",)]
            assert conn.execute(
                "SELECT table_schema FROM information_schema.views WHERE table_name = 'listed'"
            ).fetchall() == [("public",)]
            columns = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'listed' ORDER BY ordinal_position"
            ).fetchall()
            assert [c for c, _ in columns] == ["service", "environment", "bucket_start", "deployments", "lead_time_tier"]
            assert dict(columns)["bucket_start"] == "timestamp with time zone"
            attributes = conn.execute(
                "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = 'listed'::regclass AND a.attnum > 0 ORDER BY a.attnum"
            ).fetchall()
            assert [a for (a,) in attributes] == [c for c, _ in columns]
            # Another connection lists it on its next statement.
            with connect(server) as other:
                assert other.execute("SELECT count(*) FROM pg_views WHERE viewname = 'listed'").fetchone()[0] == 1
        finally:
            conn.execute("DROP VIEW IF EXISTS listed")
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname = 'listed'").fetchone()[0] == 0


def test_view_errors_have_postgres_sqlstates(server):
    with connect(server) as conn:
        conn.execute("CREATE VIEW taken AS SELECT 1 AS one")
        try:
            with pytest.raises(psycopg.errors.DuplicateTable):
                conn.execute("CREATE VIEW taken AS SELECT 2 AS two")
            for table in ["events", "deployments", "dora_metrics", "DORA_QUALITY"]:
                with pytest.raises(psycopg.errors.DuplicateTable):
                    conn.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT 1 AS one")
            with pytest.raises(psycopg.errors.UndefinedTable):
                conn.execute("DROP VIEW no_such_view")
            conn.execute("DROP VIEW IF EXISTS no_such_view")
            with pytest.raises(psycopg.errors.UndefinedTable):
                conn.execute("CREATE VIEW over_nothing AS SELECT * FROM no_such_table")
            with pytest.raises(psycopg.errors.WrongObjectType):
                conn.execute("DROP VIEW events")
            with pytest.raises((psycopg.errors.WrongObjectType, psycopg.errors.FeatureNotSupported)):
                conn.execute("INSERT INTO taken (one) VALUES (1)")
            with pytest.raises(psycopg.errors.FeatureNotSupported):
                conn.execute("CREATE TABLE t (a int)")
            with pytest.raises(psycopg.errors.FeatureNotSupported):
                conn.execute("CREATE MATERIALIZED VIEW m AS SELECT 1")
            with pytest.raises(psycopg.errors.InvalidSchemaName):
                conn.execute("CREATE VIEW elsewhere.v AS SELECT 1")
            # A view over a dropped view says which view cannot be used.
            conn.execute("CREATE VIEW over_taken AS SELECT one FROM taken")
            conn.execute("DROP VIEW taken")
            with pytest.raises(psycopg.errors.UndefinedTable) as e:
                conn.execute("SELECT * FROM over_taken")
            assert 'view "over_taken" cannot be used' in str(e.value) and "taken" in str(e.value)
            assert conn.execute("SELECT 1").fetchone()[0] == 1
        finally:
            conn.execute("DROP VIEW IF EXISTS taken, over_taken")


def test_read_only_users_cannot_create_or_drop_views(data, tmp_path):
    s = Server(data, "--config", config_with_users(tmp_path))
    try:
        with psycopg.connect(s.dsn("alice", "wonderland"), autocommit=True) as alice:
            alice.execute("CREATE VIEW alices AS SELECT 1 AS one")
        with psycopg.connect(s.dsn("reader", "readonly"), autocommit=True) as reader:
            assert reader.execute("SELECT one FROM alices").fetchone()[0] == 1
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute("CREATE VIEW readers AS SELECT 1 AS one")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                reader.execute("DROP VIEW alices")
        with psycopg.connect(s.dsn("alice", "wonderland"), autocommit=True) as alice:
            alice.execute("DROP VIEW alices")
    finally:
        s.stop()


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql missing (scripts/test installs postgresql-client)")
def test_psql_lists_and_describes_views(server):
    with connect(server) as conn:
        conn.execute(f"CREATE OR REPLACE VIEW psql_weekly AS {WEEKLY}")
    try:
        out = subprocess.run(
            ["psql", server.dsn(), "-X", "-v", "ON_ERROR_STOP=1", "-c", r"\dv", "-c", r"\d psql_weekly"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "psql_weekly" in out.stdout and " view " in out.stdout
        assert 'View "public.psql_weekly"' in out.stdout
        assert "bucket_start" in out.stdout and "timestamp with time zone" in out.stdout
    finally:
        with connect(server) as conn:
            conn.execute("DROP VIEW psql_weekly")


def dbt_executable():
    """dbt from its own venv (scripts/test installs it: its pins clash with
    other clients'), or beside this Python."""
    for found in (os.environ.get("LEADLINE_DBT"), pathlib.Path(sys.executable).parent / "dbt"):
        if found and pathlib.Path(found).exists():
            return pathlib.Path(found)
    return None


@pytest.mark.skipif(dbt_executable() is None, reason="dbt is not installed (scripts/test installs it)")
def test_dbt_debug_run_and_docs_generate(server, tmp_path):
    project = tmp_path / "dbt"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        textwrap.dedent(
            """\
            name: leadline_views
            version: "1.0"
            config-version: 2
            profile: leadline
            model-paths: ["models"]
            models:
              leadline_views:
                +materialized: view
            """
        )
    )
    (project / "profiles.yml").write_text(
        textwrap.dedent(
            f"""\
            leadline:
              target: dev
              outputs:
                dev:
                  type: postgres
                  host: 127.0.0.1
                  port: {server.port}
                  user: leadline
                  password: unused
                  dbname: leadline
                  schema: public
                  threads: 1
            """
        )
    )
    (project / "models" / "weekly_dora.sql").write_text("select * from dora_metrics('week')\n")
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
    # debug checks the connection; the second run replaces the view dbt made;
    # docs generate reads the catalog (pg_is_other_temp_schema and friends).
    for command in (["debug"], ["run"], ["run"], ["docs", "generate"]):
        out = subprocess.run(
            [str(dbt_executable()), *command, "--project-dir", str(project), "--profiles-dir", str(project)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=project,
        )
        assert out.returncode == 0, f"dbt {' '.join(command)}:\n" + out.stdout + out.stderr
    catalog = json.loads((project / "target" / "catalog.json").read_text())
    assert "model.leadline_views.weekly_dora" in catalog["nodes"], catalog.get("errors")
    columns = catalog["nodes"]["model.leadline_views.weekly_dora"]["columns"]
    assert "rework_rate" in columns and "bucket_start" in columns
    with connect(server) as conn:
        got = conn.execute("SELECT * FROM weekly_dora" + ORDER).fetchall()
        want = conn.execute("SELECT * FROM dora_metrics('week')" + ORDER).fetchall()
        assert got == want and len(got) > 10
        assert conn.execute("SELECT relkind FROM pg_class WHERE relname LIKE 'weekly_dora%'").fetchall() == [("v",)]
        conn.execute("DROP VIEW weekly_dora")
