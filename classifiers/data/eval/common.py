"""Shared helpers of the evaluation-set builders (build_eval_sets.py, nhamcs.py): the gold
record, clean truncation, JSONL writing and deterministic stratified sampling."""

import json
import re
import sys
from pathlib import Path

SEED = 20261207
MAX_CHARS = 1000
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bot.core.labels import SPECIALTIES as _IDS  # noqa: E402  (the 20 ids of TAXONOMY.md)

SPECIALTIES = set(_IDS)


def clean_trunc(text, limit=MAX_CHARS):
    """Collapse white space; cut at <= limit chars on a sentence or word boundary."""
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    dot = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    if dot >= limit * 0.6:
        return cut[: dot + 1]
    sp = cut.rfind(" ")
    return (cut[:sp] if sp > 0 else cut).rstrip(" ,;:") + "…"


def record(rid, text, lang, specialty, alts, urgency, is_request=True):
    if is_request:
        assert specialty in SPECIALTIES, specialty
        assert urgency in ("urgent", "soon", "routine"), urgency
    else:
        specialty, alts, urgency = None, [], None
    alts = [a for a in dict.fromkeys(alts) if a != specialty]
    assert all(a in SPECIALTIES for a in alts), alts
    return {
        "id": rid,
        "text": clean_trunc(text),
        "lang": lang,
        "is_request": is_request,
        "specialty": specialty,
        "alt_specialties": alts,
        "urgency": urgency,
    }


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {path}", file=sys.stderr)


def stratified_sample(rows, key, quotas, rng):
    """Take quotas[k] rows of each class k (all of them if fewer); rows are pre-sorted."""
    out = []
    for k in sorted(quotas):
        pool = [r for r in rows if key(r) == k]
        rng.shuffle(pool)
        out.extend(pool[: quotas[k]])
    rng.shuffle(out)
    return out


# --------------------------------------------------------------------------- NHAMCS 2010 ED
# Fixed-width public-use file, layout from the 2010 NHAMCS documentation (doc2010.pdf,
# "Emergency Department Record Format"): columns are 1-based inclusive there.
