"""The serving model: fitted linear heads applied with NumPy only (no scikit-learn at run time).

`train.py` fits scikit-learn pipelines and exports their fitted parameters into a `ModelState`;
`classify` reproduces `predict_proba` of those pipelines exactly (tested), then applies the
explicit urgency rules, the tuned urgent threshold and the `uncertain` flag.
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bot.core.labels import URGENCIES
from classifiers.cues import CueSummary
from classifiers.features import DocFeatures, Featurizer, tfidf_rows
from classifiers.types import Classification

DEFAULT_UNCERTAIN_BELOW = 0.45


@dataclass
class Head:
    """One linear head: columns [start, stop) of the weight matrix and its calibration."""

    name: str
    classes: list[str]
    start: int
    stop: int
    method: str  # "sigmoid" (per class, normalised; one column when binary) | "temperature"
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    beta: float = 1.0

    def proba(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, shape (n, len(classes)), as CalibratedClassifierCV does."""
        s = scores[:, self.start : self.stop]
        if self.method == "temperature":
            z = self.beta * s
            if z.shape[1] == 1:
                z = np.hstack([-z, z])
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        a, b = np.asarray(self.a), np.asarray(self.b)
        p = 1.0 / (1.0 + np.exp(a * s + b))
        if len(self.classes) == 2:
            return np.hstack([1.0 - p, p])
        total = p.sum(axis=1, keepdims=True)
        uniform = np.full_like(p, 1.0 / p.shape[1])
        return np.divide(p, total, out=uniform, where=total != 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "classes": self.classes, "start": self.start, "stop": self.stop,
            "method": self.method, "a": self.a, "b": self.b, "beta": self.beta,
        }  # fmt: skip


@dataclass
class ModelState:
    """Everything the artifact stores (plain data and arrays)."""

    version: str
    lexicons: dict[str, Any]
    vocabulary: list[str]
    idf: np.ndarray
    n_text: int
    weights: np.ndarray  # (n_features, n_columns)
    bias: np.ndarray  # (n_columns,)
    heads: list[Head]
    config: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)


def sparse_scores(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, weights: np.ndarray, bias: np.ndarray
) -> np.ndarray:
    """X @ weights + bias for CSR arrays, without SciPy."""
    n = len(indptr) - 1
    out = np.tile(bias.astype(np.float64), (n, 1))
    if len(indices) == 0:
        return out
    contrib = weights[indices] * data[:, None].astype(weights.dtype)
    starts = indptr[:-1]
    nonempty = indptr[1:] > starts
    sums = np.add.reduceat(contrib, starts[nonempty], axis=0)
    out[nonempty] += sums
    return out


def adjust_specialty(
    proba: np.ndarray, docs: list[DocFeatures], classes: list[str], boost: float
) -> np.ndarray:
    """A current case with a triage red flag leans to the specialty its flags point to
    (`specialty` of each flag in redflags.yaml, counted as `F:<id>` features): their
    log-odds rise by `boost` per flag word, at most two."""
    out = proba
    index = {c: k for k, c in enumerate(classes)}
    for i, doc in enumerate(docs):
        if not doc.cue_counts.get("U:case&red"):
            continue
        organs = [
            (index[k[2:]], v) for k, v in doc.know.items() if k[:2] == "F:" and k[2:] in index
        ]
        if not organs:
            continue
        if out is proba:
            out = proba.copy()
        row = out[i]
        for k, v in organs:
            row[k] *= math.exp(boost * min(v, 2.0))
        row /= row.sum()
    return out


def adjust_urgency(
    proba: np.ndarray, cue_counts: list[dict[str, float]], rules: dict[str, float]
) -> np.ndarray:
    """Explicit cue rules on top of the model, in log-odds of `urgent`.

    - a patient with the poster now plus a red flag or an abnormal vital sign pushes up;
    - an explicit "pas urgent" / "no rush" without such a combination pushes down;
    - a current case (nothing says it is past, resolved or for teaching) with a triage red
      flag pushes up strongly (`case_red_boost`), whatever else the post says.
    """
    up, down = float(rules.get("now_red_boost", 0.0)), float(rules.get("calm_penalty", 0.0))
    case_red = float(rules.get("case_red_boost", 0.0))
    if not up and not down and not case_red:
        return proba
    out = proba.copy()
    iu = URGENCIES.index("urgent")
    for i, counts in enumerate(cue_counts):
        shift = (up if counts.get("U:now&red") else 0.0) - (down if counts.get("U:calm") else 0.0)
        if case_red and counts.get("U:case&red"):
            shift = max(shift, 0.0) + case_red
        if not shift:
            continue
        p = min(max(out[i, iu], 1e-6), 1 - 1e-6)
        q = 1.0 / (1.0 + math.exp(-(math.log(p / (1 - p)) + shift)))
        rest = 1.0 - p
        scale = (1.0 - q) / rest if rest > 0 else 0.0
        out[i] *= scale
        out[i, iu] = q
    return out


