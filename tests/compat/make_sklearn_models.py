"""Trains a representative set of estimators with the scikit-learn of the interpreter that
runs it, saves each with pickle and joblib, and records what that scikit-learn predicts.

Usage: python make_sklearn_models.py OUT_DIR

Writes, for every case NAME:
  OUT_DIR/NAME.pkl      pickle.dump (protocol 4)
  OUT_DIR/NAME.joblib   joblib.dump (compress=3)
  OUT_DIR/NAME.npz      X (float64 rows to predict), predictions, and probabilities for
                        classifiers with predict_proba
and OUT_DIR/manifest.json: {"sklearn": version, "numpy": version, "cases": {NAME: kind}}.

Only the standard library, numpy, joblib and scikit-learn are used, so it runs in any venv
holding a scikit-learn from 1.3 on.
"""
from __future__ import annotations

import json
import pickle
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn import datasets
from sklearn.decomposition import PCA
from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor,
                              GradientBoostingClassifier, GradientBoostingRegressor,
                              HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (ElasticNet, Lasso, LinearRegression, LogisticRegression,
                                  Ridge, SGDClassifier)
from sklearn.naive_bayes import BernoulliNB, GaussianNB, MultinomialNB
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

warnings.filterwarnings("ignore")


def _split(X, y, seed=0):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(X))
    cut = int(len(X) * 0.75)
    return X[idx[:cut]], y[idx[:cut]], X[idx[cut:]]


def dataset(name):
    if name == "iris":
        X, y = datasets.load_iris(return_X_y=True)
    elif name == "iris_str":
        X, y = datasets.load_iris(return_X_y=True)
        y = np.array(["setosa", "versicolor", "virginica"])[y]
    elif name == "cancer":
        X, y = datasets.load_breast_cancer(return_X_y=True)
    elif name == "wine":
        X, y = datasets.load_wine(return_X_y=True)
        y = y + 10  # labels that are not 0..C-1
    elif name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True)
    elif name == "friedman":
        X, y = datasets.make_friedman1(n_samples=300, random_state=0)
    elif name == "counts":
        X, y = datasets.load_digits(return_X_y=True)
    else:
        raise KeyError(name)
    return _split(np.asarray(X, dtype=np.float64), y)


def perturbed(X, seed=1):
    rng = np.random.default_rng(seed)
    return X + rng.normal(scale=0.05 * (X.std(axis=0) + 1e-9), size=X.shape)


def with_nans(X, rate, seed):
    X = X.copy()
    X[np.random.default_rng(seed).random(X.shape) < rate] = np.nan
    return X


