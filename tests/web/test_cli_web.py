"""`doctoctoc web` and `web.serve: true` in `doctoctoc run`."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bot.cli import cli

pytestmark = pytest.mark.usefixtures("cli_state")  # the group sets up logging in this process

CONFIG = """\
version: 1
hashtags: [DocTocToc]
database: {{url: "sqlite:///{db}"}}
channels: {{outbox: {{dir: outbox}}}}
web:
  public_url: https://cases.example.org
  host: 0.0.0.0
  port: 8123
  serve: {serve}
"""


def write(tmp_path, serve: bool = False):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "t.db", serve=str(serve).lower()))
    return str(path)


def test_web_command_listens_where_the_config_says_unless_told(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        "bot.web.server.serve", lambda loaded, db, host, port: calls.append((host, port))
    )
    config = write(tmp_path)
    result = CliRunner().invoke(cli, ["web", "--config", config])
    assert result.exit_code == 0, result.output
    assert "http://0.0.0.0:8123" in result.output and "https://cases.example.org" in result.output
    result = CliRunner().invoke(
        cli, ["web", "--host", "127.0.0.1", "--port", "9000", "--config", config]
    )
    assert result.exit_code == 0, result.output
    assert calls == [("0.0.0.0", 8123), ("127.0.0.1", 9000)]


def test_run_serves_the_web_app_in_process_when_web_serve_is_true(tmp_path, monkeypatch):
    served = []
    monkeypatch.setattr(
        "bot.web.server.serve_in_thread", lambda loaded, db: served.append(loaded.config.web.port)
    )
    monkeypatch.setattr("bot.scheduler.BotRunner.run", lambda self: None)
    for serve in (False, True):
        result = CliRunner().invoke(cli, ["run", "--config", write(tmp_path, serve)])
        assert result.exit_code == 0, result.output
    assert served == [8123]


def test_web_help_names_the_admin_password_variable():
    result = CliRunner().invoke(cli, ["web", "--help"])
    assert result.exit_code == 0 and "DOCTOCTOC_ADMIN_PASSWORD" in result.output
