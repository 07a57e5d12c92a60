"""The `doctoctoc` command. Domain errors become one clear message and exit code 1."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import click

from bot.cli.common import config_option, load, open_db
from bot.core.errors import ConfigError, DocTocTocError, InputError
from bot.core.logs import setup_logging
from bot.storage.db import DatabaseError, failure_reason


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("-v", "--verbose", is_flag=True, help="Show informational logs.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines for people (text) or one JSON object per line (json).",
)
@click.version_option(package_name="doctoctoc-bot")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: bool, log_format: str) -> None:
    """DocTocToc bot: collects #DocTocToc clinical questions, classifies them by
    specialty and urgency, and routes them to the clinicians who can answer.

    Start with `doctoctoc check-config`, then `doctoctoc run --once`.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    setup_logging(level, log_format)


def _announce(loaded) -> None:
    for line in loaded.report():
        click.echo(line, err=True)


@cli.command("check-config")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@config_option
def check_config(path: str | None, config_path: str) -> None:
    """Check a config file (PATH, default --config). Exit 0 if valid, 1 if not.

    Prints every problem as FILE:LINE: key.path: message, and the sources or
    channels that are disabled (for example a missing ${ENV} secret).
    """
    from bot.preflight import preflight

    target = path or config_path
    try:
        loaded = load(target)
        preflight(loaded)  # the model, templates and replay files it points at must load
    except ConfigError as exc:
        for message in exc.messages:
            click.echo(message)
        click.echo(f"{target}: {len(exc.messages)} problem(s)")
        sys.exit(1)
    for line in loaded.report():
        click.echo(line)
    cfg = loaded.config
    click.echo(
        f"{target}: OK ({len(cfg.sources)} sources, {len(cfg.subscribers)} subscribers, "
        f"channels: {', '.join(n for n in ('smtp', 'mastodon', 'bluesky', 'x', 'outbox') if getattr(cfg.channels, n)) or 'none'})"
    )


@cli.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@config_option
def db_upgrade(config_path: str) -> None:
    """Create or migrate the database to the newest schema."""
    from bot.storage.db import current_tables, safe_url

    loaded = load(config_path)
    database = open_db(loaded)
    click.echo(
        f"{safe_url(loaded.config.database.url)}: up to date ({len(current_tables(database.engine))} tables)"
    )


@cli.command()
@click.option(
    "--once",
    is_flag=True,
    help="Run one full cycle (collect, classify, route, flush every pending item now), then exit.",
)
@config_option
def run(once: bool, config_path: str) -> None:
    """Run the bot: collect on schedule, send alerts at once and digests on time.

    The database is migrated on start. With --once, one cycle runs and every
    subscriber with pending items gets their alert or digest now.
    """
    from bot.pipeline import Pipeline
    from bot.preflight import preflight
    from bot.runlock import lock_run

    loaded = load(config_path)
    _announce(loaded)
    run_lock = lock_run(loaded.config.database.url)  # noqa: F841 - held until exit
    classifier = preflight(loaded)
    database = open_db(loaded)
    if once:
        pipeline = Pipeline(loaded, database, classifier=classifier)
        try:
            summary = pipeline.cycle(force_flush=True)
        finally:
            pipeline.close()
        click.echo(summary.line())
        problems = summary.problems()
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        if problems:
            sys.exit(2)
        return
    from bot.scheduler import BotRunner

    if loaded.config.web.serve:
        from bot.web.server import serve_in_thread

        serve_in_thread(loaded, database)
        click.echo(f"web app on http://{loaded.config.web.host}:{loaded.config.web.port}")
    click.echo(f"doctoctoc running on {loaded.path} (Ctrl-C to stop)")
    BotRunner(loaded, database, echo=click.echo, classifier=classifier).run()


@cli.command()
@click.option("--once", is_flag=True, help="Collect every source once, then exit (the default).")
@config_option
def collect(once: bool, config_path: str) -> None:
    """Collect new posts, replies and deletions from every enabled source, once."""
    from bot.pipeline import Pipeline

    loaded = load(config_path)
    _announce(loaded)
    pipeline = Pipeline(loaded, open_db(loaded), channels={})
    try:
        for run_ in pipeline.collect():
            state = f"failed: {run_.error}" if run_.error else "ok"
            click.echo(
                f"{run_.source}: {len(run_.new)} new, {run_.updated} edited, {run_.deleted} deleted, {run_.skipped} skipped ({state})"
            )
    finally:
        pipeline.close()


@cli.command()
@click.option(
    "--now", "now_", is_flag=True, help="Flush every pending item now, regardless of schedules."
)
@config_option
def digest(now_: bool, config_path: str) -> None:
    """Classify and route stored posts, then send the alerts and digests that are due.

    Run twice, the second run sends nothing: every item goes out once.
    """
    from bot.pipeline import Pipeline

    loaded = load(config_path)
    _announce(loaded)
    pipeline = Pipeline(loaded, open_db(loaded), collectors=[])
    try:
        click.echo(pipeline.cycle(force_flush=now_, collect=False).line())
    finally:
        pipeline.close()


@cli.command()
@click.argument("file", required=False, type=click.File("r", encoding="utf-8"), default="-")
@click.option(
    "--model",
    type=click.Path(dir_okay=False),
    help="Model artifact (default: the config's classifier.model, else the shipped one).",
)
@config_option
def classify(file: Any, model: str | None, config_path: str) -> None:
    """Classify JSON Lines posts from FILE (or stdin).

    Each input line has `text` and optional `id`, `lang`, `network`. Each output
    line, in the same order: {"id", "is_request", "specialty", "specialties"
    (top 3 with scores), "urgency", "urgency_score"}.
    """
    from classifiers import load_classifier

    items: list[dict[str, Any]] = []
    for number, line in enumerate(file, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {number}: not valid JSON: {exc.msg}") from exc
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise InputError(f"line {number}: expected an object with a 'text' string")
        items.append(item)
    if model is None and os.path.exists(config_path):
        model = load(config_path).config.classifier.model
    classifier = load_classifier(model)
    out = sys.stdout
    for start in range(0, len(items), 1000):
        batch = items[start : start + 1000]
        results = classifier.classify([i["text"] for i in batch], [i.get("lang") for i in batch])
        for item, result in zip(batch, results, strict=True):
            out.write(json.dumps(result.contract(item.get("id")), ensure_ascii=False) + "\n")
    out.flush()


def _register_optional() -> None:
    from importlib import import_module

    for module in ("bot.cli.admin", "bot.cli.classifier", "bot.cli.web"):
        try:
            mod = import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        for command in mod.COMMANDS:
            cli.add_command(command)


_register_optional()


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="doctoctoc", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        if debug:
            raise
        click.echo("error: invalid config:", err=True)
        for message in exc.messages:
            click.echo(f"  {message}", err=True)
        sys.exit(1)
    except DocTocTocError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except DatabaseError as exc:
        if debug:
            raise
        # A full disk, a read-only or unreachable database: one line, no traceback.
        click.echo(f"error: database: {failure_reason(exc)}", err=True)
        sys.exit(1)
    except OSError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
