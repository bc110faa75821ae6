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


# ---- amplification: small files that would make a reader create far more than they hold.
# Each is written opcode by opcode and must be refused by the limit its fragment names,
# within a couple of seconds and without using much memory.

def _binget(i: int) -> bytes:
    return b"h" + bytes([i])


def _dup_list(n: int) -> bytes:
    # A list of n references to one int: ( K DUP*(n-1) l
    return b"(K\x01" + b"2" * (n - 1) + b"l"


def _n(count: int, scale: float) -> int:
    return max(2, int(count * scale))


def amplification_pickles(scale: float = 1.0) -> dict[str, tuple[bytes, str]]:
    """{name: (bytes, expected limit fragment)} for the pickle reader's amplification classes.
    `scale` < 1 shrinks every count (small structural copies for fuzz seeds, which then load
    or fail on something else; the fragments hold at scale 1)."""
    out: dict[str, tuple[bytes, str]] = {}
    memoize, pop = b"\x94", b"0"

    # set(L) for a 50 000-element L, 300 000 times: ~2 MB that would copy ~120 GB.
    p = b"\x80\x04cbuiltins\nset\n" + memoize + pop + _dup_list(_n(50000, scale)) + memoize + pop
    p += (_binget(0) + _binget(1) + b"\x85R" + pop) * _n(300000, scale)
    out["amplify_set_over_large_list.pkl"] = (p + b"N.", "allocation budget")

    # OrderedDict(pairs) over one 20 000-pair list, 100 000 times.
    pairs = b"(" + b"".join(b"J" + struct.pack("<i", k) + b"J" + struct.pack("<i", k) + b"\x86"
                            for k in range(_n(20000, scale))) + b"l"
    p = b"\x80\x04ccollections\nOrderedDict\n" + memoize + pop + pairs + memoize + pop
    p += (_binget(0) + _binget(1) + b"\x85R" + pop) * _n(100000, scale)
    out["amplify_ordereddict_over_pairs.pkl"] = (p + b"N.", "allocation budget")

    # numpy _reconstruct + BUILD with an object-dtype state over a 100 000-element list,
    # BUILT again 200 000 times: each BUILD copies the list.
    dtype_o = (b"cnumpy\ndtype\n\x8c\x01O\x89\x88\x87R"
               b"(K\x03\x8c\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    p = (b"\x80\x04cnumpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
         b"K\x00\x85C\x01b\x87R")
    p += b"(K\x01J" + struct.pack("<i", _n(100000, scale)) + b"\x85" + dtype_o + b"\x89"
    p += _dup_list(_n(100000, scale)) + b"t" + memoize + b"b"
    p += (_binget(0) + b"b") * _n(200000, scale)
    out["amplify_numpy_object_array_rebuilt.pkl"] = (p + b".", "allocation budget")

    # copyreg._reconstructor(estimator class) then the same 20 000-entry state BUILT
    # 100 000 times (each BUILD after the first merges into a fresh dict).
    p = (b"\x80\x04ccopyreg\n_reconstructor\ncsklearn.linear_model\nLinearRegression\n"
         b"cbuiltins\nobject\nN\x87R")
    p += b"}(" + b"".join(b"J" + struct.pack("<i", k) + b"N" for k in range(_n(20000, scale))) + b"u"
    p += memoize + b"b" + (_binget(0) + b"b") * _n(100000, scale)
    out["amplify_repeated_build.pkl"] = (p + b".", "allocation budget")

    # Nested BUILD: a chain of estimators, each BUILT with the large state and then with
    # {"inner": the previous estimator} (which merges a copy of the large state every level).
    make = (b"ccopyreg\n_reconstructor\ncsklearn.pipeline\nPipeline\n"
            b"cbuiltins\nobject\nN\x87R")
    p = (b"\x80\x04}(" + b"".join(b"J" + struct.pack("<i", k) + b"N" for k in range(_n(20000, scale))) +
         b"u" + memoize + pop + make)
    p += (b"q\x01" + pop + make + _binget(0) + b"b" + b"}\x8c\x05inner" + _binget(1) + b"sb") * _n(200, scale)
    out["amplify_nested_build.pkl"] = (p + b".", "allocation budget")

    # DUP flood: a million and a bit references to one value.
    out["amplify_dup_flood.pkl"] = (b"\x80\x04N" + b"2" * _n((1 << 20) + 16, scale) + b".", "stack limit")

    # Memo fan-out: one 1 MB bytes value in the memo, copied by bytes() 10 000 times.
    big = b"x" * _n(1 << 20, scale)
    p = b"\x80\x04cbuiltins\nbytes\n" + memoize + pop
    p += b"B" + struct.pack("<I", len(big)) + big + memoize + pop
    p += (_binget(0) + _binget(1) + b"\x85R" + pop) * _n(10000, scale)
    out["amplify_memo_fanout_bytes.pkl"] = (p + b"N.", "allocation budget")

    # A memo flood: five million MEMOIZE of one value.
    out["amplify_memo_flood.pkl"] = (b"\x80\x04N" + memoize * _n(5_000_000, scale) + b".",
                                     "allocation budget")

    # A dict built with 400 000 distinct SETITEMs (quadratic in a naive reader).
    p = b"\x80\x04}" + b"".join(
        b"\x8c" + bytes([len(k)]) + k + b"J" + struct.pack("<i", i) + b"s"
        for i, k in ((i, b"k%d" % i) for i in range(_n(400000, scale))))
    out["amplify_dict_many_setitem.pkl"] = (p + b".", "allocation budget")
    return out


