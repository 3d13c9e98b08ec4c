"""Other engines read leadline's log without leadline.

`DIR/events` and `DIR/rejected` are Delta Lake tables whose transaction log
leadline writes itself (engine/src/log/delta.rs). These tests hold that log to
what real Delta readers accept: the `deltalake` package (delta-rs /
delta-kernel), Polars' `read_delta`, and DuckDB reading the Parquet files that
the Delta log names (DuckDB's own `delta` extension is downloaded from
DuckDB's site at run time, which CI cannot reach). Each must return exactly
the rows `leadline query` returns, and, while leadline appends and compacts,
only ever a committed state.
"""
import datetime as dt
import json
import threading
import time

import deltalake
import duckdb
import polars as pl
import pytest

from conftest import run

EVENT_COLUMNS = "event_id, event_type, occurred_at, service, environment, change_ids, schema_version"
# `query --format json` prints a list as display text ("[a, b]"), so leadline's
# side asks for change_ids joined with a separator no id contains.
SEP = "\x1f"
LEADLINE_EVENT_COLUMNS = EVENT_COLUMNS.replace(
    "change_ids", "array_to_string(change_ids, chr(31)) AS change_ids_text, cardinality(change_ids) AS change_ids_len"
)
REJECTED_COLUMNS = "source, line, event_id, kind, reason, raw"


def utc(value) -> dt.datetime:
    """An instant from leadline's JSON text or a reader's datetime."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert value.tzinfo is not None, f"{value!r} has no time zone: Delta `timestamp` is an instant"
    return value.astimezone(dt.timezone.utc)


def query(leadline_bin, data, sql, *extra):
    out = run(leadline_bin, "query", "--data", data, "--format", "json", *extra, sql)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def event_key(row) -> tuple:
    if "change_ids_len" in row:  # leadline's side, see LEADLINE_EVENT_COLUMNS
        n, text = row["change_ids_len"], row["change_ids_text"]
        ids = None if n is None else (text.split(SEP) if n else [])
        assert ids is None or len(ids) == n, row
    else:
        ids = row["change_ids"]
    return (
        row["event_id"],
        row["event_type"],
        utc(row["occurred_at"]),
        row["service"],
        row["environment"],
        None if ids is None else tuple(ids),
        row["schema_version"],
    )


def rejected_key(row) -> tuple:
    return tuple(row[c] for c in REJECTED_COLUMNS.split(", "))


def duckdb_rows(rel) -> list[dict]:
    """Rows of a DuckDB relation, through Arrow (keeps time zones without pytz)."""
    for name in ("to_arrow_table", "fetch_arrow_table", "arrow"):
        if hasattr(rel, name):
            table = getattr(rel, name)()
            break
    if hasattr(table, "read_all"):
        table = table.read_all()
    return table.to_pylist()


def delta_files(table: deltalake.DeltaTable) -> list[str]:
    """Data files of the table's loaded version, as local paths."""
    uris = table.file_uris() if hasattr(table, "file_uris") else table.files()
    return [u.removeprefix("file://") for u in uris]


@pytest.fixture(scope="module")
def mixed_dir(leadline_bin, fixtures, tmp_path_factory):
    data = tmp_path_factory.mktemp("readers") / "data"
    out = run(leadline_bin, "ingest", "--data", data, fixtures / "mixed" / "events.ndjson")
    assert out.returncode == 2, out.stderr  # the fixture has rejected rows on purpose
    return data


@pytest.fixture(scope="module")
def leadline_events(leadline_bin, mixed_dir):
    rows = query(leadline_bin, mixed_dir, f"SELECT {LEADLINE_EVENT_COLUMNS} FROM events")
    assert len(rows) > 100
    return sorted(map(event_key, rows))


def test_deltalake_reads_the_events_table(mixed_dir, leadline_events):
    table = deltalake.DeltaTable(str(mixed_dir / "events"))
    assert table.metadata().partition_columns == ["event_date"]
    arrow = table.to_pyarrow_table()
    rows = arrow.to_pylist()
    assert sorted(map(event_key, rows)) == leadline_events
    # The partition value is the UTC date of occurred_at.
    for r in rows:
        assert r["event_date"] == utc(r["occurred_at"]).date(), r["event_id"]
    assert len({r["event_id"] for r in rows}) == len(rows)


def test_polars_reads_the_events_table(mixed_dir, leadline_events):
    df = pl.read_delta(str(mixed_dir / "events"))
    assert df.schema["occurred_at"] == pl.Datetime("us", "UTC")
    assert df.schema["change_ids"] == pl.List(pl.String)
    assert df.schema["event_date"] == pl.Date
    rows = df.to_dicts()
    assert sorted(map(event_key, rows)) == leadline_events
    mismatched = df.filter(pl.col("occurred_at").dt.date() != pl.col("event_date"))
    assert mismatched.height == 0, mismatched


