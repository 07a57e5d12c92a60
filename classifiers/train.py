"""Deterministic training: corpus (+ corrections handed in as data) -> artifact + held-out metrics.

The split, the three heads, the urgent threshold's validation and the weighting of corrections
are described in classifiers/README.md, "Model".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from classifiers import metrics as M
from classifiers.augment import questionless_variants
from classifiers.corpus import (
    SPLIT_SEED,
    TEST_FRACTION,
    Example,
    corpus_digest,
    split,
    teaches,
    weight_copy,
)
from classifiers.lexicons import digest as lexicon_digest
from classifiers.lexicons import load_raw
from classifiers.model import DocTocTocClassifier, ModelState, adjust_urgency


@dataclass
class TrainSettings:
    seed: int = SPLIT_SEED
    test_fraction: float = TEST_FRACTION
    min_df: int = 2
    know_weight: float = 0.5
    bigrams: bool = False
    # First-person words are not word features: patients write "I" and "my" in every
    # sentence, while the corpus's clinicians write them twice as often in urgent posts ("my
    # patient is in front of me": 63% of its urgent English requests, 29-33% of the others),
    # so the urgency head read a patient's voice as urgency (on development data: half of the
    # Symptom2Disease descriptions called urgent, 18% without).
    text_stop_words: tuple[str, ...] = (
        "i", "me", "my", "mine", "myself", "je", "j", "m", "moi", "mon", "ma", "mes",
    )  # fmt: skip
    char_affixes: bool = False  # measured on validation: -0.2 pt accuracy, -5% throughput
    request_c: float = 10.0
    specialty_kind: str = "svc+ridge"  # "svc": linear SVM alone
    specialty_c: float = 0.3
    specialty_ridge_alpha: float = 1.0
    specialty_ridge_weight: float = 1.0
    specialty_calibration: str = "temperature"  # per-class "sigmoid" changes the argmax
    urgency_c: float = 10.0
    cv: int = 5
    # The urgent threshold pools the out-of-fold scores of this many cross-validations (fold
    # seeds 0, 1, ...): with one, the fold draw alone moved it between 0.111 and 0.146 and the
    # held-out urgent precision between 0.698 and 0.721 (seeds 0-7, December 2026).
    threshold_repeats: int = 5
    urgent_recall_target: float = 0.95
    # 0.02 until December 2026; with the pooled fold seeds, 0.0225 chosen on development sets
    # A-G (750 emergencies in patients' words: 734 -> 738 caught, 128 -> 133 false alarms).
    recall_margin: float = 0.0225
    request_threshold: float = 0.5
    rules: dict[str, float] = field(
        default_factory=lambda: {
            "now_red_boost": 1.0,
            "calm_penalty": 1.5,
            "case_red_boost": 5.0,
            # a current red-flag case leans to the specialty of its flags (model.adjust_specialty):
            # e^3 per flag word. Chosen on development sets A, C and D (boost 2 / 3 / 4: specialty
            # 0.678 / 0.716 / 0.729, 0.703 / 0.730 / 0.747, 0.688 / 0.717 / 0.742) against the
            # corpus held-out split (0.907 / 0.906 / 0.898); 2 until December 2026.
            "case_red_specialty_boost": 3.0,
        }
    )
    # Request head: each training request also joins without its question (augment.py), at
    # this weight; a non-request with P(request) at or above `request_uncertain_above` is
    # flagged uncertain and reaches triage subscribers.
    questionless_weight: float = 0.5
    # Extra training data (corpus.load_extra): curated vocabulary titles join the specialty
    # head, real labelled texts the request and specialty heads, at these weights.
    knowledge_weight: float = 0.1
    real_weight: float = 1.0
    request_uncertain_above: float = 0.2
    correction_weight: float = 5.0
    correction_rounds: int = 5


@dataclass
class TrainResult:
    classifier: DocTocTocClassifier
    state: ModelState
    metrics: dict[str, Any]
    validation: dict[str, Any]
    n_train: int
    n_test: int
    corrections: int
    correction_weight: float


def _weights(examples: list[Example]) -> np.ndarray:
    return np.asarray([e.weight for e in examples], dtype=np.float64)


def _extra_weighted(extra: list[Example], s: TrainSettings) -> list[Example]:
    out = []
    for e in extra:
        w = s.knowledge_weight if e.source == "knowledge" else s.real_weight
        if w > 0:
            out.append(
                Example(e.id, e.text, e.is_request, e.specialty, e.urgency, e.alt_specialties,
                        e.lang, e.weight * w, e.source)
            )  # fmt: skip
    return out


def _fit_heads(
    train: list[Example], s: TrainSettings, lexicons: dict[str, Any], extra: list[Example]
) -> tuple[Any, dict[str, Any]]:
    from classifiers.sk import PostVectorizer, make_pipeline

    extra = _extra_weighted(extra, s)
    texts = [e.text for e in train]
    vec = PostVectorizer(
        lexicons,
        min_df=s.min_df,
        know_weight=s.know_weight,
        bigrams=s.bigrams,
        stems=s.char_affixes,
        stop_words=s.text_stop_words,
    ).fit(texts + [e.text for e in extra if not weight_copy(e)])
    req_train = (
        train
        + [e for e in extra if teaches(e, "request")]
        + questionless_variants(train, s.questionless_weight)
    )
    req_y = ["request" if e.is_request else "other" for e in req_train]
    pipes: dict[str, Any] = {}
    pipes["request"] = make_pipeline(vec, "lr", s.request_c, "sigmoid", s.cv).fit(
        [e.text for e in req_train], req_y, model__sample_weight=_weights(req_train)
    )
    spec = [e for e in train if e.is_request and e.specialty]
    spec += [e for e in extra if e.is_request and e.specialty and teaches(e, "specialty")]
    pipes["specialty"] = make_pipeline(
        vec,
        s.specialty_kind,
        s.specialty_c,
        s.specialty_calibration,
        s.cv,
        ridge_alpha=s.specialty_ridge_alpha,
        ridge_weight=s.specialty_ridge_weight,
    ).fit([e.text for e in spec], [e.specialty for e in spec], model__sample_weight=_weights(spec))
    urg = [e for e in train if e.is_request and e.urgency]
    urg += [e for e in extra if e.is_request and e.urgency and teaches(e, "urgency")]
    pipes["urgency"] = make_pipeline(vec, "lr", s.urgency_c, "temperature", s.cv).fit(
        [e.text for e in urg], [e.urgency for e in urg], model__sample_weight=_weights(urg)
    )
    return vec, pipes


def _export(
    vec: Any, pipes: dict[str, Any], s: TrainSettings, lexicons: dict[str, Any], threshold: float
) -> ModelState:
    from classifiers.artifact import compute_version
    from classifiers.sk import export_head

    heads, weights, biases, start = [], [], [], 0
    for name in ("request", "specialty", "urgency"):
        head, w, b = export_head(pipes[name], name, start)
        heads.append(head)
        weights.append(w)
        biases.append(b)
        start = head.stop
    config = {
        "know_weight": s.know_weight,
        "stems": s.char_affixes,
        "bigrams": s.bigrams,
        "text_stop_words": list(s.text_stop_words),
        "request_threshold": s.request_threshold,
        "request_uncertain_above": s.request_uncertain_above,
        "urgent_threshold": threshold,
        "rules": dict(s.rules),
    }
    state = ModelState(
        version="",
        lexicons=lexicons,
        vocabulary=list(vec.feature_names_),
        idf=np.asarray(vec.idf_, dtype=np.float64),
        n_text=int(vec.n_text_),
        weights=np.hstack(weights).astype(np.float32),
        bias=np.concatenate(biases),
        heads=heads,
        config=config,
    )
    state.version = compute_version(state)
    return state


def tune_urgent_threshold(p_urgent: np.ndarray, is_urgent: np.ndarray, target: float) -> float:
    """Highest threshold t with recall(P >= t) >= target (t = 0.5 if that is already enough)."""
    scores = np.sort(p_urgent[is_urgent])
    if len(scores) == 0:
        return 0.5
    allowed_misses = int(math.floor((1.0 - target) * len(scores) + 1e-9))
    t = float(scores[allowed_misses])
    return min(0.5, t)


def _validate_urgency(
    train: list[Example], vec: Any, s: TrainSettings, beta: float, extra: list[Example]
) -> dict[str, Any]:
    """Validation P(urgent) on the training requests, then the threshold.

    Each request is scored by a model fitted on the other folds (5-fold cross-validation,
    repeated with `threshold_repeats` fold seeds; seed 0 gives the same out-of-fold decision
    values the temperature calibration is fitted on), turned into probabilities with the
    final head's temperature, then the cue rules apply. The threshold is tuned on the scores
    of all repeats together, so it no longer depends on one draw of the folds.
    """
    urg = [e for e in train if e.is_request and e.urgency]
    classes = sorted({e.urgency for e in urg})
    counts = [d.cue_counts for d in vec.analyze([e.text for e in urg])]
    repeats = max(1, s.threshold_repeats)
    decisions = _out_of_fold_decisions(urg, classes, vec, s, extra, range(repeats))
    proba = np.vstack([_softmax(beta * d) for d in decisions])
    adjusted = adjust_urgency(proba, counts * repeats, s.rules)
    iu = classes.index("urgent")
    gold = np.tile(np.asarray([e.urgency == "urgent" for e in urg]), repeats)
    target = min(0.999, s.urgent_recall_target + s.recall_margin)
    threshold = tune_urgent_threshold(adjusted[:, iu], gold, target)
    without_rules = tune_urgent_threshold(proba[:, iu], gold, target)
    return {
        "method": (
            f"{s.cv}-fold cross-validation on the training split ({len(urg)} requests)"
            + (f", {repeats} fold seeds pooled" if repeats > 1 else "")
        ),
        "recall_target": target,
        "tuned": _at_threshold(adjusted[:, iu], threshold, gold),
        "argmax": _recall_precision(adjusted.argmax(axis=1) == iu, gold),
        "without_rules": _at_threshold(proba[:, iu], without_rules, gold),
    }


def _out_of_fold_decisions(
    urg: list[Example],
    classes: list[str],
    vec: Any,
    s: TrainSettings,
    extra: list[Example],
    seeds: Iterable[int] = (0,),
) -> list[np.ndarray]:
    """Each request's urgency decision values from a model fitted on the other folds, one
    array per fold seed (the posts are featurised once for all seeds); the extra examples
    that teach urgency join every training fold and are never scored."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    from classifiers.sk import validation_folds

    labels = [e.urgency for e in urg]
    X = vec.transform([e.text for e in urg])
    w = _weights(urg)
    helpers = [e for e in extra if e.is_request and e.urgency and teaches(e, "urgency")]
    if helpers:
        Xh = vec.transform([e.text for e in helpers])
        yh = [e.urgency for e in helpers]
        wh = _weights(helpers)
    out: list[np.ndarray] = []
    for seed in seeds:
        folds = validation_folds(s.cv, seed)
        if not helpers:
            out.append(
                cross_val_predict(
                    LogisticRegression(C=s.urgency_c, max_iter=5000),
                    X,
                    labels,
                    cv=folds,
                    method="decision_function",
                    params={"sample_weight": w},
                )
            )
            continue
        decision = np.zeros((len(urg), len(classes)))
        for fit_idx, val_idx in folds.split(X, labels):
            model = LogisticRegression(C=s.urgency_c, max_iter=5000).fit(
                sp.vstack([X[fit_idx], Xh]),
                [labels[i] for i in fit_idx] + yh,
                sample_weight=np.concatenate([w[fit_idx], wh]),
            )
            decision[val_idx] = model.decision_function(X[val_idx])
        out.append(decision)
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _recall_precision(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    tp = int((pred & gold).sum())
    return {
        "urgent_recall": tp / max(1, int(gold.sum())),
        "urgent_precision": tp / max(1, int(pred.sum())),
    }


def _at_threshold(p: np.ndarray, t: float, gold: np.ndarray) -> dict[str, float]:
    return {"threshold": round(t, 4), **_recall_precision(p >= t, gold)}


def verify_export(clf: DocTocTocClassifier, pipes: dict[str, Any], texts: list[str]) -> float:
    """Largest difference between the pipelines' predict_proba and the NumPy runtime."""
    docs = clf.analyze(texts)
    scores = clf.scores(docs)
    worst = 0.0
    for name, pipe in pipes.items():
        ours = clf.heads[name].proba(scores)
        theirs = pipe.predict_proba(texts)
        worst = max(worst, float(np.abs(ours - theirs).max()))
    return worst


def fit_model(
    train: list[Example],
    s: TrainSettings,
    lexicons: dict[str, Any],
    extra: list[Example] | None = None,
) -> tuple[DocTocTocClassifier, dict[str, Any]]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # one BLAS thread: bit-identical results run after run
        return _fit_model(train, s, lexicons, list(extra or []))


def _fit_model(
    train: list[Example], s: TrainSettings, lexicons: dict[str, Any], extra: list[Example]
) -> tuple[DocTocTocClassifier, dict[str, Any]]:
    vec, pipes = _fit_heads(train, s, lexicons, extra)
    beta = float(
        pipes["urgency"].named_steps["model"].calibrated_classifiers_[0].calibrators[0].beta_
    )
    validation = _validate_urgency(train, vec, s, beta, _extra_weighted(extra, s))
    state = _export(vec, pipes, s, lexicons, validation["tuned"]["threshold"])
    clf = DocTocTocClassifier(state)
    diff = verify_export(clf, pipes, [e.text for e in train[:200]])
    if diff > 1e-4:
        raise RuntimeError(f"exported model differs from the scikit-learn pipelines by {diff:.2e}")
    validation["export_max_abs_diff"] = diff
    return clf, validation


def _disagrees(clf: DocTocTocClassifier, corrections: list[Example]) -> list[Example]:
    if not corrections:
        return []
    results = clf.classify([c.text for c in corrections], [c.lang or "und" for c in corrections])
    bad = []
    for c, r in zip(corrections, results, strict=True):
        wrong_request = r.is_request != c.is_request
        wrong_specialty = bool(c.is_request and c.specialty and r.specialty != c.specialty)
        wrong_urgency = bool(c.is_request and c.urgency and r.urgency != c.urgency)
        if wrong_request or wrong_specialty or wrong_urgency:
            bad.append(c)
    return bad


def train(
    corpus: list[Example],
    corrections: list[Example] | None = None,
    settings: TrainSettings | None = None,
    lexicons: dict[str, Any] | None = None,
    extra: list[Example] | None = None,
) -> TrainResult:
    s = settings or TrainSettings()
    lex = lexicons if lexicons is not None else load_raw()
    corrections = list(corrections or [])
    corrected = {c.text for c in corrections}
    train_part, test_part = split(corpus, seed=s.seed, test_fraction=s.test_fraction)
    train_part = [e for e in train_part if e.text not in corrected]
    test_part = [e for e in test_part if e.text not in corrected]
    weight = s.correction_weight
    for _ in range(max(1, s.correction_rounds)):
        for c in corrections:
            c.weight = weight
        clf, validation = fit_model(train_part + corrections, s, lex, extra)
        if not _disagrees(clf, corrections):
            break
        weight *= 4.0
    held_out = M.compute(
        test_part, clf.classify([e.text for e in test_part], [e.lang for e in test_part])
    )
    clf.state.meta = {
        "split": {
            "seed": s.seed,
            "test_fraction": s.test_fraction,
            "train": len(train_part),
            "test": len(test_part),
        },
        "corpus": {"posts": len(corpus), "digest": corpus_digest(corpus)},
        "extra": {
            "knowledge": sum(1 for e in extra or [] if e.source == "knowledge"),
            "real": sum(1 for e in extra or [] if e.source.startswith("real")),
            "digest": corpus_digest(list(extra or [])),
        },
        "corrections": {"count": len(corrections), "weight": weight if corrections else None},
        "lexicons": lexicon_digest(lex),
        "settings": asdict(s),
        "validation": validation,
        "held_out": M.headline(held_out),
    }
    return TrainResult(
        classifier=clf,
        state=clf.state,
        metrics=held_out,
        validation=validation,
        n_train=len(train_part),
        n_test=len(test_part),
        corrections=len(corrections),
        correction_weight=weight,
    )
