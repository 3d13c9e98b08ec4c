"""Arrow and dataframe clients, a SQL IDE and ODBC against `leadline serve`:
ADBC (adbc-driver-postgresql), connectorx, ibis, Harlequin's postgres adapter
and pyodbc over psqlODBC. Each drives the real library as an analyst would
and checks what it gets against `leadline query`."""
import datetime as dt

import pytest

from leadline_pg import query_json

TABLES = {"events", "rejected_events", "deployments", "changes", "incidents"}
# The dora_metrics columns every client reads, with its intervals as seconds
# (connectorx has no PostgreSQL interval type, with any server).
DORA_SQL = (
    "SELECT service, environment, bucket_start, deployments, deployment_frequency, change_failure_rate, "
    "deployment_frequency_tier, date_part('epoch', lead_time_p50) AS lead_time_p50_s "
    "FROM dora_metrics('week') ORDER BY service, environment, bucket_start"
)
JUNE = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
JULY = dt.datetime(2026, 7, 1, tzinfo=dt.timezone.utc)


def timestamp(text):
    """A timestamp as `leadline query --format json` prints it."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def count(data, sql):
    return query_json(data, f"SELECT count(*) AS n FROM ({sql}) t")[0]["n"]


def columns_by_table(data):
    rows = query_json(data, "SELECT table_name, column_name FROM information_schema.columns "
                            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position")
    out = {}
    for r in rows:
        out.setdefault(r["table_name"], []).append(r["column_name"])
    return out


def assert_dora_rows(got, want):
    """`got`: dicts with DORA_SQL's columns, `bucket_start` a datetime."""
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        assert (g["service"], g["environment"]) == (w["service"], w["environment"])
        assert g["bucket_start"] == timestamp(w["bucket_start"])
        assert g["deployments"] == w["deployments"]
        assert g["deployment_frequency"] == pytest.approx(w["deployment_frequency"])
        if w["change_failure_rate"] is None:
            assert g["change_failure_rate"] is None or g["change_failure_rate"] != g["change_failure_rate"]
        else:
            assert g["change_failure_rate"] == pytest.approx(w["change_failure_rate"])
        assert g["deployment_frequency_tier"] == w["deployment_frequency_tier"]
        if w["lead_time_p50_s"] is None:
            assert g["lead_time_p50_s"] is None or g["lead_time_p50_s"] != g["lead_time_p50_s"]
        else:
            assert g["lead_time_p50_s"] == pytest.approx(w["lead_time_p50_s"])


# ---------------------------------------------------------------- ADBC


def test_adbc_fetch_arrow_table_types_and_values(server, data):
    import pyarrow as pa
    import adbc_driver_postgresql.dbapi as adbc

    want = query_json(data, DORA_SQL)
    with adbc.connect(server.dsn()) as conn, conn.cursor() as cur:
        # ADBC reads results with COPY … TO STDOUT (FORMAT binary).
        cur.execute("SELECT * FROM dora_metrics('week') ORDER BY service, environment, bucket_start")
        table = cur.fetch_arrow_table()
    schema = table.schema
    assert schema.field("service").type == pa.string()
    assert schema.field("bucket_start").type == pa.timestamp("us", tz="UTC")
    assert schema.field("deployments").type == pa.int64()
    assert schema.field("deployment_frequency").type == pa.float64()
    assert schema.field("lead_time_p50").type == pa.month_day_nano_interval()
    assert schema.field("lead_time_tier").type == pa.string()
    rows = table.to_pylist()
    for r in rows:
        iv = r["lead_time_p50"]
        r["lead_time_p50_s"] = None if iv is None else iv.months * 30 * 86400 + iv.days * 86400 + iv.nanoseconds / 1e9
    assert_dora_rows(rows, want)