def test_duckdb_reads_the_files_the_log_names(mixed_dir, leadline_events):
    table = deltalake.DeltaTable(str(mixed_dir / "events"))
    files = delta_files(table)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rel = con.sql(
        f"SELECT {EVENT_COLUMNS}, event_date FROM read_parquet($files, hive_partitioning = true)",
        params={"files": files},
    )
    rows = duckdb_rows(rel)
    assert sorted(map(event_key, rows)) == leadline_events
    for r in rows:
        assert str(r["event_date"]) == utc(r["occurred_at"]).date().isoformat(), r["event_id"]
    assert len(rows) == len(leadline_events)


def test_the_quarantine_reads_the_same_everywhere(leadline_bin, mixed_dir):
    expected = sorted(map(rejected_key, query(leadline_bin, mixed_dir, f"SELECT {REJECTED_COLUMNS} FROM rejected_events")))
    assert len(expected) == 14  # 10 invalid + 4 conflicts in the fixture
    path = str(mixed_dir / "rejected")
    table = deltalake.DeltaTable(path)
    assert sorted(map(rejected_key, table.to_pyarrow_table().to_pylist())) == expected
    assert sorted(map(rejected_key, pl.read_delta(path).to_dicts())) == expected
    rel = duckdb.sql(f"SELECT {REJECTED_COLUMNS} FROM read_parquet($files)", params={"files": delta_files(table)})
    assert sorted(map(rejected_key, duckdb_rows(rel))) == expected


def generated_chunks(leadline_bin, tmp_path, events, chunk):
    """A generated history split into files of `chunk` events, each id once
    (the generator redelivers a few events on purpose; those are dropped here)."""
    src = tmp_path / "all.ndjson"
    run(leadline_bin, "generate", "--seed", 11, "--services", 4, "--days", 20, "--events", events + 50, "-o", src)
    lines, ids = [], []
    for line in src.read_text().splitlines():
        if line.strip() and (event_id := json.loads(line)["event_id"]) not in ids:
            lines.append(line)
            ids.append(event_id)
    assert len(lines) >= events, f"the generator wrote {len(lines)} distinct events"
    lines, ids = lines[:events], ids[:events]
    files = []
    for i in range(0, len(lines), chunk):
        f = tmp_path / f"chunk-{i // chunk:04}.ndjson"
        f.write_text("\n".join(lines[i : i + chunk]) + "\n")
        files.append((f, ids[i : i + chunk]))
    return files


def test_time_travel_by_version_matches_each_append(leadline_bin, tmp_path):
    data = tmp_path / "data"
    after = {}  # delta version -> (event ids leadline had then, that append's ingested_at)
    for f, _ in generated_chunks(leadline_bin, tmp_path, 600, 150):
        out = run(leadline_bin, "ingest", "--data", data, f)
        assert out.returncode == 0, out.stderr
        version = deltalake.DeltaTable(str(data / "events")).version()
        ids = sorted(r["event_id"] for r in query(leadline_bin, data, "SELECT event_id FROM events"))
        ingested_at = query(leadline_bin, data, "SELECT max(ingested_at) AS t FROM events")[0]["t"]
        after[version] = (ids, ingested_at)
    assert sorted(after) == [1, 2, 3, 4], "version 0 creates the table, then one commit per append"
    out = run(leadline_bin, "compact", "--data", data)
    assert out.returncode == 0, out.stderr
    assert deltalake.DeltaTable(str(data / "events")).version() == 5
    for version, (ids, ingested_at) in after.items():
        old = deltalake.DeltaTable(str(data / "events"), version=version)
        assert sorted(old.to_pyarrow_table(columns=["event_id"]).column("event_id").to_pylist()) == ids, version
        # leadline's own time travel agrees with Delta's.
        as_of = query(leadline_bin, data, "SELECT event_id FROM events", "--as-of", ingested_at)
        assert sorted(r["event_id"] for r in as_of) == ids, version
    # Compaction changed no rows.
    latest = deltalake.DeltaTable(str(data / "events"))
    assert sorted(latest.to_pyarrow_table(columns=["event_id"]).column("event_id").to_pylist()) == after[4][0]


