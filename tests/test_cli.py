"""The CLI as a user meets it: --help explains, errors are clear."""
from conftest import run


def test_help_explains_every_command(leadline_bin):
    out = run(leadline_bin, "--help").stdout
    for command in ("ingest", "query", "generate", "compact"):
        assert command in out


def test_query_on_a_missing_directory_is_a_clear_error(leadline_bin, tmp_path):
    out = run(leadline_bin, "query", "--data", tmp_path / "nope", "SELECT 1", check=False)
    assert out.returncode == 1
    assert "does not exist" in out.stderr


def test_the_server_builds_a_missing_read_model_at_start(leadline_bin, tmp_path):
    """A directory whose read model is gone (or of an earlier release) is
    brought up to date by the server itself, in the background, as the next
    append would; queries answer the same before, during and after."""
    import shutil
    import time

    import psycopg

    from leadline_pg import Server, ingest, query_json

    history = tmp_path / "history.ndjson"
    run(leadline_bin, "generate", "--seed", "5", "--services", "6", "--days", "60", "--events", "5000",
        "--output", history)
    data = tmp_path / "data"
    ingest(data, history)
    sql = "SELECT service, count(*) AS n FROM deployments GROUP BY service ORDER BY service"
    expected = query_json(data, sql)
    manifest = data / "model" / "MANIFEST.json"
    assert manifest.exists()
    shutil.rmtree(data / "model")
    server = Server(data)
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            served = [{"service": s, "n": n} for s, n in conn.execute(sql).fetchall()]
            assert served == expected
            deadline = time.time() + 120
            while not manifest.exists() and time.time() < deadline:
                time.sleep(0.2)
            assert manifest.exists(), "the server did not build the read model"
            served = [{"service": s, "n": n} for s, n in conn.execute(sql).fetchall()]
            assert served == expected
    finally:
        server.stop()
    check = run(leadline_bin, "check", "--data", data)
    assert "no damage found" in check.stdout + check.stderr
