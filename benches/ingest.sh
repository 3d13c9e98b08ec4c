#!/usr/bin/env bash
# Bulk NDJSON ingest: leadline vs DuckDB converting the same file to Parquet.
#
#   benches/ingest.sh [N ...]        default: 1000000 10000000
#
# For each N: builds the release binary (once), generates N events with
# `leadline generate`, then measures in the same run, on the same file:
#   * leadline ingest into an empty data directory (parse, validate,
#     deduplicate through the id index, write partitioned Parquet, fsync,
#     commit to the Delta log);
#   * DuckDB (PyPI package) COPY (SELECT * FROM read_json(...)) TO x.parquet.
# Wall time and peak RSS come from /usr/bin/time -v. Prints one table per N
# with the leadline/DuckDB ratios, and appends it to $BENCH_DIR/results.txt.
# Not run by CI (see benches/README.md for the figures).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/leadline/target}"
export RUST_MIN_STACK="${RUST_MIN_STACK:-8388608}"
BENCH_DIR="${BENCH_DIR:-${TMPDIR:-/tmp}/leadline-bench}"
VENV="${LEADLINE_VENV:-$HOME/.cache/leadline/venv}"
# The shape of the generated history: 50 services over a year (~365 partitions).
SERVICES="${BENCH_SERVICES:-50}"
DAYS="${BENCH_DAYS:-365}"
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(1000000 10000000)

if [ ! -x /usr/bin/time ]; then
    echo "installing GNU time (apt-get install time)" >&2
    apt-get install -y -q time >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q time >/dev/null; }
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import duckdb' 2>/dev/null \
    || "$VENV/bin/pip" install -q --disable-pip-version-check "$(grep '^duckdb' tests/requirements.txt || echo duckdb)"

# LEADLINE_BIN=path skips the build and measures that binary instead.
if [ -z "${LEADLINE_BIN:-}" ]; then
    cargo build --release -p leadline-server --bin leadline
fi
LEADLINE="${LEADLINE_BIN:-$CARGO_TARGET_DIR/release/leadline}"
mkdir -p "$BENCH_DIR"

# Runs a command under /usr/bin/time -v; prints "wall_s cpu_s peak_rss_kib".
measure() {
    local log="$1"; shift
    /usr/bin/time -v -o "$log.time" "$@" >"$log" 2>&1 || {
        local rc=$?
        # leadline exits 2 when some rows were rejected: still a measurement.
        [ "$rc" -eq 2 ] || { echo "failed ($rc): $*" >&2; cat "$log" >&2; exit 1; }
    }
    "$VENV/bin/python" - "$log.time" <<'PY'
import sys
secs = rss = None
cpu = 0.0
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith(("User time (seconds)", "System time (seconds)")):
        cpu += float(line.rsplit(": ", 1)[1])
    elif line.startswith("Elapsed (wall clock) time"):
        parts = [float(p) for p in line.rsplit(": ", 1)[1].split(":")]
        secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    elif line.startswith("Maximum resident set size (kbytes)"):
        rss = int(line.rsplit(": ", 1)[1])
print(secs, cpu, rss)
PY
}

for N in "${SIZES[@]}"; do
    IN="$BENCH_DIR/events-$N.ndjson"
    if [ ! -s "$IN" ]; then
        echo "generating $N events ($SERVICES services, $DAYS days) -> $IN" >&2
        "$LEADLINE" generate --seed 1 --services "$SERVICES" --days "$DAYS" --events "$N" -o "$IN" 2>/dev/null
    fi
    ROWS=$(wc -l <"$IN")
    BYTES=$(stat -c %s "$IN")
    sync  # the generated file's dirty pages would otherwise be flushed inside the timing

    LOAD=$(cut -d' ' -f1 /proc/loadavg)
    DATA="$BENCH_DIR/data-$N"
    rm -rf "$DATA"
    echo "leadline ingest of $ROWS rows ($((BYTES / 1048576)) MiB)..." >&2
    read -r L_SECS L_CPU L_RSS < <(measure "$BENCH_DIR/leadline-$N.log" "$LEADLINE" ingest --data "$DATA" "$IN")
    SUMMARY=$(grep -m1 'appended' "$BENCH_DIR/leadline-$N.log" | sed 's/^.*: appended/appended/')
    L_OUT=$(du -sk "$DATA/events" | cut -f1)
    # The id index and the read model (its state and published tables) beside the log.
    L_INDEX=$(du -sk "$DATA/index" | cut -f1)
    L_MODEL=$(du -sk "$DATA/model" | cut -f1)
    L_TABLES=$(du -sk "$DATA/tables" 2>/dev/null | cut -f1 || echo 0)

    OUT="$BENCH_DIR/duckdb-$N.parquet"
    rm -f "$OUT"
    echo "duckdb COPY of the same file..." >&2
    read -r D_SECS D_CPU D_RSS < <(measure "$BENCH_DIR/duckdb-$N.log" "$VENV/bin/python" -c '
import sys, duckdb
src, dst = sys.argv[1], sys.argv[2]
duckdb.sql(f"COPY (SELECT * FROM read_json({src!r}, format = \"newline_delimited\")) TO {dst!r} (FORMAT parquet)")
' "$IN" "$OUT")
    D_OUT=$(($(stat -c %s "$OUT") / 1024))

    "$VENV/bin/python" - "$N" "$ROWS" "$BYTES" "$L_SECS" "$L_CPU" "$L_RSS" "$L_OUT" "$D_SECS" "$D_CPU" "$D_RSS" "$D_OUT" "$SUMMARY" \
        "$("$VENV/bin/python" -c 'import duckdb; print(duckdb.__version__)')" "$(nproc)" "$LOAD" "$L_INDEX" "$L_MODEL" "$L_TABLES" <<'PY' | tee -a "$BENCH_DIR/results.txt"
import sys
n, rows, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
lw, lc, lr, lo, dw, dc, dr, do = (float(x) for x in sys.argv[4:12])
summary, duck_version, cores, load = sys.argv[12], sys.argv[13], sys.argv[14], sys.argv[15]
index, model, tables = (float(x) for x in sys.argv[16:19])
mib = lambda kib: kib / 1024
print(f"\nN={n}: {rows} NDJSON rows, {size / 2**20:.0f} MiB, {cores} cores (load average before: {load}), duckdb {duck_version}")
print(f"  leadline: {summary}")
print(f"  {'':9} {'wall s':>7} {'events/s':>10} {'CPU s':>7} {'peak RSS MiB':>13} {'output MiB':>11}")
print(f"  {'leadline':9} {lw:7.2f} {rows / lw:10,.0f} {lc:7.2f} {mib(lr):13.0f} {mib(lo):11.0f}")
print(f"  {'duckdb':9} {dw:7.2f} {rows / dw:10,.0f} {dc:7.2f} {mib(dr):13.0f} {mib(do):11.0f}")
print(f"  {'ratio':9} {lw / dw:7.2f} {dw / lw:10.2f} {lc / dc:7.2f} {lr / dr:13.2f} {lo / do:11.2f}   (leadline / duckdb; events/s: > 1 means leadline is faster)")
print(f"  leadline on disk, MiB: log {mib(lo):.0f}, id index {mib(index):.0f}, read model {mib(model):.0f}, "
      f"published tables {mib(tables):.0f}")
PY
    rm -rf "$DATA" "$OUT"
done
