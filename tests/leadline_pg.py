"""Starts a real `leadline serve` for the PostgreSQL-client tests."""
import json
import os
import pathlib
import re
import subprocess
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample.ndjson"


def binary() -> pathlib.Path:
    if os.environ.get("LEADLINE_BIN"):
        return pathlib.Path(os.environ["LEADLINE_BIN"])
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/leadline/target"))
    return target / "debug" / "leadline"


class Server:
    """A `leadline serve` process on a free loopback port."""

    def __init__(self, data: pathlib.Path, *args, env=None, stderr=None):
        """`stderr`: a file for the server's logs (default: a pipe)."""
        self.data = data
        self.proc = subprocess.Popen(
            [str(binary()), "serve", "--data", str(data), "--listen", "127.0.0.1:0", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if stderr is None else stderr,
            text=True,
            env={**os.environ, **(env or {})},
        )
        deadline = time.time() + 60
        self.port = None
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r" on 127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        # With --http, the HTTP front's address follows.
        self.http_port = None
        while self.port is not None and "--http" in map(str, args) and time.time() < deadline:
            line = self.proc.stdout.readline()
            m = re.search(r"http on http://127\.0\.0\.1:(\d+)", line)
            if not line or m:
                self.http_port = int(m.group(1)) if m else None
                break
        if self.port is None or ("--http" in map(str, args) and self.http_port is None):
            self.proc.kill()
            raise RuntimeError(f"leadline serve did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.host = "127.0.0.1"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def dsn(self, user="leadline", password=None, **params) -> str:
        auth = user if password is None else f"{user}:{password}"
        extra = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://{auth}@127.0.0.1:{self.port}/leadline" + (f"?{extra}" if extra else "")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def ingest(data: pathlib.Path, *files):
    out = subprocess.run([str(binary()), "ingest", "--data", str(data), *map(str, files)], capture_output=True, text=True)
    assert out.returncode in (0, 2), out.stderr
    return out


def query_json(data: pathlib.Path, sql: str):
    out = subprocess.run([str(binary()), "query", "--data", str(data), "--format", "json", sql], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


NODE_DIR = pathlib.Path.home() / ".cache/leadline/node"


def node_package(name: str):
    """The node_modules holding npm package `name` (scripts/test installs
    them), or None when it or node itself is missing."""
    import shutil

    modules = NODE_DIR / "node_modules"
    return modules if shutil.which("node") and (modules / name).is_dir() else None


def run_node(script: str, dsn: str, tmp_path: pathlib.Path, package: str):
    """Runs a node script (which gets the DSN as argv[2] and prints one JSON
    line) against the server; returns what it printed, parsed."""
    path = tmp_path / "client.js"
    path.write_text(script)
    out = subprocess.run(["node", str(path), dsn], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "NODE_PATH": str(node_package(package))})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
