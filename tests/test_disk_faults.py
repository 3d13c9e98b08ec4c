"""Disk faults, as a user meets them.

A full disk (a small tmpfs data directory) fails ingest, COPY, INSERT, view
creation and compaction with a clear error (SQLSTATE 53100 over the wire),
keeps every acknowledged event, and everything works again once space is
freed. A damaged file (a Parquet data file, a Delta commit, an id-index
bucket, the read model's manifest or one of its files, a view's file;
truncated or bit-flipped) is named with what it affects by start-up, by the
queries that need it (SQLSTATE XX001) and by `leadline check`, never skipped
or silently repaired; each has its documented repair.
"""
import json
import os
import pathlib
import shutil
import subprocess
import uuid

import psycopg
import pytest

import crash_harness
from leadline_pg import SAMPLE, Server, binary


def leadline(*args):
    return subprocess.run([str(binary()), *map(str, args)], capture_output=True, text=True)


def count(data, sql="SELECT count(*) AS n FROM events"):
    out = leadline("query", "--data", data, "--format", "json", sql)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]["n"]


def events(prefix, n, day="2026-09-01"):
    """`n` valid commit events with ids `<prefix>-<i>`, as NDJSON lines."""
    return [json.dumps({"event_id": f"{prefix}-{i}", "event_type": "commit", "occurred_at": f"{day}T10:{i % 60:02d}:00Z",
                        "service": "svc-disk", "commit_sha": f"{prefix}{i:08x}"}) for i in range(n)]


CSV_HEADER = "event_id,event_type,occurred_at,service,commit_sha"


def csv_rows(prefix, n, day="2026-09-02"):
    return "".join(f"{prefix}-{i},commit,{day}T11:{i % 60:02d}:00Z,svc-disk,{prefix}{i:08x}\n" for i in range(n))


