"""The labelled corpus (classifiers/data/*.jsonl), its validation, and the fixed held-out split."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bot.core.errors import InputError
from bot.core.labels import SPECIALTIES, URGENCIES

DATA_DIR = Path(__file__).resolve().parent / "data"
CORPUS_GLOB = "corpus_part*.jsonl"
SPLIT_SEED = 20261128
TEST_FRACTION = 0.2


@dataclass
class Example:
    id: str
    text: str
    is_request: bool
    specialty: str | None
    urgency: str | None
    alt_specialties: list[str] = field(default_factory=list)
    lang: str | None = None
    weight: float = 1.0
    source: str = "corpus"

    @property
    def stratum(self) -> str:
        return f"{self.specialty}|{self.urgency}"


def parse_example(obj: Any, where: str) -> Example:
    """Validate one gold line; raise InputError naming the file and line."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object")
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where}: 'text' must be a non-empty string")
    is_request = obj.get("is_request")
    if not isinstance(is_request, bool):
        raise InputError(f"{where}: 'is_request' must be true or false")
    specialty = obj.get("specialty")
    urgency = obj.get("urgency")
    alts = obj.get("alt_specialties") or []
    if is_request:
        if specialty not in SPECIALTIES:
            raise InputError(f"{where}: 'specialty' {specialty!r} is not one of the 20 ids")
        if urgency not in URGENCIES:
            raise InputError(f"{where}: 'urgency' {urgency!r} must be routine, soon or urgent")
    elif specialty is not None or urgency is not None:
        raise InputError(f"{where}: a non-request has specialty and urgency null")
    if not isinstance(alts, list) or any(a not in SPECIALTIES for a in alts):
        raise InputError(f"{where}: 'alt_specialties' must be a list of specialty ids")
    lang = obj.get("lang")
    return Example(
        id=str(obj.get("id") if obj.get("id") is not None else where),
        text=text,
        is_request=is_request,
        specialty=specialty,
        urgency=urgency,
        alt_specialties=[a for a in alts if a != specialty],
        lang=lang if isinstance(lang, str) and lang else None,
    )


def _numbered_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of a UTF-8 data file; an unreadable file is an InputError."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return list(enumerate(lines, start=1))


def read_jsonl(path: str | Path) -> list[Example]:
    path = Path(path)
    out: list[Example] = []
    for number, line in _numbered_lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not valid JSON: {exc.msg}") from exc
        out.append(parse_example(obj, f"{path}:{number}"))
    return out


def load_corpus(data_dir: str | Path | None = None) -> list[Example]:
    """All corpus files, in file order; ids must be unique."""
    directory = Path(data_dir) if data_dir else DATA_DIR
    files = sorted(directory.glob(CORPUS_GLOB))
    if not files:
        raise InputError(f"no corpus files ({CORPUS_GLOB}) in {directory}")
    examples: list[Example] = []
    seen: set[str] = set()
    for path in files:
        for ex in read_jsonl(path):
            if ex.id in seen:
                raise InputError(f"{path}: duplicate id {ex.id!r}")
            seen.add(ex.id)
            examples.append(ex)
    return examples


def corpus_digest(examples: list[Example]) -> str:
    h = hashlib.sha256()
    for ex in sorted(examples, key=lambda e: e.id):
        h.update(
            json.dumps(
                [
                    ex.id,
                    ex.text,
                    ex.is_request,
                    ex.specialty,
                    ex.urgency,
                    ex.alt_specialties,
                    ex.weight,
                ],
                ensure_ascii=False,
            ).encode()
        )
    return h.hexdigest()[:12]


def _rank(seed: int, ex: Example) -> str:
    return hashlib.sha256(f"{seed}:{ex.id}".encode()).hexdigest()


def split(
    examples: list[Example], *, seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION
) -> tuple[list[Example], list[Example]]:
    """(train, test): within each (specialty, urgency) stratum, the posts whose seeded hash of
    their id ranks first go to test. Deterministic, independent of file order, and adding a
    post to the corpus never moves other posts across the split except within its stratum."""
    strata: dict[str, list[Example]] = {}
    for ex in examples:
        strata.setdefault(ex.stratum, []).append(ex)
    test_ids: set[str] = set()
    for items in strata.values():
        n_test = int(round(len(items) * test_fraction))
        ranked = sorted(items, key=lambda e: _rank(seed, e))
        test_ids.update(e.id for e in ranked[:n_test])
    train = [e for e in examples if e.id not in test_ids]
    test = [e for e in examples if e.id in test_ids]
    return train, test


