"""Classifier fixtures: the shipped model, and a small model trained once per session."""

from __future__ import annotations

import pytest

from bot.core.labels import SPECIALTIES
from classifiers import load_classifier
from classifiers.corpus import Example, load_corpus


def small_corpus(per_specialty: int = 12, non_requests: int = 60) -> list[Example]:
    """A deterministic slice of the corpus: enough per class for 5-fold calibration."""
    corpus = load_corpus()
    out: list[Example] = []
    for spec in SPECIALTIES:
        out.extend([e for e in corpus if e.specialty == spec][:per_specialty])
    out.extend([e for e in corpus if not e.is_request][:non_requests])
    return out


@pytest.fixture(scope="session")
def shipped():
    return load_classifier()


@pytest.fixture(scope="session")
def small_result():
    from classifiers.train import train

    return train(small_corpus())


@pytest.fixture(scope="session")
def small_model(small_result):
    return small_result.classifier
