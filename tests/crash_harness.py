#!/usr/bin/env python3
"""Crash harness: SIGKILL leadline at random moments of its writes and prove
that nothing acknowledged is lost, nothing is stored twice, nothing half
written is visible, and every answer equals a clean rebuild's.

Each cycle runs one writer process and kills it (SIGKILL) after a random
delay drawn over that kind of process's usual run time, so kills land in
every phase: opening and recovering the directory, validating, writing data
files and index records, the commit, the read model's catch-up, the
auto-compaction that follows an append, and exiting. The writers:

* `leadline ingest` of a generated batch (`leadline generate`, NDJSON or CSV);
* `leadline serve`, sent one to three INSERT or COPY statements (psycopg,
  autocommit), killed while it works;
* `leadline compact` and `leadline rebuild [--from-scratch]`.

A batch is *acknowledged* when `leadline ingest` exited 0 or the server
answered its INSERT/COPY with CommandComplete. Every batch has its own
generator seed, which is in all of its event ids (`evt-<seed>-<n>`), so a
GROUP BY tells each batch's rows apart. A batch that was sent but not
acknowledged is sent again later (through any path) some of the time, as a
client would retry. After each kill a fresh server checks:

* every acknowledged batch is present exactly once (each id once);
* every other batch is all there or not there at all (never a part), and
  its quarantined row (some batches carry one invalid row) is there exactly
  when its events are;
* no row was taken for a conflict (every path stores the same content);
* `dora_metrics` per grain and the `deployments`, `changes` and `incidents`
  tables read the same from the read model as from a fold of the whole log
  (`SET leadline.as_of` far in the future folds the log in memory).

Every `--deep-every` cycles and at the end, a deep check: a copy of the data
directory rebuilt with `leadline rebuild --from-scratch`, and a fresh data
directory with one clean ingest of every batch found present, both answer
every query exactly as the crashed directory does.

Every `--epoch` cycles (250) the harness starts over in a fresh data
directory, so that a long run's cycles stay about as fast as its first.
Each cycle's process, kill time and outcome go to `<work>/trace.log`.

Usage: tests/crash_harness.py [--cycles N] [--seed S] [--work DIR] [--keep]
(`scripts/crash-harness --cycles 1000` runs the long mode). The short mode
runs from tests/test_crash.py.
"""
import argparse
import csv
import io
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import psycopg

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from leadline_pg import binary  # noqa: E402

# Columns a writer supplies, in the events table's order.
COLUMNS = ["event_id", "event_type", "occurred_at", "service", "environment", "commit_sha", "deployment_id",
           "incident_id", "change_ids", "team", "source", "attributes"]
# Few, close dates: appends keep landing in the same partitions, so the
# auto-compaction (more than 16 files in a partition) runs every few cycles.
START_DATES = ["2026-03-02", "2026-03-03", "2026-03-05"]
FAR_FUTURE = "9999-12-31T00:00:00Z"
# What the model and a fold of the log must answer alike.
ANSWERS = {
    "metrics_day": "SELECT * FROM dora_metrics('day') ORDER BY service, environment, bucket_start",
    "metrics_week": "SELECT * FROM dora_metrics('week') ORDER BY service, environment, bucket_start",
    "metrics_month": "SELECT * FROM dora_metrics('month') ORDER BY service, environment, bucket_start",
    "deployments": "SELECT * FROM deployments ORDER BY deployment_id, environment",
    "changes": "SELECT * FROM changes ORDER BY environment, commit_sha, deployment_id",
    "incidents": "SELECT * FROM incidents ORDER BY incident_id",
    "counts": "SELECT (SELECT count(*) FROM deployments) AS deployments, (SELECT count(*) FROM changes) AS changes, "
              "(SELECT count(*) FROM incidents) AS incidents, (SELECT count(*) FROM events) AS events",
}
# The deep check also compares what is stored, field by field.
STORED = ("SELECT event_id, event_type, occurred_at, service, environment, commit_sha, deployment_id, incident_id, "
          "change_ids, team, source, attributes, schema_version FROM events")
