"""Storing posts: insert-or-update by identity, thread links, cross-network duplicates."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from bot.post import Author, Media, Post

from .models import PostRow

DUPLICATE_WINDOW = timedelta(hours=24)
DUPLICATE_SIMILARITY = 0.85


@dataclass
class StoreResult:
    new: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    unchanged: int = 0


def now_utc() -> datetime:
    return datetime.now(UTC)


def store_posts(
    session: Session, posts: Iterable[Post], *, source: str | None = None, now: datetime | None = None
) -> StoreResult:
    """Insert new posts, apply edits and deletions to known ones. Never duplicates a post."""
    now = now or now_utc()
    result = StoreResult()
    for post in posts:
        row = session.scalar(
            select(PostRow).where(PostRow.network == post.network, PostRow.key == post.key)
        )
        if row is None:
            if post.deleted:
                result.unchanged += 1
                continue
            row = _new_row(post, source, now)
            session.add(row)
            session.flush()
            _link_thread(session, row)
            _adopt_orphan_replies(session, row)
            if row.answer_to_id is None:
                _link_duplicate(session, row)
            result.new.append(row.id)
        elif post.deleted:
            if not row.deleted:
                _mark_deleted(session, row, now)
                result.deleted.append(row.id)
            else:
                result.unchanged += 1
        elif _apply_edit(row, post):
            result.updated.append(row.id)
        else:
            result.unchanged += 1
    session.flush()
    return result


def mark_deleted(session: Session, network: str, native_id: str, now: datetime | None = None) -> bool:
    """Mark a post deleted at its source; True if it was known and not yet deleted."""
    row = session.scalar(
        select(PostRow).where(
            PostRow.network == network,
            or_(PostRow.native_id == native_id, PostRow.key == native_id),
        )
    )
    if row is None or row.deleted:
        return False
    _mark_deleted(session, row, now or now_utc())
    return True


def _mark_deleted(session: Session, row: PostRow, now: datetime) -> None:
    row.deleted = True
    row.deleted_at = now
    # A deleted post's content leaves our storage too: privacy first.
    row.text = ""
    row.media = []
    row.raw = None
    if row.answer_to_id is not None:
        _recount_answers(session, row.answer_to_id)


def _new_row(post: Post, source: str | None, now: datetime) -> PostRow:
    return PostRow(
        network=post.network,
        key=post.key or post.id,
        native_id=post.id,
        url=post.url,
        source=source,
        author_id=post.author.id,
        author_handle=post.author.handle,
        author_name=post.author.name,
        text=post.text,
        lang=post.lang,
        created_at=post.created_at,
        edited_at=post.edited_at,
        collected_at=now,
        hashtags=list(post.hashtags),
        media=[{"url": m.url, "alt": m.alt} for m in post.media],
        reply_to=post.reply_to,
        thread_root=post.thread_root,
        deleted=False,
        raw=post.raw,
        answer_count=0,
    )


def _apply_edit(row: PostRow, post: Post) -> bool:
    if row.deleted:
        return False
    changed = False
    if post.text != row.text and (post.edited_at is not None or not row.text):
        row.text = post.text
        changed = True
    if post.edited_at is not None and (row.edited_at is None or post.edited_at > row.edited_at):
        row.edited_at = post.edited_at
        changed = True
    media = [{"url": m.url, "alt": m.alt} for m in post.media]
    if changed and media != row.media:
        row.media = media
    return changed


def _find_native(session: Session, network: str, native_id: str) -> PostRow | None:
    return session.scalar(
        select(PostRow).where(
            PostRow.network == network,
            or_(PostRow.native_id == native_id, PostRow.key == native_id),
        )
    )


def _case_of(session: Session, row: PostRow) -> PostRow:
    """Follow reply links up to the case (the first post of the thread that we stored)."""
    seen = {row.id}
    while row.answer_to_id is not None and row.answer_to_id not in seen:
        parent = session.get(PostRow, row.answer_to_id)
        if parent is None:
            break
        seen.add(parent.id)
        row = parent
    return row


def _link_thread(session: Session, row: PostRow) -> None:
    for parent_id in (row.thread_root, row.reply_to):
        if not parent_id or parent_id == row.native_id:
            continue
        parent = _find_native(session, row.network, parent_id)
        if parent is not None:
            case = _case_of(session, parent)
            row.answer_to_id = case.id
            _recount_answers(session, case.id)
            return


def _adopt_orphan_replies(session: Session, row: PostRow) -> None:
    """Replies collected before the post they answer get linked once it arrives."""
    orphans = session.scalars(
        select(PostRow).where(
            PostRow.network == row.network,
            PostRow.answer_to_id.is_(None),
            PostRow.id != row.id,
            or_(PostRow.reply_to == row.native_id, PostRow.thread_root == row.native_id),
        )
    ).all()
    if not orphans:
        return
    for orphan in orphans:
        orphan.answer_to_id = row.id
        session.execute(
            update(PostRow).where(PostRow.answer_to_id == orphan.id).values(answer_to_id=row.id)
        )
    session.flush()
    _recount_answers(session, row.id)


def _recount_answers(session: Session, case_id: int) -> None:
    session.flush()
    count, first = session.execute(
        select(func.count(PostRow.id), func.min(PostRow.created_at)).where(
            PostRow.answer_to_id == case_id, PostRow.deleted.is_(False)
        )
    ).one()
    case = session.get(PostRow, case_id)
    if case is not None:
        case.answer_count = count
        case.first_answer_at = first


def fold(text: str) -> str:
    """Lower-case, accents removed, URLs/mentions/hashtags dropped, spaces collapsed."""
    text = re.sub(r"https?://\S+|@[\w.@-]+|#\w+", " ", text)
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.findall(r"\w+", text))


def same_author(a: PostRow, b: PostRow) -> bool:
    def local(handle: str) -> str:
        return re.split(r"[@.]", handle.lstrip("@"))[0].lower().replace("-", "_")

    names = fold(a.author_name or "") and fold(a.author_name or "") == fold(b.author_name or "")
    return bool(names) or (bool(local(a.author_handle)) and local(a.author_handle) == local(b.author_handle))


def _link_duplicate(session: Session, row: PostRow) -> None:
    text = fold(row.text)
    if len(text) < 20:
        return
    candidates = session.scalars(
        select(PostRow).where(
            PostRow.network != row.network,
            PostRow.duplicate_of_id.is_(None),
            PostRow.answer_to_id.is_(None),
            PostRow.deleted.is_(False),
            PostRow.created_at >= row.created_at - DUPLICATE_WINDOW,
            PostRow.created_at <= row.created_at + DUPLICATE_WINDOW,
        )
    ).all()
    for other in candidates:
        if other.id == row.id or not same_author(row, other):
            continue
        ratio = difflib.SequenceMatcher(None, text, fold(other.text)).ratio()
        if ratio >= DUPLICATE_SIMILARITY:
            row.duplicate_of_id = other.id
            return


def row_to_post(row: PostRow) -> Post:
    return Post(
        network=row.network,
        id=row.native_id,
        key=row.key,
        url=row.url,
        author=Author(id=row.author_id, handle=row.author_handle, name=row.author_name),
        text=row.text,
        lang=row.lang,
        created_at=row.created_at,
        edited_at=row.edited_at,
        hashtags=list(row.hashtags or []),
        media=[Media(url=m.get("url", ""), alt=m.get("alt", "")) for m in row.media or []],
        reply_to=row.reply_to,
        thread_root=row.thread_root,
        deleted=row.deleted,
    )
