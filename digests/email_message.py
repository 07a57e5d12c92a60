"""Build RFC 5322 messages (multipart/alternative) with RFC 8058 one-click unsubscribe.

`email_bytes` writes the usual message directly, byte for byte what the standard library
writes for it (the golden test checks every shape); any header or body out of the ordinary
(encoded words, lines over 998 bytes, ASCII-only bodies) goes through the library itself.
"""

from __future__ import annotations

import hashlib
import random
import re
import sys
from datetime import datetime
from email import policy as email_policy
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import lru_cache

from digests.render import Digest, one_line, render_email

LIST_ID = "DocTocToc digests <digests.doctoctoc-bot.local>"


class _HeaderClasses(HeaderRegistry):
    """The standard registry builds a new class for every header it parses (about 20 per
    message). Building each class once parses exactly the same way and takes a third off
    the cost of assembling a digest's MIME message."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


# Long header lines (the unsubscribe URL) must stay literal, not become encoded words:
# RFC 5322 allows 998 characters a line.
POLICY = email_policy.SMTP.clone(max_line_length=998, header_factory=_HeaderClasses())


def message_id(digest: Digest, domain: str) -> str:
    """Deterministic per digest: a resend of the same digest carries the same Message-ID."""
    digest_hash = hashlib.sha256(digest.message_key.encode()).hexdigest()[:24]
    return f"<{digest_hash}.{digest.subscriber_id[:40]}@{domain}>"


@lru_cache(maxsize=64)
def domain_of(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rsplit("@", 1)[1] if "@" in address else "doctoctoc-bot.local"


def _rendered(digest: Digest) -> tuple[str, str, str]:
    return digest.rendered if digest.rendered is not None else render_email(digest)


def build_email(digest: Digest, *, sender: str, to: str) -> EmailMessage:
    subject, text, html = _rendered(digest)
    msg = EmailMessage(policy=POLICY)
    msg["Subject"] = subject
    msg["From"] = sender
    # The display name is untrusted config text: one line, and the library quotes it.
    msg["To"] = Address(display_name=one_line(digest.subscriber_name, 60), addr_spec=to.strip())
    if digest.generated_at is not None:
        msg["Date"] = format_datetime(digest.generated_at)
    msg["Message-ID"] = message_id(digest, domain_of(sender))
    msg["List-Id"] = LIST_ID
    if digest.unsubscribe_url:
        msg["List-Unsubscribe"] = f"<{digest.unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    if digest.kind == "alert":
        msg["Importance"] = "high"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


# --- the same bytes, written directly ------------------------------------------------------

_UNSTRUCTURED = re.compile(r"[!-~](?:[ -~]*[!-~])?")  # printable ASCII, no edge spaces
_ADDR = r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_ADDRESS = re.compile(rf"(?:[A-Za-z0-9'-]+(?: [A-Za-z0-9'-]+)* <{_ADDR}>|{_ADDR})")
_MSG_ID = re.compile(rf"<{_ADDR}>")
_BOUNDARY_WIDTH = len(repr(sys.maxsize - 1))  # as email.generator makes them


@lru_cache(maxsize=4096)
def _folded(name: str, value: str) -> bytes:
    """A header as the standard library folds it (RFC 2047 words where needed)."""
    header = POLICY.header_factory(name, value)
    return header.fold(policy=POLICY).encode("ascii", "surrogateescape")


def _header(name: str, value: str, simple: re.Pattern[str] = _UNSTRUCTURED) -> bytes:
    if len(value) < 900 and "=?" not in value and "  " not in value and simple.fullmatch(value):
        return f"{name}: {value}\r\n".encode("ascii")
    return _folded(name, value)


# Headers that are the same in every message of a flush: written once.
_fixed_header = lru_cache(maxsize=64)(_header)


@lru_cache(maxsize=64)
def _sender_header(sender: str) -> bytes:
    return _header("From", sender, _ADDRESS)


def _date_header(when: datetime) -> bytes:
    # Keyed by the offset too: equal instants in other time zones are written differently.
    return _date_header_at(when, when.utcoffset())


@lru_cache(maxsize=64)
def _date_header_at(when: datetime, _offset: object) -> bytes:
    return _header("Date", format_datetime(when))


def _body(text: str) -> bytes | None:
    """The body as the library writes an 8bit text part, or None when it would not (pure
    ASCII: 7bit; a line over 998 bytes: quoted-printable or base64)."""
    if text.isascii():
        return None
    data = text.encode("utf-8")
    if "\r" in text:  # lines end at CR too: split as the library does
        lines = data.splitlines()
        if max(map(len, lines), default=0) > POLICY.max_line_length:
            return None
        return b"\r\n".join(lines) + b"\r\n"
    if _has_long_line(data, POLICY.max_line_length):
        return None
    # Lines end at LF only: the same bytes as splitting and joining them with CRLF.
    data = data.replace(b"\n", b"\r\n")
    return data if text.endswith("\n") else data + b"\r\n"


def _has_long_line(data: bytes, limit: int) -> bool:
    """Whether a line (between LFs) is longer than `limit` bytes. Any limit + 1 bytes in a
    row include an offset that is a multiple of limit + 1: only the lines at those offsets
    are measured (a dozen C calls for a digest, not a list of its lines)."""
    for at in range(0, len(data), limit + 1):
        if data[at] == 10:  # LF
            continue
        start = data.rfind(b"\n", 0, at) + 1
        end = data.find(b"\n", at)
        if (len(data) if end < 0 else end) - start > limit:
            return True
    return False


def _part(subtype: str, body: bytes, mime_version: bool) -> bytes:
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: 8bit\r\n'
    return (head + ("MIME-Version: 1.0\r\n" if mime_version else "") + "\r\n").encode() + body


def _boundary(parts: list[bytes]) -> str:
    """email.generator's boundary: the same random draw, the same collision check."""
    token = random.randrange(sys.maxsize)
    boundary = ("=" * 15) + f"{token:0{_BOUNDARY_WIDTH}d}" + "=="
    mark = b"--" + boundary.encode()
    # The usual case, no regex to compile: the mark is in no part (it has no CR or LF, so it
    # cannot straddle the CRLF between two parts either).
    if all(mark not in part for part in parts):
        return boundary
    alltext = b"\r\n".join(parts)
    candidate, counter = boundary, 0
    while re.search(b"^--" + re.escape(candidate.encode()) + b"(--)?$", alltext, re.MULTILINE):
        candidate, counter = f"{boundary}.{counter}", counter + 1
    return candidate


