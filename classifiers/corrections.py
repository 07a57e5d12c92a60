"""Clinicians' corrections as training data: their labels checked, then merged per post.

A correction may give any of is_request, specialty, urgency. Giving a specialty or an urgency
implies a request. For training, the corrections of a post are merged in order (a later value
wins) and the fields nobody corrected are taken from the post's latest classification.
The database side (recording, listing, reading them) is bot.storage.corrections.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.core.errors import CorrectionError
from bot.core.labels import SPECIALTIES, URGENCIES
from classifiers.corpus import Example

__all__ = ["CorrectedPost", "CorrectionError", "Labels", "training_examples", "validate"]


class Labels(Protocol):
    """What a correction or a classification says; None: not said."""

    @property
    def is_request(self) -> bool | None: ...
    @property
    def specialty(self) -> str | None: ...
    @property
    def urgency(self) -> str | None: ...


class CorrectedPost(Protocol):
    """A corrected post: its text, its corrections oldest first, its latest classification."""

    @property
    def post_id(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def lang(self) -> str | None: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def corrections(self) -> Sequence[Labels]: ...
    @property
    def latest(self) -> Labels | None: ...


def validate(is_request: bool | None, specialty: str | None, urgency: str | None) -> bool | None:
    """The correction's is_request (True when only a specialty or urgency is given)."""
    if is_request is None and specialty is None and urgency is None:
        raise CorrectionError(
            "nothing to correct: give --specialty, --urgency, --request or --not-request"
        )
    if specialty is not None and specialty not in SPECIALTIES:
        raise CorrectionError(
            f"unknown specialty {specialty!r} (choose from: {', '.join(SPECIALTIES)})"
        )
    if urgency is not None and urgency not in URGENCIES:
        raise CorrectionError(f"unknown urgency {urgency!r} (choose from: {', '.join(URGENCIES)})")
    if is_request is False and (specialty or urgency):
        raise CorrectionError("a post that is not a request has no specialty and no urgency")
    if is_request is None and (specialty or urgency):
        return True
    return is_request


@dataclass
class _Merged:
    is_request: bool | None = None
    specialty: str | None = None
    urgency: str | None = None


def _merge(corrections: Iterable[Labels]) -> _Merged:
    m = _Merged()
    for c in corrections:
        for name in ("is_request", "specialty", "urgency"):
            value = getattr(c, name)
            if value is not None:
                setattr(m, name, value)
        if c.specialty or c.urgency:
            m.is_request = True if c.is_request is None else m.is_request
        if c.is_request is False:
            m.specialty = m.urgency = None
    return m


def training_examples(posts: Iterable[CorrectedPost]) -> list[Example]:
    """One training example per corrected post, in post order (deleted posts are skipped)."""
    out: list[Example] = []
    for post in sorted(posts, key=lambda p: p.post_id):
        if post.deleted or not (post.text or "").strip():
            continue
        m, prev = _merge(post.corrections), post.latest
        is_request = m.is_request if m.is_request is not None else bool(prev and prev.is_request)
        specialty = urgency = None
        if is_request:
            specialty = m.specialty or (prev.specialty if prev else None)
            urgency = m.urgency or (prev.urgency if prev else None)
        out.append(
            Example(
                id=f"correction:{post.post_id}",
                text=post.text,
                is_request=is_request,
                specialty=specialty,
                urgency=urgency,
                lang=post.lang,
                source="correction",
            )
        )
    return out
