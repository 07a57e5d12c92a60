"""Training-time variants of requests without their question (TAXONOMY: a post presenting a
case is a request with or without a question): the request head learns them at a lower weight;
they are never evaluated on. Why: classifiers/README.md, "Real text (issue 10)".
"""

from __future__ import annotations

import re

from classifiers.corpus import Example

_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?\n]+|$)")
_QUESTION_MARKS = re.compile(r"\s*[?？❓]+")
_WORD = re.compile(r"\w+")
MIN_WORDS_LEFT = 5


def without_question(text: str) -> str | None:
    """The post with its question sentences dropped (or its '?' removed); None when it
    already has no question mark or nothing clinical would be left."""
    if "?" not in text and "❓" not in text and "？" not in text:
        return None
    kept = [s for s in _SENTENCE.findall(text) if s and not any(q in s for q in "?❓？")]
    out = "".join(kept).strip()
    tags = " ".join(t for t in re.findall(r"#\w+", text) if t not in out)
    if len(_WORD.findall(out)) >= MIN_WORDS_LEFT:
        return f"{out} {tags}".strip()
    out = _QUESTION_MARKS.sub("", text).strip()
    return out if len(_WORD.findall(out)) >= MIN_WORDS_LEFT else None


def questionless_variants(train: list[Example], weight: float) -> list[Example]:
    """One question-less variant per request of `train` (when there is one)."""
    out: list[Example] = []
    for e in train:
        if not e.is_request:
            continue
        text = without_question(e.text)
        if text is None or text == e.text:
            continue
        out.append(
            Example(
                id=f"{e.id}~noq",
                text=text,
                is_request=True,
                specialty=e.specialty,
                urgency=e.urgency,
                alt_specialties=list(e.alt_specialties),
                lang=e.lang,
                weight=weight * e.weight,
                source="augmented",
            )
        )
    return out
