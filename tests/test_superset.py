"""Apache Superset drives `leadline serve` for real: its own metadata
database set up by its CLI (`superset db upgrade`, `init`, an admin), then,
through its REST API without a web server (tests/superset_client.py, in
Superset's venv): a database over postgresql+psycopg2 and its connection
test, a physical dataset on a table and a virtual one on dora_metrics, a
chart with a time range (Superset's TO_TIMESTAMP(…, 'YYYY-MM-DD
HH24:MI:SS.US')), a monthly time series and SQL Lab. The values are checked
against `leadline query`.

Superset is heavy (a venv of its own): `scripts/test --heavy` installs it
from tests/requirements-superset.txt and sets LEADLINE_HEAVY=1."""
import datetime as dt
import json
import os
import pathlib
import subprocess

import pytest

from leadline_pg import query_json

VENV = pathlib.Path(os.environ.get("LEADLINE_SUPERSET_VENV", pathlib.Path.home() / ".cache/leadline/superset-venv"))
CLIENT = pathlib.Path(__file__).resolve().parent / "superset_client.py"

pytestmark = pytest.mark.skipif(os.environ.get("LEADLINE_HEAVY") != "1",
                                reason="Superset is heavy: scripts/test --heavy runs it")

CONFIG = """
SECRET_KEY = "leadline-tests-only"
SQLALCHEMY_DATABASE_URI = "sqlite:///{db}"
# The test client posts forms and JSON without a CSRF token.
WTF_CSRF_ENABLED = False
TALISMAN_ENABLED = False
RATELIMIT_ENABLED = False
CACHE_CONFIG = {{"CACHE_TYPE": "NullCache"}}
DATA_CACHE_CONFIG = {{"CACHE_TYPE": "NullCache"}}
"""


def superset(env, *args):
    out = subprocess.run([str(VENV / "bin" / args[0]), *args[1:]], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, f"{' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"


@pytest.fixture(scope="module")
def superset_answers(server, tmp_path_factory):
    """What Superset answered, driven against the module's server."""
    assert (VENV / "bin" / "superset").exists(), f"{VENV} has no Superset: scripts/test --heavy installs it"
    home = tmp_path_factory.mktemp("superset")
    (home / "superset_config.py").write_text(CONFIG.format(db=home / "superset.db"))
    env = {**os.environ, "SUPERSET_CONFIG_PATH": str(home / "superset_config.py"), "SUPERSET_HOME": str(home)}
    superset(env, "superset", "db", "upgrade")
    superset(env, "superset", "init")
    superset(env, "superset", "fab", "create-admin", "--username", "admin", "--password", "admin",
             "--firstname", "Ada", "--lastname", "Admin", "--email", "admin@example.com")
    uri = f"postgresql+psycopg2://leadline@127.0.0.1:{server.port}/leadline"
    superset(env, "python", str(CLIENT), uri, str(home / "result.json"))
    return json.loads((home / "result.json").read_text())


def epoch_ms(iso):
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def test_database_schemas_and_tables(superset_answers, data):
    assert superset_answers["test_connection"] == {"message": "OK"}
    assert "public" in superset_answers["schemas"]
    tables = query_json(data, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    assert sorted(superset_answers["tables"]) == sorted(t["table_name"] for t in tables)
    columns = query_json(data, "SELECT column_name FROM information_schema.columns WHERE table_name = 'deployments'"
                               " ORDER BY ordinal_position")
    assert [c["name"] for c in superset_answers["table_metadata"]] == [c["column_name"] for c in columns]


def test_datasets_on_a_table_and_on_dora_metrics(superset_answers, data):
    columns = query_json(data, "SELECT column_name, data_type FROM information_schema.columns"
                               " WHERE table_name = 'deployments'")
    assert superset_answers["physical_columns"] == {
        c["column_name"]: c["data_type"].startswith("Timestamp") for c in columns}
    week = query_json(data, "SELECT * FROM dora_metrics('week') LIMIT 1")[0]
    assert set(superset_answers["virtual_columns"]) == set(week)
    assert [c for c, is_time in superset_answers["virtual_columns"].items() if is_time] == ["bucket_start"]
    services = query_json(data, "SELECT DISTINCT service FROM deployments")
    assert sorted(superset_answers["service_values"]) == sorted(s["service"] for s in services)


def test_chart_with_a_time_range(superset_answers, data):
    chart = superset_answers["chart"]
    assert "TO_TIMESTAMP('2026-06-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US')" in chart["query"]
    want = query_json(data, "SELECT service, count(*) AS count FROM deployments"
                            " WHERE finished_at >= '2026-06-01T00:00:00Z' AND finished_at < '2026-09-01T00:00:00Z'"
                            " GROUP BY service ORDER BY service")
    assert len(want) > 1
    assert chart["data"] == want


def test_time_series_over_dora_metrics(superset_answers, data):
    series = superset_answers["timeseries"]
    assert "DATE_TRUNC('month', bucket_start)" in series["query"]
    want = query_json(data, "SELECT date_trunc('month', bucket_start) AS m, sum(deployments) AS d"
                            " FROM dora_metrics('week') WHERE bucket_start >= '2026-06-01T00:00:00Z'"
                            " AND bucket_start < '2026-09-01T00:00:00Z' GROUP BY 1")
    assert len(want) > 1
    got = sorted((row["bucket_start"], row["deploys"]) for row in series["data"])
    assert got == sorted((epoch_ms(w["m"]), w["d"]) for w in want)


def test_sql_lab(superset_answers, data):
    answers = superset_answers["sqllab"]
    count = answers["SELECT count(*) AS n FROM DORA_METRICS('week')"]
    assert "DORA_METRICS('week')" in count["executed"]
    assert count["data"] == query_json(data, "SELECT count(*) AS n FROM dora_metrics('week')")
    by_service = answers["SELECT service, count(*) AS n FROM deployments GROUP BY service ORDER BY service"]
    assert by_service["data"] == query_json(
        data, "SELECT service, count(*) AS n FROM deployments GROUP BY service ORDER BY service")


def test_sql_lab_shows_what_leadline_refuses(superset_answers):
    refused = superset_answers["sqllab_refused"]
    assert refused["status"] >= 400
    assert 'relation \\"no_such_table\\" does not exist' in refused["answer"] \
        or 'relation "no_such_table" does not exist' in refused["answer"]
