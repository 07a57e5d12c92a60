"""A post's classifications: the latest one per post, alone or for many posts at once."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.storage.models import ClassificationRow


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