# --- a full disk ------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs: the data directory's whole disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the tests as root)")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: pathlib.Path) -> pathlib.Path:
    """Fills `disk` to the last byte with one file; returns it."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def sqlstate(conn, sql):
    with pytest.raises(psycopg.Error) as e:
        conn.execute(sql)
    return e.value.sqlstate, e.value.diag.message_primary or ""


def test_a_full_disk_fails_every_write_clearly_keeps_what_was_acknowledged_and_recovers(small_disk, tmp_path):
    data = small_disk / "data"
    first = tmp_path / "first.ndjson"
    first.write_text("\n".join(events("first", 200)) + "\n")
    assert leadline("ingest", "--data", data, first).returncode == 0
    server = Server(data)
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE VIEW disk_ok AS SELECT count(*) AS n FROM events")
            with conn.cursor().copy(f"COPY events ({CSV_HEADER}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(csv_rows("copied", 100, day="2026-09-01"))
        # (The server keeps the writer's lock while appends keep coming.)
        server.stop()
        acknowledged = 300
        filler = fill(small_disk)

        # Ingest: exit 1, the reason and the file it could not write.
        late = tmp_path / "late.ndjson"
        late.write_text("\n".join(events("late", 500, day="2026-09-03")) + "\n")
        out = leadline("ingest", "--data", data, late)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "No space left on device" in out.stderr, out.stderr
        assert str(data) in out.stderr, out.stderr

        # Over the wire: 53100 for COPY, INSERT and CREATE VIEW; the session goes on.
        server = Server(data)
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            with pytest.raises(psycopg.Error) as e:
                with conn.cursor().copy(f"COPY events ({CSV_HEADER}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(csv_rows("full", 2000, day="2026-09-04"))
            assert e.value.sqlstate == "53100", e.value
            assert "No space left on device" in str(e.value)
            values = ", ".join(f"('ins-{i}', 'commit', '2026-09-05T10:00:00Z', 'svc-disk', 'ins{i:08x}')" for i in range(300))
            code, message = sqlstate(conn, f"INSERT INTO events ({CSV_HEADER}) VALUES {values}")
            assert code == "53100", message
            code, message = sqlstate(conn, "CREATE VIEW disk_full AS SELECT 1 AS one")
            assert code == "53100", message
            assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == acknowledged
        server.stop()

        # Compaction: exit 1 and why.
        out = leadline("compact", "--data", data)
        assert out.returncode == 1 and "No space left on device" in out.stderr, out.stdout + out.stderr

        # Nothing acknowledged was lost, and the failed writes left no damage.
        assert count(data) == acknowledged
        check = leadline("check", "--data", data)
        assert check.returncode == 0, check.stdout + check.stderr

        # Space freed: every write works again.
        filler.unlink()
        out = leadline("ingest", "--data", data, late)
        assert out.returncode == 0, out.stderr
        assert "appended 500" in out.stdout
        server = Server(data)
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            with conn.cursor().copy(f"COPY events ({CSV_HEADER}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(csv_rows("full", 2000, day="2026-09-04"))
            conn.execute(f"INSERT INTO events ({CSV_HEADER}) VALUES {values}")
            conn.execute("CREATE VIEW disk_full AS SELECT 1 AS one")
            assert conn.execute("SELECT one FROM disk_full").fetchone() == (1,)
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            assert conn.execute("SELECT n FROM disk_ok").fetchone() == (acknowledged + 2800,)
        server.stop()
        out = leadline("compact", "--data", data)
        assert out.returncode == 0, out.stderr
        assert count(data) == acknowledged + 2800
        check = leadline("check", "--data", data)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        server.stop()


# --- damaged files ----------------------------------------------------------

@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A data directory with the sample history in two appends and a saved view."""
    root = tmp_path_factory.mktemp("pristine")
    lines = SAMPLE.read_text().splitlines()
    halves = [root / "a.ndjson", root / "b.ndjson"]
    halves[0].write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    halves[1].write_text("\n".join(lines[len(lines) // 2:]) + "\n")
    data = root / "data"
    for h in halves:
        assert leadline("ingest", "--data", data, h).returncode in (0, 2)
    server = Server(data)
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE VIEW weekly AS SELECT * FROM dora_metrics('week')")
    finally:
        server.stop()
    assert leadline("check", "--data", data).returncode == 0
    return data


def live_model_file(data: pathlib.Path, table: str) -> pathlib.Path:
    """A file of the read model's current components (of a component's last epoch): in its published table."""
    manifest = json.loads((data / "model" / "MANIFEST.json").read_text())
    component = next(iter(manifest["components"].values()))
    return data / "tables" / table / f"{component['epochs'][-1]['id']}.parquet"


def copy_sample(conn):
    """Sends the whole sample again (COPY): it touches every index bucket."""
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    stmt = f"COPY events ({', '.join(crash_harness.COLUMNS)}) FROM STDIN (FORMAT csv)"
    with conn.cursor().copy(stmt) as copy:
        copy.write(crash_harness.csv_text(rows, header=False, empty_list=crash_harness.EMPTY_LIST_WIRE))


# What each damaged file is: how to find it, what `leadline check` exits
# with, the statement that needs it (None: no query does), what notices it
# when a writer or server opens the directory (the cheap checks: commits
# whole, sizes, the manifest), and how it is repaired.
TARGETS = {
    "data file": (lambda d: sorted((d / "events").glob("event_date=*/*.parquet"))[0], 10,
                  "SELECT count(*) FROM events", {"truncated"}, "restore"),
    "commit": (lambda d: d / "events" / "_delta_log" / f"{1:020}.json", 10,
               "SELECT count(*) FROM events", {"truncated", "bit-flipped"}, "restore"),
    "index bucket": (lambda d: max((d / "index").glob("ids-*.idx"), key=lambda p: p.stat().st_size), 11,
                     copy_sample, {"truncated"}, "rebuild --index"),
    "model manifest": (lambda d: d / "model" / "MANIFEST.json", 12, None, {"truncated", "bit-flipped"}, "append"),
    "model file": (lambda d: live_model_file(d, "dora_metrics_day"), 12,
                   "SELECT * FROM dora_metrics('day')", set(), "rebuild --from-scratch"),
    "published commit": (lambda d: max((d / "tables" / "deployments" / "_delta_log").glob("*.json")), 12, None, set(),
                         "append"),
    "view file": (lambda d: d / "views" / "weekly.json", 13, "SELECT * FROM weekly", set(), "drop view"),
}


def damage(path: pathlib.Path, how: str):
    b = bytearray(path.read_bytes())
    if how == "truncated":
        b = b[: len(b) // 2]
    else:
        b[len(b) // 2] ^= 0x08
    path.write_bytes(bytes(b))


@pytest.mark.parametrize("how", ["bit-flipped", "truncated"])
@pytest.mark.parametrize("what", list(TARGETS))
def test_a_damaged_file_is_named_with_what_it_affects_and_never_skipped(pristine, tmp_path, what, how):
    find, exit_code, statement, noticed_at_start, repair = TARGETS[what]
    data = tmp_path / "data"
    shutil.copytree(pristine, data)
    target = find(data)
    original = target.read_bytes()
    damage(target, how)
    # What statements and writers name: the file; for a bucket cut at a
    # record's end, the index (its record count is what tells, before
    # `leadline check` compares it with the log and names the bucket).
    named = str(target.parent) if (what, how) == ("index bucket", "truncated") else str(target)

    # `leadline check` names it, with what it affects, and exits with its area's code.
    check = leadline("check", "--data", data)
    assert check.returncode == exit_code, check.stdout + check.stderr
    assert f"DAMAGED" in check.stdout and str(target) in check.stdout, check.stdout
    assert "affects" in check.stdout

    server = Server(data)
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            if statement is not None:
                with pytest.raises(psycopg.Error) as e:
                    statement(conn) if callable(statement) else conn.execute(statement)
                assert e.value.sqlstate == "XX001", e.value
                message = e.value.diag.message_primary or ""
                assert named in message and "damaged" in message, message
                # The connection stays: other statements run (or, with the
                # log's commits unreadable, are told why they cannot).
                try:
                    assert conn.execute("SELECT 1").fetchone() == (1,)
                except psycopg.Error as again:
                    assert again.sqlstate == "XX001" and named in str(again), again
                assert not conn.closed
            else:
                # A damaged read model is derived data: queries fold the log
                # instead, and answer exactly as before.
                answer = conn.execute("SELECT * FROM dora_metrics('week') ORDER BY 1, 2, 3").fetchall()
                expected = Server(pristine)
                try:
                    with psycopg.connect(expected.dsn(), autocommit=True) as good:
                        assert answer == good.execute("SELECT * FROM dora_metrics('week') ORDER BY 1, 2, 3").fetchall()
                finally:
                    expected.stop()
    finally:
        server.stop()
    log = server.proc.stderr.read()
    if how in noticed_at_start:
        assert named in log and "damaged" in log, log

    # Its repair, after which the directory checks clean.
    if repair == "restore":
        # No writer works past a damaged log (a writer's open checks sizes;
        # a full fold reads every byte), until the file is restored.
        if (what, how) == ("data file", "bit-flipped"):
            out = leadline("rebuild", "--data", data, "--from-scratch")
        else:
            out = leadline("ingest", "--data", data, SAMPLE)
        assert out.returncode == 1 and str(target) in out.stderr, out.stdout + out.stderr
        target.write_bytes(original)
    elif repair == "rebuild --index":
        out = leadline("ingest", "--data", data, SAMPLE)
        assert out.returncode == 1 and named in out.stderr, out.stderr
        out = leadline("rebuild", "--data", data, "--index")
        assert out.returncode == 0 and "rebuilt the event-id index" in out.stdout, out.stderr
        # Every stored event is known again: a redelivery appends nothing.
        out = leadline("ingest", "--data", data, SAMPLE)
        assert out.returncode in (0, 2) and "appended 0," in out.stdout, out.stdout + out.stderr
    elif repair == "append":
        # The next append rebuilds the model from the log, and says so.
        extra = tmp_path / "extra.ndjson"
        extra.write_text("\n".join(events(f"x{uuid.uuid4().hex[:6]}", 3)) + "\n")
        out = leadline("ingest", "--data", data, extra)
        assert out.returncode == 0, out.stderr
        assert "rebuilding it from the log" in out.stderr and str(target) in out.stderr, out.stderr
    elif repair == "rebuild --from-scratch":
        out = leadline("rebuild", "--data", data, "--from-scratch")
        assert out.returncode == 0, out.stderr
    elif repair == "drop view":
        server = Server(data)
        try:
            with psycopg.connect(server.dsn(), autocommit=True) as conn:
                conn.execute("DROP VIEW weekly")
        finally:
            server.stop()
    check = leadline("check", "--data", data)
    assert check.returncode == 0, check.stdout + check.stderr


def test_check_reports_what_a_dead_writer_left_as_notes_not_damage(pristine, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(pristine, data)
    # Leftovers of appends that died before committing: a data file no
    # commit names, a commit's temp file, index records of a version that
    # never committed (with its marker), a model behind the log.
    model = data / "model" / "MANIFEST.json"
    old_model = model.read_bytes()
    extra = tmp_path / "extra.ndjson"
    extra.write_text("\n".join(events("late", 5)) + "\n")
    assert leadline("ingest", "--data", data, extra).returncode == 0
    model.write_bytes(old_model)
    partition = sorted((data / "events").glob("event_date=*"))[0]
    shutil.copy(next(partition.glob("*.parquet")), partition / f"part-{uuid.uuid4()}.snappy.parquet")
    (data / "events" / "_delta_log" / f".{99:020}.json.{uuid.uuid4()}.tmp").write_text("{")
    bucket = max((data / "index").glob("ids-*.idx"), key=lambda p: p.stat().st_size)
    version = len(list((data / "events" / "_delta_log").glob("*.json")))
    (data / "index" / "PENDING").write_text(str(version))

    check = leadline("check", "--data", data)
    assert check.returncode == 0, check.stdout + check.stderr
    notes = check.stdout
    assert "no commit names" in notes and "temp file" in notes, notes
    assert f"append of version {version}" in notes, notes
    assert "behind the log" in notes, notes
    assert "no damage found" in notes
    assert bucket.exists()
    # The next writer tidies it all up.
    assert leadline("rebuild", "--data", data).returncode == 0
    check = leadline("check", "--data", data)
    assert check.returncode == 0 and "note:" not in check.stdout, check.stdout


def test_check_explains_its_exit_codes_and_refuses_a_missing_directory(tmp_path):
    out = leadline("check", "--help")
    for code in ("10", "11", "12", "13"):
        assert code in out.stdout
    out = leadline("check", "--data", tmp_path / "nope")
    assert out.returncode == 1 and "does not exist" in out.stderr
