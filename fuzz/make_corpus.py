#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, generated with the real frameworks (nothing binary is
checked in).

    make_corpus.py TARGET OUT_DIR

onnx_loader_fuzzer      every model.onnx of the installed onnx package's backend test data
pickle_reader_fuzzer    small scikit-learn models via pickle (protocols 2-5) and joblib
                        (plain and compressed), plus the hostile corpus of tests/hostile
                        and small copies of its amplification files
boosting_import_fuzzer  small XGBoost JSON/UBJSON and LightGBM text models, plus small
                        copies of the boosting amplification files of tests/hostile
predict_json_fuzzer     predict request bodies in every accepted shape, and broken ones
multipart_fuzzer        multipart/form-data bodies (first byte = chunk size selector)
"""
import hashlib
import io
import sys
import tempfile
from pathlib import Path

MAX_BYTES = 64 * 1024


def write_all(out: Path, blobs) -> int:
    n = 0
    for b in blobs:
        if len(b) > MAX_BYTES:
            continue
        (out / hashlib.sha1(b).hexdigest()).write_bytes(b)
        n += 1
    return n


def onnx_seeds():
    import onnx
    data = Path(onnx.__file__).parent / "backend" / "test" / "data"
    for suite in ("node", "simple", "pytorch-converted", "pytorch-operator"):
        for m in sorted((data / suite).glob("*/model.onnx")):
            yield m.read_bytes()


def pickle_seeds():
    import pickle
    import warnings

    import joblib
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    warnings.filterwarnings("ignore")
    X, y = load_iris(return_X_y=True)
    models = [
        LogisticRegression(max_iter=200).fit(X, y),
        LinearRegression().fit(X, X[:, 0]),
        DecisionTreeClassifier(max_depth=3).fit(X, y),
        RandomForestClassifier(n_estimators=2, max_depth=2, random_state=0).fit(X, y),
        GradientBoostingClassifier(n_estimators=2, max_depth=2).fit(X, y),
        GaussianNB().fit(X, y),
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)).fit(X, y),
        np.arange(12, dtype=np.float64).reshape(3, 4),
    ]
    for m in models:
        for proto in (2, 3, 4, 5):
            yield pickle.dumps(m, protocol=proto)
        for compress in (0, 3, ("lzma", 3), ("bz2", 3)):
            buf = io.BytesIO()
            joblib.dump(m, buf, compress=compress)
            yield buf.getvalue()
    hostile = _hostile()
    with tempfile.TemporaryDirectory() as tmp:
        files = hostile.corpus(Path(tmp), str(Path(tmp) / "marker"))
        for name in files:
            yield (Path(tmp) / name).read_bytes()
    # The amplification classes (reconstructors over a large container, DUP floods, memo
    # fan-out, repeated/nested BUILD, SETITEM-built dicts) shrunk to seed size.
    for scale in (0.001, 0.005):
        for data, _ in hostile.amplification_pickles(scale).values():
            yield data


def _hostile():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "hostile"))
    import make_corpus as hostile
    return hostile


def boosting_seeds():
    import lightgbm as lgb
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (X[:, 0] > 0).astype(int)
    with tempfile.TemporaryDirectory() as tmp:
        for obj, label in (("binary:logistic", y), ("reg:squarederror", X[:, 1]),
                           ("multi:softprob", rng.integers(0, 3, 200))):
            params = {"objective": obj, "max_depth": 2}
            if obj.startswith("multi"):
                params["num_class"] = 3
            b = xgb.train(params, xgb.DMatrix(X, label=np.nan_to_num(label)), 3)
            for ext in ("json", "ubj"):
                p = Path(tmp) / f"m.{ext}"
                b.save_model(str(p))
                yield p.read_bytes()
        for obj, label in (("binary", y), ("regression", np.nan_to_num(X[:, 1])),
                           ("multiclass", rng.integers(0, 3, 200))):
            params = {"objective": obj, "num_leaves": 4, "verbose": -1, "min_data_in_leaf": 5}
            if obj == "multiclass":
                params["num_class"] = 3
            b = lgb.train(params, lgb.Dataset(X, label=label), 3)
            yield b.model_to_string().encode()
    # Huge declared counts, value floods and zero-as-missing doubling, shrunk to seed size.
    for scale in (0.001, 0.005):
        for data, _ in _hostile().amplification_boosting(scale).values():
            yield data


def predict_json_seeds():
    bodies = [
        '{"data": [5.1, 3.5, 1.4, 0.2]}',
        '{"data": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}',
        '{"data": {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, '
        '"petal_width": 0.2}}',
        '{"data": [{"age": 3, "income": 2.5, "city": "Oslo"}, {"age": 4, "income": 1e3, '
        '"city": "Lima"}]}',
        '{"data": [[[1, 2, 3], [4, 5, 6]]]}',
        '{"data": [[[1, 2, 3], [4, 5, 6]], [[0, 0, 0], [1e308, -1e-308, 2]]]}',
        '{"data": []}', '{"data": [[]]}', '{"data": null}', '{"data": "x"}', '{}', '[]',
        '{"data": [1, 2, 3]', '{"data": [1, "2", true, null]}', '{"data": [[1, 2], [3]]}',
        '{"data": [NaN, Infinity, -0.0, 1e400]}', '{"data": {"unknown": 1}}',
        '{"data": [1, 2, 3, 4], "extra": {"nested": [[[[[]]]]]}}',
    ]
    return [b.encode() for b in bodies]


def multipart_seeds():
    def body(parts, close=True):
        out = b""
        for headers, payload in parts:
            out += b"--XyZ\r\n" + headers + b"\r\n\r\n" + payload + b"\r\n"
        if close:
            out += b"--XyZ--\r\n"
        return out

    file_part = (b'Content-Disposition: form-data; name="file"; filename="model.onnx"\r\n'
                 b"Content-Type: application/octet-stream", b"\x08\x07\x12\x04--Xy\r\n--XyZ-")
    field = (b'Content-Disposition: form-data; name="name"', b"my model")
    bodies = [
        body([file_part, field]),
        body([field]),
        body([file_part], close=False),
        b"preamble\r\n" + body([field, field, file_part]),
        body([(b"Content-Disposition: form-data", b"no name")]),
        b"--XyZ--\r\n",
        b"",
    ]
    return [bytes([sel]) + b for sel in (0, 1, 7, 63) for b in bodies]


SEEDS = {
    "onnx_loader_fuzzer": onnx_seeds,
    "pickle_reader_fuzzer": pickle_seeds,
    "boosting_import_fuzzer": boosting_seeds,
    "predict_json_fuzzer": predict_json_seeds,
    "multipart_fuzzer": multipart_seeds,
}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in SEEDS:
        sys.exit(f"usage: make_corpus.py {{{'|'.join(SEEDS)}}} OUT_DIR")
    target, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    print(f"{write_all(out, SEEDS[target]())} seeds for {target} in {out}")
