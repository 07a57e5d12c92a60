"""The subscribers table (a mirror of the configured subscribers, plus their unsubscribes)
and the blocked authors: the queries routing needs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select, text

from bot.core.config_models import SubscriberConfig
from bot.storage import settings
from bot.storage.models import BlockedAuthorRow, SubscriberRow, UtcDateTime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

SYNCED = "subscribers_synced"  # the settings row: fingerprint of the last mirrored config
_memo: dict[int, tuple[Sequence[SubscriberConfig], str, list[dict[str, Any]]]] = {}


def _serialised(subscribers: Sequence[SubscriberConfig]) -> tuple[str, list[dict[str, Any]]]:
    """(fingerprint, settings of each subscriber), computed once per loaded config."""
    memo = _memo.get(id(subscribers))
    if memo is not None and memo[0] is subscribers:
        return memo[1], memo[2]
    dumped = [s.model_dump(mode="json") for s in subscribers]
    keyed = [[s.key, s.name, d] for s, d in zip(subscribers, dumped, strict=True)]
    # repr: the values alone decide it (dicts in the model's field order), at half the cost
    # of JSON with sorted keys for 10,000 subscribers.
    fingerprint = hashlib.sha256(repr(keyed).encode()).hexdigest()
    _memo.clear()  # one config at a time: a reloaded config replaces the old one
    _memo[id(subscribers)] = (subscribers, fingerprint, dumped)
    return fingerprint, dumped


def sync(session: Session, subscribers: Sequence[SubscriberConfig], now: datetime) -> bool:
    """Mirror config subscribers into the db (unsubscribes stored there survive config edits).

    Nothing is read or written again while the configuration mirrored last is unchanged
    (same fingerprint, same number of rows in config). Returns whether it wrote."""
    fingerprint, dumped = _serialised(subscribers)
    if settings.get(session, SYNCED) == fingerprint and session.scalar(
        select(func.count()).select_from(SubscriberRow).where(SubscriberRow.in_config.is_(True))
    ) == len({s.key for s in subscribers}):
        return False
    seen = set()
    new_rows: list[dict] = []
    # One query for all stored subscribers (not one per configured subscriber).
    rows = {row.id: row for row in session.scalars(select(SubscriberRow))}
    for sub, settings_json in zip(subscribers, dumped, strict=True):
        seen.add(sub.key)
        row = rows.get(sub.key)
        if row is None:
            new_rows.append(
                {
                    "id": sub.key,
                    "name": sub.name,
                    "settings": settings_json,
                    "in_config": True,
                    "updated_at": now,
                }
            )
        elif row.settings != settings_json or not row.in_config or row.name != sub.name:
            row.name, row.settings, row.in_config, row.updated_at = (
                sub.name, settings_json, True, now,
            )  # fmt: skip
    for row in rows.values():
        if row.in_config and row.id not in seen:
            row.in_config = False
            row.updated_at = now
    if new_rows:
        # Another process may insert the same subscribers at the same moment: keep theirs.
        if session.get_bind().dialect.name == "postgresql":
            _copy_new(session, new_rows, now)
        else:
            session.connection().execute(_insert_ignoring_duplicates(session), new_rows)
    session.flush()
    settings.put(session, SYNCED, fingerprint)
    return True


def _copy_new(session: Session, rows: list[dict], now: datetime) -> None:
    """PostgreSQL: new subscribers streamed by COPY into a temporary table, then inserted
    from it in one statement, not one statement per row (a first sync of 10,000
    subscribers: 0.48-0.66 -> 0.22-0.27 s)."""
    conn = session.connection()
    conn.exec_driver_sql(
        "CREATE TEMPORARY TABLE new_subscribers (id varchar(255), name varchar(255), settings text)"
    )
    cursor = conn.connection.driver_connection.cursor()
    with cursor, cursor.copy("COPY new_subscribers (id, name, settings) FROM STDIN") as copy:
        for row in rows:
            copy.write_row((row["id"], row["name"], json.dumps(row["settings"])))
    conn.execute(
        text(
            "INSERT INTO subscribers (id, name, settings, in_config, updated_at) "
            "SELECT id, name, CAST(settings AS json), true, :now FROM new_subscribers "
            "ON CONFLICT DO NOTHING"
        ).bindparams(bindparam("now", type_=UtcDateTime())),
        {"now": now},
    )
    conn.exec_driver_sql("DROP TABLE new_subscribers")


def _insert_ignoring_duplicates(session: Session) -> Any:
    """A Core insert of the table (the ORM's bulk path costs twice as much for 10,000)."""
    table = SubscriberRow.__table__
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()
    return insert(table)


def unsubscribed(session: Session) -> set[str]:
    """Ids of the subscribers who unsubscribed (by their link or `doctoctoc unsubscribe`)."""
    return set(
        session.scalars(select(SubscriberRow.id).where(SubscriberRow.unsubscribed_at.is_not(None)))
    )


def blocked_handles(session: Session) -> set[str]:
    """Handles blocked with `doctoctoc block` (as stored)."""
    return set(session.scalars(select(BlockedAuthorRow.handle)))
