"""HTTP serving benchmark: predictions vs a no-op endpoint of the same server.

Starts `build/serveml serve --bench-routes` on a free loopback port, deploys a small ONNX
model (the iris LogisticRegression converted by skl2onnx, and a 4-16-3 MLP), then drives
each endpoint with wrk (64 connections, 2 threads) and prints requests/s, p50 and p99 next
to the no-op endpoint, with the ratio. Usage: bench/run.sh [--duration 10] [--connections 64]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import models  # noqa: E402
from conftest import Server, register  # noqa: E402

LUA = """
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
"""


def parse_latency(text: str, label: str) -> float:
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def run_wrk(url: str, body: str, token: str, duration: int, conns: int, threads: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA)
        script = f.name
    env = {**os.environ, "BENCH_BODY": body, "BENCH_TOKEN": token}
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s",
                          "--latency", "-s", script, url], capture_output=True, text=True, env=env,
                         check=True).stdout
    os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50_ms": parse_latency(out, "50"), "p99_ms": parse_latency(out, "99"),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(0) if errors else ""}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--binary", default=str(REPO / "build" / "serveml"))
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()

    os.environ["SERVEML_BINARY"] = args.binary
    import conftest
    conftest.BINARY = Path(args.binary)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        srv = Server(data, ["--bench-routes", "--log-level", "warn"]).start()
        try:
            c = register(srv.url, "bench")
            onx, _, X = models.sklearn_logreg()
            logreg = c.deploy(models.serialize(onx), name="iris-logreg")
            mlp = c.deploy(models.serialize(models.mlp()), name="mlp")
            row = json.dumps({"data": X[0].tolist()})
            cases = [
                ("no-op endpoint (POST /_bench/noop)", srv.url + "/_bench/noop", row),
                ("predict iris LogisticRegression (onnx)", f"{srv.url}/api/v1/predict/{logreg['id']}", row),
                ("predict MLP 4-16-3 (onnx)", f"{srv.url}/api/v1/predict/{mlp['id']}", row),
            ]
            results = []
            for name, url, body in cases:
                run_wrk(url, body, c.token, 2, args.connections, args.threads)  # warm-up
                r = run_wrk(url, body, c.token, args.duration, args.connections, args.threads)
                r["name"] = name
                results.append(r)
        finally:
            srv.stop()

    base = results[0]["rps"]
    print(f"\nHTTP serving, {args.connections} connections, {args.threads} wrk threads, "
          f"{args.duration}s per case, {os.cpu_count()} cores (server and wrk share them)")
    print(f"{'case':44s} {'req/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s} {'vs no-op':>9s} {'non-2xx':>8s}")
    for r in results:
        print(f"{r['name']:44s} {r['rps']:10.0f} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} "
              f"{r['rps'] / base:9.2f} {r['non_2xx']:8d}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(r["non_2xx"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
