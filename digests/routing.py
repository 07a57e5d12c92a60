"""Route classified requests to subscribers: who gets what, on which channel, and when.

Each (subscriber, post, channel) becomes at most one row of the deliveries table
(unique constraint): routing the same post twice never sends it twice. Each delivery hangs
from a pending message (bot/storage/delivery_inserts), the unit the delivery loop sends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from bot.core.config import LoadedConfig
from bot.core.config_models import SubscriberConfig
from bot.core.labels import SPECIALTIES, urgency_at_least
from bot.core.post import normalize_handle
from bot.storage import deliveries, delivery_inserts, subscribers
from bot.storage.delivery_inserts import NewDelivery
from bot.storage.live import is_live_case
from digests.schedule import in_quiet_hours, next_digest_time, quiet_hours_end

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.storage.models import ClassificationRow, PostRow

log = logging.getLogger(__name__)
STUDENT_DELAY = timedelta(hours=24)
DEFAULT_ESCALATE_AFTER = timedelta(minutes=30)


@dataclass
class RouteResult:
    requests: int = 0
    urgent: int = 0
    deliveries: int = 0
    held: list[int] = field(default_factory=list)  # posts waiting in moderation


def sync_subscribers(session: Session, loaded: LoadedConfig, now: datetime) -> None:
    """Mirror config subscribers into the db (unsubscribes stored there survive config edits)."""
    subscribers.sync(session, loaded.config.subscribers, now)


def active_subscribers(session: Session, loaded: LoadedConfig) -> list[SubscriberConfig]:
    unsubscribed = subscribers.unsubscribed(session)
    return [s for s in loaded.config.subscribers if s.key not in unsubscribed]


def blocked_handles(session: Session, loaded: LoadedConfig) -> set[str]:
    stored = subscribers.blocked_handles(session)
    return {normalize_handle(h) for h in [*loaded.config.blocked_authors, *stored]}


def is_routable(post: PostRow) -> bool:
    """Only live cases are routed (not deleted, not a reply, not a cross-network copy)."""
    return is_live_case(post)


class Request(NamedTuple):
    """What routing reads of a classified post: read once, not once per subscriber."""

    post_id: int
    lang: str | None  # the primary subtag ("fr" of "fr-CA")
    created_at: datetime
    is_request: bool
    uncertain: bool
    specialty: str | None
    urgency: str | None

    @classmethod
    def of(cls, post: PostRow, c: ClassificationRow) -> Request:
        lang = post.lang.split("-")[0] if post.lang else None
        return cls(
            post.id, lang, post.created_at, bool(c.is_request), bool(c.uncertain),
            c.specialty, c.urgency,
        )  # fmt: skip


def matches(sub: SubscriberConfig, req: Request) -> str | None:
    """Why this subscriber gets this request ('specialty' or 'triage'), or None."""
    if req.lang is not None and req.lang not in sub.language:
        return None
    if not req.is_request:
        # a not-a-request decision the classifier is unsure of goes to triage, not nowhere
        triage = req.uncertain and sub.triage and sub.role != "student" and not sub.escalation
        return "triage" if triage else None
    if sub.role == "student":
        return "student" if sub.wants_specialty(req.specialty) else None
    if sub.escalation:
        return None  # the next ring only hears of unanswered urgent cases (see escalate)
    if not urgency_at_least(req.urgency, sub.min_urgency):
        return None
    if sub.wants_specialty(req.specialty):
        return "specialty"
    if req.uncertain and sub.triage:
        return "triage"
    return None


def due_time(
    sub: SubscriberConfig, req: Request, reason: str, now: datetime
) -> tuple[str, datetime]:
    """('alert' | 'digest' | 'student', when it may go out)."""
    if reason == "student":
        # Unanswered cases go out in the first digest 24 h after the post (earlier once
        # answered, see release_student_items), always on the student's own schedule.
        return "student", next_digest_time(sub, max(now, req.created_at + STUDENT_DELAY))
    if sub.immediate != "never" and urgency_at_least(req.urgency, sub.immediate):
        urgent_passes = req.urgency == "urgent" and sub.urgent_overrides_quiet
        if in_quiet_hours(sub, now) and not urgent_passes:
            return "alert", quiet_hours_end(sub, now)
        return "alert", now
    return "digest", next_digest_time(sub, now)


def route_posts(
    session: Session, loaded: LoadedConfig, post_ids: list[int], now: datetime
) -> RouteResult:
    """Create deliveries for newly classified requests (bulk: one insert for the batch)."""
    result = RouteResult()
    active = active_subscribers(session, loaded)
    blocked = blocked_handles(session, loaded)
    known = {normalize_handle(h) for h in loaded.config.known_authors}
    existing = deliveries.existing(session, post_ids)
    candidates = _CandidateIndex(active)
    new_rows: list[NewDelivery] = []
    posts = deliveries.load_posts(session, set(post_ids))
    for post_id in post_ids:
        post, c = posts.get(post_id, (None, None))
        if post is None or not is_routable(post):
            continue
        if c is None or not (c.is_request or c.uncertain):
            continue
        result.requests += c.is_request
        result.urgent += c.urgency == "urgent"
        handle = normalize_handle(post.author_handle)
        if handle in blocked:
            log.info("post %s by blocked author %s is kept but not routed", post.id, handle)
            continue
        if loaded.config.only_known_authors and handle not in known:
            result.held.append(post.id)
            continue
        _route_request(Request.of(post, c), candidates, now, existing, new_rows)
    delivery_inserts.insert_many(session, new_rows, now)
    result.deliveries = len(new_rows)
    return result


_UNDECIDED: Any = object()


def _route_request(
    req: Request,
    candidates: _CandidateIndex,
    now: datetime,
    existing: set[tuple[str, int, str]],
    new_rows: list[NewDelivery],
) -> None:
    """The request's new deliveries (appended to `new_rows`). Subscribers with the same
    routing settings get the same answer from matches and due_time: asked once each."""
    decided: dict[tuple[int, bool], tuple[str, str, datetime] | None] = {}
    post_id = req.post_id
    for sub, key, settings in candidates.for_specialty(req.specialty):
        decision = decided.get(settings, _UNDECIDED)
        if decision is _UNDECIDED:
            reason = matches(sub, req)
            decision = None if reason is None else (reason, *due_time(sub, req, reason, now))
            decided[settings] = decision
        if decision is None:
            continue
        reason, kind, due = decision
        append_rows(new_rows, key, sub.deliver_by, post_id, kind, reason, due, existing)


# SubscriberConfig fields that neither matches nor due_time reads (specialties: only through
# wants_specialty, part of the settings below). Any other field, present or future, counts.
_NOT_ROUTING = frozenset(
    {"name", "id", "email", "mastodon", "bluesky", "x", "deliver_by", "specialties",
     "hide_authors", "max_items"}
)  # fmt: skip


def routing_settings(sub: SubscriberConfig) -> tuple:
    """What matches and due_time read of a subscriber, but whether it wants the specialty:
    subscribers with equal settings are routed alike."""
    return tuple(
        (name, tuple(value) if isinstance(value, list) else value)
        for name, value in sub.__dict__.items()
        if name not in _NOT_ROUTING
    )


class _CandidateIndex:
    """Subscribers who could receive a request of a given specialty, in config order.

    With 10,000 subscribers, most follow one to three specialties: checking only those
    (plus triage subscribers) keeps routing linear in the deliveries it creates.
    """

    def __init__(self, subscribers: list[SubscriberConfig]):
        self.subscribers = subscribers
        self._by_specialty: dict[str | None, list[tuple[SubscriberConfig, str, Any]]] = {}
        self._settings: dict[tuple, int] = {}  # routing settings -> a small number
        self._numbers: dict[int, tuple[str, int]] = {}  # id(subscriber) -> key, number

    def for_specialty(self, specialty: str | None) -> list[tuple[SubscriberConfig, str, Any]]:
        """(subscriber, its key, (its settings' number, wants the specialty)) of each
        possible recipient."""
        if not self._by_specialty:
            self._index_known()
        found = self._by_specialty.get(specialty)
        if found is None:  # not one of the 20 ids: looked through on its own
            found = self._by_specialty[specialty] = []
            for sub in self.subscribers:
                wants = sub.wants_specialty(specialty)
                if wants or sub.triage:
                    key, number = self._numbered(sub)
                    found.append((sub, key, (number, wants)))
        return found

    def _index_known(self) -> None:
        """The lists of the 20 specialty ids and of no specialty (None), in one pass over
        the subscribers (not one pass per specialty): each subscriber goes into the lists
        of the specialties it follows, a triage subscriber into all (wants: False)."""
        lists: dict[str | None, list] = {spec: [] for spec in (*SPECIALTIES, None)}
        for sub in self.subscribers:
            key, number = self._numbered(sub)
            follows = SPECIALTIES if sub.specialties == "all" else sub.specialties
            if sub.triage:
                wanted = set(follows)
                for spec, found in lists.items():
                    found.append((sub, key, (number, spec in wanted)))
                continue
            for spec in dict.fromkeys(follows):  # each once, as wants_specialty counts it
                found = lists.get(spec)
                if found is not None:
                    found.append((sub, key, (number, True)))
        self._by_specialty.update(lists)

    def _numbered(self, sub: SubscriberConfig) -> tuple[str, int]:
        """The subscriber's key and its settings' number."""
        found = self._numbers.get(id(sub))
        if found is None:
            number = self._settings.setdefault(routing_settings(sub), len(self._settings))
            found = self._numbers[id(sub)] = (sub.key, number)
        return found


def existing_deliveries(session: Session, post_ids: list[int]) -> set[tuple[str, int, str]]:
    return deliveries.existing(session, post_ids)


def append_rows(
    rows: list[NewDelivery],
    key: str,
    channels: list[str],
    post_id: int,
    kind: str,
    reason: str,
    due: datetime,
    existing: set[tuple[str, int, str]],
) -> None:
    """Append to `rows` a new delivery of the post for subscriber `key` on each of its
    channels, unless it exists (`existing`, which gets it)."""
    for channel in channels:
        if (key, post_id, channel) not in existing:
            existing.add((key, post_id, channel))
            rows.append((key, post_id, channel, kind, reason, due))


def add_deliveries(
    session: Session,
    sub: SubscriberConfig,
    post_id: int,
    kind: str,
    reason: str,
    due: datetime,
    now: datetime,
) -> int:
    rows: list[NewDelivery] = []
    existing = existing_deliveries(session, [post_id])
    append_rows(rows, sub.key, sub.deliver_by, post_id, kind, reason, due, existing)
    delivery_inserts.insert_many(session, rows, now)
    return len(rows)


def escalate(session: Session, loaded: LoadedConfig, now: datetime) -> int:
    """Alert the next ring about urgent requests still unanswered after `escalate_after`."""
    ring = [s for s in active_subscribers(session, loaded) if s.escalation]
    if not ring:
        return 0
    added = 0
    longest = max((s.escalate_after or DEFAULT_ESCALATE_AFTER) for s in ring)
    for post, c in deliveries.unanswered_urgent(session, now - longest - timedelta(days=1)):
        for sub in ring:
            wait = sub.escalate_after or DEFAULT_ESCALATE_AFTER
            if now - post.collected_at < wait or not sub.wants_specialty(c.specialty):
                continue
            if post.lang and post.lang.split("-")[0] not in sub.language:
                continue
            added += add_deliveries(session, sub, post.id, "alert", "escalation", now, now)
    return added


def release_student_items(
    session: Session, now: datetime, loaded: LoadedConfig | None = None
) -> int:
    """Answered cases go out in the student's next digest (unanswered ones wait 24 h)."""
    subs = {s.key: s for s in loaded.config.subscribers} if loaded is not None else {}

    def release(subscriber_id: str) -> datetime:
        sub = subs.get(subscriber_id)
        return next_digest_time(sub, now) if sub is not None else now

    return deliveries.release_student_items(session, now, release)
