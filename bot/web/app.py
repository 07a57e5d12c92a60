"""The web app (Starlette): the pages the e-mails link to, the case library, feeds, API, admin.

Handlers read and write through bot.storage; link tokens are digests.tokens' HMACs.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.core.config import LoadedConfig
from bot.core.labels import SPECIALTIES, URGENCIES
from bot.storage import cases as store
from bot.storage import cursors
from bot.storage import health as delivery_health
from bot.storage.classifications import latest_classification
from bot.storage.corrections import add_correction, recent_corrections
from bot.storage.db import Database
from bot.web.plumbing import HERE, SecurityHeaders, internal_error, not_found, template_env
from bot.web.similar import SimilarCases
from bot.web.texts import pick_language, texts
from bot.web.views import (
    BadQuery,
    answer_view,
    case_view,
    parse_filters,
    query_string,
    to_json,
)
from digests.i18n import specialty_name
from digests.tokens import resolve_secret, verify, viewer_token

log = logging.getLogger(__name__)
ADMIN_PASSWORD_ENV = "DOCTOCTOC_ADMIN_PASSWORD"


class WebApp:
    def __init__(
        self,
        loaded: LoadedConfig,
        db: Database,
        *,
        similar: SimilarCases | None = None,
        admin_password: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.loaded = loaded
        self.db = db
        self.clock = clock
        self.public = loaded.config.web.public_url.rstrip("/")
        self.admin_password = admin_password
        with db.session() as session:
            self.secret = resolve_secret(session, loaded.config.web.secret)
        self.similar = similar or SimilarCases(db, self._load_classifier)
        self.env = template_env()

    def _load_classifier(self) -> Any:
        from classifiers import load_classifier

        return load_classifier(self.loaded.config.classifier.model)

    # --- helpers ---------------------------------------------------------------------------

    def viewer(self, request: Request) -> tuple[dict[str, Any], str | None]:
        """(the viewer's subscriber settings, or {}; their v= token) from a digest link."""
        token = request.query_params.get("v")
        sub_id = verify(self.secret, "viewer", token) if token else None
        if sub_id is None:
            return {}, None
        with self.db.session() as session:
            row = store.subscriber(session, sub_id)
        return (row.settings or {} if row else {}), token

    def page(self, request: Request, template: str, status: int = 200, **ctx: Any) -> Response:
        settings = ctx.pop("viewer", {})
        langs = settings.get("language") or []
        lang = pick_language(
            request.query_params.get("hl"),
            langs[0] if langs else None,
            request.headers.get("accept-language", ""),
        )
        s = texts(lang)
        html = self.env.get_template(template).render(
            s=s,
            lang=lang,
            spec=lambda sp: specialty_name(lang, sp),
            specialties=SPECIALTIES,
            urgencies=URGENCIES,
            **ctx,
        )
        return Response(html, status, media_type="text/html; charset=utf-8")

    def plain(self, request: Request, key: str, status: int) -> Response:
        lang = pick_language(
            request.query_params.get("hl"), None, request.headers.get("accept-language", "")
        )
        return PlainTextResponse(texts(lang)[key], status)

    # --- the case library ------------------------------------------------------------------

    async def case_list(self, request: Request) -> Response:
        viewer, v = self.viewer(request)
        try:
            f = parse_filters(request.query_params)
        except BadQuery as exc:
            return PlainTextResponse(str(exc), 400)
        hide = bool(viewer.get("hide_authors"))
        with self.db.session() as session:
            result = store.list_cases(session, f)
        params = request.query_params
        return self.page(
            request,
            "cases.html.j2",
            viewer=viewer,
            cases=[case_view(p, c, hide) for p, c in result.cases],
            f=f,
            params=params,
            v=v,
            prev_qs=query_string(params, page=f.page - 1) if f.page > 1 else None,
            next_qs=query_string(params, page=f.page + 1) if result.has_next else None,
            case_qs=query_string({"v": v, "hl": params.get("hl")}),
        )

    def _case(self, case_id: int) -> tuple[Any, Any] | int:
        with self.db.session() as session:
            post = store.get_post(session, case_id)
            if post is None:
                return 404
            if post.deleted:
                return 410
            return post, latest_classification(session, post.id)

    async def case_page(self, request: Request) -> Response:
        viewer, v = self.viewer(request)
        found = self._case(request.path_params["case_id"])
        if found == 404:
            return self.plain(request, "not_found", 404)
        if found == 410:
            return self.plain(request, "gone", 410)
        post, c = found  # type: ignore[misc]
        hide = bool(viewer.get("hide_authors"))
        with self.db.session() as session:
            replies = store.answers(session, post.id)
        similar = self.similar.similar(post.id, post.text)
        return self.page(
            request,
            "case.html.j2",
            viewer=viewer,
            case=case_view(post, c, hide),
            answers=[answer_view(a, hide) for a in replies],
            similar=[(case_view(s.post, s.classification, hide), s.similarity) for s in similar],
            case_qs=query_string({"v": v, "hl": request.query_params.get("hl")}),
        )

    # --- feeds and API ---------------------------------------------------------------------

    async def feed(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not name.endswith(".atom"):
            return self.plain(request, "not_found", 404)
        spec = name.removesuffix(".atom")
        if spec != "all" and spec not in SPECIALTIES:
            return self.plain(request, "not_found", 404)
        f = store.CaseFilters(specialties=[] if spec == "all" else [spec], per_page=50)
        with self.db.session() as session:
            result = store.list_cases(session, f)
        entries = [case_view(p, c, False) for p, c in result.cases]
        lang = "fr"
        xml = self.env.get_template("feed.atom.j2").render(
            public=self.public,
            self_url=f"{self.public}/feeds/{name}",
            title=f"#DocTocToc: {specialty_name('en', spec) if spec != 'all' else 'all cases'}",
            updated=max((e["created_at"] for e in entries), default=self.clock()),
            entries=entries,
            spec=lambda sp: specialty_name(lang, sp),
            s=texts(lang),
        )
        return Response(xml, media_type="application/atom+xml; charset=utf-8")

    async def api_cases(self, request: Request) -> Response:
        viewer, _ = self.viewer(request)
        try:
            f = parse_filters(request.query_params)
        except BadQuery as exc:
            return JSONResponse({"error": str(exc)}, 400)
        hide = bool(viewer.get("hide_authors"))
        with self.db.session() as session:
            result = store.list_cases(session, f)
        params = request.query_params
        return JSONResponse(
            {
                "page": result.page,
                "next": f"/api/cases?{query_string(params, page=f.page + 1)}"
                if result.has_next
                else None,
                "cases": [to_json(case_view(p, c, hide)) for p, c in result.cases],
            }
        )

    async def api_case(self, request: Request) -> Response:
        viewer, _ = self.viewer(request)
        found = self._case(request.path_params["case_id"])
        if found in (404, 410):
            word = "not found" if found == 404 else "deleted at its source"
            return JSONResponse({"error": word}, found)  # type: ignore[arg-type]
        post, c = found  # type: ignore[misc]
        hide = bool(viewer.get("hide_authors"))
        with self.db.session() as session:
            replies = store.answers(session, post.id)
        out = to_json(case_view(post, c, hide))
        out["answers"] = [to_json(answer_view(a, hide)) for a in replies]
        out["similar"] = [
            {"id": s.post.id, "similarity": s.similarity, "answer_count": s.post.answer_count}
            for s in self.similar.similar(post.id, post.text)
        ]
        return JSONResponse(out)

    # --- the links in the e-mails ----------------------------------------------------------

    async def unsubscribe(self, request: Request) -> Response:
        token = request.path_params["token"]
        sub_id = verify(self.secret, "unsubscribe", token)
        if sub_id is None:
            return self.plain(request, "bad_link", 404)
        with self.db.session() as session:
            row = store.subscriber(session, sub_id)
            if row is None:
                return self.plain(request, "bad_link", 404)
            name, settings = row.name, row.settings or {}
        if request.method == "GET":  # link scanners follow links: a GET changes nothing
            return self.page(request, "unsubscribe.html.j2", viewer=settings, name=name, done=False)
        form = await request.form()
        if form.get("List-Unsubscribe") != "One-Click":
            return PlainTextResponse("expected the body List-Unsubscribe=One-Click", 400)
        with self.db.session() as session:
            store.unsubscribe(session, sub_id, self.clock())
        log.info("unsubscribed %s through the web", sub_id)
        return self.page(request, "unsubscribe.html.j2", viewer=settings, name=name, done=True)

    async def correct(self, request: Request) -> Response:
        from classifiers.corrections import CorrectionError, validate

        token = request.path_params["token"]
        value = verify(self.secret, "correct", token)
        post_ref, _, sub_id = (value or "").partition(":")
        if value is None or not post_ref.isdigit():
            return self.plain(request, "bad_link", 404)
        with self.db.session() as session:
            sub = store.subscriber(session, sub_id)
            used = store.token_used(session, token)
        viewer = (sub.settings or {}) if sub else {}
        found = self._case(int(post_ref))
        if found == 404:
            return self.plain(request, "not_found", 404)
        if found == 410:
            return self.plain(request, "gone", 410)
        post, c = found  # type: ignore[misc]
        ctx: dict[str, Any] = {
            "viewer": viewer,
            "case": case_view(post, c, bool(viewer.get("hide_authors"))),
            "done": False,
            "used": used,
            "error": None,
        }
        if request.method == "GET" or used:
            return self.page(request, "correct.html.j2", **ctx)
        form = await request.form()
        kind = form.get("kind")
        specialty = form.get("specialty") or None
        urgency = form.get("urgency") or None
        is_request = {"request": True, "not_request": False}.get(str(kind))
        if is_request is False:
            specialty = urgency = None
        if (specialty and specialty not in SPECIALTIES) or (urgency and urgency not in URGENCIES):
            return PlainTextResponse("unknown specialty or urgency", 400)
        if is_request is None and not specialty and not urgency:
            return self.page(request, "correct.html.j2", 400, **(ctx | {"error": "nothing"}))
        with self.db.session() as session:
            claimed = store.claim_token(session, "correct", token, self.clock())
        if not claimed:
            return self.page(request, "correct.html.j2", **(ctx | {"used": True}))
        try:
            is_request = validate(is_request, specialty, urgency)  # type: ignore[arg-type]
            with self.db.session() as session:
                add_correction(
                    session,
                    str(post.id),
                    is_request=is_request,
                    specialty=specialty,  # type: ignore[arg-type]
                    urgency=urgency,  # type: ignore[arg-type]
                    corrected_by=sub.name if sub else sub_id,
                )
        except CorrectionError as exc:
            with self.db.session() as session:
                store.release_token(session, token)
            return PlainTextResponse(str(exc), 400)
        return self.page(request, "correct.html.j2", **(ctx | {"done": True}))

    # --- admin -----------------------------------------------------------------------------

    def _admin_allowed(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            _, _, given = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        assert self.admin_password is not None
        return hmac.compare_digest(given.encode(), self.admin_password.encode())

    async def admin(self, request: Request) -> Response:
        if not self.admin_password:
            return PlainTextResponse(f"the admin page is off: set {ADMIN_PASSWORD_ENV}", 404)
        if not self._admin_allowed(request):
            return PlainTextResponse(
                "password required",
                401,
                headers={"WWW-Authenticate": 'Basic realm="doctoctoc admin"'},
            )
        now = self.clock()
        limits = {
            s.key: s.unhealthy_after
            for i, s in enumerate(self.loaded.config.sources)
            if self.loaded.source_enabled(i)
        }
        with self.db.session() as session:
            health = cursors.health(session, limits, now)
            counts = delivery_health.delivery_counts(session)
            attention = delivery_health.deliveries_needing_attention(session)
            corrections = recent_corrections(session)
            posts = delivery_health.count_posts(session)
        return self.page(
            request,
            "admin.html.j2",
            viewer={},
            report=self.loaded.report(),
            health=health,
            counts=counts,
            attention=attention,
            corrections=corrections,
            posts=posts,
        )

    async def style(self, request: Request) -> Response:
        return FileResponse(HERE / "static" / "style.css", media_type="text/css")

    async def home(self, request: Request) -> Response:
        return await self.case_list(request)

    def viewer_token(self, subscriber_id: str) -> str:
        return viewer_token(self.secret, subscriber_id)


def create_app(
    loaded: LoadedConfig,
    db: Database,
    *,
    similar: SimilarCases | None = None,
    admin_password: str | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Starlette:
    """The ASGI app. The admin password defaults to $DOCTOCTOC_ADMIN_PASSWORD."""
    web = WebApp(
        loaded,
        db,
        similar=similar,
        admin_password=admin_password or os.environ.get(ADMIN_PASSWORD_ENV) or None,
        clock=clock or (lambda: datetime.now(UTC)),
    )
    routes = [
        Route("/", web.home),
        Route("/cases", web.case_list),
        Route("/cases/{case_id:int}", web.case_page),
        Route("/unsubscribe/{token}", web.unsubscribe, methods=["GET", "POST"]),
        Route("/correct/{token}", web.correct, methods=["GET", "POST"]),
        Route("/feeds/{name}", web.feed),
        Route("/api/cases", web.api_cases),
        Route("/api/cases/{case_id:int}", web.api_case),
        Route("/admin", web.admin),
        Route("/static/style.css", web.style),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: not_found, Exception: internal_error},
    )
    app.state.web = web
    app.add_middleware(SecurityHeaders)
    return app
