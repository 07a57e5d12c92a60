"""The delivery loop: exactly-once sending from the message queue (bot/storage/deliveries).

Due messages are grouped into one message per (subscriber, channel, kind, key): the
message rows routing made in several cycles go out as one. Their rows are claimed
(`sending`, committed) in batches before any network call, sent, then settled in one
transaction per batch: `sent`, or back to `pending` with exponential backoff, then
`failed`. Batches start at one message and double, up to 1024 messages for e-mail and 8 for
direct messages. After a crash, `sending` rows older than `delivery.sending_timeout` are
reconciled per channel: e-mail is resent with the same Message-ID; DMs are never resent
(at most once) and are marked failed.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.core.config import LoadedConfig
from bot.storage import deliveries
from bot.storage.db import Database, sqlite_file
from bot.storage.deliveries import Failure, claim, load_posts
from digests.channels.base import Channel, SendResult
from digests.compose import Composer, Route
from digests.routing import active_subscribers
from digests.tokens import resolve_secret

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["FlushResult", "backoff", "claim", "flush", "reconcile"]
log = logging.getLogger(__name__)
EMAIL_BATCH = 1024  # messages claimed and settled per transaction (resent after a crash)
DM_BATCH = 8  # direct messages: a crash mid-batch fails them all (never resent)
PARALLEL_MIN = 2_000  # e-mails in a flush before it is shared with forked workers


@dataclass
class FlushResult:
    sent: list[tuple[str, str, str, int]] = field(
        default_factory=list
    )  # (subscriber, channel, kind, items)
    failed: int = 0
    retrying: int = 0
    dropped: int = 0

    @property
    def messages(self) -> int:
        return len(self.sent)


def backoff(attempts: int, loaded: LoadedConfig) -> timedelta:
    cfg = loaded.config.delivery
    delay = cfg.first_retry * (2 ** max(0, attempts - 1))
    return min(delay, cfg.max_retry)


def _resends(channels: dict[str, Channel]) -> Callable[[str], bool]:
    def resend(name: str) -> bool:
        channel = channels.get(name)
        return channel.resend_after_crash if channel else name in ("smtp", "outbox")

    return resend


def reconcile(
    session: Session,
    loaded: LoadedConfig,
    channels: dict[str, Channel],
    now: datetime,
    only_channel: str | None = None,
) -> int:
    """Settle deliveries left `sending` by a crash (see module docstring)."""
    timeout = loaded.config.delivery.sending_timeout
    return deliveries.reconcile(session, now, timeout, _resends(channels), only_channel)


def flush(
    db: Database,
    loaded: LoadedConfig,
    channels: dict[str, Channel],
    now: datetime,
    *,
    force: bool = False,
    after_claim: Callable[[], None] | None = None,
    only_channel: str | None = None,
    workers: int = 1,
) -> FlushResult:
    """Send every due delivery, grouped into one message per (subscriber, channel, kind).

    With `only_channel`, only that channel's deliveries are looked at: each channel's job
    works on its own rows, beside the others. `after_claim` runs after each batch is
    claimed, before it is sent (tests interleave another process there). With `workers`
    above 1, a flush of at least PARALLEL_MIN e-mails shares them with forked processes.
    """
    result = FlushResult()
    with db.session() as session:
        reconcile(session, loaded, channels, now, only_channel)
        subs = {s.key: s for s in active_subscribers(session, loaded)}
        due = deliveries.due_messages(session, now, force=force, only_channel=only_channel)
        result.dropped += _drop_gone(session, due, subs, now)
        groups: dict[tuple[str, str, str, str | None], tuple[int, list[int]]] = {}
        for m in due:
            # A disabled channel's messages wait until it works.
            if m.first_live is not None and m.subscriber_id in subs and m.channel in channels:
                key = (m.subscriber_id, m.channel, m.kind, m.message_key)
                first, messages = groups.get(key, (m.first_live, []))
                messages.append(m.id)
                groups[key] = (min(first, m.first_live), messages)
        secret = resolve_secret(session, loaded.config.web.secret)
    routes = [
        Route(subs[sub_id], channel, kind, key or _new_key(sub_id, channel, kind, now, first),
              first, sorted(messages))
        for (sub_id, channel, kind, key), (first, messages) in groups.items()
    ]  # fmt: skip
    sender = _Sender(db, loaded, channels, now, result, {}, secret)
    _share_out(sender, routes, after_claim, workers)
    return result


def _share_out(
    sender: _Sender, routes: list[Route], after_claim: Callable[[], None] | None, workers: int
) -> None:
    """Send the routes: shared between this process and `workers - 1` forked ones when they
    are many e-mails, else all from here. Each process claims, sends and settles its own
    share with its own database connections (the queue's claims make that safe, as between
    bot processes); a child reports what it sent through a pipe. A child that dies or hangs
    past delivery.sending_timeout leaves its claimed messages `sending`: reconciled like
    any crash (e-mail is resent with the same Message-ID)."""
    shared = [r for r in routes if _forkable(sender.channels[r.channel])]
    if workers < 2 or len(shared) < PARALLEL_MIN or not _can_fork(sender.db):
        sender.send_all(routes, after_claim)
        return
    # Dealt out in turn, not cut in blocks: routes come in the order of their first item,
    # so the first ones tend to be the subscribers with the most items.
    shares = [shared[i::workers] for i in range(workers)]
    children = [_Child.start(sender, share, after_claim) for share in shares[1:]]
    given = {id(route) for share in shares[1:] for route in share}
    try:
        sender.send_all([r for r in routes if id(r) not in given], after_claim)
    finally:
        timeout = sender.loaded.config.delivery.sending_timeout.total_seconds()
        deadline = time.monotonic() + timeout
        for child in children:
            child.join(sender.result, deadline)


def _forkable(channel: Channel) -> bool:
    return channel.fork_safe and channel.resend_after_crash


def _can_fork(db: Database) -> bool:
    """A child gets its own connections: not possible with an in-memory SQLite database."""
    if not hasattr(os, "fork"):
        return False
    return db.engine.dialect.name != "sqlite" or sqlite_file(db.url) is not None


_inherited: list[object] = []  # a child's copies of its parent's connection pools


@dataclass
class _Child:
    pid: int
    pipe: int
    messages: int

    @classmethod
    def start(
        cls, sender: _Sender, share: list[Route], after_claim: Callable[[], None] | None
    ) -> _Child:
        read, write = os.pipe()
        pid = os.fork()
        if pid:
            os.close(write)
            return cls(pid, read, len(share))
        os.close(read)  # the child, from here on
        code = 1
        try:
            # The parent's pooled connections are left untouched (never closed from here).
            _inherited.append(sender.db.engine.pool)
            sender.db.engine.dispose(close=False)
            sender.result = FlushResult()
            sender.send_all(share, after_claim)
            data = memoryview(pickle.dumps(sender.result))
            while data:
                data = data[os.write(write, data) :]
            code = 0
        except BaseException:  # noqa: BLE001 - reported by the parent, which carries on
            log.exception("delivery worker %d failed", os.getpid())
        finally:
            os._exit(code)

    def join(self, result: FlushResult, deadline: float) -> None:
        """Add the child's result to `result`; a dead or hung child is logged (and killed)."""
        chunks: list[bytes] = []
        try:
            while True:
                ready, _, _ = select.select(
                    [self.pipe], [], [], max(0.0, deadline - time.monotonic())
                )
                if not ready:
                    os.kill(self.pid, signal.SIGKILL)
                    break
                chunk = os.read(self.pipe, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(self.pipe)
            # its exit code, or minus the signal that ended it (-9: killed)
            status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        if status == 0 and chunks:
            child: FlushResult = pickle.loads(b"".join(chunks))
            result.sent += child.sent
            result.failed += child.failed
            result.retrying += child.retrying
            result.dropped += child.dropped
            return
        log.error(
            "delivery worker %d ended abnormally (exit status %d) with a share of %d "
            "messages: those it claimed and did not settle stay `sending` until "
            "delivery.sending_timeout, then e-mail is resent with the same Message-ID",
            self.pid, status, self.messages,
        )  # fmt: skip


def _drop_gone(
    session: Session, due: list[deliveries.DueMessage], subs: dict, now: datetime
) -> int:
    """Take out of their messages the items whose post is gone, and all the items of
    subscribers gone (unsubscribed, removed from config); how many."""
    concerned = [m.id for m in due if m.gone or m.subscriber_id not in subs]
    if not concerned:
        return 0
    subscriber = {m.id: m.subscriber_id for m in due}
    dropped: dict[str, dict[int, list[int]]] = defaultdict(dict)
    for message_id, items in deliveries.items_by_post_state(session, concerned).items():
        for row_id, live in items:
            if not live:
                reason = "post deleted at its source"
            elif subscriber[message_id] not in subs:
                reason = "unsubscribed or removed from config"
            else:
                continue
            dropped[reason].setdefault(message_id, []).append(row_id)
    return sum(deliveries.drop(session, items, reason, now) for reason, items in dropped.items())


def _new_key(sub_id: str, channel: str, kind: str, now: datetime, first_item: int) -> str:
    return f"{sub_id}.{channel}.{kind}.{now:%Y%m%dT%H%M%S}.{first_item}"


class _Sender:
    """Claims, sends and settles the messages of one flush, batch by batch, per channel."""

    def __init__(self, db, loaded, channels, now, result, posts, secret):
        self.db, self.loaded, self.channels, self.now = db, loaded, channels, now
        self.result = result

        def answers(post_id: int) -> list[str]:
            with db.session() as session:
                return deliveries.answer_texts(session, post_id)

        self.composer = Composer(loaded, secret, now, posts, answers)
        self.posts = posts

    def send_all(self, routes: list[Route], after_claim: Callable[[], None] | None) -> None:
        by_channel: dict[str, list[Route]] = defaultdict(list)
        for route in routes:
            by_channel[route.channel].append(route)
        for name, queue in by_channel.items():
            channel = self.channels[name]
            limit = EMAIL_BATCH if channel.resend_after_crash else DM_BATCH
            size, start = 1, 0
            while start < len(queue):
                batch = queue[start : start + size]
                start += len(batch)
                size = min(size * 2, limit)
                self._send_batch(channel, batch, after_claim)

    def _send_batch(
        self, channel: Channel, batch: list[Route], after_claim: Callable[[], None] | None
    ) -> None:
        claimed = deliveries.claim_batch(self.db, [(r.messages, r.key) for r in batch], self.now)
        if after_claim is not None:
            after_claim()
        self._load_missing(claimed)
        sent: list[int] = []  # message rows
        failures: list[Failure] = []
        before = len(self.result.sent)
        try:
            with channel.batch():
                for route, (messages, rows) in zip(batch, claimed, strict=True):
                    if rows:
                        self._send_one(channel, route, messages, rows, sent, failures)
                    else:
                        sent.extend(messages)  # nothing left (cannot happen: no empty rows)
        finally:  # even on KeyboardInterrupt: what went out is recorded as sent
            deliveries.settle(
                self.db, sent, failures, self.now,
                max_attempts=self.loaded.config.delivery.max_attempts,
                backoff=lambda attempts: backoff(attempts, self.loaded),
            )  # fmt: skip
        done = self.result.sent[before:]
        # One line a batch (each message: DEBUG; each failure: WARNING, see _send_one).
        log.info(
            "sent %d of %d messages by %s (%d items), %d failed",
            len(done), len(batch), channel.name, sum(n for *_, n in done), len(failures),
        )  # fmt: skip

    def _load_missing(self, claimed: list[deliveries.Claimed]) -> None:
        """The posts (and classifications) of claimed items not loaded yet: each post is
        loaded once a flush, by the first batch that has it."""
        missing = {post_id for _, rows in claimed for _, post_id, _ in rows} - self.posts.keys()
        if missing:
            with self.db.session() as session:
                self.posts.update(load_posts(session, missing))

    def _send_one(self, channel, route, messages, rows, sent, failures) -> None:
        sub = route.subscriber
        ids = [row_id for row_id, _, _ in rows]
        digest, content_key = self.composer.compose(
            sub, route.kind, [(post_id, reason) for _, post_id, reason in rows], route.key
        )
        if getattr(channel, "sends_email", False):
            self.composer.rendered(digest, content_key)
        try:
            outcome = channel.send(digest, sub)
        except Exception as exc:  # noqa: BLE001 - a channel bug must not lose the delivery
            log.exception("channel %s crashed", channel.name)
            outcome = SendResult.failure(f"channel error: {exc!r}")
        if outcome.ok:
            sent.extend(messages)
            self.result.sent.append((sub.key, channel.name, route.kind, len(ids)))
            log.debug(
                "sent %s to %s by %s (%d items): %s",
                route.kind, sub.key, channel.name, len(ids), outcome.detail,
            )  # fmt: skip
            return
        failures.append(Failure(messages, outcome.error or "", outcome.retryable))
        if not outcome.retryable:
            self.result.failed += len(ids)
            log.warning(
                "delivery to %s by %s failed for good: %s", sub.key, channel.name, outcome.error
            )
        else:
            self.result.retrying += len(ids)
            log.warning(
                "delivery to %s by %s failed, will retry: %s", sub.key, channel.name, outcome.error
            )
