"""Text normalisation shared by training, inference and cue extraction (pure Python, fast).

`fold` lower-cases and removes accents; `prepare` turns a raw post into folded tokens with
URLs, mentions and hashtags handled and abbreviations expanded (the expansions are kept as
separate token sequences so that they add words without breaking the post's own bigrams).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

_SPECIAL = {
    "œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ß": "ss", "ø": "o", "Ø": "o", "ł": "l",
    "’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'", "“": '"', "”": '"', "«": '"', "»": '"',
    "–": "-", "—": "-", "‑": "-", "−": "-", "\u00a0": " ", "\u202f": " ", "\u2009": " ",
    "°": "°", "µ": "u", "β": "beta", "α": "alpha", "γ": "gamma", "δ": "delta", "κ": "kappa",
    "≥": ">=", "≤": "<=", "→": " -> ", "⩾": ">=", "⩽": "<=",
}  # fmt: skip


def _build_fold_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0xC0, 0x250):
        char = chr(code)
        base = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        if base and base != char:
            table[code] = base.lower()
    for char, repl in _SPECIAL.items():
        table[ord(char)] = repl
    return table


FOLD_TABLE = _build_fold_table()


def fold(text: str) -> str:
    """Lower-case, accents removed, ligatures expanded, typographic quotes made plain."""
    return text.lower().translate(FOLD_TABLE)


_COMMON = tuple(
    (c, FOLD_TABLE[ord(c)]) for c in "éèêëàâäçîïôöùûüÿñ" if len(FOLD_TABLE.get(ord(c), "")) == 1
)
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def fold_with_offsets(text: str) -> tuple[str, list[int] | None]:
    """`fold(text)` and, when lengths differ, the index in `text` of each folded character.

    Fast path: lower-case, the common French accents replaced one for one, and only the
    remaining non-ASCII characters looked up in the fold table.
    """
    low = text.lower()
    if len(low) != len(text):  # rare case-mapping oddities: character by character
        offsets: list[int] = []
        for i, char in enumerate(text):
            offsets.extend([i] * len(fold(char)))
        return "".join(fold(c) for c in text), offsets
    if low.isascii():
        return low, None
    for accented, plain in _COMMON:
        if accented in low:
            low = low.replace(accented, plain)
    if low.isascii():
        return low, None
    pieces: list[str] = []
    wide: list[tuple[int, int]] = []
    last = 0
    for m in _NON_ASCII.finditer(low):
        i = m.start()
        repl = FOLD_TABLE.get(ord(low[i]), low[i])
        pieces.append(low[last:i])
        pieces.append(repl)
        last = i + 1
        if len(repl) != 1:
            wide.append((i, len(repl)))
    pieces.append(low[last:])
    folded = "".join(pieces)
    if not wide:
        return folded, None
    offsets = list(range(len(text)))
    for i, width in reversed(wide):
        offsets[i : i + 1] = [i] * width
    return folded, offsets


URL_RE = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
MENTION_RE = re.compile(r"(?<![\w@])@[\w.\-]+(?:@[\w.\-]+)?")
HASHTAG_RE = re.compile(r"#(\w+)")
WORD_RE = re.compile(r"[^\W_]+(?:[.,][0-9]+)?")
NUMBER_RE = re.compile(r"^[0-9]+(?:[.,][0-9]+)?$")
MAIN_TAG = "doctoctoc"


def _blank(match: re.Match[str]) -> str:
    return " " * len(match.group(0))


def _blank_tag(match: re.Match[str]) -> str:
    """`#DocTocTocPedia` -> spaces + `Pedia` (same length); other tags lose only the `#`."""
    tag = match.group(1)
    if tag.lower().startswith(MAIN_TAG):
        return " " * (1 + len(MAIN_TAG)) + tag[len(MAIN_TAG) :]
    return " " + tag


def mask_markup(text: str) -> str:
    """URLs and mentions blanked, hashtag signs removed: same length as `text`."""
    if "http" in text or "www." in text:
        text = URL_RE.sub(_blank, text)
    if "@" in text:
        text = MENTION_RE.sub(_blank, text)
    if "#" in text:
        text = HASHTAG_RE.sub(_blank_tag, text)
    return text


def strip_markup(text: str) -> str:
    """The post's words only: URLs and mentions removed, the hashtag words kept."""
    return mask_markup(text)


