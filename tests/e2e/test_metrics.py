"""Per-deployment metrics against the real binary: exact counts (failed requests included),
percentiles within one histogram bucket of the true latencies, the same numbers on the
deployment's metrics_summary and /auth/me, ownership, and persistence across a restart.

The true latency of each successful prediction is the response's `response_time_ms`: the
server records exactly that value (microsecond precision) into the histogram, so the
percentiles can be checked against the exact distribution the server saw."""
from __future__ import annotations

import math

import pytest
import requests

import models
from conftest import assert_error, register

# The histogram layout of src/platform/metrics.h: bucket 0 is [0, 1.024 us); each power of two
# from 2^10 ns to 2^36 ns is split into 4 equal sub-buckets; the last bucket is >= 2^36 ns.
MIN_EXP, MAX_EXP, SUB = 10, 36, 4
N_BUCKETS = 1 + (MAX_EXP - MIN_EXP) * SUB + 1


def bucket(ms: float) -> int:
    ns = int(round(ms * 1e6))
    if ns < (1 << MIN_EXP):
        return 0
    e = ns.bit_length() - 1
    if e >= MAX_EXP:
        return N_BUCKETS - 1
    sub = (ns >> (e - 2)) & 3
    return 1 + (e - MIN_EXP) * SUB + sub


def nearest_rank(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(1, math.ceil(q * len(s))) - 1]


