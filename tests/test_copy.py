"""Writes over the wire through a real client (psycopg 3): COPY events FROM
STDIN in text format (write_row's escapes), binary format (set_types) and
CSV, and INSERT without a column list. Each reads the stored rows back with
SELECT and compares them with what was sent."""
import datetime as dt
import json

import psycopg
import pytest

COLUMNS = [
    "event_id", "event_type", "occurred_at", "service", "environment", "deployment_id", "change_ids", "team",
    "attributes", "schema_version",
]
# A tab, a newline, backslashes (one before N, as in the NULL marker) and non-ASCII text.
TRICKY = "tab\there\nnew line, back\\slash \\N \\\\n, ünïcødé ✓ 🚀"
WHEN = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.timezone.utc)


def events(service):
    """Two deployments of `service`: one with every column set, one mostly null."""
    return [
        (f"{service}-1", "deployment_succeeded", WHEN, service, "production", "d-1", ["c1", "c 2", 'q"uote', "é\\"],
         TRICKY, {"note": TRICKY, "n": 1}, 1),
        (f"{service}-2", "deployment_succeeded", WHEN + dt.timedelta(minutes=1), service, "production", "d-2", None,
         None, None, None),
    ]


def read_back(conn, service):
    return conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM events WHERE service = %s ORDER BY event_id", [service]
    ).fetchall()


def assert_stored(conn, service, sent):
    got = read_back(conn, service)
    assert len(got) == len(sent)
    for row, want in zip(got, sent):
        assert row[:8] == want[:8], (row, want)
        assert (json.loads(row[8]) if row[8] is not None else None) == want[8]
        assert row[9] == 1  # schema_version defaults to 1


def test_copy_text_write_row_escapes(server):
    sent = events("svc-copy-text")
    notices = []
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        with conn.cursor() as cur:
            with cur.copy(f"COPY events ({', '.join(COLUMNS)}) FROM STDIN") as cp:
                for row in sent:
                    # Text format: attributes go as their JSON text.
                    cp.write_row(row[:8] + (json.dumps(row[8], ensure_ascii=False) if row[8] else None,) + row[9:])
            assert cur.rowcount == 2, notices
        assert not notices
        assert_stored(conn, "svc-copy-text", sent)


