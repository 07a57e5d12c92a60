"""Clinicians' corrections (table `corrections`): recorded, listed, and read for training.

Labels are checked by classifiers.corrections.validate before they reach `add_correction`;
`corrected_posts` hands `train` plain values (classifiers.corrections.training_examples).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.errors import CorrectionError
from bot.storage.classifications import latest_classification
from bot.storage.models import ClassificationRow, CorrectionRow, PostRow


@dataclass(frozen=True)
class Labels:
    """What a correction or a classification says; None: not said."""

    is_request: bool | None
    specialty: str | None
    urgency: str | None


@dataclass(frozen=True)
class CorrectedPost:
    """A corrected post, its corrections oldest first, and its latest classification."""

    post_id: int
    text: str
    lang: str | None
    deleted: bool
    corrections: list[Labels]
    latest: Labels | None


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


def add_correction(
    session: Session,
    ref: str,
    *,
    is_request: bool | None = None,
    specialty: str | None = None,
    urgency: str | None = None,
    corrected_by: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record one correction of already validated labels; returns its listing."""
    post = resolve_post(session, ref)
    if post.deleted or not (post.text or "").strip():
        raise CorrectionError(f"post {post.id} was deleted at its source: nothing to learn from")
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
    return _view(row, post, latest_classification(session, post.id))


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


def _with_posts(session: Session) -> list[tuple[CorrectionRow, PostRow]]:
    rows = session.execute(
        select(CorrectionRow, PostRow)
        .join(PostRow, PostRow.id == CorrectionRow.post_id)
        .order_by(CorrectionRow.id)
    ).all()
    return [(c, p) for c, p in rows]


def list_corrections(session: Session) -> list[dict[str, Any]]:
    """Every correction, oldest first, with the post and the classification it corrected."""
    return [_view(c, p, latest_classification(session, p.id)) for c, p in _with_posts(session)]


def corrected_posts(session: Session) -> list[CorrectedPost]:
    """Every corrected post (deleted ones too), with its corrections oldest first."""
    posts: dict[int, PostRow] = {}
    labels: dict[int, list[Labels]] = {}
    for c, p in _with_posts(session):
        posts[p.id] = p
        labels.setdefault(p.id, []).append(Labels(c.is_request, c.specialty, c.urgency))
    out = []
    for post_id, post in posts.items():
        latest = latest_classification(session, post_id)
        out.append(
            CorrectedPost(
                post_id=post_id,
                text=post.text or "",
                lang=post.lang,
                deleted=post.deleted,
                corrections=labels[post_id],
                latest=None
                if latest is None
                else Labels(latest.is_request, latest.specialty, latest.urgency),
            )
        )
    return out


def recent_corrections(session: Session, limit: int = 20) -> list[tuple[CorrectionRow, PostRow]]:
    rows = session.execute(
        select(CorrectionRow, PostRow)
        .join(PostRow, PostRow.id == CorrectionRow.post_id)
        .order_by(CorrectionRow.id.desc())
        .limit(limit)
    ).all()
    return [(c, p) for c, p in rows]
