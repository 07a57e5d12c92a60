"""Collect stage: run one source, committing each page together with its cursor."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.collectors.base import Collector, Page
from bot.core.errors import CollectorError
from bot.storage import cursors
from bot.storage.db import ConstraintError, Database
from bot.storage.posts import mark_deleted_many, now_utc, recent_top_level, store_posts

log = logging.getLogger(__name__)

# Replies and deletions are followed for cases this recent.
FOLLOW_CASES_FOR = timedelta(days=3)


@dataclass
class SourceRun:
    source: str
    new: list[int] = field(default_factory=list)
    updated: int = 0
    deleted: int = 0
    skipped: int = 0
    requests: int = 0
    error: str | None = None


def save_page(
    db: Database,
    source: str,
    page: Page,
    run: SourceRun,
    *,
    move_cursor: bool = True,
    network: str | None = None,
) -> None:
    """Store a page's posts and deletions, then its cursor, in one transaction.

    When another bot process stored the same post meanwhile (unique constraint), the
    transaction is retried once and finds the post already there.
    """
    try:
        _save_page(db, source, page, run, move_cursor, network)
    except ConstraintError:
        log.info("page of %s raced with another process; retrying", source)
        _save_page(db, source, page, run, move_cursor, network)


def _save_page(
    db: Database, source: str, page: Page, run: SourceRun, move_cursor: bool, network: str | None
) -> None:
    with db.session() as session:
        result = store_posts(session, page.posts, source=source)
        # A replay file mixes networks: its deletions are looked up on each of them.
        networks = [network] if network else ["mastodon", "bluesky", "x"]
        deleted = (
            sum(mark_deleted_many(session, net, page.deleted) for net in networks)
            if page.deleted
            else 0
        )
        if move_cursor and page.cursor is not None:
            cursors.set_cursor(session, source, page.cursor)
        reads = page.reads if page.reads is not None else len(page.posts)
        if reads:
            cursors.add_reads(session, source, reads)
    run.new += result.new
    run.updated += len(result.updated)
    run.deleted += deleted + len(result.deleted)
    run.skipped += page.skipped
    run.requests += page.requests


def _network(collector: Collector) -> str | None:
    return None if collector.network in ("", "replay") else collector.network


def recent_cases(db: Database, source: str, now: datetime) -> list:
    with db.session() as session:
        return recent_top_level(session, source, now - FOLLOW_CASES_FOR)


def run_source(
    db: Database, collector: Collector, *, now: datetime | None = None, follow: bool = True
) -> SourceRun:
    """Collect new posts, replies and deletions of one source. Never raises for source errors."""
    now = now or now_utc()
    run = SourceRun(source=collector.key)
    try:
        with db.session() as session:
            cursor = cursors.get_cursor(session, collector.key)
        for page in collector.pages(cursor):
            save_page(db, collector.key, page, run, network=_network(collector))
        if follow:
            cases = recent_cases(db, collector.key, now)
            if cases:
                for page in collector.replies(cases):
                    save_page(
                        db,
                        collector.key,
                        page,
                        run,
                        move_cursor=False,
                        network=_network(collector),
                    )
                gone = collector.recheck(cases)
                if gone:
                    gone_page = Page(deleted=gone, requests=0)
                    save_page(
                        db,
                        collector.key,
                        gone_page,
                        run,
                        move_cursor=False,
                        network=_network(collector),
                    )
    except CollectorError as exc:
        run.error = _short(str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken source must never stop the others
        log.error(
            "source %s crashed: %s",
            collector.key,
            _short(repr(exc)),
            exc_info=log.isEnabledFor(logging.DEBUG),  # the traceback with --debug
        )
        run.error = f"unexpected error: {_short(repr(exc))}"
    with db.session() as session:
        if run.error:
            log.warning("source %s failed this cycle: %s", collector.key, run.error)
            cursors.record_failure(session, collector.key, run.error, now)
        else:
            cursors.record_success(session, collector.key, now)
    return run


def _short(text: str, limit: int = 300) -> str:
    """An error as stored and logged: an exception may carry a whole page or file."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
