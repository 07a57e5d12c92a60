"""scikit-learn side of training (imported only by `train`): the pipelines and their export.

Each head is a Pipeline([("features", PostVectorizer), ("model", CalibratedClassifierCV)]).
The vectorizer is fitted once on the training posts and frozen, so the three heads share one
vocabulary and their weights stack into a single matrix in the artifact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from classifiers.features import DocFeatures, Featurizer, fit_vocabulary, tfidf_rows
from classifiers.model import Head


class PostVectorizer(TransformerMixin, BaseEstimator):
    """Text normalisation + lexicon/cue features + TF-IDF (word, bigram, stem) as one step."""

    def __init__(
        self,
        lexicons: dict[str, Any] | None = None,
        min_df: int = 2,
        know_weight: float = 0.5,
        stems: bool = False,
        bigrams: bool = False,
        stop_words: tuple[str, ...] = (),
    ):
        self.lexicons = lexicons
        self.min_df = min_df
        self.know_weight = know_weight
        self.stems = stems
        self.bigrams = bigrams
        self.stop_words = stop_words

    def _featurizer(self) -> Featurizer:
        if getattr(self, "featurizer_", None) is None:
            self.featurizer_ = Featurizer(
                self.lexicons or {}, stems=self.stems, bigrams=self.bigrams
            )
            self.cache_: dict[str, DocFeatures] = {}
        return self.featurizer_

    def analyze(self, texts: list[str]) -> list[DocFeatures]:
        fz = self._featurizer()
        out = []
        for text in texts:
            doc = self.cache_.get(text)
            if doc is None:
                doc = fz.analyze(text)
                self.cache_[text] = doc
            out.append(doc)
        return out

    def fit(self, texts: list[str], y: Any = None) -> PostVectorizer:
        self.featurizer_ = None
        docs = self.analyze(list(texts))
        self.vocabulary_, self.idf_, self.n_text_ = fit_vocabulary(
            docs, self.min_df, frozenset(self.stop_words)
        )
        self.feature_names_ = sorted(self.vocabulary_, key=self.vocabulary_.__getitem__)
        return self

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        docs = self.analyze(list(texts))
        indptr, indices, data = tfidf_rows(
            docs, self.vocabulary_, self.idf_, self.n_text_, self.know_weight
        )
        return sp.csr_matrix((data, indices, indptr), shape=(len(docs), len(self.vocabulary_)))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_, dtype=object)


class SvcRidgeBlend(ClassifierMixin, BaseEstimator):
    """A linear SVM and a ridge classifier fitted on the same features, blended into one
    linear model: coef_ = svm.coef_ / sd_svm + ridge_weight * ridge.coef_ / sd_ridge (same
    for the intercepts), where sd_* is the standard deviation of that model's decision values
    on its training posts (puts both on one scale). The blend is still a single weight matrix,
    so serving cost and the artifact format do not change.
    """

    def __init__(self, C: float = 0.3, alpha: float = 1.0, ridge_weight: float = 1.0):
        self.C = C
        self.alpha = alpha
        self.ridge_weight = ridge_weight

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SvcRidgeBlend:
        svm = LinearSVC(C=self.C, random_state=0, max_iter=20000)
        svm.fit(X, y, sample_weight=sample_weight)
        ridge = RidgeClassifier(alpha=self.alpha).fit(X, y, sample_weight=sample_weight)
        if list(svm.classes_) != list(ridge.classes_):  # pragma: no cover - same y
            raise RuntimeError("SVM and ridge classes differ")
        self.classes_ = svm.classes_
        coef, bias = [], []
        for model, w in ((svm, 1.0), (ridge, self.ridge_weight)):
            sd = float(np.std(model.decision_function(X))) or 1.0
            coef.append(np.atleast_2d(model.coef_) * (w / sd))
            bias.append(np.atleast_1d(model.intercept_) * (w / sd))
        self.coef_ = coef[0] + coef[1]
        self.intercept_ = bias[0] + bias[1]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        scores = np.asarray(X @ self.coef_.T) + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, X: Any) -> np.ndarray:
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[scores.argmax(axis=1)]


def make_model(
    kind: str, c: float, method: str, cv: int, ridge_alpha: float = 1.0, ridge_weight: float = 1.0
) -> CalibratedClassifierCV:
    if kind == "svc":
        base: Any = LinearSVC(C=c, random_state=0, max_iter=20000)
    elif kind == "svc+ridge":
        base = SvcRidgeBlend(C=c, alpha=ridge_alpha, ridge_weight=ridge_weight)
    else:
        base = LogisticRegression(C=c, max_iter=5000)
    return CalibratedClassifierCV(base, method=method, cv=validation_folds(cv), ensemble=False)


def validation_folds(k: int, seed: int = 0) -> StratifiedKFold:
    """The folds of calibration and threshold validation: stratified and shuffled with a fixed
    seed (the corpus files are in writer order, so unshuffled folds would put one writer's
    posts mostly in one fold). Calibration uses seed 0; the threshold pools seeds 0, 1, ..."""
    return StratifiedKFold(k, shuffle=True, random_state=seed)


def make_pipeline(
    vectorizer: PostVectorizer, kind: str, c: float, method: str, cv: int, **blend: float
) -> Pipeline:
    return Pipeline(
        [
            ("features", FrozenEstimator(vectorizer)),
            ("model", make_model(kind, c, method, cv, **blend)),
        ]
    )


def export_head(pipeline: Pipeline, name: str, start: int) -> tuple[Head, np.ndarray, np.ndarray]:
    """(Head, weights (F, k), bias (k,)) from a fitted head pipeline."""
    cal: CalibratedClassifierCV = pipeline.named_steps["model"]
    inner = cal.calibrated_classifiers_[0]
    est = inner.estimator
    coef = np.atleast_2d(est.coef_).astype(np.float64)
    bias = np.atleast_1d(est.intercept_).astype(np.float64)
    classes = [str(c) for c in cal.classes_]
    k = coef.shape[0]
    head = Head(name=name, classes=classes, start=start, stop=start + k, method=cal.method)
    if cal.method == "temperature":
        head.beta = float(inner.calibrators[0].beta_)
    else:
        head.a = [float(c.a_) for c in inner.calibrators]
        head.b = [float(c.b_) for c in inner.calibrators]
    return head, coef.T, bias
