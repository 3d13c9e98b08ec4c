"""leadline and a real PostgreSQL 15 answer alike.

A throwaway PostgreSQL 15 cluster (Debian's `postgresql`) gets leadline's
tables (with their rows), table functions and aggregates, declared as
leadline itself describes them over the wire (so they cannot drift), and the
corpus's `climate` as a view on both. Then:
- every statement of `../shared/pg-corpus`, sent to both over the extended
  protocol with binary results, succeeds or fails alike, with the same result
  columns (names and type OIDs of the RowDescription) and as many rows;
- every pg_catalog and information_schema relation leadline has gives
  PostgreSQL's columns, of PostgreSQL's types;
- leadline's pg_type rows, and what the catalog says of leadline's tables,
  are PostgreSQL's row for row.
What differs by design is listed below, with the reason."""
import itertools
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

from leadline_pg import SAMPLE, Server, ingest

CORPUS = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "pg-corpus"
PG_BIN = pathlib.Path("/usr/lib/postgresql/15/bin")

# The corpus's own table (`climate`) as a view on both servers: leadline has
# no tables of its own making, and a view is a relation both can create.
CLIMATE = ("CREATE VIEW climate AS SELECT CAST('2017-01-01' AS date) AS date, CAST(10.0 AS double precision) AS meantemp,"
           " CAST(84.5 AS double precision) AS humidity, CAST('Delhi' AS text) AS city")


