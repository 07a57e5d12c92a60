"""Named values kept in the database (the settings table): the web secret, sync markers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.storage.models import SettingRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def get(session: Session, name: str) -> str | None:
    return session.scalar(select(SettingRow.value).where(SettingRow.name == name))


def put(session: Session, name: str, value: str) -> None:
    """Store a value (insert or update: another process may write the same name meanwhile)."""
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(SettingRow).values(name=name, value=value)
        session.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"value": value}))
        return
    row = session.get(SettingRow, name)
    if row is None:
        session.add(SettingRow(name=name, value=value))
    else:
        row.value = value


def get_or_create(session: Session, name: str, make: Callable[[], str]) -> str:
    """The stored value, else `make()` stored; another process creating it first wins."""
    row = session.get(SettingRow, name)
    if row is None:
        try:
            with session.begin_nested():  # another job or process may create it meanwhile
                row = SettingRow(name=name, value=make())
                session.add(row)
        except IntegrityError:
            row = session.get(SettingRow, name, populate_existing=True)
    assert row is not None
    return row.value
