"""Faults found by the outside audit of issue 12, each reproduced here: config, collectors,
storage and the command line."""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot import cli as cli_module
from bot.collect import run_source
from bot.core.config import load_config
from bot.core.errors import ConfigError
from bot.scheduler import BotRunner
from bot.storage.db import Database
from bot.storage.models import DeliveryRow, PostRow
from digests.tokens import verify
from tests.fakes.smtp_server import SmtpServer, free_port

from .conftest import ROOT, doctoctoc, doctoctoc_process
from .test_config import GOOD, errors_of, write
from .test_pipeline import post, replay, replay_file


def demo_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    text = (ROOT / "config.yaml").read_text()
    text = text.replace("bot/demo/sample.jsonl", str(ROOT / "bot/demo/sample.jsonl"))
    path.write_text(text + extra, encoding="utf-8")
    return path


# --- fault 2: one bad byte in a replay file ----------------------------------------------


def test_invalid_utf8_line_in_replay_file_is_skipped_and_the_rest_stored(tmp_path, db, caplog):
    path = replay_file(tmp_path, [post(1), post(2)])
    with path.open("ab") as fh:
        fh.write(b'{"network": "mastodon", "id": "3", "text": "caf\xe9 ' + b"x" * 5000 + b'"}\n')
        fh.write((json.dumps(post(4)) + "\n").encode())
        for i in range(5, 200):  # a big file: its content must not end up in the log
            fh.write((json.dumps(post(i)) + "\n").encode())
    with caplog.at_level(logging.WARNING):
        run = run_source(db, replay(path))
    assert run.error is None and run.skipped == 1
    with db.session() as s:
        ids = {int(r) for r in s.scalars(select(PostRow.native_id))}
    assert ids == {1, 2} | set(range(4, 200))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert ":3:" in logged  # the bad line's number
    assert max(len(r.getMessage()) for r in caplog.records) < 500


# --- fault 3: check-config loads what the config points at -------------------------------


def test_check_config_loads_the_model_and_replay_files(tmp_path):
    path = demo_config(tmp_path, "classifier:\n  model: /nonexistent/model.skops\n")
    result = doctoctoc("check-config", str(path), cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert "classifier.model" in result.stdout and "/nonexistent/model.skops" in result.stdout

    path = demo_config(tmp_path)
    path.write_text(path.read_text().replace(str(ROOT / "bot/demo/sample.jsonl"), "missing.jsonl"))
    result = doctoctoc("check-config", str(path), cwd=tmp_path)
    assert result.returncode == 1 and "sources[0].url" in result.stdout, result.stdout


def test_reload_keeps_the_last_good_config_when_the_model_does_not_load(tmp_path, db):
    path = demo_config(tmp_path)
    loaded = load_config(path, env={})
    said: list[str] = []
    runner = BotRunner(loaded, db, echo=said.append)
    path.write_text(path.read_text() + "classifier:\n  model: /nonexistent/model.skops\n")
    runner._config_mtime = -1
    runner.reload_config()
    assert runner.loaded is loaded
    assert any("config not reloaded" in line and "model.skops" in line for line in said), said
    assert "config reloaded" not in said


# --- fault 4: YAML alias bomb ------------------------------------------------------------


def _bomb(levels: int, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_yaml_alias_expansion_past_a_limit_is_refused(tmp_path):
    # 9^6 = 531,441 values from a few lines (the audit's 484-byte file made 9^9).
    [message] = errors_of(tmp_path, "version: 1\nhashtags: [DocTocToc]\n" + _bomb(7))
    assert "alias" in message


def test_billion_laughs_is_refused_at_once(tmp_path):
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, _bomb(10)), env={})
    assert time.perf_counter() - started < 5
    assert "alias" in info.value.messages[0]


def test_small_aliases_still_work(tmp_path):
    text = GOOD.replace("subscribers:", "x-defaults: &d\n  deliver_by: [outbox]\nsubscribers:")
    with pytest.raises(ConfigError) as info:  # the key itself is unknown, the alias is fine
        load_config(write(tmp_path, text), env={"MASTO_TOKEN": "x", "SMTP_PASSWORD": "y"})
    assert "unknown key" in info.value.messages[0]


# --- fault 7: the database is private ----------------------------------------------------


def test_sqlite_database_is_created_private_under_umask_022(tmp_path):
    old = os.umask(0o022)
    try:
        database = Database(f"sqlite:///{tmp_path / 'data' / 'bot.db'}")
        database.upgrade()
        database.dispose()
    finally:
        os.umask(old)
    created = [p for p in (tmp_path / "data").iterdir()]
    assert created
    for p in created:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


