"""Serving the web app with uvicorn: in the foreground (`doctoctoc web`) or in a thread of `run`."""

from __future__ import annotations

import logging
import threading
from typing import Any

from bot.core.config import LoadedConfig
from bot.storage.db import Database

log = logging.getLogger(__name__)


def make_server(loaded: LoadedConfig, db: Database, host: str, port: int) -> Any:
    import uvicorn

    from bot.web.app import create_app

    app = create_app(loaded, db)
    warm = threading.Thread(target=app.state.web.similar.refresh, name="similar-index", daemon=True)
    warm.start()  # the similar-case index is built in the background, not by the first visitor
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, proxy_headers=True
    )
    return uvicorn.Server(config)


def serve(loaded: LoadedConfig, db: Database, host: str, port: int) -> None:
    make_server(loaded, db, host, port).run()


def serve_in_thread(loaded: LoadedConfig, db: Database) -> threading.Thread:
    """`web.serve: true`: the web app beside the bot, in a daemon thread of the same process."""
    web = loaded.config.web
    server = make_server(loaded, db, web.host, web.port)
    thread = threading.Thread(target=server.run, name="web", daemon=True)
    thread.start()
    log.info("web app on http://%s:%s", web.host, web.port)
    return thread