@dataclass(slots=True)
class Prepared:
    """A post ready for featurisation and cue extraction (one fold, one tokenisation)."""

    text: str  # the raw post
    folded: str  # folded, markup masked; positions map to `text` through `offsets`
    offsets: list[int] | None  # None when folding kept every position
    tokens: list[str]  # folded words, in order
    expansions: list[list[str]] = field(default_factory=list)  # expanded abbreviations
    extra: list[str] = field(default_factory=list)  # words standing for emoji
    n_urls: int = 0
    n_mentions: int = 0
    n_hashtags: int = 0
    starts_with_mention: bool = False
    _starts: list[int] = field(default_factory=list)

    def start(self, i: int) -> int:
        """Position of word i in `folded` (found lazily: only posts with cues need it).

        Between two words there are no letters or digits, so searching each word from the end
        of the previous one lands exactly on it.
        """
        starts = self._starts
        if i >= len(starts):
            folded, tokens = self.folded, self.tokens
            pos = starts[-1] + len(tokens[len(starts) - 1]) if starts else 0
            for k in range(len(starts), i + 1):
                pos = folded.find(tokens[k], pos)
                starts.append(pos)
                pos += len(tokens[k])
        return starts[i]

    def end(self, i: int) -> int:
        return self.start(i) + len(self.tokens[i])

    def original(self, start: int, end: int) -> str:
        """The raw text behind folded positions [start, end)."""
        if self.offsets is None:
            return self.text[start:end]
        return self.text[self.offsets[start] : self.offsets[end - 1] + 1]


def tokenize(folded: str) -> list[str]:
    return WORD_RE.findall(folded)


# Contractions typed without their apostrophe on a phone ("cant breathe", "jarrive plus à
# respirer"), split as the apostrophe would split them, so that "can't breathe" and "j'arrive"
# match them. Forms that are words of their own are left alone ("its", "ill", "well", "were",
# "im" (IM, intramuscular), French "quelle"), with one exception: "dont" is split although it
# is also French "dont" ("dont le père"), because "dont want to live" is how phones type a
# red flag. Posts and training see the same tokens, so only the lexicons must take care: no
# term is written with French "dont", and "don't" is not a negator (urgency.yaml).
_GLUED = {
    **{w + "nt": (w + "n", "t") for w in ("does", "is", "are", "was", "were", "did", "could",
                                           "would", "should", "have", "has", "had")},
    "cant": ("can", "t"), "wont": ("won", "t"), "dont": ("don", "t"), "ive": ("i", "ve"), "hes": ("he", "s"), "shes": ("she", "s"), "thats": ("that", "s"),
    "jai": ("j", "ai"), "jarrive": ("j", "arrive"), "narrive": ("n", "arrive"),
    "jarrivais": ("j", "arrivais"), "narrivait": ("n", "arrivait"), "cest": ("c", "est"),
    "sest": ("s", "est"), "jetais": ("j", "etais"), "javais": ("j", "avais"),
    "jvais": ("j", "vais"), "jveux": ("j", "veux"), "jpeux": ("j", "peux"), "jen": ("j", "en"),
    "narrete": ("n", "arrete"), "quil": ("qu", "il"),
}  # fmt: skip


def _unglue(tokens: list[str]) -> list[str]:
    out: list[str] = []
    for tok in tokens:
        parts = _GLUED.get(tok)
        if parts is None:
            out.append(tok)
        else:
            out.extend(parts)
    return out


def prepare(
    text: str,
    cased_abbrev: dict[str, list[str]],
    folded_abbrev: dict[str, list[str]],
    emoji: dict[str, str] | None = None,
    abbrev_keys: frozenset[str] | None = None,
) -> Prepared:
    """Normalise a raw post: markup handled, folded, tokenised, abbreviations expanded.

    `abbrev_keys` (folded keys of both tables) saves recomputing them for every post.
    """
    masked = mask_markup(text)
    folded, offsets = fold_with_offsets(masked)
    if abbrev_keys is None:
        abbrev_keys = frozenset(folded_abbrev) | frozenset(fold(k) for k in cased_abbrev)
    tokens = WORD_RE.findall(folded)
    if not _GLUED.keys().isdisjoint(tokens):
        tokens = _unglue(tokens)
    expansions: list[list[str]] = []
    candidates = abbrev_keys.intersection(tokens)
    extra = [] if text.isascii() else [word for sign, word in (emoji or {}).items() if sign in text]
    prep = Prepared(
        text=text,
        folded=folded,
        offsets=offsets,
        tokens=tokens,
        expansions=expansions,
        extra=extra,
        starts_with_mention=text.lstrip().startswith("@"),
    )
    for i in [i for i, tok in enumerate(tokens) if tok in candidates] if candidates else ():
        tok = tokens[i]
        exp = folded_abbrev.get(tok)
        if exp is None:
            a, b = prep.start(i), prep.end(i)
            raw = masked[a:b] if offsets is None else masked[offsets[a] : offsets[b - 1] + 1]
            exp = cased_abbrev.get(raw)
        if exp is not None:
            expansions.append(exp)
    if "http" in text or "www." in text:
        prep.n_urls = len(URL_RE.findall(text))
    if "@" in text:
        prep.n_mentions = len(MENTION_RE.findall(text))
    if "#" in text:
        prep.n_hashtags = sum(
            1 for t in HASHTAG_RE.findall(text) if not t.lower().startswith(MAIN_TAG)
        )
    return prep


def is_number(token: str) -> bool:
    return NUMBER_RE.match(token) is not None
