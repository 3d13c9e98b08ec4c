"""examples/ is run here, so it cannot rot: the psql walkthrough's output,
the Grafana dashboard's panels (macros expanded as Grafana does), the SQL of
the Superset and Metabase pages, and the weekly cron script.

`LEADLINE_UPDATE_EXAMPLES=1 pytest tests/test_examples.py -k psql` rewrites
the outputs in examples/psql.md from what psql prints now."""
import datetime as dt
import json
import os
import re
import shutil
import subprocess

import psycopg
import pytest
import yaml

from conftest import ROOT
from leadline_pg import query_json

EXAMPLES = ROOT / "examples"
SQL_AND_OUTPUT = re.compile(r"```sql\n(.*?)```\n```text\n(.*?)```", re.S)
SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.S)


def psql(server, sql):
    out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-P", "pager=off", server.dsn()],
                         input=sql, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{sql}\n{out.stderr}"
    return "\n".join(line.rstrip() for line in out.stdout.splitlines()).strip("\n") + "\n"


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql missing (scripts/test installs postgresql-client)")
def test_psql_walkthrough_shows_what_psql_prints(server):
    path = EXAMPLES / "psql.md"
    text = path.read_text()
    blocks = SQL_AND_OUTPUT.findall(text)
    assert len(blocks) == len(SQL_BLOCK.findall(text)) >= 8, "every SQL block is followed by its output"
    update = os.environ.get("LEADLINE_UPDATE_EXAMPLES") == "1"
    for sql, shown in blocks:
        printed = psql(server, sql)
        if update:
            text = text.replace(f"```sql\n{sql}```\n```text\n{shown}```", f"```sql\n{sql}```\n```text\n{printed}```", 1)
        else:
            assert printed == shown, f"examples/psql.md is stale for:\n{sql}\npsql now prints:\n{printed}"
    if update:
        path.write_text(text)


# Grafana's PostgreSQL macros (pkg/tsdb/grafana-postgresql-datasource/macros.go),
# over the dashboard's time range and its variables' values.
FROM, TO = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc), dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)
INTERVALS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def grafana_time(t):
    return "'" + t.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


def grafana_seconds(interval):
    m = re.fullmatch(r"'?(\d+)([smhdw])'?", interval.strip())
    assert m, interval
    return int(m.group(1)) * INTERVALS[m.group(2)]


def expand_grafana(sql, variables):
    def args(inner):
        return [a.strip() for a in inner.split(",")]

    def macro(m):
        name, a = m.group(1), args(m.group(2)) if m.group(2) else []
        if name == "__time":
            return f'{a[0]} AS "time"'
        if name == "__timeEpoch":
            return f'extract(epoch from {a[0]}) as "time"'
        if name == "__timeFilter":
            return f"{a[0]} BETWEEN {grafana_time(FROM)} AND {grafana_time(TO)}"
        if name == "__timeFrom":
            return grafana_time(FROM)
        if name == "__timeTo":
            return grafana_time(TO)
        if name in ("__timeGroup", "__timeGroupAlias"):
            s = grafana_seconds(a[1])
            group = f"floor(extract(epoch from {a[0]})/{s})*{s}"
            return group + (' AS "time"' if name == "__timeGroupAlias" else "")
        if name == "__unixEpochFilter":
            return f"{a[0]} >= {int(FROM.timestamp())} AND {a[0]} <= {int(TO.timestamp())}"
        raise AssertionError(f"macro ${name} is not expanded by this test")

    sql = re.sub(r"\$(__\w+)\(([^()]*)\)", macro, sql)
    # Variables: a multi-value one becomes a list of quoted values.
    for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        text = ",".join("'" + v.replace("'", "''") + "'" for v in value) if isinstance(value, list) else value
        sql = sql.replace("${" + name + "}", text).replace("$" + name, text)
    assert "$" not in sql, sql
    return sql