class Postgres:
    """A PostgreSQL 15 cluster in a temporary directory, reached over a unix
    socket there. PostgreSQL refuses to run as root: as root (CI), the
    cluster runs as Debian's `postgres` user."""

    def __init__(self):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="leadline-pg15-"))
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self.port = 5432  # only names the socket file: TCP is off
        data = self.dir / "data"
        self._run(PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8",
                  "--locale=C.UTF-8")
        self._run(PG_BIN / "pg_ctl", "-D", data, "-l", self.dir / "log", "-w", "start", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses='' -c fsync=off")

    def _run(self, *args):
        out = subprocess.run([*self.as_user, *map(str, args)], capture_output=True, text=True)
        assert out.returncode == 0, f"{args[0]}: {out.stderr}"

    def conninfo(self, user="leadline"):
        return f"host={self.dir} port={self.port} user={user} dbname=leadline"

    def stop(self):
        subprocess.run([*self.as_user, str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 is not installed (scripts/test installs Debian's postgresql)")
    import psycopg

    pg = Postgres()
    try:
        with psycopg.connect(pg.conninfo("postgres").replace("dbname=leadline", "dbname=postgres"),
                             autocommit=True) as conn:
            conn.execute("CREATE ROLE leadline LOGIN")
            conn.execute("CREATE DATABASE leadline OWNER leadline")
        yield pg
    finally:
        pg.stop()


def mirror(leadline, pg, pg_super):
    """Creates leadline's tables (with their rows), table functions and
    aggregates in PostgreSQL, as leadline itself describes them, and the
    corpus's `climate` view on both."""
    type_name = lambda oid: pg.execute("SELECT format_type(%s, NULL)", [oid]).fetchone()[0]
    columns = {}
    for table, column, udt, nullable in leadline.execute(
            "SELECT c.table_name, c.column_name, c.udt_name, c.is_nullable FROM information_schema.columns c"
            " JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
            " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, c.ordinal_position"):
        udt = type_name(pg.execute("SELECT %s::regtype::oid", [udt]).fetchone()[0])  # `_text` is `text[]`
        columns.setdefault(table, []).append(f'"{column}" {udt}' + (" NOT NULL" if nullable == "NO" else ""))
    assert {"events", "deployments", "changes", "incidents", "dora_quality"} <= set(columns)
    for table, cols in columns.items():
        pg.execute(f'CREATE TABLE "{table}" ({", ".join(cols)})')
        with leadline.cursor().copy(f'COPY "{table}" TO STDOUT') as out, pg.cursor().copy(f'COPY "{table}" FROM STDIN') as into:
            for chunk in out:
                into.write(chunk)

    functions = leadline.execute(
        "SELECT p.proname, pg_get_function_arguments(p.oid), p.prokind, p.proretset, p.prorettype, p.proargtypes,"
        " p.pronargs - p.pronargdefaults FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'public' ORDER BY p.oid").fetchall()
    assert functions, "leadline's pg_proc lists no functions of its own"
    pg_super.execute("SET allow_system_table_mods = on")
    for n, (name, arguments, kind, retset, ret, arg_types, required) in enumerate(functions):
        if retset:
            # A table function: its columns as a call of it describes them
            # (the one argument every call needs is the grain).
            call = f"{name}({', '.join([repr('week')] * required)})"
            described = answer(leadline, f"SELECT * FROM {call}", [])[2]
            cols = ", ".join(f'"{c}" {type_name(oid)}' for c, oid in described)
            nulls = ", ".join(f"NULL::{type_name(oid)}" for _, oid in described)
            pg.execute(f"CREATE FUNCTION {name}({arguments}) RETURNS TABLE({cols}) LANGUAGE sql"
                       f" AS 'SELECT {nulls} WHERE false'")
        elif kind == "a":
            # PostgreSQL's aggregates take no defaults: one per arity. The
            # state function (a stub answering NULL) sits in pg_catalog, out
            # of the listings compared.
            types = [type_name(int(oid)) for oid in arg_types.split()]  # an oidvector: `25 1184`
            for arity in range(required, len(types) + 1):
                stub = f"pg_catalog.leadline_state_{n}_{arity}"
                pg_super.execute(f"CREATE FUNCTION {stub}({', '.join([type_name(ret), *types[:arity]])})"
                                 f" RETURNS {type_name(ret)} LANGUAGE sql IMMUTABLE AS 'SELECT $1'")
                pg.execute(f"CREATE AGGREGATE {name}({', '.join(types[:arity])}) (SFUNC = {stub}, STYPE = {type_name(ret)})")
        else:
            pg.execute(f"CREATE FUNCTION {name}({arguments}) RETURNS {type_name(ret)} LANGUAGE sql AS 'SELECT NULL'")
    for conn in (leadline, pg):
        conn.execute(CLIMATE)


def parameters(header):
    """`-- [execute S_1 pid=1] parameters: $1 = 'a', $2 = 'it''s'` → ['a', "it's"]."""
    _, _, listed = header.partition("parameters: ")
    return [m.replace("''", "'") for m in re.findall(r"\$\d+ = '((?:[^']|'')*)'", listed)]


def corpus():
    """(file, header, statement, parameters) for every statement of the corpus.
    Entries start at a `-- [statement|execute …]` line (logged by PostgreSQL)
    or a `-- G …`/`-- M …` line (grafana.sql, metabase.sql); other comment
    lines are dropped; statements end at a `;` that ends a line."""
    for path in sorted(CORPUS.glob("*.sql")):
        header, body = None, []
        entries = []
        for line in path.read_text().splitlines() + ["-- [end]"]:
            if re.match(r"-- (\[|G |M )", line):
                if header is not None:
                    entries.append((header, "\n".join(body)))
                header, body = line, []
            elif not line.lstrip().startswith("--"):
                body.append(line)
        for header, text in entries:
            for sql in re.split(r";\s*(?:\n|$)", text):
                if sql.strip():
                    yield path.name, header, sql.strip(), parameters(header)


# The OID `climate` had where the corpus was recorded (psql's `\d climate`
# and SQLAlchemy's reflection send it back): each server gets its own.
RECORDED_CLIMATE_OID = "16384"

INT4, INT8, FLOAT8, NUMERIC = 23, 20, 701, 1700

# Columns wider in leadline than in PostgreSQL by DataFusion's arithmetic,
# with alike values: an integer literal is a bigint, so `1`, `x - 1` and
# `n / 100` are bigint where PostgreSQL says integer (integer literals would
# make integer arithmetic wrap around where PostgreSQL fails); extract(),
# avg() and sum() of a bigint are double precision or bigint where
# PostgreSQL 14+ says numeric.
WIDER = {(INT8, INT4), (FLOAT8, NUMERIC), (INT8, NUMERIC)}

# Statements whose answers differ by design: (what the statement holds, what
# may differ, why).
INHERENT = [
    ("::pg_catalog.regclass", "types",
     "psql's \\d over pg_inherits and pg_statistic_ext (no rows in leadline): a column cast to regclass is the"
     " relation's name as text and its OID as binary; leadline answers the OID, a bigint"),
    ("json_build_object(", "types",
     "SQLAlchemy's column reflection: json_build_object over pg_sequence and pg_collation (no rows in leadline)"
     " is a NULL text: DataFusion has no json type"),
    ("FROM pg_catalog.pg_database d", "rows",
     "psql's \\l: PostgreSQL lists its postgres and template databases, leadline its one database"),
    ("pg_catalog.pg_opclass", "rows", "PostgreSQL's built-in operator classes: leadline has no indexes"),
    ("dora_metrics(", "rows", "PostgreSQL's dora_metrics is a stub with leadline's columns and no rows"),
    # Not inherent, a known gap: these run on no rows, and leadline answers a
    # query DataFusion cannot run (an unnest of another FROM item's column) as
    # an empty stub whose computed columns are text.
    ("indnullsnotdistinct", "types",
     "SQLAlchemy 2's index and constraint reflection over pg_index/pg_constraint (no rows in leadline)"),
]


def answer(conn, sql, params, binary=True):
    """What a server answers to one statement over the extended protocol
    (binary results unless said): (SQLSTATE or None, first line of the
    error, [(column, type OID)], rows)."""
    from psycopg import pq

    res = conn.pgconn.exec_params(sql.encode(), [p.encode() for p in params], result_format=int(binary))
    if res.status == pq.ExecStatus.FATAL_ERROR:
        state = res.error_field(pq.DiagnosticField.SQLSTATE).decode()
        if conn.pgconn.transaction_status == pq.TransactionStatus.INERROR:
            conn.pgconn.exec_(b"ROLLBACK")
        return state, res.error_message.decode().splitlines()[0], [], 0
    return None, "", [(res.fname(i).decode(), res.ftype(i)) for i in range(res.nfields)], res.ntuples


def difference(sql, ours, theirs):
    """How leadline's answer differs from PostgreSQL's, beyond what
    WIDER and INHERENT allow; None if it does not."""
    (our_state, _, our_columns, our_rows), (their_state, _, their_columns, their_rows) = ours, theirs
    allowed = {what for marker, what, _ in INHERENT if marker in sql}
    if our_state != their_state:
        return "SQLSTATE"
    if [c for c, _ in our_columns] != [c for c, _ in their_columns]:
        return "column names"
    if "types" not in allowed and any(o != t and (o, t) not in WIDER for (_, o), (_, t) in zip(our_columns, their_columns)):
        return "column types"
    if "rows" not in allowed and our_rows != their_rows:
        return "row count"
    return None


@pytest.fixture(scope="module")
def servers(tmp_path_factory, postgres):
    """leadline over the sample history, and PostgreSQL mirroring it."""
    import psycopg

    data = tmp_path_factory.mktemp("data") / "data"
    ingest(data, SAMPLE)
    server = Server(data)
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as leadline, \
                psycopg.connect(postgres.conninfo(), autocommit=True) as pg, \
                psycopg.connect(postgres.conninfo("postgres"), autocommit=True) as pg_super:
            mirror(leadline, pg, pg_super)
        yield {"leadline": server.dsn(), "postgres": postgres.conninfo(),
               "postgres_superuser": postgres.conninfo("postgres")}
    finally:
        server.stop()


def test_corpus_answers_alike(servers):
    """Every statement of the corpus, sent over one connection per file to
    each server, succeeds or fails alike (same SQLSTATE), with the same
    result columns (names, type OIDs) and as many rows."""
    import psycopg

    differences = []
    statements = 0
    for name, entries in itertools.groupby(corpus(), key=lambda e: e[0]):
        conns = {server: psycopg.connect(servers[server], autocommit=True) for server in ("leadline", "postgres")}
        oids = {server: str(c.execute("SELECT CAST(CAST('climate' AS regclass) AS oid)").fetchone()[0])
                for server, c in conns.items()}
        try:
            for _, header, sql, params in entries:
                statements += 1
                ours, theirs = (
                    answer(conns[server], re.sub(rf"\b{RECORDED_CLIMATE_OID}\b", oids[server], sql),
                           [oids[server] if p == RECORDED_CLIMATE_OID else p for p in params])
                    for server in ("leadline", "postgres"))
                what = difference(sql, ours, theirs)
                if what:
                    differences.append(f"{name} {header[:60]}: {what}\n  {sql[:300]}\n  leadline:   {ours}\n"
                                       f"  PostgreSQL: {theirs}")
        finally:
            for c in conns.values():
                c.close()
    assert statements > 150
    assert not differences, f"{len(differences)} of {statements} differ:\n\n" + "\n\n".join(differences)


# Columns leadline's catalog has that PostgreSQL 15's lacks: leadline says it
# is PostgreSQL 16, whose psql asks for them.
POSTGRES_16_COLUMNS = {"pg_catalog.pg_database": ["daticurules"]}

# Catalog columns of types whose text and binary forms are different values,
# which leadline keeps as text: a `regproc` (`pg_type.typinput` …) or
# `regtype[]` is a name as text but an OID as binary; an `inet`
# (`pg_stat_activity.client_addr`, always NULL in leadline) has a binary form
# of its own.
AS_TEXT = {24: 25, 2211: 1009, 869: 25}


def test_catalog_relations_have_postgres_columns(servers):
    """Every pg_catalog and information_schema relation leadline has gives
    PostgreSQL's columns, in PostgreSQL's order and of PostgreSQL's types,
    but for a `regproc` column (`pg_type.typinput` …): a function's name as
    text and its OID as binary in PostgreSQL, leadline's is its name, as text."""
    import psycopg

    # PostgreSQL's superuser: PostgreSQL shows pg_authid to no one else.
    with psycopg.connect(servers["leadline"], autocommit=True) as leadline, \
            psycopg.connect(servers["postgres_superuser"], autocommit=True) as pg:
        relations = pg.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname IN ('pg_catalog', 'information_schema') AND c.relkind IN ('r', 'v')"
            " ORDER BY 1, 2").fetchall()
        differences, compared = [], 0
        for schema, relation in relations:
            # Text results: PostgreSQL has no binary form of `aclitem` (`relacl` …).
            sql = f"SELECT * FROM {schema}.{relation}"
            state, _, ours, _ = answer(leadline, sql, [], binary=False)
            if state == "42P01":
                continue  # a relation leadline does not have
            compared += 1
            extra = POSTGRES_16_COLUMNS.get(f"{schema}.{relation}", [])
            ours = [(c, t) for c, t in ours if c not in extra]
            theirs = [(c, AS_TEXT.get(t, t)) for c, t in answer(pg, sql, [], binary=False)[2]]
            if (state, ours) != (None, theirs):
                differences.append(f"{schema}.{relation}\n  leadline:   {state} {ours}\n  PostgreSQL: {theirs}")
    assert compared > 40
    assert not differences, f"{len(differences)} of {compared} differ:\n\n" + "\n\n".join(differences)


def rows_of(servers, sql):
    """`sql`'s rows on leadline and on PostgreSQL."""
    import psycopg

    answers = []
    for server in ("leadline", "postgres"):
        with psycopg.connect(servers[server], autocommit=True) as conn:
            answers.append(conn.execute(sql).fetchall())
    return answers


def test_pg_type_rows_are_postgres_rows(servers):
    """The types leadline's pg_type lists are PostgreSQL's, row for row."""
    ours, _ = rows_of(servers, "SELECT oid FROM pg_type")
    columns = ("oid, typname, typnamespace, typlen, typbyval, typtype, typcategory, typispreferred, typelem, typarray,"
               " typdelim, typalign, typstorage, typcollation, typinput::text, typoutput::text, typreceive::text,"
               " typsend::text, typsubscript::text, typbasetype, typtypmod, typndims, format_type(oid, NULL)")
    ours, theirs = rows_of(servers, f"SELECT {columns} FROM pg_type WHERE oid IN ({', '.join(str(r[0]) for r in ours)})"
                                    " ORDER BY oid")
    assert len(ours) > 30
    assert ours == theirs


@pytest.mark.parametrize("sql", [
    "SELECT c.relname, c.relkind, c.relnatts, c.relpersistence, c.relhasindex, c.relhasrules, c.relispartition,"
    " c.relam <> 0 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
    "SELECT c.relname, a.attname, a.atttypid, a.attlen, a.attnum, a.attndims, a.atttypmod, a.attbyval, a.attalign,"
    " a.attstorage, a.attnotnull, a.atthasdef, a.attidentity, a.attgenerated, a.attisdropped, a.attcollation,"
    " format_type(a.atttypid, a.atttypmod) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND a.attnum > 0",
    "SELECT table_name, column_name, ordinal_position, column_default, is_nullable, data_type, numeric_precision,"
    " numeric_precision_radix, numeric_scale, datetime_precision, interval_type, udt_schema, udt_name,"
    " is_identity, is_generated FROM information_schema.columns WHERE table_schema = 'public'",
    # (Not is_updatable, is_insertable_into: leadline's tables take no UPDATE,
    # and only events an INSERT; the PostgreSQL mirror's take both.)
    "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public'",
    "SELECT schema_name FROM information_schema.schemata",
    "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%'",
], ids=["pg_class", "pg_attribute", "columns", "tables", "schemata", "pg_namespace"])
def test_leadline_relations_are_described_as_postgres_describes_them(servers, sql):
    """The catalog describes leadline's tables (and the view `climate`) as
    PostgreSQL describes the same tables, row for row."""
    ours, theirs = rows_of(servers, sql + " ORDER BY 1, 2" if "," in sql.split("FROM")[0] else sql + " ORDER BY 1")
    assert len(ours) > 0
    assert ours == theirs


@pytest.mark.parametrize("sql", [
    "SELECT no_such_column FROM pg_class",
    "SELECT i.no_such_column FROM pg_index i",
    "SELECT * FROM pg_catalog.no_such_relation",
    "SELECT * FROM no_such_table",
    "SELECT no_such_function(1)",
    "SELECT relname FROM pg_class WHERE",
    "SELECT CAST('no_such_table' AS regclass)",
    "SELECT current_setting('no_such.setting')",
    "SELECT format('%I', NULL)",
    "SELECT CAST('x' AS integer)",
    "SELECT 1/0",
    "SELECT service FROM deployments WHERE no_such_column = 1",
    "SELECT * FROM dora_metrics()",
])
def test_bad_statements_fail_alike(servers, sql):
    """A statement PostgreSQL refuses, leadline refuses with its SQLSTATE."""
    import psycopg

    states = []
    for server in ("leadline", "postgres"):
        with psycopg.connect(servers[server], autocommit=True) as conn:
            states.append(answer(conn, sql, [])[:2])
    (ours, our_message), (theirs, their_message) = states
    assert theirs is not None
    assert ours == theirs, f"leadline: {our_message}\nPostgreSQL: {their_message}"
