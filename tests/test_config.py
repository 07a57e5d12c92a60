"""The admin's config: the default file passes; each mistake names its file, line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.core.config import load_config
from bot.core.errors import ConfigError

from .conftest import ROOT

GOOD = """\
version: 1
hashtags: [DocTocToc]
sources:
  - network: mastodon
    url: https://medecins.example
    access_token: ${MASTO_TOKEN}
channels:
  outbox: {dir: outbox}
  smtp:
    host: 127.0.0.1
    sender: bot@example.org
    password: ${SMTP_PASSWORD}
subscribers:
  - name: Dr A
    email: a@example.org
    deliver_by: [outbox]
    specialties: [cardiology]
    digest: daily 07:30
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env=env or {})
    return info.value.messages


def test_default_config_is_valid():
    loaded = load_config(ROOT / "config.yaml", env={})
    assert loaded.config.version == 1
    assert loaded.config.sources[0].network == "replay"
    assert loaded.config.channels.outbox is not None
    assert len({s.key for s in loaded.config.subscribers}) >= 3
    assert loaded.disabled == {}


def test_env_references_are_resolved(tmp_path):
    loaded = load_config(write(tmp_path, GOOD), env={"MASTO_TOKEN": "t0k", "SMTP_PASSWORD": "pw"})
    assert loaded.config.sources[0].access_token == "t0k"
    assert loaded.config.channels.smtp.password == "pw"
    assert loaded.disabled == {}


def test_missing_secret_disables_only_its_source_and_channel(tmp_path):
    loaded = load_config(write(tmp_path, GOOD), env={"SMTP_PASSWORD": "pw"})
    assert not loaded.source_enabled(0)
    assert "MASTO_TOKEN" in loaded.disabled["sources[0]"]
    assert loaded.channel_enabled("smtp") and loaded.channel_enabled("outbox")
    assert any(
        line.startswith("disabled: sources[0]: environment variable MASTO_TOKEN")
        for line in loaded.report()
    )


def test_unknown_key_names_line_and_suggests(tmp_path):
    text = GOOD.replace(
        "    digest: daily 07:30", "    digest: daily 07:30\n    specialites: [cardiology]"
    )
    [message] = errors_of(tmp_path, text)
    assert (
        message
        == f"{tmp_path / 'config.yaml'}:19: subscribers[0].specialites: unknown key (did you mean 'specialties'?)"
    )


def test_unknown_specialty_lists_the_choices(tmp_path):
    text = GOOD.replace("specialties: [cardiology]", "specialties: [cardiology, dermato]")
    [message] = errors_of(tmp_path, text)
    assert message.startswith(
        f"{tmp_path / 'config.yaml'}:17: subscribers[0].specialties[1]: 'dermato' is not a specialty (choose from: cardiology, dermatology,"
    )


def test_wrong_type(tmp_path):
    text = GOOD.replace("    digest: daily 07:30", "    digest: daily 07:30\n    max_items: lots")
    [message] = errors_of(tmp_path, text)
    assert ":19: subscribers[0].max_items: expected a number, got 'lots'" in message


@pytest.mark.parametrize("schedule", ["daily 25:00", "sometimes", "61 * * * *", "weekdays noon"])
def test_bad_schedule(tmp_path, schedule):
    [message] = errors_of(tmp_path, GOOD.replace("daily 07:30", schedule))
    assert ":18: subscribers[0].digest: " in message


@pytest.mark.parametrize("schedule", ["hourly", "daily 07:30", "weekdays 12:00", "30 7 * * 1-5"])
def test_good_schedules(tmp_path, schedule):
    loaded = load_config(
        write(tmp_path, GOOD.replace("daily 07:30", schedule)),
        env={"MASTO_TOKEN": "x", "SMTP_PASSWORD": "y"},
    )
    assert loaded.config.subscribers[0].digest == schedule


def test_yaml_syntax_error_has_its_line(tmp_path):
    text = GOOD.replace("hashtags: [DocTocToc]", "hashtags: [DocTocToc")
    [message] = errors_of(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'config.yaml'}:")
    assert "YAML syntax error" in message
    line = int(message.split(":")[1])
    assert 2 <= line <= 4


def test_secret_written_in_clear_is_refused(tmp_path):
    text = GOOD.replace("${SMTP_PASSWORD}", "hunter2")
    [message] = errors_of(tmp_path, text, env={"MASTO_TOKEN": "x"})
    assert ":12: channels.smtp.password: secrets must not be written in the file" in message


def test_missing_env_outside_a_source_is_an_error(tmp_path):
    text = GOOD.replace("version: 1", "version: 1\ndatabase: {url: '${DB_URL}'}")
    messages = errors_of(tmp_path, text, env={"MASTO_TOKEN": "x", "SMTP_PASSWORD": "y"})
    assert messages == [
        f"{tmp_path / 'config.yaml'}:2: database.url: environment variable DB_URL is not set (database.url)"
    ]


def test_several_mistakes_are_all_reported_in_line_order(tmp_path):
    text = (
        GOOD.replace("network: mastodon", "network: myspace")
        .replace("min_urgency", "x")
        .replace("digest: daily 07:30", "digest: daily 07:30\n    min_urgency: high")
    )
    messages = errors_of(tmp_path, text)
    assert len(messages) == 2
    assert ":4: sources[0].network: 'myspace' is not allowed" in messages[0]
    assert (
        ":19: subscribers[0].min_urgency: 'high' is not allowed (choose from: 'routine', 'soon' or 'urgent')"
        in messages[1]
    )


def test_channel_used_but_not_configured(tmp_path):
    text = GOOD.replace("deliver_by: [outbox]", "deliver_by: [mastodon]")
    messages = errors_of(tmp_path, text, env={"MASTO_TOKEN": "x", "SMTP_PASSWORD": "y"})
    assert any(
        ":16: subscribers[0].deliver_by[0]: channel 'mastodon' is not configured" in m
        for m in messages
    )
    assert any(
        ":16: subscribers[0].deliver_by[0]: delivery by 'mastodon' needs the subscriber's 'mastodon'"
        in m
        for m in messages
    )
