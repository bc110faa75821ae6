"""Fixtures: the SDK's tests run against the real `serveml` binary, started on a free loopback
port with a temporary data dir (SERVEML_BINARY, default build/serveml of the repo)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("SERVEML_BINARY", REPO / "build" / "serveml"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server_url(tmp_path_factory):
    data = tmp_path_factory.mktemp("sdk-data")
    port = _free_port()
    log = open(data.parent / "sdk-server.log", "wb")
    proc = subprocess.Popen([str(BINARY), "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--data-dir", str(data), "--exempt-loopback"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.time() > deadline:
            proc.kill()
            raise RuntimeError("server did not become healthy")
        time.sleep(0.05)
    yield url
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    log.close()
    assert rc == 0


@pytest.fixture
def creds():
    tag = uuid.uuid4().hex[:10]
    return {"email": f"sdk-{tag}@example.com", "username": f"sdk_{tag}", "password": "correct-horse-battery"}


def _onnx_model(n_in: int = 4, n_out: int = 3, seed: int = 0, bias: float = 0.0) -> bytes:
    """y[N, n_out] = x @ W + b, made with the onnx package (nothing binary is checked in)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(size=(n_in, n_out)).astype(np.float32)
    b = np.full((n_out,), bias, dtype=np.float32)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="sdk-tests")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


@pytest.fixture
def model_file(tmp_path) -> Path:
    p = tmp_path / "linear.onnx"
    p.write_bytes(_onnx_model())
    return p


@pytest.fixture
def model_file_v2(tmp_path) -> Path:
    p = tmp_path / "linear_v2.onnx"
    p.write_bytes(_onnx_model(bias=100.0))
    return p
