"""Routing rules: triage, quiet hours, escalation, students, blocking, unsubscribes, DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.core.config_models import SubscriberConfig
from bot.core.post import Author, Post
from bot.pipeline import Pipeline
from bot.storage.models import BlockedAuthorRow, DeliveryRow, SubscriberRow
from bot.storage.posts import store_posts
from digests.channels import build_channels
from digests.schedule import next_digest_time

from .helpers import T0, add_request, make_config


def run(loaded, db, now, force=False):
    p = Pipeline(
        loaded,
        db,
        classifier=object(),
        collectors=[],
        clock=lambda: now,
        channels=build_channels(loaded, base_dir=loaded.path.parent),
    )
    return p.cycle(collect=False, force_flush=force)


def deliveries(db):
    with db.session() as s:
        return [
            (r.subscriber_id, r.post_id, r.kind, r.reason, r.status)
            for r in s.scalars(select(DeliveryRow).order_by(DeliveryRow.id))
        ]


def test_uncertain_requests_also_reach_triage(tmp_path, db):
    loaded = make_config(
        tmp_path,
        """\
- {name: Derm, id: derm, specialties: [dermatology]}
- {name: Triage, id: triage, specialties: [general_practice], triage: true}
""",
    )
    sure = add_request(db, "1", "plaque ?", "dermatology", "soon")
    unsure = add_request(db, "2", "truc bizarre ?", "dermatology", "soon", uncertain=True)
    run(loaded, db, T0)
    got = {(sub, pid, reason) for sub, pid, _k, reason, _s in deliveries(db)}
    assert got == {
        ("derm", sure, "specialty"),
        ("derm", unsure, "specialty"),
        ("triage", unsure, "triage"),
    }


def test_unsure_non_requests_reach_triage_and_sure_ones_nobody(tmp_path, db):
    loaded = make_config(
        tmp_path,
        """\
- {name: Derm, id: derm, specialties: all}
- {name: Triage, id: triage, specialties: [general_practice], triage: true}
- {name: Student, id: stud, role: student, specialties: all, triage: true}
""",
    )
    add_request(db, "1", "Congrès de dermato, inscrivez-vous", None, None, is_request=False)
    unsure = add_request(
        db, "2", "pt 70 ans, lésion bizarre", None, None, is_request=False, uncertain=True
    )
    run(loaded, db, T0, force=True)
    got = {(sub, pid, reason) for sub, pid, _k, reason, _s in deliveries(db)}
    assert got == {("triage", unsure, "triage")}
    with db.session() as s:
        [row] = s.scalars(select(DeliveryRow)).all()
        assert row.status == "sent"  # the digest with a label-less item renders and goes out


def test_quiet_hours_hold_alerts_but_not_urgent_ones(tmp_path, db):
    loaded = make_config(
        tmp_path,
        """\
- {name: Night, id: night, specialties: all, immediate: soon, quiet_hours: "22:00-07:00"}
""",
    )
    night = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)  # 00:30 in Paris
    soon = add_request(db, "1", "résultat à interpréter ?", "cardiology", "soon", created_at=night)
    urgent = add_request(db, "2", "il est devant moi ?", "cardiology", "urgent", created_at=night)
    run(loaded, db, night)
    with db.session() as s:
        rows = {r.post_id: r for r in s.scalars(select(DeliveryRow))}
        assert rows[urgent].status == "sent"
        assert rows[soon].status == "pending"
        assert rows[soon].due_at == datetime(2026, 11, 28, 6, 0, tzinfo=UTC)  # 07:00 Paris


def test_unanswered_urgent_request_escalates_to_next_ring(tmp_path, db):
    loaded = make_config(
        tmp_path,
        """\
- {name: Cardio, id: cardio, specialties: [cardiology]}
- {name: Senior, id: senior, specialties: [cardiology], escalation: true, escalate_after: 30m}
- {name: Derm senior, id: derm-senior, specialties: [dermatology], escalation: true}
""",
    )
    urgent = add_request(db, "1", "douleur thoracique, il est devant moi", "cardiology", "urgent")
    add_request(db, "2", "ECG de contrôle ?", "cardiology", "soon")
    run(loaded, db, T0)
    assert {d[0] for d in deliveries(db)} == {"cardio"}
    run(loaded, db, T0 + timedelta(minutes=20))
    assert "senior" not in {d[0] for d in deliveries(db)}
    run(loaded, db, T0 + timedelta(minutes=31))
    senior = [d for d in deliveries(db) if d[0] == "senior"]
    assert senior == [("senior", urgent, "alert", "escalation", "sent")]


def test_answered_urgent_request_does_not_escalate(tmp_path, db):
    loaded = make_config(
        tmp_path, "- {name: Senior, id: senior, specialties: all, escalation: true}\n"
    )
    add_request(db, "1", "douleur thoracique, il est devant moi", "cardiology", "urgent")
    reply = Post(
        network="mastodon",
        id="9",
        url="u",
        author=Author("2", "@b@m.example", "B"),
        text="ECG 18 dérivations !",
        created_at=T0 + timedelta(minutes=5),
        reply_to="1",
    )
    with db.session() as s:
        store_posts(s, [reply])
    run(loaded, db, T0 + timedelta(hours=1))
    assert deliveries(db) == []


def test_students_get_cases_once_answered_with_answers_and_hidden_authors(tmp_path, db):
    loaded = make_config(
        tmp_path,
        """\