# --- fault 9: the smaller ones -------------------------------------------------------------


def test_non_ascii_unsubscribe_token_is_rejected_not_a_traceback():
    assert verify(b"secret", "unsubscribe", "é.é") is None
    assert verify(b"secret", "unsubscribe", "ZGVybQ.ñ") is None


def test_yaml_syntax_error_shows_the_unclosed_bracket_and_where_the_parser_gave_up(tmp_path):
    text = "version: 1\nhashtags: [DocTocToc\n" + "\n" * 10 + "subscribers:\n  - name: a\n"
    [message] = errors_of(tmp_path, text)
    assert message.split(":")[1] == "2", message  # the line of the unclosed bracket
    assert "line 13" in message or "line 14" in message, message


def test_duplicate_subscriber_id_points_at_id(tmp_path):
    text = GOOD + "  - name: Dr B\n    id: a\n  - name: Dr C\n    id: a\n"
    [message] = errors_of(tmp_path, text, env={"MASTO_TOKEN": "x", "SMTP_PASSWORD": "y"})
    lines = text.splitlines()
    second_id = len(lines) - lines[::-1].index("    id: a")
    assert "subscribers[2].id:" in message and message.split(":")[1] == str(second_id), message


def test_x_source_rejects_bluesky_and_mastodon_keys(tmp_path):
    text = GOOD.replace(
        "  - network: mastodon\n    url: https://medecins.example\n    access_token: ${MASTO_TOKEN}\n",
        "  - network: x\n    bearer_token: ${X}\n    stream_url: wss://x\n    appview_url: https://a.example\n    stream: true\n",
    )
    messages = errors_of(tmp_path, text, env={"X": "t", "SMTP_PASSWORD": "y"})
    joined = "\n".join(messages)
    for key in ("stream_url", "appview_url", "stream"):
        assert f"sources[0].{key}: unknown key for a x source" in joined, joined


