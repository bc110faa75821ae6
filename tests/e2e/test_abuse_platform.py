"""Hostile users against the platform: uploads that would exhaust the importer, crashes
during validation, quotas, password guessing, mass sign-ups, revoked tokens, predictions
that would run forever or take all memory. Each test asserts *which* limit fired, that the
server still answers /health and that another user's predictions still succeed.

Servers here run without --exempt-loopback, so the per-address throttles apply to the test
client itself.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import sqlite3
import subprocess
import time
import uuid

import numpy as np
import pytest
import requests

from conftest import BINARY, Server, assert_error, register
from hostile_models import big_on_request, busy_probe, memory_hog, slow_on_request, wide_per_row
from models import mlp as mlp_proto


def mlp(**kw) -> bytes:
    return mlp_proto(**kw).SerializeToString()

SANITIZED = os.environ.get("SERVEML_SANITIZED") == "1"


def start(tmp_path, *args, exempt=False) -> Server:
    (tmp_path / "data").mkdir(exist_ok=True)
    return Server(tmp_path / "data", list(args), exempt_loopback=exempt).start()


def healthy_and_serving(srv: Server, other) -> None:
    """The server answers and an unrelated user's model still predicts correctly."""
    assert requests.get(srv.url + "/health", timeout=5).status_code == 200
    dep, x, want = other
    r = dep.predict(x[0], [[1.0, 2.0, 3.0, 4.0]])
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"][0], want, rtol=1e-5)


def bystander(srv: Server):
    """A second user with a working MLP, and the answer onnxruntime gives for one row."""
    import onnxruntime as ort
    model = mlp()
    c = register(srv.url, "bystander")
    d = c.deploy(model, name="bystander")
    assert d["status"] == "active", d
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)})[0][0]
    return c, (d["id"],), want


def test_importer_memory_limit(tmp_path):
    srv = start(tmp_path, "--validate-memory-mb", "512", exempt=True)
    try:
        other = bystander(srv)
        c = register(srv.url)
        d = c.deploy(memory_hog(1 << 28), name="hog")  # needs 1 GiB
        assert d["status"] == "failed", d
        assert "the importer needed more than 512 MiB of memory" in d["error_message"], d
        healthy_and_serving(srv, other)
    finally:
        srv.stop()


@pytest.mark.skipif(SANITIZED, reason="CPU time under ASan is not comparable")
def test_importer_cpu_limit(tmp_path):
    srv = start(tmp_path, "--validate-cpu-seconds", "1", exempt=True)
    try:
        other = bystander(srv)
        c = register(srv.url)
        t0 = time.time()
        d = c.deploy(busy_probe(), name="busy")
        assert d["status"] == "failed", d
        assert "more than 1 s of CPU time" in d["error_message"], d
        assert time.time() - t0 < 20
        healthy_and_serving(srv, other)
    finally:
        srv.stop()


def test_importer_wall_clock_limit(tmp_path):
    srv = start(tmp_path, "--validate-timeout-seconds", "1", exempt=True)
    try:
        other = bystander(srv)
        c = register(srv.url)
        d = c.deploy(busy_probe(), name="busy")
        assert d["status"] == "failed", d
        assert "the importer took longer than 1 s" in d["error_message"], d
        healthy_and_serving(srv, other)
    finally:
        srv.stop()


