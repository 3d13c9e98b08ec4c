"""Shared fixtures of the Python tests: the leadline binary and fixture paths."""
import os
import pathlib
import subprocess

import pytest

from leadline_pg import SAMPLE, Server, ingest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
# What tests keep for a person to look at (gitignored); listed at the end of the run.
ARTIFACTS = ROOT / "tests" / "artifacts"
_kept = []


@pytest.fixture(scope="session")
def artifact():
    """`artifact(name)`: a path under tests/artifacts/ that the run's summary names."""
    ARTIFACTS.mkdir(exist_ok=True)

    def path(name: str) -> pathlib.Path:
        p = ARTIFACTS / name
        if p not in _kept:
            _kept.append(p)
        return p

    return path


def pytest_terminal_summary(terminalreporter):
    for p in _kept:
        if p.exists():
            terminalreporter.write_line(f"test artifact: {p}")


@pytest.fixture(scope="session")
def leadline_bin() -> pathlib.Path:
    """The debug binary that scripts/test built."""
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/leadline/target"))
    path = target / "debug" / "leadline"
    assert path.exists(), f"{path} missing: run scripts/test"
    return path


@pytest.fixture(scope="session")
def fixtures() -> pathlib.Path:
    return SHARED / "fixtures"


def run(bin_path, *args, check=True):
    out = subprocess.run([str(bin_path), *map(str, args)], capture_output=True, text=True)
    if check and out.returncode not in (0, 2):
        raise AssertionError(f"leadline {' '.join(map(str, args))} failed: {out.stderr}")
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A data directory with the sample history, one per test module."""
    d = tmp_path_factory.mktemp("data") / "data"
    ingest(d, SAMPLE)
    return d


@pytest.fixture(scope="module")
def server(data):
    """`leadline serve` over the module's data directory."""
    s = Server(data)
    yield s
    s.stop()
