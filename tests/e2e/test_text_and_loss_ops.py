"""End-to-end tests of the text operators (TfIdfVectorizer, StringNormalizer, StringSplit,
StringConcat, RegexFullMatch), the losses (SoftmaxCrossEntropyLoss,
NegativeLogLikelihoodLoss) and Det through `serveml run`, compared with onnxruntime on the
same models and random inputs.

StringNormalizer models use locale "C.UTF-8": onnxruntime builds a C++ locale from the
attribute and the test machine has no en_US locale installed; the engine's case mapping does
not depend on the locale name (apart from "C"/"POSIX", ASCII only).

StringSplit is compared with the ONNX reference implementation (onnx.reference), whose
Python str.split semantics the engine follows; onnxruntime splits on spaces only and gives no
substring for an empty string. Det is compared with numpy for float64 (onnxruntime's Det is
float32 only).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from test_engine_run import assert_matches_ort, ort_run, serveml_run

RNG = np.random.default_rng(20241126)


def _model(nodes, inputs, outputs, opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes if isinstance(nodes, list) else [nodes], "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def _texts(a: np.ndarray) -> list:
    """A string tensor's elements as nested lists of str."""
    return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else str(v),
                        otypes=[object])(a).tolist() if a.size else a.tolist()


def _elem_type(a: np.ndarray) -> int:
    return TensorProto.STRING if a.dtype == object else helper.np_dtype_to_tensor_dtype(a.dtype)


# --------------------------------------------------------------------------------------------
# TfIdfVectorizer


def _random_pool(vocab: list, rng) -> tuple[list, list[int]]:
    """A pool of distinct 1-, 2- and 3-grams over `vocab` and its ngram_counts."""
    unigrams = [vocab[i] for i in rng.choice(len(vocab), size=4, replace=False)]
    grams = {2: set(), 3: set()}
    for n in (2, 3):
        while len(grams[n]) < 5:
            grams[n].add(tuple(vocab[i] for i in rng.integers(0, len(vocab), size=n)))
    pool = list(unigrams)
    counts = [0]
    for n in (2, 3):
        counts.append(len(pool))
        for g in sorted(grams[n], key=str):
            pool.extend(g)
    return pool, counts


@pytest.mark.parametrize("kind", ["int64", "int32", "string"])
@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("mode,weighted", [("TF", False), ("IDF", False), ("IDF", True),
                                           ("TFIDF", False), ("TFIDF", True)])
@pytest.mark.parametrize("grams,skip", [((1, 1), 0), ((1, 3), 0), ((1, 2), 2), ((2, 3), 1),
                                        ((3, 3), 3)])
def test_tfidf_vectorizer_matches_onnxruntime(tmp_path, kind, rank, mode, weighted, grams, skip):
    rng = np.random.default_rng(hash((kind, rank, mode, weighted, grams, skip)) % 2**32)
    ints = [3, 7, 11, 42, -5, 100]
    vocab = ints if kind != "string" else ["a", "bb", "café", "δ", "", "zz"]
    pool, counts = _random_pool(vocab, rng)
    n_grams = 4 + 5 + 5
    # Output columns: a permutation, so ngram_indexes matter; with a gap (unused columns)
    # when unweighted (onnxruntime wants one weight per n-gram and indexes the weights by
    # output column).
    indexes = [int(v) for v in rng.permutation(n_grams + (0 if weighted else 2))[:n_grams]]
    out_size = max(indexes) + 1
    attrs = dict(mode=mode, min_gram_length=grams[0], max_gram_length=grams[1],
                 max_skip_count=skip, ngram_counts=counts, ngram_indexes=indexes)
    if kind == "string":
        attrs["pool_strings"] = pool
    else:
        attrs["pool_int64s"] = [int(v) for v in pool]
    if weighted:
        attrs["weights"] = [float(w) for w in rng.uniform(0.1, 3.0, size=out_size)]
    shape = (14,) if rank == 1 else (3, 14)
    picks = rng.integers(0, len(vocab), size=shape)
    if kind == "string":
        x = np.array([vocab[i] for i in picks.ravel()], dtype=object).reshape(shape)
    else:
        x = np.array(ints, dtype=np.int64 if kind == "int64" else np.int32)[picks]
    node = helper.make_node("TfIdfVectorizer", ["X"], ["Y"], **attrs)
    model = _model(node, [("X", _elem_type(x), list(shape))], [("Y", TensorProto.FLOAT, None)], 9)
    ours = assert_matches_ort(model, [x], tmp_path)
    assert ours["Y"].shape == ((out_size,) if rank == 1 else (3, out_size))


