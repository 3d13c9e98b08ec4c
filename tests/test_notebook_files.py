"""Notebooks read what leadline derives straight from the data directory.

Every update of the read model publishes `deployments`, `changes`,
`incidents` and `dora_metrics_day|week|month` as Delta tables under
`DIR/tables/`, and names the Delta version of each that belong to one model
in `DIR/tables/_snapshot.json` (README, "Notebooks over the files"). These
tests read them with real readers, without leadline: the `deltalake`
package, Polars' `read_delta`, pandas (through pyarrow) and DuckDB. DuckDB's
own `delta` extension is downloaded from DuckDB's site at run time, which
this machine cannot reach, so DuckDB reads the Parquet files that the pinned
Delta version names (`DeltaTable.file_uris()`). Every answer must equal SQL
over pgwire (`leadline serve`, psycopg), across several appends, and a reader
pinned to a snapshot keeps reading it while leadline appends.
"""
import datetime as dt
import json
import pathlib

import deltalake
import duckdb
import pandas as pd
import polars as pl
import psycopg
import pytest

from conftest import run
from leadline_pg import ingest

TABLES = ["deployments", "changes", "incidents", "dora_metrics_day", "dora_metrics_week", "dora_metrics_month"]
# The published metric tables hold the buckets with something in them;
# `dora_metrics(grain)` also lists the empty ones (0 deployments, null metrics).
NON_EMPTY = "deployments > 0 OR lead_time_p50 IS NOT NULL OR time_to_restore_p50 IS NOT NULL"
CHUNKS = 4


def sql_of(table: str) -> str:
    """The SQL whose answer the published table holds."""
    if table.startswith("dora_metrics_"):
        return f"SELECT * FROM dora_metrics('{table.removeprefix('dora_metrics_')}') WHERE {NON_EMPTY}"
    return f"SELECT * FROM {table}"


def micros(value):
    """µs of a duration (SQL's interval as psycopg gives it)."""
    return None if value is None else value // dt.timedelta(microseconds=1)


def utc(value):
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        assert value.tzinfo is not None, f"{value!r} has no time zone"
        return value.astimezone(dt.timezone.utc)
    return value


def canonical(value):
    """One spelling per value, whatever the reader: lists as tuples, NaN/NaT
    as None, whole floats as ints (pandas makes a nullable int column float)."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float):
        return None if value != value else int(value) if value.is_integer() else value
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return utc(value)


def sql_rows(dsn: str, table: str):
    """(columns as published, sorted rows) of the table's SQL over pgwire."""
    with psycopg.connect(dsn) as conn:
        cur = conn.execute(sql_of(table))
        names = [d.name for d in cur.description]
        rows = cur.fetchall()
    durations = {i for i, r in enumerate(zip(*rows)) if any(isinstance(v, dt.timedelta) for v in r)} if rows else set()
    columns = [f"{n}_us" if i in durations else n for i, n in enumerate(names)]
    rows = [tuple(canonical(micros(v) if i in durations else v) for i, v in enumerate(r)) for r in rows]
    return columns, sorted(rows, key=repr)


def published_rows(columns, records):
    """Sorted rows of `records` (dicts) in the order of `columns`."""
    return sorted((tuple(canonical(r[c]) for c in columns) for r in records), key=repr)


def snapshot(data: pathlib.Path) -> dict:
    return json.loads((data / "tables" / "_snapshot.json").read_text())


def delta(data, table, snap) -> deltalake.DeltaTable:
    return deltalake.DeltaTable(str(data / "tables" / table), version=snap["tables"][table])


def files_of(table: deltalake.DeltaTable) -> list[str]:
    return [u.removeprefix("file://") for u in table.file_uris()]


# One way per reader to read a table at the version a snapshot names.
READERS = {
    "deltalake": lambda data, table, snap: delta(data, table, snap).to_pyarrow_table().to_pylist(),
    "polars": lambda data, table, snap: pl.read_delta(
        str(data / "tables" / table), version=snap["tables"][table]
    ).to_dicts(),
    "pandas": lambda data, table, snap: delta(data, table, snap).to_pandas().to_dict("records"),
    "duckdb": lambda data, table, snap: duckdb_records(files_of(delta(data, table, snap))),
}


def duckdb_records(files: list[str]) -> list[dict]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rel = con.sql("SELECT * FROM read_parquet($files)", params={"files": files})
    table = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
    if hasattr(table, "read_all"):
        table = table.read_all()
    return table.to_pylist()


@pytest.fixture(scope="module")
def chunks(leadline_bin, tmp_path_factory):
    """A generated history in CHUNKS files, in the order it happened."""
    tmp = tmp_path_factory.mktemp("history")
    src = tmp / "all.ndjson"
    run(leadline_bin, "generate", "--seed", 23, "--services", 6, "--days", 56, "--events", 8000, "-o", src)
    lines = [line for line in src.read_text().splitlines() if line.strip()]
    size = len(lines) // CHUNKS + 1
    files = []
    for i in range(CHUNKS):
        f = tmp / f"chunk-{i}.ndjson"
        f.write_text("\n".join(lines[i * size : (i + 1) * size]) + "\n")
        files.append(f)
    return files


