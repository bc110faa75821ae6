"""The user journey over the REST API: register, deploy, predict, versions, delete.
Predictions are compared with onnxruntime and scikit-learn, never with our own output."""
import time

import numpy as np
import onnxruntime as ort
import pytest
import requests

import models
from conftest import assert_error, register


def ort_run(model, feeds):
    sess = ort.InferenceSession(models.serialize(model), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def test_health_root_and_status(server):
    for path in ("/", "/health"):
        r = requests.get(server.url + path, timeout=5)
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "healthy"
        assert body["message"] == "Welcome to ServeML API"
        assert body["version"] and body["timestamp"]
        assert r.headers["X-Request-ID"].startswith("req-")
    r = requests.get(server.url + "/api/v1/status", timeout=5)
    assert r.status_code == 200
    s = r.json()
    for key in ("api", "deployments", "predictions", "database", "storage"):
        assert s[key] == "operational", s
    assert s["issues"] == []


def test_request_id_is_echoed(server):
    r = requests.get(server.url + "/health", headers={"X-Request-ID": "my-trace-123"}, timeout=5)
    assert r.headers["X-Request-ID"] == "my-trace-123"


def test_register_login_me(server):
    c = register(server.url)
    r = requests.post(server.url + "/api/v1/auth/login",
                      json={"email": c.email, "password": c.password}, timeout=30)
    assert r.status_code == 200
    assert r.json()["token_type"] == "bearer"
    token = r.json()["access_token"]
    me = requests.get(server.url + "/api/v1/auth/me",
                      headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
    assert me["email"] == c.email
    assert me["deployment_count"] == 0
    assert me["total_predictions"] == 0


def test_deploy_mlp_and_predict_matches_onnxruntime(user):
    m = models.mlp(n_in=4, hidden=16, n_out=3)
    t0 = time.time()
    d = user.deploy(models.serialize(m), name="mlp")
    assert d["status"] == "active", d
    assert time.time() - t0 < 5
    meta = d["model_metadata"]
    assert meta["framework"] == "onnx"
    assert meta["input_shape"] == [None, 4]
    assert meta["output_shape"] == [None, 3]
    assert d["endpoint_url"].endswith(f"/api/v1/predict/{d['id']}")

    rng = np.random.default_rng(42)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    (expected,) = ort_run(m, {"x": x})

    r = user.predict(d["id"], x[0].tolist())
    assert r.status_code == 200, r.text
    body = r.json()
    np.testing.assert_allclose(body["prediction"], expected[0], rtol=1e-5, atol=1e-5)
    assert body["model_version"] == "v1"
    assert body["response_time_ms"] >= 0

    r = user.predict(d["id"], x.tolist())
    body = r.json()
    assert body["batch_size"] == 5
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-5, atol=1e-5)


def test_sklearn_logistic_regression_classifier(user):
    onx, clf, X = models.sklearn_logreg(labels="int", zipmap=True)
    d = user.deploy(models.serialize(onx), name="iris-logreg")
    assert d["status"] == "active", d
    assert d["model_metadata"]["classes"] == [0, 1, 2]
    rows = X[::7]
    r = user.predict(d["id"], rows.tolist())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["predictions"] == clf.predict(rows).tolist()
    np.testing.assert_allclose(body["probabilities"], clf.predict_proba(rows), atol=1e-5)
    single = user.predict(d["id"], rows[0].tolist()).json()
    assert single["prediction"] == int(clf.predict(rows[:1])[0])
    np.testing.assert_allclose(single["probabilities"], clf.predict_proba(rows[:1])[0], atol=1e-5)


@pytest.mark.parametrize("zipmap", [True, False])
def test_sklearn_string_labels(user, zipmap):
    onx, clf, X = models.sklearn_logreg(labels="str", zipmap=zipmap)
    d = user.deploy(models.serialize(onx), name="iris-str")
    assert d["status"] == "active", d
    rows = X[::11]
    body = user.predict(d["id"], rows.tolist()).json()
    assert body["predictions"] == clf.predict(rows).tolist()
    np.testing.assert_allclose(body["probabilities"], clf.predict_proba(rows), atol=1e-5)


def test_named_features(user):
    names = ["sepal_length", "sepal_width", "petal_length"]
    m = models.linear_named(names)
    d = user.deploy(models.serialize(m), name="named")
    assert d["model_metadata"]["feature_names"] == names
    row = {"petal_length": 3.0, "sepal_length": 1.0, "sepal_width": 2.0}
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    (expected,) = ort_run(m, {"x": x})
    body = user.predict(d["id"], row).json()
    assert body["prediction"] == pytest.approx(float(expected[0, 0]), rel=1e-6)
    body = user.predict(d["id"], [row, row]).json()
    assert body["predictions"] == pytest.approx([float(expected[0, 0])] * 2, rel=1e-6)
    r = user.predict(d["id"], {"sepal_length": 1.0, "sepal_width": 2.0})
    assert_error(r, 400, "INVALID_INPUT")
    assert "petal_length" in r.json()["error"]["message"]
    r = user.predict(d["id"], {**row, "colour": 1})
    assert_error(r, 400, "INVALID_INPUT")
    assert "colour" in r.json()["error"]["message"]


def test_tensor_model_nested_to_rank(user):
    m = models.image_model(c=2, h=3, w=3)
    d = user.deploy(models.serialize(m), name="image")
    x = np.random.default_rng(3).normal(size=(4, 2, 3, 3)).astype(np.float32)
    (expected,) = ort_run(m, {"x": x})
    body = user.predict(d["id"], x.tolist()).json()
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-5, atol=1e-5)
    body = user.predict(d["id"], x[0].tolist()).json()
    np.testing.assert_allclose(body["prediction"], expected[0], rtol=1e-5, atol=1e-5)
    r = user.predict(d["id"], x[:, :, :2, :].tolist())
    assert_error(r, 400, "INVALID_INPUT")