# (name, factory, dataset, NaN rate in training and test rows)
CASES = [
    ("logreg_binary", lambda: LogisticRegression(max_iter=10000), "cancer", 0),
    ("logreg_multinomial", lambda: LogisticRegression(max_iter=5000), "iris", 0),
    ("logreg_ovr_str", lambda: LogisticRegression(solver="liblinear"), "iris_str", 0),
    ("scaler_logreg", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)), "wine", 0),
    ("sgd_log", lambda: make_pipeline(StandardScaler(), SGDClassifier(loss="log_loss", random_state=0)), "iris", 0),
    ("linear_svc", lambda: make_pipeline(StandardScaler(), LinearSVC(dual=True, max_iter=5000)), "iris", 0),
    ("linreg", lambda: LinearRegression(), "diabetes", 0),
    ("ridge", lambda: Ridge(alpha=0.5), "diabetes", 0),
    ("lasso", lambda: Lasso(alpha=0.01), "friedman", 0),
    ("elasticnet", lambda: ElasticNet(alpha=0.01), "friedman", 0),
    ("minmax_ridge", lambda: make_pipeline(MinMaxScaler(), Ridge()), "friedman", 0),
    ("pca_linreg", lambda: make_pipeline(PCA(5, whiten=True), LinearRegression()), "diabetes", 0),
    ("imputer_logreg", lambda: make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                                             LogisticRegression(max_iter=5000)), "cancer", 0.1),
    ("tree_clf", lambda: DecisionTreeClassifier(random_state=0), "iris", 0),
    ("tree_clf_str", lambda: DecisionTreeClassifier(max_depth=4, random_state=0), "iris_str", 0),
    ("tree_clf_nan", lambda: DecisionTreeClassifier(random_state=0), "iris", 0.1),
    ("tree_reg", lambda: DecisionTreeRegressor(max_depth=6, random_state=0), "diabetes", 0),
    ("forest_clf", lambda: RandomForestClassifier(n_estimators=20, random_state=0), "wine", 0),
    ("forest_clf_binary", lambda: RandomForestClassifier(n_estimators=10, random_state=0), "cancer", 0),
    ("forest_reg", lambda: RandomForestRegressor(n_estimators=10, random_state=0), "friedman", 0),
    ("extra_trees_clf", lambda: ExtraTreesClassifier(n_estimators=10, random_state=0), "iris", 0),
    ("extra_trees_reg", lambda: ExtraTreesRegressor(n_estimators=10, random_state=0), "friedman", 0),
    ("gb_clf_binary", lambda: GradientBoostingClassifier(n_estimators=20, random_state=0), "cancer", 0),
    ("gb_clf_multi", lambda: GradientBoostingClassifier(n_estimators=10, random_state=0), "iris", 0),
    ("gb_reg", lambda: GradientBoostingRegressor(n_estimators=20, random_state=0), "diabetes", 0),
    ("hgb_clf", lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0), "iris", 0),
    ("hgb_clf_binary", lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0), "cancer", 0),
    ("hgb_clf_nan", lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0), "iris", 0.1),
    ("hgb_reg", lambda: HistGradientBoostingRegressor(max_iter=20, random_state=0), "friedman", 0),
    ("hgb_reg_diabetes", lambda: HistGradientBoostingRegressor(max_iter=30, random_state=0), "diabetes", 0),
    ("scaler_hgb_clf", lambda: make_pipeline(StandardScaler(), HistGradientBoostingClassifier(
        max_iter=20, random_state=0)), "cancer", 0),
    ("robust_hgb_reg", lambda: make_pipeline(RobustScaler(), HistGradientBoostingRegressor(
        max_iter=20, random_state=0)), "friedman", 0),
    ("mlp_clf", lambda: make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=300, random_state=0)), "iris", 0),
    ("mlp_reg", lambda: make_pipeline(StandardScaler(), MLPRegressor((16,), max_iter=500, random_state=0)), "friedman", 0),
    ("gaussian_nb", lambda: GaussianNB(), "wine", 0),
    ("multinomial_nb", lambda: MultinomialNB(), "counts", 0),
    ("bernoulli_nb", lambda: BernoulliNB(binarize=4.0), "counts", 0),
]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"sklearn": sklearn.__version__, "numpy": np.__version__, "cases": {}}
    for name, make, ds, nan_rate in CASES:
        Xtr, ytr, Xte = dataset(ds)
        X = np.vstack([Xte, perturbed(Xte)])
        if nan_rate:
            Xtr, X = with_nans(Xtr, nan_rate, 0), with_nans(X, 2 * nan_rate, 1)
        model = make().fit(Xtr, ytr)
        with open(out / f"{name}.pkl", "wb") as f:
            pickle.dump(model, f, protocol=4)
        joblib.dump(model, out / f"{name}.joblib", compress=3)
        arrays = {"X": X, "predictions": model.predict(X)}
        is_clf = hasattr(model, "classes_")
        if is_clf and hasattr(model, "predict_proba"):
            arrays["probabilities"] = model.predict_proba(X)
        np.savez(out / f"{name}.npz", **arrays)
        manifest["cases"][name] = "classifier" if is_clf else "regressor"
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
