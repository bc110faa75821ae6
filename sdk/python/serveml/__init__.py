"""ServeML Python SDK: deploy models, run predictions and read metrics from Python.

    import serveml
    client = serveml.Client("http://127.0.0.1:8000", api_key="sk-...")
    dep = client.deploy("model.onnx", name="iris")
    dep.predict([5.1, 3.5, 1.4, 0.2])
"""
from .client import Client, Deployment
from .errors import (
    ConnectionFailed,
    DeploymentFailed,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PredictionError,
    RateLimited,
    ServemlError,
    ServiceError,
    Timeout,
    Unauthorized,
    ValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "Deployment",
    "ServemlError",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "InvalidInput",
    "ValidationError",
    "DeploymentFailed",
    "PredictionError",
    "RateLimited",
    "PayloadTooLarge",
    "ServiceError",
    "ConnectionFailed",
    "Timeout",
    "__version__",
]
