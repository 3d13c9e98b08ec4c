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