def test_tfidf_vectorizer_rejects_wrong_input_type(tmp_path):
    node = helper.make_node("TfIdfVectorizer", ["X"], ["Y"], mode="TF", min_gram_length=1,
                            max_gram_length=1, max_skip_count=0, ngram_counts=[0],
                            ngram_indexes=[0, 1], pool_strings=["a", "b"])
    x = np.array([1, 2], dtype=np.int64)
    model = _model(node, [("X", TensorProto.INT64, [2])], [("Y", TensorProto.FLOAT, None)], 9)
    proc, _ = serveml_run(model, [x], tmp_path)
    assert proc.returncode != 0
    assert "string pool" in proc.stderr


# --------------------------------------------------------------------------------------------
# StringNormalizer

WORDS = ["Monday", "monday", "MONDAY", "Tuesday", "café", "CAFÉ", "Straße", "ÿes", "Ωmega",
         "Привет", "ПРИВЕТ", "Ärger", "x y", "", "Œuvre", "łódź"]


@pytest.mark.parametrize("two_d", [False, True])
@pytest.mark.parametrize("stopwords", [None, ["monday", "CAFÉ", "привет", "nothing"]])
@pytest.mark.parametrize("sensitive", [0, 1])
@pytest.mark.parametrize("action", ["NONE", "LOWER", "UPPER"])
def test_string_normalizer_matches_onnxruntime(tmp_path, action, sensitive, stopwords, two_d):
    words = list(RNG.permutation(np.array(WORDS, dtype=object)))
    x = np.array(words, dtype=object)
    if two_d:
        x = x.reshape(1, -1)
    attrs = dict(case_change_action=action, is_case_sensitive=sensitive, locale="C.UTF-8")
    if stopwords:
        attrs["stopwords"] = stopwords
    node = helper.make_node("StringNormalizer", ["X"], ["Y"], **attrs)
    model = _model(node, [("X", TensorProto.STRING, list(x.shape))],
                   [("Y", TensorProto.STRING, None)], 10)
    assert_matches_ort(model, [x], tmp_path)


@pytest.mark.parametrize("two_d", [False, True])
def test_string_normalizer_all_stopwords_gives_one_empty_string(tmp_path, two_d):
    x = np.array(["Monday", "MONDAY", "monday"], dtype=object)
    if two_d:
        x = x.reshape(1, -1)
    node = helper.make_node("StringNormalizer", ["X"], ["Y"], case_change_action="UPPER",
                            stopwords=["monday"], locale="C.UTF-8")
    model = _model(node, [("X", TensorProto.STRING, list(x.shape))],
                   [("Y", TensorProto.STRING, None)], 10)
    ours = assert_matches_ort(model, [x], tmp_path)
    assert ours["Y"].shape == ((1, 1) if two_d else (1,))


def test_string_normalizer_c_locale_maps_ascii_only(tmp_path):
    x = np.array(["abcé", "ÀBC", "δx"], dtype=object)
    node = helper.make_node("StringNormalizer", ["X"], ["Y"], case_change_action="UPPER",
                            locale="C")
    model = _model(node, [("X", TensorProto.STRING, [3])], [("Y", TensorProto.STRING, None)], 10)
    ours = assert_matches_ort(model, [x], tmp_path)
    assert _texts(ours["Y"]) == ["ABCé", "ÀBC", "δX"]


def test_string_normalizer_rejects_batched_input(tmp_path):
    x = np.array([["a", "b"], ["c", "d"]], dtype=object)
    node = helper.make_node("StringNormalizer", ["X"], ["Y"], case_change_action="UPPER")
    model = _model(node, [("X", TensorProto.STRING, [2, 2])], [("Y", TensorProto.STRING, None)], 10)
    proc, _ = serveml_run(model, [x], tmp_path)
    assert proc.returncode != 0
    assert "[1, C]" in proc.stderr


# --------------------------------------------------------------------------------------------
# StringSplit, StringConcat, RegexFullMatch (opset 20)


