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
    ap.add_argument("--server-args", default="", help="extra serveml serve flags, one string")
    ap.add_argument("--binary", default=os.environ.get("SERVEML_BINARY", str(REPO / "build" / "serveml")))
    args = ap.parse_args()
    os.environ["SERVEML_BINARY"] = args.binary
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "data").mkdir()
        srv = Server(Path(tmp) / "data", ["--log-level", "warn", *args.server_args.split()]).start()
        try:
            c = register(srv.url)
            for i in range(5):
                c.deploy(models.mlp(seed=i).SerializeToString(), name=f"m{i}")
            quiet = timed_listing(c, min(3.0, args.seconds))
            # The login storm runs in wrk (one process, C), so the timing client below is not
            # slowed by the storm's own client threads.
            import json as _json
            import subprocess
            lua = Path(tmp) / "login.lua"
            lua.write_text('wrk.method = "POST"\nwrk.body = os.getenv("BENCH_BODY")\n'
                           'wrk.headers["Content-Type"] = "application/json"\n')
            env = {**os.environ,
                   "BENCH_BODY": _json.dumps({"email": c.email, "password": c.password})}
            storm = subprocess.Popen(
                ["wrk", "-t", "1", "-c", str(args.login_threads), "-d", f"{args.seconds + 2:.0f}s",
                 "-s", str(lua), srv.url + "/api/v1/auth/login"],
                env=env, stdout=subprocess.PIPE, text=True)
            time.sleep(1.0)
            loaded = timed_listing(c, args.seconds)
            out, _ = storm.communicate(timeout=120)
            import re
            rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
            non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
            counts = {"rps": float(rps.group(1)) if rps else 0.0,
                      "busy": int(non2xx.group(1)) if non2xx else 0}
        finally:
            srv.stop()
    print(f"GET /api/v1/deployments alone:        p50 {statistics.median(quiet):6.1f} ms  p95 {pct(quiet, 0.95):6.1f} ms")
    print(f"... during {args.login_threads} login clients: p50 {statistics.median(loaded):6.1f} ms  p95 {pct(loaded, 0.95):6.1f} ms")
    print(f"login storm: {counts['rps']:.1f} answers/s, {counts['busy']} non-2xx (503 when the hash queue is full)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
