"""Bilingual lexicons (YAML in this directory) compiled into fast token matchers.

Terms are written naturally (accents, capitals) and folded at load like the posts. A term
ending in `*` matches any word starting with that stem; a phrase ending in `*` matches the
phrase, its plurals included. Matching is by token sequences, so
`sus-ST` and `sus ST` match the same entry. A term whose parts are separated by ` ... `
("face ... droop*", "selles ... noir*") matches its parts in that order with at most
`GAP_WORDS` words between two parts, and not across a clause break when the caller says
where the breaks are: patients write "my face is drooping" or "mes selles sont noires" where a
clinician writes "facial droop" or "selles noires".

At training time the raw YAML data is stored in the model artifact, so a saved model keeps
working with the lexicons it was trained with even if these files change later.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifiers.text import fold, tokenize

LEXICON_DIR = Path(__file__).resolve().parent
FILES = ("specialties", "context", "requests", "abbreviations", "urgency", "redflags")
CUE_KINDS = ("now", "deadline", "red_flag", "severity", "soon", "routine", "not_urgent")
# Words that make a post about a child, for red flags that only apply to infants or children
# (`child: true` in redflags.yaml) when the file gives no `child_words` of its own.
CHILD_WORDS = (
    "nourrisson", "bébé", "bebe", "nouveau-né", "nné", "enfant", "infant", "baby", "newborn",
    "neonate", "child", "toddler", "mois", "month*", "semaines", "weeks", "week-old",
    "jours de vie", "days old", "day-old",
)  # fmt: skip


def load_raw(directory: Path = LEXICON_DIR) -> dict[str, Any]:
    """The YAML files as plain data (what the model artifact stores)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data: dict[str, Any] = {}
    for name in FILES:
        if not (directory / f"{name}.yaml").exists() and name == "redflags":
            continue  # older lexicon folders have no triage red flags
        with open(directory / f"{name}.yaml", encoding="utf-8") as fh:
            data[name] = yaml.load(fh, Loader=loader) or {}
    return data


def digest(raw: dict[str, Any]) -> str:
    blob = json.dumps(raw, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:12]


GAP_WORDS = 3  # at most this many words between two parts of a "a ... b" term
GAP_MARK = " ... "

_SINGULAR: dict[str, str] = {}
# Plurals that mean something else than their singular: "urgences" is the emergency
# department, "urgence" is urgency ("pas d'urgence"); "piles" are haemorrhoids, "pile" is
# French for "exactly" or a battery; "gouttes" are drops, "goutte" is gout; skin "patches"
# are not a nicotine "patch".
_KEEP_PLURAL = frozenset(
    {"urgences", "soins", "secours", "moyens", "temps", "fois", "mois", "ans", "piles", "gouttes",
     "patches"}
)  # fmt: skip
# English -y words whose -ie form is a different French word ("manie" is mania)
_KEEP_Y = frozenset({"many", "colony"})


def singular(token: str) -> str:
    """A crude plural folding (FR and EN) applied to both lexicon terms and posts."""
    out = _SINGULAR.get(token)
    if out is None:
        out = token
        if token in _KEEP_PLURAL:
            pass
        elif len(token) > 4 and token.endswith("aux"):
            out = token[:-3] + "al"
        elif len(token) > 5 and token.endswith(("shes", "tches")):
            out = token[:-2]  # English -es plurals: "rashes" -> "rash", "patches" -> "patch"
        elif len(token) > 3 and token[-1] == "s" and token[-2] != "s":
            out = token[:-1]
        # English -y and its plural -ies meet at -ie ("baby", "babies" -> "babie"), which is
        # also the French form ("allergy", "allergies", "allergie" -> "allergie")
        if len(out) > 3 and out[-1] == "y" and out[-2] not in "aeiouy" and out not in _KEEP_Y:
            out = out[:-1] + "ie"
        if len(_SINGULAR) < 200_000:
            _SINGULAR[token] = out
    return out