def test_grafana_dashboard_panels_run_against_leadline(server, data):
    source = yaml.safe_load((EXAMPLES / "grafana" / "datasource.yaml").read_text())["datasources"][0]
    assert source["uid"] == "leadline" and source["url"].endswith(":5433")
    assert source["jsonData"]["database"] == "leadline"
    assert yaml.safe_load((EXAMPLES / "grafana" / "dashboard.yaml").read_text())["providers"][0]["type"] == "file"
    dashboard = json.loads((EXAMPLES / "grafana" / "leadline-dora.json").read_text())
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        # The variables' queries run, and give the values the panels get.
        variables = {}
        for v in dashboard["templating"]["list"]:
            values = [r[0] for r in conn.execute(v["query"]).fetchall()]
            assert values, v["name"]
            variables[v["name"]] = values if v["multi"] else v["current"]["value"]
        assert variables["environment"] == "production"
        results = {}
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == source["uid"]
            for target in panel["targets"]:
                sql = expand_grafana(target["rawSql"], variables)
                rows = conn.execute(sql).fetchall()
                assert rows, f"panel {panel['title']!r} is empty:\n{sql}"
                if target["format"] == "time_series":
                    assert all(r[0] is not None for r in rows), panel["title"]
                results[panel["title"]] = rows
    # One panel's numbers against dora_metrics through `leadline query`.
    weekly = results["Change failure rate"]
    expected = query_json(data, "SELECT bucket_start, service, change_failure_rate FROM dora_metrics('week', "
                                "'2026-06-01T00:00:00Z', '2026-09-01T00:00:00Z') WHERE environment = 'production' "
                                "ORDER BY 1, 2")
    assert len(weekly) == len(expected)
    for (time, service, value), e in zip(sorted(weekly, key=lambda r: (r[0], r[1])), expected):
        assert (time.strftime("%Y-%m-%dT%H:%M:%SZ"), service) == (e["bucket_start"], e["service"])
        assert (value is None and e["change_failure_rate"] is None) or value == pytest.approx(e["change_failure_rate"])
    assert results["Deployments"][0][0] == query_json(
        data, "SELECT count(*) AS n FROM deployments WHERE status = 'succeeded' AND environment = 'production' "
              "AND finished_at BETWEEN '2026-06-01T00:00:00Z' AND '2026-09-01T00:00:00Z'")[0]["n"]


def test_superset_sql_runs_through_sqlalchemy(server):
    import sqlalchemy

    blocks = SQL_BLOCK.findall((EXAMPLES / "superset.md").read_text())
    assert len(blocks) == 3
    uri = re.search(r"postgresql\+psycopg2://\S+", (EXAMPLES / "superset.md").read_text()).group(0)
    engine = sqlalchemy.create_engine(uri.replace("127.0.0.1:5433", f"127.0.0.1:{server.port}"))
    with engine.connect() as conn:
        for sql in blocks:
            result = conn.execute(sqlalchemy.text(sql))
            if result.returns_rows:
                assert result.fetchall(), sql
        # The dataset Superset would build on the view.
        columns = {c["name"] for c in sqlalchemy.inspect(conn).get_columns("dora_weekly")}
        assert {"week", "service", "lead_time_hours", "change_failure_rate", "rework_rate"} <= columns
    engine.dispose()


def test_metabase_sql_runs_with_its_variables_filled_in(server):
    blocks = SQL_BLOCK.findall((EXAMPLES / "metabase.md").read_text())
    assert len(blocks) == 3
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for sql in blocks:
            # A native question: {{environment}} set, the optional [[...]] both with and without {{service}}.
            variants = [re.sub(r"\[\[.*?\]\]", "", sql),
                        re.sub(r"\[\[(.*?)\]\]", r"\1", sql).replace("{{service}}", "'svc-000'")]
            for variant in dict.fromkeys(variants):
                variant = variant.replace("{{environment}}", "'production'")
                cur = conn.execute(variant)
                if cur.description:
                    assert cur.fetchall(), variant


def test_weekly_cron_script_writes_the_report(leadline_bin, data, tmp_path):
    script = EXAMPLES / "cron" / "weekly-report.sh"
    line = next(l for l in (EXAMPLES / "cron" / "crontab").read_text().splitlines() if l and not l.startswith("#"))
    fields = line.split()
    assert len(fields) > 5 and fields[-1].endswith("weekly-report.sh"), line
    env = {"PATH": os.environ["PATH"], "LEADLINE": str(leadline_bin), "LEADLINE_DATA": str(data)}
    week = dt.datetime.now(dt.timezone.utc).strftime("%G-W%V")
    # The sample ends in August 2026: fresh enough for a generous limit...
    out = subprocess.run([str(script)], env={**env, "OUT_DIR": str(tmp_path / "ok"), "STALE_AFTER": "100000d"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == "", out.stderr
    html = tmp_path / "ok" / f"dora-{week}.html"
    assert html.exists() and (tmp_path / "ok" / f"dora-{week}.csv").exists()
    assert (tmp_path / "ok" / "latest.html").resolve() == html.resolve()
    assert "<svg" in html.read_text()
    # ...and stale for a week's: still written, exit 3 and a line for cron to mail.
    out = subprocess.run([str(script)], env={**env, "OUT_DIR": str(tmp_path / "stale")},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 3 and "empty or stale" in out.stderr and "stale data" in out.stderr
    assert (tmp_path / "stale" / f"dora-{week}.html").exists()
    # Without a data directory it says so and fails.
    out = subprocess.run([str(script)], env={k: v for k, v in env.items() if k != "LEADLINE_DATA"},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "LEADLINE_DATA" in out.stderr
