"""A fixed sample of messages (e-mails and DM texts) and their exact bytes, for the golden test.

`python -m tests.digests.golden` rewrites tests/digests/golden/ from the current code; the
files there were produced before delivery was reworked for scale (issue 14), so the test
proves a subscriber still gets byte-for-byte the same messages. The signed link tokens are
stored as `<signed:VALUE>` (no HMAC in the repository); the test checks that each token of a
message is the HMAC of that value, which fixes its bytes.
"""

from __future__ import annotations

import random
import re
import tempfile
from datetime import timedelta
from pathlib import Path

from bot.core.post import Author, Post
from bot.pipeline import Pipeline
from bot.storage.db import Database
from bot.storage.posts import store_posts
from digests.channels import build_channels
from digests.email_message import build_email
from digests.render import Digest, DigestItem, render_dm

from .helpers import T0, add_request, make_config
from .test_render import digest as plain_digest

# A signed link token (digests.tokens.sign): base64 value "." 16-byte HMAC, after its path.
TOKEN = re.compile(rb"(?:(?<=/unsubscribe/)|(?<=/correct/)|(?<=v=))([\w-]+)\.[\w-]{22}(?![\w-])")
PURPOSE = {b"/unsubscribe/": "unsubscribe", b"/correct/": "correct", b"v=": "viewer"}

GOLDEN = Path(__file__).resolve().parent / "golden"
SENDERS = [
    "DocTocToc bot <bot@doctoctoc.example>",
    "bot@doctoctoc.example",
    "Bot Médical <bot@doctoctoc.example>",
]


def _item(i: int, text: str, urgency: str = "urgent", **kw) -> DigestItem:
    return DigestItem(
        post_id=i,
        url=kw.pop("url", f"https://medecins.example/@a/{i}"),
        text=text,
        author=kw.pop("author", "Dr A (@a@medecins.example)"),
        network="mastodon",
        created_at=kw.pop("created_at", T0 - timedelta(minutes=20 * i)),
        specialty=kw.pop("specialty", "dermatology"),
        urgency=urgency,
        correction_url=kw.pop("correction_url", f"https://bot.example.org/correct/tok{i}.sig"),
        **kw,
    )


def _digest(items, *, name="Dr Derm", kind="digest", lang="fr", **kw) -> Digest:
    key = f"derm.smtp.{kind}.20261127T090000.1"
    return plain_digest(items, name=name, kind=kind, lang=lang, message_key=key, **kw)


def digest_shapes() -> dict[str, Digest]:
    """Digests of every shape a subscriber can get, built directly."""
    media = [{"url": "https://m.example/1.jpg", "alt": "Plaque annulaire, bras gauche"}]
    plain = _item(1, "Plaque érythémateuse annulaire du bras ? #DocTocToc", "soon", media=media)
    urgent = _item(2, "Lésion qui saigne, il est devant moi #DocTocToc", cues=["devant moi"])
    unsure = _item(3, "Certificat, case à cocher ? #DocTocToc", urgency_score=0.2)
    answered = _item(4, "Purpura fébrile ? #DocTocToc", "soon", answer_count=3)
    escal = _item(5, "Douleur thoracique, TA 85/50 #DocTocToc", reason="escalation")
    unsure_item = _item(6, "Question de triage ? #DocTocToc", "routine", uncertain=True)
    hostile = _item(
        7,
        '<b>urgent</b> & <script>alert(1)</script> "quoted" \u202eevil\u202c\r\nline2',
        author='<a href="http://evil">x</a> \u202eDr\u202c',
        media=[{"url": "javascript:alert(1)", "alt": "<script>x</script>"}],
    )
    long_word = _item(8, "x" * 1500 + " #DocTocToc", "routine")
    long_cues = _item(9, "Cas avec beaucoup d'indices #DocTocToc", cues=["indice long"] * 120)
    english = _item(10, "Rash after antibiotics, photo? #DocTocToc", "soon", author="—")
    student = _item(11, "Plaque ? #DocTocToc", "routine", answers=["Granulome", "Tinea ?"])
    student.answer_count = 2
    shapes = {
        "digest-fr": _digest([plain, urgent, escal, unsure_item], answered=[answered], more=2),
        "alert-fr": _digest([urgent], kind="alert"),
        "alert-unsure-fr": _digest([unsure], kind="alert"),
        "alert-stale-en": _digest(
            [_item(12, "Chest pain #DocTocToc", created_at=T0 - timedelta(days=3))],
            kind="alert",
            lang="en",
            stale_after=timedelta(hours=6),
        ),
        "digest-en": _digest([english, plain], lang="en", name="Dr Smith"),
        "student-fr": _digest([student], kind="student", name="Inès"),
        "empty-digest": _digest([], more=0),
        "hostile": _digest([hostile]),
        "long-word": _digest([long_word]),
        "long-cues-html": _digest([long_cues]),
        "name-accents": _digest([plain], name="Dr Éloïse N'Guessan-Müller"),
        "name-specials": _digest([plain], name='Dr "House", M.D. <x> & co'),
        "name-control": _digest([plain], name="Dr\u202e Evil\r\nBcc: x@y"),
        "name-long": _digest([plain], name="Professeur " + "Jean-Baptiste " * 8 + "Dupont"),
        "name-cjk": _digest([english], name="王医生", lang="en"),
        "subscriber-long-id": _digest([plain], subscriber_id="s" * 70),
    }
    return shapes