def test_status_shows_retry_reason_and_next_try(tmp_path):
    path = demo_config(tmp_path)
    database = Database(f"sqlite:///{tmp_path / 'doctoctoc.db'}")
    database.upgrade()
    result = doctoctoc("run", "--once", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with database.session() as s:
        row = s.scalars(select(DeliveryRow).limit(1)).one().message  # holds the send status
        row.status, row.attempts = "pending", 2
        row.last_error = "SMTP error 451: greylisted"
        row.due_at = row.updated_at + timedelta(minutes=4)
    database.dispose()
    result = doctoctoc("status", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "SMTP error 451: greylisted" in result.stdout
    assert "next try" in result.stdout


def test_status_works_on_a_read_only_database(tmp_path, monkeypatch, capsys):
    path = demo_config(tmp_path)
    assert doctoctoc("run", "--once", "--config", str(path), cwd=tmp_path).returncode == 0
    monkeypatch.chdir(tmp_path)

    def read_only(*_args, **_kwargs):  # what a migration does on a file it may not write
        raise OperationalError("UPDATE alembic_version", {}, Exception("readonly database"))

    monkeypatch.setattr("bot.storage.db.upgrade", read_only)
    cli_module.main(["status", "--config", str(path)])
    assert "posts stored: 72" in capsys.readouterr().out


def test_disk_full_mid_run_is_one_clear_message(tmp_path, monkeypatch, capsys):
    path = demo_config(tmp_path)
    monkeypatch.chdir(tmp_path)

    def full(self, **_kw):
        raise OperationalError("INSERT INTO posts", {}, Exception("database or disk is full"))

    monkeypatch.setattr("bot.pipeline.Pipeline.cycle", full)
    with pytest.raises(SystemExit) as info:
        cli_module.main(["run", "--once", "--config", str(path)])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "database or disk is full" in err and "Traceback" not in err


def test_run_once_exits_non_zero_when_a_source_fails(tmp_path):
    path = demo_config(tmp_path)
    text = path.read_text().replace(
        "sources:\n",
        f"sources:\n  - network: mastodon\n    url: http://127.0.0.1:{free_port()}\n"
        "    retries: 0\n    timeout: 2s\n",
        1,
    )
    path.write_text(text)
    result = doctoctoc("run", "--once", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "72 new posts" in result.stdout  # the other source still ran
    assert "source" in result.stderr and "failed" in result.stderr


def test_run_once_exits_non_zero_when_mail_fails_for_good(tmp_path):
    server = SmtpServer()

    async def refuse(server_, session, envelope, address, rcpt_options):
        return "550 5.1.1 No such user"

    server.handler.handle_RCPT = refuse
    server.start()
    try:
        path = demo_config(tmp_path)
        text = path.read_text().replace(
            "channels:\n",
            f"channels:\n  smtp:\n    host: 127.0.0.1\n    port: {server.port}\n"
            "    security: none\n    sender: bot@example.org\n",
            1,
        )
        text = text.replace("deliver_by: [outbox]", "deliver_by: [outbox, smtp]", 1)
        path.write_text(text)
        loaded = load_config(path, env={})
        assert "smtp" in loaded.config.subscribers[0].deliver_by
        assert loaded.config.subscribers[0].email
        result = doctoctoc("run", "--once", "--config", str(path), cwd=tmp_path)
    finally:
        server.stop()
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "failed for good" in result.stderr


def test_classify_accepts_config(tmp_path):
    path = demo_config(tmp_path)
    result = doctoctoc(
        "classify", "--config", str(path), cwd=tmp_path, stdin='{"id": 1, "text": "ECG ?"}\n'
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == 1


# --- operating it: one `run` per SQLite file ----------------------------------------------


def test_a_second_run_on_the_same_sqlite_file_refuses_to_start(tmp_path, monkeypatch, capsys):
    from bot.runlock import lock_run

    path = demo_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    first = lock_run("sqlite:///doctoctoc.db")  # a running bot
    try:
        with pytest.raises(SystemExit) as info:
            cli_module.main(["run", "--once", "--config", str(path)])
        assert info.value.code == 1
        err = capsys.readouterr().err
        assert f"pid {os.getpid()}" in err and "PostgreSQL" in err
    finally:
        first.close()
    assert doctoctoc("run", "--once", "--config", str(path), cwd=tmp_path).returncode == 0


# --- operating it: logs -------------------------------------------------------------------


def test_log_format_json_gives_one_object_per_line_without_secrets(tmp_path):
    path = demo_config(tmp_path)
    text = path.read_text().replace(
        "channels:\n",
        f"channels:\n  smtp:\n    host: 127.0.0.1\n    port: {free_port()}\n"
        "    security: none\n    sender: bot@example.org\n    username: bot\n"
        "    password: ${SMTP_PASSWORD}\n    timeout: 2s\n",
        1,
    )
    path.write_text(text.replace("deliver_by: [outbox]", "deliver_by: [smtp]", 1))
    secret = secrets.token_urlsafe(12)  # made up per run: nothing real in the tests
    # A new process: logging as `doctoctoc` sets it up at start, the secret from its environment.
    result = doctoctoc_process(
        "--log-format", "json", "-v", "run", "--once", "--config", str(path),
        cwd=tmp_path, env={"SMTP_PASSWORD": secret},
    )  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.startswith("{")]
    assert lines, result.stderr
    entries = [json.loads(line) for line in lines]
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert any("will retry" in e["message"] for e in entries)  # the SMTP server is down
    assert secret not in result.stderr and secret not in result.stdout


def test_secrets_are_masked_in_every_log_line(capsys):
    from bot.core import logs

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.register_secrets(["tok-123456"])
    try:
        logs.setup_logging(logging.INFO, "text")
        logging.getLogger("bot.test").warning("request failed with token %s", "tok-123456")
        err = capsys.readouterr().err
    finally:
        logs._SECRETS.discard("tok-123456")
        root.handlers[:], root.level = saved
    assert "tok-123456" not in err and "[redacted]" in err


def test_public_url_must_be_http(tmp_path):
    text = GOOD + "web:\n  public_url: javascript:alert(1)\n"
    [message] = errors_of(tmp_path, text, env={"MASTO_TOKEN": "x", "SMTP_PASSWORD": "y"})
    assert "web.public_url" in message and "http" in message


def test_check_config_reports_an_unreadable_dkim_key(tmp_path):
    from bot.preflight import preflight

    path = demo_config(tmp_path)
    text = path.read_text().replace(
        "channels:\n",
        "channels:\n  smtp:\n    host: 127.0.0.1\n    sender: bot@example.org\n"
        "    dkim_selector: s1\n    dkim_domain: example.org\n    dkim_private_key: ${DKIM}\n",
        1,
    )
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        preflight(load_config(path, env={"DKIM": "/nonexistent/dkim.pem"}), load_model=False)
    assert "channels.smtp.dkim_private_key" in info.value.messages[0]
    preflight(load_config(path, env={"DKIM": "-----BEGIN PRIVATE KEY-----\n..."}), load_model=False)
