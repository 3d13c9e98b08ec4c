#!/usr/bin/env python3
"""Query benchmark: leadline vs hand-written DuckDB SQL vs DataFusion's bare scan.

    python3 benches/queries/run.py --events 1000000 10000000 --runs 5

For each N: `leadline generate` N events, `leadline ingest` them, check that
duckdb_dora.sql gives leadline's numbers, then time Q1-Q3 and the scan
through `leadline query` and the same answers through DuckDB (each a fresh
process: wall time, median over --runs, peak RSS from /usr/bin/time -v).
See README.md beside this file. The script re-executes itself in its own venv
(~/.cache/leadline/bench-venv, duckdb from PyPI) when duckdb is missing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SQL_FILE = HERE / "duckdb_dora.sql"
VENV = pathlib.Path.home() / ".cache/leadline/bench-venv"
DUCKDB_REQ = "duckdb==2.*"

METRIC_COLUMNS = [
    "service", "environment", "bucket_start", "deployments", "deployment_frequency", "lead_time_p50",
    "lead_time_p90", "change_failure_rate", "time_to_restore_p50", "failed_deployment_recovery_p50",
    "lead_time_tier", "deployment_frequency_tier", "change_failure_rate_tier", "time_to_restore_tier",
]
INTERVALS = {"lead_time_p50", "lead_time_p90", "time_to_restore_p50", "failed_deployment_recovery_p50",
             "fdrt", "lt_p50", "lt_p90", "ttr"}


# ---------------------------------------------------------------- the SQL --

def load_sql(path: pathlib.Path = SQL_FILE) -> tuple[str, dict[str, str]]:
    """(setup statements, {query name: SQL}) of duckdb_dora.sql."""
    text = path.read_text()
    parts = re.split(r"^-- name: (\w+)\s*$", text, flags=re.M)
    setup, rest = parts[0], parts[1:]
    return setup, {rest[i]: rest[i + 1].strip() for i in range(0, len(rest), 2)}


def events_glob(data: pathlib.Path) -> str:
    return str(pathlib.Path(data).resolve() / "events" / "**" / "*.parquet")


def duckdb_connect(data: pathlib.Path):
    import duckdb

    setup, _ = load_sql()
    con = duckdb.connect()
    con.execute(setup.replace("@EVENTS@", events_glob(data)))
    return con


def fill(sql: str, params: dict[str, str]) -> str:
    for k, v in params.items():
        sql = sql.replace(f"@{k}@", v)
    return sql


def duckdb_rows(con, sql: str) -> list[dict]:
    # As text: timestamptz values would need pytz in Python; norm() parses them back.
    cur = con.execute(f"SELECT COLUMNS(*)::VARCHAR FROM ({sql.rstrip().rstrip(';')})")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def leadline_metrics_sql(grain: str = "week") -> str:
    cols = [f"date_part('epoch', {c}) AS {c}" if c in INTERVALS else c for c in METRIC_COLUMNS]
    return f"SELECT {', '.join(cols)} FROM dora_metrics('{grain}') ORDER BY service, environment, bucket_start"


def leadline_json(bin_path, data, sql: str) -> list[dict]:
    out = subprocess.run([str(bin_path), "query", "--data", str(data), "--format", "json", sql],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"leadline query failed: {out.stderr}")
    return json.loads(out.stdout)


# ------------------------------------------------------------ comparison --

def norm(value):
    """A cell as a comparable Python value: instants as UTC epoch seconds."""
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, str) and re.match(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d", value):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    if isinstance(value, str):
        try:
            return float(value) if re.match(r"^-?\d+(\.\d+)?(e-?\d+)?$", value) else value
        except ValueError:
            return value
    return value


def same(a, b) -> bool:
    a, b = norm(a), norm(b)
    if a is None or b is None or a == "" or b == "":
        return (a is None or a == "") and (b is None or b == "")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)
    return a == b


def diff_rows(got: list[dict], want: list[dict], columns, key=("service", "environment", "bucket_start"), limit=20):
    """Human-readable differences between two result sets (empty: equal)."""
    out = []
    if len(got) != len(want):
        out.append(f"row count {len(got)} != {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        for c in columns:
            if not same(g.get(c), w.get(c)):
                k = " ".join(str(g.get(x)) for x in key if x in g)
                out.append(f"row {i} ({k}) {c}: {g.get(c)!r} vs {w.get(c)!r}")
                if len(out) >= limit:
                    return out
    return out


# -------------------------------------------------------------- timing --

def timed(cmd: list[str], env=None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of one process under /usr/bin/time -v."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-v", "-o", tf.name, *cmd], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if p.returncode not in (0, 2):
            raise RuntimeError(f"{cmd[:3]} failed ({p.returncode}): {p.stderr[-2000:]}")
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tf.read())
    return wall, int(m.group(1)) * 1024 if m else 0, p.stdout


DUCKDB_CHILD = """
import sys, time, duckdb
t0 = time.perf_counter()
setup, sql = open(sys.argv[1]).read(), open(sys.argv[2]).read()
con = duckdb.connect()
con.execute(setup)
# Every column as text (as leadline prints CSV); timestamptz objects would need pytz.
rows = con.execute("SELECT COLUMNS(*)::VARCHAR FROM (" + sql.rstrip().rstrip(";") + ")").fetchall()
print(time.perf_counter() - t0)
"""


def ensure_venv():
    """Re-exec inside ~/.cache/leadline/bench-venv when duckdb is not importable."""
    try:
        import duckdb  # noqa: F401
        return
    except ImportError:
        pass
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", DUCKDB_REQ], check=True)
    os.execv(str(py), [str(py), *sys.argv])


def ensure_time():
    if not os.path.exists("/usr/bin/time"):
        subprocess.run(["apt-get", "install", "-y", "-q", "time"], check=True)


def find_binary(arg: str | None) -> pathlib.Path:
    if arg:
        return pathlib.Path(arg)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/leadline/target"))
    for profile in ("release", "debug"):
        if (target / profile / "leadline").exists():
            if profile == "debug":
                print("WARNING: no release binary, timing the DEBUG build", file=sys.stderr)
            return target / profile / "leadline"
    sys.exit("no leadline binary: cargo build --release -p leadline-server --bin leadline")


def fmt_bytes(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--services", type=int, default=200)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--bin", help="leadline binary (default: release, else debug, under CARGO_TARGET_DIR)")
    ap.add_argument("--work", default=str(pathlib.Path.home() / ".cache/leadline/bench-queries"),
                    help="where generated histories and data dirs go (reused when present)")
    ap.add_argument("--only", nargs="*", help="subset of q1 q2 q3 scan")
    ap.add_argument("--no-check", action="store_true", help="skip the result comparison at scale")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    ensure_venv()
    ensure_time()
    import duckdb

    leadline = find_binary(args.bin)
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    setup, queries = load_sql()

    # Correctness first: the fixtures, leadline vs DuckDB vs expected_week.csv.
    fx = ROOT.parent / "shared" / "fixtures"
    for name in ("worked", "mixed"):
        if not (fx / name).exists():
            continue
        problems = check_fixture(leadline, fx / name, pathlib.Path(tempfile.mkdtemp()))
        print(f"fixture {name}: " + ("DuckDB SQL == leadline == expected_week.csv" if not problems else "MISMATCH"))
        for p in problems:
            print("   ", p)

    results = []
    for n in args.events:
        results.append(bench_one(args, leadline, work, n, setup, queries))
    print_report(results)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2, default=str))


def check_fixture(leadline, fixture: pathlib.Path, data: pathlib.Path) -> list[str]:
    import csv

    subprocess.run([str(leadline), "ingest", "--data", str(data), str(fixture / "events.ndjson")],
                   capture_output=True, text=True)
    _, queries = load_sql()
    ll = leadline_json(leadline, data, leadline_metrics_sql("week"))
    con = duckdb_connect(data)
    dk = duckdb_rows(con, queries["q1"])
    with open(fixture / "expected_week.csv") as f:
        want = list(csv.DictReader(f))
    problems = [f"DuckDB vs leadline: {d}" for d in diff_rows(dk, ll, METRIC_COLUMNS)]
    problems += [f"DuckDB vs expected: {d}" for d in diff_rows(dk, want, METRIC_COLUMNS)]
    problems += [f"leadline vs expected: {d}" for d in diff_rows(ll, want, METRIC_COLUMNS)]
    shutil.rmtree(data, ignore_errors=True)
    return problems


def leadline_queries(service: str, frm: str, to: str) -> dict[str, str]:
    return {
        "q1": "SELECT * FROM dora_metrics('week')",
        "q2": (
            "SELECT bucket_start, deployments, date_part('epoch', lead_time_p50) AS lead_time_p50, "
            "date_part('epoch', lead_time_p90) AS lead_time_p90, change_failure_rate, "
            "date_part('epoch', time_to_restore_p50) AS time_to_restore_p50 "
            f"FROM dora_metrics('week', '{frm}', '{to}') "
            f"WHERE service = '{service}' AND environment = 'production' ORDER BY bucket_start"
        ),
        "q3": (
            "WITH d AS (SELECT team, date_trunc('month', finished_at) AS month, count(*) AS deployments, "
            "change_failure_rate(failed) AS cfr, failed_deployment_recovery_time(recovery_time) AS fdrt "
            "FROM deployments WHERE status = 'succeeded' AND environment = 'production' GROUP BY 1, 2), "
            "c AS (SELECT team, date_trunc('month', deployed_at) AS month, lead_time(lead_time) AS lt_p50, "
            "lead_time(lead_time, 0.9) AS lt_p90 FROM changes WHERE environment = 'production' GROUP BY 1, 2), "
            "i AS (SELECT team, date_trunc('month', resolved_at) AS month, time_to_restore(restore_time) AS ttr "
            "FROM incidents WHERE environment = 'production' AND resolved_at IS NOT NULL GROUP BY 1, 2) "
            "SELECT d.team, d.month, d.deployments, d.cfr, date_part('epoch', d.fdrt) AS fdrt, "
            "date_part('epoch', c.lt_p50) AS lt_p50, date_part('epoch', c.lt_p90) AS lt_p90, "
            "date_part('epoch', i.ttr) AS ttr FROM d "
            "LEFT JOIN c ON (c.team IS NOT DISTINCT FROM d.team) AND c.month = d.month "
            "LEFT JOIN i ON (i.team IS NOT DISTINCT FROM d.team) AND i.month = d.month "
            "ORDER BY d.team NULLS FIRST, d.month"
        ),
        "scan": (
            "SELECT service, environment, date_trunc('week', occurred_at) AS week, count(*), "
            "min(occurred_at), max(occurred_at) FROM events GROUP BY 1, 2, 3"
        ),
    }


def bench_one(args, leadline, work: pathlib.Path, n: int, setup: str, queries: dict[str, str]) -> dict:
    tag = f"n{n}-s{args.services}-d{args.days}-seed{args.seed}"
    hist, data = work / f"{tag}.ndjson", work / f"{tag}.data"
    res: dict = {"events": n}
    if not hist.exists():
        t0 = time.perf_counter()
        subprocess.run([str(leadline), "generate", "--seed", str(args.seed), "--services", str(args.services),
                        "--days", str(args.days), "--events", str(n), "-o", str(hist) + ".tmp"], check=True)
        os.rename(str(hist) + ".tmp", hist)
        res["generate_s"] = time.perf_counter() - t0
    if not (data / "events" / "_delta_log").exists():
        shutil.rmtree(data, ignore_errors=True)
        wall, rss, _ = timed([str(leadline), "ingest", "--data", str(data), str(hist)])
        res["ingest_s"], res["ingest_rss"] = wall, rss
    glob = events_glob(data)
    import duckdb as _duckdb

    probe = _duckdb.connect()
    probe.execute("SET TimeZone = 'UTC'")
    iso = "'%Y-%m-%dT%H:%M:%S+00:00'"
    service, frm, to, stored = probe.execute(
        f"SELECT mode(service) FILTER (WHERE environment = 'production'), "
        f"strftime(max(occurred_at) - INTERVAL 90 DAY, {iso}), strftime(max(occurred_at), {iso}), count(*) "
        f"FROM read_parquet('{glob}', hive_partitioning = true)").fetchone()
    res["stored_events"] = stored
    params = {"EVENTS": glob, "SERVICE": service, "FROM": frm, "TO": to}
    ll_q = leadline_queries(service, params["FROM"], params["TO"])
    print(f"\n== {n} events requested, {stored} stored; Q2 service {service}, {params['FROM']} .. {params['TO']}",
          flush=True)

    tmp = pathlib.Path(tempfile.mkdtemp())
    (tmp / "setup.sql").write_text(fill(setup, params))
    (tmp / "child.py").write_text(DUCKDB_CHILD)
    names = args.only or ["q1", "q2", "q3", "scan"]
    for q in names:
        runs = {"leadline": [], "duckdb": [], "duckdb_in_process": []}
        rss = {"leadline": 0, "duckdb": 0}
        (tmp / f"{q}.sql").write_text(fill(queries.get(q, "SELECT 1"), params))
        for _ in range(args.runs):
            w, r, _ = timed([str(leadline), "query", "--data", str(data), "--format", "csv", ll_q[q]])
            runs["leadline"].append(w)
            rss["leadline"] = max(rss["leadline"], r)
            if q != "scan":
                w, r, out = timed([sys.executable, str(tmp / "child.py"), str(tmp / "setup.sql"), str(tmp / f"{q}.sql")])
                runs["duckdb"].append(w)
                runs["duckdb_in_process"].append(float(out.strip().splitlines()[-1]))
                rss["duckdb"] = max(rss["duckdb"], r)
        res[q] = {k: {"median_s": statistics.median(v), "runs_s": v, "peak_rss": rss.get(k, 0)} for k, v in runs.items() if v}
        line = f"  {q:5s} leadline {statistics.median(runs['leadline']):8.3f}s {fmt_bytes(rss['leadline']):>9s}"
        if runs["duckdb"]:
            line += (f" | duckdb {statistics.median(runs['duckdb']):8.3f}s {fmt_bytes(rss['duckdb']):>9s}"
                     f" (in-process {statistics.median(runs['duckdb_in_process']):.3f}s)")
        print(line, flush=True)

    if not args.no_check:
        res["check"] = {}
        con = duckdb_connect(data)
        for q in [x for x in ("q1", "q2", "q3") if x in names]:
            sql_ll = leadline_metrics_sql("week") if q == "q1" else ll_q[q]
            got, want = duckdb_rows(con, fill(queries[q], params)), leadline_json(leadline, data, sql_ll)
            cols = list(want[0].keys()) if want else []
            key = ("service", "environment", "bucket_start") if q == "q1" else ("team", "month", "bucket_start")
            d = diff_rows(got, want, cols, key=key)
            res["check"][q] = d
            print(f"  check {q}: " + ("same answers" if not d else f"{len(d)}+ differences, e.g. {d[:3]}"), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return res


def print_report(results: list[dict]):
    print("\n| events | query | leadline median | leadline peak RSS | DuckDB median (process) | DuckDB in-process | DuckDB peak RSS | leadline/DuckDB | leadline/scan |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        scan = r.get("scan", {}).get("leadline", {}).get("median_s")
        for q in ("q1", "q2", "q3", "scan"):
            if q not in r:
                continue
            ll = r[q]["leadline"]
            dk = r[q].get("duckdb")
            cells = [f"{r['events']:,}", q, f"{ll['median_s']:.3f} s", fmt_bytes(ll["peak_rss"]),
                     f"{dk['median_s']:.3f} s" if dk else "-",
                     f"{r[q]['duckdb_in_process']['median_s']:.3f} s" if dk else "-",
                     fmt_bytes(dk["peak_rss"]) if dk else "-",
                     f"{ll['median_s'] / dk['median_s']:.2f}" if dk else "-",
                     f"{ll['median_s'] / scan:.2f}" if scan else "-"]
            print("| " + " | ".join(cells) + " |")
    for r in results:
        extra = {k: r[k] for k in ("generate_s", "ingest_s") if k in r}
        if "ingest_rss" in r:
            extra["ingest_rss"] = fmt_bytes(r["ingest_rss"])
        if extra:
            print(f"{r['events']:,} events: {extra}")
    if len(results) > 1:
        a, b = results[0], results[-1]
        for q in ("q1", "q2", "q3", "scan"):
            if q in a and q in b:
                print(f"growth {a['events']:,} -> {b['events']:,} {q}: leadline x{b[q]['leadline']['median_s'] / a[q]['leadline']['median_s']:.2f}"
                      + (f", DuckDB x{b[q]['duckdb']['median_s'] / a[q]['duckdb']['median_s']:.2f}" if "duckdb" in a[q] else ""))


if __name__ == "__main__":
    main()
