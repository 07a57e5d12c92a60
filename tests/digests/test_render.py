"""Rendering: hostile post text stays inert, DMs fit their channel, never cut mid-word."""

from __future__ import annotations

from email import message_from_bytes, policy

from digests.email_message import build_email
from digests.render import Digest, DigestItem, render_dm, render_email

from .helpers import T0

HOSTILE = '<b>urgent</b> & <script>alert(1)</script> <img src=x onerror=alert(2)> "quoted"'


def item(text: str, i: int = 1, urgency: str = "urgent", **kw) -> DigestItem:
    return DigestItem(
        post_id=i,
        url=f"https://medecins.example/@a/{i}",
        text=text,
        author=kw.pop("author", "Dr A (@a)"),
        network="mastodon",
        created_at=T0,
        specialty="dermatology",
        urgency=urgency,
        **kw,
    )


def digest(
    items: list[DigestItem], name: str = "Dr Derm", kind: str = "digest", lang: str = "fr", **kw
) -> Digest:
    fields = dict(
        subscriber_id="derm",
        more_url="https://bot.example.org/cases?specialty=dermatology",
        unsubscribe_url="https://bot.example.org/unsubscribe/abc.def",
        specialties="dermatology",
        message_key="derm.smtp.digest.1",
        generated_at=T0,
    )
    fields.update(kw)
    return Digest(subscriber_name=name, language=lang, kind=kind, items=items, **fields)


def test_html_escapes_post_text_author_and_alt():
    it = item(
        HOSTILE,
        author='<a href="http://evil">x</a>',
        media=[{"url": "https://m.example/1.jpg", "alt": "<script>x</script>"}],
    )
    _, text, html = render_email(digest([it]))
    assert (
        "<script>" not in html
        and "<b>urgent</b>" not in html
        and '<a href="http://evil">' not in html
    )
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;urgent&lt;/b&gt;" in html
    assert "<script>alert(1)</script>" in text  # plain text shows the literal characters


def test_crlf_in_names_cannot_inject_headers():
    d = digest([item("Éruption ? #DocTocToc")], name="Dr X\r\nBcc: victim@example.org\r\nX-Evil: 1")
    msg = build_email(d, sender="bot@doctoctoc.example", to="derm@example.org")
    parsed = message_from_bytes(bytes(msg), policy=policy.default)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert [a.addr_spec for a in parsed["To"].addresses] == ["derm@example.org"]


def test_rtl_emoji_and_huge_posts_render_safely():
    rtl = "\u202eevil\u202c حالة طفل مع طفح جلدي 🧒🏽🔥 #DocTocToc"
    huge = "lésion " * 1500 + "#DocTocToc"  # about 10 KB
    subject, text, html = render_email(digest([item(rtl, 1), item(huge, 2, urgency="soon")]))
    assert "\u202e" not in text and "\u202e" not in html  # bidi overrides removed
    assert "حالة طفل" in html and "🧒🏽" in html
    assert len(text) < 4000 and "…" in text  # the 10 KB post is shortened on a word boundary
    assert "lésio…" not in text and "lési…" not in text


def test_dm_fits_mastodon_limit_and_cuts_at_item_boundary():
    items = [
        item(
            f"Cas {i}: plaque érythémateuse du tronc depuis {i} jours, prurit, pas de fièvre. #DocTocToc",
            i,
            "soon",
        )
        for i in range(1, 9)
    ]
    prefix = "@derm@medecins.example "
    text = render_dm(digest(items), 500, prefix=prefix)
    assert len(text) <= 500 and text.startswith(prefix)
    assert "https://bot.example.org/cases?specialty=dermatology" in text  # link to the rest
    shown = [i for i in range(1, 9) if f"Cas {i}:" in text]
    assert shown == list(range(1, len(shown) + 1)) and 0 < len(shown) < 8
    for i in shown:  # every item shown is complete: never cut mid-item
        assert f"https://medecins.example/@a/{i}" in text


def test_dm_with_everything_fitting_has_no_more_link():
    text = render_dm(digest([item("Plaque ? #DocTocToc")]), 10_000)
    assert "cases?specialty" not in text and "Plaque ?" in text


def test_english_subscriber_gets_english_words():
    subject, text, _ = render_email(digest([item("Rash? #DocTocToc")], kind="alert", lang="en"))
    assert subject == "URGENT #DocTocToc: Dermatology"
    assert "A colleague needs help now." in text and "Unsubscribe" in text


def test_an_urgent_call_from_a_low_probability_is_shown_as_unconfirmed():
    unsure = item("BPCO, SpO2 92 %, je le garde à domicile ? #DocTocToc", 2, urgency_score=0.2)
    subject, text, html = render_email(digest([unsure], kind="alert"))
    assert subject == "URGENT ? #DocTocToc : Dermatologie"
    assert "[URGENT ?] Dermatologie" in text and ">URGENT ?</span>" in html
    assert "[URGENT ?]" in render_dm(digest([unsure], kind="alert"), 500)
    english = render_email(digest([unsure], kind="alert", lang="en"))
    assert english[0] == "URGENT? #DocTocToc: Dermatology"

    sure = item("Purpura fébrile, il est devant moi #DocTocToc", 1, urgency_score=0.97)
    subject, text, html = render_email(digest([sure], kind="alert"))
    assert subject == "URGENT #DocTocToc : Dermatologie"
    assert "[URGENT] Dermatologie" in text and "URGENT ?" not in text + html
