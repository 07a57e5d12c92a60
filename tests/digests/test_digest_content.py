"""What a clinician saw in the digests (issue 12): post age, stale alerts, order by the
probability of urgency, the student schedule, plurals, the "Already answered" items."""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_bytes, policy

from digests.render import render_dm, render_email, subject

from .helpers import T0, add_request, make_config
from .test_render import digest, item
from .test_routing import deliveries, run


def _emails(tmp_path):
    out = tmp_path / "outbox"
    return [
        message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(out.glob("*.eml"))
    ]


def test_each_item_shows_the_age_of_its_post():
    old = item("Plaque ? #DocTocToc", 1)
    old.created_at = T0 - timedelta(days=10)
    fresh = item("Purpura ? #DocTocToc", 2)
    fresh.created_at = T0 - timedelta(minutes=20)
    _, text, html = render_email(digest([fresh, old]))
    for out in (text, html):
        assert "il y a 10 jours" in out and "il y a 20 min" in out
    _, text, html = render_email(digest([fresh, old], lang="en"))
    assert "10 days ago" in text and "20 min ago" in html
    assert "10 days ago" in render_dm(digest([old], lang="en"), 500)


def test_an_alert_for_an_old_post_says_so_in_its_subject(tmp_path, db):
    loaded = make_config(
        tmp_path,
        "- {name: Dr Derm, id: derm, specialties: [dermatology], immediate: urgent}\n",
    )
    add_request(
        db, "1", "Lésion qui saigne #DocTocToc", "dermatology", "urgent",
        created_at=T0 - timedelta(days=10),
    )  # fmt: skip
    run(loaded, db, T0)
    [alert] = _emails(tmp_path)
    assert alert["Subject"].startswith("URGENT #DocTocToc : Dermatologie")
    assert "il y a 10 jours" in alert["Subject"]
    # A fresh post's alert subject is unchanged.
    fresh = digest([item("Purpura ? #DocTocToc")], kind="alert")
    assert subject(fresh) == "URGENT #DocTocToc : Dermatologie"


def test_urgent_items_come_by_probability_of_urgency_and_the_subject_names_the_first(tmp_path, db):
    loaded = make_config(tmp_path, "- {name: Dr All, id: all, immediate: urgent}\n")
    cases = [  # (text, specialty, P(urgent), minutes before T0)
        ("Certificat de décès, case à cocher ?", "general_practice", 0.62, 1),
        ("Idées suicidaires avec plan, il est devant moi", "psychiatry", 0.97, 30),
        ("Enceinte 34 SA, TA 165/110, céphalées", "gynecology_obstetrics", 0.93, 20),
        ("Nourrisson 5 semaines, 38,6 °C", "pediatrics", 0.88, 10),
    ]
    for i, (text, spec, score, minutes) in enumerate(cases, start=1):
        add_request(
            db, str(i), text + " #DocTocToc", spec, "urgent", urgency_score=score,
            created_at=T0 - timedelta(minutes=minutes),
        )  # fmt: skip
    run(loaded, db, T0)
    [alert] = _emails(tmp_path)
    assert alert["Subject"] == "URGENT #DocTocToc : Psychiatrie"
    body = alert.get_body(("plain",)).get_content()
    order = [body.index(text) for text, *_ in cases]
    assert order[1] < order[2] < order[3] < order[0]


def test_student_digest_respects_its_schedule(tmp_path, db):
    from bot.core.post import Author, Post
    from bot.storage.posts import store_posts

    loaded = make_config(
        tmp_path,
        "- {name: Inès, id: ines, role: student, specialties: [dermatology], "
        "digest: 'daily 19:00', timezone: Europe/Paris}\n",
    )
    add_request(db, "1", "Plaque annulaire ? #DocTocToc", "dermatology", "routine")
    reply = Post(
        network="mastodon", id="9", url="https://m.example/9",
        author=Author("2", "@b@m.example", "B"), text="Granulome annulaire",
        created_at=T0 + timedelta(hours=1), reply_to="1",
    )  # fmt: skip
    with db.session() as s:
        store_posts(s, [reply])
    run(loaded, db, T0 + timedelta(hours=4))  # 14:00 in Paris: answered, not yet 19:00
    assert [d[4] for d in deliveries(db)] == ["pending"] and _emails(tmp_path) == []
    run(loaded, db, T0 + timedelta(hours=9))  # 19:00 in Paris
    assert [d[4] for d in deliveries(db)] == ["sent"]
    [mail] = _emails(tmp_path)
    assert "Granulome annulaire" in mail.get_body(("plain",)).get_content()


def test_counts_have_real_plurals_in_french_and_english():
    one = item("Plaque ? #DocTocToc", 1, answer_count=1)
    two = item("Purpura ? #DocTocToc", 2, answer_count=2)
    for lang, words in (
        ("fr", ["1 réponse", "2 réponses", "2 demandes"]),
        ("en", ["1 reply", "2 replies", "2 requests"]),
    ):
        d = digest([one, two], lang=lang)
        d.answered, d.items = [], [one, two]
        subj, text, html = render_email(d)
        everything = subj + text + html + render_dm(d, 10_000)
        assert "(s)" not in everything and "(ies)" not in everything
        for word in words:
            assert word in everything, (lang, word)
        assert not re.search(r"\b1 réponses\b|\b1 replies\b", everything)
    single = digest([item("Plaque ? #DocTocToc")])
    assert subject(single) == "#DocTocToc : 1 demande pour vous"
    assert subject(digest([item("Rash?")], lang="en")) == "#DocTocToc: 1 request for you"


def test_already_answered_item_keeps_urgency_author_and_correction_link_in_html():
    open_item = item("Plaque ? #DocTocToc", 1)
    answered = item(
        "Purpura fébrile ? #DocTocToc", 2, urgency="soon", answer_count=3,
        author="Dr Answered (@ans)", correction_url="https://bot.example.org/correct/xyz",
    )  # fmt: skip
    d = digest([open_item])
    d.answered = [answered]
    _, text, html = render_email(d)
    section = html[html.index("Déjà répondu") :]
    assert "Aujourd&#39;hui" in section  # the urgency badge
    assert "Dr Answered (@ans)" in section
    assert 'href="https://bot.example.org/correct/xyz"' in section
    text_section = text[text.index("Déjà répondu") :]
    assert "[Aujourd'hui]" in text_section and "Dr Answered" in text_section
