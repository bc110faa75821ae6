#!/usr/bin/env python3
"""Seed corpus for the ONNX loader fuzzer: every model.onnx of the installed onnx package's
backend test data (node, simple, pytorch-*), deduplicated, files under 64 KiB.
Usage: make_corpus.py OUT_DIR"""
import hashlib
import sys
from pathlib import Path

import onnx

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
data = Path(onnx.__file__).parent / "backend" / "test" / "data"
n = 0
for suite in ("node", "simple", "pytorch-converted", "pytorch-operator"):
    for m in sorted((data / suite).glob("*/model.onnx")):
        b = m.read_bytes()
        if len(b) > 64 * 1024:
            continue
        (out / hashlib.sha1(b).hexdigest()).write_bytes(b)
        n += 1
print(f"{n} seed models in {out}")
