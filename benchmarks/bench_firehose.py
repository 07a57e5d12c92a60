"""Benchmark: filter Bluesky firehose frames for #DocTocToc with `decode_and_filter`, one core.

Builds realistic `com.atproto.sync.subscribeRepos` frames in memory (DAG-CBOR header + body
with a CAR of the commit block, an MST node and the records), shaped like the public stream:
about half likes, follows and reposts, a third posts without the hashtag (some with images,
replies, other hashtags), a few matching posts, post deletions and identity events. Then
times the pure per-frame step (decode, filter, normalize matches) over all of them.

    .venv/bin/python benchmarks/bench_firehose.py [--frames 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.fakes is not an installed package

from bot.collectors.bluesky_stream import decode_and_filter  # noqa: E402
from tests.fakes.bluesky_data import (  # noqa: E402
    FOLLOW,
    LIKE,
    POST,
    Op,
    commit_frame,
    delete_frame,
    follow_record,
    identity_frame,
    like_record,
    post_record,
    tid,
)

COMMAND = ".venv/bin/python benchmarks/bench_firehose.py"
REPOST = "app.bsky.feed.repost"
VOCABULARY = (
    "patient douleur thoracique ECG avis merci collègues urgence pédiatrie radio scanner dose "
    "traitement the of and to a in is it you that he was for on are with as I his they be at"
)
WORDS = VOCABULARY.split()


def text(rng: random.Random, hashtag: str | None) -> str:
    words = rng.choices(WORDS, k=rng.randint(8, 45))
    if rng.random() < 0.15:
        words.append(rng.choice(["#medsky", "#FOAMed", "#DocTocTocs", "#science", "🩺"]))
    if hashtag:
        words.insert(rng.randint(0, len(words)), hashtag)
    return " ".join(words)


def build(count: int, seed: int = 7) -> tuple[list[bytes], int]:
    rng = random.Random(seed)
    frames: list[bytes] = []
    expected = 0
    for seq in range(1, count + 1):
        did = f"did:plc:{rng.getrandbits(100):025x}"[:32]
        roll = rng.random()
        rkey = tid(seq)
        if roll < 0.40:
            subject = f"at://did:plc:{seq:024d}/{POST}/{tid(seq - 1)}"
            frame = commit_frame(seq, did, [Op("create", LIKE, rkey, like_record(subject))])
        elif roll < 0.50:
            frame = commit_frame(
                seq, did, [Op("create", FOLLOW, rkey, follow_record(f"did:plc:{seq:024d}"))]
            )
        elif roll < 0.58:
            record = like_record(f"at://did:plc:{seq:024d}/{POST}/{tid(seq - 1)}")
            record["$type"] = REPOST
            frame = commit_frame(seq, did, [Op("create", REPOST, rkey, record)])
        elif roll < 0.93 or roll >= 0.97:
            matching = roll >= 0.97 and roll < 0.985
            tags = ["DocTocToc"] if matching else None
            record = post_record(
                text(rng, "#DocTocToc" if matching else None),
                facet_tags=tags,
                langs=[rng.choice(["fr", "en", "ja", "pt"])],
                images=[(f"img{seq}", "radio thorax")] if rng.random() < 0.2 else None,
                reply=(f"at://{did}/{POST}/{tid(1)}", f"at://{did}/{POST}/{tid(2)}")
                if rng.random() < 0.3
                else None,
            )
            expected += matching
            frame = commit_frame(seq, did, [Op("create", POST, rkey, record)])
        elif roll < 0.95:
            frame = delete_frame(seq, did, tid(seq - 5))
        else:
            frame = identity_frame(seq, did, f"user{seq}.bsky.social")
        frames.append(frame)
    return frames, expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    frames, expected = build(args.frames)
    size = sum(map(len, frames))
    print(
        f"built {len(frames):,} frames ({size / len(frames):,.0f} bytes on average) "
        f"in {time.perf_counter() - started:.1f}s"
    )
    hashtags = ["DocTocToc"]
    best = float("inf")
    for _ in range(args.rounds):
        matches = deletions = 0
        started = time.perf_counter()
        for frame in frames:
            posts, deleted, _seq, *_ = decode_and_filter(frame, hashtags)
            matches += len(posts)
            deletions += len(deleted)
        best = min(best, time.perf_counter() - started)
    assert matches == expected, (matches, expected)
    print(
        f"decode_and_filter: {len(frames):,} frames in {best:.2f}s (best of {args.rounds}) = "
        f"{len(frames) / best:,.0f} frames/s, {best / len(frames) * 1e6:.1f} µs/frame; "
        f"{matches} matching posts, {deletions} post deletions"
    )
    print(f"reproduce: {COMMAND}")


if __name__ == "__main__":
    main()