def amplification_boosting(scale: float = 1.0) -> dict[str, tuple[bytes, str]]:
    """{name: (bytes, expected limit fragment)} for the XGBoost and LightGBM readers; `scale`
    as for amplification_pickles."""
    out: dict[str, tuple[bytes, str]] = {}
    # UBJSON objects and arrays declaring 2^40 members.
    out["ubjson_huge_object_count.ubj"] = (b"{#L" + struct.pack(">q", 1 << 40) + b"Z",
                                           "declared length")
    out["ubjson_huge_typed_array.ubj"] = (
        b"{U\x07learner[$d#L" + struct.pack(">q", 1 << 40) + b"}", "declared length")
    # A million one-byte nulls, each a whole value in memory.
    n = _n(1 << 20, scale)
    out["ubjson_null_flood.ubj"] = (b"{U\x07learner[#l" + struct.pack(">i", n) + b"Z" * n + b"}",
                                    "allocation budget")
    # JSON: a million empty arrays ("[]," each).
    out["json_empty_array_flood.json"] = (
        b'{"learner": [' + b",".join([b"[]"] * _n(1 << 20, scale)) + b"]}", "allocation budget")
    out["json_nesting.json"] = (b'{"learner": ' + b"[" * _n(100000, scale), "nesting depth limit")

    # LightGBM: a tree declaring 16M leaves with a one-value leaf_value line.
    head = ("tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nlabel_index=0\n"
            "max_feature_idx=2\nobjective=regression\n\n")
    out["lightgbm_huge_num_leaves.txt"] = (
        (head + "Tree=0\nnum_leaves=16777216\nnum_cat=0\nleaf_value=1\nshrinkage=1\n\n"
         "end of trees\n").encode(), "declared length")
    # LightGBM: 40 chained zero-as-missing splits whose expansion doubles per level.
    depth = 40
    tree = {
        "num_leaves": str(depth + 1), "num_cat": "0",
        "split_feature": " ".join(["0"] * depth), "threshold": " ".join(["0"] * depth),
        "decision_type": " ".join(["6"] * depth),
        "left_child": " ".join(str(i + 1 if i + 1 < depth else -1) for i in range(depth)),
        "right_child": " ".join(str(-(i + 2)) for i in range(depth)),
        "leaf_value": " ".join(str(i) for i in range(depth + 1)), "shrinkage": "1",
    }
    body = "Tree=0\n" + "".join(f"{k}={v}\n" for k, v in tree.items())
    out["lightgbm_zero_missing_doubling.txt"] = ((head + body + "\nend of trees\n").encode(),
                                                 "allocation budget")
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
    expect["deep_nesting.pkl"] = "nesting depth limit"
    files["huge_unicode_length.pkl"] = b"\x80\x04\x8d" + struct.pack("<Q", 1 << 62) + b"x."
    expect["huge_unicode_length.pkl"] = ""
    files["huge_bytes_length.pkl"] = b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"x."
    expect["huge_bytes_length.pkl"] = ""
    files["huge_frame.pkl"] = b"\x80\x04\x95" + struct.pack("<Q", 1 << 50) + b"N."
    expect["huge_frame.pkl"] = ""
    files["mark_flood.pkl"] = b"\x80\x04" + b"(" * 3_000_000 + b"."
    expect["mark_flood.pkl"] = "stack limit"
    import zlib
    files["zlib_bomb.joblib"] = zlib.compress(b"\x80\x04" + b"N0" * (300 << 20), 9)
    expect["zlib_bomb.joblib"] = "decompression ratio limit"

    # Amplification: each names the limit that must stop it.
    for name, (data, fragment) in {**amplification_pickles(), **amplification_boosting()}.items():
        files[name], expect[name] = data, fragment

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
