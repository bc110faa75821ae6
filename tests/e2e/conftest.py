"""Shared fixtures for the end-to-end tests: they start the real `serveml` binary on a free
loopback port with a temporary data dir and talk to it over HTTP."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("SERVEML_BINARY", REPO / "build" / "serveml"))
SANITIZED = os.environ.get("SERVEML_SANITIZED") == "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `serveml serve` process. Start/stop it as often as a test needs."""

    def __init__(self, data_dir: Path, extra_args: list[str] | None = None,
                 exempt_loopback: bool = True, prefix: list[str] | None = None):
        """`exempt_loopback`: the tests' own loopback client skips the per-address
        throttles (registrations, logins, connection caps); the abuse tests turn it off."""
        self.data_dir = data_dir
        self.extra_args = (extra_args or []) + (["--exempt-loopback"] if exempt_loopback else [])
        self.prefix = prefix or []  # e.g. ["prlimit", "--as=..."]: runs the server under it
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log_path = data_dir.parent / f"server-{uuid.uuid4().hex[:8]}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "Server":
        self.port = free_port()
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [*self.prefix, str(BINARY), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(self.data_dir), *self.extra_args],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.logs()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become healthy: " + self.logs())

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.log.close()
        return rc

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("serveml-data")
    srv = Server(data, ["--max-body-mb", "2"]).start()
    yield srv
    rc = srv.stop()
    assert rc == 0, f"server exited with {rc}:\n{srv.logs()[-4000:]}"


@pytest.fixture
def fresh_server(tmp_path):
    """A private server for tests that restart or break it."""
    srv = Server(tmp_path / "data")
    (tmp_path / "data").mkdir()
    yield srv
    if srv.proc is not None:
        srv.stop()


class Client:
    """A registered user of a server."""

    def __init__(self, url: str, token: str, email: str, password: str):
        self.url = url
        self.token = token
        self.email = email
        self.password = password
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {token}"

    def get(self, path, **kw):
        return self.s.get(self.url + path, timeout=30, **kw)

    def post(self, path, **kw):
        return self.s.post(self.url + path, timeout=60, **kw)

    def patch(self, path, **kw):
        return self.s.patch(self.url + path, timeout=30, **kw)

    def delete(self, path, **kw):
        return self.s.delete(self.url + path, timeout=30, **kw)

    def deploy(self, model_bytes: bytes, name: str = "model", filename: str = "model.onnx",
               wait: bool = True, **fields) -> dict:
        files = {"model_file": (filename, model_bytes, "application/octet-stream")}
        data = {"name": name, **{k: str(v) for k, v in fields.items()}}
        r = self.post("/api/v1/deploy", files=files, data=data)
        assert r.status_code == 200, r.text
        d = r.json()
        if wait:
            d = self.wait(d["id"])
        return d

    def wait(self, dep_id: str, timeout: float = 30.0) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            d = self.get(f"/api/v1/deployments/{dep_id}").json()
            if d["status"] != "validating":
                return d
            time.sleep(0.02)
        raise AssertionError(f"deployment {dep_id} still validating after {timeout}s")

    def predict(self, dep_id: str, data, **kw):
        return self.post(f"/api/v1/predict/{dep_id}", json={"data": data}, **kw)


def register(url: str, prefix: str = "user") -> Client:
    tag = uuid.uuid4().hex[:10]
    email = f"{prefix}-{tag}@example.com"
    password = "correct-horse-battery"
    r = requests.post(url + "/api/v1/auth/register",
                      json={"email": email, "username": f"{prefix}_{tag}", "password": password,
                            "full_name": "Test User"}, timeout=30)
    assert r.status_code == 200, r.text
    return Client(url, r.json()["access_token"], email, password)


@pytest.fixture
def user(server) -> Client:
    return register(server.url)


def assert_error(resp, status: int, code: str):
    assert resp.status_code == status, f"{resp.status_code} {resp.text}"
    body = resp.json()
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "details" in body["error"]
    assert body["request_id"].startswith("req-") or body["request_id"]
    assert resp.headers.get("X-Request-ID") == body["request_id"]
    return body


def pytest_terminal_summary(terminalreporter):
    """Lists the comparisons with onnxruntime that were recorded instead of asserted because its
    integer kernels may saturate on this CPU (int_oracles.py)."""
    import sys

    oracles = sys.modules.get("int_oracles")
    if oracles is None or not oracles.DIFFERENCES:
        return
    differing = sum(1 for *_, summary in oracles.DIFFERENCES if "differ" in summary)
    terminalreporter.write_sep(
        "-", f"onnxruntime recorded, not asserted, in {len(oracles.DIFFERENCES)} comparisons "
             f"({differing} differ from ServeML)")
    for what, reason, summary in oracles.DIFFERENCES:
        terminalreporter.write_line(f"{what}: {summary} [{reason}]")
