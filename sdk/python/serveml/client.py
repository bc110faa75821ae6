"""The ServeML client: a thin, typed layer over the REST API v1 (requests-based).

Thread safety: a :class:`Client` wraps one ``requests.Session``; share it between threads only
for independent calls (requests sessions are not formally thread safe), or give each thread
its own client."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, BinaryIO, Dict, Iterator, List, Optional, Sequence, Union

import requests

from .errors import (
    ConnectionFailed,
    DeploymentFailed,
    ServemlError,
    Timeout,
    error_from_response,
)

PathLike = Union[str, "os.PathLike[str]"]
JSON = Any


class Client:
    """A connection to one ServeML server.

    Args:
        url: base URL of the server, e.g. ``"http://127.0.0.1:8000"``.
        token: an access token (from :meth:`login` or :meth:`register`).
        api_key: an API key (``sk-...``); used when no token is set.
        timeout: seconds to wait for each HTTP request.
    """

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        timeout: float = 60.0,
        session: Optional[requests.Session] = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.api_key = api_key
        self.timeout = timeout
        self._session = session or requests.Session()
        self._session.headers.setdefault("User-Agent", "serveml-python/0.1.0")

    # --- plumbing ------------------------------------------------------------------------

    def _headers(self, auth: bool) -> Dict[str, str]:
        credential = self.token or self.api_key
        return {"Authorization": f"Bearer {credential}"} if auth and credential else {}

    def request(
        self,
        method: str,
        path: str,
        *,
        json: JSON = None,
        params: Optional[Dict[str, Any]] = None,
        files: Any = None,
        data: Any = None,
        auth: bool = True,
        timeout: Optional[float] = None,
    ) -> requests.Response:
        """Sends one request; raises the typed :class:`ServemlError` for any error answer."""
        try:
            r = self._session.request(
                method,
                self.url + path,
                json=json,
                params={k: v for k, v in (params or {}).items() if v is not None} or None,
                files=files,
                data=data,
                headers=self._headers(auth),
                timeout=timeout or self.timeout,
            )
        except requests.Timeout as e:
            raise Timeout(f"{method} {path} timed out: {e}") from e
        except requests.ConnectionError as e:
            raise ConnectionFailed(f"cannot reach {self.url}: {e}") from e
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = None
            raise error_from_response(r.status_code, body, r.headers.get("X-Request-ID"))
        return r

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return self.request(method, path, **kw).json()

    # --- system --------------------------------------------------------------------------

    def health(self) -> Dict[str, Any]:
        """``GET /health``."""
        return self._json("GET", "/health", auth=False)

    def status(self) -> Dict[str, Any]:
        """Component status (``GET /api/v1/status``)."""
        return self._json("GET", "/api/v1/status", auth=False)

    # --- accounts ------------------------------------------------------------------------

    def register(self, email: str, username: str, password: str,
                 full_name: Optional[str] = None) -> Dict[str, Any]:
        """Creates an account and signs this client in with it. Returns the user."""
        body: Dict[str, Any] = {"email": email, "username": username, "password": password}
        if full_name is not None:
            body["full_name"] = full_name
        out = self._json("POST", "/api/v1/auth/register", json=body, auth=False)
        self.token = out["access_token"]
        return out["user"]

    def login(self, email: str, password: str) -> str:
        """Signs in; the client uses the returned access token from now on."""
        out = self._json("POST", "/api/v1/auth/login", json={"email": email, "password": password},
                         auth=False)
        self.token = out["access_token"]
        return self.token

    def me(self) -> Dict[str, Any]:
        """The signed-in user with ``deployment_count`` and ``total_predictions``."""
        return self._json("GET", "/api/v1/auth/me")

    def create_api_key(self, name: str, scopes: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        """Creates an API key; the full key is in ``["key"]`` of the answer, and only there."""
        body: Dict[str, Any] = {"name": name}
        if scopes is not None:
            body["scopes"] = list(scopes)
        return self._json("POST", "/api/v1/api-keys", json=body)

    def api_keys(self) -> List[Dict[str, Any]]:
        return self._json("GET", "/api/v1/api-keys")["items"]

    def revoke_api_key(self, key_id: str) -> None:
        self.request("DELETE", f"/api/v1/api-keys/{key_id}")

    # --- deployments ---------------------------------------------------------------------

    def deploy(
        self,
        path: Union[PathLike, BinaryIO],
        name: Optional[str] = None,
        *,
        wait: bool = True,
        timeout: float = 120.0,
        filename: Optional[str] = None,
        memory_mb: Optional[int] = None,
        timeout_seconds: Optional[int] = None,
        min_instances: Optional[int] = None,
        max_instances: Optional[int] = None,
        is_public: Optional[bool] = None,
        requirements: Optional[str] = None,
    ) -> "Deployment":
        """Uploads a model file (.onnx, .pkl/.joblib, XGBoost .json/.ubj, LightGBM .txt).

        With ``wait`` (the default) returns once the deployment is ``active``, raising
        :class:`DeploymentFailed` with the server's reason if validation fails, or
        :class:`Timeout` after ``timeout`` seconds. ``path`` may be an open binary file, then
        pass ``filename`` (its extension selects the framework).
        """
        fields: Dict[str, str] = {}
        for key, value in (("name", name), ("memory", memory_mb), ("timeout", timeout_seconds),
                           ("min_instances", min_instances), ("max_instances", max_instances)):
            if value is not None:
                fields[key] = str(value)
        if is_public is not None:
            fields["is_public"] = "true" if is_public else "false"
        files: Dict[str, Any] = {}
        if requirements is not None:
            files["requirements_file"] = ("requirements.txt", requirements.encode(), "text/plain")
        if hasattr(path, "read"):
            fname = filename or os.path.basename(str(getattr(path, "name", "model")))
            files["model_file"] = (fname, path, "application/octet-stream")
            out = self._json("POST", "/api/v1/deploy", files=files, data=fields)
        else:
            p = Path(os.fspath(path))  # type: ignore[arg-type]
            with p.open("rb") as f:
                files["model_file"] = (filename or p.name, f, "application/octet-stream")
                out = self._json("POST", "/api/v1/deploy", files=files, data=fields)
        dep = Deployment(self, out)
        if wait:
            dep.wait(timeout=timeout)
        return dep

    def deployment(self, deployment_id: str) -> "Deployment":
        """One deployment (with ``metrics_summary``)."""
        return Deployment(self, self._json("GET", f"/api/v1/deployments/{deployment_id}"))

    def iter_deployments(self, search: Optional[str] = None, status: Optional[str] = None,
                         framework: Optional[str] = None, page_size: int = 100) -> Iterator["Deployment"]:
        """Every matching deployment of the caller, newest first, fetched page by page."""
        offset = 0
        while True:
            page = self._json("GET", "/api/v1/deployments", params={
                "search": search, "status": status, "framework": framework,
                "limit": page_size, "offset": offset})
            for item in page["items"]:
                yield Deployment(self, item)
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    def deployments(self, search: Optional[str] = None, status: Optional[str] = None,
                    framework: Optional[str] = None, limit: Optional[int] = None) -> List["Deployment"]:
        """The caller's deployments (all of them, or the newest ``limit``)."""
        out: List[Deployment] = []
        for d in self.iter_deployments(search=search, status=status, framework=framework,
                                       page_size=min(limit, 100) if limit else 100):
            out.append(d)
            if limit is not None and len(out) >= limit:
                break
        return out

    def predict(self, deployment_id: str, data: Any) -> Dict[str, Any]:
        """Runs a prediction. ``data``: one row (list of numbers), a batch (list of rows), or
        a dict of named features. Numpy arrays are converted with ``tolist()``."""
        if hasattr(data, "tolist"):
            data = data.tolist()
        return self._json("POST", f"/api/v1/predict/{deployment_id}", json={"data": data})

    def metrics(self, deployment_id: str, hours: int = 24,
                resolution: Optional[str] = None) -> Dict[str, Any]:
        """Metrics of the last ``hours`` hours; ``resolution`` one of 1m, 5m, 1h, 1d."""
        return self._json("GET", f"/api/v1/metrics/{deployment_id}",
                          params={"hours": hours, "resolution": resolution})

    def versions(self, deployment_id: str) -> List[Dict[str, Any]]:
        return self._json("GET", f"/api/v1/deployments/{deployment_id}/versions")["items"]

    def rollback(self, deployment_id: str, version: str) -> "Deployment":
        return Deployment(self, self._json("POST", f"/api/v1/deployments/{deployment_id}/rollback",
                                           json={"version": version}))

    def delete(self, deployment_id: str) -> None:
        self.request("DELETE", f"/api/v1/deployments/{deployment_id}")


