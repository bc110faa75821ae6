"""Deploy -> active latency of a ~1 MB scikit-learn pickle, and what the isolated importer
costs in it.

Starts `serveml serve` on a free loopback port, trains a RandomForestClassifier whose pickle
is about 1 MB, then deploys it N times and reports, per deploy:
  - client: POST /api/v1/deploy sent -> GET shows `active` (polled every 2 ms);
  - server: the deployment's updated_at - created_at (upload stored -> validation recorded);
and, measured in the same run, what isolation adds: the wall time of `serveml validate` on
a tiny ONNX (spawn of the binary, confinement, parse, probe, exit).
Target: p50 deploy -> active < 100 ms for the 1 MB pickle.
Usage: .venv/bin/python bench/deploy_latency.py [--n 20] [--binary build/serveml]
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import models  # noqa: E402
from conftest import Server, register  # noqa: E402


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def iso(s: str) -> float:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def spawn_cost(binary: str, onnx: bytes, n: int) -> list[float]:
    """Wall ms of `serveml validate` on a tiny ONNX: spawn, confine, parse, probe, exit."""
    out = []
    with tempfile.NamedTemporaryFile(suffix=".onnx") as f:
        f.write(onnx)
        f.flush()
        sha = hashlib.sha256(onnx).hexdigest()
        for _ in range(n):
            with open(f.name, "rb") as stdin, open(os.devnull, "wb") as fd3:
                t0 = time.perf_counter()
                subprocess.run([binary, "validate", "--framework", "onnx", "--sha256", sha,
                                "--memory-mb", "2048", "--cpu-seconds", "60", "--max-onnx-mb", "64"],
                               stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               pass_fds=(), check=True)
                out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--binary", default=os.environ.get("SERVEML_BINARY", str(REPO / "build" / "serveml")))
    args = ap.parse_args()
    os.environ["SERVEML_BINARY"] = args.binary

    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    model = RandomForestClassifier(n_estimators=150, max_depth=10, random_state=0).fit(X, y)
    blob = pickle.dumps(model)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; pickle {len(blob) / 1e6:.2f} MB")

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        srv = Server(data, ["--log-level", "warn"]).start()
        try:
            c = register(srv.url)
            client_ms, server_ms = [], []
            for i in range(args.n):
                t0 = time.perf_counter()
                r = c.post("/api/v1/deploy", files={"model_file": ("rf.pkl", blob, "x")},
                           data={"name": f"rf{i}"})
                assert r.status_code == 200, r.text
                dep = r.json()["id"]
                while True:
                    d = c.get(f"/api/v1/deployments/{dep}").json()
                    if d["status"] != "validating":
                        break
                    time.sleep(0.002)
                client_ms.append((time.perf_counter() - t0) * 1000)
                assert d["status"] == "active", d
                server_ms.append((iso(d["updated_at"]) - iso(d["created_at"])) * 1000)
        finally:
            srv.stop()
    spawn = spawn_cost(args.binary, models.mlp().SerializeToString(), args.n)

    def row(name, xs):
        xs = sorted(xs)
        print(f"{name:52s} p50 {statistics.median(xs):7.1f} ms   p90 {xs[int(len(xs) * 0.9) - 1]:7.1f} ms")

    row("deploy -> active, client (POST .. GET active)", client_ms)
    row("deploy -> active, server (stored .. validated)", server_ms)
    row("isolation overhead: `serveml validate` tiny ONNX", spawn)
    ok = statistics.median(client_ms) < 100
    print(f"target p50 deploy -> active < 100 ms: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