@pytest.fixture(scope="module")
def data(tmp_path_factory, chunks):
    """This module's data directory (conftest's `server` serves it): the first chunk."""
    d = tmp_path_factory.mktemp("notebook") / "data"
    ingest(d, chunks[0])
    return d


def assert_snapshot_is_the_sql_answer(data, dsn, readers=("deltalake",)):
    """Every table, read by each of `readers` at the versions the snapshot
    names, equals SQL over pgwire now. Returns the snapshot and the answers."""
    snap = snapshot(data)
    assert snap["log_version"] == deltalake.DeltaTable(str(data / "events")).version(), "the model is the log's"
    answers = {}
    for table in TABLES:
        columns, want = sql_rows(dsn, table)
        assert want, f"{table} is empty: the test proves nothing"
        for reader in readers:
            records = READERS[reader](data, table, snap)
            assert records and set(records[0]) == set(columns), f"{reader} {table}: columns differ from SQL's"
            got = published_rows(columns, records)
            assert got == want, f"{reader} read {table} at {snap['tables'][table]} unlike SQL"
        answers[table] = (columns, want)
    return snap, answers


def test_every_reader_reads_the_sql_answers(data, server):
    snap, answers = assert_snapshot_is_the_sql_answer(data, server.dsn(), readers=tuple(READERS))
    assert set(snap["tables"]) == set(TABLES)
    # Durations are µs; SQL's intervals, exactly.
    columns, _ = answers["changes"]
    assert "lead_time_us" in columns and "lead_time" not in columns
    schema = pl.read_delta(str(data / "tables" / "changes")).schema
    assert schema["lead_time_us"] == pl.Int64 and schema["deployed_at"] == pl.Datetime("us", "UTC")


def test_each_append_advances_one_consistent_snapshot(data, server, chunks):
    seen = []
    for chunk in chunks[1:]:
        ingest(data, chunk)
        snap, answers = assert_snapshot_is_the_sql_answer(data, server.dsn())
        seen.append(snap)
        # One model: the tables of one snapshot agree with each other.
        deployments = pl.read_delta(str(data / "tables" / "deployments"), version=snap["tables"]["deployments"])
        weekly = pl.read_delta(str(data / "tables" / "dora_metrics_week"), version=snap["tables"]["dora_metrics_week"])
        succeeded = deployments.filter(pl.col("status") == "succeeded").height
        assert weekly["deployments"].sum() == succeeded
    assert [s["log_version"] for s in seen] == sorted({s["log_version"] for s in seen}), "the log version advances"
    for before, after in zip(seen, seen[1:]):
        for table in TABLES:
            assert after["tables"][table] > before["tables"][table], f"{table} did not advance"


def test_a_pinned_reader_keeps_its_snapshot_while_leadline_appends(data, server, tmp_path):
    pinned, answers = assert_snapshot_is_the_sql_answer(data, server.dsn())
    # A reader reads one table, the writer appends, the reader reads the
    # others: at the pinned versions they are still the model it started with.
    first = READERS["polars"](data, "deployments", pinned)
    # A deployment of a service that has some: its component is refolded,
    # so the latest versions no longer name the files the pinned ones do.
    service = first[0]["service"]
    late = tmp_path / "late.ndjson"
    late.write_text(
        json.dumps({
            "event_id": "notebook-late-1", "event_type": "deployment_succeeded",
            "occurred_at": "2026-02-20T12:00:00Z", "service": service, "environment": "production",
            "deployment_id": "notebook-dep-1",
        }) + "\n"
    )
    ingest(data, late)
    latest = snapshot(data)
    assert latest["log_version"] > pinned["log_version"]
    # A deployment changes the rows of every table but incidents: their
    # files are replaced; incidents keeps its files and gets no version.
    for table in TABLES:
        removed = set(files_of(delta(data, table, pinned))) - set(files_of(delta(data, table, latest)))
        if table == "incidents":
            assert not removed and latest["tables"][table] == pinned["tables"][table], table
        else:
            assert removed, f"{table}: the append replaced no file, the test proves nothing"
    assert published_rows(answers["deployments"][0], first) == answers["deployments"][1]
    for table in TABLES:
        columns, want = answers[table]
        for reader in READERS:
            got = published_rows(columns, READERS[reader](data, table, pinned))
            assert got == want, f"{reader} pinned to {pinned['tables'][table]} no longer reads {table} as it was"
    # The latest snapshot has the new deployment; the pinned one never will.
    ids = pl.read_delta(str(data / "tables" / "deployments"), version=latest["tables"]["deployments"])["deployment_id"]
    assert "notebook-dep-1" in ids.to_list()
    assert "notebook-dep-1" not in [r["deployment_id"] for r in first]
    assert_snapshot_is_the_sql_answer(data, server.dsn())
