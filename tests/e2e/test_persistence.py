"""Restart persistence and graceful shutdown of the real binary."""
import threading

import numpy as np
import onnxruntime as ort
import requests

import models
from conftest import register


def test_restart_keeps_users_models_and_keys(fresh_server):
    srv = fresh_server.start()
    c = register(srv.url)
    m = models.mlp(seed=5)
    d = c.deploy(models.serialize(m), name="persist")
    key = c.post("/api/v1/api-keys", json={"name": "k", "scopes": ["predict"]}).json()["key"]
    x = np.array([[0.1, 0.2, 0.3, 0.4]], dtype=np.float32)
    expected = ort.InferenceSession(models.serialize(m), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert srv.stop() == 0

    srv.start()
    # The old token still works (the signing key persisted), and so does logging in again.
    assert requests.get(srv.url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {c.token}"}, timeout=5).status_code == 200
    r = requests.post(srv.url + "/api/v1/auth/login", json={"email": c.email, "password": c.password}, timeout=30)
    assert r.status_code == 200
    c.url = srv.url
    got = c.get(f"/api/v1/deployments/{d['id']}").json()
    assert got["status"] == "active"
    body = requests.post(f"{srv.url}/api/v1/predict/{d['id']}", json={"data": x.tolist()},
                         headers={"Authorization": f"Bearer {key}"}, timeout=10).json()
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-5)
    assert srv.stop() == 0


def test_signing_key_is_private(fresh_server):
    srv = fresh_server.start()
    key_file = srv.data_dir / "jwt.key"
    assert key_file.exists()
    assert key_file.stat().st_mode & 0o077 == 0
    assert srv.stop() == 0


def test_secrets_never_logged(fresh_server):
    srv = fresh_server.start()
    c = register(srv.url)
    key = c.post("/api/v1/api-keys", json={"name": "k"}).json()["key"]
    requests.get(srv.url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    assert srv.stop() == 0
    logs = srv.logs()
    assert c.password not in logs
    assert c.token not in logs
    assert key not in logs
    assert '"msg":"request"' in logs  # access log lines are JSON


def test_sigterm_drains_in_flight_uploads(fresh_server):
    """A request in flight when SIGTERM arrives still gets its full answer; then exit 0."""
    srv = fresh_server.start()
    c = register(srv.url)
    payload = models.serialize(models.mlp(n_in=64, hidden=512, n_out=10))
    result = {}

    def slow_upload():
        def body():
            chunk = 16 * 1024
            head = (b"--B\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\ndrain\r\n"
                    b"--B\r\nContent-Disposition: form-data; name=\"model_file\"; filename=\"m.onnx\"\r\n\r\n")
            yield head
            for i in range(0, len(payload), chunk):
                yield payload[i:i + chunk]
                threading.Event().wait(0.05)
            yield b"\r\n--B--\r\n"
        try:
            r = requests.post(srv.url + "/api/v1/deploy", data=body(),
                              headers={"Authorization": f"Bearer {c.token}",
                                       "Content-Type": "multipart/form-data; boundary=B"}, timeout=60)
            result["status"] = r.status_code
        except requests.RequestException as e:  # pragma: no cover - reported below
            result["error"] = repr(e)

    t = threading.Thread(target=slow_upload)
    t.start()
    threading.Event().wait(0.15)
    rc = srv.stop()
    t.join()
    assert rc == 0
    assert result.get("status") == 200, result


def test_crash_during_deploy_never_leaves_active_without_artifact(fresh_server):
    """SIGKILL right after uploads: after a restart every deployment is active with a
    working model (its artifact was stored first) or failed with a reason, and the blob
    store holds no half-written file."""
    import signal as _signal
    srv = fresh_server.start()
    c = register(srv.url)
    ids = []
    for i in range(5):
        files = {"model_file": (f"m{i}.onnx", models.serialize(models.mlp(seed=i)), "application/octet-stream")}
        r = c.post("/api/v1/deploy", files=files, data={"name": f"crash-{i}"})
        assert r.status_code == 200
        ids.append(r.json()["id"])
    srv.proc.send_signal(_signal.SIGKILL)
    srv.proc.wait()
    srv.proc = None
    srv.log.close()

    tmp = srv.data_dir / "blobs" / "tmp"
    srv.start()
    c.url = srv.url
    for dep in ids:
        d = c.wait(dep)
        assert d["status"] in ("active", "failed"), d
        if d["status"] == "active":
            assert c.predict(dep, [1, 2, 3, 4]).status_code == 200
        else:
            assert d["error_message"]
    assert not any(tmp.iterdir()) if tmp.exists() else True
    for blob in (srv.data_dir / "blobs").glob("??/*"):
        import hashlib
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    assert srv.stop() == 0
