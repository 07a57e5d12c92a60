"""Cross-network duplicates: the same case by the same author on another network within 24 h
points at the first copy (`duplicate_of_id`), so it is routed and listed once."""

from __future__ import annotations

import difflib
import re
import unicodedata
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.storage.models import PostRow

DUPLICATE_WINDOW = timedelta(hours=24)
DUPLICATE_SIMILARITY = 0.85


def fold(text: str) -> str:
    """Lower-case, accents removed, URLs/mentions/hashtags dropped, spaces collapsed."""
    text = re.sub(r"https?://\S+|@[\w.@-]+|#\w+", " ", text)
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.findall(r"\w+", text))


def author_key(handle: str) -> str:
    """The local part of a handle: `@dr_a@m.example`, `dr-a.bsky.social` and `dr_a` -> `dr_a`."""
    return re.split(r"[@.]", handle.lstrip("@"))[0].lower().replace("-", "_")


def same_author(a: Any, b: Any) -> bool:
    names = fold(a.author_name or "") and fold(a.author_name or "") == fold(b.author_name or "")
    return bool(names) or (bool(a.author_key) and a.author_key == b.author_key)


def link_duplicates(session: Session, rows: list[PostRow]) -> None:
    """Link each new top-level row to its copy on another network, if any (the earlier copy
    is the case; the later one points at it).

    Candidates are read as light tuples (no raw payloads), only from the other networks, and
    compared by author first: storing a large page costs one query, not a scan per post.
    """
    rows = [r for r in rows if len(fold(r.text)) >= 20]
    if not rows:
        return
    by_author: dict[str, list[Any]] = {}
    for other in _candidates(session, rows):
        for token in _author_tokens(other):
            by_author.setdefault(token, []).append(other)
    if not by_author:
        return
    folded: dict[int, str] = {}
    linked: set[int] = set()
    for row in rows:
        if row.duplicate_of_id is not None or row.id in linked:
            continue
        other = _first_copy_match(row, by_author, folded, linked)
        if other is None:
            continue
        if (other.created_at, other.id) < (row.created_at, row.id):
            row.duplicate_of_id = other.id
            linked.add(row.id)
        else:
            later = session.get(PostRow, other.id)
            if later is not None and later.duplicate_of_id is None:
                later.duplicate_of_id = row.id
                linked.add(other.id)


def _candidates(session: Session, rows: list[PostRow]) -> list[Any]:
    """Live top-level posts by the rows' authors, within the window, not yet duplicates."""
    names = sorted({r.author_name for r in rows if r.author_name})
    keys = sorted({r.author_key for r in rows if r.author_key})
    start = min(r.created_at for r in rows) - DUPLICATE_WINDOW
    end = max(r.created_at for r in rows) + DUPLICATE_WINDOW
    query = select(
        PostRow.id,
        PostRow.network,
        PostRow.author_name,
        PostRow.author_key,
        PostRow.created_at,
        PostRow.duplicate_of_id,
        PostRow.text,
    ).where(
        or_(PostRow.author_name.in_(names), PostRow.author_key.in_(keys)),
        PostRow.duplicate_of_id.is_(None),
        PostRow.answer_to_id.is_(None),
        PostRow.deleted.is_(False),
        PostRow.created_at >= start,
        PostRow.created_at <= end,
    )
    networks = {r.network for r in rows}
    if len(networks) == 1:
        query = query.where(PostRow.network != next(iter(networks)))
    return list(session.execute(query).all())


def _first_copy_match(
    row: PostRow, by_author: dict[str, list[Any]], folded: dict[int, str], linked: set[int]
) -> Any | None:
    """The first candidate that is the same text by the same author on another network."""
    text = fold(row.text)
    seen: set[int] = set()
    for token in _author_tokens(row):
        for other in by_author.get(token, ()):
            if other.id in seen or other.network == row.network or other.id == row.id:
                continue
            seen.add(other.id)
            if other.duplicate_of_id == row.id or other.id in linked:
                continue
            if abs(other.created_at - row.created_at) > DUPLICATE_WINDOW:
                continue
            if not same_author(row, other):
                continue
            other_text = folded.setdefault(other.id, fold(other.text))
            matcher = difflib.SequenceMatcher(None, text, other_text)
            if (
                matcher.real_quick_ratio() < DUPLICATE_SIMILARITY
                or matcher.quick_ratio() < DUPLICATE_SIMILARITY
                or matcher.ratio() < DUPLICATE_SIMILARITY
            ):
                continue
            return other
    return None


def _author_tokens(row: Any) -> list[str]:
    tokens = []
    name = fold(row.author_name or "")
    if name:
        tokens.append("n:" + name)
    if row.author_key:
        tokens.append("k:" + row.author_key)
    return tokens
