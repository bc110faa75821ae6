"""Makes the tiny XGBoost and LightGBM models embedded in xgboost_importer_test.cc and
lightgbm_importer_test.cc, with the libraries' own predictions for a few rows (NaN, zeros,
values on split thresholds). Run with the pinned xgboost/lightgbm from requirements-dev.txt
and paste the printed C++ into the tests:

    .venv/bin/python tests/unit/importers/boosting_golden_models.py
"""
import json
import os
import tempfile

import lightgbm as lgb
import numpy as np
import xgboost as xgb

rng = np.random.default_rng(7)
X = rng.normal(size=(300, 3))
X[rng.random(X.shape) < 0.15] = np.nan
X[rng.random(X.shape) < 0.15] = 0.0
y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) > 0.2).astype(int)

ROWS = np.array([
    [0.5, -0.25, 1.0],
    [np.nan, np.nan, np.nan],
    [0.0, 0.0, 0.0],
    [-1.5, 2.0, np.nan],
    [1e-36, -1e-36, 0.75],
    [3.0, -3.0, -0.5],
], dtype=np.float64)


def cxx_doubles(v):
    return ", ".join("NAN" if np.isnan(x) else repr(float(x)) for x in np.ravel(v))


def raw_string(name, text):
    print(f'constexpr char {name}[] = R"golden({text})golden";')


def byte_array(name, data):
    body = ", ".join(str(b) for b in data)
    print(f"constexpr unsigned char {name}[] = {{{body}}};")


with tempfile.TemporaryDirectory() as d:
    # XGBoost: 3 trees of depth 2, binary:logistic.
    bst = xgb.train({"objective": "binary:logistic", "max_depth": 2, "eta": 0.5},
                    xgb.DMatrix(X, label=y), 3)
    tree = json.loads(bst.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"][0]
    rows = ROWS.astype(np.float32).copy()
    rows[5, tree["split_indices"][0]] = tree["split_conditions"][0]  # exactly on a threshold
    bst.save_model(os.path.join(d, "m.json"))
    bst.save_model(os.path.join(d, "m.ubj"))
    print(f"// xgboost {xgb.__version__}")
    raw_string("kXgbJson", open(os.path.join(d, "m.json")).read())
    byte_array("kXgbUbj", open(os.path.join(d, "m.ubj"), "rb").read())
    print(f"const std::vector<float> kXgbRows = {{{cxx_doubles(rows)}}};")
    print(f"const std::vector<float> kXgbProba = {{{cxx_doubles(bst.predict(xgb.DMatrix(rows)))}}};")

    # LightGBM: binary, 4 leaves, 3 trees, zero_as_missing (exercises the Zero missing type).
    booster = lgb.train({"objective": "binary", "num_leaves": 4, "verbose": -1,
                         "zero_as_missing": True, "min_data_in_leaf": 5},
                        lgb.Dataset(X, y), 3)
    booster.save_model(os.path.join(d, "m.txt"))
    text = open(os.path.join(d, "m.txt")).read()
    text = text[:text.index("end of trees\n") + len("end of trees\n")]  # drop the parameters
    print(f"// lightgbm {lgb.__version__}")
    raw_string("kLgbText", text)
    print(f"const std::vector<double> kLgbRows = {{{cxx_doubles(ROWS)}}};")
    print(f"const std::vector<double> kLgbProba = {{{cxx_doubles(booster.predict(ROWS))}}};")