def test_adbc_parameters(server, data):
    import adbc_driver_postgresql.dbapi as adbc

    with adbc.connect(server.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM deployments WHERE finished_at >= $1 AND service = $2",
                    parameters=(JUNE, "svc-000"))
        got = cur.fetch_arrow_table().to_pylist()[0]["n"]
        assert got == count(data, "SELECT * FROM deployments WHERE finished_at >= "
                                  "CAST('2026-06-01T00:00:00Z' AS TIMESTAMP WITH TIME ZONE) AND service = 'svc-000'")
        cur.execute("SELECT count(*) AS n FROM dora_metrics('week', $1, $2)", parameters=(JUNE, JULY))
        assert cur.fetchone()[0] == count(
            data, "SELECT * FROM dora_metrics('week', CAST('2026-06-01T00:00:00Z' AS TIMESTAMP WITH TIME ZONE), "
                  "CAST('2026-07-01T00:00:00Z' AS TIMESTAMP WITH TIME ZONE))")
        cur.execute("SELECT $1::bigint + 1 AS x, $2::text AS y, $3::double AS z", parameters=(41, "hé", 1.5))
        assert cur.fetchall() == [(42, "hé", 1.5)]


def test_adbc_get_objects_and_table_schema(server, data):
    import pyarrow as pa
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as adbc

    want_columns = columns_by_table(data)
    with adbc.connect(server.dsn()) as conn:
        assert conn.adbc_get_info()["vendor_name"] == "PostgreSQL"
        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        assert [c["catalog_name"] for c in objects] == ["leadline"]
        schemas = {s["db_schema_name"]: s for s in objects[0]["catalog_db_schemas"]}
        assert "public" in schemas
        tables = {t["table_name"]: t for t in schemas["public"]["db_schema_tables"]}
        assert TABLES <= set(tables)
        for name in TABLES:
            assert tables[name]["table_type"] == "table"
            # In their ordinal positions (ADBC's query has no ORDER BY).
            columns = sorted(tables[name]["table_columns"], key=lambda c: c["ordinal_position"])
            assert [c["column_name"] for c in columns] == want_columns[name], name
        # Filters reach the server's catalog queries.
        only = conn.adbc_get_objects(depth="tables", db_schema_filter="public", table_name_filter="dep%")
        listed = only.read_all().to_pylist()[0]["catalog_db_schemas"][0]["db_schema_tables"]
        assert [t["table_name"] for t in listed] == ["deployments"]

        schema = conn.adbc_get_table_schema("deployments")
        assert schema.names == want_columns["deployments"]
        assert schema.field("started_at").type == pa.timestamp("us", tz="UTC")
        assert schema.field("change_ids").type == pa.list_(pa.string())
        assert schema.field("recovery_time").type == pa.month_day_nano_interval()
        assert schema.field("rolled_back").type == pa.bool_()
        with pytest.raises(adbc_driver_manager.ProgrammingError) as e:
            conn.adbc_get_table_schema("no_such_table")
        assert e.value.sqlstate == "42P01"
        conn.rollback()  # the failed catalog query ended ADBC's transaction
        with pytest.raises(adbc_driver_manager.ProgrammingError) as e, conn.cursor() as cur:
            cur.execute("SELECT * FROM no_such_table")
        assert e.value.sqlstate == "42P01"


# ---------------------------------------------------------------- connectorx


def test_connectorx_arrow_and_pandas(server, data):
    import connectorx as cx
    import pyarrow as pa

    want = query_json(data, DORA_SQL)
    # The default protocol: COPY (…) TO STDOUT (FORMAT binary).
    table = cx.read_sql(server.dsn(), DORA_SQL, return_type="arrow")
    assert table.schema.field("deployments").type == pa.int64()
    assert pa.types.is_timestamp(table.schema.field("bucket_start").type)
    assert_dora_rows(table.to_pylist(), want)

    df = cx.read_sql(server.dsn(), DORA_SQL, return_type="pandas")
    rows = df.to_dict("records")
    for r in rows:
        r["bucket_start"] = r["bucket_start"].to_pydatetime().replace(tzinfo=dt.timezone.utc)
    assert_dora_rows(rows, want)


