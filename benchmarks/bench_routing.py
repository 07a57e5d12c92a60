"""Routing + delivery benchmark, and collection-to-SMTP latency of an urgent alert.

1. One cycle as `doctoctoc run --once` does it: 200 new requests routed to 10,000 outbox
   subscribers and every message written as a .eml file (SQLite, or --database-url),
   timed end to end beside a calibration loop (10^7 additions in pure Python) run in the
   same process, with peak memory and the share of routing and delivery.
2. An urgent post collected (replay source) -> classified -> routed -> handed to a real
   SMTP server on 127.0.0.1: milliseconds, median of several runs.

Run: .venv/bin/python benchmarks/bench_routing.py [--subscribers 10000] [--requests 200]
     [--database-url postgresql://...] [--render-only] [--profile] [--no-latency] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.config import load_config  # noqa: E402
from bot.core.labels import SPECIALTIES  # noqa: E402
from bot.core.post import Author, Post  # noqa: E402
from bot.pipeline import Pipeline  # noqa: E402
from bot.storage.db import Database  # noqa: E402
from bot.storage.models import ClassificationRow  # noqa: E402
from bot.storage.posts import store_posts  # noqa: E402
from digests.channels import build_channels  # noqa: E402
from digests.channels.base import Channel, SendResult  # noqa: E402
from digests.email_message import build_email  # noqa: E402
from tests.pg import scratch_schema  # noqa: E402

COMMAND = ".venv/bin/python benchmarks/bench_routing.py"


class RenderOnly(Channel):
    """Renders each message completely (subject, text, HTML, MIME) and drops it."""

    name = "outbox"

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    def send(self, digest, subscriber) -> SendResult:
        data = bytes(
            build_email(
                digest, sender="bot@doctoctoc.example", to=subscriber.email or "x@example.org"
            )
        )
        self.messages += 1
        self.bytes += len(data)
        return SendResult.success()


def write_config(folder: Path, subscribers: int, rng: random.Random) -> Path:
    lines = [
        "version: 1",
        "hashtags: [DocTocToc]",
        "channels:",
        "  outbox: {dir: outbox}",
        "subscribers:",
    ]
    for i in range(subscribers):
        specs = rng.sample(SPECIALTIES, rng.choice([1, 1, 2, 3]))
        lines.append(
            f"  - {{name: 'Dr {i}', id: s{i}, email: s{i}@example.org, specialties: [{', '.join(specs)}], "
            f"language: [fr, en], min_urgency: {rng.choice(['routine', 'soon'])}, immediate: {rng.choice(['urgent', 'never'])}}}"
        )
    path = folder / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def seed_requests(db: Database, count: int, rng: random.Random, now: datetime) -> None:
    with db.session() as s:
        posts = [
            Post(
                network="mastodon",
                id=str(i),
                url=f"https://m.example/@a/{i}",
                author=Author(str(i), f"@a{i}@m.example", f"A {i}"),
                text=f"Cas {i}: patient de 60 ans, question clinique détaillée sur un tableau atypique ? #DocTocToc",
                created_at=now,
                lang=rng.choice(["fr", "fr", "en"]),
            )
            for i in range(count)
        ]
        ids = store_posts(s, posts, now=now).new
        for pid in ids:
            spec = rng.choice(SPECIALTIES)
            s.add(
                ClassificationRow(
                    post_id=pid,
                    model_version="bench",
                    is_request=True,
                    specialty=spec,
                    specialty_scores=[{"id": spec, "score": 0.8}],
                    urgency=rng.choice(["routine", "soon", "urgent"]),
                    urgency_score=0.8,
                    cues=["il est devant moi"],
                    uncertain=False,
                    created_at=now,
                )
            )


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def calibration_loop() -> float:
    """Seconds for 10^7 additions in pure Python: the machine's speed at this moment."""
    start = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - start


@contextmanager
def database(url: str | None, folder: Path) -> Iterator[Database]:
    """A fresh migrated database: a file in `folder`, or a new PostgreSQL schema dropped after."""
    if url is None or url.startswith("sqlite"):
        db = Database(url or f"sqlite:///{folder / 'bench.db'}")
        db.upgrade()
        yield db
        db.dispose()
        return
    with scratch_schema(url, prefix="bench") as scratch:
        db = Database(scratch)
        try:
            db.upgrade()
            yield db
        finally:
            db.dispose()


