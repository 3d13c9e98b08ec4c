#!/usr/bin/env python3
"""Dashboard panel queries against `leadline serve`, binaries side by side.

    ~/.cache/leadline/venv/bin/python benches/panels.py --data DIR --bin before=PATH --bin after=PATH \
        [--runs 200] [--connections 50] [--seconds 20]

For each binary (one after the other, on the same data directory): start
`leadline serve`, then
  1. single panel latency: one connection runs each panel query --runs times
     (after 5 warm-up runs); median and p99 per query;
  2. concurrent panels: --connections connections (threads, psycopg), each
     running the panel queries round robin for --seconds; queries/s, p50 and
     p99 latency;
  3. the server's RSS (VmRSS, VmHWM) after the run.
Prints a table with the ratios after/before. Panels: `dora_metrics('week')`
for one service (rotating over the services), production, since a date; the
same for a team (its services); one service's deployments since a date.
Needs psycopg (the test venv has it). Until the load driver (benches/load)
exists, this is the 50-connection figure; Python's GIL makes the client a
bottleneck beyond a few thousand queries/s, far above what is measured here.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import threading
import time

import psycopg


def panels(services: list[str], team_services: list[list[str]], since: str) -> list[str]:
    out = []
    for i, s in enumerate(services):
        out.append(
            f"SELECT * FROM dora_metrics('week') WHERE service = '{s}' AND environment = 'production' "
            f"AND bucket_start >= '{since}' ORDER BY bucket_start"
        )
        team = ", ".join(f"'{t}'" for t in team_services[i % len(team_services)])
        out.append(
            f"SELECT * FROM dora_metrics('week') WHERE service IN ({team}) AND environment = 'production' "
            f"AND bucket_start >= '{since}' ORDER BY service, bucket_start"
        )
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss(pid: int) -> tuple[int, int]:
    fields = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    kb = lambda k: int(fields.get(k, "0 kB").split()[0])  # noqa: E731
    return kb("VmRSS") * 1024, kb("VmHWM") * 1024


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def measure(bin_path: str, data: str, args) -> dict:
    port = free_port()
    log = open(f"/tmp/panels-serve-{port}.log", "w")
    server = subprocess.Popen(
        [bin_path, "serve", "--data", data, "--listen", f"127.0.0.1:{port}",
         "--max-connections", str(args.connections + 10), "--statement-timeout-ms", "0"],
        stdout=log, stderr=subprocess.STDOUT)
    dsn = f"host=127.0.0.1 port={port} dbname=leadline user=leadline"
    try:
        for _ in range(300):
            try:
                psycopg.connect(dsn, autocommit=True).close()
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        with psycopg.connect(dsn, autocommit=True) as con:
            services = [r[0] for r in con.execute(
                "SELECT DISTINCT service FROM dora_metrics('month') WHERE environment = 'production' ORDER BY 1")]
            teams: dict[str, list[str]] = {}
            for team, service in con.execute(
                    "SELECT DISTINCT team, service FROM deployments WHERE team IS NOT NULL ORDER BY 1, 2"):
                teams.setdefault(team, []).append(service)
        team_services = [v for _, v in sorted(teams.items())][:50] or [[services[0]]]
        queries = panels(services[: args.services], team_services, args.since)
        result = {"services": len(services), "queries": len(queries)}

        # 1. one connection, each query in turn
        with psycopg.connect(dsn, autocommit=True) as con:
            single, rows = [], []
            for q in queries[:5]:
                con.execute(q).fetchall()
            for i in range(args.runs):
                q = queries[i % len(queries)]
                t0 = time.perf_counter()
                rows.append(len(con.execute(q).fetchall()))
                single.append(time.perf_counter() - t0)
        result["single_median"] = statistics.median(single)
        result["single_p99"] = pct(single, 0.99)
        result["rows_median"] = statistics.median(rows)

        # 2. N connections for a fixed time
        lat: list[float] = []
        errors = [0]
        lock = threading.Lock()
        stop = time.perf_counter() + args.seconds
        start = threading.Barrier(args.connections + 1)

        def worker(k: int):
            mine = []
            with psycopg.connect(dsn, autocommit=True) as con:
                start.wait()
                i = k
                while time.perf_counter() < stop:
                    q = queries[i % len(queries)]
                    i += 7
                    t0 = time.perf_counter()
                    try:
                        con.execute(q).fetchall()
                    except psycopg.Error:
                        errors[0] += 1
                        continue
                    mine.append(time.perf_counter() - t0)
            with lock:
                lat.extend(mine)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.connections)]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        result.update({
            "qps": len(lat) / wall, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "errors": errors[0],
            "done": len(lat),
        })
        result["rss"], result["hwm"] = rss(server.pid)
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--bin", action="append", required=True, help="NAME=PATH, in order (the first is the base)")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--services", type=int, default=40, help="how many services' panels to rotate over")
    ap.add_argument("--since", default="2027-06-01")
    args = ap.parse_args()
    results = {}
    for spec in args.bin:
        name, _, path = spec.partition("=")
        print(f"{name}: {path}", file=sys.stderr, flush=True)
        results[name] = measure(path, args.data, args)
        print(f"  {results[name]}", file=sys.stderr, flush=True)
    names = list(results)
    base = results[names[0]]
    rows = [
        ("single panel, median", "single_median", lambda v: f"{v * 1000:.2f} ms"),
        ("single panel, p99", "single_p99", lambda v: f"{v * 1000:.2f} ms"),
        (f"{args.connections} connections, queries/s", "qps", lambda v: f"{v:.1f}"),
        (f"{args.connections} connections, p50", "p50", lambda v: f"{v * 1000:.1f} ms"),
        (f"{args.connections} connections, p99", "p99", lambda v: f"{v * 1000:.1f} ms"),
        ("server RSS after", "rss", lambda v: f"{v / 2**20:.0f} MiB"),
        ("server peak RSS", "hwm", lambda v: f"{v / 2**20:.0f} MiB"),
    ]
    print("| measure | " + " | ".join(names) + " | " + " | ".join(f"{n}/{names[0]}" for n in names[1:]) + " |")
    print("|---|" + "---:|" * (2 * len(names) - 1))
    for label, key, fmt in rows:
        cells = [fmt(results[n][key]) for n in names]
        ratios = [f"{results[n][key] / base[key]:.3f}" if base[key] else "-" for n in names[1:]]
        print(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    print(f"(rows per panel, median: {base['rows_median']}; errors: "
          + ", ".join(f"{n} {results[n]['errors']}" for n in names) + ")")


if __name__ == "__main__":
    main()
