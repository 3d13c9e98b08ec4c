"""The benchmark's DuckDB reference SQL (benches/queries/duckdb_dora.sql) gives
the same `dora_metrics` numbers as leadline and as the golden fixtures.

benches/queries/run.py times leadline against this SQL; the comparison only
means something while both compute the same answers, which this holds.
"""
import csv
import pathlib
import sys

import pytest

from conftest import ROOT, run

sys.path.insert(0, str(ROOT / "benches" / "queries"))
import run as bench  # noqa: E402  (benches/queries/run.py)


@pytest.mark.parametrize("name", ["worked", "mixed", "v2"])
@pytest.mark.parametrize("grain", ["week", "day", "month"])
def test_duckdb_sql_matches_leadline_and_fixture(leadline_bin, fixtures, tmp_path, name, grain):
    fixture = fixtures / name
    run(leadline_bin, "ingest", "--data", tmp_path, fixture / "events.ndjson")
    ours = bench.leadline_json(leadline_bin, tmp_path, bench.leadline_metrics_sql(grain))
    con = bench.duckdb_connect(tmp_path)
    theirs = bench.duckdb_rows(con, f"SELECT * FROM dora_metrics('{grain}') ORDER BY service, environment, bucket_start")
    with open(fixture / f"expected_{grain}.csv") as f:
        expected = list(csv.DictReader(f))
    assert len(expected) > 0
    assert bench.diff_rows(theirs, ours, bench.METRIC_COLUMNS) == []
    # worked/ and mixed/ list v1's columns, v2/ every one (rework_rate too).
    listed = [c for c in bench.METRIC_COLUMNS if c in expected[0]]
    assert bench.diff_rows(theirs, expected, listed) == []


def test_comparison_notices_a_difference(leadline_bin, fixtures, tmp_path):
    run(leadline_bin, "ingest", "--data", tmp_path, fixtures / "worked" / "events.ndjson")
    ours = bench.leadline_json(leadline_bin, tmp_path, bench.leadline_metrics_sql("week"))
    changed = [dict(r) for r in ours]
    changed[0]["lead_time_p50"] = changed[0]["lead_time_p50"] + 1
    assert bench.diff_rows(changed, ours, bench.METRIC_COLUMNS) != []


def test_benchmark_queries_parse(leadline_bin, fixtures, tmp_path):
    """Q2 and Q3 of both sides run and agree on the worked fixture."""
    run(leadline_bin, "ingest", "--data", tmp_path, fixtures / "worked" / "events.ndjson")
    setup, queries = bench.load_sql()
    params = {"SERVICE": "checkout", "FROM": "2026-02-20T00:00:00+00:00", "TO": "2026-03-11T12:00:00+00:00"}
    ll = bench.leadline_queries(params["SERVICE"], params["FROM"], params["TO"])
    con = bench.duckdb_connect(tmp_path)
    for q, key in (("q2", ("bucket_start",)), ("q3", ("team", "month"))):
        want = bench.leadline_json(leadline_bin, tmp_path, ll[q])
        got = bench.duckdb_rows(con, bench.fill(queries[q], params))
        assert want, q
        assert bench.diff_rows(got, want, list(want[0].keys()), key=key) == [], q