def test_readers_never_see_a_torn_state(leadline_bin, tmp_path):
    """Readers poll the table while leadline appends small files and compacts."""
    data = tmp_path / "data"
    chunks = generated_chunks(leadline_bin, tmp_path, 2400, 60)
    # The first append creates the table; the readers start after it.
    first, first_ids = chunks[0]
    assert run(leadline_bin, "ingest", "--data", data, first).returncode == 0
    committed = [set(first_ids)]  # the event ids after each append, in order
    writer_error = []
    done = threading.Event()

    def writer():
        try:
            for i, (f, ids) in enumerate(chunks[1:], start=1):
                out = run(leadline_bin, "ingest", "--data", data, f)
                assert out.returncode == 0, out.stderr
                assert f"appended {len(ids)}," in out.stdout + out.stderr, out.stdout + out.stderr
                committed.append(committed[-1] | set(ids))
                if i % 7 == 0:
                    out = run(leadline_bin, "compact", "--data", data)
                    assert out.returncode == 0, out.stderr
        except BaseException as e:  # reported by the main thread
            writer_error.append(e)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []  # (reader, version or None, ids)
    path = str(data / "events")
    try:
        while not done.is_set():
            table = deltalake.DeltaTable(path)
            ids = table.to_pyarrow_table(columns=["event_id"]).column("event_id").to_pylist()
            seen.append(("deltalake", table.version(), ids))
            ids = pl.read_delta(path, columns=["event_id"])["event_id"].to_list()
            seen.append(("polars", None, ids))
            time.sleep(0.01)
    finally:
        thread.join(timeout=600)
    assert not writer_error, writer_error[0]
    final = deltalake.DeltaTable(path)
    assert final.version() > len(chunks), "compactions added commits"
    versions = {v for _, v, _ in seen if v is not None}
    assert len(seen) >= 10 and len(versions) >= 3, f"the readers polled too rarely: {len(seen)} reads"
    print(f"{len(seen)} reads over {len(versions)} versions, final version {final.version()}")
    valid = {len(s): s for s in committed}
    for reader, version, ids in seen:
        assert len(ids) == len(set(ids)), f"{reader} saw a duplicated event_id at version {version}"
        assert len(ids) in valid, f"{reader} saw {len(ids)} rows, no committed append had that many (version {version})"
        assert set(ids) == valid[len(ids)], f"{reader} saw rows of no committed state (version {version})"
    all_ids = final.to_pyarrow_table(columns=["event_id"]).column("event_id").to_pylist()
    assert sorted(all_ids) == sorted(committed[-1])


def test_checkpointed_tables_read_the_same_everywhere(leadline_bin, tmp_path):
    """Past 100 versions leadline writes Delta checkpoints (the events log and
    every published table): Delta readers start from them, and so does
    leadline; every reader still sees exactly what the commits say."""
    import psycopg
    from leadline_pg import Server

    data = tmp_path / "data"
    (first, _), *_ = generated_chunks(leadline_bin, tmp_path, 300, 300)
    assert run(leadline_bin, "ingest", "--data", data, first).returncode == 0
    server = Server(data)
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            # One commit per INSERT: a deployment of one service each time,
            # so every published table changes too.
            for i in range(105):
                cur = conn.execute(
                    "INSERT INTO events (event_id, event_type, occurred_at, service, environment, deployment_id) "
                    "VALUES (%s, 'deployment_succeeded', %s, 'svc-ckpt', 'production', %s)",
                    [f"ckpt-{i}", f"2026-02-01T{i // 60:02}:{i % 60:02}:00Z", f"dep-ckpt-{i}"],
                )
                assert cur.rowcount == 1
    finally:
        server.stop()
    for table in ["events", "tables/deployments", "tables/dora_metrics_week"]:
        log = data / table / "_delta_log"
        assert json.loads((log / "_last_checkpoint").read_text())["version"] == 100, table
        assert (log / f"{100:020}.checkpoint.parquet").is_file(), table
    events = deltalake.DeltaTable(str(data / "events"))
    assert events.version() >= 106
    want = sorted(r["event_id"] for r in query(leadline_bin, data, "SELECT event_id FROM events"))
    assert len(want) >= 405
    assert sorted(events.to_pyarrow_table(columns=["event_id"]).column("event_id").to_pylist()) == want
    assert sorted(pl.read_delta(str(data / "events")).get_column("event_id").to_list()) == want
    deployments = sorted(r["deployment_id"] for r in query(leadline_bin, data, "SELECT deployment_id FROM deployments"))
    published = deltalake.DeltaTable(str(data / "tables" / "deployments"))
    assert sorted(published.to_pyarrow_table(columns=["deployment_id"]).column("deployment_id").to_pylist()) == deployments
    # A version before the checkpoint is still there for time travel.
    before = deltalake.DeltaTable(str(data / "events"), version=50).to_pyarrow_table(columns=["event_id"])
    assert set(before.column("event_id").to_pylist()) < set(want)
    out = run(leadline_bin, "check", "--data", data)
    assert out.returncode == 0, out.stdout + out.stderr
    # A damaged checkpoint is named by `leadline check`, and not used: every
    # reader of leadline's still gets the commits' answer.
    checkpoint = data / "events" / "_delta_log" / f"{100:020}.checkpoint.parquet"
    checkpoint.write_bytes(checkpoint.read_bytes()[:-100])
    assert sorted(r["event_id"] for r in query(leadline_bin, data, "SELECT event_id FROM events")) == want
    out = run(leadline_bin, "check", "--data", data, check=False)
    assert out.returncode == 10 and "checkpoint.parquet" in out.stdout + out.stderr, out.stdout + out.stderr