def test_multi_output_model(user):
    m = models.two_outputs()
    d = user.deploy(models.serialize(m), name="multi")
    x = np.array([[0.5, -1.0, 2.0]], dtype=np.float32)
    y1, y2 = ort_run(m, {"x": x})
    body = user.predict(d["id"], x.tolist()).json()
    np.testing.assert_allclose(body["outputs"]["y1"], y1, rtol=1e-6)
    np.testing.assert_allclose(body["outputs"]["y2"], y2, rtol=1e-6)


def test_list_get_patch_delete(user):
    a = user.deploy(models.serialize(models.mlp(seed=1)), name="alpha-model")
    b = user.deploy(models.serialize(models.mlp(seed=2)), name="beta-model")
    bad = user.deploy(b"not an onnx file at all", name="broken", filename="broken.onnx")
    assert bad["status"] == "failed"
    assert bad["error_message"]

    lst = user.get("/api/v1/deployments").json()
    assert lst["total"] == 3 and {i["id"] for i in lst["items"]} == {a["id"], b["id"], bad["id"]}
    assert user.get("/api/v1/deployments", params={"search": "alpha"}).json()["total"] == 1
    assert user.get("/api/v1/deployments", params={"status": "failed"}).json()["items"][0]["id"] == bad["id"]
    assert user.get("/api/v1/deployments", params={"framework": "onnx"}).json()["total"] == 3
    page = user.get("/api/v1/deployments", params={"limit": 2, "offset": 0}).json()
    assert len(page["items"]) == 2 and page["limit"] == 2 and page["total"] == 3
    page2 = user.get("/api/v1/deployments", params={"limit": 2, "offset": 2}).json()
    assert len(page2["items"]) == 1
    assert_error(user.get("/api/v1/deployments", params={"limit": 101}), 422, "VALIDATION_ERROR")

    r = user.patch(f"/api/v1/deployments/{a['id']}",
                   json={"name": "alpha-renamed", "configuration": {"memory_mb": 1024, "timeout_seconds": 10}})
    assert r.status_code == 200, r.text
    got = user.get(f"/api/v1/deployments/{a['id']}").json()
    assert got["name"] == "alpha-renamed"
    assert got["configuration"]["memory_mb"] == 1024
    assert got["configuration"]["timeout_seconds"] == 10

    assert user.delete(f"/api/v1/deployments/{a['id']}").status_code == 200
    assert_error(user.get(f"/api/v1/deployments/{a['id']}"), 404, "NOT_FOUND")
    assert_error(user.predict(a["id"], [1, 2, 3, 4]), 404, "NOT_FOUND")
    assert user.get("/api/v1/auth/me").json()["deployment_count"] == 2


