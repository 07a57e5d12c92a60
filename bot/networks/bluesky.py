"""Bluesky (AT Protocol) through atproto: the client, and which failures are worth retrying."""

from __future__ import annotations

from typing import Any

import httpx
from atproto import Client, Request
from atproto_client import exceptions as atx

from bot.networks.failure import (
    AUTH,
    NOT_FOUND,
    RATE_LIMITED,
    REFUSED,
    UNAVAILABLE,
    UNREACHABLE,
    Failure,
    retry_after_seconds,
)


def make_client(url: str, *, timeout: float | None = None) -> Client:
    """An XRPC client of `url` (a PDS or an AppView); `timeout` in seconds (None: atproto's)."""
    request = Request(timeout=timeout) if timeout is not None else Request()
    return Client(base_url=url, request=request)


def login(client: Client, handle: str, app_password: str) -> None:
    """Open a session (atproto refreshes it itself); the profile is not fetched."""
    client.login(handle, app_password, fetch_bsky_profile=False)


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of an atproto error; None when no answer arrived (transport error)."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def classify(exc: BaseException) -> Failure | None:
    """What an atproto/httpx error means; None for anything else (a bug, not the network).

    HTTP semantics, whatever exception class atproto picks: 429, 408 and 5xx are transient,
    and so is a transport error (no answer); 401/403 are refused credentials; a 400 whose
    XRPC error is `NotFound` is a missing resource; any other 4xx is refused for good.
    """
    if isinstance(exc, httpx.HTTPError):  # transport errors atproto does not wrap
        return Failure(UNREACHABLE)
    if not isinstance(exc, atx.RequestErrorBase):
        return None
    status = status_code(exc)
    if status is None:  # NetworkError, InvokeTimeoutError
        return Failure(UNREACHABLE)
    if status == 429:
        headers = exc.response.headers if exc.response is not None else {}
        return Failure(RATE_LIMITED, status, retry_after_seconds(headers))
    if status >= 500 or status == 408:
        return Failure(UNAVAILABLE, status)
    if status in (401, 403):
        return Failure(AUTH, status)
    if status == 400 and xrpc_error(exc) == "NotFound":
        return Failure(NOT_FOUND, status)
    return Failure(REFUSED, status)


def xrpc_error(exc: BaseException) -> Any:
    """The XRPC error name of an answer (`{"error": "NotFound", ...}`), if any."""
    content = getattr(getattr(exc, "response", None), "content", None)
    return getattr(content, "error", None)
