"""The catalog's statement rewrites through a real client (psycopg 3): they
change the parsed statement only, so literals come back as sent, and an error
in a query over a catalog relation reaches the client with its SQLSTATE."""
import psycopg
import pytest




def test_literals_naming_pg_catalog_come_back_unchanged(server):
    literals = ["a pg_catalog.pg_class b", "x OPERATOR(pg_catalog.~) y", "COLLATE pg_catalog.default"]
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        # Simple protocol (no parameters) and extended protocol (bound and inline).
        row = conn.execute("SELECT " + ", ".join(f"'{l}'" for l in literals)).fetchone()
        assert list(row) == literals
        assert conn.execute("SELECT %s::text", [literals[0]]).fetchone()[0] == literals[0]
        # The qualified names around them are still rewritten.
        rows = conn.execute(
            "SELECT c.relname, 'pg_catalog.pg_class' FROM pg_catalog.pg_class c "
            "WHERE c.relname OPERATOR(pg_catalog.~) '^events$' COLLATE pg_catalog.default"
        ).fetchall()
        assert rows == [("events", "pg_catalog.pg_class")]


def test_an_unknown_column_of_a_catalog_relation_is_an_error(server):
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute("SELECT no_such_column FROM pg_index").fetchall()
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute("SELECT (SELECT d.no_such_column FROM pg_description d) FROM pg_class").fetchall()
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT 'no_such_table'::regclass").fetchall()
        # The relations themselves are there, empty.
        assert conn.execute("SELECT indexrelid FROM pg_catalog.pg_index").fetchall() == []
        assert conn.execute("SELECT count(*) FROM pg_index").fetchone()[0] == 0