def direct_messages() -> dict[str, bytes]:
    """E-mails and DM texts of each shape, with a fixed MIME boundary seed per message."""
    out: dict[str, bytes] = {}
    for n, (name, digest) in enumerate(sorted(digest_shapes().items())):
        for s, sender in enumerate(SENDERS):
            random.seed(1000 * n + s)
            to = "derm+tag@example.org " if s == 1 else "derm@example.org"
            out[f"{name}.{s}.eml"] = bytes(build_email(digest, sender=sender, to=to))
        for limit, prefix in ((10_000, ""), (500, "@dr_a@medecins.example "), (280, ""), (40, "")):
            text = render_dm(digest, limit, prefix)
            out[f"{name}.dm{limit}.txt"] = text.encode()
    return out


SUBSCRIBERS = """\
- {name: Dr Derm, id: derm, language: fr, email: derm@example.org, specialties: [dermatology],
   min_urgency: routine, immediate: urgent, hide_authors: true, max_items: 3}
- {name: "Dr Éloïse Müller", id: eloise, language: [fr, en], specialties: [dermatology, cardiology],
   immediate: never, triage: true}
- {name: Dr Smith, id: smith, language: en, email: smith@example.org, specialties: all,
   immediate: soon}
- {name: Inès, id: ines, role: student, specialties: [dermatology]}
- {name: Dr Hidden, id: hidden, language: fr, specialties: all, hide_authors: true,
   immediate: never, max_items: 2}
"""


def pipeline_messages() -> dict[str, bytes]:
    """The .eml files one flush writes to the outbox for a few subscribers and requests."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        loaded = make_config(folder, SUBSCRIBERS, f"outbox: {{dir: {folder / 'outbox'}}}")
        db = Database(f"sqlite:///{folder / 'golden.db'}")
        db.upgrade()
        cases = [
            ("Plaque annulaire du bras, photo ? #DocTocToc", "dermatology", "routine", "fr"),
            (
                "Lésion pigmentée qui saigne, il est devant moi #DocTocToc",
                "dermatology",
                "urgent",
                "fr",
            ),
            ("Douleur thoracique constrictive, sueurs #DocTocToc", "cardiology", "urgent", "fr"),
            ("Rash after amoxicillin, photo? #DocTocToc", "dermatology", "soon", "en"),
            ("Palpitations at rest, ECG attached #DocTocToc", "cardiology", "soon", "en"),
            ("Prurit diffus sans lésion #DocTocToc", "dermatology", "routine", "fr"),
            ("Souffle systolique chez l'enfant ? #DocTocToc", "cardiology", "routine", "fr"),
        ]
        for i, (text, spec, urgency, lang) in enumerate(cases, start=1):
            add_request(
                db, str(i), text, spec, urgency, lang=lang,
                created_at=T0 - timedelta(minutes=15 * i), name=f"Dr Auteur {i}",
                cues=["il est devant moi"] if urgency == "urgent" else None,
            )  # fmt: skip
        add_request(db, "20", "Question floue #DocTocToc", "dermatology", None, is_request=False, uncertain=True)  # fmt: skip
        replies = [
            Post(
                network="mastodon",
                id=f"9{i}",
                url=f"https://m.example/9{i}",
                author=Author("2", "@b@m.example", "B"),
                text=f"Réponse {i}",
                created_at=T0 - timedelta(minutes=5),
                reply_to=str(i),
            )  # fmt: skip
            for i in (1, 4)
        ]
        with db.session() as s:
            store_posts(s, replies, now=T0 - timedelta(minutes=5))
        pipeline = Pipeline(
            loaded, db, classifier=object(), collectors=[], clock=lambda: T0,
            channels=build_channels(loaded),
        )  # fmt: skip
        random.seed(7)
        pipeline.cycle(collect=False, force_flush=True)
        later = T0 + timedelta(days=2)
        pipeline.clock = lambda: later  # the student's items, 24 h later
        pipeline.cycle(collect=False, force_flush=True)
        db.dispose()
        return {
            f"pipeline.{p.name}": p.read_bytes() for p in sorted((folder / "outbox").glob("*.eml"))
        }


def all_messages() -> dict[str, bytes]:
    return direct_messages() | pipeline_messages()


def signed_tokens(data: bytes) -> list[tuple[str, str]]:
    """(purpose, token) of every signed link in a message."""
    out = []
    for m in TOKEN.finditer(data):
        before = data[: m.start()]
        purpose = next(p for tail, p in PURPOSE.items() if before.endswith(tail))
        out.append((purpose, m.group(0).decode()))
    return out


def masked(data: bytes) -> bytes:
    """The message as stored: each signed token replaced by `<signed:VALUE>`."""
    return TOKEN.sub(lambda m: b"<signed:" + m.group(1) + b">", data)


def main() -> None:
    GOLDEN.mkdir(exist_ok=True)
    for old in GOLDEN.iterdir():
        old.unlink()
    for name, data in all_messages().items():
        (GOLDEN / name).write_bytes(masked(data))
    print(f"wrote {len(list(GOLDEN.iterdir()))} files to {GOLDEN}")


if __name__ == "__main__":
    main()