def metrics(user, dep_id: str, **params) -> dict:
    r = user.get(f"/api/v1/metrics/{dep_id}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_counts_every_request_and_error_exactly(user):
    d = user.deploy(models.serialize(models.mlp()), name="counts")
    assert d["status"] == "active", d
    ok = bad_shape = bad_json = 0
    for i in range(40):
        r = user.predict(d["id"], [float(i), 1.0, 2.0, 3.0])
        assert r.status_code == 200, r.text
        ok += 1
    for _ in range(7):  # wrong feature count
        assert user.predict(d["id"], [1.0, 2.0]).status_code in (400, 422)
        bad_shape += 1
    for _ in range(3):  # not JSON at all
        r = user.post(f"/api/v1/predict/{d['id']}", data=b"{nope", headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        bad_json += 1
    # A batch counts once, with its rows.
    r = user.predict(d["id"], [[1, 2, 3, 4]] * 5)
    assert r.status_code == 200 and r.json()["batch_size"] == 5
    ok += 1
    # Requests that never reach the deployment are not its traffic.
    assert requests.post(f"{user.url}/api/v1/predict/{d['id']}", json={"data": [1, 2, 3, 4]}).status_code == 401
    other = register(user.url, "other")
    assert other.predict(d["id"], [1, 2, 3, 4]).status_code == 404

    m = metrics(user, d["id"], hours=1)
    total = ok + bad_shape + bad_json
    assert m["deployment_id"] == d["id"]
    assert m["metrics"]["request_count"] == total
    assert m["metrics"]["error_count"] == bad_shape + bad_json
    assert m["metrics"]["unique_users"] == 1
    assert m["metrics"]["total_rows"] == 40 + 5
    assert m["period"]["resolution"] == "1m"
    ts = m["time_series"]
    n = len(ts["timestamps"])
    assert n in (60, 61)
    for key in ("request_counts", "error_counts", "avg_latencies", "p95_latencies"):
        assert len(ts[key]) == n, key
    assert sum(ts["request_counts"]) == total
    assert sum(ts["error_counts"]) == bad_shape + bad_json
    assert m["cost_estimate"]["total_usd"] > 0
    assert m["cost_estimate"]["breakdown"]["request_count"] == total

    # The same data behind the deployment's summary and the user's total.
    summary = user.get(f"/api/v1/deployments/{d['id']}").json()["metrics_summary"]
    assert summary["request_count"] == total
    assert summary["error_count"] == bad_shape + bad_json
    assert user.get("/api/v1/auth/me").json()["total_predictions"] == total

    # A predict-only API key is another caller.
    key = user.post("/api/v1/api-keys", json={"name": "p", "scopes": ["predict"]}).json()["key"]
    r = requests.post(f"{user.url}/api/v1/predict/{d['id']}", json={"data": [1, 2, 3, 4]},
                      headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    m = metrics(user, d["id"], hours=1)
    assert m["metrics"]["request_count"] == total + 1
    assert m["metrics"]["unique_users"] == 2


def test_percentiles_within_one_bucket_of_the_true_latencies(user):
    # A model whose cost grows with the batch size spreads latencies over ~2 decades.
    d = user.deploy(models.serialize(models.mlp(n_in=64, hidden=256, n_out=8, seed=3)), name="lat")
    assert d["status"] == "active", d
    latencies = []
    sizes = [1] * 60 + [16] * 25 + [128] * 10 + [512] * 5
    for i, n in enumerate(sizes):
        row = [float((i + j) % 7) for j in range(64)]
        r = user.predict(d["id"], [row] * n if n > 1 else row)
        assert r.status_code == 200, r.text
        latencies.append(r.json()["response_time_ms"])
    m = metrics(user, d["id"], hours=1)["metrics"]
    assert m["request_count"] == len(sizes)
    assert m["error_count"] == 0
    assert m["avg_latency_ms"] == pytest.approx(sum(latencies) / len(latencies), rel=0.01, abs=0.002)
    for q, key in ((0.50, "p50_latency_ms"), (0.95, "p95_latency_ms"), (0.99, "p99_latency_ms")):
        truth = nearest_rank(latencies, q)
        assert abs(bucket(m[key]) - bucket(truth)) <= 1, (key, m[key], truth)
    # The spread is real (the check above is not trivially true).
    assert bucket(max(latencies)) - bucket(min(latencies)) >= 4


def test_ownership_scopes_and_parameters(user):
    d = user.deploy(models.serialize(models.mlp()), name="own")
    other = register(user.url, "intruder")
    assert_error(other.get(f"/api/v1/metrics/{d['id']}"), 404, "NOT_FOUND")
    assert_error(user.get("/api/v1/metrics/does-not-exist"), 404, "NOT_FOUND")
    assert_error(requests.get(f"{user.url}/api/v1/metrics/{d['id']}"), 401, "UNAUTHORIZED")
    key = user.post("/api/v1/api-keys", json={"name": "p", "scopes": ["predict"]}).json()["key"]
    r = requests.get(f"{user.url}/api/v1/metrics/{d['id']}", headers={"Authorization": f"Bearer {key}"})
    assert_error(r, 403, "FORBIDDEN")
    for params in ({"hours": "0"}, {"hours": "x"}, {"hours": "999999"}, {"resolution": "2m"},
                   {"hours": "8000", "resolution": "1m"}):
        assert_error(user.get(f"/api/v1/metrics/{d['id']}", params=params), 422, "VALIDATION_ERROR")
    # Default resolution by period, and explicit ones.
    assert metrics(user, d["id"])["period"]["resolution"] == "5m"
    assert metrics(user, d["id"], hours=168)["period"]["resolution"] == "1h"
    assert metrics(user, d["id"], hours=24 * 90)["period"]["resolution"] == "1d"
    m = metrics(user, d["id"], hours=48, resolution="1h")
    assert len(m["time_series"]["timestamps"]) in (48, 49)


def test_numbers_survive_a_restart_and_cold_starts_are_counted(fresh_server):
    srv = fresh_server.start()
    u = register(srv.url)
    d = u.deploy(models.serialize(models.mlp()), name="persist")
    for i in range(25):
        assert u.predict(d["id"], [i, 1, 2, 3]).status_code == 200
    assert u.predict(d["id"], [1]).status_code in (400, 422)
    before = metrics(u, d["id"], hours=24)["metrics"]
    assert before["request_count"] == 26 and before["error_count"] == 1
    assert srv.stop() == 0

    srv.start()
    u2 = register(srv.url, "after")  # a second user proves nothing leaks across accounts
    assert u2.get("/api/v1/auth/me").json()["total_predictions"] == 0
    tok = requests.post(srv.url + "/api/v1/auth/login", json={"email": u.email, "password": u.password}).json()
    u.s.headers["Authorization"] = f"Bearer {tok['access_token']}"
    u.url = srv.url
    after = metrics(u, d["id"], hours=24)["metrics"]
    for k in ("request_count", "error_count", "p50_latency_ms", "p95_latency_ms", "unique_users"):
        assert after[k] == before[k], k
    assert u.get(f"/api/v1/deployments/{d['id']}").json()["metrics_summary"]["request_count"] == 26
    assert u.get("/api/v1/auth/me").json()["total_predictions"] == 26
    # The model is not resident after a restart: the first prediction is a cold start.
    assert u.predict(d["id"], [1, 2, 3, 4]).status_code == 200
    m = metrics(u, d["id"], hours=24)["metrics"]
    assert m["request_count"] == 27
    assert m["cold_starts"] == before["cold_starts"] + 1
    # Deleting the deployment deletes its metrics.
    assert u.delete(f"/api/v1/deployments/{d['id']}").status_code == 200
    assert_error(u.get(f"/api/v1/metrics/{d['id']}"), 404, "NOT_FOUND")
    assert srv.stop() == 0