@dataclass
class PhraseMatcher:
    """Maps token sequences (and word stems) to labels; finds them in a token list.

    Lookups are per token: the labels of a single word (its phrase entry or the stems it
    starts with) are memoised, and longer phrases are only tried at positions whose word
    starts one (their lengths are indexed by first word).
    """

    phrases: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    stems: dict[str, list[str]] = field(default_factory=dict)
    stem_lens: tuple[int, ...] = ()
    long_lens: dict[str, tuple[int, ...]] = field(default_factory=dict)
    second_words: dict[str, frozenset[str]] = field(default_factory=dict)
    # "a ... b" terms: (parts, label); each part is its words and whether its last word is a
    # stem. Indexed by the first word of the first part (`gap_words`) or its stem (`gap_stems`).
    gap_words: dict[str, list[GapTerm]] = field(default_factory=dict)
    gap_stems: dict[str, list[GapTerm]] = field(default_factory=dict)
    gap_stem_lens: tuple[int, ...] = ()
    _gap_cache: dict[str, tuple[GapTerm, ...]] = field(default_factory=dict, repr=False)
    _word_cache: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _tok_cache: dict[str, tuple[str, tuple[str, ...], tuple[int, ...], bool, frozenset[str]]] = (
        field(default_factory=dict, repr=False)
    )

    def add(self, term: str, label: str) -> None:
        term = term.strip()
        if not term:
            return
        if GAP_MARK in term:
            self._add_gap(term, label)
            return
        if term.endswith("*") and len(tokenize(fold(term[:-1]))) == 1:
            stem = singular(fold(term[:-1]).strip())
            if stem and label not in self.stems.setdefault(stem, []):
                self.stems[stem].append(label)
            return
        # A phrase ending in `*` ("beta blocker*") is matched as the phrase: plurals of its
        # words are folded like every word (stems only apply to single words).
        term = term.rstrip("*")
        key = tuple(singular(t) for t in tokenize(fold(term)))
        if not key:
            return
        labels = self.phrases.setdefault(key, [])
        if label not in labels:
            labels.append(label)

    def _add_gap(self, term: str, label: str) -> None:
        parts: list[tuple[tuple[str, ...], bool]] = []
        for raw in term.split(GAP_MARK):
            raw = raw.strip()
            stem = raw.endswith("*")
            tokens = tokenize(fold(raw.rstrip("*")))
            if not tokens:
                raise ValueError(f"lexicon term {term!r}: every part around ' ... ' needs a word")
            # a stem is matched as written (folded), every other word singularised
            last = tokens[-1] if stem else singular(tokens[-1])
            parts.append((tuple(singular(t) for t in tokens[:-1]) + (last,), stem))
        entry = GapTerm(tuple(parts), label)
        first, first_stem = parts[0][0][0], parts[0][1] and len(parts[0][0]) == 1
        index = self.gap_stems if first_stem else self.gap_words
        if entry not in index.setdefault(first, []):
            index[first].append(entry)

    def freeze(self) -> PhraseMatcher:
        self.gap_stem_lens = tuple(sorted({len(s) for s in self.gap_stems}))
        self._gap_cache = {}
        self.stem_lens = tuple(sorted({len(s) for s in self.stems}))
        lens: dict[str, set[int]] = {}
        seconds: dict[str, set[str]] = {}
        for key in self.phrases:
            if len(key) > 1:
                lens.setdefault(key[0], set()).add(len(key))
                seconds.setdefault(key[0], set()).add(key[1])
        self.long_lens = {k: tuple(sorted(v)) for k, v in lens.items()}
        self.second_words = {k: frozenset(v) for k, v in seconds.items()}
        self._word_cache = {}
        self._tok_cache = {}
        return self

    def word_labels(self, tok: str) -> tuple[str, ...]:
        """Labels of one (singularised) word: its own entry and the stems it starts with."""
        hit = self._word_cache.get(tok)
        if hit is not None:
            return hit
        found = list(self.phrases.get((tok,)) or ())
        for length in self.stem_lens:
            if length > len(tok):
                break
            for label in self.stems.get(tok[:length]) or ():
                if label not in found:
                    found.append(label)
        out = tuple(found)
        if len(self._word_cache) < 200_000:
            self._word_cache[tok] = out
        return out

    def _entry(
        self, tok: str
    ) -> tuple[str, tuple[str, ...], tuple[int, ...], bool, frozenset[str]]:
        sing = singular(tok)
        labels, sizes = self.word_labels(sing), self.long_lens.get(sing, ())
        entry = (
            sing,
            labels,
            sizes,
            bool(labels or sizes),
            self.second_words.get(sing, frozenset()),
        )
        if len(self._tok_cache) < 200_000:
            self._tok_cache[tok] = entry
        return entry

    def find_spans(
        self, tokens: list[str], crosses: Callable[[int, int], bool] | None = None
    ) -> list[tuple[str, int, int]]:
        """(label, first token, end token) for each match, in order of position (the
        "a ... b" terms after the others). `crosses(a, b)` says whether a clause break lies
        between word a and word b; an "a ... b" term does not match across one."""
        cache = self._tok_cache
        entries = [cache.get(tok) or self._entry(tok) for tok in tokens]
        out: list[tuple[str, int, int]] = []
        n = len(entries)
        phrases = self.phrases
        sings: list[str] | None = None
        for i in [i for i, e in enumerate(entries) if e[3]]:
            _, labels, sizes, _, seconds = entries[i]
            for label in labels:
                out.append((label, i, i + 1))
            if not sizes or i + 1 >= n or entries[i + 1][0] not in seconds:
                continue
            if sings is None:
                sings = [e[0] for e in entries]
            for size in sizes:
                if i + size > n:
                    break
                hit = phrases.get(tuple(sings[i : i + size]))
                if hit:
                    for label in hit:
                        out.append((label, i, i + size))
        if self.gap_words or self.gap_stems:
            if sings is None:
                sings = [e[0] for e in entries]
            out.extend(self._gap_spans(sings, crosses))
        return out

    def _gap_terms(self, tok: str) -> tuple[GapTerm, ...]:
        hit = self._gap_cache.get(tok)
        if hit is None:
            found = list(self.gap_words.get(tok) or ())
            for length in self.gap_stem_lens:
                if length > len(tok):
                    break
                found.extend(self.gap_stems.get(tok[:length]) or ())
            hit = tuple(found)
            if len(self._gap_cache) < 200_000:
                self._gap_cache[tok] = hit
        return hit

    def _gap_spans(
        self, sings: list[str], crosses: Callable[[int, int], bool] | None
    ) -> list[tuple[str, int, int]]:
        out: list[tuple[str, int, int]] = []
        n = len(sings)
        for i, tok in enumerate(sings):
            for term in self._gap_terms(tok):
                end = _part_end(sings, i, term.parts[0])
                if end < 0:
                    continue
                for part in term.parts[1:]:
                    for start in range(end, min(end + GAP_WORDS, n - 1) + 1):
                        found = _part_end(sings, start, part)
                        if found >= 0:
                            break
                    else:
                        found = -1
                    if found < 0 or (crosses is not None and crosses(end - 1, start)):
                        end = -1
                        break
                    end = found
                if end >= 0:
                    out.append((term.label, i, end))
        return out

    def labels(self, tokens: list[str]) -> list[str]:
        """The label of every match (a label repeats once per matching word or phrase)."""
        return [label for label, _, _ in self.find_spans(tokens)]


