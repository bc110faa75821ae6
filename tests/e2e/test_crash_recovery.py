"""Randomized kill -9: rounds of concurrent deploys, version uploads, rollbacks and
predictions against one data dir, each ended by SIGKILL at a random moment. After every
restart, everything the server acknowledged must still be there and consistent: no
acknowledged upload comes back lost or "interrupted", an active deployment's current version
is active and predicts the right answers, and validations left half-done finish."""
from __future__ import annotations

import os
import random
import signal
import threading
import time

import numpy as np
import requests

from conftest import Server, register
from models import mlp as mlp_proto


def mlp(**kw) -> bytes:
    return mlp_proto(**kw).SerializeToString()

ROUNDS = int(os.environ.get("SERVEML_CRASH_ROUNDS", "4"))


def _expected(model_bytes: bytes, row):
    import onnxruntime as ort
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": np.array([row], dtype=np.float32)})[0][0]


def test_kill9_during_concurrent_writes_loses_nothing(tmp_path):
    (tmp_path / "data").mkdir()
    srv = Server(tmp_path / "data").start()
    c = register(srv.url)
    token = c.token
    models = {seed: mlp(seed=seed) for seed in range(6)}
    row = [0.5, -1.0, 2.0, 0.25]
    answers = {seed: _expected(m, row) for seed, m in models.items()}
    acked_deploys: dict[str, int] = {}      # deployment id -> seed of v1
    acked_versions: dict[tuple, int] = {}   # (id, version) -> seed
    lock = threading.Lock()
    rng = random.Random(1234)

    def worker(url: str, stop: threading.Event, seed0: int) -> None:
        r0 = random.Random(seed0)
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        while not stop.is_set():
            try:
                op = r0.random()
                with lock:
                    ids = list(acked_deploys)
                if op < 0.35 or not ids:
                    seed = r0.randrange(len(models))
                    r = s.post(url + "/api/v1/deploy", timeout=10,
                               files={"model_file": ("m.onnx", models[seed], "x")},
                               data={"name": f"m{seed}"})
                    if r.status_code == 200:
                        with lock:
                            acked_deploys[r.json()["id"]] = seed
                            acked_versions[(r.json()["id"], "v1")] = seed
                elif op < 0.55:
                    dep = r0.choice(ids)
                    seed = r0.randrange(len(models))
                    r = s.post(url + f"/api/v1/deployments/{dep}/versions", timeout=10,
                               files={"model_file": ("m.onnx", models[seed], "x")})
                    if r.status_code == 200:
                        with lock:
                            acked_versions[(dep, r.json()["version"])] = seed
                elif op < 0.65:
                    dep = r0.choice(ids)
                    s.post(url + f"/api/v1/deployments/{dep}/rollback", json={"version": "v1"},
                           timeout=10)
                else:
                    dep = r0.choice(ids)
                    s.post(url + f"/api/v1/predict/{dep}", json={"data": row}, timeout=10)
            except requests.RequestException:
                time.sleep(0.01)

    def check(url: str, final: bool) -> None:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        with lock:
            deploys = dict(acked_deploys)
            versions = dict(acked_versions)
        deadline = time.time() + 60
        for dep in deploys:
            while True:
                d = s.get(url + f"/api/v1/deployments/{dep}", timeout=10)
                assert d.status_code == 200, (dep, d.text)
                d = d.json()
                if d["status"] != "validating" or not final or time.time() > deadline:
                    break
                time.sleep(0.05)
            assert "interrupted" not in (d["error_message"] or ""), d
            vs = {v["version"]: v for v in
                  s.get(url + f"/api/v1/deployments/{dep}/versions", timeout=10).json()["items"]}
            for (vdep, vname), seed in versions.items():
                if vdep == dep:
                    assert vname in vs, (dep, vname, list(vs))
            if final:
                assert d["status"] == "active", d  # every upload here is a valid model
            if d["status"] == "active":
                cur = d["current_version"]
                assert vs[cur]["status"] == "active", (d, vs[cur])
                r = s.post(url + f"/api/v1/predict/{dep}", json={"data": row}, timeout=30)
                assert r.status_code == 200, r.text
                # The answer is the answer of the version that served it (a validation
                # finishing meanwhile may have made a newer version current).
                seed = versions.get((dep, r.json()["model_version"]))
                if seed is not None:
                    np.testing.assert_allclose(r.json()["prediction"], answers[seed], rtol=1e-5)

    try:
        for round_no in range(ROUNDS):
            stop = threading.Event()
            threads = [threading.Thread(target=worker, args=(srv.url, stop, rng.random()))
                       for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.8, 2.5))
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait(timeout=30)
            srv.proc = None
            srv.log.close()
            stop.set()
            for t in threads:
                t.join(timeout=30)
            srv.start()
            check(srv.url, final=False)
        check(srv.url, final=True)
        assert len(acked_deploys) >= ROUNDS, acked_deploys
    finally:
        if srv.proc is not None:
            srv.stop()
