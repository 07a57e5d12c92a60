"""Training is deterministic; the saved artifact loads and predicts exactly like the model."""

from __future__ import annotations

import json

import numpy as np

from classifiers import load_classifier
from classifiers.artifact import metadata_path, read_plain, save
from classifiers.corpus import load_corpus, split
from classifiers.train import train, tune_urgent_threshold

from .conftest import small_corpus

TEXTS = [
    "Lésion pigmentée du dos qui a changé, asymétrique, 8 mm, photo jointe. Dermato rapide ? #DocTocToc",
    "Night shift, 58M, crushing chest pain 40 min, BP 145/90, HR 48. ECG attached, inferior STE? #DocTocToc",
    "Merci à tous pour vos réponses hier soir, patient stenté, tout va bien 🙏 #DocTocToc",
    "Posologie de l'amoxicilline chez un enfant de 14 kg pour une otite ? je la revois demain #doctoctoc",
]


def test_training_is_deterministic(small_result):
    again = train(small_corpus())
    a, b = small_result.state, again.state
    assert a.version == b.version
    assert a.vocabulary == b.vocabulary
    assert np.array_equal(a.weights, b.weights) and np.array_equal(a.bias, b.bias)
    assert [h.to_dict() for h in a.heads] == [h.to_dict() for h in b.heads]
    assert small_result.classifier.classify(TEXTS) == again.classifier.classify(TEXTS)


def test_export_matches_the_scikit_learn_pipelines(small_result):
    assert small_result.validation["export_max_abs_diff"] < 1e-5


def test_saved_model_loads_and_predicts_the_same(small_result, tmp_path):
    path = save(small_result.state, tmp_path / "m.skops")
    loaded = load_classifier(str(path))
    assert loaded.version == small_result.state.version
    assert loaded.classify(TEXTS, ["fr", "en", "fr", "fr"]) == small_result.classifier.classify(
        TEXTS, ["fr", "en", "fr", "fr"]
    )
    meta = json.loads(metadata_path(path).read_text())
    assert meta["version"] == loaded.version and meta["split"]["seed"] == 20261128
    assert set(meta["held_out"]) == {
        "specialty top-1 accuracy",
        "urgent recall",
        "urgent precision",
        "request F1",
    }


def test_artifact_is_plain_skops_data(small_result, tmp_path):
    """Standard tooling reads it with no trusted types; our fast reader gives the same data."""
    import skops.io as sio

    path = save(small_result.state, tmp_path / "m.skops")
    assert sio.get_untrusted_types(file=path) == []
    ref = sio.load(path, trusted=[])
    ours = read_plain(path)
    assert set(ref) == set(ours)
    for key, value in ref.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, ours[key])
        else:
            assert value == ours[key]


def test_split_is_stratified_fixed_and_disjoint():
    corpus = load_corpus()
    train_a, test_a = split(corpus)
    train_b, test_b = split(list(reversed(corpus)))
    assert {e.id for e in test_a} == {e.id for e in test_b}
    assert not {e.id for e in train_a} & {e.id for e in test_a}
    assert abs(len(test_a) / len(corpus) - 0.2) < 0.02
    per_spec = {}
    for e in test_a:
        per_spec[e.specialty] = per_spec.get(e.specialty, 0) + 1
    assert min(v for k, v in per_spec.items() if k) >= 15


def test_urgent_threshold_reaches_the_recall_target():
    p = np.array([0.9, 0.8, 0.3, 0.05, 0.6, 0.1, 0.02])
    gold = np.array([True, True, True, True, False, False, False])
    t = tune_urgent_threshold(p, gold, 0.75)
    assert ((p >= t) & gold).sum() / gold.sum() >= 0.75
    assert t == 0.3
    assert tune_urgent_threshold(p, gold, 1.0) == 0.05


def test_shipped_metadata_matches_the_shipped_model(shipped):
    meta = json.loads(metadata_path("classifiers/models/doctoctoc-classifier.skops").read_text())
    assert meta["version"] == shipped.version


def test_training_is_deterministic_across_processes():
    """Same version whatever the hash seed (set/dict orders) or BLAS threading."""
    import os
    import subprocess
    import sys

    code = (
        "from tests.classifiers.conftest import small_corpus\n"
        "from classifiers.train import train\n"
        "print(train(small_corpus()).state.version)\n"
    )
    versions = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(versions) == 1 and next(iter(versions)).startswith("lexlin-")


def test_validation_folds_mix_posts_from_the_whole_corpus():
    # the corpus files are in writer order: a fold must not be one writer's block of posts
    from classifiers.sk import validation_folds

    labels = ["urgent", "soon", "routine"] * 100  # 300 posts in file order
    for _, held in validation_folds(5).split(np.zeros(len(labels)), labels):
        assert held.min() < 60 and held.max() >= 240  # drawn from the first and last fifth

    def held_out() -> list[list[int]]:
        return [held.tolist() for _, held in validation_folds(5).split(np.zeros(300), labels)]

    assert held_out() == held_out()  # seeded: the same folds at every training


def test_urgent_threshold_pools_several_draws_of_the_folds():
    """The threshold is tuned on the out-of-fold scores of several fold seeds together, so a
    retrain does not move it with the luck of one draw of the folds."""
    from classifiers import train as T
    from classifiers.lexicons import load_raw
    from classifiers.sk import validation_folds

    labels = ["urgent", "soon", "routine"] * 100

    def held_out(seed: int) -> list[list[int]]:
        folds = validation_folds(5, seed).split(np.zeros(300), labels)
        return [held.tolist() for _, held in folds]

    assert held_out(0) != held_out(1)

    # with a recall target of 0.999 every urgent post of every draw must reach the threshold:
    # pooling three draws gives the lowest of their thresholds, below the first draw's alone
    posts = small_corpus()
    one, three = (T.TrainSettings(threshold_repeats=n, recall_margin=0.049) for n in (1, 3))
    vec, pipes = T._fit_heads(posts, one, load_raw(), [])
    beta = float(
        pipes["urgency"].named_steps["model"].calibrated_classifiers_[0].calibrators[0].beta_
    )
    single = T._validate_urgency(posts, vec, one, beta, [])
    pooled = T._validate_urgency(posts, vec, three, beta, [])
    assert pooled["tuned"]["threshold"] < single["tuned"]["threshold"]
    assert pooled["tuned"]["urgent_recall"] == 1.0
    assert "3 fold seeds pooled" in pooled["method"]
    assert "pooled" not in single["method"]
