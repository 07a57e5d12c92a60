"""Language detection for posts whose network gave no language (py3langid, loaded lazily)."""

from __future__ import annotations

import threading
from typing import Any

from classifiers.text import strip_markup

_lock = threading.Lock()
_identifier: Any = None


def _get_identifier() -> Any:
    global _identifier
    if _identifier is None:
        with _lock:
            if _identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


def detect_lang(text: str) -> str | None:
    """ISO 639-1 code of the post's language ("fr", "en", ...), None when there are no words.

    URLs, mentions and the hashtag signs are removed first so they do not sway the guess.
    """
    words = strip_markup(text or "")
    if sum(c.isalpha() for c in words) < 3:
        return None
    lang, _ = _get_identifier().classify(words)
    return None if lang in ("und", "") else str(lang)
