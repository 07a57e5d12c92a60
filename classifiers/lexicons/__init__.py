"""Bilingual lexicons (YAML in this directory) compiled into fast token matchers.

Terms are written naturally (accents, capitals) and folded at load like the posts. A term
ending in `*` matches any word starting with that stem; a phrase ending in `*` matches the
phrase, its plurals included. Matching is by token sequences, so
`sus-ST` and `sus ST` match the same entry.

At training time the raw YAML data is stored in the model artifact, so a saved model keeps
working with the lexicons it was trained with even if these files change later.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
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


_SINGULAR: dict[str, str] = {}
# Plurals that mean something else than their singular: "urgences" is the emergency
# department, "urgence" is urgency ("pas d'urgence").
_KEEP_PLURAL = frozenset({"urgences", "soins", "secours", "moyens", "temps", "fois", "mois", "ans"})


def singular(token: str) -> str:
    """A crude plural folding (FR and EN) applied to both lexicon terms and posts."""
    out = _SINGULAR.get(token)
    if out is None:
        out = token
        if token in _KEEP_PLURAL:
            pass
        elif len(token) > 4 and token.endswith("aux"):
            out = token[:-3] + "al"
        elif len(token) > 3 and token[-1] == "s" and token[-2] != "s":
            out = token[:-1]
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
    _word_cache: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    _tok_cache: dict[str, tuple[str, tuple[str, ...], tuple[int, ...], bool, frozenset[str]]] = (
        field(default_factory=dict, repr=False)
    )

    def add(self, term: str, label: str) -> None:
        term = term.strip()
        if not term:
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

    def freeze(self) -> PhraseMatcher:
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

    def find_spans(self, tokens: list[str]) -> list[tuple[str, int, int]]:
        """(label, first token, end token) for each match, in order of position."""
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
        return out

    def labels(self, tokens: list[str]) -> list[str]:
        """The label of every match (a label repeats once per matching word or phrase)."""
        return [label for label, _, _ in self.find_spans(tokens)]


def _terms(value: Any) -> Iterable[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _terms(v)]
    return [str(t) for t in value]


def _add_redflags(matcher: PhraseMatcher, red: dict[str, Any]) -> None:
    """Triage red flags (redflags.yaml): a flag's terms are `C:red_flag` cues, or `Q:<id>`
    when the flag also needs another word in the post (`needs`, or a child for `child: true`),
    whose terms are `N:<id>`; `current_case` / `not_current` phrases are `C:current` /
    `C:past`."""
    child = [str(t) for t in (red.get("child_words") or CHILD_WORDS)]
    for flag in sorted(red.get("flags") or [], key=lambda f: str(f.get("id"))):
        needs = [str(t) for t in (flag.get("needs") or [])]
        if flag.get("child"):
            needs = needs + child
        label = f"Q:{flag.get('id')}" if needs else "C:red_flag"
        for lang in ("fr", "en"):
            for term in _terms(flag.get(lang)):
                matcher.add(term, label)
        for term in needs:
            matcher.add(term, f"N:{flag.get('id')}")
    for term in _terms(red.get("current_case")):
        matcher.add(term, "C:current")
    for term in _terms(red.get("not_current")):
        matcher.add(term, "C:past")


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
    _add_redflags(matcher, raw.get("redflags") or {})
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
    )
