"""Which stored posts are live: the one definition of a top-level post and of a case.

A live top-level post is not deleted at its source and answers nothing (no reply). A live
case is also not a cross-network duplicate (the first copy stands for it). Each is given as
SQL conditions, and the case also as a test on a loaded row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func

from bot.storage.models import PostRow

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement


def top_level_conditions() -> list[ColumnElement[bool]]:
    """WHERE conditions: a live top-level post (duplicates included)."""
    return [
        PostRow.deleted.is_(False),
        PostRow.answer_to_id.is_(None),
        PostRow.reply_to.is_(None),
    ]


def case_conditions(dialect: str = "") -> list[ColumnElement[bool]]:
    """WHERE conditions: a live case.

    On SQLite `coalesce(...) = 0` rather than IS NULL, so that the planner does not walk the
    mostly-NULL answer_to_id / duplicate_of_id indexes (see cases._cases).
    """
    if dialect == "sqlite":
        return [
            PostRow.deleted.is_(False),
            func.coalesce(PostRow.answer_to_id, 0) == 0,
            PostRow.reply_to.is_(None),
            func.coalesce(PostRow.duplicate_of_id, 0) == 0,
        ]
    return [*top_level_conditions(), PostRow.duplicate_of_id.is_(None)]


def is_live_case(post: Any) -> bool:
    """The same test as `case_conditions`, on a post already loaded."""
    return (
        not post.deleted
        and post.answer_to_id is None
        and post.reply_to is None
        and post.duplicate_of_id is None
    )
