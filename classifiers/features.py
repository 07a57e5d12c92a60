"""From a post to sparse features (pure Python + NumPy): TF-IDF text features and weighted
knowledge features (lexicon hits, question types, cues, age band, shape). classifiers/README.md,
"Model", lists every block and its prefix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from classifiers.cues import Cue, CueExtractor, CueSummary, clause_break, completed_flags
from classifiers.lexicons import Lexicons, compile_lexicons
from classifiers.text import Prepared, is_number, prepare

_YEAR_UNITS = {"ans", "an", "yo", "yr", "yrs", "year", "years", "ya", "aa"}
_MONTH_UNITS = {"mois", "month", "months", "mo"}
_WEEK_UNITS = {"semaine", "semaines", "week", "weeks", "sem"}
_DAY_UNITS = {"jour", "jours", "day", "days", "j"}
_GLUED = re.compile(r"^(\d{1,3})(a|ans|yo|yr|yrs|ya|m|f|h|mo)$")
_DURATION_BEFORE = {
    "depuis", "pendant", "dans", "apres", "avant", "chaque", "for", "since", "over", "in",
    "every", "after", "within", "past", "last", "sur", "durant", "tous", "toutes", "plus",
}  # fmt: skip
_DURATION_AFTER = {"ago", "later", "plus", "apres", "of", "d", "durant", "consecutive", "de"}
_CHILD_BEFORE = {  # words before "8 mois" / "5 semaines" that make it an age
    "bebe", "nourrisson", "enfant", "garcon", "fille", "fillette", "petit", "petite", "nn",
    "baby", "infant", "child", "boy", "girl", "kid", "toddler", "de", "un", "une", "a", "my",
}  # fmt: skip
# the child nouns of "bébé a 6 semaines", "my son is 7 weeks"
_CHILD_NOUNS = (_CHILD_BEFORE - {"de", "un", "une", "a", "my"}) | {"bb", "fils", "son", "daughter"}
_HAS_AGE = frozenset({"a", "has", "is"})
# "the baby is 2 weeks overdue", "bébé a 2 semaines de retard": a pregnancy, not an age
_NOT_AGE_AFTER = frozenset({"overdue", "late", "early", "retard", "avance"})
# CTAS, FRENCH: a fever of 38 °C or more under 3 months of age is a level-2 presentation
INFANT_FEVER_AGE = 0.25  # years
INFANT_FEVER_TEMP = 38.0


def age_years(tokens: list[str]) -> float | None:
    """The first age given in the post, in years (None when there is none).

    Reads "58 ans", "70a", "34yo", "45M", "8 mois" (after a child word or "old"),
    "6-week-old", "3 jours de vie"; skips durations ("depuis 2 ans", "9 years of ...").
    """
    n = len(tokens)
    for i in [i for i, tok in enumerate(tokens) if tok[0] in _DIGITS]:
        tok = tokens[i]
        prev = tokens[i - 1] if i else ""
        prev2 = tokens[i - 2] if i > 1 else ""
        if prev in _DURATION_BEFORE or (prev == "a" and prev2 == "y"):
            continue
        glued = _GLUED.match(tok)
        if glued:
            value, unit, j = float(glued.group(1)), glued.group(2), i + 1
            if unit in ("m", "f", "h") and not 10 <= value <= 110:
                continue
        elif tok.isdigit() and i + 1 < n:
            value, unit, j = float(tok), tokens[i + 1], i + 2
            if unit == "y" and j < n and tokens[j] == "o":
                unit, j = "yo", j + 1
        else:
            continue
        nxt = tokens[j] if j < n else ""
        if nxt in _DURATION_AFTER and nxt != "de":
            continue
        if unit in _YEAR_UNITS or unit in ("a", "m", "f", "h"):
            if value <= 110:
                return value
        elif unit in _MONTH_UNITS:
            if nxt == "old" or prev in _CHILD_BEFORE or i == 0 or glued:  # "8mo" is an age
                return value / 12.0
        elif (unit in _WEEK_UNITS or unit in _DAY_UNITS) and (
            nxt == "old"
            or (nxt == "de" and j + 1 < n and tokens[j + 1] == "vie")
            or (prev in _CHILD_BEFORE and prev not in ("de", "un", "une", "a", "my"))
            or (prev == "de" and (prev2 in _CHILD_BEFORE or prev2 in _CHILD_NOUNS))
            or (
                prev in _HAS_AGE
                and prev2 in _CHILD_NOUNS
                and not _NOT_AGE_AFTER.intersection(tokens[j : j + 2])
            )
        ):
            return value * (7 if unit in _WEEK_UNITS else 1) / 365.0
    return None


def age_band(age: float | None) -> str | None:
    if age is None:
        return None
    if age < 1 / 12:
        return "neonate"
    if age < 2:
        return "infant"
    if age < 12:
        return "child"
    if age < 18:
        return "teen"
    if age < 65:
        return "adult"
    return "senior" if age < 80 else "old"


@dataclass(slots=True)
class DocFeatures:
    text: list[str] = field(default_factory=list)  # text feature keys, one per occurrence
    know: dict[str, float] = field(default_factory=dict)
    cues: list[Cue] = field(default_factory=list)
    cue_counts: dict[str, float] = field(default_factory=dict)


_DIGITS = frozenset("0123456789")
_UNDER = frozenset({"sous", "on", "taking", "under", "avec"})
_WHY = frozenset({"pourquoi", "why", "mecanisme", "mechanism", "comment"})


def _number_key(token: str) -> str:
    return _shape(token) if is_number(token) else token


def _shape(token: str) -> str:
    digits = sum(c.isdigit() for c in token)
    return f"n:{'d' if ('.' in token or ',' in token) else ''}{min(digits, 4)}"


class Featurizer:
    """Turns a raw post into text and knowledge features (and its urgency cues)."""

    def __init__(self, lexicons_raw: dict[str, Any], *, stems: bool = False, bigrams: bool = False):
        self.lexicons: Lexicons = compile_lexicons(lexicons_raw)
        self.cue_extractor = CueExtractor(lexicons_raw.get("urgency") or {})
        self.matcher = self.lexicons.matcher
        self.stems = stems
        self.bigrams = bigrams
        self._affixes: dict[str, tuple[str, ...]] = {}
        self._emoji = self.lexicons.emoji

    def analyze(self, text: str) -> DocFeatures:
        lex = self.lexicons
        prep = prepare(text, lex.cased_abbrev, lex.folded_abbrev, self._emoji, lex.abbrev_keys)
        feats = DocFeatures()
        self._add_text_keys(prep, feats.text)
        know = feats.know
        matches = lex.matcher.find_spans(prep.tokens, partial(clause_break, prep))
        drug_at, spans = self._count_findings(prep.tokens, matches, know)
        _count_specific_terms(spans, know)
        self._count_added_words(prep, know)
        labels = {k for k in know if k[0] == "G"}
        with_companions = self._with_expanded_companions(prep, matches)
        cues = self.cue_extractor.extract(prep, with_companions)
        age = age_years(prep.tokens)
        if age is not None and age < INFANT_FEVER_AGE:
            _infant_fever(prep, cues, know)
        if lex.lean_organs and any(label[0] == "Q" for label, _, _ in matches):
            self._count_lean_organs(prep, with_companions, know)
        feats.cues = cues
        feats.cue_counts = CueSummary(cues).counts()
        for key, value in feats.cue_counts.items():
            know[key] = know.get(key, 0.0) + value
        self._add_patient_and_drugs(know, labels, prep.tokens, drug_at, age)
        _add_shape(know, text, prep)
        return feats

    def _add_text_keys(self, prep: Prepared, bag: list[str]) -> None:
        """Words (numbers as shapes), optional bigrams and word-edge n-grams, for the post's
        tokens and each expansion of its abbreviations; then the words standing for emoji."""
        stems, bigrams = self.stems, self.bigrams
        seqs = [prep.tokens, *prep.expansions] if prep.expansions else [prep.tokens]
        for seq in seqs:
            keys = [_number_key(t) if t[0] in _DIGITS else t for t in seq]
            bag.extend(keys)
            if bigrams and len(keys) > 1:
                bag.extend([a + " " + b for a, b in zip(keys, keys[1:])])  # noqa: B905
            if stems:
                affixes = self._affixes
                for t in seq:
                    found = affixes.get(t)
                    if found is None:
                        found = ("p:" + t[:5], "s:" + t[-4:]) if len(t) >= 6 and t.isalpha() else ()
                        if len(affixes) < 200_000:
                            affixes[t] = found
                    if found:
                        bag.extend(found)
        if prep.extra:
            bag.extend(prep.extra)

    @staticmethod
    def _count_findings(
        tokens: list[str], matches: list[tuple[str, int, int]], know: dict[str, float]
    ) -> tuple[set[int], dict[tuple[int, int], list[str]]]:
        """Count the lexicon hits (`L:`, `D:`, `G:`, `R:`) that are neither negated nor inside
        an everyday phrase. Returns where named drugs start, and the specialty terms found
        by position."""
        kget = know.get
        negated_at = {j for label, _, j in matches if label == "C:neg"}
        ignored = [(i, j) for label, i, j in matches if label == "I:ignore"]
        drug_at: set[int] = set()  # positions where a named drug starts
        spans: dict[tuple[int, int], list[str]] = {}  # specialty terms found, by position
        for label, i, end in matches:
            if label[0] in "LDGRF":
                if label[0] != "R" and (i in negated_at or (i - 1) in negated_at):
                    continue  # "pas de trauma", "no fever": a negated finding points nowhere
                if ignored and any(a <= i and end <= b for a, b in ignored):
                    continue  # "au sein de", "à quel âge": everyday phrases, not findings
                know[label] = kget(label, 0.0) + 1.0
                if label[0] == "L":
                    spans.setdefault((i, end), []).append(label[2:])
                elif label[0] == "D":
                    drug_at.add(i)
                    if i and tokens[i - 1] in _UNDER:  # "sous amiodarone", "on lithium"
                        know["X:under_drug"] = 1.0
        return drug_at, spans

    def _count_added_words(self, prep: Prepared, know: dict[str, float]) -> None:
        """Lexicon hits in the expanded abbreviations and in the words standing for emoji."""
        matcher = self.lexicons.matcher
        kget = know.get
        for seq in prep.expansions:  # an expansion counts once per label ("alcool alcohol")
            for label in dict.fromkeys(matcher.labels(seq)):
                if label[0] in "LDGF":
                    know[label] = kget(label, 0.0) + 1.0
        if prep.extra:
            for label in matcher.labels(prep.extra):
                if label[0] in "LDGR":
                    know[label] = kget(label, 0.0) + 1.0

    def _count_lean_organs(
        self, prep: Prepared, matches: list[tuple[str, int, int]], know: dict[str, float]
    ) -> None:
        """The specialty of a `lean: true` red flag whose companion word is there, by the
        cue rules' reading (`cues.completed_flags`: "saignement" + "enceinte" ->
        `F:gynecology_obstetrics`; not "pas enceinte"), unless the flag itself is negated."""
        negated_at = {j for label, _, j in matches if label == "C:neg"}
        for label, i, _ in completed_flags(prep, matches):
            organ = self.lexicons.lean_organs.get(label)
            if organ and i not in negated_at and i - 1 not in negated_at:
                know[organ] = know.get(organ, 0.0) + 1.0

    def _with_expanded_companions(
        self, prep: Prepared, matches: list[tuple[str, int, int]]
    ) -> list[tuple[str, int, int]]:
        """The matches the cue rules see: a red flag's companion word may come from an
        expanded abbreviation ("8 SA")."""
        if prep.expansions and any(label[0] == "Q" for label, _, _ in matches):
            matcher = self.lexicons.matcher
            matches = matches + [
                (label, 0, 0)
                for seq in prep.expansions
                for label in matcher.labels(seq)
                if label[0] == "N"
            ]
        return matches

    def _add_patient_and_drugs(
        self,
        know: dict[str, float],
        labels: set[str],
        tokens: list[str],
        drug_at: set[int],
        age: float | None,
    ) -> None:
        """The patient's age band, several drugs named, the joint features, a why-question
        about a drug."""
        band = age_band(age)
        if band:
            know[f"A:{band}"] = 1.0
            labels.add(f"A:{band}")
        if len(drug_at) >= 2:  # several drugs named: an interaction or a polypharmacy question
            know["X:drugs2"] = 1.0
            if len(drug_at) >= 3:
                know["X:drugs3"] = 1.0
        self._joint(know, labels)
        if (
            know.get("X:drugq&drug") is None
            and _WHY.intersection(tokens)
            and ("G:drug_mention" in labels or any(k[0] == "D" for k in know))
        ):
            know["X:why&drug"] = 1.0

    @staticmethod
    def _joint(know: dict[str, float], labels: set[str]) -> None:
        drug = "G:drug_mention" in labels or any(k.startswith("D:") for k in know)
        if "G:drug_question" in labels and drug:
            know["X:drugq&drug"] = 1.0
        for group in ("pregnancy", "breastfeeding"):
            if f"G:{group}" in labels and drug:
                know[f"X:drug&{group}"] = 1.0
                if "G:drug_question" in labels:
                    know[f"X:drugq&{group}"] = 1.0
        visual = "G:photo" in labels or "G:image" in labels
        if visual:
            for group in ("skin", "eye", "ecg"):
                if f"G:{group}" in labels:
                    know[f"X:picture&{group}"] = 1.0
        if drug:  # adverse effects, interactions, doses, renal adjustment, drug-induced QT
            for group in ("drug_adverse", "drug_interaction", "drug_dose", "renal", "qt"):
                if f"G:{group}" in labels:
                    know[f"X:drug&{group}"] = 1.0
        young = labels & {"A:neonate", "A:infant", "A:child", "G:child"}
        if young:
            know["X:young"] = 1.0
            if drug:
                know["X:young&drug"] = 1.0
        if labels & {"A:senior", "A:old", "G:elderly"}:
            know["X:old"] = 1.0


def _infant_fever(prep: Prepared, cues: list[Cue], know: dict[str, float]) -> None:
    """A temperature of 38 °C or more read in the post of an infant under 3 months ("bébé a 6
    semaines, 38,4", "9 weeks old, temp 38.5") is the red flag `infant_fever_under_3_months`
    whatever words give the age, and leans to pediatrics like that flag."""
    flagged = {c.start for c in cues if c.kind == "red_flag"}
    for cue in list(cues):
        if cue.kind == "vital" and cue.vital == "temperature" and cue.value >= INFANT_FEVER_TEMP:
            if cue.start in flagged:
                return  # the lexicon's own wording of the flag ("fils de 6 semaines", "38,1")
            end = cue.start + len(cue.text)  # the reading as written, e.g. "temp 38.5"
            cues.append(Cue("red_flag", prep, start=cue.start, end=end))
            know["F:pediatrics"] = know.get("F:pediatrics", 0.0) + 1.0
            return


def _count_specific_terms(spans: dict[tuple[int, int], list[str]], know: dict[str, float]) -> None:
    """Specialty terms counted again: `O:<id>` for a term of one specialty only, `P:<id>` for
    a multi-word term ("neuropathie diabétique", more specific)."""
    for (i, end), ids in spans.items():
        if len(ids) == 1:
            key = "O:" + ids[0]
            know[key] = know.get(key, 0.0) + 1.0
        if end - i > 1:
            for spec in ids:
                key = "P:" + spec
                know[key] = know.get(key, 0.0) + 1.0


def _add_shape(know: dict[str, float], text: str, prep: Prepared) -> None:
    """The post's shape: question marks, a reply, mentions, links, hashtags, length."""
    n_q = text.count("?") + text.count("❓")
    if n_q:
        know["S:q"] = 1.0
        know["S:qn"] = float(min(n_q, 4))
    if prep.starts_with_mention:
        know["S:reply"] = 1.0
    if prep.n_mentions:
        know["S:mention"] = float(prep.n_mentions)
    if prep.n_urls:
        know["S:url"] = 1.0
    if prep.n_hashtags:
        know["S:tags"] = float(prep.n_hashtags)
    know[f"S:len{min(len(prep.tokens) // 10, 5)}"] = 1.0


def tfidf_rows(
    docs: list[DocFeatures],
    vocab: dict[str, int],
    idf: np.ndarray,
    n_text: int,
    know_weight: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays (indptr, indices, data): the exact transform used in training and serving.

    Text features: each occurrence weighs its IDF, and a post's text part is divided by
    sqrt(sum of squared IDF over its occurrences) (repeated words are rare in posts; entries
    may repeat within a row and are summed by the dot product). Knowledge features:
    know_weight * log(1 + count). Rows are contiguous, in post order.
    """
    get = vocab.get
    idx: list[int] = []
    n_text_hits: list[int] = []
    row_len: list[int] = []
    know_val: list[float] = []
    for doc in docs:
        hits = [j for j in map(get, doc.text) if j is not None]
        n_text_hits.append(len(hits))
        for key, count in doc.know.items():
            j = get(key)
            if j is not None:
                hits.append(j)
                know_val.append(count)
        idx.extend(hits)
        row_len.append(len(hits))
    n_docs = len(docs)
    indices = np.asarray(idx, dtype=np.int64)
    lengths = np.asarray(row_len, dtype=np.int64)
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    rows = np.repeat(np.arange(n_docs), lengths)
    is_text = (np.arange(len(indices)) - indptr[rows]) < np.asarray(n_text_hits, dtype=np.int64)[
        rows
    ]
    data = idf[indices].astype(np.float64) if len(indices) else np.zeros(0)
    data[~is_text] = know_weight * np.log1p(np.asarray(know_val, dtype=np.float64))
    norms = np.sqrt(np.bincount(rows[is_text], weights=data[is_text] ** 2, minlength=n_docs))
    norms[norms == 0] = 1.0
    data[is_text] /= norms[rows[is_text]]
    return indptr, indices, data


def fit_vocabulary(
    docs: list[DocFeatures], min_df: int, stop_words: frozenset[str] = frozenset()
) -> tuple[dict[str, int], np.ndarray, int]:
    """Vocabulary (text features seen in >= min_df posts, except `stop_words`, then knowledge
    features), and IDF. A word left out of the vocabulary is not a feature at serving either."""
    df: dict[str, int] = {}
    know: set[str] = set()
    for doc in docs:
        for key in set(doc.text):
            df[key] = df.get(key, 0) + 1
        know.update(doc.know)
    text_keys = sorted(k for k, v in df.items() if v >= min_df and k not in stop_words)
    vocab = {k: i for i, k in enumerate(text_keys)}
    n_text = len(text_keys)
    for key in sorted(know):
        vocab[key] = len(vocab)
    n = len(docs)
    idf = np.ones(len(vocab), dtype=np.float64)
    for key, i in vocab.items():
        if i < n_text:
            idf[i] = math.log((1 + n) / (1 + df[key])) + 1.0
    return vocab, idf, n_text
