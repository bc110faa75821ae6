"""One user can never see, predict on, or change another user's deployments (404)."""
import models
from conftest import assert_error, register


def test_users_are_isolated(server):
    alice, bob = register(server.url, "alice"), register(server.url, "bob")
    d = alice.deploy(models.serialize(models.mlp()), name="alice-private")
    dep = d["id"]
    assert alice.predict(dep, [1, 2, 3, 4]).status_code == 200

    assert_error(bob.get(f"/api/v1/deployments/{dep}"), 404, "NOT_FOUND")
    assert_error(bob.patch(f"/api/v1/deployments/{dep}", json={"name": "mine"}), 404, "NOT_FOUND")
    assert_error(bob.delete(f"/api/v1/deployments/{dep}"), 404, "NOT_FOUND")
    assert_error(bob.predict(dep, [1, 2, 3, 4]), 404, "NOT_FOUND")
    assert_error(bob.get(f"/api/v1/deployments/{dep}/versions"), 404, "NOT_FOUND")
    assert_error(bob.post(f"/api/v1/deployments/{dep}/rollback", json={"version": "v1"}), 404, "NOT_FOUND")
    files = {"model_file": ("m.onnx", models.serialize(models.mlp()), "application/octet-stream")}
    assert_error(bob.post(f"/api/v1/deployments/{dep}/versions", files=files), 404, "NOT_FOUND")
    assert_error(bob.get(f"/api/v1/deployments/{dep}/onnx"), 404, "NOT_FOUND")
    assert bob.get("/api/v1/deployments").json()["total"] == 0
    assert bob.get("/api/v1/deployments", params={"search": dep}).json()["total"] == 0

    # Bob's API key cannot reach Alice's deployment either.
    key = bob.post("/api/v1/api-keys", json={"name": "k", "scopes": ["predict"]}).json()["key"]
    import requests
    r = requests.post(f"{server.url}/api/v1/predict/{dep}", json={"data": [1, 2, 3, 4]},
                      headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert_error(r, 404, "NOT_FOUND")
    # Nothing changed for Alice.
    got = alice.get(f"/api/v1/deployments/{dep}").json()
    assert got["name"] == "alice-private" and got["status"] == "active"
