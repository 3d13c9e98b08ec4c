"""`leadline report`: the DORA report of a generated history, opened in a
real headless Chromium; its Markdown, CSV and JSON checked against
`dora_metrics` (through `leadline query`); saved queries; exit codes."""
import csv
import io
import json
import os
import shutil
import subprocess

import pytest

from conftest import run
from leadline_pg import ingest, node_package, query_json

CHROMIUM = shutil.which("chromium")
METRICS = ["deployment_frequency", "lead_time_p50", "change_failure_rate", "time_to_restore_p50",
           "failed_deployment_recovery_p50", "rework_rate"]
DURATIONS = {"lead_time_p50", "time_to_restore_p50", "failed_deployment_recovery_p50"}
TIERS = {"deployment_frequency": "deployment_frequency_tier", "lead_time_p50": "lead_time_tier",
         "change_failure_rate": "change_failure_rate_tier", "time_to_restore_p50": "time_to_restore_tier"}


@pytest.fixture(scope="module")
def history(leadline_bin, tmp_path_factory):
    """A data directory with a generated history: 4 services, 12 weeks."""
    d = tmp_path_factory.mktemp("history")
    run(leadline_bin, "generate", "--seed", "11", "--services", "4", "--days", "84", "--start", "2026-03-02",
        "-o", d / "history.ndjson")
    ingest(d / "data", d / "history.ndjson")
    return d / "data"


def report(bin_path, data, *args):
    return run(bin_path, "report", "--data", data, *args, check=False)


def metrics_rows(data, sql_from, sql_to):
    """dora_metrics rows of production between two buckets, durations in seconds."""
    cols = ", ".join(f"extract(epoch FROM {c}) AS {c}" if c in DURATIONS else c for c in METRICS)
    return query_json(data, f"SELECT service, bucket_start, deployments, {cols}, {', '.join(TIERS.values())} "
                            f"FROM dora_metrics('week', '{sql_from}', '{sql_to}') "
                            "WHERE environment = 'production' ORDER BY service, bucket_start")


def close(a, b):
    if a in (None, "") or b in (None, ""):
        return a in (None, "") and b in (None, "")
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))


# The page's checks, run in Chromium by playwright-core: every chart drawn
# (an SVG with a size and marks), no console error, nothing fetched.
CHECK_PAGE = r"""
const { chromium } = require('playwright-core');
(async () => {
  const [url, png, phonePng, pdf] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'] });
  const errors = [], fetched = [];
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', e => errors.push(String(e)));
  page.on('request', r => { if (!r.url().startsWith('file:')) fetched.push(r.url()); });
  await page.goto(url, { waitUntil: 'load' });
  const charts = await page.$$eval('figure.chart', figs => figs.map(f => {
    const svg = f.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
    return { id: f.id, width: box.width, height: box.height,
             // Data lines are wider than the mesh's 1px lines.
             lines: svg ? [...svg.querySelectorAll('polyline')].filter(l => Number(l.getAttribute('stroke-width')) > 1).length : 0,
             dots: svg ? svg.querySelectorAll('circle').length : 0,
             texts: svg ? svg.querySelectorAll('text').length : 0,
             legend: f.querySelectorAll('.legend li').length, series: Number(f.dataset.series) };
  }));
  await page.screenshot({ path: png, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.screenshot({ path: phonePng, fullPage: false });
  await page.emulateMedia({ media: 'print' });
  await page.pdf({ path: pdf, format: 'A4' });
  await browser.close();
  console.log(JSON.stringify({ charts, errors, fetched, overflow }));
})().catch(e => { console.error(e); process.exit(1); });
"""


def check_in_chromium(html_path, png, phone_png, pdf, tmp_path):
    script = tmp_path / "check.js"
    script.write_text(CHECK_PAGE)
    out = subprocess.run(["node", str(script), html_path.resolve().as_uri(), str(png), str(phone_png), str(pdf)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "NODE_PATH": str(node_package("playwright-core"))})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or node_package("playwright-core") is None,
    reason="chromium or playwright-core missing (scripts/test installs them)")


@needs_chromium
def test_the_html_report_renders_every_chart_in_chromium(leadline_bin, history, artifact, tmp_path):
    html = artifact("report.html")
    out = report(leadline_bin, history, "--out", html)
    assert out.returncode == 0, out.stderr
    text = html.read_text()
    # One self-contained file: no script, nothing from elsewhere.
    assert "<script" not in text and "http://" not in text and "https://" not in text
    assert "@media print" in text and "@media (max-width" in text
    page = check_in_chromium(html, artifact("report.png"), artifact("report-phone.png"), artifact("report.pdf"),
                             tmp_path)
    assert page["errors"] == [] and page["fetched"] == []
    charts = {c["id"]: c for c in page["charts"]}
    assert sorted(charts) == sorted(f"chart-{m}" for m in METRICS)
    for c in charts.values():
        assert c["width"] > 200 and c["height"] > 100, c
        assert c["lines"] >= 1 and c["dots"] >= 1 and c["texts"] >= 5, c
        # The roll-up and the 4 services, each in the legend.
        assert c["series"] == 5 and c["legend"] == 5, c
    assert page["overflow"] <= 0, "the page scrolls sideways on a phone"
    assert artifact("report.png").stat().st_size > 10_000