PER_BATCH = ("SELECT split_part(event_id, '-', 2) AS seed, count(*) AS n, count(DISTINCT event_id) AS ids "
             "FROM events GROUP BY 1")
QUARANTINED = ("SELECT split_part(event_id, '-', 2) AS seed, count(*) AS n FROM rejected_events "
               "WHERE kind = 'invalid' AND event_id LIKE 'bad-%' GROUP BY 1")
CONFLICTS = "SELECT count(*) FROM rejected_events WHERE kind = 'conflict'"


class Failure(AssertionError):
    pass


class Batch:
    """One generated batch of events: its file, ids, and what became of it."""

    def __init__(self, seed: int, path: pathlib.Path, rows: list, invalid: dict | None):
        self.seed = seed
        self.path = path
        self.rows = rows
        self.invalid = invalid
        self.ids = {r["event_id"] for r in rows}
        self.acked = False
        self.sends = 0  # deliveries that may have committed

    def all_rows(self):
        return self.rows + ([self.invalid] if self.invalid else [])


class Stats:
    def __init__(self):
        self.cycles = 0
        self.kills = 0
        self.kills_by = {}
        self.clean_exits = 0
        self.acked_batches = 0
        self.unacked_present = 0
        self.unacked_absent = 0
        self.resent = 0
        self.model_compared = 0
        self.model_behind = 0
        self.auto_compactions = 0
        self.events_verified = 0
        self.events_stored = 0
        self.deep_checks = 0
        self.data_directories = 1
        self.started = time.time()

    def kill(self, what):
        self.kills += 1
        self.kills_by[what] = self.kills_by.get(what, 0) + 1

    def summary(self):
        took = time.time() - self.started
        return {
            "cycles": self.cycles,
            "kills": self.kills,
            "kills_by_process": dict(sorted(self.kills_by.items())),
            "finished_before_the_kill": self.clean_exits,
            "acknowledged_batches": self.acked_batches,
            "unacknowledged_batches_found_whole": self.unacked_present,
            "unacknowledged_batches_found_absent": self.unacked_absent,
            "batches_sent_again": self.resent,
            "auto_compactions": self.auto_compactions,
            "cycles_with_model_behind_the_log": self.model_behind,
            "cycles_comparing_model_with_fold": self.model_compared,
            "events_verified": self.events_verified,
            "events_stored_at_the_end": self.events_stored,
            "deep_checks": self.deep_checks,
            "data_directories": self.data_directories,
            "seconds": round(took, 1),
            "seconds_per_cycle": round(took / max(self.cycles, 1), 2),
        }


def run(*args, check=True, **kw):
    out = subprocess.run([str(binary()), *map(str, args)], capture_output=True, text=True, **kw)
    if check and out.returncode != 0:
        raise Failure(f"leadline {' '.join(map(str, args))} exited {out.returncode}: {out.stderr}")
    return out


# An empty `change_ids` list (not the same as none): in a CSV file, `;`
# (an empty cell is null); over the wire, the array literal `{}`.
EMPTY_LIST_CSV = ";"
EMPTY_LIST_WIRE = "{}"


def csv_text(rows, header=True, empty_list=EMPTY_LIST_CSV):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if header:
        w.writerow(COLUMNS)
    for r in rows:
        w.writerow([cell(r.get(c), empty_list) for c in COLUMNS])
    return buf.getvalue()


def cell(v, empty_list):
    """A row's field as CSV/COPY text: lists `;`-separated, absent as empty."""
    if v is None:
        return ""
    if isinstance(v, list):
        return ";".join(v) if v else empty_list
    return str(v)


def sql_literal(v):
    if v is None:
        return "NULL"
    return "'" + cell(v, EMPTY_LIST_WIRE).replace("'", "''") + "'"


