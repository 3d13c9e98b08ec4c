#!/usr/bin/env python3
"""Scale benchmark (issue 15): every goal of the issue at each history size, leadline beside DuckDB,
in one growth table.

    python3 benches/scale.py --sizes 1M,10M,50M --bin PATH/leadline [--baseline-bin MAIN/leadline]

For each size N, one history (`leadline generate --seed 42 --services 400 --days 730 --events N`),
then, each under /usr/bin/time -v (wall, CPU, peak RSS):

1. bulk ingest: DuckDB converting the NDJSON to Parquet, then `leadline ingest` into an empty dir;
2. on-disk sizes of events/ (the log), index/, model/, tables/ and (index + model + tables) / log;
3. Q1-Q3 through `leadline query` and DuckDB's SQL (benches/queries/run.py, answers checked cell by cell);
4. two appends of ~1,000 events into the N-event dir, each `leadline ingest` (durable, the read model
   caught up): (a) later than everything stored, (b) late, inside the stored span, for every service
   the generator reaches; then Q1 again (checked against DuckDB);
5. over the wire, `leadline serve` on that dir: dashboard panels (`leadline-load --mix panel=1`) with 1,
   then 50 connections (latency, q/s, p99, server RSS), then group commit (`--mix insert=1`) with 1, then
   50 connections: inserts/s and their ratio;
6. time travel and windows: the same NDJSON ingested in 4 batches (a second data dir; the first is
   deleted before), Q1 as of the 2nd batch, with `--attribution-window '6 hours'`, and both, beside
   DuckDB's SQL (run.py's time-travel step).

Each size's files are deleted before the next (--keep keeps them). Prints the growth table (markdown,
a row per N) and appends it to --results. See benches/README.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "queries"))
import run  # noqa: E402  (benches/queries/run.py: generation, timing, Q1-Q3, appends, time travel, checks)

STEPS = ("ingest", "queries", "appends", "wire", "time_travel")

DUCKDB_COPY = """
import sys, duckdb
src, dst = sys.argv[1], sys.argv[2]
duckdb.sql(f"COPY (SELECT * FROM read_json({src!r}, format = 'newline_delimited')) TO {dst!r} (FORMAT parquet)")
"""


def size_arg(text: str) -> list[int]:
    """'1M,2.2M,500k,3000' -> event counts."""
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*([\d.]+)\s*([kKmM]?)\s*", part)
        if not m:
            raise argparse.ArgumentTypeError(f"not a size: {part!r} (e.g. 1M, 2.2M, 500k)")
        out.append(round(float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()]))
    return out


def label(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n:,}"


def loadavg() -> str:
    return " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=size_arg, default=size_arg("1M,10M,50M"), help="history sizes (default 1M,10M,50M)")
    ap.add_argument("--bin", help="the leadline binary measured (a release build; copy it first)")
    ap.add_argument("--table-from", nargs="+", metavar="JSON",
                    help="only print the table of sizes measured before (WORK/results/scale-*.json), e.g. of runs "
                         "made one size at a time")
    ap.add_argument("--load-bin", help="leadline-load (default: beside --bin)")
    ap.add_argument("--baseline-bin", help="another leadline binary timed beside --bin in the time-travel step")
    ap.add_argument("--work", default="/tmp/scale/work", help="scratch: histories, data dirs (default /tmp/scale/work)")
    ap.add_argument("--results", help="markdown file the table is appended to (default WORK/results.md)")
    ap.add_argument("--runs", type=int, default=3, help="fresh-process runs per query, median (default 3)")
    ap.add_argument("--services", type=int, default=400)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--append-events", type=int, default=1000, help="size of each append batch (default 1000)")
    ap.add_argument("--batches", type=int, default=4, help="batches of the time-travel history (default 4)")
    ap.add_argument("--window", default="6 hours", help="the other attribution window (default '6 hours')")
    ap.add_argument("--load-seconds", type=float, default=30,
                    help="duration of each leadline-load run (default 30; a commit took 11.5 s at 10M)")
    ap.add_argument("--writers", type=int, default=50, help="connections of the concurrent-writers run (default 50)")
    ap.add_argument("--skip", nargs="*", default=[], choices=STEPS, help="steps left out")
    ap.add_argument("--no-check", action="store_true", help="skip the cell-by-cell checks against DuckDB")
    ap.add_argument("--duckdb-max-events", type=int,
                    help="run DuckDB's queries, and the checks against them, only up to this N (DuckDB is the "
                         "slow side at scale: ~9 minutes a query at 10M events here)")
    ap.add_argument("--duckdb-spill-limit", default="8GiB",
                    help="DuckDB's max_temp_directory_size (its spill files share the disk; default 8GiB)")
    ap.add_argument("--keep", action="store_true", help="keep each size's NDJSON and data dirs (default: delete)")
    return ap.parse_args()


def run_args(args) -> argparse.Namespace:
    """The settings run.py's functions read, from its own defaults plus this command's options."""
    r = run.build_parser().parse_args([])
    r.events, r.runs, r.services, r.days, r.seed = args.sizes, args.runs, args.services, args.days, args.seed
    r.work, r.bin, r.baseline_bin = args.work, args.bin, args.baseline_bin
    r.only = ["q1", "q2", "q3"]
    r.no_check = args.no_check
    r.batches, r.window = args.batches, args.window
    r.time_travel = True
    r.append_seed = args.seed + 1000
    return r


# ------------------------------------------------------------------ steps --

def duckdb_copy(work: pathlib.Path, tag: str, hist: pathlib.Path) -> dict:
    """DuckDB converting the NDJSON to one Parquet file (no validation, no deduplication)."""
    out = work / f"{tag}.duckdb.parquet"
    script = work / "duckdb_copy.py"
    script.write_text(DUCKDB_COPY)
    os.sync()  # the freshly generated NDJSON's dirty pages would otherwise be flushed inside the timing
    try:
        m = run.measure([sys.executable, str(script), str(hist), str(out)], ok=(0,))
        return {"wall_s": m["wall_s"], "cpu_s": m["cpu_s"], "rss": m["rss"], "bytes": out.stat().st_size}
    finally:
        out.unlink(missing_ok=True)


def sizes(data: pathlib.Path) -> dict:
    got = {part: run.dir_bytes(data / part) for part in ("events", "index", "model", "tables")}
    got["derived_over_log"] = (got["index"] + got["model"] + got["tables"]) / got["events"] if got["events"] else None
    return got


def appends(rargs, args, leadline, work, tag, data, lo, hi, existing, q1, params) -> dict:
    """(a) later than everything stored, (b) late, from the middle of the span; both into data itself."""
    t_lo, t_hi = dt.datetime.fromisoformat(lo), dt.datetime.fromisoformat(hi)
    shapes = {
        "later": (args.services, args.append_events, t_hi.date() + dt.timedelta(days=1), args.seed + 1000),
        "late": (args.services, args.append_events, (t_lo + (t_hi - t_lo) / 2).date(), args.seed + 2000),
    }
    return {kind: run.append_step(rargs, leadline, work, tag, data, kind, lo, hi, existing, q1, params,
                                  batch_shape=shape, in_place=True)
            for kind, shape in shapes.items()}


def serve(leadline, data: pathlib.Path, max_connections: int, log: pathlib.Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([str(leadline), "serve", "--data", str(data), "--listen", "127.0.0.1:0",
                             "--max-connections", str(max_connections)],
                            stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r" on 127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise RuntimeError(f"leadline serve did not start: {log.read_text()[-1000:]}")


def drive(load_bin, port: int, pid: int, conns: int, mix: str, seconds: float) -> dict:
    """One leadline-load run: the kind's q/s and latencies, whether every acknowledged insert is stored once."""
    p = subprocess.run([str(load_bin), "--url", f"postgresql://leadline@127.0.0.1:{port}/leadline",
                        "--connections", str(conns), "--duration", str(seconds), "--mix", mix,
                        "--server-pid", str(pid), "--json"], capture_output=True, text=True)
    if p.returncode not in (0, 1):
        raise RuntimeError(f"leadline-load failed ({p.returncode}): {p.stderr[-1000:]}")
    report = json.loads(p.stdout)
    kind = report["kinds"].get(mix.split("=")[0], {})
    ver = report.get("inserts") or {}
    out = {"qps": kind.get("qps"), "count": kind.get("count"), "p50_ms": kind.get("p50_ms"),
           "p99_ms": kind.get("p99_ms"), "errors": kind.get("errors"), "passed": report.get("passed"),
           "acknowledged": ver.get("acknowledged"), "verified": ver.get("verified"),
           "server_rss": (report.get("server") or {}).get("rss_kib", 0) * 1024,
           "server_peak_rss": (report.get("server") or {}).get("peak_rss_kib", 0) * 1024}
    print(f"  {mix}, {conns} connection(s): {out['qps'] or 0:.1f}/s, p50 {out['p50_ms'] or 0:.1f} ms, p99 "
          f"{out['p99_ms'] or 0:.1f} ms, server RSS {run.fmt_bytes(out['server_rss'])}"
          + (f", acknowledged {ver.get('acknowledged')} / stored once {ver.get('verified')}" if ver else "")
          + ("" if report.get("passed", True) else ", FAILED") + (f", errors {out['errors']}" if out["errors"] else ""),
          flush=True)
    return out


