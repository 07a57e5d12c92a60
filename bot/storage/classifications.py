"""A post's classifications: the latest one per post, alone or for many posts at once; the
posts waiting to be classified, then routed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from bot.storage.live import top_level_conditions
from bot.storage.models import ClassificationRow, PostRow


def latest_classification(session: Session, post_id: int) -> ClassificationRow | None:
    return session.scalar(
        select(ClassificationRow)
        .where(ClassificationRow.post_id == post_id)
        .order_by(ClassificationRow.id.desc())
        .limit(1)
    )


def latest_classifications(
    session: Session, post_ids: Iterable[int], chunk: int = 500
) -> dict[int, ClassificationRow]:
    """{post id: its latest classification} for the posts that have one."""
    ids = sorted(set(post_ids))
    latest: dict[int, ClassificationRow] = {}
    for start in range(0, len(ids), chunk):
        for c in session.scalars(
            select(ClassificationRow)
            .where(ClassificationRow.post_id.in_(ids[start : start + chunk]))
            .order_by(ClassificationRow.id)
        ):
            latest[c.post_id] = c
    return latest


def unclassified_posts(session: Session, limit: int) -> list[PostRow]:
    """Live top-level posts (duplicates included) with no classification yet, oldest first."""
    return list(
        session.scalars(
            select(PostRow)
            .where(
                *top_level_conditions(),
                ~exists().where(ClassificationRow.post_id == PostRow.id),
            )
            .order_by(PostRow.id)
            .limit(limit)
        )
    )


class Labels(Protocol):
    """What a classifier says of a post (classifiers.Classification has these fields)."""

    lang: str | None
    model_version: str | None
    is_request: bool
    specialty: str | None
    specialties: list[Any]
    urgency: str | None
    urgency_score: float
    cues: list[Any]
    uncertain: bool


def add_classification(
    session: Session, post: PostRow, labels: Labels, *, model_version: str, now: datetime
) -> None:
    """Store a post's new classification (`model_version` when the labels name none); the
    language it detected fills an unknown one."""
    if post.lang is None and labels.lang:
        post.lang = labels.lang
    session.add(
        ClassificationRow(
            post_id=post.id,
            model_version=labels.model_version or model_version,
            is_request=labels.is_request,
            specialty=labels.specialty,
            specialty_scores=labels.specialties,
            urgency=labels.urgency,
            urgency_score=labels.urgency_score,
            cues=labels.cues,
            uncertain=labels.uncertain,
            created_at=now,
        )
    )


def unrouted_posts(session: Session) -> list[int]:
    """Ids of the classified posts the routing stage has not handled yet, in id order."""
    return list(
        session.scalars(
            select(PostRow.id)
            .where(
                PostRow.routed_at.is_(None),
                exists().where(ClassificationRow.post_id == PostRow.id),
            )
            .order_by(PostRow.id)
        )
    )


def mark_routed(session: Session, post_ids: Iterable[int], now: datetime) -> None:
    """Record that routing handled these posts (they are not routed again)."""
    ids = list(post_ids)
    if ids:
        for row in session.scalars(select(PostRow).where(PostRow.id.in_(ids))):
            row.routed_at = now