def test_copy_binary_set_types(server):
    sent = events("svc-copy-binary")
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        with conn.cursor() as cur:
            with cur.copy(f"COPY events ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(["text", "text", "timestamptz", "text", "text", "text", "text[]", "text", "jsonb", "int2"])
                for row in sent:
                    cp.write_row(row)
            assert cur.rowcount == 2
        assert_stored(conn, "svc-copy-binary", sent)
        # The same events again, now as text format: duplicates, nothing appended.
        with conn.cursor() as cur:
            with cur.copy(f"COPY events ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(["text", "text", "timestamptz", "text", "text", "text", "text[]", "text", "jsonb", "int4"])
                for row in sent:
                    cp.write_row(row)
            assert cur.rowcount == 0


def test_copy_csv_multi_line_field_header_match_and_line_numbers(server):
    notices = []
    data = (
        "event_id|event_type|occurred_at|service|commit_sha|team\n"
        'csv-1|commit|2026-03-05T10:00:00Z|svc-copy-csv|abc|"two\nlines | with ""quotes"" and é"\n'
        "csv-2|commit|2026-03-05 10:01:00|svc-copy-csv|abd|\n"
        "csv-3|commit|2026-03-05T10:02:00Z|svc-copy-csv|abe\n"
    )
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        with conn.cursor() as cur:
            sql = ("COPY events (event_id, event_type, occurred_at, service, commit_sha, team) FROM STDIN "
                   "WITH (FORMAT csv, DELIMITER '|', HEADER match)")
            with cur.copy(sql) as cp:
                # In pieces that cut a row and the quoted field.
                for at in range(0, len(data), 7):
                    cp.write(data[at:at + 7])
            assert cur.rowcount == 1
        assert any("line 4" in n and "occurred_at" in n for n in notices), notices
        assert any("line 5" in n and "missing data for column \"team\"" in n for n in notices), notices
        team = conn.execute("SELECT team FROM events WHERE event_id = 'csv-1'").fetchone()[0]
        assert team == 'two\nlines | with "quotes" and é'
        raw = conn.execute("SELECT raw FROM rejected_events WHERE line = 4 AND raw LIKE 'csv-2|%'").fetchone()[0]
        assert raw == "csv-2|commit|2026-03-05 10:01:00|svc-copy-csv|abd|"


def test_copy_errors_have_sqlstates_and_keep_the_connection(server):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for sql, state in [
            ("COPY events (event_id, nope) FROM STDIN", "42703"),
            ("COPY events (event_id, event_id) FROM STDIN", "42701"),
            ("COPY events FROM STDIN (FORMAT csv, FORMAT text)", "42601"),
            ("COPY events FROM STDIN (SHOUTING true)", "42601"),
            ("COPY events FROM STDIN (FORMAT binary, DELIMITER ',')", "42601"),
            ("COPY events FROM STDIN (FORMAT xml)", "22023"),
            ("COPY events FROM STDIN (DELIMITER 'ab')", "0A000"),
            ("COPY events FROM STDIN (ENCODING 'LATIN1')", "0A000"),
            ("COPY events FROM '/etc/passwd'", "0A000"),
        ]:
            with pytest.raises(psycopg.Error) as e:
                with conn.cursor().copy(sql) as cp:
                    cp.write("x\n")
            assert e.value.sqlstate == state, (sql, str(e.value))
            assert conn.execute("SELECT 1").fetchone()[0] == 1
        # Malformed binary data fails the COPY with 22P04; nothing is appended.
        with pytest.raises(psycopg.Error) as e:
            with conn.cursor().copy("COPY events (event_id) FROM STDIN (FORMAT binary)") as cp:
                cp.write(b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8 + b"\x00\x01\xff\xff\xff\xfe")
        assert e.value.sqlstate == "22P04", str(e.value)
        assert conn.execute("SELECT 1").fetchone()[0] == 1
        with pytest.raises(psycopg.Error) as e:
            with conn.cursor().copy("COPY events (event_id, team) FROM STDIN (FORMAT csv)") as cp:
                cp.write('bad-quote,"never closed\n')
        assert e.value.sqlstate == "22P04", str(e.value)
        assert conn.execute("SELECT count(*) FROM events WHERE event_id = 'bad-quote'").fetchone()[0] == 0


def test_insert_without_column_list_fills_the_first_columns(server):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        cur = conn.execute(
            "INSERT INTO events VALUES ('ins-1', 'commit', '2026-03-06T10:00:00Z', 'svc-ins', NULL, 'abc1'),"
            " ('ins-2', 'commit', '2026-03-06T10:01:00Z', 'svc-ins', NULL, 'abc2')"
        )
        assert cur.rowcount == 2
        full = conn.execute("SELECT * FROM events WHERE event_id = 'ins-1'").fetchone()
        cur = conn.execute("INSERT INTO events VALUES (" + ", ".join(["%s"] * 14) + ")",
                           ["ins-3", *full[1:3], "svc-ins", *full[4:]])
        assert cur.rowcount == 1
        with pytest.raises(psycopg.Error) as e:
            conn.execute("INSERT INTO events VALUES (" + ", ".join(["NULL"] * 15) + ")")
        assert e.value.sqlstate == "42601"
        # A rejected row is kept as JSON: a list stays a list.
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        cur = conn.execute(
            "INSERT INTO events (event_id, event_type, occurred_at, service, change_ids) "
            "VALUES ('ins-bad', 'nope', '2026-03-06T10:00:00Z', 'svc-ins', ARRAY['a', 'b c'])"
        )
        assert cur.rowcount == 0 and any("event_type" in n for n in notices), notices
        raw = conn.execute("SELECT raw FROM rejected_events WHERE event_id = 'ins-bad'").fetchone()[0]
        assert json.loads(raw)["change_ids"] == ["a", "b c"]
        assert conn.execute("SELECT count(*) FROM events WHERE service = 'svc-ins'").fetchone()[0] == 3


DORA = (
    "SELECT service, environment, bucket_start, deployments, deployment_frequency, change_failure_rate, "
    "lead_time_p50, lead_time_tier FROM dora_metrics('week') ORDER BY service, environment, bucket_start"
)


def test_copy_to_stdout_binary_answers_in_binary(server):
    """COPY … TO STDOUT (FORMAT binary), read by psycopg's binary COPY parser
    (which fails on anything but PGCOPY framing), gives the rows SELECT does."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        want = conn.execute(DORA).fetchall()
        assert want
        with conn.cursor() as cur:
            with cur.copy(f"COPY ({DORA}) TO STDOUT (FORMAT binary)") as copy:
                copy.set_types(["text", "text", "timestamptz", "int8", "float8", "float8", "interval", "text"])
                got = list(copy.rows())
        assert got == want
        # A table, and the legacy spelling; an empty result still has the framing.
        with conn.cursor() as cur:
            with cur.copy("COPY rejected_events (source, line) TO STDOUT WITH BINARY") as copy:
                copy.set_types(["text", "int8"])
                rows = list(copy.rows())
        # A table scan has no order: compare as sets of rows.
        assert sorted(rows) == sorted(conn.execute("SELECT source, line FROM rejected_events").fetchall())
        assert rows
        with conn.cursor() as cur:
            with cur.copy("COPY (SELECT service FROM deployments WHERE false) TO STDOUT (FORMAT binary)") as copy:
                copy.set_types(["text"])
                assert list(copy.rows()) == []


def test_copy_to_stdout_text_and_csv_options_are_honoured(server):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        sql = "SELECT event_id, environment FROM events WHERE event_type = 'commit' ORDER BY event_id LIMIT 3"
        want = conn.execute(sql).fetchall()
        with conn.cursor() as cur:
            with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv, HEADER, DELIMITER '|', NULL 'none')") as copy:
                text = b"".join(bytes(b) for b in copy).decode()
        lines = text.splitlines()
        assert lines[0] == "event_id|environment"
        assert lines[1:] == [f"{i}|{'none' if e is None else e}" for i, e in want]


@pytest.mark.parametrize(
    "sql, sqlstate",
    [
        ("COPY events TO STDOUT (FORMAT xml)", "22023"),
        ("COPY events TO STDOUT (FORMAT binary, HEADER)", "42601"),
        ("COPY events TO STDOUT (FORMAT binary, DELIMITER ',')", "42601"),
        ("COPY events TO STDOUT (DELIMITER '||')", "22023"),
        ("COPY events TO '/tmp/x'", "0A000"),
        ("COPY events TO STDOUT (FORCE_QUOTE *)", "0A000"),
        ("COPY no_such_table TO STDOUT", "42P01"),
    ],
)
def test_copy_to_refuses_what_it_cannot_give(server, sql, sqlstate):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as err:
            with conn.cursor() as cur:
                with cur.copy(sql) as copy:
                    for _ in copy:
                        pass
        assert err.value.sqlstate == sqlstate, err.value
        assert conn.execute("SELECT 1").fetchone() == (1,)
