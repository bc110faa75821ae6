"""The original serving stack, reduced to its prediction path, as the comparison anchor of
bench/compare_original.py: FastAPI + uvicorn + scikit-learn, the model read with pickle.load.

    BENCH_MODEL_DIR=/path/with/<id>.pkl uvicorn app:app --host 127.0.0.1 --port 8001 --workers 1

POST /api/v1/predict/{model_id}  {"features": [f1, f2, ...]}          -> {"predictions": [label]}
                                 {"features": [[f1, ...], [f1, ...]]}  -> {"predictions": [...]}
GET  /health                     -> {"status": "ok"}

Every <id>.pkl in BENCH_MODEL_DIR is loaded at start-up with pickle.load, as the original did
with each upload. pickle.load runs code from the file: this app is for the benchmark only and
only ever loads the file the benchmark has just written itself.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Union

import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

app = FastAPI(title="original-stack")
MODELS: dict[str, object] = {}


def load_models() -> None:
    for path in sorted(Path(os.environ["BENCH_MODEL_DIR"]).glob("*.pkl")):
        with open(path, "rb") as f:
            MODELS[path.stem] = pickle.load(f)


load_models()


class PredictRequest(BaseModel):
    features: Union[list[float], list[list[float]]]


class PredictResponse(BaseModel):
    predictions: list


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@app.post("/api/v1/predict/{model_id}", response_model=PredictResponse)
async def predict(model_id: str, req: PredictRequest) -> PredictResponse:
    model = MODELS.get(model_id)
    if model is None:
        raise HTTPException(status_code=404, detail="model not found")
    X = np.asarray(req.features, dtype=np.float64)
    if X.ndim == 1:
        X = X.reshape(1, -1)
    return PredictResponse(predictions=model.predict(X).tolist())