def over_the_wire(args, leadline, load_bin, work: pathlib.Path, data: pathlib.Path) -> dict:
    """On one `leadline serve` over data: dashboard panels (leadline-load --mix panel=1) with 1, then
    --writers connections; then group commit (--mix insert=1) with 1, then --writers connections."""
    proc, port = serve(leadline, data, args.writers + 10, work / "serve.log")
    out = {}
    try:
        for mix in ("panel=1", "insert=1"):
            for conns in (1, args.writers):
                out[f"{mix.split('=')[0]}_{conns}"] = drive(load_bin, port, proc.pid, conns, mix, args.load_seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    one, many = out["insert_1"]["qps"], out[f"insert_{args.writers}"]["qps"]
    out["insert_ratio"] = many / one if one else None
    out["writers"] = args.writers
    return out


def bench_size(args, rargs, leadline, binid, load_bin, work, n, setup, queries, res, save, disk):
    print(f"\n== {n:,} events (load average {loadavg()})", flush=True)
    res["load_before"] = loadavg()
    t_start = time.perf_counter()
    # Beyond --duckdb-max-events neither DuckDB's queries nor the checks (which need its answers) run.
    rargs.no_check = args.no_check or (args.duckdb_max_events is not None and n > args.duckdb_max_events)
    tag, hist, data, meta = run.prepare(rargs, leadline, binid, work, n, ingest=False)
    res.update(generate_s=meta.get("generate_s"), ndjson_bytes=meta.get("ndjson_bytes"))
    disk()

    def step(name: str, fn):
        """One step; its failure (DuckDB out of memory, a server that does not start) is recorded in its
        cell and the next step runs."""
        if name in args.skip:
            return
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - recorded, shown in the table
            traceback.print_exc()
            res.setdefault("errors", {})[name] = run.short_error(e)
            print(f"  {name} FAILED: {res['errors'][name]}", flush=True)
        disk()
        save()

    def duckdb_ingest():
        res["duckdb_ingest"] = d = duckdb_copy(work, tag, hist)
        print(f"  DuckDB NDJSON->Parquet {d['wall_s']:.2f} s, CPU {d['cpu_s']:.2f} s, {run.fmt_bytes(d['rss'])}, "
              f"{run.fmt_size(d['bytes'])}", flush=True)

    step("ingest", duckdb_ingest)
    try:
        # The leadline ingest is not a skippable step: every later step reads its data dir.
        tag, hist, data, meta = run.prepare(rargs, leadline, binid, work, n)
        for k in ("ingest_s", "ingest_cpu_s", "ingest_rss", "ingest_output"):
            res[k] = meta.get(k)
        print(f"  leadline ingest {res['ingest_s']:.2f} s, CPU {res.get('ingest_cpu_s') or 0:.2f} s, "
              f"{run.fmt_bytes(res['ingest_rss'] or 0)}: {res['ingest_output']}", flush=True)
        res["sizes"] = s = sizes(data)
        print("  on disk: " + ", ".join(f"{k} {run.fmt_size(s[k])}" for k in ("events", "index", "model", "tables"))
              + f"; (index+model+tables)/log {s['derived_over_log']:.2f}", flush=True)
        disk()
        save()
        span = {}

        def queries_step():
            if "queries" in args.skip:
                rargs.only = []  # the stored span and services only, for the appends
            try:
                lo, hi, existing, params = run.queries_step(rargs, leadline, n, data, setup, queries, res, save)
            finally:
                rargs.only = ["q1", "q2", "q3"]
            span.update(lo=lo, hi=hi, existing=existing, params=params)

        step("queries" if "queries" not in args.skip else "span", queries_step)
        if span:
            step("appends", lambda: res.update(appends=appends(rargs, args, leadline, work, tag, data, span["lo"],
                                                               span["hi"], span["existing"], queries["q1"],
                                                               span["params"])))
        step("wire", lambda: res.update(wire=over_the_wire(args, leadline, load_bin, work, data)))
    finally:
        if not args.keep:
            run.rmtree(data)
            pathlib.Path(work / f"{tag}.meta.json").unlink(missing_ok=True)
    try:
        step("time_travel", lambda: res.update(time_travel=run.time_travel(rargs, leadline, work, tag, hist, setup,
                                                                             queries["q1"])))
    finally:
        if not args.keep:
            run.rmtree(work / f"{tag}.b{args.batches}.data")
            for p in (work / f"{tag}.b{args.batches}.meta.json", hist):
                p.unlink(missing_ok=True)
    res["load_after"] = loadavg()
    res["total_s"] = time.perf_counter() - t_start
    print(f"  {label(n)} done in {res['total_s'] / 60:.1f} min (load average {loadavg()})", flush=True)


# ------------------------------------------------------------------ table --

def secs(x) -> str:
    if x is None:
        return "-"
    return f"{x:.2f} s" if x >= 0.995 else f"{x * 1000:.0f} ms"


def vs(ll: dict | None, dk: dict | None, rss: bool = False) -> str:
    """'leadline / DuckDB (ratio×)' of two {median_s, peak_rss} results."""
    if not ll:
        return "-"
    a = f"{secs(ll['median_s'])}" + (f" {run.fmt_size(ll['peak_rss'])}" if rss else "")
    if not dk or "median_s" not in dk:
        return a + " / -"
    b = f"{secs(dk['median_s'])}" + (f" {run.fmt_size(dk['peak_rss'])}" if rss else "")
    x = ll["median_s"] / dk["median_s"]
    return f"{a} / {b} ({x:.2f}×)" if x >= 0.095 else f"{a} / {b} ({x:.3f}×)"


def table(results: list[dict]) -> str:
    cols = ["events (stored)", "ingest leadline: wall, CPU, RSS", "DuckDB NDJSON→Parquet",
            "ingest leadline/DuckDB (wall)", "events/s per core", "log (events/)", "index", "model", "tables",
            "(index+model+tables)/log",
            "Q1 leadline / DuckDB", "Q2", "Q3 (RSS)", "as-of (RSS)", "window (RSS)", "as-of+window (RSS)",
            "append 1k later (services)", "append 1k late (services)", "panel p50, 1 conn", "panels, 50 conns",
            "inserts 1 conn", "inserts 50 conns", "group commit ratio", "run time"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---:|" * len(cols)]
    for r in results:
        d, s, tt = r.get("duckdb_ingest"), r.get("sizes") or {}, r.get("time_travel") or {}
        ap = r.get("appends") or {}
        ingest = (f"{secs(r['ingest_s'])}, {secs(r.get('ingest_cpu_s'))}, {run.fmt_size(r.get('ingest_rss'))}"
                  if r.get("ingest_s") else "-")
        duck = f"{secs(d['wall_s'])}, {secs(d['cpu_s'])}, {run.fmt_size(d['rss'])}" if d else "-"
        stored = r.get("stored_events")

        def q(name, rss=False):
            x = r.get(name) or {}
            cell = vs(x.get("leadline"), x.get("duckdb"), rss)
            if (r.get("check") or {}).get(name):
                cell += " **answers differ**"
            if (r.get("check_error") or {}).get(name):
                cell += f" (check failed: {r['check_error'][name]})"
            return cell + (f" (DuckDB: {x['duckdb_error']})" if x.get("duckdb_error") else "")

        def t(name):
            x = tt.get(name) or {}
            cell = vs(x.get("leadline"), x.get("duckdb"), True)
            if x.get("baseline"):
                cell += f"; baseline {secs(x['baseline']['median_s'])} {run.fmt_size(x['baseline']['peak_rss'])}"
            if x.get("duckdb_error"):
                cell += f" (DuckDB: {x['duckdb_error']})"
            if x.get("check"):
                cell += " **answers differ**"
            if x.get("check_error"):
                cell += f" (check failed: {x['check_error']})"
            return cell

        def a(kind):
            x = ap.get(kind)
            if not x or "ingest_s" not in x:
                return "-"
            bad = " **Q1 differs**" if x.get("check_q1") else ""
            bad += f" (check failed: {x['check_error']})" if x.get("check_error") else ""
            cpu = f", CPU {secs(x['ingest_cpu_s'])}" if x.get("ingest_cpu_s") is not None else ""
            return f"{secs(x['ingest_s'])}{cpu} ({x['batch_events']:,} events, {x['services']} services){bad}"

        w = r.get("wire") or {}
        nw = w.get("writers", 50)

        def wire(key, what):
            x = w.get(key)
            if w.get("error"):
                return f"failed: {w['error']}"
            if not x or x.get("qps") is None:
                return "-"
            return {"p50": f"{x['p50_ms']:.1f} ms", "qps": f"{x['qps']:.1f}/s, p99 {x['p99_ms']:.0f} ms, server RSS "
                    f"{run.fmt_size(x['server_rss'])}", "ins": f"{x['qps']:.1f}/s"}[what]

        row = [
            f"{label(r['events'])} ({stored:,})" if stored else label(r["events"]),
            ingest, duck,
            f"{r['ingest_s'] / d['wall_s']:.2f}×" if d and r.get("ingest_s") else "-",
            f"{stored / r['ingest_cpu_s']:,.0f}" if stored and r.get("ingest_cpu_s") else "-",
            *(run.fmt_size(s.get(k)) for k in ("events", "index", "model", "tables")),
            f"{s['derived_over_log']:.2f}" if s.get("derived_over_log") else "-",
            q("q1"), q("q2"), q("q3", True), t("as_of"), t("window"), t("as_of+window"),
            a("later"), a("late"), wire("panel_1", "p50"), wire(f"panel_{nw}", "qps"),
            wire("insert_1", "ins"), wire(f"insert_{nw}", "ins"),
            f"{w['insert_ratio']:.1f}×" if w.get("insert_ratio") else "-",
            f"{r['total_s'] / 60:.0f} min" if r.get("total_s") else "-",
        ]
        if r.get("error"):
            row[-1] += f" FAILED: {r['error']}"
        for name, why in (r.get("errors") or {}).items():
            row[-1] += f"; {name} FAILED: {why}"
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main():
    args = parse_args()
    if args.table_from:
        print(table(sorted((json.loads(pathlib.Path(f).read_text()) for f in args.table_from),
                           key=lambda r: r["events"])))
        return
    if not args.bin:
        sys.exit("--bin is required (the leadline binary measured)")
    run.ensure_venv()
    run.ensure_time()
    leadline = pathlib.Path(args.bin).resolve()
    load_bin = pathlib.Path(args.load_bin).resolve() if args.load_bin else leadline.with_name("leadline-load")
    if "wire" not in args.skip and not load_bin.exists():
        sys.exit(f"no {load_bin}: pass --load-bin or --skip wire")
    work = pathlib.Path(args.work)
    (work / "results").mkdir(parents=True, exist_ok=True)
    results_md = pathlib.Path(args.results or work / "results.md")
    # DuckDB spills to disk past its memory limit; bound it, the disk is shared.
    run.DUCKDB_PRELUDE = (f"SET temp_directory = '{work / 'duckdb-tmp'}';\n"
                          f"SET max_temp_directory_size = '{args.duckdb_spill_limit}';\n")
    rargs = run_args(args)
    binid = run.binary_id(leadline)
    setup, queries = run.load_sql()
    started = dt.datetime.now(dt.timezone.utc)
    print(f"leadline {leadline} (sha256 {binid}), leadline-load {load_bin}, {os.cpu_count()} cores, "
          f"load average {loadavg()}, {shutil.disk_usage(work).free / 2**30:.1f} GiB free", flush=True)

    results = []
    for n in args.sizes:
        res = {"events": n, "binary": binid}
        saved_path = work / "results" / f"scale-n{n}-{binid}.json"
        peak = [0]

        def disk(peak=peak, res=res):
            peak[0] = max(peak[0], run.dir_bytes(work))
            res["work_peak_bytes"] = peak[0]

        def save(res=res, saved_path=saved_path):
            run.write_json(saved_path, res)

        rargs.duckdb_max_events = args.duckdb_max_events if args.duckdb_max_events is not None else None
        try:
            bench_size(args, rargs, leadline, binid, load_bin, work, n, setup, queries, res, save, disk)
        except Exception as e:  # noqa: BLE001 - recorded in the table; the next size still runs
            traceback.print_exc()
            res["error"] = run.short_error(e)
            print(f"  FAILED at {n:,} events: {res['error']}", flush=True)
        print(f"  scratch peak (WORK measured after each step): {run.fmt_size(peak[0])}", flush=True)
        save()
        results.append(res)

    text = (f"\n### {started:%Y-%m-%d %H:%M} UTC: `benches/scale.py --sizes "
            f"{','.join(label(n) for n in args.sizes)}` (leadline sha256 {binid}; {args.services} services, "
            f"{args.days} days, seed {args.seed}; median of {args.runs}; {os.cpu_count()} cores; load average "
            + ", ".join(f"{label(r['events'])}: {r.get('load_before', '?')} → {r.get('load_after', '?')}"
                        for r in results) + ")\n\n" + table(results) + "\n")
    print(text)
    with open(results_md, "a") as f:
        f.write(text)
    print(f"(appended to {results_md}; per-size JSON in {work / 'results'})")
    run.rmtree(work / "duckdb-tmp")


if __name__ == "__main__":
    main()