@pytest.mark.parametrize("delimiter", [None, "", ",", "--"])
@pytest.mark.parametrize("maxsplit", [None, 0, 1, 3])
def test_string_split_matches_onnx_reference(tmp_path, delimiter, maxsplit):
    x = np.array([["a,b,,c", "  two  words ", "x--y----z"], ["", "tab\there\nnew", "é,ü δ"]],
                 dtype=object)
    attrs = {}
    if delimiter is not None:
        attrs["delimiter"] = delimiter
    if maxsplit is not None:
        attrs["maxsplit"] = maxsplit
    node = helper.make_node("StringSplit", ["X"], ["Y", "Z"], **attrs)
    model = _model(node, [("X", TensorProto.STRING, [2, 3])],
                   [("Y", TensorProto.STRING, None), ("Z", TensorProto.INT64, None)], 20)
    proc, ours = serveml_run(model, [x], tmp_path)
    assert proc.returncode == 0, proc.stderr
    y_ref, z_ref = ReferenceEvaluator(model).run(None, {"X": x})
    got = ours["Y"]
    assert got.shape == y_ref.shape
    assert _texts(got) == _texts(y_ref)
    assert ours["Z"].dtype == np.int64
    np.testing.assert_array_equal(ours["Z"], z_ref)


def test_string_concat_broadcasts_like_onnxruntime(tmp_path):
    a = np.array([["a", "bé"], ["", "δ"], ["x", "y"]], dtype=object)
    b = np.array(["1", "22"], dtype=object)
    node = helper.make_node("StringConcat", ["A", "B"], ["Y"])
    model = _model(node, [("A", TensorProto.STRING, [3, 2]), ("B", TensorProto.STRING, [2])],
                   [("Y", TensorProto.STRING, None)], 20)
    assert_matches_ort(model, [a, b], tmp_path)


REGEX_CASES = [
    r"www\.[\w.-]+\.\bcom\b",
    r"(\W|^)[\w.\-]{0,25}@(yahoo|gmail)\.com(\W|$)",
    r"(?i)hello\s+world",
    r"[^a-c]*",
    r"[]a]+",
    r"\d{2,3}-\d+",
    r".",
    r"a.c",
    r"(?P<word>\w+) \QC++\E",
    r"[[:alpha:]]+",
    r"\x{e9}t\xe9",
    r"\Aabc\z",
    r"a{,2}",
]


@pytest.mark.parametrize("pattern", REGEX_CASES)
def test_regex_full_match_matches_onnxruntime(tmp_path, pattern):
    x = np.array(["www.google.com", "account@gmail.com", "HeLLo \t World", "dddd", "]a]a",
                  "12-345", "é", "a\nc", "abc", "word C++", "été", "hello", "a{,2}", "",
                  "x y"], dtype=object)
    node = helper.make_node("RegexFullMatch", ["X"], ["Y"], pattern=pattern)
    model = _model(node, [("X", TensorProto.STRING, [len(x)])], [("Y", TensorProto.BOOL, None)],
                   20)
    assert_matches_ort(model, [x], tmp_path)


@pytest.mark.parametrize("pattern,what", [(r"\pL+", "Unicode class"), (r"(a)\1", "backreference"),
                                          (r"a(?=b)", "lookaround"), (r"(?s:a.b)", "flag group")])
def test_regex_full_match_refuses_unsupported_pattern_at_load(tmp_path, pattern, what):
    node = helper.make_node("RegexFullMatch", ["X"], ["Y"], pattern=pattern)
    model = _model(node, [("X", TensorProto.STRING, [1])], [("Y", TensorProto.BOOL, None)], 20)
    proc, _ = serveml_run(model, [np.array(["ab"], dtype=object)], tmp_path)
    assert proc.returncode != 0
    assert what in proc.stderr and "not supported" in proc.stderr


# --------------------------------------------------------------------------------------------
# SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss


LOSS_SHAPES = [(4, 5), (3, 4, 6), (2, 3, 4, 5)]


