"""Render digests and alerts: email HTML + plain text, and short DM text.

Post text is untrusted: the HTML environment autoescapes everything, and plain-text
outputs are stripped of control characters. Templates live in digests/templates/.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from digests.i18n import age_text, specialty_name, strings

TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_ITEM_CHARS = 600  # a digest item shows at most this much of a post
URGENCY_COLORS = {"urgent": "#c62828", "soon": "#ef6c00", "routine": "#607d8b"}
# The classifier flags a request urgent from a low probability on purpose (no urgent case
# missed); below this probability the digest says so: "URGENT ?" rather than "URGENT".
URGENT_CONFIDENT = 0.5


@dataclass
class DigestItem:
    post_id: int
    url: str
    text: str
    author: str
    network: str
    created_at: datetime
    specialty: str | None
    urgency: str | None
    cues: list[str] = field(default_factory=list)
    answer_count: int = 0
    media: list[dict[str, str]] = field(default_factory=list)
    correction_url: str | None = None
    uncertain: bool = False
    reason: str = "specialty"
    answers: list[str] = field(default_factory=list)
    urgency_score: float | None = None

    @property
    def urgency_label(self) -> str:
        """The i18n key of the urgency shown: urgent, urgent_unsure, soon or routine."""
        score = self.urgency_score
        if self.urgency == "urgent" and score is not None and score < URGENT_CONFIDENT:
            return "urgent_unsure"
        return self.urgency or "routine"


@dataclass
class Digest:
    subscriber_id: str
    subscriber_name: str
    language: str
    kind: str  # alert | digest | student
    items: list[DigestItem]
    answered: list[DigestItem] = field(default_factory=list)
    more: int = 0
    more_url: str = ""
    unsubscribe_url: str = ""
    specialties: str = ""
    message_key: str = ""
    generated_at: datetime | None = None
    # An alert for a post older than this says how old in its subject (None: never).
    stale_after: timedelta | None = None
    # (subject, text, html) when already rendered (see render_email_shared).
    rendered: tuple[str, str, str] | None = field(default=None, repr=False, compare=False)

    def age_seconds(self, item: DigestItem) -> float:
        now = self.generated_at or datetime.now(UTC)
        return (now - item.created_at).total_seconds()

    @property
    def all_items(self) -> list[DigestItem]:
        return self.items + self.answered


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


@lru_cache(maxsize=16384)  # a post's text is cleaned once per cycle, not once per message
def clean_text(text: str, limit: int | None = MAX_ITEM_CHARS) -> str:
    """Untrusted text made safe for plain-text output: no control or bidi-override chars."""
    text = unicodedata.normalize("NFC", text or "")
    text = _CONTROL.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = re.sub(r"[ \t]+", " ", text).strip()
    return shorten(text, limit) if limit else text


def _finalize(value: object) -> object:
    """Every `{{ ... }}` of every template goes through here: whatever an untrusted string
    reaches (author names, photo descriptions, cues, names), no control or bidi-override
    character comes out."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return _CONTROL.sub(" ", value)
    return value


def is_http(url: object) -> bool:
    """Only http(s) links are rendered (never `javascript:`, `data:` ...)."""
    return isinstance(url, str) and bool(_HTTP.match(url))


_HTTP = re.compile(r"https?://[^\s/]", re.IGNORECASE)


@lru_cache(maxsize=16384)
def one_line(text: str, limit: int = 80) -> str:
    """For headers and subjects: a single line, no CR/LF (header injection)."""
    return shorten(" ".join(clean_text(text, None).split()), limit)