def test_csv_of_one_week_is_that_weeks_dora_metrics(leadline_bin, history):
    week, before = "2026-04-06", "2026-03-30"
    out = report(leadline_bin, history, "--format", "csv", "--from", week, "--to", "2026-04-08")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    expected = {(r["service"], r["bucket_start"][:10]): r for r in metrics_rows(history, before, week)}
    services = {s for s, _ in expected}
    assert {r["service"] for r in rows} == services | {""}
    checked = 0
    for r in rows:
        if r["service"] == "":
            continue
        now, prev = expected[(r["service"], week)], expected[(r["service"], before)]
        m = r["metric"]
        assert close(r["current"], now[m]) and close(r["previous"], prev[m]), (r, now[m], prev[m])
        if m in TIERS:
            assert (r["current_tier"] or None) == now[TIERS[m]], r
            assert (r["previous_tier"] or None) == prev[TIERS[m]], r
        if m == "deployment_frequency":
            assert int(r["current_samples"]) == now["deployments"]
        assert r["current_from"] == f"{week}T00:00:00Z" and r["previous_from"] == f"{before}T00:00:00Z"
        checked += 1
    assert checked == len(services) * len(METRICS)


def test_markdown_and_json_agree_with_dora_metrics_over_the_period(leadline_bin, history):
    md = report(leadline_bin, history, "--format", "md")
    js = report(leadline_bin, history, "--format", "json")
    assert md.returncode == 0 and js.returncode == 0, md.stderr + js.stderr
    doc = json.loads(js.stdout)
    cur, prev = doc["current"], doc["previous"]
    assert cur["from"] == "2026-04-13T00:00:00Z" and cur["to"] == "2026-05-25T00:00:00Z", cur
    rows = [r for r in metrics_rows(history, prev["from"], cur["to"]) if r["bucket_start"] < cur["to"]]
    in_current = [r for r in rows if r["bucket_start"] >= cur["from"] and r["bucket_start"] < cur["to"]]
    in_previous = [r for r in rows if r["bucket_start"] < cur["from"]]
    # Each service's trend is its dora_metrics rows.
    by_service = {t["service"]: t["buckets"] for t in doc["trends"]}
    for r in rows:
        b = next(b for b in by_service[r["service"]] if b["bucket_start"] == r["bucket_start"])
        assert b["deployments"] == r["deployments"]
        for m in METRICS:
            assert close(b[m], r[m]), (r["service"], r["bucket_start"], m)
    # Deployment counts of each period add up; the Markdown shows them per service.
    sections = md.stdout.split("\n### ")
    for s in {r["service"] for r in rows}:
        now = sum(r["deployments"] for r in in_current if r["service"] == s)
        before = sum(r["deployments"] for r in in_previous if r["service"] == s)
        summary = next(x for x in doc["summaries"] if x["service"] == s)["metrics"]["deployment_frequency"]
        assert (summary["current_samples"], summary["previous_samples"]) == (now, before)
        assert close(summary["current"], now / cur["days"])
        section = next(x for x in sections if x.startswith(s + "\n"))
        line = next(line for line in section.splitlines() if line.startswith("| Deployment frequency |"))
        assert f"| {now} / {before} deployments |" in line, line
    rollup = doc["summaries"][0]
    assert rollup["service"] is None
    assert rollup["metrics"]["deployment_frequency"]["current_samples"] == sum(r["deployments"] for r in in_current)
    # The snapshot is named, and dora_quality shown.
    log_version = query_json(history, "SELECT count(*) AS n FROM events")[0]["n"]
    assert doc["snapshot"]["events"] == log_version and doc["snapshot"]["log_version"] >= 0
    assert "Data: log version " in md.stdout and "## Data quality" in md.stdout
    assert "Deployment rework rate" in md.stdout and "no tier" in md.stdout


def test_insights_cite_values_and_thresholds_and_never_trend_few_samples(leadline_bin, history):
    doc = json.loads(report(leadline_bin, history, "--format", "json").stdout)
    assert doc["insights"], "a generated history moves somewhere"
    for s in doc["insights"]:
        assert "→" in s
        assert ("threshold" in s) or ("is new" in s) or ("too few" in s), s
        assert "+100%" not in s or "is new" not in s
    # One service, one week: too few deployments to call anything a trend.
    few = json.loads(report(leadline_bin, history, "--format", "json", "--grain", "week", "--from", "2026-04-06",
                            "--to", "2026-04-06", "--service", "svc-000").stdout)
    for metric in few["summaries"][1]["metrics"].values():
        if metric["current_samples"] < 5 or metric["previous_samples"] < 5:
            assert metric["verdict"] in ("too few samples", "no data"), metric