- {name: Étudiante, id: student, role: student, specialties: [dermatology], hide_authors: true}
""",
    )
    add_request(
        db,
        "1",
        "plaque annulaire ?",
        "dermatology",
        "routine",
        name="Dr Secret",
        handle="@secret@m.example",
    )
    run(loaded, db, T0)
    assert [d[4] for d in deliveries(db)] == ["pending"]  # not answered, not 24 h old
    reply = Post(
        network="mastodon",
        id="9",
        url="u",
        author=Author("2", "@b@m.example", "B"),
        text="Granulome annulaire probable",
        created_at=T0 + timedelta(hours=1),
        reply_to="1",
    )
    with db.session() as s:
        store_posts(s, [reply])
    out = tmp_path / "outbox"
    run(loaded, db, T0 + timedelta(hours=2))
    assert [d[4] for d in deliveries(db)] == ["pending"]  # answered: waits for 07:30 (Paris)
    run(loaded, db, T0 + timedelta(hours=22))  # 08:00 in Paris the next day
    [eml] = list(out.glob("*.eml")) if out.exists() else [None]
    body = eml.read_text()
    assert "Granulome annulaire probable" in body and "Secret" not in body


def test_blocked_author_is_kept_but_not_routed_and_unblock_restores(tmp_path, db):
    loaded = make_config(tmp_path, "- {name: All, id: all, specialties: all}\n")
    with db.session() as s:
        s.add(BlockedAuthorRow(handle="spam@m.example", created_at=T0))
    add_request(db, "1", "achetez ?", "dermatology", "soon", handle="@spam@m.example")
    ok = add_request(db, "2", "plaque ?", "dermatology", "soon")
    run(loaded, db, T0)
    assert [d[1] for d in deliveries(db)] == [ok]


def test_only_known_authors_holds_the_others(tmp_path, db):
    loaded = make_config(
        tmp_path,
        "- {name: All, id: all, specialties: all}\n",
        extra="only_known_authors: true\nknown_authors: ['@vetted@m.example']",
    )
    add_request(db, "1", "inconnu ?", "dermatology", "soon", handle="@nobody@m.example")
    ok = add_request(db, "2", "plaque ?", "dermatology", "soon", handle="@vetted@m.example")
    run(loaded, db, T0)
    assert [d[1] for d in deliveries(db)] == [ok]


def test_unsubscribed_subscriber_gets_nothing_more(tmp_path, db):
    loaded = make_config(
        tmp_path,
        "- {name: All, id: all, specialties: all}\n- {name: Gone, id: gone, specialties: all}\n",
    )
    add_request(db, "1", "plaque ?", "dermatology", "soon")
    run(loaded, db, T0)  # syncs subscribers, routes to both (digest not yet due)
    with db.session() as s:
        s.get(SubscriberRow, "gone").unsubscribed_at = T0
    add_request(db, "2", "autre plaque ?", "dermatology", "soon")
    result = run(loaded, db, T0, force=True)
    assert [sub for sub, *_ in result.flushed.sent] == ["all"]


def test_max_items_adds_and_n_more_with_link(tmp_path, db):
    loaded = make_config(tmp_path, "- {name: All, id: all, specialties: all, max_items: 3}\n")
    for i in range(8):
        add_request(db, str(i), f"cas numéro {i} ?", "dermatology", "soon")
    run(loaded, db, T0, force=True)
    [eml] = list((tmp_path / "outbox").glob("*.eml"))
    text = eml.read_text()
    assert "et 5 de plus" in text and "https://bot.example.org/cases?specialty=all" in text


def test_schedules_follow_paris_time_across_dst():
    sub = SubscriberConfig(name="A", digest="daily 07:30", timezone="Europe/Paris")
    # Paris switches to summer time on 2027-03-28: 07:30 is 06:30 UTC before, 05:30 UTC after.
    before = next_digest_time(sub, datetime(2027, 3, 27, 0, 0, tzinfo=UTC))
    after = next_digest_time(sub, before)
    assert before == datetime(2027, 3, 27, 6, 30, tzinfo=UTC)
    assert after == datetime(2027, 3, 28, 5, 30, tzinfo=UTC)
    autumn = next_digest_time(sub, datetime(2026, 10, 25, 0, 0, tzinfo=UTC))  # back to winter time
    assert autumn == datetime(2026, 10, 25, 6, 30, tzinfo=UTC)
    weekdays = SubscriberConfig(name="B", digest="weekdays 12:00")
    assert (
        next_digest_time(weekdays, datetime(2026, 11, 28, 12, 0, tzinfo=UTC)).weekday() == 0
    )  # Saturday -> Monday


def test_an_alert_shows_confident_urgent_cases_first_and_marks_the_unsure(tmp_path, db):
    loaded = make_config(
        tmp_path, "- {name: Garde, id: garde, specialties: all, immediate: urgent}\n"
    )
    add_request(db, "1", "SpO2 92 % chez un BPCO, je le garde ?", "pulmonology", "urgent",
                urgency_score=0.19)  # fmt: skip
    add_request(db, "2", "Purpura fébrile, il est devant moi", "infectious_disease", "urgent",
                urgency_score=0.98)  # fmt: skip
    run(loaded, db, T0)
    [eml] = list((tmp_path / "outbox").glob("*.eml"))
    text = eml.read_text()
    assert "Subject: URGENT #DocTocToc" in text  # the confident case leads the alert
    assert text.index("[URGENT] Infectiologie") < text.index("[URGENT ?] Pneumologie")
