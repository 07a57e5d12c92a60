"""Urgency cues: the phrases, red flags and vital signs that explain an urgency decision.

Works on the raw post (French or English) and returns each cue with the exact words of the
post, so the digest can show "il est au cabinet", "FC 110" or "pas urgent" to the clinician.
A red flag preceded by a negation in the same clause ("pas de déficit", "no chest pain") is
marked negated, and so is a sign that the case is past ("no history of", "not on iron");
phrases inside an explicit negation of urgency ("pas urgent") are dropped. A red flag that a
history phrase just before it or an "... ago" phrase just after it names ("ATCD d'AVC", "AVC
il y a 3 ans") is marked `earlier`: it is not shown and does not make a current case.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from classifiers.text import Prepared

URGENT_KINDS = ("now", "deadline", "red_flag", "severity", "vital")
_CLAUSE_BREAK = re.compile(r"[,.;:!?\n()]|\bmais\b|\bbut\b")
# "ATCD : AVC" keeps the history with its event; a comma, a full stop or brackets end it.
_EARLIER_BREAK = re.compile(r"[,.;!?\n()]|\bmais\b|\bbut\b")
# A history phrase ("antécédent de", "history of") reaches a red flag at most this many words
# after it; an "... ago" phrase ("il y a 3 ans", "in 2019") one at most this many words before.
HISTORY_REACH = 2
AGO_REACH = 3
_SEP = (
    r"\s*(?:[:=~]|>|<|\ba\b|\bat\b|\bof\b|\bde\b|\bis\b|\best\b|\bvers\b|\baround\b"
    r"|\bsays\b|\breads\b|\bshows\b|\baffiche\b|\bindique\b)?\s*"
)
_NUM = r"(\d{1,3}(?:[.,]\d+)?)"
_RANGES = {
    "heart_rate": (20, 260),
    "systolic": (40, 300),
    "spo2": (50, 100),
    "temperature": (33, 43),
    "resp_rate": (5, 70),
    "gcs": (3, 15),
    "glucose": (0.1, 60),
    "potassium": (1, 10),
    "sodium": (100, 190),
    "hemoglobin": (2, 22),
}
# Temperatures and saturations written without a name ("39,5°", "39.6 et frissons", "88% en AA").
# The patterns start with a digit so the regex engine can skip ahead quickly; the character
# before a match is checked in Python (no digit, dot, comma or slash).
_TEMP_RE = re.compile(
    r"((?:3[5-9]|4[0-2])(?:[.,]\d)?)\s*(?:°|deg)|((?:3[89]|4[01])[.,]\d)(?![\d.,/%])"
)
_SAT_RE = re.compile(
    r"(\d{2,3})\s*%\s*(?=(?:en |on |au |at |sous |a l'|under )?(?:aa|air|ra|repos|rest|room air|o2|oxygen|l/min))"
)


def _free_start(text: str, start: int) -> bool:
    return start == 0 or text[start - 1] not in "0123456789.,/"


class Cue:
    """One cue: its kind (now | deadline | red_flag | vital | soon | routine | not_urgent) and
    flags; its position and its words in the post (`start`, `text`) are only worked out when
    asked for, which is rarely needed beyond the few cues shown in a digest."""

    __slots__ = (
        "kind",
        "negated",
        "earlier",
        "abnormal",
        "vital",
        "value",
        "_prep",
        "_i",
        "_j",
        "_start",
        "_end",
        "_text",
    )

    def __init__(
        self,
        kind: str,
        prep: Prepared,
        *,
        i: int = -1,
        j: int = -1,
        start: int = -1,
        end: int = -1,
        negated: bool = False,
        abnormal: bool = False,
        vital: str = "",
        value: float = math.nan,
    ):
        self.kind = kind
        self.negated = negated
        self.earlier = False  # a red flag that a history or "... ago" phrase places in the past
        self.abnormal = abnormal
        self.vital = vital
        self.value = value  # a vital sign's reading
        self._prep = prep
        self._i, self._j, self._start, self._end = i, j, start, end
        self._text: str | None = None

    @property
    def start(self) -> int:
        if self._start < 0:
            self._start = self._prep.start(self._i)
        return self._start

    @property
    def text(self) -> str:
        """The words as written in the post (accents, case and ligatures kept)."""
        if self._text is None:
            end = self._end if self._end >= 0 else self._prep.end(self._j - 1)
            self._text = self._prep.original(self.start, end).strip()
        return self._text

    def __repr__(self) -> str:
        flags = "".join((" negated" if self.negated else "", " abnormal" if self.abnormal else ""))
        return f"Cue({self.kind} {self.text!r}{flags})"


_VALUE_RE = re.compile(
    rf"[+°]?{_SEP}(?:a\s+)?{_NUM}(?:\s*/\s*(\d{{2,3}}))?(\s*(?:g/l|mmol|mg/dl|s\b))?"
)


class CueExtractor:
    """Turns the matches of the `C:`/`V:` labels (see lexicons) into cues with their words."""

    def __init__(self, raw: dict[str, Any]):
        self.thresholds: dict[str, dict[str, float]] = raw.get("thresholds") or {}

    def extract(self, prep: Prepared, matches: list[tuple[str, int, int]]) -> list[Cue]:
        """Cues of a prepared post (not sorted; `CueSummary.shown` orders what it shows).

        `matches` are the (label, first token, end token) found in `prep.tokens`.
        """
        phrases = [
            (label[2:], i, j) for label, i, j in matches if label[0] == "C" and label != "C:neg"
        ]
        negations = [(i, j) for label, i, j in matches if label == "C:neg"]
        phrases += [("red_flag", i, j) for _, i, j in completed_flags(prep, matches, negations)]
        cues: list[Cue] = []
        if phrases:
            blocked = [(i, j) for kind, i, j in phrases if kind == "not_urgent"]
            for kind, i, j in _drop_nested(phrases, blocked):
                negated = (
                    bool(negations)
                    and kind in ("red_flag", "severity", "past", "history", "ago")
                    and _negated(prep, negations, i)
                )
                cues.append(Cue(kind, prep, i=i, j=j, negated=negated))
            _mark_earlier(prep, cues)
        vitals = [(label[2:], i, j) for label, i, j in matches if label[0] == "V"]
        if (
            vitals
            or "%" in prep.folded
            or "°" in prep.folded
            or "," in prep.folded
            or "." in prep.folded
        ):
            cues.extend(self._vitals(prep, vitals))
        return cues

    def _vitals(self, prep: Prepared, names: list[tuple[str, int, int]]) -> list[Cue]:
        out: list[Cue] = []
        folded = prep.folded
        taken: list[tuple[int, int]] = []
        values: set[int] = set()
        for vital, i, j in names:
            m = _VALUE_RE.match(folded, prep.end(j - 1))
            if m is None or m.start(1) in values:
                continue
            value = _number(m.group(1))
            unit = (m.group(3) or "").strip()
            if not _plausible(vital, value):
                continue
            values.add(m.start(1))
            start = prep.start(i)
            end = m.end(2) if m.group(2) else m.end(1)
            if unit == "s" and vital == "heart_rate":
                end, unit = m.end(3), ""
            abnormal = self._abnormal(vital, value, unit)
            out.append(
                Cue(
                    "vital",
                    prep,
                    start=start,
                    end=end,
                    abnormal=abnormal,
                    vital=vital,
                    value=value,
                )
            )
            taken.append((start, m.end()))
        if "°" in folded or "deg" in folded or "," in folded or "." in folded:
            for m in _TEMP_RE.finditer(folded):
                if not _free_start(folded, m.start()) or any(a <= m.start() < b for a, b in taken):
                    continue
                value = _number(m.group(1) or m.group(2))
                out.append(
                    Cue(
                        "vital",
                        prep,
                        start=m.start(),
                        end=m.end(),
                        abnormal=self._abnormal("temperature", value, ""),
                        vital="temperature",
                        value=value,
                    )
                )
        if "%" in folded:
            for m in _SAT_RE.finditer(folded):
                if not _free_start(folded, m.start()) or any(a <= m.start() < b for a, b in taken):
                    continue
                value = _number(m.group(1))
                if _plausible("spo2", value):
                    out.append(
                        Cue(
                            "vital",
                            prep,
                            start=m.start(),
                            end=m.end(),
                            abnormal=self._abnormal("spo2", value, ""),
                            vital="spo2",
                            value=value,
                        )
                    )
        return out

    def _abnormal(self, vital: str, value: float, unit: str) -> bool:
        limits = self.thresholds.get(vital) or {}
        if vital == "glucose":
            mmol = "mmol" in unit or (not unit and 2.0 <= value <= 40)
            if "mg/dl" in unit or value > 40:
                return value < 54 or value > 400
            if mmol:
                return value < limits.get("low_mmol", 3.0) or value > limits.get("high_mmol", 25)
        low, high = limits.get("low"), limits.get("high")
        return (low is not None and value < low) or (high is not None and value > high)


def _mark_earlier(prep: Prepared, cues: list[Cue]) -> None:
    """Mark the red flags that a history phrase just before them ("ATCD d'AVC", "history of
    stroke") or an "... ago" phrase just after them ("AVC il y a 3 ans", "stroke in 2019")
    places in the past, in the same clause: the rest of the post is still a current case
    ("ATCD de diabète, douleur thoracique depuis 1 h")."""
    markers = [c for c in cues if c.kind in ("history", "ago") and not c.negated]
    if not markers:
        return
    for cue in cues:
        if cue.kind != "red_flag" or cue.negated:
            continue
        for m in markers:
            if m._i < cue._j and cue._i < m._j:  # "ancien AVC": the phrase holds the flag
                cue.earlier = True
            elif m.kind == "history" and m._j <= cue._i and cue._i - m._j <= HISTORY_REACH:
                cue.earlier = not _EARLIER_BREAK.search(
                    prep.folded, prep.end(m._j - 1), prep.start(cue._i)
                )
            elif m.kind == "ago" and cue._j <= m._i and m._i - cue._j <= AGO_REACH:
                cue.earlier = not _EARLIER_BREAK.search(
                    prep.folded, prep.end(cue._j - 1), prep.start(m._i)
                )
            if cue.earlier:
                break


def clause_break(prep: Prepared, a: int, b: int) -> bool:
    """Whether a clause break (punctuation, "mais", "but") lies between word a and word b."""
    return b > a and bool(_CLAUSE_BREAK.search(prep.folded, prep.end(a), prep.start(b)))


def completed_flags(
    prep: Prepared,
    matches: list[tuple[str, int, int]],
    negations: list[tuple[int, int]] | None = None,
) -> list[tuple[str, int, int]]:
    """The matches (`Q:<flag id>`, i, j) of red flags that need another word of the post
    (pregnancy, a child...) and have it; a negated companion does not count ("cœur qui
    s'emballe, jamais de malaise"). The cue rules and the specialty lean both use this."""
    if not any(label[0] == "Q" for label, _, _ in matches):
        return []
    if negations is None:
        negations = [(i, j) for label, i, j in matches if label == "C:neg"]
    present = {
        label[2:]
        for label, i, _ in matches
        if label[0] == "N" and not (negations and _negated(prep, negations, i))
    }
    return [m for m in matches if m[0][0] == "Q" and m[0][2:] in present]


def _negated(prep: Prepared, negations: list[tuple[int, int]], i: int) -> bool:
    """A negation ends at most 3 words before word i, with no clause break in between."""
    for _, b in negations:
        if (
            b <= i
            and i - b <= 3
            and not _CLAUSE_BREAK.search(prep.folded, prep.end(b - 1), prep.start(i))
        ):
            return True
    return False


def _number(raw: str) -> float:
    try:
        return float(raw.replace(",", "."))
    except ValueError:
        return -1.0


def _plausible(vital: str, value: float) -> bool:
    low, high = _RANGES.get(vital, (0, 1e9))
    return low <= value <= high


def _drop_nested(
    matches: list[tuple[str, int, int]], blocked: list[tuple[int, int]]
) -> list[tuple[str, int, int]]:
    """Drop matches inside an explicit non-urgency phrase, and same-kind matches nested in a
    longer one (keep "il est au cabinet", not also "est au cabinet"). Linear after a sort: a
    hostile post repeating a phrase thousands of times stays fast."""
    nested: set[tuple[str, int, int]] = set()
    by_kind: dict[str, set[tuple[int, int]]] = {}
    for kind, i, j in matches:
        by_kind.setdefault(kind, set()).add((i, j))
    for kind, spans in by_kind.items():
        if len(spans) < 2:
            continue
        reach = -1  # the furthest end of the spans that start at or before this one
        for i, j in sorted(spans, key=lambda span: (span[0], -span[1])):
            if reach >= j:
                nested.add((kind, i, j))
            reach = max(reach, j)
    out: list[tuple[str, int, int]] = []
    seen: set[tuple[str, int, int]] = set()
    for kind, i, j in matches:
        key = (kind, i, j)
        if key in seen or key in nested:
            continue
        if blocked and kind != "not_urgent" and any(a <= i and j <= b for a, b in blocked):
            continue
        seen.add(key)
        out.append(key)
    return out


@dataclass
class CueSummary:
    """Counts used as model features, and the cues worth showing for a given urgency."""

    cues: list[Cue]

    def counts(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for cue in self.cues:
            if cue.kind == "vital":
                key = "U:vital_abn" if cue.abnormal else "U:vital"
                out[key] = out.get(key, 0.0) + 1.0
                out[f"U:v:{cue.vital}"] = 1.0
            elif cue.negated:
                if cue.kind in ("past", "history", "ago"):
                    continue  # "no history of", "pas sous fer": the case is not said to be past
                key = "U:red_neg" if cue.kind == "red_flag" else "U:sev_neg"
                out[key] = out.get(key, 0.0) + 1.0
            elif cue.earlier:
                key = "U:red_earlier"
                out[key] = out.get(key, 0.0) + 1.0
            else:
                key = f"U:{cue.kind}"
                out[key] = out.get(key, 0.0) + 1.0
        now = out.get("U:now", 0.0)
        red = out.get("U:red_flag", 0.0) + out.get("U:severity", 0.0) + out.get("U:vital_abn", 0.0)
        if now and red:
            out["U:now&red"] = 1.0
        if out.get("U:deadline") and red:
            out["U:deadline&red"] = 1.0
        if out.get("U:not_urgent") and not (now and red):
            out["U:calm"] = 1.0
        if out.get("U:red_flag") and not out.get("U:past"):
            # TAXONOMY: a current case showing a top-two-level triage red flag is urgent
            out["U:case&red"] = 1.0
        return out

    def shown(self, urgency: str | None, limit: int = 5) -> list[str]:
        if urgency is None:
            return []
        if urgency == "urgent":
            kinds: tuple[str, ...] = URGENT_KINDS
        elif urgency == "soon":
            kinds = ("soon", "vital", "deadline")
        else:
            kinds = ("not_urgent", "routine")
        out: list[str] = []
        chosen = [c for c in self.cues if c.kind in kinds and not c.negated and not c.earlier]
        for cue in sorted(chosen, key=lambda c: c.start):
            if cue.text not in out:
                out.append(cue.text)
            if len(out) >= limit:
                break
        return out
