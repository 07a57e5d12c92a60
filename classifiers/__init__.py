"""DocTocToc classifier: is it a request, which specialty, how urgent (see README.md).

Importing this package is light: NumPy, scikit-learn and skops are only imported when a model
is loaded or trained.

    from classifiers import load_classifier
    clf = load_classifier()            # the shipped artifact in classifiers/models/
    clf.uncertain_below = 0.45         # from config: classifier.uncertain_below
    [c] = clf.classify(["ECG en PJ, il est au cabinet, sus-ST ? #DocTocToc"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.labels import SPECIALTIES, URGENCIES
from classifiers.types import Classification, Classifier

if TYPE_CHECKING:
    from classifiers.model import DocTocTocClassifier

__all__ = [
    "SPECIALTIES",
    "URGENCIES",
    "Classification",
    "Classifier",
    "detect_lang",
    "load_classifier",
]


def load_classifier(
    path: str | None = None, *, uncertain_below: float | None = None
) -> DocTocTocClassifier:
    """Load a model artifact (default: the shipped one). Raises bot.core.errors.ClassifierError."""
    from classifiers.artifact import load_state
    from classifiers.model import DEFAULT_UNCERTAIN_BELOW, DocTocTocClassifier

    state = load_state(path)
    return DocTocTocClassifier(
        state,
        uncertain_below=DEFAULT_UNCERTAIN_BELOW if uncertain_below is None else uncertain_below,
    )


def detect_lang(text: str) -> str | None:
    """The post's language code ("fr", "en", ...), or None (py3langid, loaded on first use)."""
    from classifiers.lang import detect_lang as _detect

    return _detect(text)