def test_versions_and_rollback(user):
    m1, m2 = models.mlp(seed=10), models.mlp(seed=11)
    d = user.deploy(models.serialize(m1), name="versioned")
    x = np.ones((1, 4), dtype=np.float32)
    (e1,), (e2,) = ort_run(m1, {"x": x}), ort_run(m2, {"x": x})
    files = {"model_file": ("m2.onnx", models.serialize(m2), "application/octet-stream")}
    r = user.post(f"/api/v1/deployments/{d['id']}/versions", files=files)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == "v2"
    deadline = time.time() + 10
    while user.get(f"/api/v1/deployments/{d['id']}").json()["current_version"] != "v2":
        assert time.time() < deadline
        time.sleep(0.02)
    body = user.predict(d["id"], x[0].tolist()).json()
    assert body["model_version"] == "v2"
    np.testing.assert_allclose(body["prediction"], e2[0], rtol=1e-5)
    versions = user.get(f"/api/v1/deployments/{d['id']}/versions").json()
    assert [v["version"] for v in versions["items"]] == ["v1", "v2"]
    r = user.post(f"/api/v1/deployments/{d['id']}/rollback", json={"version": "v1"})
    assert r.status_code == 200, r.text
    body = user.predict(d["id"], x[0].tolist()).json()
    assert body["model_version"] == "v1"
    np.testing.assert_allclose(body["prediction"], e1[0], rtol=1e-5)
    assert_error(user.post(f"/api/v1/deployments/{d['id']}/rollback", json={"version": "v9"}), 404, "NOT_FOUND")


def test_api_key_with_predict_scope(user):
    d = user.deploy(models.serialize(models.mlp()), name="keyed")
    r = user.post("/api/v1/api-keys", json={"name": "notebook", "scopes": ["predict"]})
    assert r.status_code == 200, r.text
    key, kid = r.json()["key"], r.json()["id"]
    assert key.startswith("sk-")
    hdr = {"Authorization": f"Bearer {key}"}
    r = requests.post(f"{user.url}/api/v1/predict/{d['id']}", json={"data": [1, 2, 3, 4]}, headers=hdr, timeout=10)
    assert r.status_code == 200, r.text
    assert_error(requests.get(f"{user.url}/api/v1/deployments", headers=hdr, timeout=10), 403, "FORBIDDEN")
    listed = user.get("/api/v1/api-keys").json()["items"]
    assert key not in str(listed)
    assert [k["id"] for k in listed] == [kid]
    assert user.delete(f"/api/v1/api-keys/{kid}").status_code == 200
    r = requests.post(f"{user.url}/api/v1/predict/{d['id']}", json={"data": [1, 2, 3, 4]}, headers=hdr, timeout=10)
    assert_error(r, 401, "UNAUTHORIZED")


def test_public_deployment_needs_no_token(user):
    d = user.deploy(models.serialize(models.mlp()), name="public")
    anon = requests.post(f"{user.url}/api/v1/predict/{d['id']}", json={"data": [1, 2, 3, 4]}, timeout=10)
    assert_error(anon, 401, "UNAUTHORIZED")
    user.patch(f"/api/v1/deployments/{d['id']}", json={"configuration": {"is_public": True}})
    anon = requests.post(f"{user.url}/api/v1/predict/{d['id']}", json={"data": [1, 2, 3, 4]}, timeout=10)
    assert anon.status_code == 200, anon.text
