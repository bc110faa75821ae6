#!/usr/bin/env python3
"""ONNX backend conformance runner for the ServeML engine.

Runs EVERY case of the installed onnx package's backend test data
(onnx/backend/test/data/{node,simple,pytorch-converted,pytorch-operator}) through
`serveml run` and compares each output with the expected output shipped with the case, at the
suite's own tolerance (rtol 1e-3, atol 1e-7; integers, bools and strings exactly).

Each case is classified as
  pass         every test_data_set matched (dtype, shape and values),
  fail         a wrong value/shape/dtype, a crash, a timeout or a run-time error,
  unsupported  `serveml run` refused the case, naming an unsupported operator, element type or
               value kind (the engine's "UNSUPPORTED" status or "... is not supported"),
  differs      a failing case listed in tests/ops/known_differences.txt: its expected data
               contradicts the ONNX specification and onnxruntime, and the engine follows the
               specification (the file says why, case by case).
Nothing is skipped: every case directory lands in one of these buckets.

Usage:
  run_conformance.py [--binary PATH] [--jobs 2] [--filter SUBSTR] [--verbose]
                     [--update]  (rewrite tests/ops/expected_passes.txt with the passing cases)
The binary defaults to $SERVEML_BINARY, else <repo>/build/serveml.
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[2]
DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
SUITES = ("node", "simple", "pytorch-converted", "pytorch-operator")
EXPECTED_FILE = Path(__file__).resolve().parent / "expected_passes.txt"
KNOWN_DIFFERENCES_FILE = Path(__file__).resolve().parent / "known_differences.txt"
RTOL, ATOL = 1e-3, 1e-7
TIMEOUT_S = 60

# A refusal naming something the engine does not implement (see engine.h / status codes).
UNSUPPORTED_RE = re.compile(r"UNSUPPORTED:|is not supported|are not supported|unsupported")


@dataclasses.dataclass
class Result:
    name: str       # "node/test_abs"
    op: str         # operator the case is attributed to (or the suite name)
    outcome: str    # "pass" | "fail" | "unsupported" | "differs"
    detail: str = ""


def default_binary() -> Path:
    return Path(os.environ.get("SERVEML_BINARY", REPO / "build" / "serveml"))


def all_cases() -> list[Path]:
    cases = []
    for suite in SUITES:
        d = DATA / suite
        if d.is_dir():
            cases += sorted(p for p in d.iterdir() if p.is_dir())
    return cases


def case_name(case: Path) -> str:
    return f"{case.parent.name}/{case.name}"


def _snake(op: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", op).lower()


_SCHEMA_FORMS: list[tuple[str, str]] | None = None


def _schema_forms() -> list[tuple[str, str]]:
    global _SCHEMA_FORMS
    if _SCHEMA_FORMS is None:
        forms = set()
        for s in onnx.defs.get_all_schemas_with_history():
            forms.add((s.name.lower(), s.name))
            forms.add((_snake(s.name), s.name))
        _SCHEMA_FORMS = sorted(forms, key=lambda f: len(f[0]), reverse=True)
    return _SCHEMA_FORMS


def attribute_op(case: Path, model: onnx.ModelProto | None) -> str:
    """The operator a node case tests: the graph op whose name prefixes the case name (so
    test_reduce_sum_..._expanded counts for ReduceSum), else the schema name that does,
    else the first non-Constant node. Non-node suites are grouped by suite."""
    suite = case.parent.name
    if suite != "node":
        return suite
    body = case.name[len("test_"):].lower()
    if model is not None:
        best = None
        for n in model.graph.node:
            for form in (n.op_type.lower(), _snake(n.op_type)):
                if (body == form or body.startswith(form + "_")) and (
                        best is None or len(form) > best[0]):
                    best = (len(form), n.op_type)
        if best:
            return best[1]
    for form, name in _schema_forms():
        if body == form or body.startswith(form + "_"):
            return name
    if model is not None:
        for n in model.graph.node:
            if n.op_type != "Constant":
                return n.op_type
    return "?"


def _load_pb(path: Path):
    """An expected value: a tensor, or (for sequence/optional/map files) None."""
    t = onnx.TensorProto()
    try:
        t.ParseFromString(path.read_bytes())
        if t.data_type == 0 and not t.dims:
            return None
        return numpy_helper.to_array(t)
    except Exception:  # noqa: BLE001 - not a TensorProto
        return None


def _safe_name(name: str) -> str:
    s = "".join(c if c.isalnum() or c in "._-" else "_" for c in (name or "output"))
    return "_" + s if s in (".", "..") else s


def _compare(got: np.ndarray, expected: np.ndarray, what: str) -> str | None:
    if got.dtype != expected.dtype:
        if not (got.dtype.kind in "OSU" and expected.dtype.kind in "OSU"):
            return f"{what}: dtype {got.dtype} != expected {expected.dtype}"
    if got.shape != expected.shape:
        return f"{what}: shape {got.shape} != expected {expected.shape}"
    if expected.dtype.kind in "OSU":
        def norm(a):
            return [x.decode() if isinstance(x, bytes) else str(x) for x in a.reshape(-1)]
        if norm(got) != norm(expected):
            return f"{what}: strings differ"
        return None
    if expected.dtype.kind in "fc":
        try:
            np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
        except AssertionError as e:
            lines = [ln for ln in str(e).splitlines() if ln.strip()]
            return f"{what}: values differ ({'; '.join(lines[1:4])})"
        return None
    if not np.array_equal(got, expected):
        bad = int(np.sum(got != expected))
        return f"{what}: {bad} of {expected.size} values differ"
    return None


def run_case(case: Path, binary: Path) -> Result:
    name = case_name(case)
    model_path = case / "model.onnx"
    model = None
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as e:  # noqa: BLE001
        return Result(name, attribute_op(case, None), "fail", f"onnx cannot load model: {e}")
    op = attribute_op(case, model)
    datasets = sorted(case.glob("test_data_set_*"))
    if not datasets:
        return Result(name, op, "fail", "case has no test_data_set")
    outputs = [o.name for o in model.graph.output]
    with tempfile.TemporaryDirectory(prefix="serveml-conf-") as tmp:
        for ds in datasets:
            n_in = len(list(ds.glob("input_*.pb")))
            args = [str(binary), "run", str(model_path)]
            args += [str(ds / f"input_{i}.pb") for i in range(n_in)]
            out_dir = Path(tmp) / ds.name
            args += ["--output-dir", str(out_dir)]
            try:
                proc = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                return Result(name, op, "fail", f"timeout after {TIMEOUT_S}s")
            if proc.returncode != 0:
                msg = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                if proc.returncode < 0:
                    return Result(name, op, "fail", f"crashed with signal {-proc.returncode}")
                if UNSUPPORTED_RE.search(msg):
                    return Result(name, op, "unsupported", msg)
                return Result(name, op, "fail", msg)
            for k, oname in enumerate(outputs):
                expected = _load_pb(ds / f"output_{k}.pb")
                if expected is None:
                    return Result(name, op, "fail", f"output {oname}: expected value is not a "
                                                    "tensor but the engine produced one")
                got_path = out_dir / f"{_safe_name(oname)}.pb"
                if not got_path.exists():
                    return Result(name, op, "fail", f"output {oname} was not written")
                got = _load_pb(got_path)
                if got is None:
                    return Result(name, op, "fail", f"output {oname}: unreadable")
                err = _compare(got, expected, f"{ds.name} output {oname}")
                if err:
                    return Result(name, op, "fail", err)
    return Result(name, op, "pass")


def run_all(binary: Path, jobs: int = 2, name_filter: str | None = None,
            progress: bool = False) -> list[Result]:
    if not binary.exists():
        raise FileNotFoundError(f"serveml binary not found at {binary} (set SERVEML_BINARY)")
    cases = all_cases()
    if name_filter:
        cases = [c for c in cases if name_filter in case_name(c)]
    results: list[Result] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futs = [pool.submit(run_case, c, binary) for c in cases]
        for i, f in enumerate(concurrent.futures.as_completed(futs)):
            results.append(f.result())
            if progress and (i + 1) % 200 == 0:
                print(f"  ... {i + 1}/{len(cases)}", file=sys.stderr)
    known = read_known_differences()
    for r in results:
        if r.outcome == "fail" and r.name in known:
            r.outcome = "differs"
            r.detail = f"{known[r.name]} ({r.detail})"
    results.sort(key=lambda r: r.name)
    return results


def read_known_differences() -> dict[str, str]:
    """{case name: reason} from tests/ops/known_differences.txt."""
    if not KNOWN_DIFFERENCES_FILE.exists():
        return {}
    out = {}
    for ln in KNOWN_DIFFERENCES_FILE.read_text().splitlines():
        ln = ln.strip()
        if ln and not ln.startswith("#"):
            name, _, reason = ln.partition(" ")
            out[name] = reason.strip()
    return out


def summary(results: list[Result]) -> str:
    by_op: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in results:
        by_op[r.op][r.outcome] += 1
    lines = [f"{'operator':28s} {'pass':>5s} {'fail':>5s} {'unsup':>5s} {'differ':>6s}"]
    for op in sorted(by_op, key=str.lower):
        c = by_op[op]
        lines.append(f"{op:28s} {c['pass']:5d} {c['fail']:5d} {c['unsupported']:5d} "
                     f"{c['differs']:6d}")
    total = collections.Counter(r.outcome for r in results)
    differs = f", {total['differs']} differ (known_differences.txt)" if total["differs"] else ""
    lines.append(f"TOTAL: {total['pass']} pass, {total['fail']} fail{differs}, "
                 f"{total['unsupported']} unsupported, {len(results)} cases")
    known = read_known_differences()
    now_pass = sorted(r.name for r in results if r.outcome == "pass" and r.name in known)
    if now_pass:
        lines.append("listed in known_differences.txt but passing now (remove them): " +
                     ", ".join(now_pass))
    return "\n".join(lines)


def read_expected() -> list[str]:
    if not EXPECTED_FILE.exists():
        return []
    return [ln.strip() for ln in EXPECTED_FILE.read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]


def write_expected(results: list[Result]) -> None:
    names = sorted(r.name for r in results if r.outcome == "pass")
    EXPECTED_FILE.write_text("\n".join(names) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", type=Path, default=default_binary())
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--filter", default=None, help="only cases whose name contains this")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every non-passing case")
    ap.add_argument("--update", action="store_true",
                    help=f"rewrite {EXPECTED_FILE.relative_to(REPO)} with the passing cases")
    args = ap.parse_args(argv)
    results = run_all(args.binary, args.jobs, args.filter, progress=True)
    if args.verbose:
        for r in results:
            if r.outcome != "pass":
                print(f"{r.outcome:11s} {r.name}: {r.detail}")
    print(summary(results))
    expected = set(read_expected())
    passing = {r.name for r in results if r.outcome == "pass"}
    considered = {r.name for r in results}
    regressed = sorted((expected & considered) - passing)
    new = sorted(passing - expected)
    if regressed:
        print(f"\n{len(regressed)} case(s) listed in expected_passes.txt no longer pass:")
        for n in regressed:
            r = next(x for x in results if x.name == n)
            print(f"  {n}: {r.outcome}: {r.detail}")
    if new and not args.update:
        print(f"\n{len(new)} newly passing case(s) (run with --update to record them)")
    if args.update:
        if args.filter:
            print("--update ignores --filter runs (needs the full suite)", file=sys.stderr)
            return 2
        write_expected(results)
        print(f"\nwrote {len(passing)} passing cases to {EXPECTED_FILE}")
    return 1 if regressed else 0


if __name__ == "__main__":
    sys.exit(main())
