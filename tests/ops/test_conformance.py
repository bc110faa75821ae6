"""Operator conformance gate: every case listed in tests/ops/expected_passes.txt must still pass
ONNX's own backend test cases (expected outputs shipped with the onnx package) through
`serveml run`. Newly passing cases are printed as a hint; record them with
`python tests/ops/run_conformance.py --update`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_conformance as rc  # noqa: E402


def test_expected_backend_cases_still_pass(request):
    binary = rc.default_binary()
    if not binary.exists():
        pytest.fail(f"serveml binary not found at {binary} (set SERVEML_BINARY)")
    results = rc.run_all(binary, jobs=2)
    by_name = {r.name: r for r in results}
    expected = rc.read_expected()
    assert expected, "tests/ops/expected_passes.txt is empty or missing"
    missing = [n for n in expected if n not in by_name]
    regressed = [by_name[n] for n in expected if n in by_name and by_name[n].outcome != "pass"]
    new = sorted(r.name for r in results if r.outcome == "pass" and r.name not in set(expected))

    text = "\n" + rc.summary(results)
    if new:
        text += (f"\n{len(new)} newly passing case(s); record them with "
                 f"`python tests/ops/run_conformance.py --update`:\n  " + "\n  ".join(new[:50]))
    capman = request.config.pluginmanager.get_plugin("capturemanager")
    if capman:
        with capman.global_and_fixture_disabled():
            print(text)
    else:
        print(text)

    assert not missing, f"listed cases not found in the installed onnx package: {missing[:20]}"
    assert not regressed, "cases that no longer pass:\n" + "\n".join(
        f"  {r.name}: {r.outcome}: {r.detail}" for r in regressed)
