"""leadline and a real PostgreSQL 15 answer the corpus alike.

A throwaway PostgreSQL 15 cluster (Debian's `postgresql`) gets leadline's
tables, table functions and aggregates, with the names and types leadline
itself reports over the wire (so they cannot drift), and the rows of its
tables. Every statement of `../shared/pg-corpus` is then sent to both over
the extended protocol (binary results): each must succeed or fail on both,
with the same result columns (names and type OIDs of the RowDescription) and,
where the answer does not list PostgreSQL's own built-ins, the same number
of rows."""
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

from leadline_pg import Server, ingest, SAMPLE

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
    pg = Postgres()
    try:
        import psycopg

        with psycopg.connect(pg.conninfo("postgres").replace("dbname=leadline", "dbname=postgres"),
                             autocommit=True) as conn:
            conn.execute("CREATE ROLE leadline LOGIN")
            conn.execute("CREATE DATABASE leadline OWNER leadline")
        yield pg
    finally:
        pg.stop()


def describe(conn, sql):
    """The result columns of `sql` as (name, type OID), from its RowDescription."""
    res = conn.pgconn.exec_params(sql.encode(), [], result_format=1)
    assert res.error_message == b"", f"{sql}: {res.error_message.decode()}"
    return [(res.fname(i).decode(), res.ftype(i)) for i in range(res.nfields)]


def mirror(leadline, pg, pg_super):
    """Creates leadline's tables (with their rows), views, table functions and
    aggregates in PostgreSQL, as leadline itself describes them."""
    columns = {}
    for table, column, udt in leadline.execute(
            "SELECT c.table_name, c.column_name, c.udt_name FROM information_schema.columns c"
            " JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
            " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, c.ordinal_position"):
        columns.setdefault(table, []).append(f'"{column}" {udt}')
    assert {"events", "deployments", "changes", "incidents", "dora_quality"} <= set(columns)
    for table, cols in columns.items():
        pg.execute(f'CREATE TABLE "{table}" ({", ".join(cols)})')
        with leadline.cursor().copy(f'COPY "{table}" TO STDOUT') as out, pg.cursor().copy(f'COPY "{table}" FROM STDIN') as into:
            for chunk in out:
                into.write(chunk)

    type_name = lambda oid: pg.execute("SELECT format_type(%s, NULL)", [oid]).fetchone()[0]
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
            call = f"{name}({', '.join(['%s'] * required)})" % (("'week'",) * required)
            cols = ", ".join(f'"{c}" {type_name(oid)}' for c, oid in describe(leadline, f"SELECT * FROM {call}"))
            nulls = ", ".join(f"NULL::{type_name(oid)}" for _, oid in describe(leadline, f"SELECT * FROM {call}"))
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
# and SQLAlchemy's reflection send it back).
RECORDED_CLIMATE_OID = "16384"


def with_climate_oid(conn, sql, params):
    """The statement and parameters with the recorded OID of `climate` made
    this server's."""
    oid = str(conn.execute("SELECT CAST(CAST('climate' AS regclass) AS oid)").fetchone()[0])
    return (re.sub(rf"\b{RECORDED_CLIMATE_OID}\b", oid, sql),
            [oid if p == RECORDED_CLIMATE_OID else p for p in params])


def answer(conn, sql, params):
    """What a server answers to one statement over the extended protocol with
    binary results: (SQLSTATE or None, [(column, type OID)], rows)."""
    from psycopg import pq

    res = conn.pgconn.exec_params(sql.encode(), [p.encode() for p in params], result_format=1)
    if res.status == pq.ExecStatus.FATAL_ERROR:
        state = res.error_field(pq.DiagnosticField.SQLSTATE).decode()
        if conn.pgconn.transaction_status == pq.TransactionStatus.INERROR:
            conn.pgconn.exec_(b"ROLLBACK")
        return state, res.error_message.decode().splitlines()[0], [], 0
    return None, "", [(res.fname(i).decode(), res.ftype(i)) for i in range(res.nfields)], res.ntuples


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
        yield server, postgres
    finally:
        server.stop()


def test_corpus_answers_alike(servers):
    import psycopg

    server, postgres = servers
    differences = []
    statements = 0
    conns, current = {}, None
    try:
        for name, header, sql, params in corpus():
            if name != current:
                current = name
                for c in conns.values():
                    c.close()
                conns = {"leadline": psycopg.connect(server.dsn(), autocommit=True),
                         "postgres": psycopg.connect(postgres.conninfo(), autocommit=True)}
            statements += 1
            ours, theirs = (answer(conns[s], *with_climate_oid(conns[s], sql, params)) for s in ("leadline", "postgres"))
            if (ours[0] is None) != (theirs[0] is None) or ours[2] != theirs[2] or ours[3] != theirs[3]:
                differences.append(f"{name} {header[:60]}\n  {sql[:300]}\n  leadline: {ours}\n  postgres: {theirs}")
    finally:
        for c in conns.values():
            c.close()
    assert statements > 100
    assert not differences, f"{len(differences)} of {statements} differ:\n\n" + "\n\n".join(differences)
