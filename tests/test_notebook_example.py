"""examples/notebook.ipynb runs top to bottom against a real server.

The notebook reads the sample history's published tables with Polars and
DuckDB, asks `leadline serve` the same questions with psycopg and pandas
(asserting both agree), and saves its weekly chart. The executed notebook
and the chart are kept as test artifacts (LEADLINE_ARTIFACTS, by default
`<cargo target dir>/test-artifacts/`).
"""
import os
import pathlib

import nbformat
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"


def artifacts() -> pathlib.Path:
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/leadline/target"))
    path = pathlib.Path(os.environ.get("LEADLINE_ARTIFACTS", target / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def outputs_text(nb) -> str:
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") or "".join(out.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


def test_the_notebook_runs_top_to_bottom(data, server, tmp_path, monkeypatch):
    chart = artifacts() / "notebook-weekly-trend.png"
    chart.unlink(missing_ok=True)
    # The kernel inherits the environment: the notebook reads its inputs there.
    monkeypatch.setenv("LEADLINE_DATA", str(data))
    monkeypatch.setenv("LEADLINE_DSN", server.dsn())
    monkeypatch.setenv("LEADLINE_CHART", str(chart))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in nb.cells), "keep the notebook's outputs out of the repository"
    # Raises CellExecutionError, with the cell and its traceback, if any cell fails.
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, artifacts() / "notebook.ipynb")
    text = outputs_text(nb)
    # Nothing appended meanwhile: the notebook compared the files with the
    # server (and asserted they agree) rather than skipping the comparison.
    assert "the files and the server agree on all" in text, text
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 20_000
    print(f"notebook chart: {chart}")