def insert_sql(rows):
    values = ",\n".join("(" + ", ".join(sql_literal(r.get(c)) for c in COLUMNS) + ")" for r in rows)
    return f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES\n{values}"


class Durations:
    """Typical run time of each kind of process, to spread kills over it:
    a kill lands uniformly within 1.6 times the typical run, so about a
    third of the runs finish (and keep the estimate current)."""

    SPREAD = 1.6

    def __init__(self):
        self.seen = {}

    def typical(self, kind, guess=3.0):
        return self.seen.get(kind, guess)

    def add(self, kind, seconds):
        old = self.seen.get(kind)
        self.seen[kind] = seconds if old is None else 0.7 * old + 0.3 * seconds

    def outlived(self, kind, seconds):
        """A run of `kind` was killed after `seconds`, still going: runs
        take longer than thought if that is past the typical time."""
        if seconds > self.typical(kind):
            self.seen[kind] = seconds

    def kill_after(self, rng, kind, guess=3.0):
        return rng.uniform(0, self.typical(kind, guess) * self.SPREAD)


class Harness:
    def __init__(self, work: pathlib.Path, seed: int, deep_every: int, log=print, epoch_cycles: int = 250):
        self.work = work
        self.data = work / "data"
        self.batch_dir = work / "batches"
        self.batch_dir.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(seed)
        self.seed = seed
        self.deep_every = deep_every
        self.log = log
        self.batches: dict[int, Batch] = {}
        self.next_seed = 1000 + seed * 100_000
        self.durations = Durations()
        self.stats = Stats()
        self.optimize_commits = 0
        self.epoch_cycles = epoch_cycles

    # --- batches -----------------------------------------------------------
    def new_batch(self) -> Batch:
        seed = self.next_seed
        self.next_seed += 1
        path = self.batch_dir / f"b{seed}.ndjson"
        run("generate", "--seed", seed, "--services", 3, "--days", self.rng.randint(1, 2),
            "--start", self.rng.choice(START_DATES), "-o", path)
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        invalid = None
        if self.rng.random() < 0.3:
            invalid = {"event_id": f"bad-{seed}-0", "event_type": "deploy", "occurred_at": rows[0]["occurred_at"],
                       "service": rows[0]["service"]}
            with path.open("a") as f:
                f.write(json.dumps(invalid) + "\n")
        b = Batch(seed, path, rows, invalid)
        self.batches[seed] = b
        return b

    def pick_batch(self) -> Batch:
        """A new batch; or, as a client retries, one sent but never
        acknowledged (a third of the time), or one already stored (a
        redelivery, one time in ten)."""
        unsure = [b for b in self.batches.values() if not b.acked and b.sends > 0]
        if unsure and self.rng.random() < 0.33:
            self.stats.resent += 1
            return self.rng.choice(unsure)
        stored = [b for b in self.batches.values() if b.acked]
        if stored and self.rng.random() < 0.1:
            self.stats.resent += 1
            return self.rng.choice(stored)
        return self.new_batch()

    # --- processes ----------------------------------------------------------
    def spawn(self, *args, env=None):
        return subprocess.Popen([str(binary()), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, **(env or {})})

    def kill_at(self, proc, delay, what):
        """SIGKILLs `proc` after `delay` s unless it exits first; True if killed."""
        try:
            proc.wait(timeout=delay)
            return False
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.stats.kill(what)
            return True

    def cli_cycle(self, kind):
        if kind == "ingest":
            b = self.pick_batch()
            if self.rng.random() < 0.3:
                path = self.batch_dir / f"b{b.seed}.csv"
                path.write_text(csv_text(b.all_rows()))
            else:
                path = b.path
            args = ["ingest", "--data", self.data, path]
            b.sends += 1
        elif kind == "compact":
            args = ["compact", "--data", self.data]
        else:
            args = ["rebuild", "--data", self.data] + (["--from-scratch"] if self.rng.random() < 0.3 else [])
        started = time.time()
        proc = self.spawn(*args)
        delay = self.durations.kill_after(self.rng, kind)
        killed = self.kill_at(proc, delay, kind)
        out, err = proc.communicate()
        self.trace(f"{kind} {' '.join(map(str, args[3:]))}: {'killed' if killed else 'exited ' + str(proc.returncode)} "
                   f"after {time.time() - started:.2f}s (kill at {delay:.2f}s)")
        if killed:
            self.durations.outlived(kind, delay)
            return
        self.durations.add(kind, time.time() - started)
        self.stats.clean_exits += 1
        if kind == "ingest":
            # 2: some rows rejected (the batch's invalid row); still an acknowledged append.
            if proc.returncode not in (0, 2):
                raise Failure(f"ingest of batch {b.seed} failed without a kill: {err}")
            self.ack(b)
        elif proc.returncode != 0:
            raise Failure(f"leadline {kind} failed without a kill: {err}")

    def trace(self, line):
        """One line of what each cycle did, in `<work>/trace.log`."""
        with (self.work / "trace.log").open("a") as f:
            f.write(f"{self.stats.cycles + 1}: {line}\n")

    def ack(self, b: Batch):
        if not b.acked:
            b.acked = True
            self.stats.acked_batches += 1

    def server_cycle(self):
        server = Server(self.data, self)
        try:
            ops = [(self.rng.choice(["insert", "copy"]), self.pick_batch()) for _ in range(self.rng.randint(1, 3))]
            expected = sum(self.durations.typical(kind) for kind, _ in ops)
            delay = self.rng.uniform(0, expected * Durations.SPREAD)
            timer = threading.Timer(delay, server.kill)
            started = time.time()
            timer.start()
            done = []
            try:
                with psycopg.connect(server.dsn(), autocommit=True, connect_timeout=30) as conn:
                    for kind, b in ops:
                        b.sends += 1
                        op_started = time.time()
                        try:
                            send(conn, kind, b, self.rng)
                        except psycopg.Error:
                            if not server.killed:
                                raise
                            self.durations.outlived(kind, time.time() - op_started)
                            break
                        self.durations.add(kind, time.time() - op_started)
                        self.ack(b)
                        done.append(f"{kind} b{b.seed}")
            except psycopg.OperationalError:
                if not server.killed:
                    raise
            finally:
                timer.cancel()
        finally:
            if server.killed:
                self.stats.kill("serve")
            else:
                self.stats.clean_exits += 1
                server.kill()
            self.trace(f"serve {', '.join(f'{k} b{b.seed}' for k, b in ops)}: acknowledged [{', '.join(done)}], "
                       f"{'killed' if server.killed else 'stopped'} at {delay:.2f}s of {time.time() - started:.2f}s")

    # --- checks -------------------------------------------------------------
    def log_state(self):
        """(events table version, read model version) from the files."""
        log = self.data / "events" / "_delta_log"
        versions = [int(p.stem) for p in log.glob("*.json")] if log.is_dir() else []
        optimize = 0
        for p in log.glob("*.json") if log.is_dir() else []:
            if '"operation":"OPTIMIZE"' in p.read_text():
                optimize += 1
        try:
            model = json.loads((self.data / "model" / "MANIFEST.json").read_text()).get("version")
        except (OSError, ValueError):
            model = None
        return (max(versions) if versions else None), model, optimize

    def verify(self):
        version, model, optimize = self.log_state()
        if optimize > self.optimize_commits:
            self.stats.auto_compactions += optimize - self.optimize_commits
            self.optimize_commits = optimize
        if version is not None and model != version:
            self.stats.model_behind += 1
        server = Server(self.data, self)
        try:
            with psycopg.connect(server.dsn(), autocommit=True, connect_timeout=30) as conn:
                self.check_batches(conn)
                model_answers = answers(conn)
                conn.execute(f"SET leadline.as_of = '{FAR_FUTURE}'")
                folded = answers(conn)
            for name in ANSWERS:
                if model_answers[name] != folded[name]:
                    raise Failure(f"{name}: the read model and a fold of the log disagree "
                                  f"(log version {version}, model version {model})")
            if version is not None and model == version:
                self.stats.model_compared += 1
        finally:
            server.kill()

    def check_batches(self, conn):
        per_batch = {int(seed): (n, ids) for seed, n, ids in conn.execute(PER_BATCH).fetchall()}
        quarantined = {int(seed): n for seed, n in conn.execute(QUARANTINED).fetchall()}
        conflicts = conn.execute(CONFLICTS).fetchone()[0]
        if conflicts:
            raise Failure(f"{conflicts} rows were taken for conflicts: a path stored other content for an id")
        verified = 0
        for seed, (n, ids) in per_batch.items():
            b = self.batches.get(seed)
            if b is None:
                raise Failure(f"events of a batch never sent: seed {seed}")
            if n != ids:
                raise Failure(f"batch {seed}: {n} rows for {ids} ids: stored more than once")
        for seed, b in self.batches.items():
            n, _ = per_batch.get(seed, (0, 0))
            q = quarantined.get(seed, 0)
            if n == len(b.ids):
                verified += n
                if b.invalid is not None and not 1 <= q <= b.sends:
                    raise Failure(f"batch {seed} is stored but its invalid row is quarantined {q} times "
                                  f"for {b.sends} deliveries")
                if not b.acked and not getattr(b, "seen_whole", False):
                    b.seen_whole = True
                    self.stats.unacked_present += 1
                # Stored whole: from now on it must stay (as if acknowledged).
                b.acked = True
            elif n == 0:
                if b.sends and not getattr(b, "seen_absent", False):
                    b.seen_absent = True
                    self.stats.unacked_absent += 1
                if b.acked:
                    raise Failure(f"acknowledged batch {seed} ({len(b.ids)} events) is missing")
                if q:
                    raise Failure(f"batch {seed} is absent but its invalid row is quarantined")
            else:
                raise Failure(f"batch {seed} is half visible: {n} of its {len(b.ids)} events")
        self.stats.events_verified += verified
        self.stats.events_stored = verified

    def deep_check(self):
        """A from-scratch rebuild of a copy, and a clean ingest of what is
        stored, answer exactly as the crashed directory does."""
        self.stats.deep_checks += 1
        copy = self.work / "rebuilt"
        fresh = self.work / "fresh"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.copytree(self.data, copy)
        run("rebuild", "--data", copy, "--from-scratch")
        stored = [b for b in self.batches.values() if b.acked]
        for chunk in range(0, len(stored), 50):
            files = [b.path for b in stored[chunk:chunk + 50]]
            out = run("ingest", "--data", fresh, *files, check=False)
            if out.returncode not in (0, 2):
                raise Failure(f"clean ingest failed: {out.stderr}")
        # The crashed directory has leftovers at most (notes), no damage.
        out = run("check", "--data", self.data, check=False)
        if out.returncode != 0:
            raise Failure(f"leadline check found damage after the crashes:\n{out.stdout}{out.stderr}")
        if not stored:
            return
        for name, sql in [*ANSWERS.items(), ("events", STORED)]:
            got = [query_csv(d, sql) for d in (self.data, copy, fresh)]
            if got[0] != got[1]:
                raise Failure(f"{name}: the crashed directory and its from-scratch rebuild disagree")
            if got[0] != got[2]:
                raise Failure(f"{name}: the crashed directory and a clean ingest of its batches disagree")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.rmtree(fresh, ignore_errors=True)

    # --- the loop -----------------------------------------------------------
    def cycle(self):
        started = time.time()
        r = self.rng.random()
        if r < 0.35:
            self.cli_cycle("ingest")
        elif r < 0.75:
            self.server_cycle()
        elif r < 0.87:
            self.cli_cycle("compact")
        else:
            self.cli_cycle("rebuild")
        verifying = time.time()
        self.verify()
        self.trace(f"verified in {time.time() - verifying:.2f}s; cycle {time.time() - started:.2f}s")
        self.stats.cycles += 1

    def new_epoch(self):
        """A fresh data directory (after a deep check of the last one), so
        that a long run's cycles stay about as fast as its first."""
        self.deep_check()
        self.stats.data_directories += 1
        shutil.rmtree(self.data, ignore_errors=True)
        self.batches.clear()
        self.optimize_commits = 0

    def run(self, cycles: int):
        for i in range(cycles):
            if i and self.epoch_cycles and i % self.epoch_cycles == 0:
                self.new_epoch()
            self.cycle()
            if self.deep_every and (i + 1) % self.deep_every == 0:
                self.deep_check()
            if (i + 1) % 10 == 0:
                s = self.stats
                self.log(f"cycle {i + 1}/{cycles}: kills {s.kills}, acknowledged batches {s.acked_batches}, "
                         f"events verified {s.events_verified}, {s.summary()['seconds_per_cycle']} s/cycle")
        self.deep_check()
        return self.stats.summary()


