"""ServeML against the original stack (FastAPI + uvicorn + scikit-learn, bench/original/).

Trains the iris RandomForestClassifier(n_estimators=100) with scikit-learn and pickles it.
Starts `serveml serve` on a free loopback port with a temporary data dir, registers, deploys
the pickle; starts the original app (uvicorn, 1 worker unless --workers says otherwise) on
another free loopback port with the same pickle. Checks that both answer the same
predictions as scikit-learn, then drives each with the same load generator (wrk, 64
connections, 2 threads, one row per request) for --duration seconds and prints requests/s,
p50 and p99 side by side, the throughput ratio, and whether the targets are met
(ServeML >= 50x the original's requests/s, ServeML p99 < 5 ms).

Usage: bench/compare_original.sh [--duration 10] [--connections 64] [--binary build/serveml]
(the binary also comes from SERVEML_BINARY). Needs .venv-bench/ (bench/original/setup-venv.sh).
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "bench"))

from conftest import Server, free_port, register  # noqa: E402
from http_predict import LUA, parse_latency  # noqa: E402

TARGET_RATIO = 50.0
TARGET_P99_MS = 5.0


def run_wrk(url: str, body: str, token: str, duration: int, conns: int, threads: int) -> dict:
    """wrk as in http_predict.py, with a 30 s request timeout so the original's slowest
    answers count in its latency figures instead of being dropped as timeouts."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA)
        script = f.name
    env = {**os.environ, "BENCH_BODY": body, "BENCH_TOKEN": token}
    try:
        out = subprocess.run(["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s",
                              "--timeout", "30s", "--latency", "-s", script, url],
                             capture_output=True, text=True, env=env, check=True).stdout
    finally:
        os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50_ms": parse_latency(out, "50"), "p99_ms": parse_latency(out, "99"),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else ""}


class Original:
    """The original app under uvicorn."""

    def __init__(self, model_dir: Path, workers: int, log_path: Path):
        self.model_dir, self.workers, self.log_path = model_dir, workers, log_path
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "Original":
        python = REPO / ".venv-bench" / "bin" / "python"
        if not python.exists():
            raise SystemExit(".venv-bench/ is missing: run bench/original/setup-venv.sh")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(python), "-m", "uvicorn", "app:app", "--app-dir", str(REPO / "bench" / "original"),
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
             "--log-level", "warning", "--no-access-log"],
            stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "BENCH_MODEL_DIR": str(self.model_dir)})
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("uvicorn exited: " + self.log_path.read_text(errors="replace"))
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("uvicorn did not become healthy: " + self.log_path.read_text(errors="replace"))

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.log.close()


def check_same_predictions(srv_url: str, token: str, dep_id: str, orig_url: str, model, X) -> None:
    want = model.predict(X).tolist()
    h = {"Authorization": f"Bearer {token}"}
    got_s = requests.post(f"{srv_url}/api/v1/predict/{dep_id}", json={"data": X.tolist()},
                          headers=h, timeout=30)
    got_o = requests.post(f"{orig_url}/api/v1/predict/iris", json={"features": X.tolist()}, timeout=30)
    assert got_s.status_code == 200, got_s.text
    assert got_o.status_code == 200, got_o.text
    assert got_s.json()["predictions"] == want, "ServeML disagrees with scikit-learn"
    assert got_o.json()["predictions"] == want, "the original stack disagrees with scikit-learn"
    # The exact single-row request the load generator sends, on both.
    one_s = requests.post(f"{srv_url}/api/v1/predict/{dep_id}", json={"data": X[0].tolist()},
                          headers=h, timeout=30).json()
    one_o = requests.post(f"{orig_url}/api/v1/predict/iris", json={"features": X[0].tolist()},
                          timeout=30).json()
    assert one_s["prediction"] == want[0] and one_o["predictions"] == [want[0]], (one_s, one_o)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn workers of the original")
    ap.add_argument("--binary", default=os.environ.get("SERVEML_BINARY", str(REPO / "build" / "serveml")))
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()

    import conftest
    conftest.BINARY = Path(args.binary)
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    rng = np.random.default_rng(1)
    Xcheck = np.vstack([X, X + rng.normal(scale=0.05 * X.std(axis=0), size=X.shape)])
    body_serveml = json.dumps({"data": X[0].tolist()})
    body_original = json.dumps({"features": X[0].tolist()})

    load_before = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        (tmp / "models").mkdir()
        pkl = tmp / "models" / "iris.pkl"
        pkl.write_bytes(pickle.dumps(model, protocol=5))
        srv = Server(tmp / "data", ["--log-level", "warn"]).start()
        orig = None
        try:
            c = register(srv.url, "bench")
            d = c.deploy(pkl.read_bytes(), name="iris-rf", filename="iris.pkl")
            assert d["status"] == "active", d
            orig = Original(tmp / "models", args.workers, tmp / "uvicorn.log").start()
            check_same_predictions(srv.url, c.token, d["id"], orig.url, model, Xcheck)
            print(f"predictions agree on {len(Xcheck)} rows (ServeML, original, scikit-learn)",
                  flush=True)
            cases = [("serveml", f"{srv.url}/api/v1/predict/{d['id']}", body_serveml, c.token),
                     ("original", f"{orig.url}/api/v1/predict/iris", body_original, "none")]
            for name, url, body, token in cases:
                run_wrk(url, body, token, 2, args.connections, args.threads)  # warm-up
                results[name] = run_wrk(url, body, token, args.duration, args.connections,
                                        args.threads)
        finally:
            if orig is not None:
                orig.stop()
            srv.stop()
    load_after = os.getloadavg()

    s, o = results["serveml"], results["original"]
    ratio = s["rps"] / o["rps"] if o["rps"] else float("inf")
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print(f"\niris RandomForestClassifier(n_estimators=100), one row per request, "
          f"{args.connections} connections, {args.threads} wrk threads, {args.duration}s per side, "
          f"{os.cpu_count()} cores shared by server and wrk")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print(f"{'':44s} {'req/s':>10s} {'p50 ms':>9s} {'p99 ms':>9s} {'non-2xx':>8s}")
    print(f"{'ServeML (' + Path(args.binary).name + ', pickle imported)':44s} {s['rps']:10.0f} "
          f"{s['p50_ms']:9.3f} {s['p99_ms']:9.3f} {s['non_2xx']:8d}")
    print(f"{'original (FastAPI+uvicorn, ' + str(args.workers) + ' worker)':44s} {o['rps']:10.0f} "
          f"{o['p50_ms']:9.3f} {o['p99_ms']:9.3f} {o['non_2xx']:8d}")
    print(f"\nthroughput ServeML / original: {ratio:.1f}x   (target >= {TARGET_RATIO:.0f}x: {met(ratio >= TARGET_RATIO)})")
    print(f"ServeML p99: {s['p99_ms']:.3f} ms   (target < {TARGET_P99_MS:.0f} ms: {met(s['p99_ms'] < TARGET_P99_MS)})")
    if s["socket_errors"] or o["socket_errors"]:
        print(f"socket errors: ServeML [{s['socket_errors']}] original [{o['socket_errors']}]")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "serveml": s, "original": o, "ratio": ratio, "original_workers": args.workers,
            "connections": args.connections, "duration_s": args.duration,
            "loadavg_before": load_before, "loadavg_after": load_after}, indent=2))
    return 0 if s["non_2xx"] == 0 and o["non_2xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
