"""Shared fixtures: databases (SQLite always, PostgreSQL when configured), clocks, configs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.storage.db import Database

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("DOCTOCTOC_TEST_POSTGRES_URL")


def _postgres_database() -> Iterator[Database]:
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured: set DOCTOCTOC_TEST_POSTGRES_URL (.ci/run does)")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    db = Database(f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}")
    try:
        db.upgrade()
        yield db
    finally:
        db.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request, tmp_path) -> Iterator[Database]:
    """A migrated database on each backend (PostgreSQL is skipped when not configured)."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'test.db'}")
        db.upgrade()
        yield db
        db.dispose()
    else:
        yield from _postgres_database()


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:
    """A migrated SQLite database in a temporary directory."""
    database = Database(f"sqlite:///{tmp_path / 'test.db'}")
    database.upgrade()
    yield database
    database.dispose()


class FakeClock:
    """An injected clock: tests move time instead of sleeping."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
