"""Bluesky chat (DMs) and handle resolution for the fake Bluesky server.

Shapes follow the lexicons: `com.atproto.identity.resolveHandle` -> `{did}`;
`chat.bsky.convo.getConvoForMembers` (GET, `members=did`, repeated) -> `{convo: ConvoView}`
with `id, rev, members[ProfileViewBasic], muted, unreadCount`; `chat.bsky.convo.sendMessage`
(POST `{convoId, message: {text}}`) -> `MessageView{id, rev, text, sender{did}, sentAt}`.

On Bluesky the chat service is reached through the PDS with the header
`atproto-proxy: did:web:api.bsky.chat#bsky_chat`; without it the fake answers 501, as a PDS
that does not serve the method. Errors are XRPC errors (`{"error", "message"}`) with the names
the lexicons list: `RecipientNotFound`, `MessagesDisabled`, `InvalidConvo`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"
MAX_GRAPHEMES = 1000  # chat.bsky.convo.defs#messageInput text: maxGraphemes 1000

Answer = tuple[int, dict[str, Any]]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeChat:
    """Accounts that can be messaged, their direct convos and every message sent."""

    def __init__(self, bot_did: str, bot_handle: str):
        self.bot_did = bot_did
        self.profiles: dict[str, dict[str, Any]] = {}  # did -> ProfileViewBasic
        self.handles: dict[str, str] = {}  # handle -> did
        self.disabled: set[str] = set()  # dids that accept no messages from the bot
        self.convos: dict[str, dict[str, Any]] = {}  # convo id -> ConvoView
        self.messages: list[dict[str, Any]] = []  # {"convoId", "text", "sender", "id"}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self.add_account(bot_handle, bot_did, display_name="DocTocToc bot")

    def add_account(
        self,
        handle: str,
        did: str | None = None,
        *,
        display_name: str | None = None,
        accepts_messages: bool = True,
    ) -> str:
        """An account (its DID is returned); `accepts_messages=False`: chat disabled for the bot."""
        did = did or "did:plc:" + hashlib.sha256(handle.encode()).hexdigest()[:24]
        with self._lock:
            self.handles[handle.lower()] = did
            self.profiles[did] = {
                "did": did,
                "handle": handle,
                "displayName": display_name or handle.split(".")[0].title(),
                "chatDisabled": False,
            }
            if not accepts_messages:
                self.disabled.add(did)
        return did

    def messages_to(self, did: str) -> list[dict[str, Any]]:
        """Messages sent in the direct convo between the bot and `did`."""
        with self._lock:
            ids = {cid for cid, c in self.convos.items() if did in _member_dids(c)}
            return [m for m in self.messages if m["convoId"] in ids]

    # --- endpoints ------------------------------------------------------------------------

    def resolve_handle(self, q: Mapping[str, list[str]]) -> Answer:
        handle = (q.get("handle") or [""])[0].lower()
        with self._lock:
            did = self.handles.get(handle)
        if did is None:
            return 400, {"error": "InvalidRequest", "message": "Unable to resolve handle"}
        return 200, {"did": did}

    def route(
        self,
        method: str,
        nsid: str,
        q: Mapping[str, list[str]],
        body: bytes,
        headers: Mapping[str, str],
    ) -> Answer:
        proxy = {k.lower(): v for k, v in headers.items()}.get("atproto-proxy")
        if proxy != CHAT_PROXY:
            return 501, {
                "error": "MethodNotImplemented",
                "message": f"Method Not Implemented: {nsid} (no atproto-proxy for bsky_chat)",
            }
        if nsid == "chat.bsky.convo.getConvoForMembers" and method == "GET":
            return self._convo_for_members(q.get("members", []))
        if nsid == "chat.bsky.convo.sendMessage" and method == "POST":
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return 400, {"error": "InvalidRequest", "message": "Invalid JSON body"}
            return self._send(data)
        return 501, {"error": "MethodNotImplemented", "message": f"Method Not Implemented: {nsid}"}

    def _convo_for_members(self, members: list[str]) -> Answer:
        if not 1 <= len(members) <= 10 or not all(m.startswith("did:") for m in members):
            return 400, {
                "error": "InvalidRequest",
                "message": "Error: params/members must be an array of 1 to 10 DIDs",
            }
        dids = sorted({self.bot_did, *members})
        with self._lock:
            for did in dids:
                if did not in self.profiles:
                    return 400, {"error": "RecipientNotFound", "message": f"no account {did}"}
                if did in self.disabled:
                    return 400, {
                        "error": "MessagesDisabled",
                        "message": "recipient has disabled incoming messages",
                    }
            convo_id = "3k" + hashlib.sha256("|".join(dids).encode()).hexdigest()[:11]
            convo = self.convos.get(convo_id)
            if convo is None:
                convo = {
                    "id": convo_id,
                    "rev": self._rev(),
                    "members": [self.profiles[d] for d in dids],
                    "muted": False,
                    "unreadCount": 0,
                    "status": "accepted",
                }
                self.convos[convo_id] = convo
            return 200, {"convo": convo}

    def _send(self, data: dict[str, Any]) -> Answer:
        convo_id = data.get("convoId")
        message = data.get("message")
        if not isinstance(convo_id, str) or not isinstance(message, dict):
            return 400, {
                "error": "InvalidRequest",
                "message": 'Input must have the properties "convoId" and "message"',
            }
        text = message.get("text")
        if not isinstance(text, str):
            return 400, {
                "error": "InvalidRequest",
                "message": "Input/message/text must be a string",
            }
        # Code points bound the grapheme count from above: stricter than Bluesky, never looser.
        if len(text) > MAX_GRAPHEMES:
            return 400, {
                "error": "InvalidRequest",
                "message": f"Input/message/text must not be longer than {MAX_GRAPHEMES} graphemes",
            }
        with self._lock:
            convo = self.convos.get(convo_id)
            if convo is None or self.bot_did not in _member_dids(convo):
                return 400, {"error": "InvalidConvo", "message": "Convo not found"}
            rev = self._rev()
            view = {
                "id": f"msg{next(self._counter):06d}",
                "rev": rev,
                "text": text,
                "sender": {"did": self.bot_did},
                "sentAt": _now(),
            }
            convo["rev"] = rev
            convo["lastMessage"] = {"$type": "chat.bsky.convo.defs#messageView", **view}
            self.messages.append({"convoId": convo_id, **view})
        return 200, view

    def _rev(self) -> str:
        return f"22{next(self._counter):011d}"


def _member_dids(convo: dict[str, Any]) -> set[str]:
    return {m["did"] for m in convo["members"]}
