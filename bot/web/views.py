"""Turning stored rows and query strings into what the pages, feeds and API show."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from bot.core.labels import SPECIALTIES, URGENCIES
from bot.core.post import NETWORKS, iso
from bot.storage.cases import SORTS, CaseFilters
from digests.render import URGENT_CONFIDENT, clean_text

FILTER_KEYS = ("specialty", "urgency", "network", "lang", "answered", "from", "to", "q", "sort")
MAX_PAGE = 5000


class BadQuery(ValueError):
    """A query string the case list cannot use (shown as a 400 with this message)."""


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise BadQuery(f"{name}: expected a date YYYY-MM-DD, got {value!r}") from exc


def parse_filters(params: Any, per_page: int = 20) -> CaseFilters:
    """CaseFilters from a query string; raises BadQuery naming the bad parameter."""
    f = CaseFilters(per_page=per_page)
    spec = (params.get("specialty") or "").strip()
    if spec and spec != "all":
        f.specialties = [s.strip() for s in spec.split(",") if s.strip()]
        unknown = [s for s in f.specialties if s not in SPECIALTIES]
        if unknown:
            raise BadQuery(
                f"specialty: unknown {', '.join(unknown)} (choose from: {', '.join(SPECIALTIES)})"
            )
    if urgency := params.get("urgency"):
        if urgency not in URGENCIES:
            raise BadQuery(f"urgency: choose from {', '.join(URGENCIES)}")
        f.urgency = urgency
    if network := params.get("network"):
        if network not in NETWORKS:
            raise BadQuery(f"network: choose from {', '.join(NETWORKS)}")
        f.network = network
    if lang := params.get("lang"):
        if not re.fullmatch(r"[a-z]{2,3}", lang):
            raise BadQuery("lang: a language code such as fr or en")
        f.lang = lang
    answered = params.get("answered")
    if answered:
        if answered not in ("yes", "no"):
            raise BadQuery("answered: yes or no")
        f.answered = answered == "yes"
    if since := params.get("from"):
        f.since = datetime.combine(_day(since, "from"), datetime.min.time(), UTC)
    if until := params.get("to"):
        f.until = datetime.combine(_day(until, "to") + timedelta(days=1), datetime.min.time(), UTC)
    f.q = (params.get("q") or "")[:200]
    sort = params.get("sort") or "newest"
    if sort not in SORTS:
        raise BadQuery(f"sort: choose from {', '.join(SORTS)}")
    f.sort = sort
    try:
        f.page = int(params.get("page") or 1)
    except ValueError as exc:
        raise BadQuery("page: a number") from exc
    if not 1 <= f.page <= MAX_PAGE:
        raise BadQuery(f"page: between 1 and {MAX_PAGE}")
    return f


def query_string(params: Any, **changes: Any) -> str:
    """The filters of `params` (plus the viewer and language keys) with `changes` applied."""
    kept = {k: params.get(k) for k in (*FILTER_KEYS, "page", "v", "hl") if params.get(k)}
    kept.update({k: v for k, v in changes.items()})
    return urlencode({k: v for k, v in kept.items() if v not in (None, "")})


def safe_url(url: str | None) -> str | None:
    """The URL when it is http(s) with a host, else None (no javascript:, data:, ...)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url.strip()


def urgency_label(c: Any) -> str:
    if c.urgency == "urgent" and c.urgency_score is not None and c.urgency_score < URGENT_CONFIDENT:
        return "urgent_unsure"
    return c.urgency or "routine"


def author_of(post: Any, hide: bool) -> str | None:
    if hide:
        return None
    if post.author_name and post.author_handle:
        return f"{post.author_name} ({post.author_handle})"
    return post.author_name or post.author_handle or None


def case_view(post: Any, c: Any, hide_authors: bool) -> dict[str, Any]:
    """A case as the templates and the JSON API show it."""
    return {
        "id": post.id,
        "network": post.network,
        "url": safe_url(post.url),
        "author": author_of(post, hide_authors),
        "text": clean_text(post.text, None),
        "lang": post.lang,
        "created_at": post.created_at,
        "answer_count": post.answer_count,
        "media": [
            {"url": safe_url(m.get("url")), "alt": clean_text(m.get("alt") or "", 500)}
            for m in post.media or []
            if isinstance(m, dict)
        ],
        "is_request": c.is_request if c else None,
        "specialty": c.specialty if c else None,
        "specialties": [
            {"id": s.get("id"), "score": round(float(s.get("score", 0.0)), 3)}
            for s in (c.specialty_scores or [])[:3]
        ]
        if c
        else [],
        "urgency": c.urgency if c else None,
        "urgency_label": urgency_label(c) if c else "routine",
        "urgency_score": round(float(c.urgency_score), 3) if c else None,
        "cues": [clean_text(str(x), 120) for x in (c.cues or [])] if c else [],
        "uncertain": bool(c.uncertain) if c else False,
    }


def answer_view(post: Any, hide_authors: bool) -> dict[str, Any]:
    return {
        "id": post.id,
        "author": author_of(post, hide_authors),
        "text": clean_text(post.text, None),
        "created_at": post.created_at,
        "url": safe_url(post.url),
    }


def to_json(view: dict[str, Any]) -> dict[str, Any]:
    """A view with its datetimes as ISO 8601 strings."""
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in view.items()}