def importer_children() -> list[str]:
    """Command lines of running `serveml validate` processes (from /proc)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[1] == b"validate" and b"--parent-pid" in argv:
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


def _kill9(srv: Server) -> None:
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(timeout=30)
    srv.proc = None
    srv.log.close()


def test_validation_interrupted_twice_fails_instead_of_looping(tmp_path):
    """A version whose validation is killed twice is failed at the next start, not retried
    forever (and its importer children do not outlive the server)."""
    srv = start(tmp_path, exempt=True)
    c = register(srv.url)
    d = c.deploy(busy_probe(), name="slow", wait=False)
    dep_id = d["id"]
    time.sleep(1.0)
    assert c.get(f"/api/v1/deployments/{dep_id}").json()["status"] == "validating"
    _kill9(srv)
    # Second run: retried once...
    srv.start()
    c.url = srv.url  # a restart picks a new port
    time.sleep(1.0)
    assert c.get(f"/api/v1/deployments/{dep_id}").json()["status"] == "validating"
    _kill9(srv)
    # ...third run: failed with the reason, at once.
    srv.start()
    c.url = srv.url
    try:
        got = c.get(f"/api/v1/deployments/{dep_id}").json()
        assert got["status"] == "failed", got
        assert "validation was interrupted twice" in got["error_message"], got
        v = c.get(f"/api/v1/deployments/{dep_id}/versions").json()["items"][0]
        assert v["status"] == "failed"
        # No importer child survived its server.
        assert not importer_children(), importer_children()
        # The server works normally afterwards.
        assert c.deploy(mlp(), name="fine")["status"] == "active"
    finally:
        srv.stop()


def test_quota_exceeded(tmp_path):
    srv = start(tmp_path, "--quota-deployments", "2", "--quota-versions", "3",
                "--quota-storage-mb", "1", exempt=True)
    try:
        c = register(srv.url)
        a = c.deploy(mlp(), name="a")
        c.deploy(mlp(seed=1), name="b")
        files = {"model_file": ("m.onnx", mlp(seed=2), "application/octet-stream")}
        r = c.post("/api/v1/deploy", files=files, data={"name": "c"})
        body = assert_error(r, 403, "QUOTA_EXCEEDED")
        assert "2 of 2 deployments" in body["error"]["message"]
        assert body["error"]["details"]["max_deployments"] == 2
        assert body["error"]["details"]["deployments"] == 2
        # Versions: 2 stored, one more allowed, then refused.
        r = c.post(f"/api/v1/deployments/{a['id']}/versions",
                   files={"model_file": ("m.onnx", mlp(seed=3), "application/octet-stream")})
        assert r.status_code == 200, r.text
        r = c.post(f"/api/v1/deployments/{a['id']}/versions",
                   files={"model_file": ("m.onnx", mlp(seed=4), "application/octet-stream")})
        body = assert_error(r, 403, "QUOTA_EXCEEDED")
        assert "3 of 3 model versions" in body["error"]["message"]
        # Bytes: a 2 MB upload is over a 1 MiB quota.
        c.delete(f"/api/v1/deployments/{a['id']}")
        big = mlp(n_in=4, hidden=50000, n_out=3)  # ~1.4 MB of weights
        assert len(big) > (1 << 20) - 300000
        r = c.post("/api/v1/deploy", files={"model_file": ("big.onnx", big + b"", "x")},
                   data={"name": "big"})
        body = assert_error(r, 403, "QUOTA_EXCEEDED")
        assert "over the limit of 1048576 bytes" in body["error"]["message"]
        # Another user is not affected by this user's quota.
        assert register(srv.url, "other").deploy(mlp(), name="x")["status"] == "active"
    finally:
        srv.stop()


def _post_from(url: str, path: str, body: dict, source: str):
    """POST from a chosen loopback source address (the server keys throttles on it)."""
    host, port = url.replace("http://", "").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source, 0))
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), json.loads(data or b"{}")


def test_password_guessing_is_slowed_per_account_and_address(tmp_path):
    srv = start(tmp_path)
    try:
        victim = register(srv.url)
        statuses = []
        retry_after = None
        for _ in range(40):
            st, headers, body = _post_from(srv.url, "/api/v1/auth/login",
                                           {"email": victim.email, "password": "wrong-password"},
                                           "127.0.0.7")
            statuses.append(st)
            if st == 429:
                assert body["error"]["code"] == "RATE_LIMITED", body
                retry_after = int(headers["Retry-After"])
        assert statuses[:5] == [401] * 5, statuses
        assert 429 in statuses, statuses  # the guesser is slowed down
        assert retry_after is not None and retry_after >= 1
        # The right password from the guesser's address is refused too while throttled...
        st, _, _ = _post_from(srv.url, "/api/v1/auth/login",
                              {"email": victim.email, "password": victim.password}, "127.0.0.7")
        assert st == 429
        # ...but the owner, from their own address, is never locked out by a stranger.
        st, _, body = _post_from(srv.url, "/api/v1/auth/login",
                                 {"email": victim.email, "password": victim.password},
                                 "127.0.0.8")
        assert st == 200, body
        assert body["access_token"]
    finally:
        srv.stop()


def test_registration_rate_limit_and_closed_registration(tmp_path):
    srv = start(tmp_path, "--registrations-per-hour", "3")
    try:
        codes = []
        for i in range(5):
            tag = uuid.uuid4().hex[:8]
            st, headers, body = _post_from(
                srv.url, "/api/v1/auth/register",
                {"email": f"r{tag}@example.com", "username": f"r_{tag}",
                 "password": "correct-horse-battery"}, "127.0.0.9")
            codes.append(st)
            if st == 429:
                assert body["error"]["code"] == "RATE_LIMITED"
                assert int(headers["Retry-After"]) >= 1
        assert codes == [200, 200, 200, 429, 429], codes
        # Another address is not affected.
        st, _, _ = _post_from(srv.url, "/api/v1/auth/register",
                              {"email": "other@example.com", "username": "other_addr",
                               "password": "correct-horse-battery"}, "127.0.0.10")
        assert st == 200
    finally:
        srv.stop()
    data = tmp_path / "closed"
    data.mkdir()
    srv = Server(data, ["--registration", "closed"], exempt_loopback=False).start()
    try:
        r = requests.post(srv.url + "/api/v1/auth/register",
                          json={"email": "x@example.com", "username": "xx_x",
                                "password": "correct-horse-battery"}, timeout=10)
        body = assert_error(r, 403, "FORBIDDEN")
        assert "registration is closed" in body["error"]["message"]
        out = subprocess.run([str(BINARY), "admin", "create-user", "--data-dir", str(data),
                              "--email", "admin@example.com", "--username", "admin_user"],
                             input="correct-horse-battery\n", capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        r = requests.post(srv.url + "/api/v1/auth/login",
                          json={"email": "admin@example.com", "password": "correct-horse-battery"},
                          timeout=10)
        assert r.status_code == 200, r.text
    finally:
        srv.stop()


def test_tokens_revoked_by_logout_and_password_change(tmp_path):
    srv = start(tmp_path, exempt=True)
    try:
        c = register(srv.url)
        me = lambda tok: requests.get(srv.url + "/api/v1/auth/me",
                                      headers={"Authorization": f"Bearer {tok}"}, timeout=10)
        old = c.token
        assert me(old).status_code == 200
        # Password change: the old token stops working at once, the new one works.
        r = c.post("/api/v1/auth/password",
                   json={"current_password": c.password, "new_password": "another-horse-staple"})
        assert r.status_code == 200, r.text
        new = r.json()["access_token"]
        body = assert_error(me(old), 401, "UNAUTHORIZED")
        assert "revoked" in body["error"]["message"]
        assert me(new).status_code == 200
        # A wrong current password is refused.
        r = requests.post(srv.url + "/api/v1/auth/password",
                          headers={"Authorization": f"Bearer {new}"},
                          json={"current_password": "nope-nope-nope", "new_password": "x" * 12},
                          timeout=10)
        assert_error(r, 401, "UNAUTHORIZED")
        # Logout revokes every session token; API keys keep working.
        key = requests.post(srv.url + "/api/v1/api-keys", json={"name": "k", "scopes": ["manage"]},
                            headers={"Authorization": f"Bearer {new}"}, timeout=10).json()["key"]
        r = requests.post(srv.url + "/api/v1/auth/logout",
                          headers={"Authorization": f"Bearer {new}"}, timeout=10)
        assert r.status_code == 200, r.text
        assert_error(me(new), 401, "UNAUTHORIZED")
        assert me(key).status_code == 200
        # Revocation survives a restart (it is stored, not only cached).
        srv.stop()
        srv.start()  # (a new port: me() reads srv.url)
        assert_error(me(new), 401, "UNAUTHORIZED")
        r = requests.post(srv.url + "/api/v1/auth/login",
                          json={"email": c.email, "password": "another-horse-staple"}, timeout=10)
        assert me(r.json()["access_token"]).status_code == 200
    finally:
        srv.stop()


def test_predict_key_cannot_manage(server):
    c = register(server.url)
    key = c.post("/api/v1/api-keys", json={"name": "p", "scopes": ["predict"]}).json()["key"]
    h = {"Authorization": f"Bearer {key}"}
    for method, path in [("GET", "/api/v1/auth/me"), ("GET", "/api/v1/deployments"),
                         ("GET", "/api/v1/api-keys")]:
        r = requests.request(method, server.url + path, headers=h, timeout=10)
        assert_error(r, 403, "FORBIDDEN")
    # An unknown key is refused (and remembered, so repeats cost no database read).
    bad = {"Authorization": "Bearer sk-" + "A" * 40}
    for _ in range(3):
        assert_error(requests.get(server.url + "/api/v1/auth/me", headers=bad, timeout=10),
                     401, "UNAUTHORIZED")


def test_prediction_timeout_and_memory_bound(tmp_path):
    srv = start(tmp_path, exempt=True)
    try:
        other = bystander(srv)
        c = register(srv.url)
        d = c.deploy(slow_on_request(), name="slow")
        assert d["status"] == "active", d
        r = c.patch(f"/api/v1/deployments/{d['id']}", json={"timeout_seconds": 1})
        assert r.status_code == 200, r.text
        assert c.predict(d["id"], [[3.0]]).status_code == 200  # a short request is fine
        t0 = time.time()
        r = c.predict(d["id"], [[1e12]])
        elapsed = time.time() - t0
        body = assert_error(r, 504, "TIMEOUT")
        assert "timeout of 1 s" in body["error"]["message"]
        assert elapsed < 10, elapsed
        healthy_and_serving(srv, other)

        d = c.deploy(big_on_request(), name="big")
        assert d["status"] == "active", d
        assert c.patch(f"/api/v1/deployments/{d['id']}", json={"memory_mb": 64}).status_code == 200
        r = c.predict(d["id"], [[10.0]])  # 160 KB: fine
        assert r.status_code == 200, r.text
        assert np.ravel(r.json()["predictions"])[0] == pytest.approx(10.0 + 10 * 4096)
        r = c.predict(d["id"], [[10000.0]])  # 164 MB > 64 MiB, seen only while it runs
        body = assert_error(r, 400, "INVALID_INPUT")
        assert "memory_mb" in body["error"]["message"], body
        assert "the run needs more than 64 MiB" in body["error"]["message"], body
        healthy_and_serving(srv, other)

        # Sizes the inferred shapes tell are checked against the plan before the run: a
        # [N, 4096] float intermediate for N = 5000 rows is 78 MiB > 64 MiB.
        d = c.deploy(wide_per_row(), name="wide-rows")
        assert d["status"] == "active", d
        assert c.patch(f"/api/v1/deployments/{d['id']}", json={"memory_mb": 64}).status_code == 200
        rows = np.arange(1000, dtype=np.float32).reshape(-1, 1) / 8
        r = c.predict(d["id"], rows.tolist())  # 16 MB: fine
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(np.ravel(r.json()["predictions"]),
                                   np.ravel(rows).astype(np.float64) * (4096 * 4095 / 2), rtol=1e-5)
        r = c.predict(d["id"], [[1.0]] * 5000)
        body = assert_error(r, 400, "INVALID_INPUT")
        msg = body["error"]["message"]
        assert "memory plan needs 78 MiB" in msg and "over the 64 MiB allowed" in msg, body
        assert "memory_mb" in msg, body
        healthy_and_serving(srv, other)
    finally:
        srv.stop()


def test_rows_times_features_checked_before_allocating(tmp_path):
    """1,000 named features x 20,000 empty rows would be 160 MB of NaNs from a 60 KB body."""
    import pandas as pd
    from sklearn.linear_model import LinearRegression
    import pickle
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(50, 1000)), columns=[f"f{i}" for i in range(1000)])
    model = LinearRegression().fit(X, rng.normal(size=50))
    srv = start(tmp_path, exempt=True)
    try:
        c = register(srv.url)
        d = c.deploy(pickle.dumps(model), name="wide", filename="wide.pkl")
        assert d["status"] == "active", d
        r = c.post(f"/api/v1/predict/{d['id']}", json={"data": [{}] * 20000})
        body = assert_error(r, 400, "INVALID_INPUT")
        assert "values per request (rows x features)" in body["error"]["message"], body
        assert requests.get(srv.url + "/health", timeout=5).status_code == 200
    finally:
        srv.stop()


def test_stored_versions_are_converted_once_at_start(tmp_path):
    """A data dir from before isolation (versions without their ONNX) is converted through
    the importer child at start; predictions keep working and give the same answers."""
    import pickle
    from sklearn.linear_model import LogisticRegression
    from sklearn.datasets import load_iris
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    srv = start(tmp_path, exempt=True)
    c = register(srv.url)
    d = c.deploy(pickle.dumps(model), name="iris", filename="iris.pkl")
    assert d["status"] == "active", d
    assert srv.stop() == 0
    db = sqlite3.connect(tmp_path / "data" / "serveml.db")
    db.execute("UPDATE deployment_versions SET onnx_sha256 = '', onnx_size_bytes = 0")
    db.commit()
    db.close()
    srv.start()
    c.url = srv.url
    try:
        r = c.predict(d["id"], X[:5].tolist())
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == model.predict(X[:5]).tolist()
        deadline = time.time() + 30
        while time.time() < deadline:
            db = sqlite3.connect(tmp_path / "data" / "serveml.db")
            (sha,) = db.execute("SELECT onnx_sha256 FROM deployment_versions").fetchone()
            db.close()
            if sha:
                break
            time.sleep(0.1)
        assert len(sha) == 64
        onnx_bytes = c.get(f"/api/v1/deployments/{d['id']}/onnx").content
        import hashlib
        assert hashlib.sha256(onnx_bytes).hexdigest() == sha
    finally:
        srv.stop()


@pytest.mark.parametrize("pool", ["io", "blocking", "models", "hashing"])
@pytest.mark.parametrize("kind", ["exception", "bad_alloc"])
def test_no_exception_ends_the_process(tmp_path, pool, kind):
    """A throw (or bad_alloc) injected on an I/O thread or in a task of each pool answers
    500 SERVICE_ERROR with the request id logged; the server keeps serving."""
    srv = start(tmp_path, "--bench-routes", exempt=True)
    try:
        c = register(srv.url)
        for _ in range(3):
            r = requests.post(srv.url + f"/_test/throw?pool={pool}&kind={kind}", timeout=10)
            body = assert_error(r, 500, "SERVICE_ERROR")
            assert body["request_id"] in srv.logs()
        assert requests.get(srv.url + "/health", timeout=5).status_code == 200
        assert c.deploy(mlp(), name="after")["status"] == "active"
    finally:
        assert srv.stop() == 0


def test_delete_never_removes_a_blob_another_upload_uses(tmp_path):
    """User A deploys and deletes the same bytes in a loop while user B deploys them too:
    every deployment B keeps must still load (its blob and converted ONNX exist)."""
    srv = start(tmp_path, exempt=True)
    try:
        a, b = register(srv.url, "a"), register(srv.url, "b")
        model = mlp(seed=7)
        stop = threading.Event()

        def churn():
            while not stop.is_set():
                d = a.deploy(model, name="churn", wait=False)
                a.delete(f"/api/v1/deployments/{d['id']}")

        t = threading.Thread(target=churn)
        t.start()
        kept = []
        try:
            for i in range(15):
                kept.append(b.deploy(model, name=f"keep{i}")["id"])
        finally:
            stop.set()
            t.join()
        srv.stop()
        srv.start()  # cold: every model is loaded from its stored ONNX again
        b.url = srv.url
        for dep in kept:
            assert b.get(f"/api/v1/deployments/{dep}").json()["status"] == "active"
            r = b.predict(dep, [1.0, 2.0, 3.0, 4.0])
            assert r.status_code == 200, r.text
            assert b.get(f"/api/v1/deployments/{dep}/onnx").status_code == 200
    finally:
        srv.stop()


def test_importer_child_is_confined(tmp_path):
    """What code running inside the importer child could do: read the server's files, write
    anywhere, open a socket, signal the server, run a program. Each is refused."""
    secret = tmp_path / "data" / "jwt.key"
    secret.parent.mkdir()
    secret.write_bytes(os.urandom(32))
    out = subprocess.run([str(BINARY), "validate", "--probe-confinement", str(secret),
                          "--memory-mb", "2048", "--cpu-seconds", "10"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(": ", 1) for line in out.stdout.strip().splitlines())
    applied = lines["applied"].split()
    assert {"rlimit-cpu", "rlimit-nofile", "no-new-privs", "seccomp"} <= set(applied), applied
    if not SANITIZED:
        assert "rlimit-as" in applied
    assert lines["socket"] == "denied"
    assert lines["kill"] == "denied"
    assert lines["exec"] == "denied"
    if "landlock" in applied:  # Linux 5.13+ with Landlock enabled
        assert lines["open"] == "denied"
        assert lines["create"] == "denied"
    assert not os.path.exists("/tmp/serveml-confinement-probe") or "landlock" not in applied


def burst(srv, path: str, body: dict, headers: dict, n: int, pad: int = 0) -> list[bytes]:
    """Sends `n` POSTs on `n` connections before reading any answer; returns the answers.
    `pad` bytes of JSON whitespace make the body larger."""
    data = json.dumps(body).encode() + b" " * pad
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    req = (f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{head}"
           f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data
    socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=60) for _ in range(n)]
    for s in socks:
        s.sendall(req)
    answers = []
    for s in socks:
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        s.close()
        answers.append(out)
    return answers


def test_full_pool_queues_answer_503_with_retry_after(tmp_path):
    """The hashing and model pools have bounded queues: a burst beyond them is answered 503
    with Retry-After at once, never queued without limit, and the server recovers."""
    srv = start(tmp_path, "--hash-threads", "1", "--hash-queue", "1",
                "--model-threads", "1", "--model-queue", "1", exempt=True)
    try:
        c = register(srv.url)

        def login(_):
            return requests.post(srv.url + "/api/v1/auth/login",
                                 json={"email": c.email, "password": c.password}, timeout=60)

        # 24 logins sent before any answer is read: one hashes, one waits, the rest are
        # refused at once.
        answers = burst(srv, "/api/v1/auth/login", {"email": c.email, "password": c.password},
                        {}, 24)
        busy = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        assert busy, [a[:12] for a in answers]
        assert all(b'"code":"SERVICE_ERROR"' in a and b"Retry-After: 1" in a for a in busy)
        assert all(a.startswith((b"HTTP/1.1 200", b"HTTP/1.1 503")) for a in answers)

        d = c.deploy(slow_on_request(), name="slow")
        assert d["status"] == "active", d
        # Bodies over 64 KiB never run on an I/O thread: these go to the model pool.
        answers = burst(srv, f"/api/v1/predict/{d['id']}", {"data": [[2e5]]},
                        {"Authorization": f"Bearer {c.token}"}, 12, pad=70000)
        busy = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        assert busy, [a[:12] for a in answers]
        assert all(b"Retry-After: 1" in a for a in busy)
        assert login(0).status_code == 200
        assert c.predict(d["id"], [[1.0]]).status_code == 200
    finally:
        srv.stop()


def test_converted_model_size_limit(tmp_path):
    """The importer child writes its ONNX under RLIMIT_FSIZE (--validate-max-onnx-mb): a
    linear model with 400,000 coefficients (1.6 MB of float32 in ONNX) against 1 MiB fails
    with that limit named, and nothing else is disturbed."""
    import pickle
    from sklearn.linear_model import LinearRegression
    rng = np.random.default_rng(0)
    wide = LinearRegression().fit(rng.normal(size=(3, 400_000)), rng.normal(size=3))
    srv = start(tmp_path, "--validate-max-onnx-mb", "1", exempt=True)
    try:
        other = bystander(srv)
        c = register(srv.url)
        d = c.deploy(pickle.dumps(wide), name="wide", filename="wide.pkl")
        assert d["status"] == "failed", d
        assert "the converted model is larger than 1 MiB (--validate-max-onnx-mb)" in \
            d["error_message"], d
        healthy_and_serving(srv, other)
    finally:
        srv.stop()


def test_validation_queue_is_bounded(tmp_path):
    """One importer child at a time and one upload waiting (--validate-threads 1
    --validate-queue 1): a third upload is refused 503 with Retry-After before anything is
    stored, and uploads are accepted again once the queue drains."""
    srv = start(tmp_path, "--validate-threads", "1", "--validate-queue", "1",
                "--validate-timeout-seconds", "3", exempt=True)
    try:
        c = register(srv.url)
        first = c.deploy(busy_probe(), name="busy-1", wait=False)
        time.sleep(0.5)  # the only validator has taken it: the queue is empty again
        second = c.deploy(busy_probe(), name="busy-2", wait=False)
        files = {"model_file": ("model.onnx", mlp(), "application/octet-stream")}
        r = c.post("/api/v1/deploy", files=files, data={"name": "refused"})
        body = assert_error(r, 503, "SERVICE_ERROR")
        assert "--validate-queue" in body["error"]["message"], body
        assert r.headers.get("Retry-After") == "1"
        r = c.post(f"/api/v1/deployments/{first['id']}/versions", files=files)
        assert_error(r, 503, "SERVICE_ERROR")
        names = sorted(d["name"] for d in c.get("/api/v1/deployments").json()["items"])
        assert names == ["busy-1", "busy-2"], names  # the refused upload left nothing
        for d in (first, second):
            got = c.wait(d["id"], timeout=60)
            assert got["status"] == "failed" and "longer than 3 s" in got["error_message"], got
        assert c.deploy(mlp(), name="after")["status"] == "active"
    finally:
        srv.stop()


def test_full_blocking_pool_answers_503_with_retry_after(tmp_path):
    """Management routes run on the blocking pool (--blocking-threads 1 --blocking-queue
    1 here): with its worker busy and its queue full, they answer 503 with Retry-After at
    once, /health (answered on the I/O thread) stays up, and they recover."""
    srv = start(tmp_path, "--blocking-threads", "1", "--blocking-queue", "1", "--bench-routes",
                exempt=True)
    try:
        c = register(srv.url)
        for _ in range(2):  # one running, one queued
            r = requests.post(srv.url + "/_test/occupy?pool=blocking&ms=3000", timeout=10)
            assert r.status_code == 200
        t0 = time.time()
        r = c.get("/api/v1/deployments")
        body = assert_error(r, 503, "SERVICE_ERROR")
        assert "busy" in body["error"]["message"], body
        assert r.headers.get("Retry-After") == "1"
        assert time.time() - t0 < 2, "refused at once, not queued"
        assert requests.get(srv.url + "/health", timeout=5).status_code == 200
        deadline = time.time() + 30
        while (r := c.get("/api/v1/deployments")).status_code == 503 and time.time() < deadline:
            time.sleep(0.2)
        assert r.status_code == 200, r.text
    finally:
        srv.stop()


def test_ipv6_clients_are_limited_per_slash_64(tmp_path):
    """Behind a trusted proxy, IPv6 clients are counted per /64: rotating through addresses
    of one /64 does not escape the registration limit; another /64 is not affected."""
    srv = start(tmp_path, "--registrations-per-hour", "2", "--trusted-proxies", "127.0.0.1")

    def register_from(client: str) -> requests.Response:
        tag = uuid.uuid4().hex[:8]
        return requests.post(srv.url + "/api/v1/auth/register",
                             json={"email": f"v6{tag}@example.com", "username": f"v6_{tag}",
                                   "password": "correct-horse-battery"},
                             headers={"X-Forwarded-For": client}, timeout=10)

    try:
        assert register_from("2001:db8:1:2::a").status_code == 200
        assert register_from("2001:db8:1:2:ffff::b").status_code == 200
        r = register_from("2001:db8:1:2:1234:5678:9abc:def0")
        assert_error(r, 429, "RATE_LIMITED")
        assert int(r.headers["Retry-After"]) >= 1
        assert register_from("2001:db8:1:3::a").status_code == 200  # another /64
        assert register_from("198.51.100.7").status_code == 200     # IPv4: the address
    finally:
        srv.stop()
