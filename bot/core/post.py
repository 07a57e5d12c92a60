"""The one record passed between stages: a normalized social-network post."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

NETWORKS = ("mastodon", "bluesky", "x", "replay")


@dataclass(frozen=True)
class Author:
    id: str
    handle: str
    name: str = ""


@dataclass(frozen=True)
class Media:
    url: str
    alt: str = ""


@dataclass
class Post:
    """A post as every collector produces it and storage consumes it.

    `id` is the network's native id (Mastodon status id, Bluesky at-uri, X tweet id).
    `key` is the identity used for de-duplication: for Mastodon the canonical `uri`
    (the same status seen through two instances), otherwise the native id.
    """

    network: str
    id: str
    url: str
    author: Author
    text: str
    created_at: datetime
    lang: str | None = None
    edited_at: datetime | None = None
    hashtags: list[str] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    reply_to: str | None = None
    thread_root: str | None = None
    deleted: bool = False
    key: str | None = None
    raw: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.key is None:
            self.key = self.id
        self.created_at = ensure_utc(self.created_at)
        if self.edited_at is not None:
            self.edited_at = ensure_utc(self.edited_at)

    def to_dict(self, *, with_raw: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = iso(self.created_at)
        d["edited_at"] = iso(self.edited_at) if self.edited_at else None
        if not with_raw:
            d.pop("raw")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Post:
        """Build a Post from the normalized JSON shape; raises ValueError on bad input."""
        try:
            author = d["author"]
            if not isinstance(author, dict):
                raise ValueError("author must be an object")
            media = [
                Media(url=str(m["url"]), alt=str(m.get("alt") or "")) for m in d.get("media") or []
            ]
            return cls(
                network=str(d["network"]),
                id=str(d["id"]),
                url=str(d.get("url") or ""),
                author=Author(
                    id=str(author.get("id") or author.get("handle") or ""),
                    handle=str(author.get("handle") or ""),
                    name=str(author.get("name") or ""),
                ),
                text=str(d.get("text") or ""),
                created_at=parse_time(d["created_at"]),
                lang=d.get("lang") or None,
                edited_at=parse_time(d["edited_at"]) if d.get("edited_at") else None,
                hashtags=[str(h) for h in d.get("hashtags") or []],
                media=media,
                reply_to=str(d["reply_to"]) if d.get("reply_to") else None,
                thread_root=str(d["thread_root"]) if d.get("thread_root") else None,
                deleted=bool(d.get("deleted", False)),
                key=str(d["key"]) if d.get("key") else None,
                raw=d.get("raw"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a normalized post: missing or bad field {exc}") from exc


def ensure_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return ensure_utc(value)
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    return ensure_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


def iso(value: datetime) -> str:
    return ensure_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_handle(handle: str) -> str:
    """An author handle as routing compares it: no surrounding spaces, no "@", lower case."""
    return handle.strip().lstrip("@").lower()
