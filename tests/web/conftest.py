"""A small case library: a config with a clinician and a student, cases, answers, a deleted post."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from bot.core.post import Author, Media, Post
from bot.storage.db import Database
from bot.storage.posts import store_posts
from digests.routing import sync_subscribers
from digests.tokens import correction_token, sign, unsubscribe_token
from tests.digests.helpers import T0, add_request, make_config

SUBSCRIBERS = """\
- name: Dr Claire Martin
  id: claire
  email: claire@example.org
  specialties: [dermatology]
- name: Student Sam
  id: sam
  role: student
  hide_authors: true
  language: en
"""
SECRET = b"s3cret"
ADMIN_PASSWORD = secrets.token_urlsafe(12)  # made up per run: nothing real in the tests


@dataclass
class Site:
    client: TestClient
    db: Database
    loaded: object
    ids: dict[str, int]

    def correction_token(self, post_id: int, sub: str = "claire") -> str:
        return correction_token(SECRET, post_id, sub)

    def unsubscribe_token(self, sub: str = "claire") -> str:
        return unsubscribe_token(SECRET, sub)

    def viewer(self, sub: str) -> str:
        return sign(SECRET, "viewer", sub)


def reply(db: Database, native_id: str, to: str, text: str, minutes: int, handle: str) -> None:
    post = Post(
        network="mastodon",
        id=native_id,
        url=f"https://medecins.example/@x/{native_id}",
        author=Author(id=handle, handle=handle, name=handle.strip("@").split("@")[0]),
        text=text,
        lang="fr",
        created_at=T0 + timedelta(minutes=minutes),
        reply_to=to,
        thread_root=to,
    )
    with db.session() as s:
        store_posts(s, [post], now=post.created_at)


def build_library(db: Database) -> dict[str, int]:
    ids = {
        "eczema": add_request(
            db,
            "m1",
            "Plaque rouge qui gratte sur le bras depuis 3 semaines, eczéma ou psoriasis ? Photo jointe #DocTocToc",
            "dermatology",
            "routine",
            urgency_score=0.1,
            cues=["depuis 3 semaines"],
            created_at=T0,
            handle="@dr_derm@medecins.example",
            name="Dr Derm",
        ),
        "eczema2": add_request(
            db,
            "m2",
            "Eczéma du bras qui gratte, plaque rouge, dermocorticoïdes ou pas ? #DocTocToc",
            "dermatology",
            "soon",
            urgency_score=0.3,
            created_at=T0 + timedelta(hours=1),
        ),
        "stemi": add_request(
            db,
            "m3",
            "Douleur thoracique, sus-ST en inférieur sur l'ECG, il est devant moi #DocTocToc",
            "cardiology",
            "urgent",
            urgency_score=0.97,
            cues=["il est devant moi", "sus-ST"],
            created_at=T0 + timedelta(hours=2),
        ),
        "english": add_request(
            db,
            "m4",
            "Itchy red rash on the forearm for weeks, eczema? #DocTocToc",
            "dermatology",
            "routine",
            lang="en",
            urgency_score=0.05,
            created_at=T0 - timedelta(days=3),
        ),
        "chat": add_request(
            db,
            "m5",
            "Bonne soirée à tous les confrères #DocTocToc",
            None,
            None,
            is_request=False,
            created_at=T0 + timedelta(hours=3),
        ),
        "deleted": add_request(
            db,
            "m6",
            "Lésion pigmentée du dos qui a changé, mélanome ? #DocTocToc",
            "dermatology",
            "soon",
            created_at=T0 + timedelta(hours=4),
        ),
    }
    reply(
        db,
        "r1",
        "m1",
        "Plutôt un eczéma nummulaire : dermocorticoïde fort 2 semaines.",
        30,
        "@derm2@x.example",
    )
    reply(
        db, "r2", "m1", "D'accord, et un avis si pas d'amélioration.", 60, "@dr_a@medecins.example"
    )
    with db.session() as s:
        from bot.storage.models import PostRow

        row = s.get(PostRow, ids["eczema"])
        row.media = [
            {"url": "https://files.example/rash.jpg", "alt": "plaque érythémateuse du bras"},
            {"url": "javascript:alert(1)", "alt": "piège"},
        ]
        row.url = "https://medecins.example/@dr_derm/m1"
        s.get(PostRow, ids["stemi"]).url = "javascript:alert(document.cookie)"
    deleted = Post(
        network="mastodon",
        id="m6",
        url="",
        author=Author(id="1", handle="@dr_a@medecins.example"),
        text="",
        created_at=T0,
        deleted=True,
    )
    with db.session() as s:
        store_posts(s, [deleted], now=T0 + timedelta(hours=5))
    return ids


@pytest.fixture
def site(tmp_path, db) -> Site:
    from bot.web.app import create_app

    loaded = make_config(tmp_path, SUBSCRIBERS)
    with db.session() as s:
        sync_subscribers(s, loaded, T0)
    ids = build_library(db)
    app = create_app(
        loaded, db, admin_password=ADMIN_PASSWORD, clock=lambda: T0 + timedelta(days=1)
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Site(client=client, db=db, loaded=loaded, ids=ids)


__all__ = ["Site", "Media", "ADMIN_PASSWORD"]
