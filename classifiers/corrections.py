"""Clinicians' corrections (table `corrections`): stored, listed, and fed to the next `train`.

A correction may give any of is_request, specialty, urgency. Giving a specialty or an urgency
implies a request. For training, the corrections of a post are merged in order (a later value
wins) and the fields nobody corrected are taken from the post's latest classification.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.errors import DocTocTocError
from bot.core.labels import SPECIALTIES, URGENCIES
from bot.storage.db import Database
from bot.storage.models import ClassificationRow, CorrectionRow, PostRow
from classifiers.corpus import Example


class CorrectionError(DocTocTocError):
    """A correction cannot be recorded (unknown post, contradictory labels...)."""


def resolve_post(session: Session, ref: str) -> PostRow:
    """A stored post by its number (as in digests) or NETWORK:ID (as in `export posts`)."""
    ref = ref.strip()
    row: PostRow | None = None
    if ref.isdigit():
        row = session.get(PostRow, int(ref))
    elif ":" in ref:
        network, native = ref.split(":", 1)
        row = session.scalar(
            select(PostRow).where(PostRow.network == network, PostRow.native_id == native)
        )
    if row is None:
        raise CorrectionError(
            f"no stored post {ref!r} (give the post's number, or NETWORK:ID as in `doctoctoc export posts`)"
        )
    return row


def validate(is_request: bool | None, specialty: str | None, urgency: str | None) -> bool | None:
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


def add_correction(
    db: Database,
    ref: str,
    *,
    is_request: bool | None = None,
    specialty: str | None = None,
    urgency: str | None = None,
    corrected_by: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record one correction; returns its listing (see `list_corrections`)."""
    is_request = validate(is_request, specialty, urgency)
    with db.session() as session:
        post = resolve_post(session, ref)
        if post.deleted or not (post.text or "").strip():
            raise CorrectionError(
                f"post {post.id} was deleted at its source: nothing to learn from"
            )
        row = CorrectionRow(
            post_id=post.id,
            is_request=is_request,
            specialty=specialty,
            urgency=urgency,
            corrected_by=corrected_by,
            created_at=now or datetime.now(UTC),
        )
        session.add(row)
        session.flush()
        return _view(row, post, _latest(session, post.id))


def _latest(session: Session, post_id: int) -> ClassificationRow | None:
    return session.scalar(
        select(ClassificationRow)
        .where(ClassificationRow.post_id == post_id)
        .order_by(ClassificationRow.id.desc())
        .limit(1)
    )


def _view(row: CorrectionRow, post: PostRow, latest: ClassificationRow | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "post": post.id,
        "ref": f"{post.network}:{post.native_id}",
        "is_request": row.is_request,
        "specialty": row.specialty,
        "urgency": row.urgency,
        "corrected_by": row.corrected_by,
        "created_at": row.created_at.isoformat(),
        "was": None
        if latest is None
        else {
            "is_request": latest.is_request,
            "specialty": latest.specialty,
            "urgency": latest.urgency,
            "model_version": latest.model_version,
        },
        "text": post.text,
    }


def list_corrections(db: Database) -> list[dict[str, Any]]:
    """Every correction, oldest first, with the post and the classification it corrected."""
    with db.session() as session:
        rows = session.execute(
            select(CorrectionRow, PostRow)
            .join(PostRow, PostRow.id == CorrectionRow.post_id)
            .order_by(CorrectionRow.id)
        ).all()
        return [_view(c, p, _latest(session, p.id)) for c, p in rows]


@dataclass
class _Merged:
    is_request: bool | None = None
    specialty: str | None = None
    urgency: str | None = None


def training_examples(db: Database) -> list[Example]:
    """One training example per corrected post (deleted posts are skipped)."""
    merged: dict[int, _Merged] = {}
    posts: dict[int, PostRow] = {}
    latest: dict[int, ClassificationRow | None] = {}
    with db.session() as session:
        for c, p in session.execute(
            select(CorrectionRow, PostRow)
            .join(PostRow, PostRow.id == CorrectionRow.post_id)
            .order_by(CorrectionRow.id)
        ).all():
            m = merged.setdefault(p.id, _Merged())
            posts[p.id] = p
            for name in ("is_request", "specialty", "urgency"):
                value = getattr(c, name)
                if value is not None:
                    setattr(m, name, value)
            if c.specialty or c.urgency:
                m.is_request = True if c.is_request is None else m.is_request
            if c.is_request is False:
                m.specialty = m.urgency = None
        for post_id in merged:
            latest[post_id] = _latest(session, post_id)
    out: list[Example] = []
    for post_id, m in sorted(merged.items()):
        post = posts[post_id]
        if post.deleted or not (post.text or "").strip():
            continue
        prev = latest[post_id]
        is_request = m.is_request if m.is_request is not None else bool(prev and prev.is_request)
        specialty = urgency = None
        if is_request:
            specialty = m.specialty or (prev.specialty if prev else None)
            urgency = m.urgency or (prev.urgency if prev else None)
        out.append(
            Example(
                id=f"correction:{post_id}",
                text=post.text,
                is_request=is_request,
                specialty=specialty,
                urgency=urgency,
                lang=post.lang,
                source="correction",
            )
        )
    return out
