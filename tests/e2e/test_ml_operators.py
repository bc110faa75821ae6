"""End-to-end tests of the ONNX-ML operators (ai.onnx.ml) through `serveml run`.

Every expectation comes from an independent reference: onnxruntime on the same ONNX model
(rtol 1e-5, atol 1e-6, labels exact) and scikit-learn's own predict / predict_proba on the
estimator the model was converted from (skl2onnx). Nothing here compares with numbers our
engine produced. Models are real scikit-learn estimators converted by skl2onnx, plus models
built with onnx.helper to reach attribute combinations converters rarely emit (random trees
with every branch mode, missing-value tracking, base values, aggregate functions, post
transforms, TreeEnsemble opset 5 with set membership).
"""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import test_engine_run
from test_engine_run import serveml_run

pytest.importorskip("sklearn")
pytest.importorskip("skl2onnx")

from skl2onnx import to_onnx  # noqa: E402
from sklearn import datasets, ensemble, preprocessing, svm, tree  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

ML3 = {"": 17, "ai.onnx.ml": 3}
RNG = np.random.default_rng(7)


# --------------------------------------------------------------------------------------------
# helpers


def _patch_skl2onnx_bools():
    """skl2onnx 1.20 passes numpy/python bools in nodes_missing_value_tracks_true for
    HistGradientBoosting, which onnx.helper rejects; coerce them to ints."""
    orig = helper.make_attribute
    if getattr(orig, "_serveml_patched", False):
        return

    def make_attribute(key, value, *args, **kwargs):
        if isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
            value = [int(v) for v in value]
        return orig(key, value, *args, **kwargs)

    make_attribute._serveml_patched = True
    helper.make_attribute = make_attribute


_patch_skl2onnx_bools()


def convert(est, x, opset=ML3, zipmap=False):
    opts = None if zipmap else {id(est): {"zipmap": False}}
    try:
        m = to_onnx(est, x[:1], target_opset=opset, options=opts)
    except (TypeError, NameError):  # estimator without the zipmap option (regressors)
        m = to_onnx(est, x[:1], target_opset=opset)
    for i in m.graph.input:  # dynamic batch
        i.type.tensor_type.shape.dim[0].dim_param = "N"
    return m


def as_str(a):
    return [s.decode() if isinstance(s, bytes) else str(s) for s in np.asarray(a).reshape(-1)]


def split_outputs(model, outs):
    """(labels, scores) of a classifier's outputs, in graph output order."""
    names = [o.name for o in model.graph.output]
    return outs[names[0]], outs[names[1]] if len(names) > 1 else None


def thresholds_by_feature(model, n_features):
    """Thresholds of every branch of the model's tree ensembles, per feature."""
    th = {f: set() for f in range(n_features)}
    for node in model.graph.node:
        if not node.op_type.startswith("TreeEnsemble"):
            continue
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        vals = a.get("nodes_values")
        if vals is None and "nodes_values_as_tensor" in a:
            vals = numpy_helper.to_array(a["nodes_values_as_tensor"])
        for f, m, v in zip(a["nodes_featureids"], a["nodes_modes"], vals):
            if m != b"LEAF":
                th[f].add(float(v))
    return {f: sorted(v) for f, v in th.items()}


def edge_rows(model, x, dtype=np.float32, n=64):
    """Rows whose features sit exactly on split thresholds, one ulp either side, or are NaN,
    +inf or -inf: the inputs where a float/double comparison slip changes a prediction."""
    f = x.shape[1]
    th = thresholds_by_feature(model, f)
    rows = []
    for r in range(n):
        row = x[r % len(x)].astype(dtype).copy()
        for j in range(f):
            if th[j]:
                v = dtype(th[j][(r * 7 + j) % len(th[j])])
                kind = (r + j) % 3
                if kind == 1:
                    v = np.nextafter(v, dtype(np.inf))
                elif kind == 2:
                    v = np.nextafter(v, dtype(-np.inf))
                row[j] = v
        rows.append(row)
    special = np.array(rows[:6], dtype=dtype)
    special[0, :] = np.nan
    special[1, ::2] = np.nan
    special[2, :] = np.inf
    special[3, :] = -np.inf
    special[4, 1::2] = np.inf
    special[5, ::3] = -np.inf
    return np.concatenate([np.array(rows, dtype=dtype), special])


def ort_run(model, inputs):
    """onnxruntime on one thread: its multi-threaded tree paths merge partial sums in another
    order, which can flip a label where two classes tie exactly."""
    so = test_engine_run.ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = test_engine_run.ort.InferenceSession(model.SerializeToString(), so,
                                                providers=["CPUExecutionProvider"])
    feeds = {i.name: a for i, a in zip(sess.get_inputs(), inputs)}
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def assert_matches_ort(model, inputs, tmp, rtol=1e-5, atol=1e-6):
    """test_engine_run.assert_matches_ort with the single-threaded reference."""
    saved = test_engine_run.ort_run
    test_engine_run.ort_run = ort_run
    try:
        return test_engine_run.assert_matches_ort(model, inputs, tmp, rtol=rtol, atol=atol)
    finally:
        test_engine_run.ort_run = saved


def run_ours(model, inputs, tmp_path):
    proc, outs = serveml_run(model, inputs, tmp_path)
    assert proc.returncode == 0, proc.stderr
    return outs


# --------------------------------------------------------------------------------------------
# data sets

def classification(kind, seed=0):
    if kind == "binary20":
        X, y = datasets.make_classification(600, 20, n_informative=10, random_state=seed)
    elif kind == "multi20":
        X, y = datasets.make_classification(600, 20, n_informative=12, n_classes=4,
                                            n_clusters_per_class=1, random_state=seed)
    elif kind == "iris":
        X, y = datasets.load_iris(return_X_y=True)
    elif kind == "wine_str":
        X, y = datasets.load_wine(return_X_y=True)
        y = np.array(["barolo", "grignolino", "barbera"])[y]
    elif kind == "cancer":
        X, y = datasets.load_breast_cancer(return_X_y=True)
    else:
        raise ValueError(kind)
    return X.astype(np.float32), y


