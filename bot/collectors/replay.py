"""Replay source: reads normalized posts from a JSON Lines file (the demo, and tests).

The cursor is the number of lines already read, so a second run reads nothing again.
Top-level posts must carry a configured hashtag; replies (thread answers) need not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

from bot.collectors.base import Collector, Page, matching_tags
from bot.core.errors import CollectorError
from bot.core.post import Post

log = logging.getLogger(__name__)
PAGE_SIZE = 200
PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


class ReplayCollector(Collector):
    network = "replay"

    def __init__(self, source, hashtags, *, base_dir: Path | None = None, **kwargs):
        super().__init__(source, hashtags, **kwargs)
        self.path = resolve_path(source.url or "", base_dir)

    def pages(self, cursor: str | None) -> Iterator[Page]:
        start = int(cursor or 0)
        try:
            # Bytes, decoded line by line: one invalid byte costs its line, not the file.
            lines = self.path.read_bytes().splitlines()
        except OSError as exc:
            raise CollectorError(f"cannot read replay file {self.path}: {exc}") from exc
        for begin in range(start, len(lines), PAGE_SIZE):
            page = Page(cursor=str(min(begin + PAGE_SIZE, len(lines))))
            for number, line in enumerate(lines[begin : begin + PAGE_SIZE], start=begin + 1):
                if not line.strip():
                    continue
                post = self._parse(line, number)
                if post is None:
                    page.skipped += 1
                elif post.deleted:
                    page.deleted.append(post.id)
                elif post.reply_to or matching_tags(post.hashtags, post.text, self.hashtags):
                    page.posts.append(post)
            yield page

    def _parse(self, line: bytes, number: int) -> Post | None:
        try:
            data = json.loads(line.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return Post.from_dict(data)
        except UnicodeDecodeError as exc:
            reason = f"invalid UTF-8 at byte {exc.start}: {excerpt(line[max(0, exc.start - 20) : exc.start + 20])}"
        except ValueError as exc:
            reason = excerpt(str(exc))
        log.warning("%s:%d: skipped malformed post: %s", self.path, number, reason)
        return None


def resolve_path(url: str, base_dir: Path | None) -> Path:
    """Relative to the config file; the bundled demo also resolves from the package."""
    path = Path(url)
    if not path.is_absolute():
        candidates = [(base_dir or Path.cwd()) / path, PACKAGE_ROOT / path]
        path = next((c for c in candidates if c.exists()), candidates[0])
    return path


def excerpt(value: bytes | str, limit: int = 120) -> str:
    """A short, printable excerpt of untrusted input for a log line."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
