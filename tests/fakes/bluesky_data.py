"""Bluesky test data: post records, PostViews and real `subscribeRepos` firehose frames.

Frames follow the `com.atproto.sync.subscribeRepos` lexicon and the event-stream framing:
two concatenated DAG-CBOR objects, a header `{op: 1, t: "#commit"}` (or `{op: -1}` for an
error) and a body. A `#commit` body carries `seq`, `repo`, `rev`, `ops` (`action`, `path`,
`cid`) and `blocks`, a CARv1 file whose first root is the commit block and which holds the
records created by the ops. Everything is encoded with libipld (the atproto SDK's codec),
which writes CID-shaped bytes as DAG-CBOR links (tag 42).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import libipld

TID_CHARS = "234567abcdefghijklmnopqrstuvwxyz"
BASE_TIME = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"
FOLLOW = "app.bsky.graph.follow"


def tid(n: int) -> str:
    """A valid 13-character TID (record key / rev) that sorts like `n`."""
    value = ((1_764_000_000_000_000 + n) << 10) & ((1 << 63) - 1)
    chars = []
    for _ in range(13):
        chars.append(TID_CHARS[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def iso_ms(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def cid_of(data: bytes) -> bytes:
    """Binary CIDv1 (dag-cbor, sha2-256) of a block."""
    return b"\x01\x71\x12\x20" + hashlib.sha256(data).digest()


def cid_str(cid: bytes) -> str:
    return libipld.encode_cid(cid)


def blob_cid(name: str) -> bytes:
    """Binary CIDv1 (raw codec) of an image blob."""
    return b"\x01\x55\x12\x20" + hashlib.sha256(name.encode()).digest()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def car_file(root: bytes, blocks: list[tuple[bytes, bytes]]) -> bytes:
    header = libipld.encode_dag_cbor({"roots": [root], "version": 1})
    parts = [_varint(len(header)), header]
    for cid, data in blocks:
        parts += [_varint(len(cid) + len(data)), cid, data]
    return b"".join(parts)


# --- records -------------------------------------------------------------------------------


def post_record(
    text: str,
    *,
    created_at: datetime = BASE_TIME,
    langs: list[str] | None = None,
    facet_tags: list[str] | None = None,
    tags: list[str] | None = None,
    reply: tuple[str, str] | None = None,
    images: list[tuple[str, str]] | None = None,
    json_form: bool = False,
) -> dict[str, Any]:
    """An `app.bsky.feed.post` record. `reply` is (root uri, parent uri); `images` (name, alt).

    `json_form` writes blob refs as `{"$link": ...}` (XRPC JSON), else as CID links (CBOR).
    """
    record: dict[str, Any] = {"$type": POST, "text": text, "createdAt": iso_ms(created_at)}
    record["langs"] = langs if langs is not None else ["fr"]
    if facet_tags:
        data = text.encode()
        facets = []
        for tag in facet_tags:
            start = data.find(f"#{tag}".encode())
            start = max(start, 0)
            facets.append(
                {
                    "$type": "app.bsky.richtext.facet",
                    "index": {"byteStart": start, "byteEnd": start + len(tag.encode()) + 1},
                    "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}],
                }
            )
        record["facets"] = facets
    if tags is not None:
        record["tags"] = tags
    if reply:
        root, parent = reply
        record["reply"] = {
            "root": {"uri": root, "cid": cid_str(cid_of(root.encode()))},
            "parent": {"uri": parent, "cid": cid_str(cid_of(parent.encode()))},
        }
    if images:
        record["embed"] = {
            "$type": "app.bsky.embed.images",
            "images": [
                {
                    "alt": alt,
                    "image": {
                        "$type": "blob",
                        "ref": {"$link": cid_str(blob_cid(name))} if json_form else blob_cid(name),
                        "mimeType": "image/jpeg",
                        "size": 1234,
                    },
                }
                for name, alt in images
            ],
        }
    return record


def like_record(subject_uri: str, created_at: datetime = BASE_TIME) -> dict[str, Any]:
    return {
        "$type": LIKE,
        "subject": {"uri": subject_uri, "cid": cid_str(cid_of(subject_uri.encode()))},
        "createdAt": iso_ms(created_at),
    }


def follow_record(subject_did: str, created_at: datetime = BASE_TIME) -> dict[str, Any]:
    return {"$type": FOLLOW, "subject": subject_did, "createdAt": iso_ms(created_at)}


def post_view(
    did: str,
    rkey: str,
    record: dict[str, Any],
    *,
    handle: str | None = None,
    name: str = "",
    indexed_at: datetime | None = None,
) -> dict[str, Any]:
    """An `app.bsky.feed.defs#postView` as the AppView returns it (record in JSON form)."""
    uri = f"at://{did}/{POST}/{rkey}"
    view: dict[str, Any] = {
        "$type": "app.bsky.feed.defs#postView",
        "uri": uri,
        "cid": cid_str(cid_of(uri.encode())),
        "author": {
            "did": did,
            "handle": handle or f"{did.rsplit(':', 1)[-1]}.bsky.social",
            "displayName": name,
            "labels": [],
        },
        "record": record,
        "replyCount": 0,
        "repostCount": 0,
        "likeCount": 0,
        "quoteCount": 0,
        "indexedAt": iso_ms(
            indexed_at or datetime.fromisoformat(record["createdAt"].replace("Z", "+00:00"))
        ),
        "labels": [],
    }
    embed = record.get("embed") or {}
    if embed.get("$type") == "app.bsky.embed.images":
        view["embed"] = {
            "$type": "app.bsky.embed.images#view",
            "images": [
                {
                    "thumb": f"https://cdn.bsky.app/img/feed_thumbnail/plain/{did}/{img['image']['ref']['$link']}@jpeg",
                    "fullsize": f"https://cdn.bsky.app/img/feed_fullsize/plain/{did}/{img['image']['ref']['$link']}@jpeg",
                    "alt": img["alt"],
                }
                for img in embed["images"]
            ],
        }
    return view


def profile_view(
    did: str,
    handle: str | None = None,
    name: str | None = None,
    *,
    created_at: datetime = BASE_TIME - timedelta(days=400),
) -> dict[str, Any]:
    """An `app.bsky.actor.defs#profileViewDetailed` as `getProfiles` returns it (no `$type`)."""
    handle = handle or f"{did.rsplit(':', 1)[-1]}.bsky.social"
    view: dict[str, Any] = {
        "did": did,
        "handle": handle,
        "displayName": name,
        "description": "Médecin. Avis entre confrères.",
        "avatar": f"https://cdn.bsky.app/img/avatar/plain/{did}/{cid_str(blob_cid(did))}@jpeg",
        "banner": f"https://cdn.bsky.app/img/banner/plain/{did}/{cid_str(blob_cid(handle))}@jpeg",
        "followersCount": 120,
        "followsCount": 80,
        "postsCount": 42,
        "associated": {
            "lists": 0,
            "feedgens": 0,
            "starterPacks": 0,
            "labeler": False,
            "chat": {"allowIncoming": "following"},
        },
        "indexedAt": iso_ms(created_at),
        "createdAt": iso_ms(created_at),
        "viewer": {"muted": False, "blockedBy": False},
        "labels": [],
    }
    if name is None:
        del view["displayName"]  # optional: many accounts never set one
    return view


# --- firehose frames ----------------------------------------------------------------------


@dataclass
class Op:
    action: str  # create | update | delete
    collection: str
    rkey: str
    record: dict[str, Any] | None = None


def commit_frame(seq: int, repo: str, ops: list[Op], *, time: datetime | None = None) -> bytes:
    """A `#commit` frame with a CAR of the commit block, one MST node and the new records."""
    record_blocks: list[tuple[bytes, bytes]] = []
    op_list: list[dict[str, Any]] = []
    entries = []
    for op in ops:
        path = f"{op.collection}/{op.rkey}"
        if op.action != "delete" and op.record is not None:
            data = libipld.encode_dag_cbor(op.record)
            cid = cid_of(data)
            record_blocks.append((cid, data))
            op_list.append({"action": op.action, "path": path, "cid": cid})
            entries.append({"k": path.encode(), "p": 0, "t": None, "v": cid})
        else:
            op_list.append({"action": "delete", "path": path, "cid": None})
    mst = libipld.encode_dag_cbor({"e": entries, "l": None})
    mst_cid = cid_of(mst)
    rev = tid(seq)
    commit = libipld.encode_dag_cbor(
        {"did": repo, "version": 3, "data": mst_cid, "rev": rev, "prev": None, "sig": b"\x00" * 64}
    )
    commit_cid = cid_of(commit)
    body = {
        "seq": seq,
        "rebase": False,
        "tooBig": False,
        "repo": repo,
        "commit": commit_cid,
        "rev": rev,
        "since": None,
        "blocks": car_file(commit_cid, [(commit_cid, commit), (mst_cid, mst), *record_blocks]),
        "ops": op_list,
        "blobs": [],
        "time": iso_ms(time or BASE_TIME + timedelta(seconds=seq)),
    }
    return libipld.encode_dag_cbor({"op": 1, "t": "#commit"}) + libipld.encode_dag_cbor(body)


def identity_frame(seq: int, did: str, handle: str) -> bytes:
    body = {"seq": seq, "did": did, "handle": handle, "time": iso_ms(BASE_TIME)}
    return libipld.encode_dag_cbor({"op": 1, "t": "#identity"}) + libipld.encode_dag_cbor(body)


def info_frame(name: str, message: str = "") -> bytes:
    return libipld.encode_dag_cbor({"op": 1, "t": "#info"}) + libipld.encode_dag_cbor(
        {"name": name, "message": message}
    )


def error_frame(error: str, message: str = "") -> bytes:
    return libipld.encode_dag_cbor({"op": -1}) + libipld.encode_dag_cbor(
        {"error": error, "message": message}
    )


def post_frame(seq: int, repo: str, rkey: str, record: dict[str, Any]) -> bytes:
    return commit_frame(seq, repo, [Op("create", POST, rkey, record)])


def delete_frame(seq: int, repo: str, rkey: str, collection: str = POST) -> bytes:
    return commit_frame(seq, repo, [Op("delete", collection, rkey)])