def _loss_inputs(shape, dtype, target_dtype, weighted, ignore_index, rng):
    n, c = shape[0], shape[1]
    x = rng.standard_normal(shape).astype(dtype)
    t_shape = (n,) + shape[2:]
    t = rng.integers(0, c, size=t_shape)
    if ignore_index is not None:
        mask = rng.random(t_shape) < 0.3
        t = np.where(mask, ignore_index, t)
    inputs = [x, t.astype(target_dtype)]
    if weighted:
        inputs.append(rng.uniform(0.2, 2.0, size=c).astype(dtype))
    return inputs


@pytest.mark.parametrize("op,opset", [("SoftmaxCrossEntropyLoss", 13),
                                      ("SoftmaxCrossEntropyLoss", 12),
                                      ("NegativeLogLikelihoodLoss", 13),
                                      ("NegativeLogLikelihoodLoss", 22)])
@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [None, 0, -1])
def test_loss_matches_onnxruntime(tmp_path, op, opset, shape, reduction, weighted, ignore_index):
    rng = np.random.default_rng(abs(hash((op, opset, shape, reduction, weighted, ignore_index))))
    inputs = _loss_inputs(shape, np.float32, np.int64, weighted, ignore_index, rng)
    if op == "NegativeLogLikelihoodLoss":  # log-probabilities as input
        x = inputs[0]
        inputs[0] = (x - np.log(np.exp(x).sum(axis=1, keepdims=True))).astype(np.float32)
    names = ["X", "T", "W"][:len(inputs)]
    attrs = dict(reduction=reduction)
    if ignore_index is not None:
        attrs["ignore_index"] = ignore_index
    outputs = ["loss"] + (["log_prob"] if op == "SoftmaxCrossEntropyLoss" else [])
    node = helper.make_node(op, names, outputs, **attrs)
    model = _model(node, [(nm, _elem_type(a), list(a.shape)) for nm, a in zip(names, inputs)],
                   [(o, TensorProto.FLOAT, None) for o in outputs], opset)
    assert_matches_ort(model, inputs, tmp_path, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target_dtype", [np.int32, np.int64])
def test_softmax_cross_entropy_types_match_onnxruntime(tmp_path, dtype, target_dtype):
    inputs = _loss_inputs((5, 4, 3), dtype, target_dtype, True, 2, RNG)
    node = helper.make_node("SoftmaxCrossEntropyLoss", ["X", "T", "W"], ["loss"],
                            reduction="mean", ignore_index=2)
    model = _model(node, [(nm, _elem_type(a), list(a.shape))
                          for nm, a in zip(["X", "T", "W"], inputs)],
                   [("loss", _elem_type(inputs[0]), None)], 13)
    assert_matches_ort(model, inputs, tmp_path, rtol=1e-5, atol=1e-6)


def test_loss_rejects_target_out_of_range(tmp_path):
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    t = np.array([0, 3], dtype=np.int64)
    node = helper.make_node("NegativeLogLikelihoodLoss", ["X", "T"], ["loss"])
    model = _model(node, [("X", TensorProto.FLOAT, [2, 3]), ("T", TensorProto.INT64, [2])],
                   [("loss", TensorProto.FLOAT, None)], 13)
    proc, _ = serveml_run(model, [x, t], tmp_path)
    assert proc.returncode != 0
    assert "target value 3" in proc.stderr


# --------------------------------------------------------------------------------------------
# Det


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (6, 3, 3), (2, 3, 5, 5), (7, 2, 2)],
                         ids=lambda s: "x".join(map(str, s)))
def test_det_matches_onnxruntime(tmp_path, dtype, shape):
    x = RNG.standard_normal(shape).astype(dtype)
    if len(shape) == 3 and shape[-1] == 3:
        x[0, 2] = x[0, 0] + x[0, 1]  # one singular matrix in the batch
    node = helper.make_node("Det", ["X"], ["Y"])
    model = _model(node, [("X", _elem_type(x), list(shape))], [("Y", _elem_type(x), None)], 11)
    if dtype == np.float32:
        ours = assert_matches_ort(model, [x], tmp_path, rtol=1e-4, atol=1e-5)
        assert ort_run(model, [x])["Y"].shape == shape[:-2]
    else:
        proc, ours = serveml_run(model, [x], tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert ours["Y"].dtype == np.float64
    assert ours["Y"].shape == shape[:-2]
    np.testing.assert_allclose(ours["Y"], np.linalg.det(x.astype(np.float64)), rtol=1e-4,
                               atol=1e-5)
