"""The OpenAPI document against the running server: every route the router knows is
documented and every documented operation exists; the served document is the one kept in
the repo (docs/openapi.json); /docs renders it without any external resource.

The route table comes from GET /api/v1/_routes, which exists only when the server is started
with --bench-routes (a test-only switch)."""
from __future__ import annotations

import json
import re

import pytest
import requests

from conftest import REPO, Server

DOC_PATH = REPO / "docs" / "openapi.json"
METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}
# Test-only routes, never part of the product surface.
HIDDEN = ("/_bench/", "/_test/", "/api/v1/_routes")
# The web dashboard's single-page-app catch-all (/ui/{p1}/.../{p6}) is documented once, as /ui.
DASHBOARD_PREFIX = "/ui/"


def normalize(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path.rstrip("/") or "/")


@pytest.fixture(scope="module")
def routes_server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("openapi-data"), ["--bench-routes"]).start()
    yield srv
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(DOC_PATH.read_text())


def documented(doc: dict) -> set[tuple[str, str]]:
    out = set()
    for path, item in doc["paths"].items():
        for method in item:
            if method in METHODS:
                out.add((method.upper(), normalize(path)))
    return out


def router_routes(srv) -> set[tuple[str, str]]:
    r = requests.get(srv.url + "/api/v1/_routes", timeout=10)
    assert r.status_code == 200, r.text
    out = set()
    for route in r.json():
        path = route["path"]
        if any(path.startswith(h) for h in HIDDEN):
            continue
        if path.startswith(DASHBOARD_PREFIX):
            path = DASHBOARD_PREFIX.rstrip("/")
        out.add((route["method"], normalize(path)))
    return out


def test_every_route_is_documented_and_every_documented_route_exists(routes_server, doc):
    routes = router_routes(routes_server)
    docs = documented(doc)
    assert len(routes) >= 20
    missing = sorted(routes - docs)
    extra = sorted(docs - routes)
    assert not missing, f"routes the router has but docs/openapi.json lacks: {missing}"
    assert not extra, f"operations documented in docs/openapi.json that the router lacks: {extra}"


def test_route_list_is_hidden_without_the_test_switch(server):
    assert requests.get(server.url + "/api/v1/_routes", timeout=10).status_code == 404


def test_served_document_is_the_repo_file(server, doc):
    r = requests.get(server.url + "/api/v1/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == doc


def test_document_is_well_formed(doc):
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] and doc["info"]["version"]
    op_ids = []
    tags = {t["name"] for t in doc.get("tags", [])}

    def resolve_refs(node, where):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                target = doc
                for part in ref.removeprefix("#/").split("/"):
                    assert part in target, f"{where}: dangling $ref {ref}"
                    target = target[part]
            for k, v in node.items():
                resolve_refs(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                resolve_refs(v, f"{where}/{i}")

    resolve_refs(doc, "#")
    for path, item in doc["paths"].items():
        params_in_path = set(re.findall(r"\{([^}]+)\}", path))
        for method, op in item.items():
            if method not in METHODS:
                continue
            where = f"{method.upper()} {path}"
            op_ids.append(op["operationId"])
            assert op.get("summary"), where
            assert set(op.get("tags", [])) <= tags, where
            assert any(code.startswith("2") for code in op["responses"]), where
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == params_in_path, f"{where}: path parameters {declared} != {params_in_path}"
            for code, resp in op["responses"].items():
                if code.startswith(("4", "5")):
                    schema = resp["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, where
    assert len(op_ids) == len(set(op_ids)), "operationIds must be unique"


def test_docs_page_is_self_contained(server):
    r = requests.get(server.url + "/docs", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    html = r.text
    assert "/api/v1/openapi.json" in html
    # No CDN or any other external resource: no absolute URLs in src/href/imports/fetches.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert not re.search(r"""@import|url\(\s*["']?(https?:)?//""", html, re.I)
    assert "fetch(\"/api/v1/openapi.json\")" in html
    csp = r.headers.get("Content-Security-Policy", "")
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
