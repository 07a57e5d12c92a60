"""X API v2 user lookup and direct messages for the fake X server (`FakeXServer.dm`).

- `GET /2/users/by/username/:username` -> `{"data": {"id", "name", "username"}}`, or, for an
  unknown name, 200 with `{"errors": [{... "type": ".../resource-not-found"}]}` as X answers;
  app-only (Bearer) or user context.
- `POST /2/dm_conversations/with/:participant_id/messages` with `{"text"}` -> 201
  `{"data": {"dm_conversation_id", "dm_event_id"}}`. It needs user context: a request without
  an `Authorization: OAuth ...` header (OAuth 1.0a, signature not verified) gets X's 403
  "Unsupported Authentication"; a recipient who does not accept the bot's DMs gets 403.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

NOT_FOUND = "https://api.twitter.com/2/problems/resource-not-found"
UNSUPPORTED_AUTH = "https://api.twitter.com/2/problems/unsupported-authentication"
MAX_DM_CHARS = 10_000
BOT_ID = "42"
_OAUTH_PARAM = re.compile(r'(oauth_[a-z_]+)="([^"]*)"')

Answer = tuple[int, dict[str, Any]]


def oauth_params(authorization: str) -> dict[str, str] | None:
    """The `oauth_*` parameters of an OAuth 1.0a Authorization header (None if not OAuth 1.0a)."""
    if not authorization.startswith("OAuth "):
        return None
    params = dict(_OAUTH_PARAM.findall(authorization))
    needed = {"oauth_consumer_key", "oauth_token", "oauth_signature", "oauth_nonce"}
    return params if needed <= params.keys() else None


class FakeXDirectMessages:
    """The bot's X account, who accepts its DMs, and every DM sent."""

    def __init__(self, users: dict[str, dict[str, Any]], add_user: Callable[..., str]):
        self.users = users  # the server's users, id -> {"id", "username", "name"}
        self._add_user = add_user
        self.me = BOT_ID  # the account the OAuth 1.0a keys act for (not among `users`)
        self.refusing: set[str] = set()  # user ids that do not accept DMs from the bot
        self.sent: list[dict[str, Any]] = []  # {"participant_id", "text", "oauth", ids...}
        self._events = itertools.count(1)
        self._lock = threading.Lock()

    def add_recipient(self, username: str, *, accepts_dms: bool = True) -> str:
        uid = self._add_user(username)
        if not accepts_dms:
            self.refusing.add(uid)
        return uid

    def sent_to(self, user_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.sent if m["participant_id"] == user_id]

    def handles(self, path: str) -> bool:
        return path.startswith(("/2/users/by/username/", "/2/dm_conversations/"))

    def route(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, bearer: str
    ) -> Answer:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        oauth = oauth_params(auth)
        if oauth is None and auth != f"Bearer {bearer}":
            return 401, _problem(401, "Unauthorized", "Unauthorized")
        if match := re.fullmatch(r"/2/users/by/username/(\w{1,15})", path):
            if method != "GET":
                return 405, _problem(405, "Method Not Allowed", "Method Not Allowed")
            return self._user(match.group(1))
        if match := re.fullmatch(r"/2/dm_conversations/with/(\d+)/messages", path):
            if method != "POST":
                return 405, _problem(405, "Method Not Allowed", "Method Not Allowed")
            if oauth is None:
                detail = (
                    "Authenticating with OAuth 2.0 Application-Only is forbidden for this "
                    "endpoint.  Supported authentication types are [OAuth 1.0a User Context, "
                    "OAuth 2.0 User Context]."
                )
                return 403, _problem(403, "Unsupported Authentication", detail, UNSUPPORTED_AUTH)
            return self._send(match.group(1), body, oauth)
        return 404, _problem(404, "Not Found", "Not Found")

    def _user(self, username: str) -> Answer:
        for user in self.users.values():
            if user["username"].lower() == username.lower():
                return 200, {"data": dict(user)}
        return 200, {
            "errors": [
                {
                    "value": username,
                    "detail": f"Could not find user with username: [{username}].",
                    "title": "Not Found Error",
                    "resource_type": "user",
                    "parameter": "username",
                    "resource_id": username,
                    "type": NOT_FOUND,
                }
            ]
        }

    def _send(self, participant_id: str, body: bytes, oauth: dict[str, str]) -> Answer:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return 400, _problem(400, "Invalid Request", "Request body is not valid JSON")
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text or len(text) > MAX_DM_CHARS:
            return 400, _problem(
                400, "Invalid Request", f"text must hold 1 to {MAX_DM_CHARS} characters"
            )
        if participant_id not in self.users:
            return 400, _problem(
                400, "Invalid Request", f"Invalid participant_id: {participant_id}"
            )
        if participant_id in self.refusing:
            return 403, _problem(
                403, "Forbidden", "You are not permitted to send Direct Messages to this user."
            )
        with self._lock:
            low, high = sorted((int(self.me), int(participant_id)))
            message = {
                "dm_conversation_id": f"{low}-{high}",
                "dm_event_id": str(1_600_000_000_000_000_000 + next(self._events)),
            }
            self.sent.append(
                {
                    "participant_id": participant_id,
                    "text": text,
                    "consumer_key": oauth["oauth_consumer_key"],
                    "token": oauth["oauth_token"],
                    **message,
                }
            )
        return 201, {"data": message}


def _problem(status: int, title: str, detail: str, kind: str = "about:blank") -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": kind, "status": status}
