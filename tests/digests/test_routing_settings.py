"""Routing asks matches and due_time once per group of subscribers with the same routing
settings (issue 14): the rows are exactly those of asking each subscriber."""

from __future__ import annotations

import random
from datetime import timedelta

from bot.core.config_models import SubscriberConfig
from bot.core.labels import SPECIALTIES
from digests.routing import (
    Request,
    _CandidateIndex,
    _route_request,
    due_time,
    matches,
    routing_settings,
)

from .helpers import T0


def _subscribers(rng: random.Random, n: int) -> list[SubscriberConfig]:
    def pick(*options):
        return rng.choice(options)

    return [
        SubscriberConfig(
            name=f"Dr {i}",
            id=f"s{i}",
            role=pick("clinician", "clinician", "student"),
            language=rng.sample(["fr", "en"], rng.randint(1, 2)),
            deliver_by=rng.sample(["outbox", "smtp", "mastodon"], rng.randint(1, 2)),
            specialties=pick("all", rng.sample(SPECIALTIES[:6], rng.randint(1, 3))),
            min_urgency=pick("routine", "soon", "urgent"),
            immediate=pick("urgent", "soon", "never"),
            quiet_hours=pick(None, "22:00-07:00", "09:00-18:00"),
            urgent_overrides_quiet=pick(True, False),
            timezone=pick("Europe/Paris", "America/Montreal"),
            digest=pick("daily 07:30", "weekdays 18:00", "hourly"),
            triage=pick(False, False, True),
            escalation=pick(False, False, False, True),
        )  # fmt: skip
        for i in range(n)
    ]


def _requests(rng: random.Random, n: int) -> list[Request]:
    return [
        Request(
            post_id=i,
            lang=rng.choice([None, "fr", "en", "de", ""]),
            created_at=T0 - timedelta(hours=rng.randint(0, 40)),
            is_request=rng.random() < 0.8,
            uncertain=rng.random() < 0.3,
            specialty=rng.choice([None, "not-a-specialty", *SPECIALTIES[:6]]),
            urgency=rng.choice([None, "routine", "soon", "urgent"]),
        )
        for i in range(n)
    ]


ROUTING_CHANGES = [
    {"role": "student"}, {"language": ["en"]}, {"min_urgency": "urgent"}, {"immediate": "soon"},
    {"immediate": "never"}, {"quiet_hours": "09:00-18:00"}, {"urgent_overrides_quiet": False},
    {"timezone": "America/Montreal"}, {"digest": "hourly"}, {"triage": True},
    {"escalation": True},
]  # fmt: skip


def _clones(rng: random.Random, subs: list[SubscriberConfig]) -> list[SubscriberConfig]:
    """Each subscriber again under other names and channels (the same routing settings), and
    once with one routing setting changed: a setting left out of the groups shows."""
    out = []
    for n, sub in enumerate(subs):
        out.append(sub)
        for k in range(3):
            out.append(sub.model_copy(update={"id": f"{sub.id}c{k}", "name": f"C{n}.{k}"}))
        out.append(sub.model_copy(update={"id": f"{sub.id}x", **rng.choice(ROUTING_CHANGES)}))
    return out


def test_grouped_routing_makes_the_rows_of_asking_each_subscriber():
    rng = random.Random(14)
    subs = _clones(rng, _subscribers(rng, 150))
    assert len({routing_settings(s) for s in subs}) > 20  # groups of various sizes
    index = _CandidateIndex(subs)
    for req in _requests(rng, 80):
        now = T0 + timedelta(hours=rng.choice([0, 3, 12]))
        got: list = []
        _route_request(req, index, now, set(), got)
        expected = []
        for sub in subs:
            reason = matches(sub, req)
            if reason is not None and (sub.triage or sub.wants_specialty(req.specialty)):
                kind, due = due_time(sub, req, reason, now)
                expected += [(sub.key, req.post_id, ch, kind, reason, due) for ch in sub.deliver_by]
        assert got == expected, req


def test_settings_leave_out_only_what_routing_does_not_read():
    a = SubscriberConfig(name="A", id="a", email="a@x.org", specialties=["cardiology"])
    b = SubscriberConfig(name="B", id="b", deliver_by=["smtp"], max_items=3, hide_authors=True)
    assert routing_settings(a) == routing_settings(b)
    for change in ({"min_urgency": "urgent"}, {"language": ["en"]}, {"timezone": "UTC"}):
        assert routing_settings(a.model_copy(update=change)) != routing_settings(b)
