"""Bluesky records, PostViews and firehose frames → normalized `Post`s."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from typing import Any, NamedTuple

from atproto import CAR, models, parse_subscribe_repos_message
from atproto_core.exceptions import AtProtocolError
from atproto_subscription.frames import ErrorFrame, Frame, MessageFrame

from bot.collectors.base import fold_tag, matching_tags, tags_in_text
from bot.core.post import Author, Media, Post, parse_time

log = logging.getLogger(__name__)

NETWORK = "bluesky"
POST_COLLECTION = "app.bsky.feed.post"
TAG_FEATURE = "app.bsky.richtext.facet#tag"
INVALID_HANDLE = "handle.invalid"  # what the AppView shows when a handle does not verify
CDN_FULLSIZE = "https://cdn.bsky.app/img/feed_fullsize/plain/{did}/{cid}@jpeg"

_POST_PREFIX = POST_COLLECTION + "/"
Record = models.AppBskyFeedPost.Record
PostView = models.AppBskyFeedDefs.PostView


# --- tags --------------------------------------------------------------------------------


def raw_structured_tags(record: dict[str, Any]) -> list[str]:
    """Facet tags and `tags` of a raw (decoded CBOR / JSON) post record; tolerant of junk."""
    out: list[str] = []
    facets = record.get("facets")
    if isinstance(facets, list):
        for facet in facets:
            features = facet.get("features") if isinstance(facet, dict) else None
            if not isinstance(features, list):
                continue
            for feature in features:
                if isinstance(feature, dict) and feature.get("$type") == TAG_FEATURE:
                    tag = feature.get("tag")
                    if isinstance(tag, str):
                        out.append(tag)
    tags = record.get("tags")
    if isinstance(tags, list):
        out += [t for t in tags if isinstance(t, str)]
    return out


def structured_tags(record: Record) -> list[str]:
    out: list[str] = []
    for facet in record.facets or []:
        for feature in facet.features or []:
            if isinstance(feature, models.AppBskyRichtextFacet.Tag):
                out.append(feature.tag)
    out += [t for t in record.tags or [] if isinstance(t, str)]
    return out


def all_tags(structured: list[str], text: str) -> list[str]:
    """Every hashtag of a post (structured ones first, then the text's), folded-unique."""
    seen: set[str] = set()
    out = []
    for tag in [*structured, *tags_in_text(text)]:
        tag = tag.lstrip("#")
        if tag and fold_tag(tag) not in seen:
            seen.add(fold_tag(tag))
            out.append(tag)
    return out


# --- normalization -------------------------------------------------------------------------


def rkey_of(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def post_url(uri: str, handle: str | None, did: str) -> str:
    """The bsky.app link of a post: by handle when given (PostViews), else by DID.

    Firehose posts keep the DID form even once their author's handle is known (see
    `bluesky_profiles.ProfileResolver.enrich`): a DID URL is permanent, a handle URL breaks
    when the author changes handle; bsky.app accepts both.
    """
    who = handle if handle and handle != INVALID_HANDLE else did
    return f"https://bsky.app/profile/{who}/post/{rkey_of(uri)}"


def _record_images(record: Record) -> list[Any]:
    embed = record.embed
    if isinstance(embed, models.AppBskyEmbedRecordWithMedia.Main):
        embed = embed.media
    if isinstance(embed, models.AppBskyEmbedImages.Main):
        return list(embed.images)
    return []


def record_media(record: Record, did: str) -> list[Media]:
    """Images of a record: CDN URL built from the blob CID, and alt text."""
    media = []
    for image in _record_images(record):
        try:
            cid = str(image.image.cid)
        except (AttributeError, ValueError):
            continue
        media.append(Media(url=CDN_FULLSIZE.format(did=did, cid=cid), alt=image.alt or ""))
    return media


def view_media(view: PostView) -> list[Media]:
    """Images of a PostView's hydrated embed (`app.bsky.embed.images#view`)."""
    embed = view.embed
    if isinstance(embed, models.AppBskyEmbedRecordWithMedia.View):
        embed = embed.media
    if isinstance(embed, models.AppBskyEmbedImages.View):
        return [Media(url=img.fullsize, alt=img.alt or "") for img in embed.images]
    return []


def json_safe(model: Any) -> dict[str, Any]:
    """A JSON-safe dict of an atproto model (CIDs and blob refs as `{"$link": ...}`)."""
    return json.loads(models.get_model_as_json(model))


def post_from_record(
    uri: str,
    record: Record,
    *,
    did: str,
    handle: str | None = None,
    name: str = "",
    media: list[Media] | None = None,
    raw: dict[str, Any] | None = None,
) -> Post:
    """A Post from a validated record; raises ValueError when a field is unusable."""
    text = record.text or ""
    reply = record.reply
    if handle == INVALID_HANDLE:
        handle = None  # the DID is more useful to a reader than "handle.invalid"
    return Post(
        network=NETWORK,
        id=uri,
        key=uri,
        url=post_url(uri, handle, did),
        author=Author(id=did, handle=handle or did, name=name or ""),
        text=text,
        created_at=parse_time(record.created_at),
        lang=(record.langs or [None])[0],
        hashtags=all_tags(structured_tags(record), text),
        media=media if media is not None else record_media(record, did),
        reply_to=reply.parent.uri if reply else None,
        thread_root=reply.root.uri if reply else None,
        raw=raw,
    )


def post_from_view(view: PostView) -> Post:
    """A Post from an AppView PostView; raises ValueError for a non-post or broken record."""
    record = view.record
    if not models.is_record_type(record, models.AppBskyFeedPost):
        raise ValueError(f"{view.uri}: record is not an {POST_COLLECTION}")
    author = view.author
    return post_from_record(
        view.uri,
        record,
        did=author.did,
        handle=author.handle,
        name=author.display_name or "",
        media=view_media(view) or record_media(record, author.did),
        raw=json_safe(view),
    )


def parse_view(item: Any) -> PostView:
    """Validate one PostView JSON object (raises ValueError / ModelError when malformed)."""
    if not isinstance(item, dict):
        raise ValueError("post view is not an object")
    view = models.get_or_create(item, PostView)
    if not isinstance(view, PostView):
        raise ValueError("not a post view")
    return view


# --- firehose frames ------------------------------------------------------------------------


class Decoded(NamedTuple):
    """What one frame (or a batch of frames) yields: `posts, deletions, seq, *_ = ...`.

    `identities` holds the (did, handle or None) of `#identity` events, in order.
    """

    posts: list[Post]
    deletions: list[str]
    seq: int | None
    skipped: int = 0
    time: str | None = None
    identities: tuple[tuple[str, str | None], ...] = ()


class FrameError(ValueError):
    """A frame that cannot be decoded; it is logged and skipped."""


class StreamErrorFrame(Exception):
    """An error frame sent by the server (`op: -1`), e.g. FutureCursor or ConsumerTooSlow."""

    def __init__(self, error: str, message: str | None):
        super().__init__(f"{error}: {message or ''}")
        self.error = error


def decode_and_filter(frame: bytes, hashtags: Collection[str]) -> Decoded:
    """Decode one firehose frame; keep matching posts and deleted post uris.

    Raises FrameError for an undecodable frame, StreamErrorFrame for a server error frame.
    A malformed record inside a valid commit is skipped and counted in `skipped`.
    """
    try:
        message = Frame.from_bytes(frame)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad frame
        raise FrameError(f"undecodable frame: {exc}") from exc
    if isinstance(message, ErrorFrame):
        raise StreamErrorFrame(message.body.error, message.body.message)
    if not isinstance(message, MessageFrame) or not isinstance(message.body, dict):
        raise FrameError("not a message frame")
    body = message.body
    seq = body.get("seq") if isinstance(body.get("seq"), int) else None
    stamp = body.get("time") if isinstance(body.get("time"), str) else None
    if message.type == "#info":
        log.warning("firehose info: %s %s", body.get("name"), body.get("message") or "")
        return Decoded([], [], None)
    ops = body.get("ops")
    if message.type != "#commit" or not isinstance(ops, list):
        did = body.get("did")
        if message.type == "#identity" and isinstance(did, str):  # a handle (change)
            handle = body.get("handle")
            return Decoded(
                [], [], seq, 0, stamp, ((did, handle if isinstance(handle, str) else None),)
            )
        return Decoded([], [], seq, 0, stamp)
    if not any(
        isinstance(op, dict) and str(op.get("path", "")).startswith(_POST_PREFIX) for op in ops
    ):
        return Decoded([], [], seq, 0, stamp)  # likes, follows, reposts...: the bulk of the stream
    try:
        commit = parse_subscribe_repos_message(message)
    except Exception as exc:  # noqa: BLE001
        raise FrameError(f"malformed commit at seq {seq}: {exc}") from exc
    if not isinstance(commit, models.ComAtprotoSyncSubscribeRepos.Commit):
        raise FrameError(f"#commit frame at seq {seq} is not a commit")
    return _filter_commit(commit, hashtags)


def _filter_commit(commit: Any, hashtags: Collection[str]) -> Decoded:
    posts: list[Post] = []
    deletions: list[str] = []
    skipped = 0
    car: CAR | None = None
    for op in commit.ops:
        if not op.path.startswith(_POST_PREFIX):
            continue
        uri = f"at://{commit.repo}/{op.path}"
        if op.action == "delete":
            deletions.append(uri)
            continue
        if op.action not in ("create", "update") or op.cid is None:
            continue
        if car is None:
            try:
                car = CAR.from_bytes(commit.blocks)
            except Exception as exc:  # noqa: BLE001
                log.warning("seq %s: undecodable blocks, skipped: %s", commit.seq, exc)
                return Decoded(posts, deletions, commit.seq, skipped + 1, commit.time)
        raw = car.blocks.get(op.cid)
        if not isinstance(raw, dict):
            log.warning("seq %s: record %s missing from the blocks, skipped", commit.seq, uri)
            skipped += 1
            continue
        text = raw.get("text") if isinstance(raw.get("text"), str) else ""
        if not matching_tags(raw_structured_tags(raw), text, hashtags):
            continue
        try:
            record = models.get_or_create(raw, models.AppBskyFeedPost.Record)
            raw_json = {"uri": uri, "cid": str(op.cid), "record": json_safe(record)}
            posts.append(post_from_record(uri, record, did=commit.repo, raw=raw_json))
        except (AtProtocolError, ValueError, TypeError) as exc:
            log.warning("seq %s: malformed post %s skipped: %s", commit.seq, uri, exc)
            skipped += 1
    return Decoded(posts, deletions, commit.seq, skipped, commit.time)
