"""Unsubscribe and correction tokens: HMAC-SHA256 with the web secret."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from typing import TYPE_CHECKING, Any

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


_B64_URL = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    """URL-safe base64 without padding (base64.urlsafe_b64encode, without its overhead)."""
    return binascii.b2a_base64(data, newline=False).translate(_B64_URL).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_BLOCK = 64  # SHA-256's block size (RFC 2104)


@lru_cache(maxsize=8)
def _keyed(secret: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256's inner and outer hashes with the key already absorbed (RFC 2104): a
    copy of each per token costs half of hmac's own copy (a digest routes 143,000 links)."""
    key = hashlib.sha256(secret).digest() if len(secret) > _BLOCK else secret
    key = key.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def _mac(secret: bytes, message: bytes) -> bytes:
    """hmac.new(secret, message, sha256).digest()"""
    inner, outer = _keyed(secret)
    inner, outer = inner.copy(), outer.copy()
    inner.update(message)
    outer.update(inner.digest())
    return outer.digest()


def sign(secret: bytes, purpose: str, value: str) -> str:
    mac = _mac(secret, f"{purpose}:{value}".encode())
    return f"{_b64(value.encode())}.{_b64(mac[:16])}"


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
