"""The cursor of a Bluesky source: firehose position and search time in one JSON value."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlueskyCursor:
    """`{"seq": <firehose seq>, "since": <ISO time of the newest searched post>}`."""

    seq: int | None = None
    since: str | None = None

    def encode(self) -> str:
        data = {k: v for k, v in (("seq", self.seq), ("since", self.since)) if v is not None}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, value: str | None) -> BlueskyCursor:
        if not value:
            return cls()
        if value.isdigit():
            return cls(seq=int(value))
        try:
            data = json.loads(value)
            seq, since = data.get("seq"), data.get("since")
            return cls(
                seq=seq if isinstance(seq, int) else None,
                since=since if isinstance(since, str) else None,
            )
        except (ValueError, AttributeError):
            log.warning("ignoring unreadable bluesky cursor %r", value)
            return cls()
