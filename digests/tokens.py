"""Unsubscribe and correction tokens: HMAC-SHA256 with the web secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from typing import TYPE_CHECKING

from bot.storage import settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

SECRET_ENV = "DOCTOCTOC_SECRET"


def resolve_secret(session: Session, configured: str | None) -> bytes:
    """The configured secret (web.secret), else $DOCTOCTOC_SECRET, else one stored in the db."""
    value = configured or os.environ.get(SECRET_ENV)
    if value:
        return value.encode()
    return settings.get_or_create(session, "web_secret", lambda: secrets.token_hex(32)).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=8)
def _keyed(secret: bytes) -> hmac.HMAC:
    """The HMAC with its key already absorbed: a copy per token costs half a new one."""
    return hmac.new(secret, digestmod=hashlib.sha256)


def sign(secret: bytes, purpose: str, value: str) -> str:
    mac = _keyed(secret).copy()
    mac.update(f"{purpose}:{value}".encode())
    return f"{_b64(value.encode())}.{_b64(mac.digest()[:16])}"


def verify(secret: bytes, purpose: str, token: str) -> str | None:
    """The signed value, or None when the token is forged or malformed."""
    try:
        encoded, _ = token.strip().split(".", 1)
        value = _unb64(encoded).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    # Bytes: compare_digest refuses str with non-ASCII characters (a pasted token may have them).
    expected = sign(secret, purpose, value).encode()
    return value if hmac.compare_digest(expected, token.strip().encode()) else None


def unsubscribe_token(secret: bytes, subscriber_id: str) -> str:
    return sign(secret, "unsubscribe", subscriber_id)


def correction_token(secret: bytes, post_id: int, subscriber_id: str) -> str:
    return sign(secret, "correct", f"{post_id}:{subscriber_id}")


def viewer_token(secret: bytes, subscriber_id: str) -> str:
    """Carried by a digest's web links (`v=`): the web app applies the subscriber's hide_authors."""
    return sign(secret, "viewer", subscriber_id)
