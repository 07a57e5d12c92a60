"""Storing posts: insert-or-update by identity, thread links; duplicates linked (duplicates.py)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from bot.core.post import Author, Media, Post
from bot.storage.duplicates import author_key, link_duplicates
from bot.storage.live import top_level_conditions
from bot.storage.models import PostRow


@dataclass
class StoreResult:
    new: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    unchanged: int = 0


def now_utc() -> datetime:
    return datetime.now(UTC)


def store_posts(
    session: Session,
    posts: Iterable[Post],
    *,
    source: str | None = None,
    now: datetime | None = None,
) -> StoreResult:
    """Insert new posts, apply edits and deletions to known ones. Never duplicates a post.

    Works on a whole page at once: one lookup for the page's identities, one for thread
    parents, one for orphan replies and one for cross-network duplicates.
    """
    now = now or now_utc()
    result = StoreResult()
    by_key: dict[tuple[str, str], Post] = {}
    for post in posts:
        if (post.network, post.key) in by_key:
            result.unchanged += 1
        by_key[(post.network, post.key or post.id)] = post
    existing = _existing(session, by_key)
    new_rows: list[PostRow] = []
    for ident, post in by_key.items():
        row = existing.get(ident)
        if row is None:
            if post.deleted:
                result.unchanged += 1
                continue
            row = _new_row(post, source, now)
            session.add(row)
            new_rows.append(row)
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
    if new_rows:
        session.flush()
        touched = _link_threads(session, new_rows) | _adopt_orphans(session, new_rows)
        for case_id in touched:
            _recount_answers(session, case_id)
        link_duplicates(session, [r for r in new_rows if r.answer_to_id is None])
        result.new = [r.id for r in new_rows]
    session.flush()
    return result


def _chunks(items: list[str], size: int = 400) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _existing(
    session: Session, idents: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], PostRow]:
    wanted: dict[str, list[str]] = {}
    for network, key in idents:
        wanted.setdefault(network, []).append(key)
    found: dict[tuple[str, str], PostRow] = {}
    for network, keys in wanted.items():
        for chunk in _chunks(keys):
            query = select(PostRow).where(PostRow.network == network, PostRow.key.in_(chunk))
            for row in session.scalars(query):
                found[(network, row.key)] = row
    return found


def _by_native(session: Session, network: str, ids: set[str]) -> dict[str, PostRow]:
    """Stored posts of a network whose native id or key is in `ids`."""
    out: dict[str, PostRow] = {}
    listed = sorted(ids)
    for column in (PostRow.native_id, PostRow.key):
        for chunk in _chunks(listed):
            for row in session.scalars(
                select(PostRow).where(PostRow.network == network, column.in_(chunk))
            ):
                out.setdefault(row.native_id, row)
                out.setdefault(row.key, row)
    return out


def mark_deleted(
    session: Session, network: str, native_id: str, now: datetime | None = None
) -> bool:
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


def mark_deleted_many(
    session: Session, network: str, native_ids: list[str], now: datetime | None = None
) -> int:
    """Mark posts deleted at their source (one lookup for the batch); returns how many were known."""
    if not native_ids:
        return 0
    rows = _by_native(session, network, set(native_ids))
    done = 0
    for row in {r.id: r for r in rows.values()}.values():
        if not row.deleted:
            _mark_deleted(session, row, now or now_utc())
            done += 1
    return done


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
        author_key=author_key(post.author.handle),
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


def _link_threads(session: Session, rows: list[PostRow]) -> set[int]:
    """Link new replies to the case they answer; returns the cases whose count changed."""
    touched: set[int] = set()
    for network in {r.network for r in rows}:
        mine = [r for r in rows if r.network == network and (r.reply_to or r.thread_root)]
        wanted = {p for r in mine for p in (r.thread_root, r.reply_to) if p}
        if not wanted:
            continue
        parents = _by_native(session, network, wanted)
        for row in mine:
            for parent_id in (row.thread_root, row.reply_to):
                parent = parents.get(parent_id or "")
                if parent is not None and parent.id != row.id:
                    case = _case_of(session, parent)
                    if case.id != row.id:
                        row.answer_to_id = case.id
                        touched.add(case.id)
                    break
    return touched


def _adopt_orphans(session: Session, rows: list[PostRow]) -> set[int]:
    """Replies collected before the post they answer get linked once it arrives."""
    touched: set[int] = set()
    session.flush()
    for network in {r.network for r in rows}:
        arrived = {r.native_id: r for r in rows if r.network == network}
        ids = sorted(arrived)
        orphans: dict[int, PostRow] = {}
        for column in (PostRow.reply_to, PostRow.thread_root):  # two indexed lookups, no OR
            for chunk in _chunks(ids):
                query = select(PostRow).where(
                    PostRow.network == network, column.in_(chunk), PostRow.answer_to_id.is_(None)
                )
                orphans.update((o.id, o) for o in session.scalars(query))
        for orphan in orphans.values():
            parent = arrived.get(orphan.thread_root or "") or arrived.get(orphan.reply_to or "")
            if parent is None or parent.id == orphan.id:
                continue
            case = _case_of(session, parent)
            if case.id == orphan.id:
                continue
            orphan.answer_to_id = case.id
            session.execute(
                update(PostRow)
                .where(PostRow.answer_to_id == orphan.id)
                .values(answer_to_id=case.id)
            )
            touched.add(case.id)
    return touched


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


def all_posts(session: Session, *, include_deleted: bool = False) -> Iterator[PostRow]:
    """Every stored post in id order, read 500 at a time (deleted ones only when asked)."""
    query = select(PostRow).order_by(PostRow.id)
    if not include_deleted:
        query = query.where(PostRow.deleted.is_(False))
    yield from session.scalars(query).yield_per(500)


def recent_top_level(session: Session, source: str, since: datetime) -> list[Post]:
    """The live top-level posts of `source` created since `since` (their replies are followed)."""
    rows = session.scalars(
        select(PostRow).where(
            PostRow.source == source, *top_level_conditions(), PostRow.created_at >= since
        )
    )
    return [row_to_post(r) for r in rows]


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
