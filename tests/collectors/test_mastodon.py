"""Mastodon collector: the real Mastodon.py client against a fake Mastodon server over HTTP.

Polling, pagination and cursors, hashtag matching, boosts, duplicates across instances,
edits, deletions, replies, normalization. Failures, rate limits and streaming are in
test_mastodon_failures.py. Nothing sleeps for real: collectors get the FakeClock's sleep.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from bot.collect import run_source
from bot.collectors.mastodon_status import html_to_text, status_to_post
from bot.storage.posts import row_to_post
from tests.collectors.mastodon_support import (
    TAGS,
    TIMELINE,
    add_many,
    collector,
    cursor_of,
    prime,
    rows,
    run,
)
from tests.fakes.mastodon_server import FakeMastodon


@pytest.fixture
def server() -> Iterator[FakeMastodon]:
    with FakeMastodon("med.example") as fake:
        yield fake


# --- polling ------------------------------------------------------------------------------


def test_first_run_collects_only_the_newest_page(db, server, clock):
    statuses = add_many(server, clock, 50)
    coll = collector(server, clock)
    result = run(db, coll, clock, follow=False)
    assert result.error is None
    assert len(result.new) == 40
    stored = [r.native_id for r in rows(db)]
    assert stored == [s["id"] for s in statuses[10:]]  # the newest 40, stored oldest first
    assert cursor_of(db, coll) == {"doctoctoc": statuses[-1]["id"]}


def test_first_run_can_take_more_pages_still_oldest_first(db, server, clock):
    statuses = add_many(server, clock, 100)
    coll = collector(server, clock, first_run_pages=2)
    result = run(db, coll, clock, follow=False)
    assert result.error is None and len(result.new) == 80
    assert [r.native_id for r in rows(db)] == [s["id"] for s in statuses[20:]]
    assert cursor_of(db, coll) == {"doctoctoc": statuses[-1]["id"]}


def test_pagination_oldest_to_newest_with_min_id(db, server, clock):
    first = prime(db, server, clock)
    statuses = add_many(server, clock, 130)
    coll = collector(server, clock)
    result = run(db, coll, clock, follow=False)
    assert result.error is None and len(result.new) == 130
    assert [r.native_id for r in rows(db)] == [first["id"]] + [s["id"] for s in statuses]
    # min_id paging: each request starts right after the newest status of the previous page.
    mins = [r.params.get("min_id") for r in server.timeline_requests()]
    assert mins == [first["id"], statuses[39]["id"], statuses[79]["id"], statuses[119]["id"]]
    assert all(r.params.get("limit") == "40" for r in server.timeline_requests())
    assert cursor_of(db, coll) == {"doctoctoc": statuses[-1]["id"]}


def test_second_run_stores_nothing_with_one_request_per_tag(db, server, clock):
    tags = ["DocTocToc", "DocTocTocPsy"]
    server.add_status("Cas #DocTocToc", created_at=clock() - timedelta(minutes=30))
    server.add_status("Cas psy #DocTocTocPsy", created_at=clock() - timedelta(minutes=20))
    assert len(run(db, collector(server, clock, tags=tags), clock).new) == 2
    server.requests.clear()
    again = run(db, collector(server, clock, tags=tags), clock, follow=False)
    assert again.error is None and again.new == [] and again.updated == 0
    paths = sorted(r.path.lower() for r in server.timeline_requests())
    assert paths == [f"{TIMELINE}doctoctoc", f"{TIMELINE}doctoctocpsy"]
    assert again.requests == server.count("/")  # every HTTP request is accounted (probes too)


def test_restart_after_failure_in_the_middle_has_no_gap_and_no_duplicate(db, server, clock):
    prime(db, server, clock)
    statuses = add_many(server, clock, 160)  # 4 pages of 40
    coll = collector(server, clock, retries=1)
    server.fail(TIMELINE, status=500, times=2, after=2)  # page 3 fails twice: retries exhausted
    first = run(db, coll, clock, follow=False)
    assert first.error and "failed after 2 attempts" in first.error
    assert len(first.new) == 80
    assert cursor_of(db, coll) == {"doctoctoc": statuses[79]["id"]}
    server.requests.clear()
    second = run(db, collector(server, clock), clock, follow=False)
    assert second.error is None and len(second.new) == 80
    assert server.timeline_requests()[0].params["min_id"] == statuses[79]["id"]
    assert [r.native_id for r in rows(db)][1:] == [s["id"] for s in statuses]


def test_hashtag_variants_exact_tags_only(db, server, clock):
    t = clock() - timedelta(hours=3)
    texts = {
        "lower": "Cas clinique #doctoctoc",
        "upper": "CAS #DOCTOCTOC",
        "accent": "Cas #DócTocToc",
        "psy": "Insomnie rebelle #DocTocTocPsy",
        "plural": "Pas nous #DocTocTocs",
        "none": "Sans tag, mais le mot doctoctoc",
    }
    ids = {}
    for i, (name, text) in enumerate(texts.items()):
        ids[name] = server.add_status(text, created_at=t + timedelta(minutes=i))["id"]
    # Structured tags missing: the text is the fallback.
    ids["text_only"] = server.add_status(
        "Avis ? #DocTocToc", tags=[], created_at=t + timedelta(minutes=9)
    )["id"]
    coll = collector(server, clock, tags=["DocTocToc", "DocTocTocPsy"])
    assert run(db, coll, clock, follow=False).error is None
    stored = {r.native_id: r for r in rows(db)}
    assert set(stored) == {ids[k] for k in ("lower", "upper", "accent", "psy", "text_only")}
    assert stored[ids["psy"]].hashtags == ["DocTocTocPsy"]
    assert stored[ids["text_only"]].hashtags == ["DocTocToc"]


def test_boosts_collapse_to_the_original(db, server, clock):
    t = clock() - timedelta(hours=1)
    original = server.add_status("Lecture ECG ? #DocTocToc", created_at=t, username="carla")
    server.boost(original, created_at=t + timedelta(minutes=1), username="dan")
    remote = server.add_status(
        "Remote #DocTocToc",
        created_at=t + timedelta(minutes=2),
        username="eve",
        account_domain="far.example",
    )
    server.delete(remote["id"])  # only its boost is left in the timeline
    server.boost(remote, created_at=t + timedelta(minutes=3), username="dan")
    assert run(db, collector(server, clock), clock, follow=False).error is None
    stored = rows(db)
    assert [(r.native_id, r.key, r.author_handle) for r in stored] == [
        (original["id"], original["uri"], "@carla@127.0.0.1"),
        (remote["id"], remote["uri"], "@eve@far.example"),
    ]


def test_the_same_status_on_two_instances_is_stored_once(db, clock):
    t = clock() - timedelta(hours=1)
    uri = "https://far.example/users/eve/statuses/1"
    with FakeMastodon("a.example") as a, FakeMastodon("b.example", id_salt=7) as b:
        sa = a.add_status(
            "Même cas #DocTocToc",
            created_at=t,
            username="eve",
            account_domain="far.example",
            uri=uri,
        )
        sb = b.add_status(
            "Même cas #DocTocToc",
            created_at=t,
            username="eve",
            account_domain="far.example",
            uri=uri,
        )
        assert sa["id"] != sb["id"]
        first = run(db, collector(a, clock, name="a"), clock, follow=False)
        second = run(db, collector(b, clock, name="b"), clock, follow=False)
    assert len(first.new) == 1 and second.new == [] and second.error is None
    assert [(r.key, r.native_id, r.source) for r in rows(db)] == [(uri, sa["id"], "a")]


# --- edits, deletions, replies -----------------------------------------------------------------


def test_edits_update_the_stored_text(db, server, clock):
    case = server.add_status(
        "Douleur thoracique, 45 ans #DocTocToc", created_at=clock() - timedelta(hours=1)
    )
    reply = server.add_status(
        "@alice ECG ?",
        created_at=clock() - timedelta(minutes=50),
        in_reply_to=case["id"],
        username="bob",
    )
    assert run(db, collector(server, clock), clock).error is None
    edited_at = clock() - timedelta(minutes=5)
    server.edit(case["id"], "Douleur thoracique, 54 ans (corrigé) #DocTocToc", edited_at=edited_at)
    server.edit(reply["id"], "@alice ECG et troponine ?", edited_at=edited_at)
    result = run(db, collector(server, clock), clock)
    assert result.error is None and result.updated == 2 and result.new == []
    by_id = {r.native_id: r for r in rows(db)}
    assert by_id[case["id"]].text == "Douleur thoracique, 54 ans (corrigé) #DocTocToc"
    assert by_id[case["id"]].edited_at == edited_at.replace(microsecond=0)
    assert by_id[reply["id"]].text == "@alice ECG et troponine ?"


def test_deleted_case_is_marked_deleted(db, server, clock):
    case = server.add_status("Éruption cutanée #DocTocToc", created_at=clock() - timedelta(hours=1))
    kept = server.add_status("Autre cas #DocTocToc", created_at=clock() - timedelta(minutes=30))
    run(db, collector(server, clock), clock)
    server.delete(case["id"])
    result = run(db, collector(server, clock), clock)
    assert result.error is None and result.deleted == 1
    by_id = {r.native_id: r for r in rows(db)}
    assert by_id[case["id"]].deleted and by_id[case["id"]].text == ""
    assert not by_id[kept["id"]].deleted
    # run 1: status + context; run 2: the status answers 404 (no context call, no recheck call)
    assert server.count(f"/api/v1/statuses/{case['id']}") == 3


def test_deletion_on_one_instance_spares_the_same_id_on_another(db, clock):
    t = clock() - timedelta(hours=1)
    with FakeMastodon("a.example") as a, FakeMastodon("b.example") as b:
        sa = a.add_status("Cas A #DocTocToc", created_at=t)
        sb = b.add_status("Cas B #DocTocToc", created_at=t)
        assert sa["id"] == sb["id"] and sa["uri"] != sb["uri"]  # ids are per instance
        run(db, collector(a, clock, name="a"), clock)
        run(db, collector(b, clock, name="b"), clock)
        a.delete(sa["id"])
        coll, cases = collector(a, clock, name="a"), [row_to_post(rows(db)[0])]
        assert list(coll.replies(cases)) == []  # the status answers 404
        assert coll.recheck(cases) == [sa["uri"]]
        coll.close()
        assert run(db, collector(a, clock, name="a"), clock).deleted == 1
    assert [(r.key, r.deleted) for r in rows(db)] == [(sa["uri"], True), (sb["uri"], False)]


def test_replies_are_linked_to_the_case_with_answer_count(db, server, clock):
    t = clock() - timedelta(hours=2)
    case = server.add_status("Fièvre au retour du Mali #DocTocToc", created_at=t)
    r1 = server.add_status(
        "@alice Frottis/goutte épaisse en urgence",
        created_at=t + timedelta(minutes=5),
        in_reply_to=case["id"],
        username="bob",
    )
    server.add_status(
        "@bob D'accord, et TDR palu", created_at=t + timedelta(minutes=9), in_reply_to=r1["id"]
    )
    other = server.add_status(
        "Autre fil #DocTocToc", created_at=t + timedelta(minutes=1), username="zoe"
    )
    server.add_status(
        "Réponse ailleurs",
        created_at=t + timedelta(minutes=20),
        in_reply_to=other["id"],
        username="yann",
    )
    result = run(db, collector(server, clock), clock)
    assert result.error is None and len(result.new) == 5
    by_id = {r.native_id: r for r in rows(db)}
    assert by_id[case["id"]].answer_count == 2
    assert by_id[other["id"]].answer_count == 1
    assert by_id[r1["id"]].hashtags == [] and by_id[r1["id"]].answer_to_id == by_id[case["id"]].id


def test_following_is_bounded_per_cycle(db, server, clock):
    t = clock() - timedelta(days=2, hours=12)  # outside the 48 h window
    server.add_status("Vieux cas #DocTocToc", created_at=t)
    add_many(server, clock, 10)
    coll = collector(server, clock, max_cases=3)
    assert run(db, coll, clock).error is None
    assert (
        server.count("/api/v1/statuses/") == 6
    )  # 3 cases x (status + context), recheck reuses them


# --- normalization ---------------------------------------------------------------------------------


def test_html_content_becomes_readable_text():
    html = (
        '<p>Bonjour &amp; merci&nbsp;!<br />Ligne 2 &lt;3</p><p>Voir <a href="https://ex.org/a/b">'
        '<span class="invisible">https://</span><span class="ellipsis">ex.org/a</span>'
        '<span class="invisible">/b</span></a> <a href="https://m.example/tags/DocTocToc" '
        'class="mention hashtag" rel="tag">#<span>DocTocToc</span></a></p>'
    )
    assert (
        html_to_text(html)
        == "Bonjour & merci\xa0!\nLigne 2 <3\n\nVoir https://ex.org/a/b #DocTocToc"
    )


def test_status_normalization(server, clock):
    t = clock() - timedelta(hours=1)
    status = server.add_status(
        "Lésion ?\n\nPhoto jointe #DocTocToc",
        created_at=t,
        username="nadia",
        display_name="Nadia — urgentiste",
        media=[("https://med.example/system/original/1.jpg", "Plaque érythémateuse")],
        language="fr",
        spoiler_text="Photo médicale",
    )
    post = status_to_post(status, host="med.example", wanted=TAGS)
    assert post is not None
    assert (post.network, post.id, post.key, post.url) == (
        "mastodon",
        status["id"],
        status["uri"],
        status["url"],
    )
    assert (post.author.id, post.author.handle, post.author.name) == (
        status["account"]["id"],
        "@nadia@med.example",
        "Nadia — urgentiste",
    )
    assert post.text == "Photo médicale\n\nLésion ?\n\nPhoto jointe #DocTocToc"
    assert post.lang == "fr" and post.created_at == datetime.fromisoformat(status["created_at"])
    assert [(m.url, m.alt) for m in post.media] == [
        ("https://med.example/system/original/1.jpg", "Plaque érythémateuse")
    ]
    assert post.reply_to is None and post.edited_at is None and post.hashtags == ["DocTocToc"]
    json.dumps(post.raw)


def test_raw_is_json_safe_through_the_library(db, server, clock):
    server.add_status("Cas #DocTocToc", created_at=clock() - timedelta(minutes=10))
    run(db, collector(server, clock), clock, follow=False)
    (row,) = rows(db)
    assert isinstance(row.raw["created_at"], str) and row.raw["account"]["acct"] == "alice"


def test_cursor_is_json_per_tag_and_survives_garbage(db, server, clock):
    server.add_status("Cas #DocTocToc", created_at=clock() - timedelta(minutes=10))
    coll = collector(server, clock)
    pages = list(coll.pages("not json"))  # unreadable cursor: treated as a first run
    assert [len(p.posts) for p in pages] == [1]
    assert json.loads(pages[0].cursor) == {"doctoctoc": pages[0].posts[0].id}
    coll.close()


def test_a_status_the_instance_fetched_late_is_found_by_the_lookback(db, server, clock):
    prime(db, server, clock)
    coll = collector(server, clock)
    recent = server.add_status("Cas récent #DocTocToc", created_at=clock() - timedelta(minutes=5))
    assert len(run_source(db, coll, now=clock(), follow=False).new) == 1
    # The instance fetches a status published 30 min ago (a thread or a search pulled it in):
    # Mastodon dates its id from its publication, so it sorts before the cursor.
    late = server.add_status(
        "Arrivé en retard #DocTocToc", created_at=clock() - timedelta(minutes=30)
    )
    clock.advance(minutes=5)
    quiet = run_source(db, coll, now=clock(), follow=False)
    assert quiet.new == [] and quiet.requests == 1  # an idle cycle is still one request
    clock.advance(minutes=11)  # 16 min since the collector started: time to look back
    server.requests.clear()
    looked = run_source(db, coll, now=clock(), follow=False)
    coll.close()
    assert looked.error is None and looked.requests == 2
    assert [r.params.get("min_id") for r in server.timeline_requests()] == [recent["id"], None]
    assert [r.native_id for r in rows(db) if r.id in looked.new] == [late["id"]]
    assert cursor_of(db, coll) == {"doctoctoc": recent["id"]}  # the cursor did not move


def test_backfill_reads_older_pages_on_the_first_run_until_it_is_covered(db, server, clock):
    hourly = [
        server.add_status(f"Cas {i} #DocTocToc", created_at=clock() - timedelta(hours=130 - i))
        for i in range(130)
    ]  # one an hour: the newest page of 40 covers 40 hours
    coll = collector(server, clock, backfill=timedelta(days=3))
    result = run(db, coll, clock, follow=False)
    assert result.error is None and len(result.new) == 80  # 40 h, then 80 h >= 72 h: stop
    assert [r.native_id for r in rows(db)] == [s["id"] for s in hourly[50:]]
    assert cursor_of(db, coll) == {"doctoctoc": hourly[-1]["id"]}
    server.requests.clear()
    later = server.add_status("Nouveau #DocTocToc", created_at=clock())
    assert (
        len(run(db, collector(server, clock, backfill=timedelta(days=3)), clock, follow=False).new)
        == 1
    )
    assert [r.params.get("min_id") for r in server.timeline_requests()] == [hourly[-1]["id"]]
    assert later["id"] == rows(db)[-1].native_id
