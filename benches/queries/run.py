#!/usr/bin/env python3
"""Query benchmark: leadline vs hand-written DuckDB SQL vs DataFusion's bare scan.

    python3 benches/queries/run.py --events 1000000 10000000 --runs 5

For each N: `leadline generate` N events, `leadline ingest` them, check that
duckdb_dora.sql gives leadline's numbers, then time Q1-Q3 and the scan
through `leadline query` and the same answers through DuckDB (each a fresh
process: wall time, median over --runs, peak RSS from /usr/bin/time -v).
Then, per N, the append step: a small batch of late events (`leadline generate`
with another seed for a few of the same services, inside the existing time
span) is ingested into a copy of the data dir and Q1 is timed again, to show
whether an append costs work proportional to the whole log.
Per-N results are saved under WORK/results/ (--resume reuses them), and
--keep-going carries on after a failed N. See README.md beside this file.
The script re-executes itself in its own venv (~/.cache/leadline/bench-venv,
duckdb from PyPI) when duckdb is missing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
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
import traceback

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SQL_FILE = HERE / "duckdb_dora.sql"
VENV = pathlib.Path.home() / ".cache/leadline/bench-venv"
DUCKDB_REQ = "duckdb==2.*"

METRIC_COLUMNS = [
    "service", "environment", "bucket_start", "deployments", "deployment_frequency", "lead_time_p50",
    "lead_time_p90", "change_failure_rate", "rework_rate", "time_to_restore_p50", "failed_deployment_recovery_p50",
    "lead_time_tier", "deployment_frequency_tier", "change_failure_rate_tier", "time_to_restore_tier",
]
INTERVALS = {"lead_time_p50", "lead_time_p90", "time_to_restore_p50", "failed_deployment_recovery_p50",
             "fdrt", "lt_p50", "lt_p90", "ttr"}


# ---------------------------------------------------------------- the SQL --

# Statements run before duckdb_dora.sql's setup (benches/scale.py bounds DuckDB's spill files with them).
DUCKDB_PRELUDE = ""


def load_sql(path: pathlib.Path = SQL_FILE) -> tuple[str, dict[str, str]]:
    """(setup statements, {query name: SQL}) of duckdb_dora.sql."""
    text = path.read_text()
    parts = re.split(r"^-- name: (\w+)\s*$", text, flags=re.M)
    setup, rest = parts[0], parts[1:]
    return DUCKDB_PRELUDE + setup, {rest[i]: rest[i + 1].strip() for i in range(0, len(rest), 2)}


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


def leadline_json(bin_path, data, sql: str, extra: tuple[str, ...] = ()) -> list[dict]:
    out = subprocess.run([str(bin_path), "query", "--data", str(data), "--format", "json", *extra, sql],
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

def measure(cmd: list[str], env=None, ok=(0, 2)) -> dict:
    """One process under /usr/bin/time -v: wall seconds, CPU seconds (user + system), peak RSS bytes, its
    output. Exit status 2 is leadline's "some rows were rejected", still a measurement."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-v", "-o", tf.name, *cmd], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if p.returncode not in ok:
            raise RuntimeError(f"{cmd[:3]} failed ({p.returncode}): {p.stderr[-2000:]}")
        report = tf.read()
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", report))
    return {"wall_s": wall, "cpu_s": cpu, "rss": int(rss.group(1)) * 1024 if rss else 0,
            "stdout": p.stdout, "stderr": p.stderr}