def bench_routing(
    subscribers: int,
    requests: int,
    trace_memory: bool = False,
    database_url: str | None = None,
    render_only: bool = False,
    profile: bool = False,
    work_dir: str | None = None,
    profile_out: str | None = None,
) -> None:
    rng = random.Random(42)
    now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    with (
        tempfile.TemporaryDirectory(dir=work_dir) as tmp,
        database(database_url, Path(tmp)) as db,
    ):
        folder = Path(tmp)
        loaded = load_config(write_config(folder, subscribers, rng), env={})
        seed_requests(db, requests, rng, now)
        channels = (
            {"outbox": RenderOnly()} if render_only else build_channels(loaded, base_dir=folder)
        )
        pipeline = Pipeline(
            loaded, db, classifier=object(), collectors=[], channels=channels, clock=lambda: now
        )
        rss_before = max_rss_mib()
        calibration = calibration_loop()
        if trace_memory:  # tracemalloc slows Python down several times: off for the timing
            tracemalloc.start()
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        start = time.perf_counter()
        routed = pipeline.route()
        routed_at = time.perf_counter()
        flushed = pipeline.deliver(force=True)
        end = time.perf_counter()
        if profiler is not None:
            profiler.disable()
        if trace_memory:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        calibration_after = calibration_loop()
        loops = (end - start) / ((calibration + calibration_after) / 2)
        written = len(list((folder / "outbox").glob("*.eml"))) if not render_only else None
        print(
            f"routing + delivery ({'render only' if render_only else 'outbox files'}, "
            f"{db.engine.dialect.name}): {requests} requests x {subscribers} subscribers"
        )
        print(
            f"  deliveries created: {routed.deliveries}, messages: {flushed.messages}"
            + (f", .eml files written: {written}" if written is not None else "")
        )
        total = end - start
        print(
            f"  route: {routed_at - start:.2f} s ({(routed_at - start) / total:.0%}), "
            f"deliver: {end - routed_at:.2f} s ({(end - routed_at) / total:.0%}), total: {total:.2f} s"
        )
        print(
            f"  calibration loop (10^7 additions): {calibration:.2f} s before, {calibration_after:.2f} s after"
            f" -> the cycle took {loops:.1f} calibration loops"
        )
        if profiler is not None:
            import pstats

            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
            if profile_out:
                profiler.dump_stats(profile_out)
        print(
            f"  process peak RSS: {rss_before:.0f} MiB before the cycle ({subscribers} subscribers' config loaded), {max_rss_mib():.0f} MiB at its end"
        )
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if children:  # delivery.workers: forked processes share the flush
            print(
                f"  largest forked delivery worker: {children:.0f} MiB peak RSS (its pages"
                " shared with this process, copy-on-write, are counted in both)"
            )
        if trace_memory:
            print(
                f"  peak Python allocations during the cycle (tracemalloc): {peak / 2**20:.0f} MiB"
            )
        if render_only:
            assert flushed.messages == channels["outbox"].messages


def bench_alert_latency(runs: int = 5) -> None:
    from tests.fakes.smtp_server import SmtpServer

    server = SmtpServer().start()
    received_at: list[float] = []
    original = server.handler.handle_DATA

    async def stamp(srv, session, envelope):
        received_at.append(time.perf_counter())
        return await original(srv, session, envelope)

    server.handler.handle_DATA = stamp  # type: ignore[method-assign]
    latencies = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            sample = folder / "posts.jsonl"
            config = folder / "config.yaml"
            config.write_text(f"""version: 1
hashtags: [DocTocToc]
sources: [{{network: replay, url: {sample}}}]
channels:
  smtp: {{host: 127.0.0.1, port: {server.port}, security: none, sender: bot@doctoctoc.example}}
subscribers:
  - {{name: Dr Urg, email: urg@example.org, deliver_by: [smtp], specialties: all, immediate: urgent, min_urgency: urgent}}
""")
            loaded = load_config(config, env={})
            db = Database(f"sqlite:///{folder / 'lat.db'}")
            db.upgrade()
            from classifiers import load_classifier

            pipeline = Pipeline(loaded, db, classifier=load_classifier())
            pipeline.classifier.classify(["warm-up"])
            for i in range(runs):
                post = {
                    "network": "mastodon",
                    "id": str(1000 + i),
                    "url": f"https://m.example/@a/{i}",
                    "author": {"id": "1", "handle": f"@dr{i}@m.example", "name": "Dr"},
                    "text": f"Patient {i} devant moi, douleur thoracique constrictive depuis 30 min, sueurs, TA 85/50. Je fais quoi en attendant le SAMU ? #DocTocToc",
                    "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "lang": "fr",
                }
                with sample.open("a") as fh:
                    fh.write(json.dumps(post) + "\n")
                before = len(received_at)
                start = time.perf_counter()
                pipeline.cycle()
                if len(received_at) > before:
                    latencies.append((received_at[-1] - start) * 1000)
            db.dispose()
    finally:
        server.stop()
    if latencies:
        print(
            f"urgent alert, collection start -> SMTP server received: median {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms over {len(latencies)} runs"
        )
    else:
        print(
            "urgent alert latency: the classifier did not flag the test post as urgent (no alert sent)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also trace Python allocations (slower)"
    )
    parser.add_argument(
        "--database-url", help="PostgreSQL URL (a new schema is used, then dropped)"
    )
    parser.add_argument("--render-only", action="store_true", help="render messages, write none")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the cycle")
    parser.add_argument(
        "--profile-out", help="with --profile: also save the profile there (pstats file)"
    )
    parser.add_argument(
        "--dir", help="where the database and outbox go (default: the system's temporary folder)"
    )
    parser.add_argument("--no-latency", action="store_true", help="skip the SMTP latency part")
    args = parser.parse_args()
    bench_routing(
        args.subscribers, args.requests, args.tracemalloc, args.database_url,
        args.render_only, args.profile, args.dir, args.profile_out,
    )  # fmt: skip
    if not args.no_latency:
        bench_alert_latency()
    print(f"reproduce with: {COMMAND} {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
