"""Typed exceptions for the API's error shape.

Every error answer of the API looks like
``{"error": {"code": "NOT_FOUND", "message": "...", "details": {...}}, "request_id": "req-..."}``;
the SDK raises the subclass of :class:`ServemlError` for its code, carrying the code, the
HTTP status and the request id (quote it when reporting a problem)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Type


class ServemlError(Exception):
    """Base class of every error the SDK raises."""

    #: The API error code this class stands for (``None`` for the base class).
    default_code: Optional[str] = None

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        status: Optional[int] = None,
        request_id: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code or "SERVICE_ERROR"
        self.status = status
        self.request_id = request_id
        self.details: Dict[str, Any] = details or {}

    def __str__(self) -> str:
        where = f" (HTTP {self.status}, request {self.request_id})" if self.status else ""
        return f"{self.code}: {self.message}{where}"


class Unauthorized(ServemlError):
    """401: missing, invalid or expired token or API key."""

    default_code = "UNAUTHORIZED"


class Forbidden(ServemlError):
    """403: the credentials may not do this (e.g. a predict-only API key)."""

    default_code = "FORBIDDEN"


class NotFound(ServemlError):
    """404: no such resource for this caller (another user's deployment is not found too)."""

    default_code = "NOT_FOUND"


class InvalidInput(ServemlError):
    """400: the request or the model input is malformed."""

    default_code = "INVALID_INPUT"


class ValidationError(ServemlError):
    """422: a field is missing or out of range."""

    default_code = "VALIDATION_ERROR"


class DeploymentFailed(ServemlError):
    """The model could not be deployed (validation failed); ``message`` says why."""

    default_code = "DEPLOYMENT_FAILED"


class PredictionError(ServemlError):
    """500: the model failed while predicting."""

    default_code = "PREDICTION_ERROR"


class RateLimited(ServemlError):
    """429: too many requests; retry later."""

    default_code = "RATE_LIMITED"


class PayloadTooLarge(ServemlError):
    """413: the body or upload is larger than the server accepts."""

    default_code = "PAYLOAD_TOO_LARGE"


class ServiceError(ServemlError):
    """500/503: the server failed."""

    default_code = "SERVICE_ERROR"


class ConnectionFailed(ServemlError):
    """The server could not be reached."""

    default_code = "CONNECTION_FAILED"


class Timeout(ServemlError):
    """The request, or waiting for a deployment, took longer than allowed."""

    default_code = "TIMEOUT"


_BY_CODE: Dict[str, Type[ServemlError]] = {
    cls.default_code: cls  # type: ignore[misc]
    for cls in (Unauthorized, Forbidden, NotFound, InvalidInput, ValidationError, DeploymentFailed,
                PredictionError, RateLimited, PayloadTooLarge, ServiceError)
}
_BY_STATUS: Dict[int, Type[ServemlError]] = {
    400: InvalidInput, 401: Unauthorized, 403: Forbidden, 404: NotFound, 413: PayloadTooLarge,
    422: ValidationError, 429: RateLimited,
}


def error_from_response(status: int, body: Any, request_id: Optional[str]) -> ServemlError:
    """Builds the exception for an error answer (``body`` is the parsed JSON or None)."""
    code = None
    message = f"HTTP {status}"
    details: Dict[str, Any] = {}
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            code = err.get("code")
            message = str(err.get("message") or message)
            if isinstance(err.get("details"), dict):
                details = err["details"]
        request_id = body.get("request_id") or request_id
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status) or ServiceError
    return cls(message, code=code, status=status, request_id=request_id, details=details)
