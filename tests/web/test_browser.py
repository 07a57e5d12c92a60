"""End to end in a real headless browser: Debian's chromium driven by Playwright.

Playwright's own browser download does not work offline: the test uses /usr/bin/chromium
(`apt-get install chromium`; .ci/run installs it) and skips, saying why, where it is absent.
Screenshots go to test-output/web/ (ignored by git; $DOCTOCTOC_TEST_OUTPUT overrides).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from bot.storage.models import SubscriberRow
from digests.routing import sync_subscribers
from tests.digests.helpers import T0, make_config
from tests.web.conftest import SECRET, SUBSCRIBERS, build_library, reply

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DOCTOCTOC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SIZES = {"phone": (390, 844), "desktop": (1280, 900)}

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
)
if not Path(CHROMIUM).exists():
    pytest.skip(
        f"no chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)",
        allow_module_level=True,
    )


@pytest.fixture
def live_site(tmp_path, db):
    """The app served by uvicorn on a socket that listens before the server thread starts."""
    import uvicorn

    from bot.web.app import create_app

    loaded = make_config(tmp_path, SUBSCRIBERS)
    with db.session() as s:
        sync_subscribers(s, loaded, T0)
    ids = build_library(db)
    reply(db, "r3", "m2", "Dermocorticoïde d'activité forte, 10 jours.", 90, "@derm2@x.example")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections wait in the backlog: no polling for readiness
    app = create_app(loaded, db, clock=lambda: T0 + timedelta(days=1))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", ids, db
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def out_dir() -> Path:
    path = Path(os.environ.get("DOCTOCTOC_TEST_OUTPUT", ROOT / "test-output")) / "web"
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_browse_filter_open_case_and_unsubscribe(live_site, out_dir):
    from digests.tokens import unsubscribe_token

    base, ids, db = live_site
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            for size, (width, height) in SIZES.items():
                page = browser.new_page(
                    viewport={"width": width, "height": height},
                    java_script_enabled=False,  # the site works without JavaScript
                    locale="fr-FR",
                )
                errors: list[str] = []
                page.on("console", lambda m, errors=errors: errors.append(m.text))
                page.goto(f"{base}/cases")
                assert page.locator("article.case").count() == 4
                page.screenshot(path=str(out_dir / f"cases-{size}.png"), full_page=True)
                page.select_option("select[name=specialty]", "dermatology")
                page.click("button[type=submit]")
                assert "specialty=dermatology" in page.url
                assert page.locator("article.case").count() == 3
                page.click(f"a[href^='/cases/{ids['eczema']}']")
                assert page.locator("h1").inner_text() == f"Cas n° {ids['eczema']}"
                answers = page.locator("section.answers li.answer")
                assert answers.count() == 2
                assert "eczéma nummulaire" in answers.nth(0).inner_text()
                similar = page.locator("section.similar article.case")
                assert similar.count() >= 2
                assert f"/cases/{ids['eczema2']}" in similar.nth(0).locator("a.open").get_attribute(
                    "href"
                )
                # the page fits the window: nothing wider than the viewport
                assert page.evaluate("document.documentElement.scrollWidth") <= width
                page.screenshot(path=str(out_dir / f"case-{size}.png"), full_page=True)
                assert not [e for e in errors if "Content Security Policy" in e]
                page.close()

            page = browser.new_page(java_script_enabled=False, locale="fr-FR")
            page.goto(f"{base}/unsubscribe/{unsubscribe_token(SECRET, 'claire')}")
            with db.session() as s:
                assert s.get(SubscriberRow, "claire").unsubscribed_at is None  # GET: nothing
            page.click("button[type=submit]")
            assert "ne recevra plus aucun message" in page.locator("p.done").inner_text()
            page.screenshot(path=str(out_dir / "unsubscribed.png"))
        finally:
            browser.close()
    with db.session() as s:
        assert s.get(SubscriberRow, "claire").unsubscribed_at is not None
    for name in ("cases-phone", "cases-desktop", "case-phone", "case-desktop", "unsubscribed"):
        assert (out_dir / f"{name}.png").stat().st_size > 1000