@dataclass(frozen=True)
class GapTerm:
    """An "a ... b" term: its parts (words, last word a stem or not) and its label."""

    parts: tuple[tuple[tuple[str, ...], bool], ...]
    label: str


def _part_end(sings: list[str], i: int, part: tuple[tuple[str, ...], bool]) -> int:
    """Where a part that starts at word i ends (exclusive), or -1 if it does not start there."""
    words, stem = part
    if i + len(words) > len(sings):
        return -1
    last = len(words) - 1
    for k, word in enumerate(words):
        tok = sings[i + k]
        if not (tok.startswith(word) if (stem and k == last) else tok == word):
            return -1
    return i + len(words)


def _terms(value: Any) -> Iterable[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _terms(v)]
    return [str(t) for t in value]


def _add_redflags(matcher: PhraseMatcher, red: dict[str, Any]) -> dict[str, str]:
    """Triage red flags (redflags.yaml): a flag's terms (its `fr`/`en` lists and the patients'
    wordings of its `lay` section) are `C:red_flag` cues, or `Q:<id>`
    when the flag also needs another word in the post (`needs`, or a child for `child: true`),
    whose terms are `N:<id>`; `current_case` / `not_current` phrases are `C:current` /
    `C:past`, `history` / `ago` phrases `C:history` / `C:ago`.

    Returns the `Q:<id>` labels of the flags with `lean: true` and their `F:<id>`: the
    specialty such a flag points to once its companion word is there."""
    lean: dict[str, str] = {}
    child = [str(t) for t in (red.get("child_words") or CHILD_WORDS)]
    for flag in sorted(red.get("flags") or [], key=lambda f: str(f.get("id"))):
        needs = [str(t) for t in (flag.get("needs") or [])]
        if flag.get("child"):
            needs = needs + child
        label = f"Q:{flag.get('id')}" if needs else "C:red_flag"
        lay = flag.get("lay") or {}
        # the specialty the flag points to, a feature of the specialty head; a flag that needs a
        # companion word ("fever" alone says nothing of an infant) leans only with `lean: true`,
        # and then only once the companion is there (features.Featurizer._count_lean_organs)
        organ = f"F:{flag['specialty']}" if flag.get("specialty") and not needs else ""
        if needs and flag.get("specialty") and flag.get("lean"):
            lean[label] = f"F:{flag['specialty']}"
        for lang in ("fr", "en"):
            for term in (*_terms(flag.get(lang)), *_terms(lay.get(lang))):
                matcher.add(term, label)
                if organ:
                    matcher.add(term, organ)
        for term in needs:
            matcher.add(term, f"N:{flag.get('id')}")
    for term in _terms(red.get("current_case")):
        matcher.add(term, "C:current")
    for term in _terms(red.get("not_current")):
        matcher.add(term, "C:past")
    for kind in ("history", "ago"):  # past events named next to a red flag (cues._mark_earlier)
        for term in _terms(red.get(kind)):
            matcher.add(term, f"C:{kind}")
    return lean


