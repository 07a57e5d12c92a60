"""Web app latency with a large case library: case list, case page, similar-case lookup.

Fills a fresh database with N cases (default 100,000: texts of the classifier corpus with
varied details, their labels, 0-3 answers each, 1% deleted), then requests pages in-process
through Starlette's TestClient (the ASGI app and the database, no network) and prints the
median and p99 of each page, the similar-case index build time and the lookup time.
SQLite always; PostgreSQL too when --postgres URL (or $DOCTOCTOC_TEST_POSTGRES_URL) is given
(a temporary schema, dropped at the end).

Run: .venv/bin/python benchmarks/bench_web.py [--cases 100000] [--requests 200] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, insert, text  # noqa: E402

from bot.core.config import load_config  # noqa: E402
from bot.core.labels import SPECIALTIES  # noqa: E402
from bot.storage.db import Database  # noqa: E402
from bot.storage.models import ClassificationRow, PostRow  # noqa: E402

COMMAND = ".venv/bin/python benchmarks/bench_web.py"
T0 = datetime(2026, 12, 1, tzinfo=UTC)
URGENCY = {"urgent": 0.9, "soon": 0.5, "routine": 0.1}


def corpus_texts() -> list[dict]:
    rows = []
    for path in sorted((ROOT / "classifiers" / "data").glob("corpus_part*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return [r for r in rows if r.get("is_request")]


def fill(db: Database, n: int, seed: int = 7) -> list[int]:
    """N cases with labels and answers, inserted in batches; returns the live case ids."""
    rng = random.Random(seed)
    base = corpus_texts()
    networks = ["mastodon", "bluesky", "x"]
    live: list[int] = []
    next_id = 1
    batch = 5000
    with db.engine.begin() as conn:
        for start in range(0, n, batch):
            posts, labels, replies = [], [], []
            for i in range(start, min(n, start + batch)):
                src = rng.choice(base)
                pid = next_id
                next_id += 1
                network = rng.choice(networks)
                created = T0 - timedelta(minutes=7 * (n - i))
                deleted = rng.random() < 0.01
                answers = rng.choice([0, 0, 1, 2, 3])
                posts.append(
                    _post(
                        pid,
                        network,
                        f"c{i}",
                        src["text"] + f" (cas {i})",
                        src.get("lang"),
                        created,
                        deleted,
                        answers,
                    )
                )
                spec = src.get("specialty") or rng.choice(SPECIALTIES)
                urg = src.get("urgency") or "routine"
                labels.append(
                    {
                        "post_id": pid,
                        "model_version": "bench",
                        "is_request": True,
                        "specialty": spec,
                        "specialty_scores": [{"id": spec, "score": 0.8}],
                        "urgency": urg,
                        "urgency_score": URGENCY.get(urg, 0.1),
                        "cues": [],
                        "uncertain": False,
                        "created_at": created,
                    }
                )
                if not deleted:
                    live.append(pid)
                for a in range(answers):
                    rid = next_id
                    next_id += 1
                    reply = _post(
                        rid,
                        network,
                        f"r{i}-{a}",
                        f"Réponse {a} au cas {i}",
                        src.get("lang"),
                        created + timedelta(minutes=5 * (a + 1)),
                        False,
                        0,
                    )
                    reply["reply_to"] = f"c{i}"
                    reply["answer_to_id"] = pid
                    replies.append(reply)
            conn.execute(insert(PostRow), posts)
            if replies:
                conn.execute(insert(PostRow), replies)
            conn.execute(insert(ClassificationRow), labels)
    return live


def _post(pid, network, key, body, lang, created, deleted, answers) -> dict:
    return {
        "id": pid,
        "network": network,
        "key": key,
        "native_id": key,
        "url": f"https://social.example/{key}",
        "source": "bench",
        "author_id": f"a{pid % 997}",
        "author_handle": f"@dr{pid % 997}@social.example",
        "author_name": f"Dr {pid % 997}",
        "author_key": f"dr{pid % 997}",
        "text": "" if deleted else body,
        "lang": lang,
        "created_at": created,
        "edited_at": None,
        "collected_at": created,
        "hashtags": ["DocTocToc"],
        "media": [],
        "reply_to": None,
        "thread_root": None,
        "deleted": deleted,
        "deleted_at": created if deleted else None,
        "raw": None,
        "answer_to_id": None,
        "answer_count": answers,
        "first_answer_at": None,
        "duplicate_of_id": None,
        "routed_at": created,
    }


def timed(client, url: str) -> float:
    t = time.perf_counter()
    r = client.get(url)
    elapsed = (time.perf_counter() - t) * 1000
    if r.status_code != 200:
        raise SystemExit(f"{url}: HTTP {r.status_code} {r.text[:200]}")
    return elapsed


def stats(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(round(0.99 * (len(values) - 1))))]
    return f"median {statistics.median(values):7.1f} ms   p99 {p99:7.1f} ms"


def run(name: str, url: str, cases: int, requests: int, workdir: Path) -> None:
    from starlette.testclient import TestClient

    from bot.web.app import create_app

    cfg = workdir / f"{name}.yaml"
    cfg.write_text(f'version: 1\nhashtags: [DocTocToc]\ndatabase: {{url: "{url}"}}\n')
    loaded = load_config(cfg, env={})
    db = Database(url)
    db.upgrade()
    t = time.perf_counter()
    live = fill(db, cases)
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))  # what autovacuum does after a bulk load
    print(f"[{name}] {cases:,} cases stored in {time.perf_counter() - t:.1f} s")
    app = create_app(loaded, db)
    similar = app.state.web.similar
    t = time.perf_counter()
    size = similar.refresh()
    print(
        f"[{name}] similar-case index: {size:,} cases in {time.perf_counter() - t:.1f} s ({similar.method})"
    )
    rng = random.Random(3)
    pages = {
        "case list, newest first": lambda: "/cases",
        "case list, one specialty": lambda: f"/cases?specialty={rng.choice(SPECIALTIES)}",
        "case list, urgent first": lambda: "/cases?sort=urgent",
        "case list, search": lambda: (
            f"/cases?q={rng.choice(['douleur', 'fievre', 'eczema', 'ECG', 'enfant'])}"
        ),
        "case list, 4 filters": lambda: (
            "/cases?specialty=cardiology&urgency=urgent&answered=no&lang=fr"
        ),
        "case list, page 50": lambda: "/cases?page=50",
        "case page (with similar)": lambda: f"/cases/{rng.choice(live)}",
        "API case list": lambda: "/api/cases?specialty=dermatology",
    }
    with TestClient(app) as client:
        for label, make in pages.items():
            for _ in range(3):
                timed(client, make())  # warm-up
            values = [timed(client, make()) for _ in range(requests)]
            print(f"[{name}] {label:28s} {stats(values)}")
    lookups = []
    for pid in rng.sample(live, min(requests, len(live))):
        with db.session() as s:
            body = s.get(PostRow, pid).text
        t = time.perf_counter()
        similar.similar(pid, body)
        lookups.append((time.perf_counter() - t) * 1000)
    print(f"[{name}] {'similar-case lookup':28s} {stats(lookups)}")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--postgres", default=os.environ.get("DOCTOCTOC_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.db", args.cases, args.requests, Path(tmp))
        if args.postgres:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(
                args.postgres.replace("postgresql://", "postgresql+psycopg://", 1)
            )
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            sep = "&" if "?" in args.postgres else "?"
            try:
                run(
                    "postgresql",
                    f"{args.postgres}{sep}options=-csearch_path%3D{schema}",
                    args.cases,
                    args.requests,
                    Path(tmp),
                )
            finally:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
    pg = " --postgres URL" if args.postgres else ""
    print(f"reproduce: {COMMAND} --cases {args.cases} --requests {args.requests}{pg}")


if __name__ == "__main__":
    main()
