"""Every error code the API promises, in the SPEC's error shape, and nothing lost after."""
import numpy as np
import requests

import models
from conftest import assert_error, register


def test_unknown_route_and_method(server):
    assert_error(requests.get(server.url + "/api/v1/nope", timeout=5), 404, "NOT_FOUND")
    r = requests.put(server.url + "/api/v1/deployments", timeout=5)
    assert r.status_code == 405, r.text
    assert r.json()["error"]["message"]


def test_malformed_json(server):
    r = requests.post(server.url + "/api/v1/auth/login", data=b"{not json",
                      headers={"Content-Type": "application/json"}, timeout=5)
    assert_error(r, 400, "INVALID_INPUT")
    r = requests.post(server.url + "/api/v1/auth/login", data=b"[1,2]", timeout=5)
    assert_error(r, 400, "INVALID_INPUT")


def test_register_validation_and_duplicates(server):
    url = server.url + "/api/v1/auth/register"
    assert_error(requests.post(url, json={"email": "a@b.co"}, timeout=5), 422, "VALIDATION_ERROR")
    assert_error(requests.post(url, json={"email": "not-an-email", "username": "abc", "password": "longenough"}, timeout=5),
                 422, "VALIDATION_ERROR")
    assert_error(requests.post(url, json={"email": "x@example.com", "username": "abcd", "password": "short"}, timeout=5),
                 422, "VALIDATION_ERROR")
    c = register(server.url)
    r = requests.post(url, json={"email": c.email.upper(), "username": "other_name_1", "password": "longenough1"}, timeout=30)
    assert_error(r, 400, "INVALID_INPUT")


def test_auth_failures(server):
    c = register(server.url)
    r = requests.post(server.url + "/api/v1/auth/login", json={"email": c.email, "password": "wrong-password"}, timeout=30)
    assert_error(r, 401, "UNAUTHORIZED")
    r = requests.post(server.url + "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "whatever1"}, timeout=30)
    assert_error(r, 401, "UNAUTHORIZED")
    assert_error(requests.get(server.url + "/api/v1/auth/me", timeout=5), 401, "UNAUTHORIZED")
    assert_error(requests.get(server.url + "/api/v1/deployments", headers={"Authorization": "Bearer abc.def.ghi"}, timeout=5),
                 401, "UNAUTHORIZED")
    # A token signed by someone else.
    forged = c.token.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    assert_error(requests.get(server.url + "/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"}, timeout=5),
                 401, "UNAUTHORIZED")


def test_prediction_input_errors(user):
    d = user.deploy(models.serialize(models.mlp(n_in=4)), name="inputs")
    cases = [
        ([1, 2, 3], "4"),                        # wrong feature count, names the expected count
        ([[1, 2, 3, 4], [1, 2, 3]], "same length"),  # ragged batch
        ([1, "x", 3, 4], "not a number"),         # non-numeric
        ([], "empty"),                            # empty batch
        ([[[1, 2, 3, 4]]], "nested"),             # too deep
    ]
    for data, needle in cases:
        r = user.predict(d["id"], data)
        body = assert_error(r, 400, "INVALID_INPUT")
        assert needle in body["error"]["message"], (data, body)
    assert_error(user.post(f"/api/v1/predict/{d['id']}", json={"rows": [1, 2]}), 400, "INVALID_INPUT")
    assert_error(user.post(f"/api/v1/predict/{d['id']}", data=b"{{{"), 400, "INVALID_INPUT")
    # Still serving afterwards.
    assert user.predict(d["id"], [1, 2, 3, 4]).status_code == 200


def test_body_too_large(user, server):
    # The shared server runs with --max-body-mb 2.
    big = b'{"data": [' + b"1.0," * (700 * 1024) + b"1.0]}"
    r = requests.post(f"{server.url}/api/v1/auth/login", data=big, timeout=30)
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert requests.get(server.url + "/health", timeout=5).status_code == 200


def test_deploy_errors(user):
    # No multipart at all.
    assert_error(user.post("/api/v1/deploy", json={"name": "x"}), 400, "INVALID_INPUT")
    # Multipart without model_file.
    r = user.post("/api/v1/deploy", files={"other": ("a.txt", b"abc")}, data={"name": "x"})
    assert_error(r, 422, "VALIDATION_ERROR")
    # A file type we do not know.
    r = user.post("/api/v1/deploy", files={"model_file": ("model.exe", b"MZ\x90\x00")}, data={"name": "x"})
    body = assert_error(r, 400, "INVALID_INPUT")
    assert ".onnx" in body["error"]["message"]
    # Truncated ONNX: accepted, then fails validation with a reason.
    good = models.serialize(models.mlp())
    d = user.deploy(good[: len(good) // 2], name="truncated")
    assert d["status"] == "failed" and d["error_message"]
    r = user.predict(d["id"], [1, 2, 3, 4])
    assert r.status_code in (400, 422) and r.json()["error"]["message"]
    # Unsupported operator is named.
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("DFT", ["x"], ["y"])], "dft",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    d = user.deploy(m.SerializeToString(), name="dft")
    assert d["status"] == "failed" and "DFT" in d["error_message"], d


def test_not_found_shapes(user):
    missing = "00000000-0000-4000-8000-000000000000"
    assert_error(user.get(f"/api/v1/deployments/{missing}"), 404, "NOT_FOUND")
    assert_error(user.predict(missing, [1, 2, 3, 4]), 404, "NOT_FOUND")
    assert_error(user.delete(f"/api/v1/api-keys/{missing}"), 404, "NOT_FOUND")