def send(conn, kind, b: Batch, rng):
    rows = b.all_rows()
    if kind == "insert":
        conn.execute(insert_sql(rows), prepare=False)
    else:
        fmt = rng.choice(["csv", "text"])
        stmt = f"COPY events ({', '.join(COLUMNS)}) FROM STDIN" + (" (FORMAT csv)" if fmt == "csv" else "")
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            if fmt == "csv":
                copy.write(csv_text(rows, header=False, empty_list=EMPTY_LIST_WIRE))
            else:
                for r in rows:
                    copy.write_row([cell(r.get(c), EMPTY_LIST_WIRE) or None for c in COLUMNS])


def answers(conn):
    """Each answer's rows, sorted (ties in ORDER BY may come in any order)."""
    return {name: sorted(map(repr, conn.execute(sql).fetchall())) for name, sql in ANSWERS.items()}


def query_csv(data, sql):
    """`leadline query` as sorted CSV lines (header first)."""
    lines = run("query", "--data", data, "--format", "csv", sql).stdout.splitlines()
    return lines[:1] + sorted(lines[1:])


class Server:
    """`leadline serve` on a free port; `kill()` SIGKILLs it."""

    def __init__(self, data, harness):
        self.proc = harness.spawn("serve", "--data", data, "--listen", "127.0.0.1:0")
        self.killed = False
        self.lock = threading.Lock()
        line = self.proc.stdout.readline()
        m = re.search(r" on 127\.0\.0\.1:(\d+)", line)
        if not m:
            self.proc.kill()
            raise Failure(f"leadline serve did not start: {line}{self.proc.stderr.read()}")
        self.port = int(m.group(1))

    def dsn(self):
        return f"postgresql://leadline@127.0.0.1:{self.port}/leadline"

    def kill(self):
        with self.lock:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
                self.killed = True
            self.proc.wait()
            self.proc.stdout.close()
            self.proc.stderr.close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--deep-every", type=int, default=50, help="cycles between deep checks (0: only at the end)")
    p.add_argument("--epoch", type=int, default=250, help="cycles on one data directory before a fresh one")
    p.add_argument("--work", type=pathlib.Path, help="working directory (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the working directory")
    args = p.parse_args(argv)
    work = args.work or pathlib.Path(tempfile.mkdtemp(prefix="leadline-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    ok = False
    try:
        h = Harness(work, args.seed, args.deep_every, log=lambda m: print(m, flush=True), epoch_cycles=args.epoch)
        summary = h.run(args.cycles)
        print(json.dumps(summary, indent=2))
        ok = True
    finally:
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif not ok:
            print(f"working directory kept for inspection: {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
