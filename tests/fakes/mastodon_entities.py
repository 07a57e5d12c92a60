"""Mastodon API entities (Status, Account, MediaAttachment, Tag) for the fake server.

Shapes follow docs.joinmastodon.org/entities/: ids are strings, times ISO 8601 with
milliseconds and `Z`, `content` is HTML with linked hashtags.
"""

from __future__ import annotations

import html
import re
import unicodedata
import zlib
from datetime import UTC, datetime
from typing import Any

TAG = re.compile(r"(?<![\w&/])#(\w+)")


def iso_ms(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in text if not unicodedata.combining(c))


def to_html(text: str, domain: str) -> str:
    """Plain text to Mastodon-style HTML: paragraphs, <br />, linked hashtags."""

    def tag_link(match: re.Match[str]) -> str:
        name = match.group(1)
        return (
            f'<a href="https://{domain}/tags/{name.lower()}" class="mention hashtag" '
            f'rel="tag">#<span>{name}</span></a>'
        )

    paragraphs = []
    for para in re.split(r"\n{2,}", text):
        lines = [TAG.sub(tag_link, html.escape(line, quote=False)) for line in para.split("\n")]
        paragraphs.append("<p>" + "<br />".join(lines) + "</p>")
    return "".join(paragraphs)


def tags(names: list[str], domain: str) -> list[dict[str, str]]:
    return [{"name": n, "url": f"https://{domain}/tags/{n.lower()}"} for n in names]


def account(username: str, domain: str | None, display_name: str, instance: str) -> dict[str, Any]:
    """An Account; `domain` None means local to `instance` (its `acct` has no domain)."""
    home = domain or instance
    return {
        "id": str(zlib.crc32(f"{username}@{home}".encode()) + 10**15),
        "username": username,
        "acct": f"{username}@{domain}" if domain else username,
        "display_name": display_name,
        "locked": False,
        "bot": False,
        "discoverable": True,
        "group": False,
        "created_at": "2020-01-01T00:00:00.000Z",
        "note": "",
        "url": f"https://{home}/@{username}",
        "uri": f"https://{home}/users/{username}",
        "avatar": f"https://{instance}/avatars/original/missing.png",
        "avatar_static": f"https://{instance}/avatars/original/missing.png",
        "header": f"https://{instance}/headers/original/missing.png",
        "header_static": f"https://{instance}/headers/original/missing.png",
        "followers_count": 10,
        "following_count": 10,
        "statuses_count": 10,
        "last_status_at": "2026-11-27",
        "emojis": [],
        "fields": [],
    }


def attachment(ident: int, url: str, alt: str | None) -> dict[str, Any]:
    return {
        "id": str(ident),
        "type": "image",
        "url": url,
        "preview_url": url.replace("/original/", "/small/"),
        "remote_url": None,
        "preview_remote_url": None,
        "text_url": None,
        "meta": {"original": {"width": 640, "height": 480, "size": "640x480", "aspect": 1.33}},
        "description": alt,
        "blurhash": "UFBWY:8_0Jxv",
    }


def status(
    sid: int,
    *,
    instance: str,
    text: str,
    created_at: datetime,
    username: str,
    account_domain: str | None,
    display_name: str,
    tag_names: list[str] | None,
    uri: str | None,
    in_reply_to: str | None,
    in_reply_to_account: str | None,
    media: list[tuple[str, str | None]],
    language: str | None,
    spoiler_text: str,
    content: str | None,
) -> dict[str, Any]:
    home = account_domain or instance
    names = tag_names if tag_names is not None else list(dict.fromkeys(TAG.findall(text)))
    return {
        "id": str(sid),
        "uri": uri or f"https://{home}/users/{username}/statuses/{sid}",
        "url": uri or f"https://{home}/@{username}/{sid}",
        "created_at": iso_ms(created_at),
        "edited_at": None,
        "account": account(username, account_domain, display_name, instance),
        "content": content if content is not None else to_html(text, instance),
        "visibility": "public",
        "sensitive": bool(spoiler_text),
        "spoiler_text": spoiler_text,
        "language": language,
        "in_reply_to_id": in_reply_to,
        "in_reply_to_account_id": in_reply_to_account,
        "reblog": None,
        "application": {"name": "Web", "website": None},
        "media_attachments": [
            attachment(sid + i + 1, url, alt) for i, (url, alt) in enumerate(media)
        ],
        "mentions": [],
        "tags": tags(names, instance),
        "emojis": [],
        "card": None,
        "poll": None,
        "replies_count": 0,
        "reblogs_count": 0,
        "favourites_count": 0,
        "favourited": False,
        "reblogged": False,
        "muted": False,
        "bookmarked": False,
        "filtered": [],
    }
