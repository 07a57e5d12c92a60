"""Outbox channel: writes each digest as the e-mail it would be, one private .eml file per
message in the outbox folder (written under a temporary name, then renamed). The demo default.

Inside a batch (`with channel.batch():`, as the delivery loop sends) the folder is opened
once and each file is created and renamed relative to it (no path walked per file, no
folder check per file); a send outside a batch opens the folder for itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

from bot.core.config_models import OutboxConfig, SubscriberConfig
from digests.channels.base import Channel, SendResult
from digests.email_message import email_bytes
from digests.render import Digest

_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
# Files are made relative to an open folder where the system can (Linux, macOS, BSD);
# os.replace shares os.rename's implementation (renameat) but is not listed.
_DIR_FD = {os.open, os.rename, os.unlink} <= os.supports_dir_fd


class OutboxChannel(Channel):
    name = "outbox"
    max_length = None
    sends_email = True
    fork_safe = True  # a file per send, the folder opened per batch

    def __init__(
        self, config: OutboxConfig, *, base_dir: Path | None = None, sender: str | None = None
    ):
        path = Path(config.dir)
        self.dir = path if path.is_absolute() or base_dir is None else base_dir / path
        self.sender = sender or "DocTocToc bot <bot@doctoctoc-bot.local>"
        self._folder: int | None = None  # the folder's descriptor, held for one batch
        self._in_batch = False
        self._names: dict[str, str] = {}  # subscriber key -> its part of a file name
        self._stamps: dict[tuple[datetime | None, object], str] = {}

    @contextmanager
    def batch(self) -> Iterator[None]:
        self._in_batch = True
        try:
            yield
        finally:
            self._in_batch = False
            self._release()

    def send(self, digest: Digest, subscriber: SubscriberConfig) -> SendResult:
        to = subscriber.email or f"{re.sub(r'[^a-z0-9.-]+', '-', subscriber.key)}@outbox.invalid"
        try:
            data = email_bytes(digest, sender=self.sender, to=to)
            name = self._file_name(digest)
            try:
                _write_atomic(self._open_folder(), self.dir, name, data)
            except FileNotFoundError:  # no folder yet (or removed): made, then written
                self._release()
                _write_atomic(self._open_folder(), self.dir, name, data)
        except (OSError, ValueError) as exc:
            self._release()  # opened afresh on the next send
            return SendResult.failure(f"cannot write to outbox {self.dir}: {exc}")
        finally:
            if not self._in_batch:
                self._release()
        return SendResult.success(os.path.join(self.dir, name))

    def close(self) -> None:
        self._release()

    def _file_name(self, digest: Digest) -> str:
        """<time>-<kind>-<subscriber>-<end of the message key>.eml (the same for a resend)."""
        sub = self._names.get(digest.subscriber_id)
        if sub is None:
            sub = self._names[digest.subscriber_id] = _safe(digest.subscriber_id)
        when = digest.generated_at
        # Keyed by the offset too: equal instants in other time zones have other wall times.
        at = (when, when.utcoffset() if when is not None else None)
        stamp = self._stamps.get(at)
        if stamp is None:
            stamp = self._stamps[at] = f"{when:%Y%m%dT%H%M%S}"
        return f"{stamp}-{digest.kind}-{sub}-{_safe(digest.message_key)[-12:]}.eml"

    def _open_folder(self) -> int | None:
        """The folder's descriptor (made private, 0700, when missing); None where files
        cannot be made relative to a folder (then by path)."""
        if self._folder is None and _DIR_FD:
            try:
                self._folder = os.open(self.dir, _FOLDER_FLAGS)
            except FileNotFoundError:
                # Private: digests name patients' situations and carry signed links.
                self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._folder = os.open(self.dir, _FOLDER_FLAGS)
        elif not _DIR_FD:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self._folder

    def _release(self) -> None:
        if self._folder is not None:
            folder, self._folder = self._folder, None
            os.close(folder)


def _write_atomic(folder: int | None, path: Path, name: str, data: bytes) -> None:
    """Write a 0600 file under a temporary name, then rename it: a crash or a full disk
    never leaves half a digest, nor a stray temporary file. Names are relative to `folder`
    (an open descriptor), or under `path` when it is None."""
    tmp = name[: -len(".eml")] + ".tmp"
    if folder is None:
        tmp, name = os.path.join(path, tmp), os.path.join(path, name)
    try:
        fd = os.open(tmp, _FILE_FLAGS, 0o600, dir_fd=folder)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=folder)
        raise


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text)[:60]
