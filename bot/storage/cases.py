"""Queries of the web case library: cases with their latest labels, answers, search, tokens.

A case is a live top-level request: not deleted at its source, not a reply, not a
cross-network duplicate, whose latest classification says it is a request.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, func, literal_column, or_, select, text, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from bot.storage.live import case_conditions
from bot.storage.models import (
    ClassificationRow,
    PostRow,
    SubscriberRow,
    UsedTokenRow,
)

SORTS = ("newest", "urgent")
URGENCY_RANK = {"urgent": 0, "soon": 1, "routine": 2}


@dataclass
class CaseFilters:
    specialties: list[str] = field(default_factory=list)  # empty: all
    urgency: str | None = None
    network: str | None = None
    lang: str | None = None
    answered: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str = ""
    sort: str = "newest"
    page: int = 1
    per_page: int = 20


@dataclass
class CasePage:
    cases: list[tuple[PostRow, ClassificationRow]]
    page: int
    has_next: bool


def _cases(session: Session, *columns: Any) -> tuple[Any, Any]:
    """(SELECT of live cases joined to their latest classification, the classification entity).

    Each backend gets the form its planner walks newest first through ix_posts_created_at,
    stopping after one page (measured at 100,000 cases in benchmarks/bench_web.py):
    PostgreSQL a LATERAL "latest classification" (estimated at one row per post), SQLite a
    correlated max(id), with coalesce(...) = 0 rather than IS NULL so that it does not walk the
    mostly-NULL answer_to_id / duplicate_of_id indexes and sort every case.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        latest = (
            select(ClassificationRow)
            .where(ClassificationRow.post_id == PostRow.id)
            .order_by(ClassificationRow.id.desc())
            .limit(1)
            .lateral("latest")
        )
        c: Any = aliased(ClassificationRow, latest)
        query = select(*(columns or (PostRow, c))).select_from(PostRow).join(latest, true())
    else:
        c = ClassificationRow
        c2 = aliased(ClassificationRow)
        latest_id = (
            select(func.max(c2.id))
            .where(c2.post_id == PostRow.id)
            .correlate(PostRow)
            .scalar_subquery()
        )
        query = (
            select(*(columns or (PostRow, c)))
            .select_from(PostRow)
            .join(c, and_(c.post_id == PostRow.id, c.id == latest_id))
        )
    return query.where(*case_conditions(dialect), c.is_request.is_(True)), c


def fts_terms(query: str) -> list[str]:
    """The words of a search box, for a safe full-text query (no operator reaches the engine)."""
    return re.findall(r"\w+", query or "")[:12]


def _search(session: Session, words: list[str]) -> ColumnElement[bool]:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        match = " ".join('"' + w.replace('"', '""') + '"' for w in words)
        ids = text("SELECT rowid FROM posts_fts WHERE posts_fts MATCH :q").bindparams(q=match)
        return PostRow.id.in_(ids.columns(rowid=Integer))
    if dialect == "postgresql":
        simple = literal_column("'simple'::regconfig")
        vector = func.to_tsvector(simple, PostRow.text)
        return vector.op("@@")(func.plainto_tsquery(simple, " ".join(words)))
    return or_(*[PostRow.text.ilike(f"%{w}%") for w in words])


def list_cases(session: Session, f: CaseFilters) -> CasePage:
    """One page of cases (one row more is read to know whether a next page exists)."""
    query, c = _cases(session)
    if f.specialties:
        query = query.where(c.specialty.in_(f.specialties))
    if f.urgency:
        query = query.where(c.urgency == f.urgency)
    if f.network:
        query = query.where(PostRow.network == f.network)
    if f.lang:
        query = query.where(or_(PostRow.lang == f.lang, PostRow.lang.like(f"{f.lang}-%")))
    if f.answered is True:
        query = query.where(PostRow.answer_count > 0)
    elif f.answered is False:
        query = query.where(PostRow.answer_count == 0)
    if f.since:
        query = query.where(PostRow.created_at >= f.since)
    if f.until:
        query = query.where(PostRow.created_at < f.until)
    words = fts_terms(f.q)
    if words:
        query = query.where(_search(session, words))
    page = max(1, f.page)
    offset, wanted = (page - 1) * f.per_page, f.per_page + 1
    if f.sort == "urgent" and not f.urgency:
        rows = _urgent_first(session, query, c, offset, wanted)
    else:
        rows = _newest(session, query, offset, wanted)
    return CasePage(cases=rows[: f.per_page], page=page, has_next=len(rows) > f.per_page)


