"""The outbox in a batch (issue 14): its folder is held open for the batch's sends, and the
files stay what they were: private (0600, folder 0700), whole, one per message, with the
same names; the folder removed or moved between or during batches is handled."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import replace
from pathlib import Path

from bot.core.config_models import OutboxConfig, SubscriberConfig
from digests.channels.outbox import OutboxChannel
from digests.email_message import email_bytes

from .helpers import T0
from .test_render import digest, item

SUB = SubscriberConfig(name="Dr Derm", id="derm", email="derm@example.org")


def _digests(n: int):
    base = digest([item("Plaque ? #DocTocToc")])
    return [replace(base, message_key=f"derm.outbox.digest.{i:04d}") for i in range(n)]


def _outbox(tmp_path: Path) -> tuple[Path, OutboxChannel]:
    """An outbox channel writing to tmp_path/outbox (not made yet), and that folder."""
    folder = tmp_path / "outbox"
    return folder, OutboxChannel(OutboxConfig(dir=str(folder)))


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_batch_writes_private_whole_files_under_their_names(tmp_path):
    folder = tmp_path / "outbox"
    channel = OutboxChannel(OutboxConfig(dir=str(folder)), sender="bot@doctoctoc.example")
    digests = _digests(5)
    old = os.umask(0o022)
    try:
        with channel.batch():
            results = [channel.send(d, SUB) for d in digests]
    finally:
        os.umask(old)
    assert all(r.ok for r in results)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(folder.iterdir())
    assert [f.suffix for f in files] == [".eml"] * 5  # no temporary file left
    assert [r.detail for r in results] == [str(folder / Path(r.detail).name) for r in results]
    for d, r in zip(digests, results, strict=True):
        path = Path(r.detail)
        assert path.name == f"{T0:%Y%m%dT%H%M%S}-digest-derm--digest-{d.message_key[-4:]}.eml"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        data = path.read_bytes()
        # Whole: the message as it is built (its boundary is random, the rest is fixed).
        expected = email_bytes(d, sender="bot@doctoctoc.example", to=SUB.email)
        assert len(data) == len(expected) and data.split(b"\r\n")[:8] == expected.split(b"\r\n")[:8]


def test_the_folder_is_held_for_the_batch_only(tmp_path):
    channel = OutboxChannel(OutboxConfig(dir=str(tmp_path / "outbox")))
    before = _open_fds()
    assert channel.send(_digests(1)[0], SUB).ok
    assert _open_fds() == before  # a send outside a batch keeps nothing open
    with channel.batch():
        assert channel.send(_digests(2)[1], SUB).ok
        assert _open_fds() == before + 1
    assert _open_fds() == before


def test_folder_removed_during_a_batch_is_made_again(tmp_path):
    folder, channel = _outbox(tmp_path)
    first, second = _digests(2)
    with channel.batch():
        assert channel.send(first, SUB).ok
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
        assert channel.send(second, SUB).ok
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert len(list(folder.glob("*.eml"))) == 1


def test_folder_moved_between_batches_gets_the_next_files_at_its_path(tmp_path):
    folder, channel = _outbox(tmp_path)
    first, second = _digests(2)
    with channel.batch():
        assert channel.send(first, SUB).ok
    folder.rename(tmp_path / "outbox.old")  # e.g. rotated by the operator
    with channel.batch():
        assert channel.send(second, SUB).ok
    assert len(list((tmp_path / "outbox.old").glob("*.eml"))) == 1
    assert len(list(folder.glob("*.eml"))) == 1


def test_a_failed_write_in_a_batch_leaves_no_file_and_the_next_one_works(tmp_path, monkeypatch):
    folder, channel = _outbox(tmp_path)
    first, second = _digests(2)
    real_replace = os.replace
    calls = []

    def full_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(*args, **kwargs)

    monkeypatch.setattr("digests.channels.outbox.os.replace", full_once)
    with channel.batch():
        failed = channel.send(first, SUB)
        assert not failed.ok and "No space left" in (failed.error or "")
        assert list(folder.iterdir()) == []  # neither half a file nor a temporary one
        assert channel.send(second, SUB).ok
    assert [f.suffix for f in folder.iterdir()] == [".eml"]


def test_a_file_in_the_way_of_the_folder_fails_every_send_of_the_batch(tmp_path):
    folder = tmp_path / "outbox"
    folder.write_text("not a directory")
    channel = OutboxChannel(OutboxConfig(dir=str(folder)))
    with channel.batch():
        results = [channel.send(d, SUB) for d in _digests(2)]
    assert [r.ok for r in results] == [False, False]
    assert all(r.retryable and "cannot write to outbox" in (r.error or "") for r in results)


def test_without_folder_descriptors_files_are_written_by_path(tmp_path, monkeypatch):
    monkeypatch.setattr("digests.channels.outbox._DIR_FD", False)  # e.g. Windows
    folder, channel = _outbox(tmp_path)
    with channel.batch():
        results = [channel.send(d, SUB) for d in _digests(3)]
    assert all(r.ok for r in results) and stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(f.name for f in folder.iterdir()) == sorted(Path(r.detail).name for r in results)
    assert all(stat.S_IMODE(Path(r.detail).stat().st_mode) == 0o600 for r in results)
