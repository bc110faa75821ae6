"""Two builds side by side in one run: deploy -> active and prediction throughput.

Meant for a change that touches the upload or prediction path (e.g. isolation of importers):
`--before` is a build of an earlier commit, `--after` (default build/serveml) the current one.
Both servers run at once on free loopback ports (each idle while the other is measured), and
the measurements alternate between them, so drift of a shared 2-core machine hits both alike.

  - deploy -> active of a ~1 MB scikit-learn RandomForest pickle: POST /api/v1/deploy sent ->
    GET shows `active` (polled every 2 ms), `--n` deploys per build, alternating;
  - predictions: the same wrk line (`-t2 -c64 -d<duration>s`, one JSON row per request,
    bearer token) against each build, for the RandomForest and a small MLP ONNX model,
    `--rounds` alternating rounds per model; the median requests/s of each build and the
    ratio after / before.

Usage:
  git worktree add /tmp/base <commit> && cmake -S /tmp/base -B /tmp/base/build -G Ninja \
      -DCMAKE_BUILD_TYPE=Release && cmake --build /tmp/base/build -j2 --target serveml
  .venv/bin/python bench/before_after.py --before /tmp/base/build/serveml [--after build/serveml]
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "bench"))

import conftest  # noqa: E402
import models  # noqa: E402
from deploy_latency import cpu_model  # noqa: E402
from http_predict import run_wrk  # noqa: E402


def start(binary: str, data: Path) -> conftest.Server:
    conftest.BINARY = Path(binary)
    data.mkdir(parents=True)
    # Flags both builds know; nothing that exempts or changes the limits under test.
    return conftest.Server(data, ["--log-level", "warn"], exempt_loopback=False).start()


def deploy_ms(c: conftest.Client, blob: bytes, name: str) -> float:
    t0 = time.perf_counter()
    r = c.post("/api/v1/deploy", files={"model_file": ("rf.pkl", blob, "x")}, data={"name": name})
    assert r.status_code == 200, r.text
    dep = r.json()["id"]
    while (d := c.get(f"/api/v1/deployments/{dep}").json())["status"] == "validating":
        time.sleep(0.002)
    assert d["status"] == "active", d
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="serveml binary of the earlier commit")
    ap.add_argument("--after", default=str(REPO / "build" / "serveml"))
    ap.add_argument("--n", type=int, default=20, help="deploys per build")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating wrk rounds per model")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()

    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    rf = RandomForestClassifier(n_estimators=150, max_depth=10, random_state=0).fit(X, y)
    blob = pickle.dumps(rf)
    row = json.dumps({"data": [X[0].tolist()]})
    mlp_row = json.dumps({"data": [[5.1, 3.5, 1.4, 0.2]]})
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; RandomForest pickle "
          f"{len(blob) / 1e6:.2f} MB")
    print(f"before: {args.before}\nafter:  {args.after}")

    builds = {"before": args.before, "after": args.after}
    results: dict = {k: {"deploy_ms": [], "rps": {"rf": [], "mlp": []}} for k in builds}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {k: start(b, Path(tmp) / k) for k, b in builds.items()}
        try:
            clients = {k: conftest.register(s.url) for k, s in servers.items()}
            for i in range(args.n):
                for k in builds:
                    results[k]["deploy_ms"].append(deploy_ms(clients[k], blob, f"rf{i}"))
            urls = {}
            for k, c in clients.items():
                rf_dep = c.deploy(blob, name="rf-serve", filename="rf.pkl")
                mlp_dep = c.deploy(models.mlp().SerializeToString(), name="mlp-serve")
                assert rf_dep["status"] == "active" and mlp_dep["status"] == "active"
                urls[k] = {"rf": f"{servers[k].url}/api/v1/predict/{rf_dep['id']}",
                           "mlp": f"{servers[k].url}/api/v1/predict/{mlp_dep['id']}"}
            for model, body in (("rf", row), ("mlp", mlp_row)):
                for k, c in clients.items():  # warm-up
                    run_wrk(urls[k][model], body, c.token, 2, 64, 2)
                for _ in range(args.rounds):
                    for k, c in clients.items():
                        r = run_wrk(urls[k][model], body, c.token, args.duration, 64, 2)
                        assert r["non_2xx"] == 0 and not r["socket_errors"], r
                        results[k]["rps"][model].append(r["rps"])
        finally:
            for s in servers.values():
                s.stop()

    def pct(xs, q):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(len(xs) * q))]

    print(f"\ndeploy -> active, ~1 MB RandomForest pickle, {args.n} deploys per build (ms)")
    print(f"{'build':8s} {'p50':>8s} {'p90':>8s}")
    for k in builds:
        xs = results[k]["deploy_ms"]
        print(f"{k:8s} {statistics.median(xs):8.1f} {pct(xs, 0.9):8.1f}")
    print(f"\npredictions, wrk -t2 -c64 -d{args.duration}s, one row per request, "
          f"median of {args.rounds} alternating rounds (requests/s)")
    print(f"{'model':6s} {'before':>10s} {'after':>10s} {'after/before':>13s}")
    for model in ("rf", "mlp"):
        b = statistics.median(results["before"]["rps"][model])
        a = statistics.median(results["after"]["rps"][model])
        print(f"{model:6s} {b:10.0f} {a:10.0f} {a / b:13.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    ok = statistics.median(results["after"]["deploy_ms"]) < 100
    print(f"\ntarget p50 deploy -> active < 100 ms (after): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
