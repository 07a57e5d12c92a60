"""Turn a subscriber and their claimed deliveries into a Digest: ordering, the "already
answered" section, hidden authors, signed links. Each post's item is built once per flush."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime

from bot.core.config import LoadedConfig
from bot.core.config_models import SubscriberConfig
from bot.storage.deliveries import PostCache
from digests.render import ContentKey, Digest, DigestItem, SharedRenderer
from digests.tokens import correction_token, unsubscribe_token, viewer_token

URGENCY_ORDER = {"urgent": 0, "soon": 1, "routine": 2}


@dataclass(frozen=True)
class Route:
    """One message to send: whose, by which channel, what kind, and its deliveries."""

    subscriber: SubscriberConfig
    channel: str
    kind: str  # alert | digest | student
    key: str  # the message key (the e-mail's Message-ID is derived from it)
    first_item: int  # its first item (delivery id) when routed: a new key names it
    messages: list[int]  # the message rows they hang from (claimed and settled together)


class Composer:
    """Builds the digests of one flush from posts loaded once (`posts`)."""

    def __init__(
        self,
        loaded: LoadedConfig,
        secret: bytes,
        now: datetime,
        posts: PostCache,
        answers: Callable[[int], list[str]],
    ):
        self.loaded, self.secret, self.now, self.posts = loaded, secret, now, posts
        self.public = loaded.config.web.public_url.rstrip("/")
        self._answers = answers
        self._answer_cache: dict[int, list[str]] = {}
        self._items: dict[tuple[int, str, bool, bool], DigestItem] = {}
        self._selections: dict[tuple, tuple] = {}
        self._sub_links: dict[str, tuple[str, str, str]] = {}
        self.renderer = SharedRenderer()

    def compose(
        self, sub: SubscriberConfig, kind: str, pairs: list[tuple[int, str]], key: str
    ) -> tuple[Digest, Hashable]:
        """The digest of (post id, routing reason) pairs for one subscriber, and a key naming
        everything in it but the subscriber's own name and links."""
        shown, answered, more, content_key = self._selection(sub, kind, pairs)
        spec, more_url, unsubscribe_url = self._links(sub)
        digest = Digest(
            subscriber_id=sub.key,
            subscriber_name=sub.name,
            language=sub.language[0],
            kind=kind,
            items=[self._personal(it, sub) for it in shown],
            answered=[self._personal(it, sub) for it in answered],
            more=more,
            more_url=more_url,
            unsubscribe_url=unsubscribe_url,
            specialties=spec.replace(",", ", "),
            message_key=key,
            generated_at=self.now,
            stale_after=self.loaded.config.delivery.stale_alert_after,
        )
        return digest, content_key

    def _selection(
        self, sub: SubscriberConfig, kind: str, pairs: list[tuple[int, str]]
    ) -> tuple[tuple[DigestItem, ...], tuple[DigestItem, ...], int, ContentKey]:
        """The shared items shown, those answered, how many more, and the content key: the
        same for every subscriber with the same pairs (in the same order) and settings."""
        student = sub.role == "student"
        lang = sub.language[0]
        key = (kind, tuple(pairs), sub.hide_authors, student, sub.max_items, lang)
        found = self._selections.get(key)
        if found is not None:
            return found
        shared = [self._item(post_id, reason, sub) for post_id, reason in pairs]
        shared.sort(
            key=lambda it: (
                URGENCY_ORDER.get(it.urgency or "routine", 3),
                # Urgent cases by their probability of urgency (the sure ones first), so a
                # borderline form question never leads before a suicidal patient.
                -(it.urgency_score or 0.0) if it.urgency == "urgent" else 0.0,
                -it.created_at.timestamp(),
            )
        )
        answered = [] if kind in ("alert", "student") else [it for it in shared if it.answer_count]
        open_items = [it for it in shared if it not in answered]
        shown = open_items[: sub.max_items]
        answered = answered[: max(0, sub.max_items - len(shown))]
        more = len(open_items) - len(shown)
        content_key = ContentKey(
            lang, kind, more, tuple(id(it) for it in shown), tuple(id(it) for it in answered)
        )
        found = self._selections[key] = (tuple(shown), tuple(answered), more, content_key)
        return found

    def _links(self, sub: SubscriberConfig) -> tuple[str, str, str]:
        """The subscriber's specialties ("all" or comma-separated), "more" and unsubscribe
        links: signed once per flush."""
        found = self._sub_links.get(sub.key)
        if found is None:
            spec = "all" if sub.specialties == "all" else ",".join(sub.specialties)
            viewer = f"&v={viewer_token(self.secret, sub.key)}" if sub.hide_authors else ""
            found = self._sub_links[sub.key] = (
                spec,
                f"{self.public}/cases?specialty={spec}{viewer}",
                f"{self.public}/unsubscribe/{unsubscribe_token(self.secret, sub.key)}",
            )
        return found

    def rendered(self, digest: Digest, content_key: Hashable) -> Digest:
        """The digest with its e-mail (subject, text, html) rendered, shared content once."""
        digest.rendered = self.renderer.render(digest, content_key)
        return digest

    def _personal(self, item: DigestItem, sub: SubscriberConfig) -> DigestItem:
        token = correction_token(self.secret, item.post_id, sub.key)
        # A shallow copy (the lists stay shared, as nothing changes them), without the cost
        # of copy.copy: the same fields, with the subscriber's own correction link.
        fields = item.__dict__.copy()
        fields["correction_url"] = f"{self.public}/correct/{token}"
        personal = object.__new__(DigestItem)
        personal.__dict__ = fields
        return personal

    def _item(self, post_id: int, reason: str, sub: SubscriberConfig) -> DigestItem:
        student = sub.role == "student"
        key = (post_id, reason, sub.hide_authors, student)
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = self._build_item(post_id, reason, sub.hide_authors, student)
        return item

    def _build_item(self, post_id: int, reason: str, hidden: bool, student: bool) -> DigestItem:
        post, c = self.posts[post_id]
        answers: list[str] = []
        if student and post.answer_count:
            if post_id not in self._answer_cache:
                self._answer_cache[post_id] = self._answers(post_id)
            answers = list(self._answer_cache[post_id])
        author = "" if hidden else (post.author_name or post.author_handle)
        if not hidden and post.author_handle and post.author_name:
            author = f"{post.author_name} ({post.author_handle})"
        return DigestItem(
            post_id=post.id,
            url=post.url,
            text=post.text,
            author=author or "—",
            network=post.network,
            created_at=post.created_at,
            specialty=c.specialty if c else None,
            urgency=c.urgency if c else None,
            urgency_score=c.urgency_score if c else None,
            cues=list(c.cues or []) if c else [],
            answer_count=post.answer_count,
            media=list(post.media or []),
            correction_url=None,
            uncertain=bool(c and c.uncertain),
            reason=reason,
            answers=answers,
        )
