"""What every page shares: the Jinja environment (the web's and the digests' templates), the
privacy and safety headers, and the not-found and internal-error responses."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from digests.render import TEMPLATES as DIGEST_TEMPLATES
from digests.render import clean_text

log = logging.getLogger("bot.web.app")  # the logger name the app always used
HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the privacy and safety headers to every response (pure ASGI middleware)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def template_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader([HERE / "templates", DIGEST_TEMPLATES]),
        autoescape=select_autoescape(["html", "html.j2", "atom.j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["clean"] = clean_text
    env.filters["day"] = lambda d: d.strftime("%Y-%m-%d %H:%M UTC") if d else ""
    env.filters["iso"] = lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
    return env


async def not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    return PlainTextResponse("not found" if status == 404 else str(exc.detail), status)  # type: ignore[union-attr]


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("web request %s failed", request.url.path, exc_info=exc)
    return PlainTextResponse("internal error (logged)", 500)