def regression(kind, seed=0):
    if kind == "friedman":
        X, y = datasets.make_friedman1(500, 10, random_state=seed)
    elif kind == "reg20":
        X, y = datasets.make_regression(500, 20, n_informative=12, noise=5.0, random_state=seed)
    elif kind == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True)
    else:
        raise ValueError(kind)
    return X.astype(np.float32), y


def make_batch(X, n=1000, seed=1):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(X), n)
    noise = rng.standard_normal((n, X.shape[1])).astype(np.float32) * X.std(0) * 0.05
    return (X[idx] + noise).astype(np.float32)


# --------------------------------------------------------------------------------------------
# tree ensembles converted from scikit-learn

TREE_CLASSIFIERS = {
    "DecisionTree": lambda: tree.DecisionTreeClassifier(max_depth=8, random_state=0),
    "RandomForest": lambda: ensemble.RandomForestClassifier(25, max_depth=8, random_state=0),
    "ExtraTrees": lambda: ensemble.ExtraTreesClassifier(25, max_depth=8, random_state=0),
    "GradientBoosting": lambda: ensemble.GradientBoostingClassifier(
        n_estimators=30, max_depth=4, random_state=0),
    "HistGradientBoosting": lambda: ensemble.HistGradientBoostingClassifier(
        max_iter=30, max_depth=6, random_state=0),
}
TREE_REGRESSORS = {
    "DecisionTree": lambda: tree.DecisionTreeRegressor(max_depth=8, random_state=0),
    "RandomForest": lambda: ensemble.RandomForestRegressor(25, max_depth=8, random_state=0),
    "ExtraTrees": lambda: ensemble.ExtraTreesRegressor(25, max_depth=8, random_state=0),
    "GradientBoosting": lambda: ensemble.GradientBoostingRegressor(
        n_estimators=40, max_depth=4, random_state=0),
    "HistGradientBoosting": lambda: ensemble.HistGradientBoostingRegressor(
        max_iter=40, max_depth=6, random_state=0),
}


