"""How a call to a network failed: worth retrying or not, and how long the server asks to wait."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

# What went wrong, as each network module reads its client library's errors.
RATE_LIMITED = "rate_limited"  # 429
UNAVAILABLE = "unavailable"  # 5xx (and 408 where the network module says so)
UNREACHABLE = "unreachable"  # no answer: connection refused or reset, timeout
BAD_ANSWER = "bad_answer"  # an answer that is not what the API promises (not JSON)
AUTH = "auth"  # credentials refused (401, 403)
NOT_FOUND = "not_found"  # the resource is gone (deleted post)
REFUSED = "refused"  # any other 4xx: the same request will be refused again

TRANSIENT = frozenset({RATE_LIMITED, UNAVAILABLE, UNREACHABLE, BAD_ANSWER})


@dataclass(frozen=True)
class Failure:
    """One failed call: its kind, the HTTP status when an answer carried one, the wait asked."""

    kind: str
    status: int | None = None
    retry_after: float | None = None  # seconds, from Retry-After or a rate-limit reset header

    @property
    def transient(self) -> bool:
        """Worth retrying later: the same request may succeed."""
        return self.kind in TRANSIENT


def retry_after_seconds(headers: dict[str, str] | object, now: float | None = None) -> float | None:
    """Seconds to wait from Retry-After or x-rate-limit-reset / X-RateLimit-Reset headers."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    value = get("Retry-After") or get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
                return max(0.0, when.timestamp() - (now or time.time()))
            except (TypeError, ValueError):
                return None
    reset = get("x-rate-limit-reset") or get("X-RateLimit-Reset") or get("ratelimit-reset")
    if reset:
        now = now or time.time()
        try:
            number = float(reset)
        except ValueError:
            try:
                return max(
                    0.0, datetime.fromisoformat(reset.replace("Z", "+00:00")).timestamp() - now
                )
            except ValueError:
                return None
        # Epoch seconds (X, Mastodon numeric) or a delay in seconds (IETF draft).
        return max(0.0, number - now) if number > 1e9 else max(0.0, number)
    return None
