"""Build a config, stored requests and classifications for routing and delivery tests."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

from bot.core.config import LoadedConfig, load_config
from bot.core.post import Author, Post
from bot.storage.db import Database
from bot.storage.models import ClassificationRow
from bot.storage.posts import store_posts

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # a Friday, 10:00 in Paris


TEST_SECRET = "s3cret"  # the link-signing secret of every test config (made up)


def make_config(
    tmp_path: Path, subscribers: str, channels: str = "outbox: {dir: outbox}", extra: str = ""
) -> LoadedConfig:
    text = f"""\
version: 1
hashtags: [DocTocToc]
channels:
{textwrap.indent(textwrap.dedent(channels), "  ")}
subscribers:
{textwrap.indent(textwrap.dedent(subscribers), "  ")}
web:
  public_url: https://bot.example.org
  secret: ${{TEST_SECRET}}
delivery:
  first_retry: 1m
  max_retry: 1h
  max_attempts: 5
  sending_timeout: 10m
{extra}
"""
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env={"TEST_SECRET": TEST_SECRET, "SMTP_PASSWORD": "pw"})


def add_request(
    db: Database,
    native_id: str,
    text: str,
    specialty: str | None,
    urgency: str | None,
    *,
    lang: str = "fr",
    handle: str = "@dr_a@medecins.example",
    is_request: bool = True,
    uncertain: bool = False,
    created_at: datetime = T0,
    cues: list[str] | None = None,
    name: str = "Dr A",
    urgency_score: float = 0.9,
) -> int:
    post = Post(
        network="mastodon",
        id=native_id,
        url=f"https://medecins.example/@dr_a/{native_id}",
        author=Author(id="1", handle=handle, name=name),
        text=text,
        lang=lang,
        created_at=created_at,
        hashtags=["DocTocToc"],
    )
    with db.session() as s:
        [pid] = store_posts(s, [post], now=created_at).new
        s.add(
            ClassificationRow(
                post_id=pid,
                model_version="test",
                is_request=is_request,
                specialty=specialty,
                specialty_scores=[{"id": specialty, "score": 0.9}] if specialty else [],
                urgency=urgency,
                urgency_score=urgency_score,
                cues=cues or [],
                uncertain=uncertain,
                created_at=created_at,
            )
        )
    return pid
