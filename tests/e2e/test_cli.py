"""End-to-end test of the `serveml` client CLI against a real `serveml serve` process.

Journey: register -> deploy an ONNX model with --wait -> list -> predict (numbers checked
against numpy) -> delete -> list; plus error cases (unknown deployment, wrong password,
unreachable server). The server runs on a free loopback port with a temporary data dir;
the CLI runs with HOME pointed at a temporary directory so ~/.serveml is never touched.

    SERVEML_BINARY=build/serveml .venv/bin/python -m pytest tests/e2e/test_cli.py -v
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import onnx
import pytest
import requests
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("SERVEML_BINARY", REPO / "build" / "serveml"))
PASSWORD = "Sup3r-Secret-pw!"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module")
def serveml_url(tmp_path_factory):
    """Starts `serveml serve` on a free port and yields its base URL."""
    if not BINARY.exists():
        pytest.fail(f"serveml binary not found at {BINARY} (build it or set SERVEML_BINARY)")
    root = tmp_path_factory.mktemp("server")
    data_dir = root / "data"
    data_dir.mkdir()
    log_path = root / "server.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(BINARY), "serve", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(data_dir), "--exempt-loopback"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{_tail(log_path)}")
            try:
                if requests.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not healthy after 30 s:\n{_tail(log_path)}")
            time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Cli:
    """Runs the CLI with an isolated HOME; remembers every output for secret checks."""

    def __init__(self, home: Path):
        self.home = home
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("SERVEML_URL", "SERVEML_TOKEN", "SERVEML_PASSWORD")}
        self.env["HOME"] = str(home)
        self.outputs: list[str] = []

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        p = subprocess.run([str(BINARY), *args], env=self.env, input=stdin,
                           capture_output=True, text=True, timeout=180)
        self.outputs += [p.stdout, p.stderr]
        return p


@pytest.fixture
def cli(tmp_path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    return Cli(home)


def _make_linear_onnx(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """y = x @ W + b with x float [N,4], W 4x3, b 3; opset 13. Returns (W, b)."""
    rng = np.random.default_rng(1234)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="serveml-e2e")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return w, b


def _field(stdout: str, name: str) -> str:
    m = re.search(rf"^{name}:\s+(\S+)", stdout, re.MULTILINE)
    assert m, f"no '{name}:' line in:\n{stdout}"
    return m.group(1)


def test_full_journey(serveml_url, cli, tmp_path):
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    username = f"e2e_{uuid.uuid4().hex[:8]}"

    # register: saves url + token to $HOME/.serveml/config.json (dir 0700, file 0600).
    p = cli("register", "--url", serveml_url, "--email", email, "--username", username,
            "--password", PASSWORD)
    assert p.returncode == 0, p.stderr
    config_dir = cli.home / ".serveml"
    config_path = config_dir / "config.json"
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    config = json.loads(config_path.read_text())
    assert config["url"] == serveml_url
    token = config["token"]
    assert token

    # login again with the password on stdin (not a TTY).
    p = cli("login", "--url", serveml_url, "--email", email, stdin=PASSWORD + "\n")
    assert p.returncode == 0, p.stderr

    # deploy --wait: from here on url and token come from the config file.
    model_path = tmp_path / "linear.onnx"
    w, b = _make_linear_onnx(model_path)
    p = cli("deploy", str(model_path), "--name", "e2e-linear", "--wait", "--wait-timeout", "60")
    assert p.returncode == 0, f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    dep_id = _field(p.stdout, "id")
    assert _field(p.stdout, "status") == "active"
    assert dep_id in _field(p.stdout, "endpoint")

    # list shows it, as a table and as JSON; filters are passed through.
    p = cli("list")
    assert p.returncode == 0, p.stderr
    row = next((line for line in p.stdout.splitlines() if line.startswith(dep_id)), None)
    assert row is not None, p.stdout
    assert "e2e-linear" in row and "active" in row
    p = cli("list", "--json", "--search", "e2e-linear", "--status", "active", "--limit", "10")
    assert p.returncode == 0, p.stderr
    assert dep_id in [item["id"] for item in json.loads(p.stdout)["items"]]

    # predict matches numpy.
    x = np.array([[1, 2, 3, 4]], dtype=np.float32)
    expected = x @ w + b
    for args, stdin in ((("--data", "[[1,2,3,4]]"), None), (("--data", "-"), "[[1, 2, 3, 4]]")):
        p = cli("predict", dep_id, *args, stdin=stdin)
        assert p.returncode == 0, p.stderr
        body = json.loads(p.stdout)
        got = np.asarray(body["predictions"], dtype=np.float64).reshape(expected.shape)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    data_file = tmp_path / "input.json"
    data_file.write_text(json.dumps([[1, 2, 3, 4], [0, 0, 0, 0]]))
    p = cli("predict", dep_id, "--data", f"@{data_file}", "--json")
    assert p.returncode == 0, p.stderr
    x2 = np.array([[1, 2, 3, 4], [0, 0, 0, 0]], dtype=np.float32)
    got = np.asarray(json.loads(p.stdout)["predictions"], dtype=np.float64).reshape(2, 3)
    np.testing.assert_allclose(got, x2 @ w + b, rtol=1e-5, atol=1e-6)

    # status (ops view) works with the saved credentials.
    p = cli("status")
    assert p.returncode == 0, p.stderr

    # delete, then it is gone.
    p = cli("delete", dep_id)
    assert p.returncode == 0, p.stderr
    p = cli("list")
    assert p.returncode == 0, p.stderr
    assert dep_id not in p.stdout
    p = cli("predict", dep_id, "--data", "[[1,2,3,4]]")
    assert p.returncode == 1
    assert "NOT_FOUND" in p.stderr

    # Neither the token nor the password ever appears in any output.
    for out in cli.outputs:
        assert token not in out
        assert PASSWORD not in out


def test_predict_unknown_deployment_is_not_found(serveml_url, cli):
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    p = cli("register", "--url", serveml_url, "--email", email, "--username",
            f"u{uuid.uuid4().hex[:8]}", "--password", PASSWORD)
    assert p.returncode == 0, p.stderr
    p = cli("predict", "does-not-exist", "--data", "[[1,2,3,4]]")
    assert p.returncode == 1
    assert "error: NOT_FOUND:" in p.stderr, p.stderr


def test_wrong_password_is_unauthorized(serveml_url, cli):
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    p = cli("register", "--url", serveml_url, "--email", email, "--username",
            f"u{uuid.uuid4().hex[:8]}", "--password", PASSWORD)
    assert p.returncode == 0, p.stderr
    p = cli("login", "--url", serveml_url, "--email", email, "--password", "wrong-password-123")
    assert p.returncode == 1
    assert "UNAUTHORIZED" in p.stderr
    assert "wrong-password-123" not in p.stdout + p.stderr


def test_usage_and_connection_errors(cli):
    p = cli("help")
    assert p.returncode == 0
    for command in ("login", "register", "deploy", "list", "predict", "delete", "status"):
        assert f"serveml {command}" in p.stdout
    p = cli("predict", "x", "--data", "[1,")
    assert p.returncode == 2
    assert "not valid JSON" in p.stderr
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    p = cli("list", "--url", url)
    assert p.returncode == 1
    assert url in p.stderr
