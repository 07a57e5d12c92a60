"""The fake Mastodon server plus `POST /api/v1/statuses`, for the Mastodon DM channel.

`FakeMastodonDM` extends `FakeMastodon` (its faults, rate limits and request log apply) with
status creation as documented (docs.joinmastodon.org/methods/statuses/#create): form or JSON
parameters `status`, `visibility`, `language`, `spoiler_text`; a Bearer token is required
(401 otherwise); validation errors answer 422 `{"error": "Validation failed: ..."}`, including
the 500-character limit counted the Mastodon way (a URL counts 23 characters, a remote mention
`@user@domain` counts as `@user`); an `Idempotency-Key` already seen returns the same status.
The answer is a Status entity with `visibility` and `mentions`. Statuses posted are kept in
`posted` (parameters, headers, the Status) and are not listed in the public timelines.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from tests.fakes import mastodon_entities as entities
from tests.fakes.mastodon_http import Handler
from tests.fakes.mastodon_server import FakeMastodon

MAX_CHARS = 500
URL_CHARS = 23
VISIBILITIES = ("public", "unlisted", "private", "direct")
_URL = re.compile(r"https?://[^\s<>\"]+")
_MENTION = re.compile(r"(?<![\w/@])@(\w+)(?:@([\w.-]+\w))?")


def mastodon_length(text: str) -> int:
    """Characters as Mastodon counts them against its limit."""
    text = _URL.sub("x" * URL_CHARS, text)
    return len(_MENTION.sub(lambda m: "@" + m.group(1), text))


class _DMHandler(Handler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        self.fake._local.request = (self.rfile.read(length), dict(self.headers))
        self._answer("POST")


class FakeMastodonDM(FakeMastodon):
    def __init__(
        self,
        domain: str = "med.example",
        *,
        token: str = "bot-token",
        bot_username: str = "doctoctoc",
        **kwargs: Any,
    ):
        super().__init__(domain, **kwargs)
        self.token = token
        self.bot_username = bot_username
        self.posted: list[dict[str, Any]] = []  # {"params", "headers", "status"}
        self._idempotent: dict[str, dict[str, Any]] = {}
        self._local = threading.local()

    def start(self) -> FakeMastodonDM:
        super().start()
        assert self._server is not None
        # Same server, a handler that also reads request bodies (POST parameters).
        self._server.RequestHandlerClass = type("BoundDMHandler", (_DMHandler,), {"fake": self})
        return self

    def __enter__(self) -> FakeMastodonDM:
        return self.start()

    def direct_to(self, acct: str) -> list[dict[str, Any]]:
        """Direct statuses mentioning `acct` (`user@domain`, or `user` for a local account)."""
        with self._lock:
            return [
                p["status"]
                for p in self.posted
                if p["status"]["visibility"] == "direct"
                and any(m["acct"] == acct for m in p["status"]["mentions"])
            ]

    def route(
        self, method: str, path: str, params: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        if method == "POST" and path == "/api/v1/statuses":
            body, headers = getattr(self._local, "request", (b"", {}))
            return self._create_status(body, headers)
        return super().route(method, path, params)

    def _create_status(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict, Any]:
        lower = {k.lower(): v for k, v in headers.items()}
        if lower.get("authorization") != f"Bearer {self.token}":
            return 401, {}, {"error": "The access token is invalid"}
        if "application/json" in lower.get("content-type", ""):
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                return 400, {}, {"error": "Invalid JSON"}
        else:
            params = {k: v[-1] for k, v in parse_qs(body.decode("utf-8")).items()}
        key = lower.get("idempotency-key")
        with self._lock:
            if key and key in self._idempotent:
                return 200, {}, self._idempotent[key]
        text = str(params.get("status") or "")
        visibility = params.get("visibility") or "public"
        if not text.strip():
            return 422, {}, {"error": "Validation failed: Text can't be blank"}
        if visibility not in VISIBILITIES:
            return 422, {}, {"error": f"Validation failed: Visibility {visibility} is not valid"}
        if mastodon_length(text) > MAX_CHARS:
            limit = f"Text character limit of {MAX_CHARS} exceeded"
            return 422, {}, {"error": f"Validation failed: {limit}"}
        now = datetime.now(UTC)
        status = entities.status(
            self.next_id(now),
            instance=self.domain,
            text=text,
            created_at=now,
            username=self.bot_username,
            account_domain=None,
            display_name="DocTocToc bot",
            tag_names=None,
            uri=None,
            in_reply_to=None,
            in_reply_to_account=None,
            media=[],
            language=params.get("language") or None,
            spoiler_text=str(params.get("spoiler_text") or ""),
            content=None,
        )
        status["visibility"] = visibility
        status["mentions"] = [self._mention(m) for m in _MENTION.finditer(text)]
        with self._lock:
            self.posted.append({"params": params, "headers": headers, "status": status})
            if key:
                self._idempotent[key] = status
        return 200, {}, status

    def _mention(self, match: re.Match[str]) -> dict[str, str]:
        username, domain = match.group(1), match.group(2)
        local = domain is None or domain == self.domain
        account = entities.account(username, None if local else domain, username, self.domain)
        return {
            "id": account["id"],
            "username": username,
            "url": account["url"],
            "acct": account["acct"],
        }
