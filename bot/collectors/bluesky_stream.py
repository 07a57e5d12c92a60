"""Bluesky firehose (`com.atproto.sync.subscribeRepos`): a resumable stream of matching posts.

Frames are decoded and filtered in bluesky_posts (`decode_and_filter`, benchmarked in
benchmarks/bench_firehose.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from datetime import datetime

from atproto import FirehoseSubscribeReposClient
from atproto_core.exceptions import AtProtocolError

from bot.collectors.base import Sleep
from bot.collectors.bluesky_posts import Decoded, FrameError, StreamErrorFrame, decode_and_filter
from bot.core.errors import CollectorError
from bot.core.post import Post, parse_time

__all__ = [
    "Decoded",
    "FirehoseStream",
    "FrameError",
    "StreamErrorFrame",
    "decode_and_filter",
    "batches",
]
log = logging.getLogger(__name__)


# --- the stream ----------------------------------------------------------------------------


class _RawClient(FirehoseSubscribeReposClient):
    """The SDK client, handing raw frames to the stream and sleeping through the stream."""

    def __init__(self, stream: FirehoseStream, base_uri: str, recv_timeout: float):
        super().__init__(None, base_uri=base_uri, recv_timeout=recv_timeout)
        self._stream = stream

    def _decode_frame(self, raw_frame: str | bytes) -> bytes | None:
        return bytes(raw_frame) if isinstance(raw_frame, bytes | bytearray) else None

    def _get_reconnection_delay(self) -> float:
        return 0.0  # the backoff is slept in _before_connect, through the injected sleep

    def _before_connect(self) -> None:
        self._stream._before_connect(self)


OnBatch = Callable[[Decoded], None]


class FirehoseStream:
    """Consume subscribeRepos from a cursor, handing over batches of matches in order.

    `run` drives the SDK's `FirehoseSubscribeReposClient`, hands each batch (whose `seq` is its
    last frame's) to a callback that commits it before reading further, reconnects with
    exponential backoff through an injectable sleep, and always resumes from the last seq
    handed over, so nothing is skipped. `#identity` events ride along in each batch
    (`Decoded.identities`) for the author cache (bluesky_profiles).

    Batches go out when `batch_size` items are pending, when the oldest pending item waited
    `max_delay` seconds, and (to checkpoint the cursor) every `checkpoint_every` seconds even
    without matches. The next frame is read only after the callback returned.
    """

    batch_size = 50
    max_delay = 2.0
    checkpoint_every = 10.0
    recv_timeout = 30.0
    backoff_base = 1.0
    backoff_max = 60.0

    def __init__(
        self,
        base_uri: str,
        hashtags: Collection[str],
        *,
        sleep: Sleep = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.base_uri = base_uri.rstrip("/")
        self.hashtags = list(hashtags)
        self.sleep = sleep
        self.monotonic = monotonic
        self.reconnects = 0
        self._client: _RawClient | None = None
        self._reset(None, None, None)

    def _reset(
        self, cursor: int | None, on_batch: OnBatch | None, stop: threading.Event | None
    ) -> None:
        self._seq = self._flushed_seq = cursor
        self._on_batch = on_batch
        self._stop = stop
        self._posts: list[Post] = []
        self._deletions: list[str] = []
        self._identities: list[tuple[str, str | None]] = []
        self._skipped = 0
        self._first_pending = self._last_flush = self._last_activity = self.monotonic()
        self._failures = self._connects = 0
        self._received = self._busy = False
        self._done = False
        self._error: BaseException | None = None
        self._max_failures: int | None = None
        self._catch_up_to: datetime | None = None

    def run(
        self,
        on_batch: OnBatch,
        *,
        cursor: int | None = None,
        stop: threading.Event | None = None,
        idle_timeout: float | None = None,
        max_duration: float | None = None,
        catch_up_to: datetime | None = None,
        max_failures: int | None = None,
    ) -> int | None:
        """Stream until `stop` is set (or idle / caught up / out of time); return the last seq.

        Exceptions raised by `on_batch` stop the stream and propagate; so does a CollectorError
        after `max_failures` consecutive failed connections.
        """
        self._reset(cursor, on_batch, stop)
        self._max_failures, self._catch_up_to = max_failures, catch_up_to
        finished = threading.Event()
        deadline = self.monotonic() + max_duration if max_duration else None
        watcher = threading.Thread(
            target=self._watch,
            args=(finished, idle_timeout, deadline),
            name="firehose-watch",
            daemon=True,
        )
        watcher.start()
        try:
            while not self._ending():
                client = self._client = _RawClient(self, self.base_uri, self.recv_timeout)
                try:
                    client.start(self._on_frame)
                except AtProtocolError as exc:
                    if self._error is None:
                        log.warning("firehose %s: %s", self.base_uri, exc)
                finally:
                    self._client = None
                if self._error is not None:
                    raise self._error
            self._flush()
            return self._seq
        finally:
            finished.set()
            watcher.join()

    # -- internals, all on the run() thread except _watch ---------------------------------

    def _ending(self) -> bool:
        return self._done or self._error is not None or bool(self._stop and self._stop.is_set())

    def _halt(self, client: _RawClient | None = None) -> None:
        self._done = True
        client = client or self._client
        if client is not None:
            client.stop()

    def _watch(self, finished: threading.Event, idle: float | None, deadline: float | None) -> None:
        while not finished.wait(0.05):
            now = self.monotonic()
            stopped = bool(self._stop and self._stop.is_set())
            quiet = idle and not self._busy and now - self._last_activity > idle
            if stopped or quiet or (deadline and now > deadline):
                self._halt()

    def _before_connect(self, client: _RawClient) -> None:
        try:
            self._flush()
        except BaseException as exc:
            self._error = exc
            self._halt(client)
            return
        if self._connects:
            self.reconnects += 1
            self._failures = 0 if self._received else self._failures + 1
            if self._max_failures is not None and self._failures > self._max_failures:
                self._error = CollectorError(
                    f"firehose {self.base_uri}: no connection after {self._failures} attempts"
                )
                self._halt(client)
                return
            self._wait(min(self.backoff_base * 2**self._failures, self.backoff_max))
        if self._ending():
            self._halt(client)
            return
        self._connects += 1
        self._received = False
        client.update_params({"cursor": self._seq} if self._seq is not None else {})
        self._last_activity = self.monotonic()

    def _wait(self, seconds: float) -> None:
        log.info("firehose %s: reconnecting in %.1fs", self.base_uri, seconds)
        if self.sleep is time.sleep and self._stop is not None:
            self._stop.wait(seconds)  # real waits end early on stop
        else:
            self.sleep(seconds)
        self._last_activity = self.monotonic()

    def _on_frame(self, raw: bytes) -> None:
        self._last_activity = now = self.monotonic()
        self._received = True
        if self._ending():
            self._halt()
            return
        try:
            decoded = decode_and_filter(raw, self.hashtags)
        except StreamErrorFrame as exc:
            log.warning("firehose %s sent an error: %s", self.base_uri, exc)
            if exc.error == "FutureCursor":
                self._seq = None  # the server's sequence restarted: resume from its live tail
            return
        except Exception as exc:  # noqa: BLE001 - one bad frame never stops the stream
            log.warning("firehose %s: frame skipped: %s", self.base_uri, exc)
            self._skipped += 1
            return
        if not (self._posts or self._deletions) and (decoded.posts or decoded.deletions):
            self._first_pending = now
        self._posts += decoded.posts
        self._deletions += decoded.deletions
        self._skipped += decoded.skipped
        if decoded.identities:
            self._identities += decoded.identities
        if decoded.seq is not None:
            self._seq = decoded.seq
        pending = len(self._posts) + len(self._deletions)
        if (
            pending >= self.batch_size
            or (pending and now - self._first_pending >= self.max_delay)
            or now - self._last_flush >= self.checkpoint_every
        ):
            try:
                self._flush()
            except BaseException as exc:  # noqa: BLE001 - stop reading; run() re-raises it
                self._error = exc
                self._halt()
                return
        if self._catch_up_to and decoded.time and _reached(decoded.time, self._catch_up_to):
            self._halt()

    def _flush(self) -> None:
        if not (self._posts or self._deletions or self._skipped) and self._seq == self._flushed_seq:
            return
        if self._on_batch is not None:
            self._busy = True  # storing may take a while: not idle
            try:
                self._on_batch(
                    Decoded(
                        self._posts,
                        self._deletions,
                        self._seq,
                        self._skipped,
                        identities=tuple(self._identities),
                    )
                )
            finally:
                self._busy = False
                self._last_activity = self.monotonic()
        self._posts, self._deletions, self._skipped, self._identities = [], [], 0, []
        self._flushed_seq = self._seq
        self._last_flush = self.monotonic()


def batches(stream: FirehoseStream, **run_kwargs: object) -> Iterator[Decoded]:
    """Run `stream.run(...)` in a thread and yield its batches one by one.

    The stream waits until the consumer asks for the next batch (i.e. has stored this one)
    before it reads further, so a cursor is never saved ahead of its posts. Exceptions of the
    stream are raised here; closing the generator stops the stream.
    """
    cond = threading.Condition()
    box: list[Decoded] = []
    state = {"taken": True, "closed": False, "ended": False}
    failure: list[BaseException] = []

    def hand_over(batch: Decoded) -> None:
        with cond:
            box.append(batch)
            state["taken"] = False
            cond.notify_all()
            cond.wait_for(lambda: state["taken"] or state["closed"])
            if not state["taken"]:
                raise CollectorError("firehose catch-up abandoned before the batch was stored")

    def work() -> None:
        try:
            stream.run(hand_over, stop=stop, **run_kwargs)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            failure.append(exc)
        finally:
            with cond:
                state["ended"] = True
                cond.notify_all()

    stop = threading.Event()
    thread = threading.Thread(target=work, name="firehose-catch-up", daemon=True)
    thread.start()
    try:
        while True:
            with cond:
                cond.wait_for(lambda: bool(box) or state["ended"])
                if not box:
                    break
                batch = box.pop(0)
            yield batch
            with cond:
                state["taken"] = True
                cond.notify_all()
        if failure:
            raise failure[0]
    finally:
        stop.set()
        with cond:
            state["closed"] = True
            cond.notify_all()
        thread.join()


def _reached(stamp: str, target: datetime) -> bool:
    try:
        return parse_time(stamp) >= target
    except ValueError:
        return False
