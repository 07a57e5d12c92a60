"""Link tokens: the precomputed HMAC (issue 14) signs exactly as the standard library does."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from digests.tokens import correction_token, sign, verify


def _reference(secret: bytes, purpose: str, value: str) -> str:
    mac = hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).digest()[:16]

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return f"{b64(value.encode())}.{b64(mac)}"


@pytest.mark.parametrize("length", [0, 1, 32, 63, 64, 65, 200])
@pytest.mark.parametrize("value", ["s1", "12:dr-urg", "", "é✓ ünïcode", "x" * 100])
def test_sign_matches_hmac_sha256_for_every_key_length(length, value):
    secret = bytes(range(256))[:length] if length <= 256 else b"k" * length
    token = sign(secret, "correct", value)
    assert token == _reference(secret, "correct", value)
    assert verify(secret, "correct", token) == value
    assert verify(secret, "unsubscribe", token) is None


def test_correction_token_names_the_post_and_the_subscriber():
    secret = b"s3cret"
    assert verify(secret, "correct", correction_token(secret, 42, "dr-x")) == "42:dr-x"
