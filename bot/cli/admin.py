"""Admin commands: export, status, unsubscribe, block/unblock authors."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from bot.cli.common import config_option, load, open_db
from bot.core.errors import InputError
from bot.core.post import iso
from bot.storage import cursors, health


@click.group()
def export() -> None:
    """Export stored data."""


@export.command("posts")
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option(
    "--include-deleted",
    is_flag=True,
    help="Also list posts deleted at their source (content already erased).",
)
@config_option
def export_posts(fmt: str, include_deleted: bool, config_path: str) -> None:
    """One JSON line per stored post with its latest classification.

    Fields: network, id, url, author, text (plain text), lang, created_at,
    hashtags, media, reply_to, deleted, classification. Posts deleted at their
    source are left out (unless --include-deleted, which shows them without content).
    """
    from bot.storage.classifications import latest_classification
    from bot.storage.posts import all_posts

    loaded = load(config_path)
    database = open_db(loaded)
    out = sys.stdout
    with database.session() as session:
        for row in all_posts(session, include_deleted=include_deleted):
            c = latest_classification(session, row.id)
            record = {
                "network": row.network,
                "id": row.native_id,
                "url": row.url,
                "author": {
                    "id": row.author_id,
                    "handle": row.author_handle,
                    "name": row.author_name,
                },
                "text": row.text,
                "lang": row.lang,
                "created_at": iso(row.created_at),
                "edited_at": iso(row.edited_at) if row.edited_at else None,
                "hashtags": row.hashtags or [],
                "media": row.media or [],
                "reply_to": row.reply_to,
                "thread_root": row.thread_root,
                "answer_count": row.answer_count,
                "deleted": row.deleted,
                "classification": None,
            }
            if c is not None:
                record["classification"] = {
                    "is_request": c.is_request,
                    "specialty": c.specialty,
                    "specialties": c.specialty_scores,
                    "urgency": c.urgency,
                    "urgency_score": c.urgency_score,
                    "cues": c.cues,
                    "uncertain": c.uncertain,
                    "model_version": c.model_version,
                }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


@click.command()
@config_option
def status(config_path: str) -> None:
    """Sources' health (unhealthy when failing longer than unhealthy_after), deliveries by status."""
    loaded = load(config_path)
    for line in loaded.report():
        click.echo(line)
    # Read only: no migration, so status also works on a database it may not write.
    database = open_db(loaded, upgrade=False)
    now = datetime.now(UTC)
    limits = {
        s.key: s.unhealthy_after
        for i, s in enumerate(loaded.config.sources)
        if loaded.source_enabled(i)
    }
    with database.session() as session:
        click.echo("sources:")
        for h in cursors.health(session, limits, now):
            if h.failing_since is None:
                last = iso(h.last_success_at) if h.last_success_at else "never"
                click.echo(f"  {h.source}: healthy (last success {last})")
            else:
                word = "healthy (retrying)" if h.healthy else "UNHEALTHY"
                click.echo(
                    f"  {h.source}: {word}, failing since {iso(h.failing_since)}: {h.last_error}"
                )
        click.echo(f"posts stored: {health.count_posts(session)}")
        click.echo("deliveries:")
        for state, count in health.delivery_counts(session).items():
            click.echo(f"  {state}: {count}")
        for row in health.failed_deliveries(session, limit=10):
            click.echo(
                f"  failed: post {row.post_id} to {row.subscriber_id} by {row.channel} after {row.attempts} attempts: {row.last_error}"
            )
        for row in health.retrying_deliveries(session, limit=10):
            click.echo(
                f"  retrying: post {row.post_id} to {row.subscriber_id} by {row.channel}, "
                f"{row.attempts} attempts, next try {iso(row.due_at)}: {row.last_error}"
            )


@click.command()
@click.argument("token")
@config_option
def unsubscribe(token: str, config_path: str) -> None:
    """Record an unsubscribe from the TOKEN of a digest's unsubscribe link."""
    from bot.storage.cases import unsubscribe as record_unsubscribe
    from digests.tokens import resolve_secret, verify

    loaded = load(config_path)
    database = open_db(loaded)
    with database.session() as session:
        secret = resolve_secret(session, loaded.config.web.secret)
        token = token.rstrip("/").rsplit("/", 1)[-1]
        sub_id = verify(secret, "unsubscribe", token)
        if sub_id is None:
            raise InputError(
                "this unsubscribe token is not valid (copy the whole link or its last part)"
            )
        row = record_unsubscribe(session, sub_id, datetime.now(UTC))
        if row is None:
            raise InputError(f"no subscriber '{sub_id}' in the database")
    click.echo(f"{row.name} ({sub_id}) is unsubscribed and gets nothing more.")


@click.command()
@click.argument("handle")
@click.option("--undo", is_flag=True, help="Unblock the author.")
@config_option
def block(handle: str, undo: bool, config_path: str) -> None:
    """Stop routing the posts of HANDLE (kept, never routed). --undo reverses it."""
    from bot.core.post import normalize_handle
    from bot.storage.blocked import block_author, unblock_author

    loaded = load(config_path)
    database = open_db(loaded)
    key = normalize_handle(handle)
    with database.session() as session:
        if undo:
            unblock_author(session, key)
            click.echo(f"{key} unblocked")
        else:
            block_author(session, key, datetime.now(UTC))
            click.echo(f"{key} blocked: posts kept, never routed")


@click.command()
@config_option
def purge(config_path: str) -> None:
    """Apply the retention rules now (`run` does it every night at 03:17 UTC)."""
    from bot.retention import purge as run_purge

    loaded = load(config_path)
    click.echo(run_purge(open_db(loaded), loaded, datetime.now(UTC)).line())


COMMANDS = [export, status, unsubscribe, block, purge]