class Deployment:
    """A deployed model. Attribute values are those of the last answer; :meth:`refresh`
    re-reads them."""

    def __init__(self, client: Client, data: Dict[str, Any]) -> None:
        self._client = client
        self.data: Dict[str, Any] = data

    def __repr__(self) -> str:
        return f"Deployment(id={self.id!r}, name={self.name!r}, status={self.status!r})"

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def name(self) -> str:
        return self.data.get("name", "")

    @property
    def status(self) -> str:
        return self.data.get("status", "")

    @property
    def endpoint_url(self) -> Optional[str]:
        return self.data.get("endpoint_url")

    @property
    def current_version(self) -> Optional[str]:
        return self.data.get("current_version")

    @property
    def error_message(self) -> Optional[str]:
        return self.data.get("error_message")

    @property
    def model_metadata(self) -> Dict[str, Any]:
        return self.data.get("model_metadata") or {}

    @property
    def configuration(self) -> Dict[str, Any]:
        return self.data.get("configuration") or {}

    @property
    def metrics_summary(self) -> Dict[str, Any]:
        """All-time totals (request_count, error_count, avg_latency_ms, cold_starts)."""
        return self.data.get("metrics_summary") or {}

    def refresh(self) -> "Deployment":
        self.data = self._client._json("GET", f"/api/v1/deployments/{self.id}")
        return self

    def wait(self, timeout: float = 120.0) -> "Deployment":
        """Polls until the deployment leaves ``validating``; raises DeploymentFailed if it
        failed, Timeout if it is still validating after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if self.status != "validating":
                break
            if time.monotonic() >= deadline:
                raise Timeout(f"deployment {self.id} still validating after {timeout:g}s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
            self.refresh()
        if self.status == "failed":
            raise DeploymentFailed(self.error_message or "the model failed validation",
                                   details={"deployment_id": self.id})
        return self

    def predict(self, data: Any) -> Dict[str, Any]:
        return self._client.predict(self.id, data)

    def metrics(self, hours: int = 24, resolution: Optional[str] = None) -> Dict[str, Any]:
        return self._client.metrics(self.id, hours=hours, resolution=resolution)

    def versions(self) -> List[Dict[str, Any]]:
        return self._client.versions(self.id)

    def add_version(self, path: PathLike, *, wait: bool = True, timeout: float = 120.0) -> Dict[str, Any]:
        """Uploads a new version; with ``wait`` returns once it is validated (it is then
        current) or raises DeploymentFailed."""
        p = Path(os.fspath(path))
        with p.open("rb") as f:
            v = self._client._json("POST", f"/api/v1/deployments/{self.id}/versions",
                                   files={"model_file": (p.name, f, "application/octet-stream")})
        if not wait:
            return v
        deadline = time.monotonic() + timeout
        while v.get("status") == "validating":
            if time.monotonic() >= deadline:
                raise Timeout(f"version {v.get('version')} still validating after {timeout:g}s")
            time.sleep(0.05)
            v = next((x for x in self.versions() if x["version"] == v["version"]), v)
        if v.get("status") == "failed":
            raise DeploymentFailed(v.get("error_message") or "the model failed validation",
                                   details={"deployment_id": self.id, "version": v.get("version")})
        self.refresh()
        return v

    def rollback(self, version: str) -> "Deployment":
        self.data = self._client.rollback(self.id, version).data
        return self

    def update(self, name: Optional[str] = None, **configuration: Any) -> "Deployment":
        """Renames and/or changes configuration (memory_mb, timeout_seconds, min_instances,
        max_instances, is_public)."""
        body: Dict[str, Any] = dict(configuration)
        if name is not None:
            body["name"] = name
        self.data = self._client._json("PATCH", f"/api/v1/deployments/{self.id}", json=body)
        return self

    def delete(self) -> None:
        self._client.delete(self.id)

    def download_onnx(self, dest: PathLike) -> Path:
        """Writes the current version as an ONNX model to ``dest``."""
        r = self._client.request("GET", f"/api/v1/deployments/{self.id}/onnx")
        out = Path(os.fspath(dest))
        out.write_bytes(r.content)
        return out


__all__ = ["Client", "Deployment", "ServemlError"]