def _newest(session: Session, query: Any, offset: int, limit: int) -> list[Any]:
    ordered = query.order_by(PostRow.created_at.desc(), PostRow.id.desc())
    return [(p, c) for p, c in session.execute(ordered.offset(offset).limit(limit)).all()]


def _urgent_first(session: Session, query: Any, c: Any, offset: int, limit: int) -> list[Any]:
    """Urgent, then soon, then the rest, each newest first: one index walk per section
    (a single ORDER BY urgency would sort every case); a section is counted only when a deep
    page starts beyond it."""
    u = c.urgency
    sections = [u == "urgent", u == "soon", or_(u.is_(None), u.not_in(["urgent", "soon"]))]
    rows: list[Any] = []
    for section in sections:
        part = query.where(section)
        got = _newest(session, part, offset, limit - len(rows))
        if not got and offset:
            size = session.scalar(select(func.count()).select_from(part.subquery())) or 0
            offset = max(0, offset - size)
            continue
        rows += got
        offset = 0
        if len(rows) >= limit:
            break
    return rows


def get_post(session: Session, post_id: int) -> PostRow | None:
    return session.get(PostRow, post_id)


def answers(session: Session, case_id: int, limit: int = 200) -> list[PostRow]:
    """The live replies to a case, oldest first."""
    return list(
        session.scalars(
            select(PostRow)
            .where(PostRow.answer_to_id == case_id, PostRow.deleted.is_(False))
            .order_by(PostRow.created_at, PostRow.id)
            .limit(limit)
        )
    )


def cases_after(session: Session, after_id: int, limit: int = 5000) -> list[tuple[int, str]]:
    """(id, text) of live cases with an id above `after_id`, in id order (similar-case index)."""
    query, _ = _cases(session, PostRow.id, PostRow.text)
    rows = session.execute(
        query.where(PostRow.id > after_id).order_by(PostRow.id).limit(limit)
    ).all()
    return [(i, t or "") for i, t in rows]


def cases_by_ids(
    session: Session, ids: Iterable[int]
) -> dict[int, tuple[PostRow, ClassificationRow]]:
    """The live cases among `ids` (deleted or relabelled posts are left out)."""
    wanted = list(ids)
    if not wanted:
        return {}
    query, _ = _cases(session)
    rows = session.execute(query.where(PostRow.id.in_(wanted))).all()
    return {p.id: (p, c) for p, c in rows}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def claim_token(session: Session, purpose: str, token: str, now: datetime) -> bool:
    """Mark a single-use token used; False when it already was (unique key, so exactly once)."""
    try:
        with session.begin_nested():
            session.add(UsedTokenRow(token_hash=token_hash(token), purpose=purpose, used_at=now))
    except IntegrityError:
        return False
    return True


def token_used(session: Session, token: str) -> bool:
    return session.get(UsedTokenRow, token_hash(token)) is not None


def release_token(session: Session, token: str) -> None:
    row = session.get(UsedTokenRow, token_hash(token))
    if row is not None:
        session.delete(row)


def subscriber(session: Session, subscriber_id: str) -> SubscriberRow | None:
    return session.get(SubscriberRow, subscriber_id)


def unsubscribe(session: Session, subscriber_id: str, now: datetime) -> SubscriberRow | None:
    """Record an unsubscribe (idempotent); None for an unknown subscriber."""
    row = session.get(SubscriberRow, subscriber_id)
    if row is not None and row.unsubscribed_at is None:
        row.unsubscribed_at = now
    return row