def timed(cmd: list[str], env=None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of one process under /usr/bin/time -v."""
    m = measure(cmd, env)
    return m["wall_s"], m["rss"], m["stdout"]


DUCKDB_CHILD = """
import sys, time, duckdb
t0 = time.perf_counter()
setup, sql = open(sys.argv[1]).read(), open(sys.argv[2]).read()
con = duckdb.connect()
con.execute(setup)
# Every column as text (as leadline prints CSV); timestamptz objects would need pytz.
cur = con.execute("SELECT COLUMNS(*)::VARCHAR FROM (" + sql.rstrip().rstrip(";") + ")")
rows = cur.fetchall()
print(time.perf_counter() - t0)
if len(sys.argv) > 3:  # the answer, for the check (after the timer: not part of the in-process time)
    import json
    names = [d[0] for d in cur.description]
    json.dump([dict(zip(names, r)) for r in rows], open(sys.argv[3], "w"))
"""


def child_rows(path: pathlib.Path) -> list[dict] | None:
    """The rows a DuckDB child wrote (its last timed run), so a check need not run the query again."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


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


def fmt_size(n: int | None) -> str:
    return "-" if n is None else (f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB")


def fmt_s(x) -> str:
    return "-" if x is None else f"{x:.3f} s"


def dir_bytes(path: pathlib.Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def binary_id(path: pathlib.Path) -> str:
    """Short sha256 of the binary: cached data dirs and saved results belong to one build."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def read_json(path: pathlib.Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def write_json(path: pathlib.Path, obj):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def rmtree(path: pathlib.Path):
    shutil.rmtree(path, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    """run.py's options; benches/scale.py builds its settings for these functions from the same defaults."""
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
    ap.add_argument("--append-events", type=int, default=1000,
                    help="size of the late batch of the append step (0: no append step)")
    ap.add_argument("--append-services", type=int, default=3,
                    help="how many existing services (svc-000..) the small late batch touches")
    ap.add_argument("--append-all", action="store_true",
                    help="also append a batch touching all --services services (see --append-all-events)")
    ap.add_argument("--append-all-events", type=int,
                    help="size of the --append-all batch (default: the larger of --append-events and 25 per "
                         "service, so that every service gets events)")
    ap.add_argument("--append-at", type=float, default=0.5,
                    help="where in the stored time span the late batch starts, 0..1 (default: the middle)")
    ap.add_argument("--append-seed", type=int,
                    help="seed of the late batch (default --seed + 1000, so its evt-SEED-n ids are new)")
    ap.add_argument("--duckdb-max-events", type=int,
                    help="time DuckDB only up to this N (it is the slow side at scale; the checks still run "
                         "unless --no-check)")
    ap.add_argument("--keep-going", action="store_true",
                    help="when one N fails, print the error and go on with the next N")
    ap.add_argument("--resume", action="store_true",
                    help="reuse the steps already measured (saved in WORK/results/) for this binary and options")
    ap.add_argument("--reingest", action="store_true", help="re-ingest the cached data dirs from their NDJSON")
    ap.add_argument("--time-travel", action="store_true",
                    help="also time Q1 as of the middle of a history ingested in --batches batches, with another "
                         "attribution window, and both (leadline, --baseline-bin, DuckDB side by side)")
    ap.add_argument("--time-travel-only", action="store_true",
                    help="only the time-travel step (no single-batch data dir, no Q1-Q3, no append step)")
    ap.add_argument("--batches", type=int, default=4, help="batches of the time-travel history (default 4)")
    ap.add_argument("--window", default="6 hours", help="the other attribution window (default '6 hours')")
    ap.add_argument("--baseline-bin", help="another leadline binary timed beside --bin in the time-travel step")
    ap.add_argument("--reuse-data", action="store_true",
                    help="keep a cached data dir ingested by another binary (default: re-ingest it)")
    return ap


def main():
    ap = build_parser()
    args = ap.parse_args()
    args.time_travel = args.time_travel or args.time_travel_only
    if args.append_seed is None:
        args.append_seed = args.seed + 1000
    if args.append_all_events is None:
        args.append_all_events = max(args.append_events, 25 * args.services)
    if args.append_seed == args.seed:
        sys.exit("--append-seed must differ from --seed (the event ids evt-SEED-n would collide)")
    ensure_venv()
    ensure_time()
    import duckdb  # noqa: F401

    leadline = find_binary(args.bin)
    binid = binary_id(leadline)
    print(f"leadline binary {leadline} (sha256 {binid}, built "
          f"{dt.datetime.fromtimestamp(leadline.stat().st_mtime, dt.timezone.utc):%Y-%m-%d %H:%M} UTC)", flush=True)
    work = pathlib.Path(args.work)
    (work / "results").mkdir(parents=True, exist_ok=True)
    setup, queries = load_sql()

    # Correctness first: the fixtures, leadline vs DuckDB vs expected_week.csv.
    fx = ROOT.parent / "shared" / "fixtures"
    for name in ("worked", "mixed", "v2"):
        if not (fx / name).exists():
            continue
        problems = check_fixture(leadline, fx / name, pathlib.Path(tempfile.mkdtemp()))
        print(f"fixture {name}: " + ("DuckDB SQL == leadline == expected_week.csv" if not problems else "MISMATCH"))
        for p in problems:
            print("   ", p)

    results = []
    for n in args.events:
        # Steps are saved one by one; an append step also records its own options (append_params).
        config = {"events": n, "services": args.services, "days": args.days, "seed": args.seed, "binary": binid,
                  "runs": args.runs}
        saved_path = work / "results" / f"n{n}-s{args.services}-d{args.days}-seed{args.seed}-{binid}.json"
        saved = read_json(saved_path, {}) if args.resume else {}
        res = saved.get("result", {}) if saved.get("config") == config else {}
        if res:
            print(f"\n(resuming {n:,} events from {saved_path})", flush=True)

        def save(res=res, config=config, saved_path=saved_path):
            write_json(saved_path, {"config": config, "result": res})

        try:
            bench_one(args, leadline, binid, work, n, setup, queries, res, save)
        except Exception as e:  # noqa: BLE001 - reported, and fatal without --keep-going
            if not args.keep_going:
                raise
            traceback.print_exc()
            res["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]
            print(f"  FAILED at {n:,} events ({res['error']}); --keep-going: next N", flush=True)
        res.setdefault("events", n)
        results.append(res)
        save()
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
    listed = [c for c in METRIC_COLUMNS if want and c in want[0]]  # v1 fixtures list v1's columns
    problems += [f"DuckDB vs expected: {d}" for d in diff_rows(dk, want, listed)]
    problems += [f"leadline vs expected: {d}" for d in diff_rows(ll, want, listed)]
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


def prepare(args, leadline, binid: str, work: pathlib.Path, n: int, ingest: bool = True):
    """(tag, NDJSON path, data dir, meta) for N events: generated and ingested once, reused after.

    The NDJSON is written to .tmp and renamed, the data dir ingested into .tmp
    and renamed, so a run killed half-way leaves nothing that looks complete.
    WORK/TAG.meta.json keeps the generate and full-ingest figures and which
    binary ingested the data dir; a data dir of another binary is ingested
    again (unless --reuse-data), so queries and the append step are measured
    on the current engine's files and the append is compared with the
    current engine's full ingest.
    """
    tag = f"n{n}-s{args.services}-d{args.days}-seed{args.seed}"
    hist, data, meta_path = work / f"{tag}.ndjson", work / f"{tag}.data", work / f"{tag}.meta.json"
    meta = read_json(meta_path, {})
    if not hist.exists():
        print(f"  generate {n:,} events -> {hist}", flush=True)
        t0 = time.perf_counter()
        p = subprocess.run([str(leadline), "generate", "--seed", str(args.seed), "--services", str(args.services),
                            "--days", str(args.days), "--events", str(n), "-o", str(hist) + ".tmp"],
                           check=True, stderr=subprocess.PIPE, text=True)
        gen_s = time.perf_counter() - t0
        os.rename(str(hist) + ".tmp", hist)
        m = re.search(r"generated (\d+) events", p.stderr)
        meta = {"generate_s": gen_s, "generated_lines": int(m.group(1)) if m else None,
                "ndjson_bytes": hist.stat().st_size}
        rmtree(data)  # of an older NDJSON
        write_json(meta_path, meta)
    meta.setdefault("ndjson_bytes", hist.stat().st_size)
    if not ingest:
        return tag, hist, data, meta
    exists = (data / "events" / "_delta_log").exists()
    if not exists or args.reingest or (not args.reuse_data and (meta.get("binary") != binid or "ingest_s" not in meta)):
        why = ("--reingest" if args.reingest and exists else "no data dir" if not exists
               else "ingested by another binary" if meta.get("binary") else "no recorded ingest")
        print(f"  ingest {hist.name} ({why})", flush=True)
        tmpd = data.with_name(data.name + ".tmp")
        rmtree(tmpd)
        os.sync()  # dirty pages of the NDJSON or of removed dirs would otherwise be flushed inside the timing
        m = measure([str(leadline), "ingest", "--data", str(tmpd), str(hist)])
        rmtree(data)
        os.rename(tmpd, data)
        meta.update(binary=binid, ingest_s=m["wall_s"], ingest_cpu_s=m["cpu_s"], ingest_rss=m["rss"],
                    ingest_output=(m["stdout"] + m["stderr"]).strip()[-300:],
                    data_bytes=dir_bytes(data), ingested=dt.datetime.now(dt.timezone.utc).isoformat())
        write_json(meta_path, meta)
    elif meta.get("binary") != binid:
        print(f"  WARNING: {data.name} was ingested by another binary ({meta.get('binary')}); --reuse-data keeps it, "
              "and its full-ingest time is that binary's", flush=True)
    meta.setdefault("data_bytes", dir_bytes(data))
    return tag, hist, data, meta


def time_q1(args, leadline, data: pathlib.Path, sql: str) -> dict:
    runs, rss = [], 0
    for _ in range(args.runs):
        w, r, _ = timed([str(leadline), "query", "--data", str(data), "--format", "csv", sql])
        runs.append(w)
        rss = max(rss, r)
    return {"median_s": statistics.median(runs), "runs_s": runs, "peak_rss": rss}


def bench_one(args, leadline, binid: str, work: pathlib.Path, n: int, setup: str, queries: dict[str, str],
              res: dict, save) -> dict:
    print(f"\n== {n:,} events", flush=True)
    if args.time_travel_only:
        tag, hist, _, meta = prepare(args, leadline, binid, work, n, ingest=False)
        res["events"] = n
        if "time_travel" not in res or res["time_travel"].get("params") != time_travel_params(args):
            _, queries = load_sql()
            res["time_travel"] = time_travel(args, leadline, work, tag, hist, setup, queries["q1"])
            save()
        return res
    tag, hist, data, meta = prepare(args, leadline, binid, work, n)
    res["events"] = n
    for k in ("generate_s", "generated_lines", "ndjson_bytes", "data_bytes", "ingest_s", "ingest_cpu_s", "ingest_rss"):
        if k in meta:
            res[k] = meta[k]
    res["data_binary"] = meta.get("binary")
    lo, hi, existing, params = queries_step(args, leadline, n, data, setup, queries, res, save)

    if args.time_travel:
        if "time_travel" in res and res["time_travel"].get("params") == time_travel_params(args):
            print("  time travel (saved)", flush=True)
        else:
            res["time_travel"] = time_travel(args, leadline, work, tag, hist, setup, queries["q1"])
            save()

    if args.append_events > 0:
        for kind in ["few"] + (["all"] if args.append_all else []):
            a = res.get(f"append_{kind}")
            if a and a.get("params") == append_params(args, kind):
                print(f"  append {kind} (saved): ingest {a['ingest_s']:.3f}s, Q1 {a['q1']['median_s']:.3f}s", flush=True)
                continue
            res[f"append_{kind}"] = append_step(args, leadline, work, tag, data, kind, lo, hi, existing, queries["q1"],
                                                params)
            save()
    return res


def queries_step(args, leadline, n: int, data: pathlib.Path, setup: str, queries: dict[str, str], res: dict,
                 save) -> tuple[str, str, set[str], dict[str, str]]:
    """Q1-Q3 (and the scan) through `leadline query` and DuckDB's SQL over data, each a fresh process, then the
    cell-by-cell check of their answers; results go into res (steps already there are skipped).
    Returns the stored span (lo, hi), the stored services and the queries' parameters."""
    glob = events_glob(data)
    import duckdb as _duckdb

    probe = _duckdb.connect()
    probe.execute("SET TimeZone = 'UTC'")
    iso = "'%Y-%m-%dT%H:%M:%S+00:00'"
    service, frm, to, stored, lo, hi = probe.execute(
        f"SELECT mode(service) FILTER (WHERE environment = 'production'), "
        f"strftime(max(occurred_at) - INTERVAL 90 DAY, {iso}), strftime(max(occurred_at), {iso}), count(*), "
        f"strftime(min(occurred_at), {iso}), strftime(max(occurred_at), {iso}) "
        f"FROM read_parquet('{glob}', hive_partitioning = true)").fetchone()
    existing = {r[0] for r in probe.execute(
        f"SELECT DISTINCT service FROM read_parquet('{glob}', hive_partitioning = true)").fetchall()}
    res["stored_events"] = stored
    res["span"] = [lo, hi]
    params = {"EVENTS": glob, "SERVICE": service, "FROM": frm, "TO": to}
    ll_q = leadline_queries(service, params["FROM"], params["TO"])
    print(f"   {stored:,} stored, {lo} .. {hi}; Q2 service {service}, {params['FROM']} .. {params['TO']}",
          flush=True)

    tmp = pathlib.Path(tempfile.mkdtemp())
    (tmp / "setup.sql").write_text(fill(setup, params))
    (tmp / "child.py").write_text(DUCKDB_CHILD)
    names = args.only if args.only is not None else ["q1", "q2", "q3", "scan"]
    for q in names:
        if q in res:
            print(f"  {q:5s} (saved) leadline {res[q]['leadline']['median_s']:8.3f}s", flush=True)
            continue
        runs = {"leadline": [], "duckdb": [], "duckdb_in_process": []}
        rss = {"leadline": 0, "duckdb": 0}
        duckdb_error = None
        (tmp / f"{q}.sql").write_text(fill(queries.get(q, "SELECT 1"), params))
        for i in range(args.runs):
            w, r, _ = timed([str(leadline), "query", "--data", str(data), "--format", "csv", ll_q[q]])
            runs["leadline"].append(w)
            rss["leadline"] = max(rss["leadline"], r)
            if q != "scan" and not duckdb_error and (args.duckdb_max_events is None or n <= args.duckdb_max_events):
                try:
                    w, r, out = timed([sys.executable, str(tmp / "child.py"), str(tmp / "setup.sql"),
                                       str(tmp / f"{q}.sql")] + ([str(tmp / f"{q}.rows.json")] if i == args.runs - 1
                                                                 else []))
                except RuntimeError as e:  # e.g. out of memory at 50M: leadline's side is still measured
                    duckdb_error = short_error(e)
                    print(f"  {q:5s} DuckDB failed: {duckdb_error}", flush=True)
                    continue
                runs["duckdb"].append(w)
                runs["duckdb_in_process"].append(float(out.strip().splitlines()[-1]))
                rss["duckdb"] = max(rss["duckdb"], r)
        res[q] = {k: {"median_s": statistics.median(v), "runs_s": v, "peak_rss": rss.get(k, 0)} for k, v in runs.items() if v}
        if duckdb_error:
            res[q]["duckdb_error"] = duckdb_error
        line = f"  {q:5s} leadline {statistics.median(runs['leadline']):8.3f}s {fmt_bytes(rss['leadline']):>9s}"
        if runs["duckdb"]:
            line += (f" | duckdb {statistics.median(runs['duckdb']):8.3f}s {fmt_bytes(rss['duckdb']):>9s}"
                     f" (in-process {statistics.median(runs['duckdb_in_process']):.3f}s)")
        print(line, flush=True)
        save()

    if "check" in res:
        print("  check (saved): " + ", ".join(f"{q} {'same answers' if not d else 'DIFFERENT'}"
                                             for q, d in res["check"].items()), flush=True)
    elif not args.no_check:
        res["check"] = {}
        con = duckdb_connect(data)
        for q in [x for x in ("q1", "q2", "q3") if x in names and "duckdb_error" not in res.get(x, {})]:
            sql_ll = leadline_metrics_sql("week") if q == "q1" else ll_q[q]

            def compare(q=q, sql_ll=sql_ll):
                got = child_rows(tmp / f"{q}.rows.json") or duckdb_rows(con, fill(queries[q], params))
                want = leadline_json(leadline, data, sql_ll)
                cols = list(want[0].keys()) if want else []
                key = ("service", "environment", "bucket_start") if q == "q1" else ("team", "month", "bucket_start")
                return diff_rows(got, want, cols, key=key)

            d, err = check(q, compare)
            if err:
                res.setdefault("check_error", {})[q] = err
            else:
                res["check"][q] = d
        save()
    shutil.rmtree(tmp, ignore_errors=True)
    # The persisted read model (<data>/model/), if this engine keeps one, after ingest and the queries.
    res["model_bytes"] = dir_bytes(data / "model") if (data / "model").is_dir() else None

    return lo, hi, existing, params


def time_travel_params(args) -> list:
    return [args.batches, args.window, str(args.baseline_bin), args.runs]


def time_travel(args, leadline, work: pathlib.Path, tag: str, hist: pathlib.Path, setup: str, q1: str) -> dict:
    """Q1 as of the middle of a batched history, with another window, and both: leadline (and the
    --baseline-bin binary) beside the DuckDB SQL with its `as_of` / `attribution_window` variables set."""
    import duckdb as _duckdb

    binid = binary_id(leadline)
    data, meta_path = work / f"{tag}.b{args.batches}.data", work / f"{tag}.b{args.batches}.meta.json"
    meta = read_json(meta_path, {})
    if not (data / "events" / "_delta_log").exists() or (meta.get("binary") != binid and not args.reuse_data):
        # The NDJSON in --batches pieces by line (the generator writes in time order, so each batch
        # is a later stretch of the history), each ingested as its own append.
        print(f"  time travel: ingest {hist.name} in {args.batches} batches", flush=True)
        rmtree(data)
        tmpd = data.with_name(data.name + ".tmp")
        rmtree(tmpd)
        lines = sum(1 for _ in open(hist, "rb"))
        per = lines // args.batches + 1
        ingest_s, ingest_rss = [], 0
        with open(hist, "rb") as src:
            for i in range(args.batches):
                part = work / f"{tag}.batch{i}.ndjson"
                with open(part, "wb") as out:
                    for _, line in zip(range(per), src):
                        out.write(line)
                wall, rss, _ = timed([str(leadline), "ingest", "--data", str(tmpd), str(part)])
                part.unlink()
                ingest_s.append(wall)
                ingest_rss = max(ingest_rss, rss)
        os.rename(tmpd, data)
        meta = {"binary": binid, "ingest_s": ingest_s, "ingest_rss": ingest_rss}
        write_json(meta_path, meta)
    probe = _duckdb.connect()
    probe.execute("SET TimeZone = 'UTC'")
    stamps = [r[0] for r in probe.execute(
        "SELECT DISTINCT strftime(ingested_at, '%Y-%m-%dT%H:%M:%S.%f+00:00') FROM read_parquet(?) ORDER BY 1",
        [events_glob(data)]).fetchall()]
    as_of = stamps[len(stamps) // 2 - 1] if len(stamps) > 1 else stamps[0]
    seen = probe.execute("SELECT count(*) FILTER (WHERE ingested_at <= ?::TIMESTAMPTZ), count(*) FROM read_parquet(?)",
                         [as_of, events_glob(data)]).fetchone()
    print(f"  time travel: {len(stamps)} batches, as of {as_of} ({seen[0]:,} of {seen[1]:,} events), "
          f"window {args.window!r}", flush=True)
    variants = {
        "as_of": (["--as-of", as_of], f"SET VARIABLE as_of = TIMESTAMPTZ '{as_of}';"),
        "window": (["--attribution-window", args.window],
                   f"SET VARIABLE attribution_window = INTERVAL '{args.window}';"),
    }
    variants["as_of+window"] = (variants["as_of"][0] + variants["window"][0], variants["as_of"][1] + variants["window"][1])
    sql = leadline_queries("", "", "")["q1"]
    out = {"params": time_travel_params(args), "batches": len(stamps), "as_of_at": as_of, "seen_events": seen[0],
           "events": seen[1], "ingest_s": meta.get("ingest_s"), "ingest_rss": meta.get("ingest_rss"),
           "model_bytes": dir_bytes(data / "model") if (data / "model").is_dir() else None}
    tmp = pathlib.Path(tempfile.mkdtemp())
    (tmp / "child.py").write_text(DUCKDB_CHILD)
    (tmp / "q1.sql").write_text(q1)
    tools = [("leadline", leadline)] + ([("baseline", pathlib.Path(args.baseline_bin))] if args.baseline_bin else [])
    for name, (extra, duck_set) in variants.items():
        (tmp / f"setup-{name}.sql").write_text(fill(setup, {"EVENTS": events_glob(data)}) + "\n" + duck_set)
        runs = {k: [] for k, _ in tools} | {"duckdb": [], "duckdb_in_process": []}
        rss = {k: 0 for k in runs}
        duckdb_error = ("not run (--duckdb-max-events)" if args.duckdb_max_events is not None
                        and seen[1] > args.duckdb_max_events else None)
        for i in range(args.runs):
            for k, b in tools:
                w, r, _ = timed([str(b), "query", "--data", str(data), "--format", "csv", *extra, sql])
                runs[k].append(w)
                rss[k] = max(rss[k], r)
            if duckdb_error:
                continue
            try:
                w, r, o = timed([sys.executable, str(tmp / "child.py"), str(tmp / f"setup-{name}.sql"),
                                 str(tmp / "q1.sql")] + ([str(tmp / f"{name}.rows.json")] if i == args.runs - 1
                                                         else []))
            except RuntimeError as e:  # e.g. out of memory: leadline's side is still measured
                duckdb_error = short_error(e)
                print(f"  {name:13s}DuckDB failed: {duckdb_error}", flush=True)
                continue
            runs["duckdb"].append(w)
            runs["duckdb_in_process"].append(float(o.strip().splitlines()[-1]))
            rss["duckdb"] = max(rss["duckdb"], r)
        out[name] = {k: {"median_s": statistics.median(v), "runs_s": v, "peak_rss": rss[k]} for k, v in runs.items()
                     if v}
        if duckdb_error:
            out[name]["duckdb_error"] = duckdb_error
        line = "  " + f"{name:13s}" + " | ".join(
            f"{k} {out[name][k]['median_s']:.3f}s {fmt_bytes(rss[k])}" for k in runs
            if k != "duckdb_in_process" and k in out[name])
        print(line, flush=True)
        if not args.no_check and not duckdb_error:
            def compare(duck_set=duck_set, extra=extra, name=name):
                got = child_rows(tmp / f"{name}.rows.json")
                if got is None:
                    con = duckdb_connect(data)
                    con.execute(duck_set)
                    got = duckdb_rows(con, q1)
                want = leadline_json(leadline, data, leadline_metrics_sql("week"), tuple(extra))
                return diff_rows(got, want, METRIC_COLUMNS)

            d, err = check(name, compare)
            out[name]["check" if not err else "check_error"] = d if not err else err
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def append_params(args, kind: str) -> list:
    return ([args.append_services, args.append_events] if kind == "few" else [args.services, args.append_all_events]) + [
        args.append_at, args.append_seed]


def append_step(args, leadline, work: pathlib.Path, tag: str, data: pathlib.Path, kind: str, lo: str, hi: str,
                existing: set[str], duck_q1: str, params: dict[str, str], batch_shape: tuple | None = None,
                in_place: bool = False) -> dict:
    """Late events for existing services, ingested into a copy of the data dir; then Q1 on that copy.

    The batch is `leadline generate` with another seed (so new event,
    deployment and incident ids, new commit shas) and the same service names
    (svc-000.. for the first --append-services services, or all of them),
    starting at --append-at of the stored span: late, out-of-order events in
    the middle of the history, the case an incremental read model must
    handle without recomputing everything.

    batch_shape = (services, events, first day, seed) overrides the batch's shape
    (benches/scale.py: a batch later than everything stored, and a late one
    for every service). in_place ingests into data itself instead of a copy
    (the caller no longer needs the pristine dir; a copy of a 50M-event dir
    would need its size again on disk).
    """
    t_lo = dt.datetime.fromisoformat(lo)
    t_hi = dt.datetime.fromisoformat(hi)
    seed = args.append_seed
    if batch_shape:
        nserv, size, start, seed = batch_shape
    else:
        nserv, size = (args.append_services, args.append_events) if kind == "few" else (args.services,
                                                                                       args.append_all_events)
        start = (t_lo + (t_hi - t_lo) * args.append_at).date()
    batch = work / f"{tag}.append-{kind}.ndjson"
    subprocess.run([str(leadline), "generate", "--seed", str(seed), "--services", str(nserv),
                    "--days", "7", "--start", start.isoformat(), "--events", str(size),
                    "-o", str(batch)], check=True, capture_output=True)
    lines = [json.loads(x) for x in batch.read_text().splitlines() if x.strip()]
    services = sorted({e["service"] for e in lines})
    occ = sorted(e["occurred_at"] for e in lines)
    kinds: dict[str, int] = {}
    for e in lines:
        kinds[e["event_type"]] = kinds.get(e["event_type"], 0) + 1
    out = {"batch_events": len(lines), "services": len(services), "event_types": kinds,
           "batch_span": [occ[0], occ[-1]] if occ else None,
           "params": [nserv, size, str(start), seed] if batch_shape else append_params(args, kind)}
    new = [s for s in services if s not in existing]
    inside = bool(occ) and dt.datetime.fromisoformat(occ[-1].replace("Z", "+00:00")) <= t_hi
    print(f"  append {kind}: {len(lines):,} events ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}) "
          f"for {len(services)} services, {occ[0] if occ else '-'} .. {occ[-1] if occ else '-'}"
          + (f"; WARNING {len(new)} services not in the log" if new else "")
          + ("; inside the stored span" if inside else "; after the stored span"), flush=True)
    out["inside_span"] = inside

    # Fixed cost: the same batch into an empty data dir.
    empty = work / f"scratch-{tag}-empty"
    rmtree(empty)
    out["ingest_empty_s"], _, _ = timed([str(leadline), "ingest", "--data", str(empty), str(batch)])
    rmtree(empty)

    scratch = data if in_place else work / f"scratch-{tag}"
    if not in_place:
        rmtree(scratch)
        t0 = time.perf_counter()
        subprocess.run(["cp", "-a", str(data), str(scratch)], check=True)
        out["copy_s"] = time.perf_counter() - t0
    try:
        m = measure([str(leadline), "ingest", "--data", str(scratch), str(batch)])
        out["ingest_s"], out["ingest_cpu_s"], out["ingest_rss"] = m["wall_s"], m["cpu_s"], m["rss"]
        out["ingest_output"] = m["stdout"].strip()[-300:]
        out["q1"] = time_q1(args, leadline, scratch, "SELECT * FROM dora_metrics('week')")
        out["model_bytes"] = dir_bytes(scratch / "model") if (scratch / "model").is_dir() else None
        print("    " + ("" if in_place else f"cp -a {out['copy_s']:.2f}s (not counted) | ")
              + f"ingest {out['ingest_s']:.3f}s (CPU {out['ingest_cpu_s']:.3f}s) "
              f"{fmt_bytes(out['ingest_rss'])} (into an empty dir {out['ingest_empty_s']:.3f}s) | Q1 after "
              f"{out['q1']['median_s']:.3f}s (first run {out['q1']['runs_s'][0]:.3f}s) {fmt_bytes(out['q1']['peak_rss'])}"
              f" | {out['ingest_output']}", flush=True)
        if not args.no_check:
            d, err = check("q1 after append", lambda: diff_rows(
                duckdb_rows(duckdb_connect(scratch), fill(duck_q1, {**params, "EVENTS": events_glob(scratch)})),
                leadline_json(leadline, scratch, leadline_metrics_sql("week")), METRIC_COLUMNS))
            out["check_q1" if not err else "check_error"] = d if not err else err
    finally:
        if not in_place:
            rmtree(scratch)
        batch.unlink()
    return out


def check(label: str, compare) -> tuple[list[str] | None, str | None]:
    """(differences, None), or (None, why) when the comparison could not run (DuckDB out of memory at 50M):
    reported, not raised, so the other steps still run."""
    try:
        d = compare()
    except Exception as e:  # noqa: BLE001 - duckdb.Error or a failed leadline query
        print(f"  check {label}: could not run ({short_error(e)})", flush=True)
        return None, short_error(e)
    print(f"  check {label}: " + ("same answers" if not d else f"{len(d)}+ differences, e.g. {d[:3]}"), flush=True)
    return d, None


def short_error(e: Exception) -> str:
    """The last line of a failed process's stderr (DuckDB's exception), for a table cell."""
    lines = [x for x in str(e).strip().splitlines() if x.strip()]
    return (lines[-1] if lines else type(e).__name__)[:200]


def ratio(a, b) -> str:
    return f"{a / b:.3f}" if a is not None and b else "-"


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

    print("\n| events | stored | generate | NDJSON | full ingest | ingest peak RSS | data dir (after ingest) | <data>/model (after the queries) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['events']:,} | {r.get('stored_events', 0):,} | {fmt_s(r.get('generate_s'))} | "
              f"{fmt_size(r.get('ndjson_bytes'))} | {fmt_s(r.get('ingest_s'))} | "
              f"{fmt_bytes(r['ingest_rss']) if r.get('ingest_rss') else '-'} | {fmt_size(r.get('data_bytes'))} | "
              f"{fmt_size(r.get('model_bytes')) if r.get('model_bytes') is not None else 'none'} |")
    for r in results:
        if "error" in r:
            print(f"{r['events']:,} events: FAILED {r['error']}")

    appends = [(r, k) for r in results for k in ("few", "all") if f"append_{k}" in r]
    if appends:
        print("\nAppend step: a late batch ingested into a copy of the data dir (the copy not counted), then Q1.")
        print("| events | batch | batch events | services | batch ingest | same batch into empty dir | full ingest "
              "| batch/full ingest | Q1 before | Q1 after append (median) | Q1 after (first run) | Q1 after/full ingest "
              "| Q1 after/before | cp -a (not counted) | Q1 check |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r, k in appends:
            a = r[f"append_{k}"]
            before = r.get("q1", {}).get("leadline", {}).get("median_s")
            chk = "-" if "check_q1" not in a else ("same" if not a["check_q1"] else f"{len(a['check_q1'])}+ diffs")
            print(f"| {r['events']:,} | {k} | {a['batch_events']:,} | {a['services']} | {fmt_s(a['ingest_s'])} | "
                  f"{fmt_s(a['ingest_empty_s'])} | {fmt_s(r.get('ingest_s'))} | {ratio(a['ingest_s'], r.get('ingest_s'))} | "
                  f"{fmt_s(before)} | {fmt_s(a['q1']['median_s'])} | {fmt_s(a['q1']['runs_s'][0])} | "
                  f"{ratio(a['q1']['median_s'], r.get('ingest_s'))} | {ratio(a['q1']['median_s'], before)} | "
                  f"{fmt_s(a.get('copy_s'))} | {chk} |")

    travels = [r for r in results if "time_travel" in r]
    if travels:
        print("\nTime travel and windows: Q1 (dora_metrics('week')) over a history ingested in batches, as of the "
              "middle batch, with another attribution window, and both; each a fresh process, median.")
        print("| events | batches | variant | leadline | peak RSS | baseline | peak RSS | DuckDB | DuckDB in-process "
              "| peak RSS | leadline/DuckDB | leadline/baseline | check |")
        print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in travels:
            t = r["time_travel"]
            for v in ("as_of", "window", "as_of+window"):
                if v not in t:
                    continue
                ll, bl, dk = t[v]["leadline"], t[v].get("baseline"), t[v].get("duckdb")
                if dk is None:
                    print(f"| {r['events']:,} | {t['batches']} | {v} | {ll['median_s']:.3f} s | "
                          f"{fmt_bytes(ll['peak_rss'])} | DuckDB failed: {t[v].get('duckdb_error')} |")
                    continue
                chk = "-" if "check" not in t[v] else ("same" if not t[v]["check"] else "DIFFERENT")
                print(f"| {r['events']:,} | {t['batches']} | {v} | {ll['median_s']:.3f} s | {fmt_bytes(ll['peak_rss'])} | "
                      f"{fmt_s(bl['median_s']) if bl else '-'} | {fmt_bytes(bl['peak_rss']) if bl else '-'} | "
                      f"{dk['median_s']:.3f} s | {t[v]['duckdb_in_process']['median_s']:.3f} s | "
                      f"{fmt_bytes(dk['peak_rss'])} | {ratio(ll['median_s'], dk['median_s'])} | "
                      f"{ratio(ll['median_s'], bl['median_s']) if bl else '-'} | {chk} |")

    ok = [r for r in results if "error" not in r]
    if len(ok) > 1:
        base = ok[0]
        rows = [("events stored", lambda r: r.get("stored_events"), False),
                ("full ingest", lambda r: r.get("ingest_s"), True)]
        for q in ("q1", "q2", "q3", "scan"):
            rows.append((f"{q} leadline", lambda r, q=q: r.get(q, {}).get("leadline", {}).get("median_s"), True))
            if q != "scan":
                rows.append((f"{q} DuckDB", lambda r, q=q: r.get(q, {}).get("duckdb", {}).get("median_s"), True))
        for k in ("few", "all"):
            rows.append((f"append {k}: batch ingest", lambda r, k=k: r.get(f"append_{k}", {}).get("ingest_s"), True))
            rows.append((f"append {k}: Q1 after", lambda r, k=k: r.get(f"append_{k}", {}).get("q1", {}).get("median_s"), True))
        print(f"\nGrowth: each figure divided by the one at {base['events']:,} events (absolute value in brackets).")
        print("| measure | " + " | ".join(f"{r['events']:,}" for r in ok) + " |")
        print("|---|" + "---:|" * len(ok))
        for label, get, secs in rows:
            b = get(base)
            if b is None:
                continue
            cells = []
            for r in ok:
                v = get(r)
                if v is None:
                    cells.append("-")
                else:
                    absolute = f"{v:.3f} s" if secs else f"{v:,}"
                    cells.append(f"x{v / b:.2f} ({absolute})" if b else f"({absolute})")
            print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
