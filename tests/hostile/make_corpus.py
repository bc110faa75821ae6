"""Generates the hostile model-file corpus into a directory (nothing binary is checked in).

    python tests/hostile/make_corpus.py OUT_DIR MARKER_PATH

Every file, if it were loaded with pickle.load / joblib.load, would create MARKER_PATH (or
exhaust memory, or crash a naive reader). ServeML must reject each one with a clear error
and never create the marker. `corpus(out_dir, marker)` returns {file name: expected error
fragment} for the tests."""
from __future__ import annotations

import io
import os
import pickle
import random
import struct
import subprocess
import sys
from pathlib import Path


class _Reduce:
    """An object whose unpickling calls func(*args)."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch_cmd(marker: str) -> str:
    return f"touch {marker}"


def _getattr_chain(marker: str, proto: int = 2) -> bytes:
    # getattr(__import__('os'), 'system')('touch marker'), written opcode by opcode.
    p = b"\x80" + bytes([proto])
    p += b"cbuiltins\ngetattr\n"
    p += b"(cbuiltins\n__import__\n(X\x02\x00\x00\x00ostRX\x06\x00\x00\x00systemtR"
    cmd = _touch_cmd(marker).encode()
    p += b"(X" + struct.pack("<I", len(cmd)) + cmd + b"tR."
    return p


def _stack_global_posix(marker: str) -> bytes:
    cmd = _touch_cmd(marker).encode()
    p = b"\x80\x04\x8c\x05posix\x8c\x06system\x93"
    p += b"\x8c" + bytes([len(cmd)]) + cmd + b"\x85R."
    return p


def _valid_estimator():
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.datasets import load_iris
    X, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(X, y)


def _self_containing(est) -> dict[str, bytes]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import VotingClassifier
    from sklearn.pipeline import Pipeline

    out = {}
    pipe = Pipeline([("model", est)])
    pipe.steps.insert(0, ("again", pipe))
    out["pipeline_contains_itself.pkl"] = pickle.dumps(pipe, protocol=4)
    ct = ColumnTransformer([("num", "passthrough", [0, 1])])
    ct.transformers_ = [("self", ct, [0, 1])]
    ct.n_features_in_ = 4
    out["column_transformer_contains_itself.pkl"] = pickle.dumps(
        Pipeline([("ct", ct), ("model", est)]), protocol=4)
    vote = VotingClassifier([("lr", est)])
    vote.estimators_ = [est, vote]
    vote.classes_ = est.classes_
    out["voting_contains_itself.pkl"] = pickle.dumps(vote, protocol=4)
    deep = est
    for _ in range(120):
        deep = Pipeline([("inner", deep)])
    out["pipeline_nested_120_deep.pkl"] = pickle.dumps(deep, protocol=4)
    return out


def corpus(out_dir: Path, marker: str) -> dict[str, str]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    expect: dict[str, str] = {}
    cmd = _touch_cmd(marker)

    for proto in (2, 3, 4, 5):
        files[f"os_system_p{proto}.pkl"] = pickle.dumps(_Reduce(os.system, (cmd,)), protocol=proto)
        expect[f"os_system_p{proto}.pkl"] = "refused to load"
    files["eval.pkl"] = pickle.dumps(_Reduce(eval, (f"__import__('os').system({cmd!r})",)), protocol=4)
    expect["eval.pkl"] = "refused to load 'builtins.eval'"
    files["exec.pkl"] = pickle.dumps(_Reduce(exec, (f"import os; os.system({cmd!r})",)), protocol=2)
    expect["exec.pkl"] = "refused to load"
    files["subprocess_popen.pkl"] = pickle.dumps(
        _Reduce(subprocess.Popen, (["touch", marker],)), protocol=4)
    expect["subprocess_popen.pkl"] = "refused to load 'subprocess.Popen'"
    files["getattr_chain.pkl"] = _getattr_chain(marker)
    expect["getattr_chain.pkl"] = "refused to load 'builtins.getattr'"
    files["posix_system_stack_global.pkl"] = _stack_global_posix(marker)
    expect["posix_system_stack_global.pkl"] = "refused to load 'posix.system'"

    # A real, valid estimator smuggling a payload in an attribute.
    est = _valid_estimator()
    est.smuggled_ = _Reduce(os.system, (cmd,))
    files["estimator_with_payload.pkl"] = pickle.dumps(est, protocol=5)
    expect["estimator_with_payload.pkl"] = "refused to load"
    try:
        import joblib
        buf = io.BytesIO()
        joblib.dump(est, buf, compress=3)
        files["estimator_with_payload.joblib"] = buf.getvalue()
        expect["estimator_with_payload.joblib"] = "refused to load"
    except ImportError:
        pass
    del est.smuggled_

    # Malformed files derived from a valid one.
    good = pickle.dumps(est, protocol=4)
    for frac in (0.1, 0.5, 0.9, 0.999):
        name = f"truncated_{int(frac * 1000)}.pkl"
        files[name] = good[: int(len(good) * frac)]
        expect[name] = ""
    rng = random.Random(7)
    for k in range(8):
        b = bytearray(good)
        for _ in range(3):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        files[f"bitflip_{k}.pkl"] = bytes(b)
        expect[f"bitflip_{k}.pkl"] = None  # may or may not be rejected; must not crash
    files["deep_nesting.pkl"] = b"\x80\x04" + b"]" * 200000 + b"a" * 199999 + b"."
    expect["deep_nesting.pkl"] = "nested"
    files["huge_unicode_length.pkl"] = b"\x80\x04\x8d" + struct.pack("<Q", 1 << 62) + b"x."
    expect["huge_unicode_length.pkl"] = ""
    files["huge_bytes_length.pkl"] = b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"x."
    expect["huge_bytes_length.pkl"] = ""
    files["huge_frame.pkl"] = b"\x80\x04\x95" + struct.pack("<Q", 1 << 50) + b"N."
    expect["huge_frame.pkl"] = ""
    files["mark_flood.pkl"] = b"\x80\x04" + b"(" * 3_000_000 + b"."
    expect["mark_flood.pkl"] = ""
    import zlib
    files["zlib_bomb.joblib"] = zlib.compress(b"\x80\x04" + b"N0" * (300 << 20), 9)
    expect["zlib_bomb.joblib"] = ""

    # Estimators that contain themselves (pickle's memo makes cycles cheap) and very deep
    # nesting: every walk over the estimator tree must be bounded.
    for name, data in _self_containing(est).items():
        files[name], expect[name] = data, ""

    for name, data in files.items():
        (out_dir / name).write_bytes(data)
    return expect


if __name__ == "__main__":
    out, marker = Path(sys.argv[1]), sys.argv[2]
    for name in sorted(corpus(out, marker)):
        print(out / name)