@pytest.mark.parametrize("data", ["binary20", "multi20", "iris", "wine_str", "cancer"])
@pytest.mark.parametrize("name", list(TREE_CLASSIFIERS))
def test_sklearn_tree_classifier(tmp_path, name, data):
    X, y = classification(data)
    if name == "HistGradientBoosting" and data in ("multi20",):
        X = X.copy()
        X[::17, 3] = np.nan  # trains missing-value directions
    est = TREE_CLASSIFIERS[name]().fit(X, y)
    m = convert(est, X)
    xb = make_batch(X)
    for batch in (xb, xb[:1], xb[:0]):
        ours = assert_matches_ort(m, [batch], tmp_path / f"b{len(batch)}")
    # The engine agrees with scikit-learn itself on the 1000-row batch.
    labels, probs = split_outputs(m, run_ours(m, [xb], tmp_path / "skl"))
    assert as_str(labels) == [str(v) for v in est.predict(xb)]
    np.testing.assert_allclose(probs, est.predict_proba(xb), rtol=1e-4, atol=2e-5)
    # Edge rows: thresholds, one ulp around them, NaN and infinities (onnxruntime only:
    # float thresholds are rounded copies of scikit-learn's doubles).
    assert_matches_ort(m, [edge_rows(m, X)], tmp_path / "edge")
    if name == "HistGradientBoosting":
        xn = xb[:200].copy()
        xn[::3, ::4] = np.nan
        labels, probs = split_outputs(m, run_ours(m, [xn], tmp_path / "nan"))
        assert as_str(labels) == [str(v) for v in est.predict(xn)]
        np.testing.assert_allclose(probs, est.predict_proba(xn), rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("data", ["friedman", "reg20", "diabetes"])
@pytest.mark.parametrize("name", list(TREE_REGRESSORS))
def test_sklearn_tree_regressor(tmp_path, name, data):
    X, y = regression(data)
    est = TREE_REGRESSORS[name]().fit(X, y)
    m = convert(est, X)
    xb = make_batch(X)
    for batch in (xb, xb[:1], xb[:0]):
        assert_matches_ort(m, [batch], tmp_path / f"b{len(batch)}", rtol=1e-5, atol=1e-4)
    out = next(iter(run_ours(m, [xb], tmp_path / "skl").values())).reshape(-1)
    scale = np.abs(y).max()
    np.testing.assert_allclose(out, est.predict(xb), rtol=1e-5, atol=1e-5 * scale)
    assert_matches_ort(m, [edge_rows(m, X)], tmp_path / "edge", rtol=1e-5, atol=1e-4)


def _to_double_thresholds(model, est_trees, float_input=False):
    """Rewrites a skl2onnx tree model to carry scikit-learn's exact double thresholds
    (nodes_values_as_tensor) and take double input, as onnxmltools does for LightGBM."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    node = next(n for n in m.graph.node if n.op_type.startswith("TreeEnsemble"))
    a = {x.name: x for x in node.attribute}
    tids = list(a["nodes_treeids"].ints)
    nids = list(a["nodes_nodeids"].ints)
    exact = np.array([est_trees[t].tree_.threshold[n] for t, n in zip(tids, nids)])
    exact[np.array(a["nodes_modes"].strings) == b"LEAF"] = 0
    node.attribute.remove(a["nodes_values"])
    node.attribute.append(helper.make_attribute(
        "nodes_values_as_tensor", numpy_helper.from_array(exact.astype(np.float64))))
    for k in ("class_weights", "target_weights"):
        if k in a:
            w = np.array(a[k].floats, dtype=np.float64)
            node.attribute.remove(a[k])
            node.attribute.append(helper.make_attribute(
                k + "_as_tensor", numpy_helper.from_array(w)))
    if not float_input:
        m.graph.input[0].type.tensor_type.elem_type = TensorProto.DOUBLE
    for op in m.opset_import:
        if op.domain == "ai.onnx.ml":
            op.version = 3
    return m


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_double_thresholds_match_sklearn_exactly_on_thresholds(tmp_path, kind):
    """With scikit-learn's double thresholds and double input, predictions on inputs lying
    exactly on (float32-representable) thresholds equal scikit-learn's; the float-threshold
    model of the same forest matches onnxruntime on those inputs (and may differ from
    scikit-learn there, as onnxruntime does)."""
    if kind == "classifier":
        X, y = classification("binary20")
        est = ensemble.RandomForestClassifier(30, max_depth=8, random_state=0).fit(X, y)
    else:
        X, y = regression("reg20")
        est = ensemble.RandomForestRegressor(30, max_depth=8, random_state=0).fit(X, y)
    m32 = convert(est, X)
    m64 = _to_double_thresholds(m32, est.estimators_)
    edges = edge_rows(m32, X)[:64]  # finite rows, float32 values
    ref = ort_run(m64, [edges.astype(np.float64)])
    ours = assert_matches_ort(m64, [edges.astype(np.float64)], tmp_path / "d")
    first = m64.graph.output[0].name
    if kind == "classifier":
        assert as_str(ours[first]) == [str(v) for v in est.predict(edges)]
        np.testing.assert_allclose(ours[m64.graph.output[1].name], est.predict_proba(edges),
                                   rtol=1e-6, atol=1e-6)
    else:
        # The regressor's output is float32 (as onnxruntime's): equal up to that rounding.
        np.testing.assert_allclose(ours[first].reshape(-1), est.predict(edges), rtol=2e-7,
                                   atol=1e-6)
    assert ref  # onnxruntime ran the double model
    assert_matches_ort(m32, [edges], tmp_path / "f")


# --------------------------------------------------------------------------------------------
# hand-built tree ensembles: random structures compared with onnxruntime

MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]


def random_forest_attrs(rng, n_trees, n_features, depth, n_targets, modes, missing,
                        weights_per_leaf=1, shuffle=True, values_pool=None):
    """Random trees in the TreeEnsembleRegressor/Classifier node-list form."""
    nodes = []  # (tree, id, feature, mode, value, true, false, missing)
    weights = []  # (tree, node, target, weight)
    for t in range(n_trees):
        counter = [0]

        def build(d):
            nid = counter[0]
            counter[0] += 1
            if d == depth or (d > 1 and rng.random() < 0.15):
                nodes.append([t, nid, 0, "LEAF", 0.0, 0, 0, 0])
                k = rng.integers(1, weights_per_leaf + 1)
                for tgt in rng.choice(n_targets, size=min(k, n_targets), replace=False):
                    weights.append((t, nid, int(tgt), float(rng.normal())))
                return nid
            f = int(rng.integers(0, n_features))
            v = float(rng.choice(values_pool)) if values_pool is not None else float(
                np.float32(rng.normal()))
            entry = [t, nid, f, str(rng.choice(modes)), v, 0, 0,
                     int(rng.random() < 0.5) if missing else 0]
            nodes.append(entry)
            entry[5] = build(d + 1)
            entry[6] = build(d + 1)
            return nid

        build(0)
    if shuffle:  # attribute order must not matter except for the first node of each tree
        order = list(range(len(nodes)))
        firsts = {}
        for i, n in enumerate(nodes):
            firsts.setdefault(n[0], i)
        rest = [i for i in order if i not in firsts.values()]
        rng.shuffle(rest)
        # keep tree runs contiguous: sort by tree, roots first
        order = sorted(list(firsts.values()) + rest,
                       key=lambda i: (nodes[i][0], i != firsts[nodes[i][0]]))
        nodes = [nodes[i] for i in order]
        rng.shuffle(weights)
    cols = list(zip(*nodes))
    attrs = dict(
        nodes_treeids=list(cols[0]), nodes_nodeids=list(cols[1]), nodes_featureids=list(cols[2]),
        nodes_modes=list(cols[3]), nodes_values=[float(v) for v in cols[4]],
        nodes_truenodeids=list(cols[5]), nodes_falsenodeids=list(cols[6]))
    if missing:
        attrs["nodes_missing_value_tracks_true"] = list(cols[7])
    w = list(zip(*weights))
    return attrs, w


def tree_model(op, attrs, n_features, outputs, in_type=TensorProto.FLOAT, ml_opset=3):
    node = helper.make_node(op, ["X"], [o[0] for o in outputs], domain="ai.onnx.ml", **attrs)
    g = helper.make_graph([node], "trees",
                          [helper.make_tensor_value_info("X", in_type, ["N", n_features])],
                          [helper.make_tensor_value_info(n, t, None) for n, t in outputs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("ai.onnx.ml", ml_opset)])
    m.ir_version = 9
    return m


def random_inputs(rng, n, f, pool=None, dtype=np.float32):
    x = rng.normal(size=(n, f)).astype(dtype)
    if pool is not None:
        mask = rng.random((n, f)) < 0.5
        x[mask] = rng.choice(pool, size=mask.sum())
    x[rng.random((n, f)) < 0.05] = np.nan
    return x


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("agg", ["SUM", "AVERAGE", "MIN", "MAX"])
@pytest.mark.parametrize("targets", [1, 3])
def test_random_regressor_trees_match_onnxruntime(tmp_path, seed, agg, targets):
    rng = np.random.default_rng(seed * 31 + targets)
    pool = np.float32(rng.normal(size=8))
    modes = MODES if seed % 2 == 0 else ["BRANCH_LEQ"]
    attrs, w = random_forest_attrs(rng, 7, 5, 5, targets, modes, missing=seed % 3 != 2,
                                   weights_per_leaf=2, values_pool=pool)
    posts = ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"] if targets > 1 else ["NONE"]
    attrs.update(n_targets=targets, aggregate_function=agg,
                 post_transform=posts[seed % len(posts)],
                 target_treeids=list(w[0]), target_nodeids=list(w[1]), target_ids=list(w[2]),
                 target_weights=list(w[3]))
    if seed % 3 == 0:
        attrs["base_values"] = [float(v) for v in rng.normal(size=targets)]
    elif seed % 3 == 1:
        attrs["base_values"] = [0.25]
    m = tree_model("TreeEnsembleRegressor", attrs, 5, [("Y", TensorProto.FLOAT)])
    x = random_inputs(rng, 300, 5, pool)
    assert_matches_ort(m, [x], tmp_path / "a")
    assert_matches_ort(m, [x[:1]], tmp_path / "b")


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("labels", ["ints", "strings"])
def test_random_classifier_trees_match_onnxruntime(tmp_path, seed, classes, labels):
    """Covers onnxruntime's binary special cases: one weight column (binary_case), positive or
    mixed weights, base_values of size 0/1/2, and every post transform."""
    rng = np.random.default_rng(seed * 17 + classes)
    pool = np.float32(rng.normal(size=8))
    one_column = classes == 2 and seed % 2 == 0
    attrs, w = random_forest_attrs(rng, 5, 4, 4, 1 if one_column else classes,
                                   MODES if seed % 3 else ["BRANCH_LEQ"], missing=seed % 2 == 1,
                                   weights_per_leaf=classes, values_pool=pool)
    weights = list(w[3])
    if seed % 4 in (0, 1):
        weights = [abs(v) / 4 for v in weights]  # all positive: the 0.5 threshold rule
    posts = ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]
    post = posts[seed % len(posts)]
    if post == "PROBIT" and one_column:
        post = "LOGISTIC"  # onnxruntime leaves the second score column uninitialised
    attrs.update(post_transform=post,
                 class_treeids=list(w[0]), class_nodeids=list(w[1]), class_ids=list(w[2]),
                 class_weights=weights)
    nb = [0, 1, 2, classes][seed % 4]
    if nb:
        attrs["base_values"] = [float(v) for v in rng.normal(size=nb)]
    if labels == "ints":
        attrs["classlabels_int64s"] = [int(v) for v in rng.choice(100, classes, replace=False)]
        ltype = TensorProto.INT64
    else:
        attrs["classlabels_strings"] = [f"c{i}" for i in range(classes)]
        ltype = TensorProto.STRING
    m = tree_model("TreeEnsembleClassifier", attrs, 4,
                   [("label", ltype), ("scores", TensorProto.FLOAT)])
    x = random_inputs(rng, 300, 4, pool)
    assert_matches_ort(m, [x], tmp_path / "a")
    assert_matches_ort(m, [x[:1]], tmp_path / "b")


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.int32])
def test_tree_classifier_other_input_types(tmp_path, dtype):
    rng = np.random.default_rng(5)
    attrs, w = random_forest_attrs(rng, 6, 4, 4, 3, MODES, missing=False, weights_per_leaf=3,
                                   values_pool=np.array([-1.5, -0.5, 0.0, 0.5, 1.0, 2.5]))
    attrs.update(class_treeids=list(w[0]), class_nodeids=list(w[1]), class_ids=list(w[2]),
                 class_weights=list(w[3]), classlabels_int64s=[4, 5, 6],
                 post_transform="SOFTMAX")
    in_type = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    m = tree_model("TreeEnsembleClassifier", attrs, 4,
                   [("label", TensorProto.INT64), ("scores", TensorProto.FLOAT)], in_type)
    x = rng.integers(-3, 4, size=(200, 4)).astype(dtype)
    assert_matches_ort(m, [x], tmp_path)


def test_tree_regressor_double_tensors_and_shared_true_children(tmp_path):
    """A LightGBM-style categorical split: a chain of BRANCH_EQ nodes whose true branches all
    point at one shared node, with double thresholds and weights (as_tensor attributes)."""
    # tree 0: 0: x0 == 1 ? 4 : 1;  1: x0 == 3 ? 4 : 2;  2: x0 == 7 ? 4 : 3 (leaf -1);
    #         4: x1 <= 0.5 ? 5 (leaf 10) : 6 (leaf 20)
    attrs = dict(
        n_targets=1,
        nodes_treeids=[0] * 7 + [1] * 3,
        nodes_nodeids=[0, 1, 2, 3, 4, 5, 6, 0, 1, 2],
        nodes_featureids=[0, 0, 0, 0, 1, 0, 0, 1, 0, 0],
        nodes_modes=["BRANCH_EQ", "BRANCH_EQ", "BRANCH_EQ", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF",
                     "BRANCH_GT", "LEAF", "LEAF"],
        nodes_truenodeids=[4, 4, 4, 0, 5, 0, 0, 1, 0, 0],
        nodes_falsenodeids=[1, 2, 3, 0, 6, 0, 0, 2, 0, 0],
        nodes_values_as_tensor=numpy_helper.from_array(
            np.array([1, 3, 7, 0, 0.1 + 0.2, 0, 0, 1e-8, 0, 0], dtype=np.float64)),
        target_treeids=[0, 0, 0, 1, 1], target_nodeids=[3, 5, 6, 1, 2], target_ids=[0] * 5,
        target_weights_as_tensor=numpy_helper.from_array(
            np.array([-1.0, 10.0, 20.0, 0.125, -0.125], dtype=np.float64)),
        base_values_as_tensor=numpy_helper.from_array(np.array([0.5], dtype=np.float64)))
    m = tree_model("TreeEnsembleRegressor", attrs, 2, [("Y", TensorProto.FLOAT)],
                   TensorProto.DOUBLE)
    x = np.array([[1, 0.3], [1, 0.1 + 0.2], [3, 0.30000000000000004 + 1e-16], [7, 1],
                  [2, 0], [np.nan, 0], [3, np.nan], [0, 1e-8], [0, 2e-8]], dtype=np.float64)
    assert_matches_ort(m, [x], tmp_path)


def test_tree_model_errors_are_clear(tmp_path):
    attrs = dict(n_targets=1, nodes_treeids=[0, 0, 0], nodes_nodeids=[0, 1, 2],
                 nodes_featureids=[5, 0, 0], nodes_modes=["BRANCH_LEQ", "LEAF", "LEAF"],
                 nodes_truenodeids=[1, 0, 0], nodes_falsenodeids=[2, 0, 0],
                 nodes_values=[0.0, 0, 0], target_treeids=[0, 0], target_nodeids=[1, 2],
                 target_ids=[0, 0], target_weights=[1.0, 2.0])
    m = tree_model("TreeEnsembleRegressor", attrs, 3, [("Y", TensorProto.FLOAT)])
    proc, _ = serveml_run(m, [np.zeros((2, 3), np.float32)], tmp_path / "a")
    assert proc.returncode == 1 and "uses feature 5 but the input has 3 features" in proc.stderr
    bad = dict(attrs, nodes_falsenodeids=[9, 0, 0])
    m = tree_model("TreeEnsembleRegressor", bad, 6, [("Y", TensorProto.FLOAT)])
    proc, _ = serveml_run(m, [np.zeros((2, 6), np.float32)], tmp_path / "b")
    assert proc.returncode == 1 and "tree 0 node 0: its false child 9 does not exist" in proc.stderr


# --------------------------------------------------------------------------------------------
# TreeEnsemble (ai.onnx.ml opset 5)


def v3_to_v5(attrs, n_targets, agg=1, post=0, dtype=np.float32):
    """Converts node-list attributes (tree ids contiguous, every tree rooted at its first node)
    to TreeEnsemble's leaf/node arrays."""
    tids, nids = attrs["nodes_treeids"], attrs["nodes_nodeids"]
    modes = attrs["nodes_modes"]
    pos = {(t, n): i for i, (t, n) in enumerate(zip(tids, nids))}
    node_index, leaf_index = {}, {}
    for i, mname in enumerate(modes):
        (leaf_index if mname == "LEAF" else node_index)[i] = len(
            leaf_index if mname == "LEAF" else node_index)
    wmap = {}
    for t, n, tgt, w in zip(attrs["target_treeids"], attrs["target_nodeids"],
                            attrs["target_ids"], attrs["target_weights"]):
        wmap.setdefault((t, n), (tgt, w))
    code = {m: k for k, m in enumerate(MODES)}
    nodes = sorted(node_index, key=node_index.get)
    leaves = sorted(leaf_index, key=leaf_index.get)

    def child(i, which):
        c = pos[(tids[i], attrs[which][i])]
        return (leaf_index[c], 1) if modes[c] == "LEAF" else (node_index[c], 0)

    roots = []
    for i in range(len(tids)):
        if i == 0 or tids[i] != tids[i - 1]:
            roots.append(node_index[i])
    t_ids, t_leaf = zip(*[child(i, "nodes_truenodeids") for i in nodes])
    f_ids, f_leaf = zip(*[child(i, "nodes_falsenodeids") for i in nodes])
    out = dict(
        n_targets=n_targets, aggregate_function=agg, post_transform=post, tree_roots=roots,
        nodes_featureids=[attrs["nodes_featureids"][i] for i in nodes],
        nodes_modes=numpy_helper.from_array(np.array([code[modes[i]] for i in nodes], np.uint8)),
        nodes_splits=numpy_helper.from_array(
            np.array([attrs["nodes_values"][i] for i in nodes], dtype)),
        nodes_truenodeids=list(t_ids), nodes_trueleafs=list(t_leaf),
        nodes_falsenodeids=list(f_ids), nodes_falseleafs=list(f_leaf),
        leaf_targetids=[wmap.get((tids[i], nids[i]), (0, 0.0))[0] for i in leaves],
        leaf_weights=numpy_helper.from_array(
            np.array([wmap.get((tids[i], nids[i]), (0, 0.0))[1] for i in leaves], dtype)))
    if "nodes_missing_value_tracks_true" in attrs:
        out["nodes_missing_value_tracks_true"] = [
            attrs["nodes_missing_value_tracks_true"][i] for i in nodes]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tree_ensemble_v5_from_sklearn_forest(tmp_path, dtype):
    X, y = regression("reg20")
    est = ensemble.RandomForestRegressor(20, max_depth=8, random_state=0).fit(X, y)
    m3 = convert(est, X)
    node = next(n for n in m3.graph.node if n.op_type == "TreeEnsembleRegressor")
    a3 = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    a3["nodes_modes"] = [s.decode() for s in a3["nodes_modes"]]
    a5 = v3_to_v5(a3, 1, agg=0 if "AVERAGE" in str(a3.get("aggregate_function")) else 1,
                  dtype=dtype)
    if dtype == np.float64:  # scikit-learn's exact thresholds
        exact = [est.estimators_[t].tree_.threshold[n]
                 for t, n, mname in zip(a3["nodes_treeids"], a3["nodes_nodeids"],
                                        a3["nodes_modes"]) if mname != "LEAF"]
        a5["nodes_splits"] = numpy_helper.from_array(np.array(exact, np.float64))
    in_type = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    m5 = tree_model("TreeEnsemble", a5, 20, [("Y", in_type)], in_type, ml_opset=5)
    xb = make_batch(X).astype(dtype)
    ours = assert_matches_ort(m5, [xb], tmp_path / "a", atol=1e-4)
    np.testing.assert_allclose(ours["Y"].reshape(-1), est.predict(xb.astype(np.float32)),
                               rtol=1e-5, atol=1e-3)
    assert_matches_ort(m5, [edge_rows(m3, X, dtype)], tmp_path / "edge", atol=1e-4)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tree_ensemble_v5_random_with_membership(tmp_path, seed, dtype):
    rng = np.random.default_rng(100 + seed)
    targets = [1, 2, 3][seed % 3]
    pool = np.array([0, 1, 2, 3, 5, 8, -1.5, 0.25], dtype=dtype)
    attrs, w = random_forest_attrs(rng, 6, 4, 5, targets, MODES, missing=seed % 2 == 0,
                                   shuffle=False, values_pool=pool)
    attrs.update(target_treeids=list(w[0]), target_nodeids=list(w[1]), target_ids=list(w[2]),
                 target_weights=list(w[3]))
    a5 = v3_to_v5(attrs, targets, agg=seed % 4, post=(seed % 4) if targets > 1 else 0,
                  dtype=dtype)
    # Turn every third branch into a set membership test.
    modes = numpy_helper.to_array(a5["nodes_modes"]).copy()
    members = []
    for i in range(len(modes)):
        if i % 3 == 0:
            modes[i] = 6
            # onnxruntime implements membership for integral values only
            members += list(rng.choice(pool[:6], size=rng.integers(1, 4), replace=False))
            members.append(np.nan)
    a5["nodes_modes"] = numpy_helper.from_array(modes.astype(np.uint8))
    a5["membership_values"] = numpy_helper.from_array(np.array(members, dtype))
    in_type = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    m = tree_model("TreeEnsemble", a5, 4, [("Y", in_type)], in_type, ml_opset=5)
    x = random_inputs(rng, 250, 4, pool, dtype)
    assert_matches_ort(m, [x], tmp_path / "a")
    assert_matches_ort(m, [x[:1]], tmp_path / "b")


# --------------------------------------------------------------------------------------------
# support vector machines


@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly", "sigmoid"])
@pytest.mark.parametrize("probability", [False, True])
@pytest.mark.parametrize("data", ["binary20", "iris", "wine_str"])
def test_sklearn_svc(tmp_path, kernel, probability, data):
    X, y = classification(data)
    X = preprocessing.StandardScaler().fit_transform(X).astype(np.float32)
    est = svm.SVC(kernel=kernel, probability=probability, random_state=0, degree=3,
                  gamma="scale", coef0=0.5 if kernel in ("poly", "sigmoid") else 0.0).fit(X, y)
    m = convert(est, X)
    xb = make_batch(X, 400)
    # Kernel values come from OpenBLAS here and MLAS in onnxruntime (other summation order);
    # summed over hundreds of support vectors that leaves ~1e-5 absolute noise on raw scores.
    ours = assert_matches_ort(m, [xb], tmp_path / "a", rtol=1e-4, atol=5e-5)
    assert_matches_ort(m, [xb[:1]], tmp_path / "b", rtol=1e-4, atol=5e-5)
    assert_matches_ort(m, [xb[:0]], tmp_path / "c")
    labels, scores = split_outputs(m, ours)
    agree = np.mean(np.array(as_str(labels)) == np.array([str(v) for v in est.predict(xb)]))
    assert agree >= 0.995, agree  # float32 scores vs libsvm's doubles near the boundary
    if probability:
        np.testing.assert_allclose(scores, est.predict_proba(xb), atol=2e-3)
    elif len(est.classes_) == 2:
        # Binary scores are [d, -d] for scikit-learn's decision function d.
        np.testing.assert_allclose(scores[:, 0], est.decision_function(xb), rtol=1e-3,
                                   atol=1e-3)


@pytest.mark.parametrize("kernel", ["linear", "rbf", "poly"])
def test_sklearn_svr(tmp_path, kernel):
    X, y = regression("friedman")
    X = preprocessing.StandardScaler().fit_transform(X).astype(np.float32)
    est = svm.SVR(kernel=kernel, C=3.0, degree=2).fit(X, y)
    m = convert(est, X)
    xb = make_batch(X, 500)
    ours = assert_matches_ort(m, [xb], tmp_path, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(next(iter(ours.values())).reshape(-1), est.predict(xb),
                               rtol=1e-4, atol=1e-3)


def test_sklearn_one_class_svm(tmp_path):
    X, _ = regression("friedman")
    est = svm.OneClassSVM(gamma=0.3, nu=0.2).fit(X)
    m = convert(est, X)
    assert_matches_ort(m, [make_batch(X, 300)], tmp_path, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("data", ["binary20", "iris", "wine_str"])
def test_sklearn_linear_svc(tmp_path, data):
    X, y = classification(data)
    X = preprocessing.StandardScaler().fit_transform(X).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = svm.LinearSVC(max_iter=5000, random_state=0).fit(X, y)
    m = convert(est, X)
    xb = make_batch(X, 300)
    ours = assert_matches_ort(m, [xb], tmp_path)
    labels, _ = split_outputs(m, ours)
    assert as_str(labels) == [str(v) for v in est.predict(xb)]


def svm_classifier_model(kernel, classes, proba, post, labels="ints"):
    """A hand-built SVMClassifier with random support vectors (covers post transforms)."""
    rng = np.random.default_rng(classes * 10 + len(post))
    f, per = 3, [2, 3, 1, 2][:classes]
    nv = sum(per)
    attrs = dict(kernel_type=kernel, kernel_params=[0.3, 0.1, 2.0],
                 vectors_per_class=per,
                 support_vectors=[float(v) for v in rng.normal(size=nv * f)],
                 coefficients=[float(v) for v in rng.normal(size=(classes - 1) * nv)],
                 rho=[float(v) for v in rng.normal(size=classes * (classes - 1) // 2)],
                 post_transform=post)
    if proba:
        k = classes * (classes - 1) // 2
        attrs.update(prob_a=[float(v) for v in -np.abs(rng.normal(size=k)) - 0.5],
                     prob_b=[float(v) for v in rng.normal(size=k) * 0.1])
    if labels == "ints":
        attrs["classlabels_ints"] = list(range(10, 10 + classes))
        lt = TensorProto.INT64
    else:
        attrs["classlabels_strings"] = [f"k{i}" for i in range(classes)]
        lt = TensorProto.STRING
    node = helper.make_node("SVMClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml",
                            **attrs)
    g = helper.make_graph([node], "svm",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", f])],
                          [helper.make_tensor_value_info("label", lt, None),
                           helper.make_tensor_value_info("scores", TensorProto.FLOAT, None)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("ai.onnx.ml", 1)])
    m.ir_version = 9
    return m


@pytest.mark.parametrize("kernel", ["LINEAR", "POLY", "RBF", "SIGMOID"])
@pytest.mark.parametrize("classes", [2, 3, 4])
@pytest.mark.parametrize("proba", [False, True])
@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX"])
def test_svm_classifier_hand_built(tmp_path, kernel, classes, proba, post):
    m = svm_classifier_model(kernel, classes, proba, post,
                             labels="strings" if classes == 3 else "ints")
    x = np.random.default_rng(3).normal(size=(50, 3)).astype(np.float32)
    assert_matches_ort(m, [x], tmp_path, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------
# preprocessing and pipelines


SCALERS = {
    "StandardScaler": preprocessing.StandardScaler,
    "MinMaxScaler": preprocessing.MinMaxScaler,
    "MaxAbsScaler": preprocessing.MaxAbsScaler,
    "RobustScaler": preprocessing.RobustScaler,
}


@pytest.mark.parametrize("scaler", list(SCALERS))
def test_sklearn_scaler_pipelines(tmp_path, scaler):
    X, y = classification("wine_str")
    pipe = make_pipeline(SCALERS[scaler](), LogisticRegression(max_iter=2000)).fit(X, y)
    m = convert(pipe, X)
    xb = make_batch(X, 300)
    ours = assert_matches_ort(m, [xb], tmp_path / "p")
    labels, probs = split_outputs(m, ours)
    assert as_str(labels) == list(pipe.predict(xb))
    np.testing.assert_allclose(probs, pipe.predict_proba(xb), rtol=1e-4, atol=1e-5)
    sc = SCALERS[scaler]().fit(X)
    ms = convert(sc, X)
    ours = assert_matches_ort(ms, [xb], tmp_path / "s")
    np.testing.assert_allclose(next(iter(ours.values())), sc.transform(xb), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent", "constant"])
def test_sklearn_simple_imputer_with_nan(tmp_path, strategy):
    X, y = regression("friedman")
    X = X.copy()
    X[::7, 2] = np.nan
    X[::5, 0] = np.nan
    imp = SimpleImputer(strategy=strategy, fill_value=-1.0).fit(X)
    m = convert(imp, X)
    xb = make_batch(np.nan_to_num(X), 200)
    xb[::3, 0] = np.nan
    xb[1::4, 2] = np.nan
    ours = assert_matches_ort(m, [xb], tmp_path)
    np.testing.assert_allclose(next(iter(ours.values())), imp.transform(xb), rtol=1e-6)
    pipe = make_pipeline(SimpleImputer(), preprocessing.StandardScaler(),
                         ensemble.RandomForestRegressor(10, max_depth=6, random_state=0))
    pipe.fit(X, y)
    mp = convert(pipe, X)
    ours = assert_matches_ort(mp, [xb], tmp_path / "pipe", atol=1e-4)
    np.testing.assert_allclose(next(iter(ours.values())).reshape(-1), pipe.predict(xb),
                               rtol=1e-4, atol=1e-4)


def test_sklearn_one_hot_encoder(tmp_path):
    rng = np.random.default_rng(0)
    xi = rng.integers(0, 5, size=(100, 3)).astype(np.int64)
    enc = preprocessing.OneHotEncoder(handle_unknown="ignore").fit(xi)
    m = convert(enc, xi)
    test = xi.copy()
    test[::9, 1] = 17  # unknown category -> zeros
    ours = assert_matches_ort(m, [test], tmp_path / "i")
    np.testing.assert_allclose(next(iter(ours.values())), enc.transform(test).toarray())
    xs = np.array([["red", "s"], ["blue", "m"], ["green", "l"], ["red", "m"]] * 5)
    enc = preprocessing.OneHotEncoder(handle_unknown="ignore").fit(xs)
    m = convert(enc, xs)
    test = xs.copy()
    test[0, 0] = "purple"
    ours = assert_matches_ort(m, [test], tmp_path / "s")
    np.testing.assert_allclose(next(iter(ours.values())), enc.transform(test).toarray())


def test_sklearn_binarizer_and_normalizer(tmp_path):
    X, _ = regression("friedman")
    for i, est in enumerate([preprocessing.Binarizer(threshold=0.5),
                             preprocessing.Normalizer(norm="l1"),
                             preprocessing.Normalizer(norm="l2"),
                             preprocessing.Normalizer(norm="max")]):
        est.fit(X)
        m = convert(est, X)
        xb = make_batch(X, 100)
        xb[0] = 0.5  # exactly on the threshold
        ours = assert_matches_ort(m, [xb], tmp_path / str(i))
        np.testing.assert_allclose(next(iter(ours.values())), est.transform(xb), rtol=1e-5,
                                   atol=1e-6)


def test_sklearn_knn_if_supported(tmp_path):
    from sklearn.neighbors import KNeighborsClassifier
    X, y = classification("iris")
    est = KNeighborsClassifier(3).fit(X, y)
    m = convert(est, X)
    xb = make_batch(X, 50)
    proc, ours = serveml_run(m, [xb], tmp_path / "probe")
    if proc.returncode != 0 and "unsupported operator" in proc.stderr:
        pytest.skip("k-NN graph needs operators outside ai.onnx.ml: " + proc.stderr.strip())
    ours = assert_matches_ort(m, [xb], tmp_path)
    labels, _ = split_outputs(m, ours)
    assert as_str(labels) == [str(v) for v in est.predict(xb)]


def _single_node(op, attrs, inputs, outputs, ml_opset, extra_inputs=()):
    node = helper.make_node(op, [i[0] for i in inputs], [o[0] for o in outputs],
                            domain="ai.onnx.ml", **attrs)
    g = helper.make_graph([node], op,
                          [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                          [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
                          list(extra_inputs))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("ai.onnx.ml", ml_opset)])
    m.ir_version = 9
    return m


S, I64, F, D = TensorProto.STRING, TensorProto.INT64, TensorProto.FLOAT, TensorProto.DOUBLE


def test_label_encoder_opset1_both_directions(tmp_path):
    attrs = dict(classes_strings=["a", "b", "c"], default_int64=-7, default_string="zz")
    m = _single_node("LabelEncoder", attrs, [("X", S, ["N"])], [("Y", I64)], 1)
    assert_matches_ort(m, [np.array(["c", "a", "q", "b"], dtype=object)], tmp_path / "s")
    m = _single_node("LabelEncoder", attrs, [("X", I64, ["N"])], [("Y", S)], 1)
    assert_matches_ort(m, [np.array([2, 0, 9, -1], dtype=np.int64)], tmp_path / "i")


@pytest.mark.parametrize("case", [
    ("keys_strings", ["x", "y"], "values_int64s", [5, 6], S, I64, {"default_int64": 42}),
    ("keys_int64s", [1, 2, 3], "values_strings", ["one", "two", "three"], I64, S, {}),
    ("keys_floats", [0.5, 1.5], "values_floats", [10.0, 20.0], F, F, {"default_float": 3.0}),
    ("keys_strings", ["x", "y"], "values_floats", [1.25, -2.0], S, F, {}),
    ("keys_floats", [0.5, -1.0], "values_strings", ["half", "minus"], F, S,
     {"default_string": "?"}),
    ("keys_int64s", [1, 5], "values_int64s", [50, 10], I64, I64, {}),
])
def test_label_encoder_opset2(tmp_path, case):
    kname, keys, vname, values, kt, vt, extra = case
    m = _single_node("LabelEncoder", {kname: keys, vname: values, **extra},
                     [("X", kt, ["N"])], [("Y", vt)], 2)
    if kt == S:
        x = np.array(["x", "y", "nope", "x"], dtype=object)
    elif kt == I64:
        x = np.array([1, 2, 3, 4, 5], dtype=np.int64)
    else:
        x = np.array([0.5, 1.5, -1.0, 7.0], dtype=np.float32)
    assert_matches_ort(m, [x], tmp_path)


def test_label_encoder_opset4_tensors_and_nan_keys(tmp_path):
    attrs = dict(keys_tensor=numpy_helper.from_array(np.array([1.5, np.nan, 2.5], np.float64)),
                 values_tensor=numpy_helper.from_array(np.array([10, 20, 30], np.int64)),
                 default_tensor=numpy_helper.from_array(np.array([-5], np.int64)))
    m = _single_node("LabelEncoder", attrs, [("X", D, ["N"])], [("Y", I64)], 4)
    x = np.array([1.5, np.nan, 2.5, 0.0], dtype=np.float64)
    assert_matches_ort(m, [x], tmp_path)


def test_category_mapper_both_directions(tmp_path):
    attrs = dict(cats_strings=["cat", "dog", "emu"], cats_int64s=[3, 1, 7], default_int64=-2,
                 default_string="none")
    m = _single_node("CategoryMapper", attrs, [("X", S, ["N", 2])], [("Y", I64)], 1)
    assert_matches_ort(m, [np.array([["dog", "x"], ["emu", "cat"]], dtype=object)],
                       tmp_path / "s")
    m = _single_node("CategoryMapper", attrs, [("X", I64, ["N"])], [("Y", S)], 1)
    assert_matches_ort(m, [np.array([7, 3, 0, 1], dtype=np.int64)], tmp_path / "i")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_feature_vectorizer_pads_and_truncates(tmp_path, dtype):
    t = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    m = _single_node("FeatureVectorizer", {"inputdimensions": [2, 3, 1]},
                     [("A", t, ["N", 3]), ("B", t, ["N", 2]), ("C", t, ["N", 1])],
                     [("Y", F)], 1)
    rng = np.random.default_rng(2)
    xs = [(rng.normal(size=(4, k)) * 10).astype(dtype) for k in (3, 2, 1)]
    assert_matches_ort(m, xs, tmp_path)


def test_imputer_int64_and_scaler_broadcast(tmp_path):
    m = _single_node("Imputer", {"imputed_value_int64s": [9], "replaced_value_int64": -1},
                     [("X", I64, ["N", 3])], [("Y", I64)], 1)
    assert_matches_ort(m, [np.array([[1, -1, 3], [-1, -1, 0]], np.int64)], tmp_path / "i")
    m = _single_node("Scaler", {"offset": [0.5], "scale": [2.0]}, [("X", D, ["N", 3])],
                     [("Y", F)], 1)
    assert_matches_ort(m, [np.random.default_rng(1).normal(size=(5, 3))], tmp_path / "s")


def test_array_feature_extractor_and_one_hot_numeric(tmp_path):
    idx = numpy_helper.from_array(np.array([2, 0], np.int64), "idx")
    m = _single_node("ArrayFeatureExtractor", {}, [("X", F, ["N", 4]), ("idx", I64, [2])],
                     [("Y", F)], 1, extra_inputs=[idx])
    m.graph.input.pop()  # idx is an initializer only
    assert_matches_ort(m, [np.arange(12, dtype=np.float32).reshape(3, 4)], tmp_path / "a")
    m = _single_node("OneHotEncoder", {"cats_int64s": [1, 3, 5], "zeros": 1},
                     [("X", D, ["N", 2])], [("Y", F)], 1)
    assert_matches_ort(m, [np.array([[1.0, 3.7], [5.0, 2.0]], np.float64)], tmp_path / "o")


# --------------------------------------------------------------------------------------------
# ONNX's own backend node cases for the ai.onnx.ml operators (expected outputs shipped by ONNX)


def _ml_backend_cases():
    root = test_engine_run.NODE_DATA
    if not root.is_dir():
        return []
    return [pytest.param(d, id=d.name) for d in sorted(root.iterdir())
            if d.name.startswith("test_ai_onnx_ml_")]


@pytest.mark.parametrize("case_dir", _ml_backend_cases())
def test_onnx_backend_ml_case(tmp_path, case_dir):
    model = onnx.load(str(case_dir / "model.onnx"))
    for ds in sorted(case_dir.glob("test_data_set_*")):
        inputs = []
        for i in range(len(list(ds.glob("input_*.pb")))):
            t = TensorProto()
            t.ParseFromString((ds / f"input_{i}.pb").read_bytes())
            inputs.append(numpy_helper.to_array(t))
        outs = run_ours(model, inputs, tmp_path / ds.name)
        for k, o in enumerate(model.graph.output):
            t = TensorProto()
            t.ParseFromString((ds / f"output_{k}.pb").read_bytes())
            expected = numpy_helper.to_array(t)
            got = outs[o.name]
            assert got.shape == expected.shape, (o.name, got.shape, expected.shape)
            if expected.dtype.kind in "OSU":
                assert as_str(got) == as_str(expected)
            else:
                assert got.dtype == expected.dtype
                np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
