"""The `web` command: the case library and the pages the e-mails link to (registered by bot.cli)."""

from __future__ import annotations

import click

from bot.cli.common import config_option, load, open_db


@click.command("web")
@click.option("--host", default=None, help="Address to listen on (default: web.host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: web.port, 8080).")
@config_option
def web(host: str | None, port: int | None, config_path: str) -> None:
    """Serve the web app: unsubscribe and correction links, case list and pages, feeds, API.

    The admin page (/admin) asks for the password in $DOCTOCTOC_ADMIN_PASSWORD (off when unset).
    Put it behind an HTTPS reverse proxy whose address is web.public_url.
    """
    from bot.web.server import serve

    loaded = load(config_path)
    database = open_db(loaded)
    cfg = loaded.config.web
    host, port = host or cfg.host, port or cfg.port
    click.echo(
        f"doctoctoc web on http://{host}:{port} (links use {cfg.public_url}; Ctrl-C to stop)"
    )
    serve(loaded, database, host, port)


COMMANDS = [web]