def shorten(text: str, limit: int) -> str:
    """Cut at a word boundary, never mid-word, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: max(1, limit - 1)]
    if " " in cut:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:.") + "…"


@lru_cache(maxsize=2)
def _env(html: bool) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "html.j2"]) if html else False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_finalize,
    )
    env.tests["http"] = is_http
    env.filters["clean"] = clean_text
    env.filters["oneline"] = one_line
    return env


Part = Callable[[str, dict, "DigestItem"], str]


def _context(digest: Digest, part: Part | None = None) -> dict:
    """The templates' names. `part(template, context, item)` renders one item's block
    (default: the item template; SharedRenderer gives blocks rendered once per cycle)."""
    lang = digest.language
    s = strings(lang)
    ctx: dict = {
        "d": digest,
        "s": s,
        "lang": lang,
        "spec": lambda sp: specialty_name(lang, sp),
        "urgency_word": lambda it: s[it.urgency_label],
        "color": lambda u: URGENCY_COLORS.get(u or "routine", "#607d8b"),
        "age": lambda it: age_text(lang, digest.age_seconds(it)),
        "count": len(digest.items) + len(digest.answered) + digest.more,
    }
    render_part = part or _render_part
    ctx["part"] = lambda name, it: render_part(name, ctx, it)
    return ctx


def _render_part(name: str, ctx: dict, item: DigestItem) -> Markup:
    """One item's block, as the template's loop would write it (Markup: written as is)."""
    return Markup(_env(name.endswith(".html.j2")).get_template(name).render(ctx, it=item))


def subject(digest: Digest) -> str:
    s = strings(digest.language)
    if digest.kind == "alert" and digest.items:
        first = digest.items[0]
        key = {"urgent": "subject_alert", "urgent_unsure": "subject_alert_unsure"}.get(
            first.urgency_label, "subject_alert_soon"
        )
        text = s[key].format(specialty=specialty_name(digest.language, first.specialty))
        age = digest.age_seconds(first)
        if digest.stale_after is not None and age >= digest.stale_after.total_seconds():
            text = s["subject_stale"].format(subject=text, age=age_text(digest.language, age))
        return one_line(text, 120)
    count = len(digest.items) + len(digest.answered) + digest.more
    key = "subject_student" if digest.kind == "student" else "subject_digest"
    return one_line(s[key].format(count=count), 120)


def render_email(digest: Digest, part: Part | None = None) -> tuple[str, str, str]:
    """(subject, plain text, html)."""
    ctx = _context(digest, part)
    text = _env(False).get_template("email.txt.j2").render(**ctx)
    html = _env(True).get_template("email.html.j2").render(**ctx)
    return subject(digest), text, html


def render_dm(digest: Digest, max_length: int, prefix: str = "") -> str:
    """DM text within `max_length` characters (prefix such as a mention included).

    A digest that does not fit is cut at an item boundary, with a link to the rest.
    """
    env = _env(False)
    template = env.get_template("dm.txt.j2")
    items = list(digest.all_items)
    for keep in range(len(items), -1, -1):
        shown = items[:keep]
        rest = len(items) - keep + digest.more
        ctx = _context(digest) | {"shown": shown, "rest": rest}
        text = prefix + template.render(**ctx).strip()
        if len(text) <= max_length:
            return text
    # Not even the header fits: one shortened item, still cut on a word boundary.
    return shorten(
        prefix + one_line(subject(digest), max_length) + " " + digest.more_url, max_length
    )


# --- one rendering per distinct content ----------------------------------------------------

_NONCE = secrets.token_hex(8)  # unguessable: post text cannot fake a placeholder
_NAME = f"N{_NONCE}N"
_SPECIALTIES = f"S{_NONCE}S"
_URL = f"https://x{_NONCE}.invalid/"
_PLACEHOLDER = re.compile(rf"{_NAME}|{_SPECIALTIES}|{re.escape(_URL)}(?:u|m|c\d+)")
_SPLIT = re.compile(f"({_PLACEHOLDER.pattern})")  # split(): placeholders at odd places
_MARK = f"\x00{_NONCE}\x00"  # where the skeleton of a digest takes an item block
_MARKS = re.compile(rf"{_MARK}(\d+){_MARK}")


class ContentKey(NamedTuple):
    """Everything a digest shows but the subscriber's own parts; `shown` and `answered` name
    its items (the same key, the same block of the e-mail)."""

    language: str
    kind: str
    more: int
    shown: tuple[Hashable, ...]
    answered: tuple[Hashable, ...]


class SharedRenderer:
    """Renders each distinct e-mail content once, then fills in each subscriber's own parts.

    Most digests of a cycle differ only by the subscriber's name, specialties and links: the
    templates run once with placeholders in their place (per `content_key`, which must name
    everything else the digest shows), and each message gets its own values, transformed
    exactly as the templates would (one line, control characters out, HTML-escaped). With a
    ContentKey, each item's block is rendered once too, and each distinct content is put
    together from the blocks and a skeleton (the templates run once per shape of digest).
    """

    def __init__(self, max_entries: int = 2048):
        self.max_entries = max_entries
        # content key -> (subject, text, html): texts split around their placeholders
        self._cache: OrderedDict[Hashable, tuple[str, list[str], list[str]]] = OrderedDict()
        self._skeletons: dict[tuple, tuple[list, list, list[tuple[str, int]]]] = {}
        self._parts: dict[tuple, str] = {}
        self._splits: dict[str, list[str]] = {}  # a block or literal: split at placeholders
        self.renders = 0

    def render(self, digest: Digest, content_key: Hashable) -> tuple[str, str, str]:
        items = digest.all_items
        links = {_URL_U: digest.unsubscribe_url, _URL_M: digest.more_url}
        for it in items:
            links[_correction_placeholder(it.post_id)] = it.correction_url or ""
        if len(links) != len(items) + 2 or not all(map(is_http, links.values())):
            return render_email(digest)  # links left out (or a post twice): render it whole
        cached = self._cache.get(content_key)
        if cached is None:
            cached = self._assemble(self._masked(digest), content_key)
            self.renders += 1
            self._cache[content_key] = cached
            if len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(content_key)
        subject_line, text, html = cached
        if _UNSAFE.search("".join(links.values())) is None:
            text_values, html_values = links, links.copy()  # as they are in both
        else:
            text_values = {k: str(_finalize(v)) for k, v in links.items()}
            html_values = {k: str(escape(v)) for k, v in text_values.items()}
        own = _own_values(digest.subscriber_name, digest.specialties)
        text_values[_NAME], html_values[_NAME], text_values[_SPECIALTIES] = own[:3]
        html_values[_SPECIALTIES] = own[3]
        return subject_line, _filled(text, text_values), _filled(html, html_values)

    def _assemble(self, masked: Digest, content_key: Hashable) -> tuple[str, list, list]:
        """The masked digest's (subject, text, html): its skeleton filled with item blocks."""
        items = masked.all_items
        keys: tuple[Hashable, ...] = ()
        if isinstance(content_key, ContentKey):
            keys = content_key.shown + content_key.answered
        if len(keys) != len(items):
            keys = (None,) * len(items)  # not named: rendered, not kept
        shape = (masked.language, masked.kind, len(masked.items), len(masked.answered))
        shape += (masked.more, masked.generated_at)
        skeleton = self._skeletons.get(shape)
        if skeleton is None:
            skeleton = self._skeletons[shape] = self._skeleton(masked)
        text, html, calls = skeleton
        ctx = _context(masked)
        blocks = [self._block(name, ctx, items[pos], keys[pos]) for name, pos in calls]

        def fill(segments: list) -> list[str]:
            """The skeleton's literals and blocks, each split around its placeholders once
            per flush (a placeholder never straddles two of them), laid end to end."""
            out = [""]
            for pos, segment in enumerate(segments):
                pieces = self._split(blocks[segment] if pos % 2 else segment)
                out[-1] += pieces[0]
                out.extend(pieces[1:])
            return out

        return subject(masked), fill(text), fill(html)

    def _split(self, text: str) -> list[str]:
        found = self._splits.get(text)
        if found is None:
            found = _SPLIT.split(text)
            if len(self._splits) < 4 * self.max_entries:
                self._splits[text] = found
        return found

    def _block(self, name: str, ctx: dict, it: DigestItem, key: Hashable) -> str:
        full = (name, key, ctx["lang"], ctx["d"].generated_at)
        found = self._parts.get(full) if key is not None else None
        if found is None:
            masked = replace(it, correction_url=f"{_URL}c{it.post_id}")
            found = _render_part(name, ctx, masked)
            if key is not None:
                self._parts[full] = found
        return found

    @staticmethod
    def _skeleton(masked: Digest) -> tuple[list, list, list[tuple[str, int]]]:
        """The templates with a marker for each item block: (text, html) split around the
        markers (odd places: the block's number), and each block's (template, item)."""
        position = {id(it): pos for pos, it in enumerate(masked.all_items)}
        calls: list[tuple[str, int]] = []

        def part(name: str, ctx: dict, it: DigestItem) -> str:
            calls.append((name, position[id(it)]))
            return Markup(f"{_MARK}{len(calls) - 1}{_MARK}")

        _, text, html = render_email(masked, part)

        def split(rendered: str) -> list:
            segments: list = _MARKS.split(rendered)
            segments[1::2] = [int(k) for k in segments[1::2]]
            return segments

        return split(text), split(html), calls

    @staticmethod
    def _masked(digest: Digest) -> Digest:
        return replace(
            digest,
            subscriber_name=_NAME,
            specialties=_SPECIALTIES,
            unsubscribe_url=_URL + "u",
            more_url=_URL + "m",
            rendered=None,
        )


_URL_U, _URL_M = _URL + "u", _URL + "m"
# What _finalize or escape would change: control and bidi characters, HTML's specials.
_UNSAFE = re.compile(rf"{_CONTROL.pattern[:-1]}&<>\"']")


@lru_cache(maxsize=65536)
def _correction_placeholder(post_id: int) -> str:
    return f"{_URL}c{post_id}"


@lru_cache(maxsize=16384)
def _own_values(name: str, specialties: str) -> tuple[str, str, str, str]:
    """A subscriber's name and specialties as the templates write them: (text name, html
    name, text specialties, html specialties)."""
    spec = str(_finalize(specialties))
    return str(_finalize(one_line(name))), str(escape(_finalize(name))), spec, str(escape(spec))


def _filled(segments: list[str], values: dict[str, str]) -> str:
    """Text split around placeholders (odd places), with each placeholder's value."""
    out = list(segments)
    out[1::2] = [values[p] for p in segments[1::2]]
    return "".join(out)
