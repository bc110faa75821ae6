"""The SDK's full journey against the real server: register, log in, deploy (waiting for
active), predict, metrics, versions, rollback, listing with filters, API keys, typed errors,
delete."""
from __future__ import annotations

import io

import pytest
import requests

import serveml


def test_full_journey(server_url, creds, model_file, model_file_v2, tmp_path):
    client = serveml.Client(server_url)
    assert client.health()["status"] == "healthy"
    user = client.register(creds["email"], creds["username"], creds["password"], full_name="SDK User")
    assert user["email"] == creds["email"]

    # A fresh client logs in with the same account.
    client = serveml.Client(server_url)
    token = client.login(creds["email"], creds["password"])
    assert token and client.token == token
    assert client.me()["username"] == creds["username"]

    dep = client.deploy(model_file, name="sdk-linear")
    assert isinstance(dep, serveml.Deployment)
    assert dep.status == "active" and dep.current_version == "v1"
    assert dep.model_metadata["framework"] == "onnx"

    one = dep.predict([1.0, 2.0, 3.0, 4.0])
    assert len(one["prediction"]) == 3 and one["model_version"] == "v1"
    batch = dep.predict([[1, 2, 3, 4], [4, 3, 2, 1]])
    assert batch["batch_size"] == 2 and len(batch["predictions"]) == 2
    import numpy as np
    assert dep.predict(np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32))["prediction"] == one["prediction"]

    with pytest.raises(serveml.InvalidInput) as bad:
        dep.predict([1.0])
    assert bad.value.status == 400 and bad.value.code == "INVALID_INPUT"
    assert bad.value.request_id

    m = dep.metrics(hours=1)
    assert m["metrics"]["request_count"] == 4
    assert m["metrics"]["error_count"] == 1
    assert m["period"]["resolution"] == "1m"
    assert dep.refresh().metrics_summary["request_count"] == 4
    assert client.me()["total_predictions"] == 4

    # Versions and rollback.
    v2 = dep.add_version(model_file_v2)
    assert v2["status"] == "active"
    assert dep.current_version == "v2"
    assert dep.predict([1, 2, 3, 4])["prediction"][0] == pytest.approx(one["prediction"][0] + 100.0, abs=1e-3)
    assert [v["version"] for v in dep.versions()] == ["v1", "v2"]
    dep.rollback("v1")
    assert dep.current_version == "v1"
    assert dep.predict([1, 2, 3, 4])["prediction"] == one["prediction"]
    with pytest.raises(serveml.NotFound):
        dep.rollback("v9")

    # Configuration and listing with filters.
    dep.update(name="sdk-renamed", memory_mb=1024)
    assert dep.name == "sdk-renamed" and dep.configuration["memory_mb"] == 1024
    other = client.deploy(io.BytesIO(model_file.read_bytes()), name="second", filename="m.onnx")
    names = [d.name for d in client.deployments()]
    assert names[:2] == ["second", "sdk-renamed"]
    assert [d.id for d in client.deployments(search="renamed")] == [dep.id]
    assert len(client.deployments(status="active")) == 2
    assert client.deployments(status="failed") == []
    assert len(client.deployments(limit=1)) == 1

    onnx_path = dep.download_onnx(tmp_path / "out.onnx")
    assert onnx_path.stat().st_size > 0

    # API keys: a predict-only key can predict but not manage.
    key = client.create_api_key("ci", scopes=["predict"])
    assert key["key"].startswith("sk-")
    keyed = serveml.Client(server_url, api_key=key["key"])
    assert keyed.predict(dep.id, [1, 2, 3, 4])["prediction"] == one["prediction"]
    with pytest.raises(serveml.Forbidden) as fb:
        keyed.deployments()
    assert fb.value.status == 403
    assert any(k["id"] == key["id"] for k in client.api_keys())
    client.revoke_api_key(key["id"])
    with pytest.raises(serveml.Unauthorized):
        keyed.predict(dep.id, [1, 2, 3, 4])

    # Delete.
    other.delete()
    dep.delete()
    with pytest.raises(serveml.NotFound) as nf:
        client.deployment(dep.id)
    assert nf.value.code == "NOT_FOUND" and nf.value.status == 404
    assert isinstance(nf.value, serveml.ServemlError)
    assert client.deployments() == []


def test_failed_deploy_raises_with_the_reason(server_url, creds, tmp_path):
    client = serveml.Client(server_url)
    client.register(**creds)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07this is not a valid onnx model at all")
    with pytest.raises(serveml.DeploymentFailed) as e:
        client.deploy(broken, name="broken")
    assert e.value.message
    dep_id = e.value.details["deployment_id"]
    d = client.deployment(dep_id)
    assert d.status == "failed" and d.error_message == e.value.message
    # Without waiting the deployment comes back at once, still validating or already done.
    d2 = client.deploy(broken, name="broken2", wait=False)
    assert d2.status in ("validating", "failed")


def test_errors_are_typed(server_url, creds):
    anon = serveml.Client(server_url)
    with pytest.raises(serveml.Unauthorized) as e:
        anon.me()
    assert e.value.status == 401 and e.value.request_id
    with pytest.raises(serveml.Unauthorized):
        anon.login("nobody@example.com", "wrong-password")
    client = serveml.Client(server_url)
    client.register(**creds)
    with pytest.raises(serveml.InvalidInput) as dup:  # a conflict answers INVALID_INPUT
        client.register(creds["email"], creds["username"] + "x", creds["password"])
    assert dup.value.status == 400 and "already" in dup.value.message
    with pytest.raises(serveml.NotFound):
        client.metrics("no-such-deployment")
    with pytest.raises(serveml.ValidationError) as v:
        client.request("GET", "/api/v1/deployments", params={"limit": 1000})
    assert v.value.status == 422 and v.value.code == "VALIDATION_ERROR"
    down = serveml.Client("http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(serveml.ConnectionFailed):
        down.health()
    assert issubclass(serveml.ConnectionFailed, serveml.ServemlError)


def test_error_mapping_without_a_server():
    from serveml.errors import error_from_response

    e = error_from_response(404, {"error": {"code": "NOT_FOUND", "message": "gone", "details": {"a": 1}},
                                  "request_id": "req-1"}, None)
    assert isinstance(e, serveml.NotFound) and e.details == {"a": 1} and e.request_id == "req-1"
    assert "NOT_FOUND: gone" in str(e)
    e = error_from_response(502, None, "req-2")
    assert isinstance(e, serveml.ServiceError) and e.status == 502 and e.request_id == "req-2"
    e = error_from_response(429, {"error": {"code": "RATE_LIMITED", "message": "slow down"}}, None)
    assert isinstance(e, serveml.RateLimited)
    e = error_from_response(500, {"error": {"code": "PREDICTION_ERROR", "message": "boom"}}, None)
    assert isinstance(e, serveml.PredictionError)
