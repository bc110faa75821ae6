"""Password hashing against the control plane: metadata reads while many clients log in.

Starts `serveml serve` (real Argon2id cost) on a free loopback port, registers one user with
a few deployments, then runs `--login-threads` clients that log in back to back (the
original's locustfile pattern at many users) while one client times
`GET /api/v1/deployments`. Prints p50/p95 of the listing alone and under the login storm,
the logins/s achieved and how many were refused with 503 (hash queue full). Hashing runs on
its own bounded pool, so the listing should barely move.
Usage: .venv/bin/python bench/control_plane.py [--seconds 10] [--login-threads 100]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import models  # noqa: E402
from conftest import Server, register  # noqa: E402


def timed_listing(c, seconds: float) -> list[float]:
    out = []
    end = time.time() + seconds
    while time.time() < end:
        t0 = time.perf_counter()
        r = c.get("/api/v1/deployments")
        assert r.status_code == 200, r.text
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.01)
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--login-threads", type=int, default=100)
    ap.add_argument("--binary", default=os.environ.get("SERVEML_BINARY", str(REPO / "build" / "serveml")))
    args = ap.parse_args()
    os.environ["SERVEML_BINARY"] = args.binary
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "data").mkdir()
        srv = Server(Path(tmp) / "data", ["--log-level", "warn"]).start()
        try:
            c = register(srv.url)
            for i in range(5):
                c.deploy(models.mlp(seed=i).SerializeToString(), name=f"m{i}")
            quiet = timed_listing(c, min(3.0, args.seconds))
            stop = threading.Event()
            counts = {"ok": 0, "busy": 0, "other": 0}
            lock = threading.Lock()

            def login_loop():
                s = requests.Session()
                while not stop.is_set():
                    try:
                        r = s.post(srv.url + "/api/v1/auth/login",
                                   json={"email": c.email, "password": c.password}, timeout=30)
                        key = "ok" if r.status_code == 200 else "busy" if r.status_code == 503 else "other"
                    except requests.RequestException:
                        key = "other"
                    with lock:
                        counts[key] += 1

            threads = [threading.Thread(target=login_loop) for _ in range(args.login_threads)]
            for t in threads:
                t.start()
            time.sleep(1.0)
            loaded = timed_listing(c, args.seconds)
            stop.set()
            for t in threads:
                t.join()
        finally:
            srv.stop()
    print(f"GET /api/v1/deployments alone:        p50 {statistics.median(quiet):6.1f} ms  p95 {pct(quiet, 0.95):6.1f} ms")
    print(f"... during {args.login_threads} login clients: p50 {statistics.median(loaded):6.1f} ms  p95 {pct(loaded, 0.95):6.1f} ms")
    total = args.seconds + 1.0
    print(f"logins: {counts['ok'] / total:.1f}/s ok, {counts['busy']} answered 503 (hash queue full), {counts['other']} other")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