def email_bytes(digest: Digest, *, sender: str, to: str) -> bytes:
    """The message `build_email` makes, as the bytes `bytes(build_email(...))` gives."""
    subject, text, html = _rendered(digest)
    text_body, html_body = _body(text), _body(html)
    name = one_line(digest.subscriber_name, 60)
    if text_body is None or html_body is None:
        return bytes(build_email(digest, sender=sender, to=to))
    address = to.strip()
    to_value = f"{name} <{address}>" if name else address
    if _ADDRESS.fullmatch(to_value) and name:
        to_header = f"To: {to_value}\r\n".encode()
    else:
        to_header = (
            POLICY.header_factory("To", Address(display_name=name, addr_spec=address))
            .fold(policy=POLICY)
            .encode("ascii", "surrogateescape")
        )
    headers = [_header("Subject", subject), _sender_header(sender), to_header]
    if digest.generated_at is not None:
        headers.append(_date_header(digest.generated_at))
    headers += [
        _header("Message-ID", message_id(digest, domain_of(sender)), _MSG_ID),
        _fixed_header("List-Id", LIST_ID),
    ]
    if digest.unsubscribe_url:
        headers.append(_header("List-Unsubscribe", f"<{digest.unsubscribe_url}>"))
        headers.append(_fixed_header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    headers.append(_fixed_header("Auto-Submitted", "auto-generated"))
    if digest.kind == "alert":
        headers.append(_fixed_header("Importance", "high"))
    parts = [_part("plain", text_body, False), _part("html", html_body, True)]
    boundary = _boundary(parts)
    mark = f"--{boundary}".encode()
    return b"".join(
        [
            *headers,
            b"MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode(),
            mark, b"\r\n", parts[0], b"\r\n", mark, b"\r\n", parts[1],
            b"\r\n", mark, b"--\r\n",
        ]
    )  # fmt: skip


@lru_cache(maxsize=64)
def sender_address(sender: str) -> str:
    """The bare address of a From value (the SMTP envelope sender)."""
    return POLICY.header_factory("From", sender).addresses[0].addr_spec