def test_saved_query_report_table_and_chart(leadline_bin, history, tmp_path):
    sql = tmp_path / "weekly.sql"
    sql.write_text("SELECT date_trunc('week', finished_at) AS week, service, count(*) AS deploys\n"
                   "FROM deployments WHERE status = 'succeeded' AND environment = 'production'\n"
                   "GROUP BY 1, 2 ORDER BY 1, 2")
    html = tmp_path / "weekly.html"
    out = report(leadline_bin, history, "--sql", sql, "--chart", "x=week,y=deploys,series=service", "-o", html)
    assert out.returncode == 0, out.stderr
    text = html.read_text()
    assert text.count("<svg") == 1 and 'data-series="4"' in text and 'stroke-width="2"' in text
    # The CSV of a saved query is what `leadline query` prints.
    as_csv = report(leadline_bin, history, "--sql", sql, "--format", "csv")
    direct = run(leadline_bin, "query", "--data", history, "--format", "csv", sql.read_text())
    assert as_csv.stdout == direct.stdout and as_csv.returncode == 0
    # An interval on y is charted as a duration.
    lead = tmp_path / "lead.sql"
    lead.write_text("SELECT date_trunc('week', deployed_at) AS week, lead_time(lead_time) AS p50 FROM changes "
                    "GROUP BY 1 ORDER BY 1")
    out = report(leadline_bin, history, "--sql", lead, "--chart", "x=week,y=p50", "--format", "html")
    assert out.returncode == 0 and "hours" in out.stdout, out.stderr


def test_bad_input_has_clear_messages_and_exit_codes(leadline_bin, history, tmp_path):
    out = report(leadline_bin, history, "--service", "svc-000", "nope")
    assert out.returncode == 1 and "unknown service 'nope'" in out.stderr and "'svc-000'" in out.stderr
    out = report(leadline_bin, history, "--team", "no-such-team")
    assert out.returncode == 1 and "unknown team" in out.stderr
    out = report(leadline_bin, history, "--environment", "prod")
    assert out.returncode == 1 and "unknown environment 'prod'" in out.stderr and "'production'" in out.stderr
    out = report(leadline_bin, history, "--from", "2026-05-01", "--to", "2026-04-01")
    assert out.returncode == 1 and "--from" in out.stderr
    out = report(leadline_bin, history, "--from", "yesterday")
    assert out.returncode == 1 and "neither a date" in out.stderr
    out = report(leadline_bin, tmp_path / "missing")
    assert out.returncode == 1 and "does not exist" in out.stderr
    # Usage errors are clap's (2): --chart needs --sql.
    assert report(leadline_bin, history, "--chart", "x=a,y=b").returncode == 2

    sql = tmp_path / "q.sql"
    sql.write_text("SELECT service, count(*) AS n FROM deployments GROUP BY 1")
    for spec, why in [("x=service", "y= is missing"), ("x=service,y=nope", "no such column"),
                      ("x=n,y=service", "not a number"), ("x=service,y", "not KEY=COLUMN")]:
        out = report(leadline_bin, history, "--sql", sql, "--chart", spec)
        assert out.returncode == 1 and why in out.stderr, (spec, out.stderr)
    bad = tmp_path / "bad.sql"
    bad.write_text("SELECT no_such_column FROM deployments")
    out = report(leadline_bin, history, "--sql", bad)
    assert out.returncode == 1 and "bad.sql" in out.stderr and "no_such_column" in out.stderr
    out = report(leadline_bin, history, "--sql", tmp_path / "none.sql")
    assert out.returncode == 1 and "none.sql" in out.stderr


def test_empty_or_stale_data_exits_3_and_still_writes_the_report(leadline_bin, history, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = report(leadline_bin, empty, "--format", "md")
    assert out.returncode == 3 and "no events" in out.stderr and "No data" in out.stdout
    # The generated history ended in May 2026: stale a week later.
    target = tmp_path / "stale.html"
    out = report(leadline_bin, history, "--stale-after", "7d", "-o", target)
    assert out.returncode == 3 and "stale data" in out.stderr and target.exists()
    assert "Stale data" in target.read_text()
    out = report(leadline_bin, history, "--stale-after", "100000d")
    assert out.returncode == 0
    assert report(leadline_bin, history, "--stale-after", "soon").returncode == 1
    # Nothing of the selection in the period.
    out = report(leadline_bin, history, "--from", "2027-01-04", "--format", "json")
    assert out.returncode == 3 and json.loads(out.stdout)["status"]["state"] == "empty"
    sql = tmp_path / "nothing.sql"
    sql.write_text("SELECT * FROM deployments WHERE false")
    assert report(leadline_bin, history, "--sql", sql).returncode == 3
