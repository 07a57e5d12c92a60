"""Every message a subscriber gets is byte-for-byte what it was before delivery was reworked
for scale (issue 14), and every shape parses cleanly with the standard library."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from digests.tokens import verify

from .golden import GOLDEN, all_messages, masked, signed_tokens
from .helpers import TEST_SECRET


@pytest.fixture(scope="module")
def messages() -> dict[str, bytes]:
    return all_messages()


def test_the_sample_covers_every_shape(messages):
    names = set(messages)
    assert {p.name for p in GOLDEN.iterdir()} == names
    assert sum(n.startswith("pipeline.") for n in names) >= 6
    assert any(n.endswith(".txt") for n in names) and any(n.endswith(".eml") for n in names)


def test_each_message_has_exactly_the_stored_bytes(messages):
    different = [n for n, data in messages.items() if (GOLDEN / n).read_bytes() != masked(data)]
    assert different == []
    # the stored `<signed:VALUE>` stands for exactly one token: the HMAC of VALUE
    tokens = [t for data in messages.values() for t in signed_tokens(data)]
    assert len(tokens) > 20
    for purpose, token in tokens:
        assert verify(TEST_SECRET.encode(), purpose, token) is not None, (purpose, token)


def test_every_email_parses_without_defects_and_keeps_its_texts(messages):
    for name, data in messages.items():
        if not name.endswith(".eml"):
            continue
        msg = message_from_bytes(data, policy=policy.default)
        assert msg.defects == [] and msg.get_content_type() == "multipart/alternative", name
        assert msg["Message-ID"] and msg["Subject"] and msg["To"].addresses, name
        for part in msg.iter_parts():
            assert part.defects == [], name
            assert part.get_content().strip(), name
        assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b""), name


def _body_by_lines(text: str) -> bytes | None:
    """The body as first written: split into lines, measured, joined with CRLF."""
    lines = text.encode("utf-8").splitlines()
    if text.isascii() or max(map(len, lines), default=0) > 998:
        return None
    return b"\r\n".join(lines) + b"\r\n"


def test_bodies_are_the_same_bytes_as_line_by_line():
    """email_message._body avoids splitting a digest into lines (it measures only the lines
    at every 999th byte): the same bytes, and the same long-line fallback, for any text."""
    import random

    from digests.email_message import _body

    rng = random.Random(7)
    pieces = ["é", "a", " ", "\n", "\n\n", "\r", "\r\n", "✓", "𝄞", "x" * 300, "é" * 400]
    texts = ["", "\n", "é", "é\n", "é" + "x" * 997, "é" + "x" * 998, "é\n" + "x" * 999 + "\n"]
    for _ in range(3000):
        texts.append("".join(rng.choice(pieces) for _ in range(rng.randrange(1, 60))))
    for text in texts:
        assert _body(text) == _body_by_lines(text), repr(text[:80])
    assert any(_body_by_lines(t) is None and not t.isascii() for t in texts)  # long lines met