def folds(examples: list[Example], k: int, seed: int = SPLIT_SEED) -> list[int]:
    """A stratified fold number (0..k-1) per example, deterministic (for validation)."""
    strata: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        strata.setdefault(ex.stratum, []).append(i)
    out = [0] * len(examples)
    offset = 0
    for key in sorted(strata):
        ranked = sorted(strata[key], key=lambda i: _rank(seed + 1, examples[i]))
        for j, i in enumerate(ranked):
            out[i] = (offset + j) % k
        offset += len(ranked)
    return out


KNOWLEDGE_GLOB = "knowledge/*.tsv"
REAL_GLOB = "real/*.train.jsonl"


def read_knowledge(path: str | Path) -> list[Example]:
    """A curated vocabulary (`code<TAB>lang<TAB>specialty<TAB>text` per line, `#` comments):
    each title becomes a short specialty example (see data/SOURCES.md for the sources)."""
    path = Path(path)
    out: list[Example] = []
    for number, line in _numbered_lines(path):
        if not line.strip() or line.startswith("#") or line.startswith("code\t"):
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            raise InputError(
                f"{path}:{number}: expected code, lang, specialty, text (tab-separated)"
            )
        code, lang, specialty, text = parts
        if specialty not in SPECIALTIES:
            raise InputError(f"{path}:{number}: {specialty!r} is not one of the 20 ids")
        if not text.strip():
            continue
        out.append(
            Example(
                id=f"{path.stem}:{code}",
                text=text.strip(),
                is_request=True,
                specialty=specialty,
                urgency=None,
                lang=lang or None,
                source="knowledge",
            )
        )
    return out


HEADS = ("request", "specialty", "urgency")


def real_heads(directory: Path) -> dict[str, dict[str, float]]:
    """Which heads learn from each real training file, at which weight (`real/heads.yaml`:
    file stem -> a list of heads, each at weight 1, or a mapping head -> weight); a file not
    named there teaches the request and specialty heads at weight 1."""
    path = directory / "real" / "heads.yaml"
    if not path.exists():
        return {}
    import yaml

    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out: dict[str, dict[str, float]] = {}
    for stem, heads in raw.items():
        if isinstance(heads, list):
            heads = {h: 1.0 for h in heads} if all(isinstance(h, str) for h in heads) else None
        if (
            not isinstance(heads, dict)
            or any(h not in HEADS for h in heads)
            or any(isinstance(w, bool) or not isinstance(w, int | float) or w <= 0
                   for w in heads.values())
        ):  # fmt: skip
            raise InputError(
                f"{path}: {stem}: expected a list of heads among {', '.join(HEADS)}, "
                "or a mapping of those heads to positive weights"
            )
        out[str(stem)] = {str(h): float(w) for h, w in heads.items()}
    return out


def _by_weight(heads: dict[str, float]) -> list[tuple[float, str]]:
    """Heads grouped by weight, in HEADS order: [(weight, "request+urgency"), ...]."""
    groups: dict[float, list[str]] = {}
    for h in HEADS:
        if h in heads:
            groups.setdefault(heads[h], []).append(h)
    return [(w, "+".join(hs)) for w, hs in groups.items()]


def load_extra(data_dir: str | Path | None = None) -> list[Example]:
    """Training data beyond the corpus, in a fixed order: curated vocabularies
    (`knowledge/*.tsv`, specialty only) and real labelled text whose licence allows training
    (`real/*.train.jsonl`, the heads named in `real/heads.yaml`). Evaluation sets (`eval/`)
    are never read. `Example.source` is "knowledge" or "real:<heads joined by +>"."""
    directory = Path(data_dir) if data_dir else DATA_DIR
    out: list[Example] = []
    for path in sorted(directory.glob(KNOWLEDGE_GLOB)):
        out.extend(read_knowledge(path))
    heads = real_heads(directory)
    for path in sorted(directory.glob(REAL_GLOB)):
        stem = path.name.removesuffix(".train.jsonl")
        groups = _by_weight(heads.get(stem, {"request": 1.0, "specialty": 1.0}))
        for ex in read_jsonl(path):
            for n, (weight, used) in enumerate(groups):
                suffix = "" if n == 0 else f"@{used}"  # one copy per weight, own id
                out.append(replace(ex, id=f"{stem}:{ex.id}{suffix}", source=f"real:{used}",
                                   weight=ex.weight * weight))  # fmt: skip
    return out


def weight_copy(e: Example) -> bool:
    """Whether `e` is a second copy of a real text, made by load_extra to teach other heads
    at another weight (its id ends with "@<heads>"): the vectorizer counts each text once."""
    return e.source.startswith("real:") and "@" in e.id


def teaches(e: Example, head: str) -> bool:
    """Whether an extra training example joins `head`."""
    if e.source == "knowledge":
        return head == "specialty"
    if e.source.startswith("real:"):
        return head in e.source[5:].split("+")
    return True
