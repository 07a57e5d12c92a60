"""Shared fixtures: databases (SQLite always, PostgreSQL when configured), clocks, configs,
and the `doctoctoc` command run in this process or in a new one."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.storage.db import Database
from tests.pg import scratch_schema

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("DOCTOCTOC_TEST_POSTGRES_URL")


def _postgres_database() -> Iterator[Database]:
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured: set DOCTOCTOC_TEST_POSTGRES_URL (.ci/run does)")
    with scratch_schema(POSTGRES_URL) as url:
        db = Database(url)
        try:
            db.upgrade()
            yield db
        finally:
            db.dispose()


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


@dataclass
class CliResult:
    """What `doctoctoc ARGS` printed and its exit code (the fields of subprocess.CompletedProcess)."""

    returncode: int
    stdout: str
    stderr: str


@contextmanager
def cli_state_restored() -> Iterator[None]:
    """Undo what a `doctoctoc` command run in this process leaves behind: the log handlers and
    level it set up, the secrets it registered, a changed working directory."""
    from bot.core import logs

    root = logging.getLogger()
    saved_logging = (list(root.handlers), root.level)
    saved_secrets = set(logs._SECRETS)
    saved_cwd = os.getcwd()
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        root.handlers[:], root.level = saved_logging
        logs._SECRETS.clear()
        logs._SECRETS.update(saved_secrets)


@pytest.fixture
def cli_state() -> Iterator[None]:
    """For tests that invoke the click group with CliRunner themselves."""
    with cli_state_restored():
        yield


def doctoctoc(
    *args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> CliResult:
    """`doctoctoc ARGS` run in this process: the console entry point `bot.cli.main` with
    click's CliRunner streams, so exit codes and messages are the command's own, without
    a Python start-up."""
    from bot.cli import main

    with cli_state_restored(), CliRunner().isolation(input=stdin, env=env) as (out, err, _):
        os.chdir(cwd)
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc.code)
        sys.stdout.flush()
        sys.stderr.flush()
        return CliResult(code, out.getvalue().decode(), err.getvalue().decode())


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 1  # sys.exit("message") exits 1


def doctoctoc_process(
    *args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m bot.cli ARGS` in a new process, for what only a process shows: the
    interpreter's own traceback, logging set up at start, environment variables."""
    full_env = {k: v for k, v in os.environ.items() if k != "DOCTOCTOC_CONFIG"} | (env or {})
    # This checkout's code, also when the installed package points at another checkout.
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )
