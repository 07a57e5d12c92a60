"""Mastodon `Status` entities to normalized `Post`s: HTML to text, boosts, JSON-safe raw.

Shapes follow docs.joinmastodon.org/entities/Status. Mastodon.py hands statuses over as
dict subclasses with datetimes already parsed (and None for fields it could not read);
plain dicts decoded from JSON work as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from html.parser import HTMLParser
from typing import Any

from bot.collectors.base import fold_tag, matching_tags, tags_in_text
from bot.core.post import Author, Media, Post, parse_time

NETWORK = "mastodon"


class MalformedStatus(ValueError):
    """A status lacking required fields or carrying wrong types."""


# --- HTML to plain text --------------------------------------------------------------------

_BLOCKS = {"p", "div", "blockquote", "pre", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6"}


class _TextExtractor(HTMLParser):
    """Readable plain text: <br> is a line break, paragraphs are separated by a blank line.

    Mastodon shortens links with `<span class="invisible">` parts; keeping every span's text
    gives the full URL back. Entities are unescaped (convert_charrefs).
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in _BLOCKS:
            self.parts.append("\n\n")
            self.pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n\n")
            self.pre -= tag == "pre" and self.pre > 0

    def handle_data(self, data: str) -> None:
        self.parts.append(data if self.pre else re.sub(r"[ \t\r\n\f]+", " ", data))


def html_to_text(content: str) -> str:
    """Mastodon's HTML `content` as readable plain text."""
    if "<" not in content and "&" not in content:
        return content.strip()
    parser = _TextExtractor()
    parser.feed(content)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t]*\n[ \t]*", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


# --- JSON-safe raw ------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """A copy storable as JSON: datetimes as ISO strings, library-private keys dropped."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


# --- ids --------------------------------------------------------------------------------------


def id_order(value: str) -> tuple[int, str]:
    """Sort key for status ids: numeric ids by value, others (flake ids) by length then text."""
    return (
        (len(value), value) if not value.isdigit() else (len(value.lstrip("0")), value.lstrip("0"))
    )


def status_id(item: Any) -> str | None:
    """The id of a timeline item (the outer id for a boost), or None when unusable."""
    value = item.get("id") if isinstance(item, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        return None
    return str(value)


# --- Status -> Post -------------------------------------------------------------------------------


def _text_field(data: Mapping[str, Any], name: str, *, required: bool = False) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise MalformedStatus(f"'{name}' must be a non-empty string, got {value!r}")
    return value


def _time(value: Any, name: str) -> datetime:
    try:
        return parse_time(value)
    except (ValueError, TypeError) as exc:
        raise MalformedStatus(f"'{name}' is not a timestamp: {value!r}") from exc


def _author(account: Any, host: str) -> Author:
    if not isinstance(account, Mapping):
        raise MalformedStatus(f"'account' must be an object, got {type(account).__name__}")
    acct = account.get("acct") or account.get("username")
    if not isinstance(acct, str) or not acct:
        raise MalformedStatus("account has no 'acct'")
    handle = f"@{acct}" if "@" in acct else f"@{acct}@{host}"
    ident = account.get("id")
    name = account.get("display_name")
    return Author(
        id=str(ident) if isinstance(ident, str | int) and not isinstance(ident, bool) else handle,
        handle=handle,
        name=name if isinstance(name, str) else "",
    )


def _media(items: Any) -> list[Media]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise MalformedStatus("'media_attachments' must be a list")
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        url = item.get("url") or item.get("remote_url") or item.get("preview_url")
        if isinstance(url, str) and url:
            alt = item.get("description")
            out.append(Media(url=url, alt=alt if isinstance(alt, str) else ""))
    return out


def _tag_names(tags: Any) -> list[str]:
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise MalformedStatus("'tags' must be a list")
    return [t["name"] for t in tags if isinstance(t, Mapping) and isinstance(t.get("name"), str)]


def _all_tags(structured: list[str], found: list[str], text: str) -> list[str]:
    """Every hashtag of the status: the structured ones (plus matches seen only in the text)."""
    names = structured + found if structured else tags_in_text(text)
    out: dict[str, str] = {}
    for name in names:
        out.setdefault(fold_tag(name), name.lstrip("#"))
    return list(out.values())


def _optional_id(value: Any, name: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedStatus(f"'{name}' must be an id, got {value!r}")
    return str(value)


def status_to_post(
    item: Any,
    *,
    host: str,
    wanted: Iterable[str],
    require_tag: bool = True,
    thread_root: str | None = None,
) -> Post | None:
    """Normalize one status (a boost collapses to the original).

    Returns None when `require_tag` and the status carries none of the `wanted` hashtags;
    raises MalformedStatus when required fields are missing or have wrong types.
    """
    if not isinstance(item, Mapping):
        raise MalformedStatus(f"a status must be an object, got {type(item).__name__}")
    status = item.get("reblog") or item
    if not isinstance(status, Mapping):
        raise MalformedStatus("'reblog' must be an object or null")
    native = status_id(status)
    if native is None:
        raise MalformedStatus(f"status without a usable id: {status.get('id')!r}")
    uri = _text_field(status, "uri", required=True)
    content = _text_field(status, "content")
    spoiler = _text_field(status, "spoiler_text")
    text = html_to_text(content)
    if spoiler.strip():
        text = f"{spoiler.strip()}\n\n{text}" if text else spoiler.strip()
    tags = _tag_names(status.get("tags"))
    found = matching_tags(tags, text, wanted)
    if require_tag and not found:
        return None
    created = status.get("created_at")
    if created is None:
        raise MalformedStatus("status without 'created_at'")
    edited = status.get("edited_at")
    lang = status.get("language")
    url = status.get("url")
    reply_to = _optional_id(status.get("in_reply_to_id"), "in_reply_to_id")
    return Post(
        network=NETWORK,
        id=native,
        key=uri,
        url=url if isinstance(url, str) and url else uri,
        author=_author(status.get("account"), host),
        text=text,
        lang=lang if isinstance(lang, str) and lang else None,
        created_at=_time(created, "created_at"),
        edited_at=_time(edited, "edited_at") if edited is not None else None,
        hashtags=_all_tags(tags, found, text),
        media=_media(status.get("media_attachments")),
        reply_to=reply_to,
        thread_root=thread_root if reply_to else None,
        raw=json_safe(status),
    )