class DocTocTocClassifier:
    """`classify(texts, langs)` -> Classification per post (the `classifiers.Classifier` protocol)."""

    def __init__(self, state: ModelState, *, uncertain_below: float = DEFAULT_UNCERTAIN_BELOW):
        self.state = state
        self.version = state.version
        self.uncertain_below = uncertain_below
        cfg = state.config
        self.featurizer = Featurizer(
            state.lexicons,
            stems=bool(cfg.get("stems", False)),
            bigrams=bool(cfg.get("bigrams", True)),
        )
        self.vocab = {key: i for i, key in enumerate(state.vocabulary)}
        self.know_weight = float(cfg.get("know_weight", 0.5))
        self.heads = {h.name: h for h in state.heads}
        self.request_threshold = float(cfg.get("request_threshold", 0.5))
        self.urgent_threshold = float(cfg.get("urgent_threshold", 0.5))
        self.rules: dict[str, float] = cfg.get("rules") or {}
        # Non-requests scored at least this likely to be requests are flagged `uncertain`
        # (they reach `triage` subscribers instead of vanishing).
        self.request_uncertain_above = float(cfg.get("request_uncertain_above", 1.0))

    # --- scoring -------------------------------------------------------------------------

    def analyze(self, texts: list[str]) -> list[DocFeatures]:
        return [self.featurizer.analyze(t or "") for t in texts]

    def scores(self, docs: list[DocFeatures]) -> np.ndarray:
        s = self.state
        indptr, indices, data = tfidf_rows(docs, self.vocab, s.idf, s.n_text, self.know_weight)
        return sparse_scores(indptr, indices, data, s.weights, s.bias)

    def probabilities(self, docs: list[DocFeatures]) -> dict[str, np.ndarray]:
        """Calibrated probabilities per head (urgency after the cue rules)."""
        scores = self.scores(docs)
        out = {name: head.proba(scores) for name, head in self.heads.items()}
        counts = [d.cue_counts for d in docs]
        out["urgency"] = adjust_urgency(out["urgency"], counts, self.rules)
        boost = float(self.rules.get("case_red_specialty_boost", 0.0))
        if boost:
            out["specialty"] = adjust_specialty(
                out["specialty"], docs, self.heads["specialty"].classes, boost
            )
        return out

    # --- the contract ------------------------------------------------------------------

    def classify(
        self, texts: list[str], langs: list[str | None] | None = None
    ) -> list[Classification]:
        if langs is not None and len(langs) != len(texts):
            raise ValueError("langs must have the same length as texts")
        if not texts:
            return []
        gc_was_enabled = gc.isenabled()
        gc.disable()  # many small objects per post, no reference cycles: skip GC passes
        try:
            return self._classify(texts, langs)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _classify(self, texts: list[str], langs: list[str | None] | None) -> list[Classification]:
        docs = self.analyze(texts)
        proba = self.probabilities(docs)
        spec_classes = self.heads["specialty"].classes
        urg_classes = self.heads["urgency"].classes
        p_req = proba["request"][:, self.heads["request"].classes.index("request")].tolist()
        ps = proba["specialty"]
        top_idx = np.argsort(-ps, axis=1, kind="stable")[:, :3]
        top_p = np.take_along_axis(ps, top_idx, axis=1).tolist()
        top_idx = top_idx.tolist()
        pu = proba["urgency"].tolist()
        iu = urg_classes.index("urgent")
        results: list[Classification] = []
        for i, doc in enumerate(docs):
            top = [
                {"id": spec_classes[j], "score": p}
                for j, p in zip(top_idx[i], top_p[i], strict=True)
            ]
            lang = langs[i] if langs is not None else None
            if not lang:
                from classifiers.lang import detect_lang

                lang = detect_lang(texts[i])
            red_case = bool(doc.cue_counts.get("U:case&red")) and not doc.know.get("S:reply")
            if not doc.text:  # no words at all (empty, or only the hashtag): nothing to ask
                p_req[i] = 0.0
            if p_req[i] < self.request_threshold and not red_case:
                results.append(
                    Classification(
                        is_request=False,
                        specialty=None,
                        specialties=top,
                        urgency=None,
                        urgency_score=0.0,
                        cues=[],
                        uncertain=p_req[i] >= self.request_uncertain_above,
                        model_version=self.version,
                        lang=lang,
                    )  # fmt: skip
                )
                continue
            urgency, score = self._urgency(pu[i], urg_classes, iu)
            results.append(
                Classification(
                    is_request=True,
                    specialty=top[0]["id"],
                    specialties=top,
                    urgency=urgency,
                    urgency_score=score,
                    cues=CueSummary(doc.cues).shown(urgency),
                    uncertain=top[0]["score"] < self.uncertain_below,
                    model_version=self.version,
                    lang=lang,
                )
            )
        return results

    def _urgency(self, pu: list[float], classes: list[str], iu: int) -> tuple[str, float]:
        if pu[iu] >= self.urgent_threshold:
            return "urgent", pu[iu]
        j = max((k for k in range(len(classes)) if k != iu), key=lambda k: pu[k])
        return classes[j], pu[j]