@dataclass
class Lexicons:
    """One compiled matcher for the features and the abbreviation tables for normalisation.

    Labels: "L:<id>" (specialty terms), "D:<id>" (drugs of that field), "G:<group>" (question
    type: drug question, image, child...), "R:ask" / "R:not" (request cues), and for the
    urgency cues "C:<kind>" (now, deadline, red_flag, soon, routine, not_urgent), "C:neg"
    (negations), "V:<vital sign>" (names of vital signs) and "I:ignore" (everyday phrases such as
    "au sein de" or "à quel âge" whose words are not clinical evidence).
    """

    raw: dict[str, Any]
    matcher: PhraseMatcher
    cased_abbrev: dict[str, list[str]]
    folded_abbrev: dict[str, list[str]]
    emoji: dict[str, str]
    version: str = ""
    abbrev_keys: frozenset[str] = frozenset()
    lean_organs: dict[str, str] = field(default_factory=dict)  # `Q:<id>` -> `F:<specialty>`


def compile_lexicons(raw: dict[str, Any]) -> Lexicons:
    matcher = PhraseMatcher()
    # Sorted: the artifact stores these mappings with sorted keys, and the order of the labels
    # of a term decides the order of a post's features (hence of float sums) at serving time.
    for spec, sections in sorted((raw.get("specialties") or {}).items()):
        for section, terms in sorted((sections or {}).items()):
            prefix = "D" if section == "drugs" else "L"
            for term in _terms(terms):
                matcher.add(term, f"{prefix}:{spec}")
    for group, terms in sorted((raw.get("context") or {}).items()):
        label = "I:ignore" if group == "ignore" else f"G:{group}"
        for term in _terms(terms):
            matcher.add(term, label)
    req = raw.get("requests") or {}
    for kind in ("ask", "not"):
        for term in _terms(req.get(kind)):
            matcher.add(term, f"R:{kind}")
    urgency = raw.get("urgency") or {}
    for kind in CUE_KINDS:
        for term in _terms(urgency.get(kind)):
            matcher.add(term, f"C:{kind}")
    lean_organs = _add_redflags(matcher, raw.get("redflags") or {})
    for term in _terms(urgency.get("negators")):
        matcher.add(term, "C:neg")
    for vital, terms in sorted((urgency.get("vitals") or {}).items()):
        for term in _terms(terms):
            matcher.add(term, f"V:{vital}")
    abbrev = raw.get("abbreviations") or {}
    folded = {fold(k): tokenize(fold(v)) for k, v in (abbrev.get("any_case") or {}).items()}
    cased = {
        k: tokenize(fold(v))
        for k, v in (abbrev.get("cased") or {}).items()
        if fold(k) not in folded
    }
    emoji = {str(k): str(v) for k, v in (req.get("emoji") or {}).items()}
    return Lexicons(
        raw=raw,
        matcher=matcher.freeze(),
        cased_abbrev=cased,
        folded_abbrev=folded,
        emoji=emoji,
        version=digest(raw),
        abbrev_keys=frozenset(folded) | frozenset(fold(k) for k in cased),
        lean_organs=lean_organs,
    )