def test_connectorx_protocols_and_partitions(server, data):
    import connectorx as cx

    want = sorted(r["event_id"] for r in query_json(data, "SELECT event_id FROM events"))
    sql = "SELECT event_id, schema_version, occurred_at, change_ids FROM events"
    for protocol in ["binary", "csv", "cursor"]:
        table = cx.read_sql(server.dsn(), sql, return_type="arrow", protocol=protocol)
        assert sorted(table.column("event_id").to_pylist()) == want, protocol
    # Partitioned: connectorx asks for min/max of the column, then one query per range.
    table = cx.read_sql(server.dsn(), sql, return_type="arrow", partition_on="schema_version", partition_num=3)
    assert sorted(table.column("event_id").to_pylist()) == want
    with pytest.raises(RuntimeError, match="does not exist"):
        cx.read_sql(server.dsn(), "SELECT * FROM no_such_table", return_type="arrow")


# ---------------------------------------------------------------- ibis


@pytest.fixture(scope="module")
def ibis_con(server):
    import ibis

    con = ibis.postgres.connect(host=server.host, port=server.port, user="leadline", database="leadline")
    yield con
    con.disconnect()


def test_ibis_tables_and_counts(ibis_con, data):
    want = {r["table_name"] for r in query_json(
        data, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    tables = set(ibis_con.list_tables())
    assert TABLES <= tables <= want | {"dora_quality"}
    deployments = ibis_con.table("deployments")
    assert deployments.count().execute() == count(data, "SELECT * FROM deployments")
    schema = deployments.schema()
    assert list(schema.names) == columns_by_table(data)["deployments"]
    assert schema["started_at"].is_timestamp() and schema["started_at"].timezone == "UTC"
    assert schema["change_ids"].is_array() and schema["recovery_time"].is_interval()


def test_ibis_expressions_and_sql(ibis_con, data):
    import ibis

    d = ibis_con.table("deployments")
    expr = d.filter(d.status == "succeeded").group_by("service").aggregate(n=ibis._.count()).order_by("service")
    got = expr.execute().to_dict("records")
    want = query_json(data, "SELECT service, count(*) AS n FROM deployments WHERE status = 'succeeded' "
                            "GROUP BY service ORDER BY service")
    assert got == want
    # con.sql: ibis types the query through a temporary view over it.
    t = ibis_con.sql("SELECT service, bucket_start, deployments, deployment_frequency FROM dora_metrics('week')")
    assert list(t.schema().names) == ["service", "bucket_start", "deployments", "deployment_frequency"]
    assert t.schema()["deployments"].is_int64()
    assert t.count().execute() == count(data, "SELECT * FROM dora_metrics('week')")
    per_service = t.group_by("service").aggregate(total=t.deployments.sum()).order_by("service").execute()
    want = query_json(data, "SELECT service, sum(deployments) AS total FROM dora_metrics('week') "
                            "GROUP BY service ORDER BY service")
    assert per_service.to_dict("records") == want
    # The temporary views are gone again.
    assert not [n for n in ibis_con.list_tables() if n.startswith("ibis_")]


# ---------------------------------------------------------------- Harlequin


def test_harlequin_adapter_catalog_and_queries(server, data):
    from harlequin.exception import HarlequinQueryError
    from harlequin_postgres.adapter import HarlequinPostgresAdapter

    conn = HarlequinPostgresAdapter(conn_str=(server.dsn(),)).connect()
    try:
        catalog = conn.get_catalog()
        assert [db.label for db in catalog.items] == ["leadline"]
        schemas = {s.label: s for s in catalog.items[0].children}
        assert "public" in schemas
        relations = {r.label: r for r in schemas["public"].children}
        assert TABLES <= set(relations)
        columns = relations["deployments"].fetch_children()
        assert [c.label for c in columns] == columns_by_table(data)["deployments"]
        types = {c.label: c.type_label for c in columns}
        assert (types["started_at"], types["service"], types["rolled_back"]) == ("ts", "s", "t/f")

        cur = conn.execute("SELECT service, count(*) AS n FROM deployments GROUP BY service ORDER BY service")
        assert cur.columns() == [("service", "s"), ("n", "##")]
        want = query_json(data, "SELECT service, count(*) AS n FROM deployments GROUP BY service ORDER BY service")
        assert [{"service": s, "n": n} for s, n in cur.fetchall()] == want
        cur = conn.execute(DORA_SQL).set_limit(5)
        rows = cur.fetchall()
        names = [c[0] for c in cur.columns()]
        assert_dora_rows([dict(zip(names, r)) for r in rows], query_json(data, DORA_SQL)[:5])

        completions = {c.label for c in conn.get_completions()}
        assert {"dora_metrics", "lead_time", "select"} <= completions
        found = conn.search_catalog("deploy")
        assert "deployments" in {r.item.label for r in found}
        with pytest.raises(HarlequinQueryError, match="does not exist"):
            conn.execute("SELECT * FROM no_such_table")
    finally:
        conn.close()


# ---------------------------------------------------------------- psqlODBC


def odbc_driver():
    """pyodbc and psqlODBC's Unicode driver (scripts/test installs
    odbc-postgresql and unixodbc), or None."""
    try:
        import pyodbc
    except ImportError:
        return None
    return pyodbc if "PostgreSQL Unicode" in pyodbc.drivers() else None


@pytest.mark.skipif(odbc_driver() is None, reason="pyodbc or psqlODBC (odbc-postgresql) missing")
@pytest.mark.parametrize("declare_fetch", [0, 1])
def test_pyodbc_psqlodbc(server, data, declare_fetch):
    pyodbc = odbc_driver()
    dsn = (f"DRIVER={{PostgreSQL Unicode}};SERVER={server.host};PORT={server.port};DATABASE=leadline;"
           f"UID=leadline;PWD=;UseDeclareFetch={declare_fetch};Fetch=100")
    conn = pyodbc.connect(dsn, autocommit=True)
    cur = conn.cursor()
    assert conn.getinfo(pyodbc.SQL_DBMS_NAME) == "PostgreSQL"
    assert cur.execute("SELECT count(*) FROM events").fetchone()[0] == count(data, "SELECT * FROM events")
    # `?` parameters become $n of the extended protocol (or are inlined, by the driver's choice).
    got = cur.execute("SELECT count(*) FROM deployments WHERE service = ? AND finished_at >= ?",
                      "svc-000", JUNE.replace(tzinfo=None)).fetchone()[0]
    assert got == count(data, "SELECT * FROM deployments WHERE service = 'svc-000' AND finished_at >= "
                              "CAST('2026-06-01T00:00:00Z' AS TIMESTAMP WITH TIME ZONE)")
    rows = cur.execute(DORA_SQL).fetchall()
    names = [d[0] for d in cur.description]
    # psqlODBC hands timestamptz over in the session's zone, UTC here, without a zone.
    got = [dict(zip(names, r), bucket_start=r[2].replace(tzinfo=dt.timezone.utc)) for r in rows]
    assert_dora_rows(got, query_json(data, DORA_SQL))

    tables = {t.table_name: t for t in cur.tables(schema="public")}
    assert TABLES <= set(tables)
    assert tables["events"].table_type == "TABLE" and tables["events"].table_cat == "leadline"
    columns = cur.columns(table="deployments").fetchall()
    assert [c.column_name for c in columns] == columns_by_table(data)["deployments"]
    types = {c.column_name: c.type_name for c in columns}
    assert types["started_at"] == "timestamptz" and types["deployment_id"] == "text"
    assert types["recovery_time"] == "interval" and types["change_ids"] == "_text"
    assert cur.primaryKeys(table="events").fetchall() == []

    with pytest.raises(pyodbc.ProgrammingError, match="42P01"):
        cur.execute("SELECT * FROM no_such_table")
    conn.close()

    # Outside autocommit, in a transaction: with UseDeclareFetch=1 the driver
    # reads the rows in batches of Fetch (100).
    conn = pyodbc.connect(dsn)
    cur = conn.cursor()
    ids = sorted(r[0] for r in cur.execute("SELECT event_id FROM events").fetchall())
    assert ids == sorted(r["event_id"] for r in query_json(data, "SELECT event_id FROM events"))
    conn.commit()
    conn.close()
