"""Every page and endpoint of the web app through Starlette's TestClient."""

from __future__ import annotations

import base64
import logging
import re
from datetime import timedelta

import feedparser
import pytest

from bot.storage import cases as store
from bot.storage import corrections as stored
from bot.storage.models import DeliveryRow, MessageRow, SubscriberRow
from classifiers.corrections import training_examples
from digests.routing import active_subscribers
from digests.tokens import sign
from tests.digests.helpers import T0, add_request
from tests.web.conftest import ADMIN_PASSWORD, SECRET


def listed(html: str) -> list[int]:
    """The case ids a list page links to, in order (each case once)."""
    out: list[int] = []
    for found in re.findall(r'href="/cases/(\d+)', html):
        if int(found) not in out:
            out.append(int(found))
    return out


# --- unsubscribe -------------------------------------------------------------------------


def test_unsubscribe_get_shows_a_button_and_changes_nothing(site):
    r = site.client.get(f"/unsubscribe/{site.unsubscribe_token()}")
    assert r.status_code == 200
    assert '<form method="post">' in r.text and "Me désabonner" in r.text
    assert 'name="List-Unsubscribe" value="One-Click"' in r.text
    with site.db.session() as s:
        assert s.get(SubscriberRow, "claire").unsubscribed_at is None


def test_one_click_post_unsubscribes_at_once_without_redirect_or_cookie(site):
    r = site.client.post(
        f"/unsubscribe/{site.unsubscribe_token()}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert r.status_code == 200
    assert "set-cookie" not in r.headers and "location" not in r.headers
    assert "Dr Claire Martin ne recevra plus aucun message" in r.text
    with site.db.session() as s:
        assert s.get(SubscriberRow, "claire").unsubscribed_at is not None
        assert [x.key for x in active_subscribers(s, site.loaded)] == ["sam"]
    again = site.client.post(
        f"/unsubscribe/{site.unsubscribe_token()}", data={"List-Unsubscribe": "One-Click"}
    )
    assert again.status_code == 200  # idempotent


def test_unsubscribe_post_without_the_one_click_body_changes_nothing(site):
    r = site.client.post(f"/unsubscribe/{site.unsubscribe_token()}", data={"x": "y"})
    assert r.status_code == 400
    with site.db.session() as s:
        assert s.get(SubscriberRow, "claire").unsubscribed_at is None


def test_forged_truncated_and_foreign_tokens_get_a_plain_404(site):
    good = site.unsubscribe_token()
    forged = sign(b"another secret", "unsubscribe", "claire")
    foreign = site.correction_token(site.ids["eczema"])  # a correction token on /unsubscribe
    unknown = sign(SECRET, "unsubscribe", "nobody")
    for token in (forged, good[:-3], foreign, unknown, "x", "a.b", "%00"):
        for method in ("get", "post"):
            r = getattr(site.client, method)(f"/unsubscribe/{token}")
            assert r.status_code == 404, (token, method)
            assert r.headers["content-type"].startswith("text/plain")
            assert "Traceback" not in r.text and "lien n'est pas valide" in r.text
    r = site.client.get(f"/correct/{sign(SECRET, 'unsubscribe', '1:claire')}")
    assert r.status_code == 404
    with site.db.session() as s:
        assert s.get(SubscriberRow, "claire").unsubscribed_at is None


# --- corrections -------------------------------------------------------------------------


def _corrections(db):
    with db.session() as session:
        return stored.list_corrections(session)


def _training_examples(db):
    with db.session() as session:
        return training_examples(stored.corrected_posts(session))


def test_correction_page_shows_the_post_and_its_current_labels(site):
    r = site.client.get(f"/correct/{site.correction_token(site.ids['stemi'])}")
    assert r.status_code == 200
    assert "sus-ST en inférieur" in r.text
    assert "URGENT" in r.text and "Cardiologie" in r.text
    assert '<select name="specialty">' in r.text and 'value="not_request"' in r.text
    assert _corrections(site.db) == []


def test_correction_is_recorded_once_as_the_cli_does(site):
    url = f"/correct/{site.correction_token(site.ids['stemi'])}"
    form = {"kind": "request", "specialty": "emergency", "urgency": "urgent"}
    r = site.client.post(url, data=form)
    assert r.status_code == 200
    assert "prochain entraînement" in r.text and "doctoctoc train" in r.text
    again = site.client.post(url, data={"kind": "request", "specialty": "neurology"})
    assert "déjà servi" in again.text
    assert "déjà servi" in site.client.get(url).text
    rows = _corrections(site.db)
    assert len(rows) == 1
    row = rows[0]
    assert (row["post"], row["specialty"], row["urgency"], row["is_request"]) == (
        site.ids["stemi"],
        "emergency",
        "urgent",
        True,
    )
    assert row["corrected_by"] == "Dr Claire Martin"
    assert row["was"]["specialty"] == "cardiology"
    [example] = _training_examples(site.db)
    assert example.specialty == "emergency" and example.id == f"correction:{site.ids['stemi']}"


def test_correction_not_a_request_and_empty_form(site):
    url = f"/correct/{site.correction_token(site.ids['eczema2'])}"
    empty = site.client.post(url, data={"kind": "", "specialty": "", "urgency": ""})
    assert empty.status_code == 400 and "Choisissez au moins" in empty.text
    assert _corrections(site.db) == []
    r = site.client.post(url, data={"kind": "not_request", "specialty": "neurology"})
    assert r.status_code == 200
    [row] = _corrections(site.db)
    assert row["is_request"] is False and row["specialty"] is None


def test_correction_of_a_deleted_post_is_gone(site):
    r = site.client.get(f"/correct/{site.correction_token(site.ids['deleted'])}")
    assert r.status_code == 410


# --- the case list -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", ["chat?", "stemi", "eczema2", "eczema", "english"]),
        ("specialty=dermatology", ["eczema2", "eczema", "english"]),
        ("specialty=dermatology,cardiology", ["stemi", "eczema2", "eczema", "english"]),
        ("specialty=all", ["stemi", "eczema2", "eczema", "english"]),
        ("urgency=urgent", ["stemi"]),
        ("network=bluesky", []),
        ("network=mastodon&lang=en", ["english"]),
        ("answered=yes", ["eczema"]),
        ("answered=no&specialty=dermatology", ["eczema2", "english"]),
        ("from=2026-11-27&to=2026-11-27", ["stemi", "eczema2", "eczema"]),
        ("to=2026-11-26", ["english"]),
        ("q=eczema", ["eczema2", "eczema", "english"]),  # accents folded: "eczéma" matches
        ("q=plaque+rouge", ["eczema2", "eczema"]),
        ('q="sus-ST" * ( ^', ["stemi"]),  # search syntax never reaches the engine
        ("sort=urgent", ["stemi", "eczema2", "eczema", "english"]),
    ],
)
def test_case_list_filters(site, query, expected):
    r = site.client.get(f"/cases?{query}")
    assert r.status_code == 200
    want = [site.ids[name] for name in expected if not name.endswith("?")]
    assert listed(r.text) == want
    assert site.ids["chat"] not in listed(r.text)  # not a request
    assert site.ids["deleted"] not in listed(r.text)


@pytest.mark.parametrize(
    "query",
    [
        "specialty=dermato",
        "urgency=now",
        "network=myspace",
        "answered=maybe",
        "from=27/11",
        "page=0",
        "sort=random",
    ],
)
def test_case_list_rejects_bad_filters_with_a_message(site, query):
    r = site.client.get(f"/cases?{query}")
    assert r.status_code == 400
    assert query.split("=")[0] in r.text and "Traceback" not in r.text


def test_case_list_pages(site):
    for i in range(23):
        add_request(
            site.db,
            f"p{i}",
            f"Question de dermato {i} #DocTocToc",
            "dermatology",
            "routine",
            created_at=T0 + timedelta(days=1, minutes=i),
        )
    first = site.client.get("/cases?specialty=dermatology")
    assert len(listed(first.text)) == 20
    assert 'rel="next" href="/cases?specialty=dermatology&amp;page=2"' in first.text
    assert 'rel="prev"' not in first.text
    second = site.client.get("/cases?specialty=dermatology&page=2")
    assert len(listed(second.text)) == 6 and 'rel="next"' not in second.text
    assert not set(listed(first.text)) & set(listed(second.text))
    assert listed(second.text)[-1] == site.ids["english"]  # the oldest comes last


def test_the_digest_link_to_the_rest_opens_the_list(site):
    r = site.client.get("/cases?specialty=all")
    assert r.status_code == 200 and len(listed(r.text)) == 4


# --- the case page -----------------------------------------------------------------------


def test_case_page_shows_post_thread_labels_and_photos(site):
    r = site.client.get(f"/cases/{site.ids['eczema']}")
    assert r.status_code == 200
    html = r.text
    assert "Plaque rouge qui gratte" in html and "2026-11-27 09:00 UTC" in html
    assert "Dr Derm (@dr_derm@medecins.example)" in html
    assert 'href="https://medecins.example/@dr_derm/m1"' in html  # the original
    assert (
        'href="https://files.example/rash.jpg"' in html and "plaque érythémateuse du bras" in html
    )
    assert "javascript:" not in html and "piège" in html  # the alt text, without the link
    first, second = html.index("eczéma nummulaire"), html.index("un avis si pas")
    assert first < second  # the thread in order
    assert "Dermatologie: score 0.90" in html and "depuis 3 semaines" in html
    assert "Pas urgent: probabilité d&#39;urgence 0.10" in html


def test_case_links_with_other_schemes_are_not_links(site):
    html = site.client.get(f"/cases/{site.ids['stemi']}").text
    assert "javascript:" not in html and "Voir le message d" not in html


def test_student_link_hides_authors(site):
    v = site.viewer("sam")
    for url in (f"/cases?v={v}", f"/cases/{site.ids['eczema']}?v={v}"):
        html = site.client.get(url).text
        assert "Dr Derm" not in html and "@dr_derm@" not in html and "@derm2@" not in html
        assert "Replies" in html or "Similar" in html  # the student's language (en)
    html = site.client.get(f"/cases?v={v}").text
    assert f"/cases/{site.ids['eczema']}?v={v}" in html  # the choice follows the links
    data = site.client.get(f"/api/cases/{site.ids['eczema']}?v={v}").json()
    assert data["author"] is None and all(a["author"] is None for a in data["answers"])
    forged = site.client.get(f"/cases/{site.ids['eczema']}?v={v[:-2]}xx").text
    assert "Dr Derm" in forged  # a forged viewer token is ignored, not trusted


def test_student_digest_more_link_carries_the_viewer_token(tmp_path, db):
    from bot.storage.deliveries import answer_texts, load_posts
    from digests.compose import Composer
    from tests.digests.helpers import make_config
    from tests.web.conftest import SUBSCRIBERS

    loaded = make_config(tmp_path, SUBSCRIBERS)
    [claire, sam] = loaded.config.subscribers
    pid = add_request(db, "s1", "Eczéma ? #DocTocToc", "dermatology", "routine")
    with db.session() as s:
        composer = Composer(loaded, SECRET, T0, load_posts(s, {pid}), lambda i: answer_texts(s, i))
        d_sam = composer.compose(sam, "student", [(pid, "student")], "k")[0]
        d_claire = composer.compose(claire, "digest", [(pid, "specialty")], "k2")[0]
    assert d_sam.more_url.endswith(f"/cases?specialty=all&v={sign(SECRET, 'viewer', 'sam')}")
    assert d_claire.more_url == "https://bot.example.org/cases?specialty=dermatology"


def test_deleted_post_is_gone_everywhere(site):
    gone = site.ids["deleted"]
    r = site.client.get(f"/cases/{gone}")
    assert r.status_code == 410 and "supprimé" in r.text
    assert site.client.get(f"/api/cases/{gone}").status_code == 410
    assert gone not in listed(site.client.get("/cases?specialty=dermatology").text)
    feed = feedparser.parse(site.client.get("/feeds/dermatology.atom").text)
    assert f"/cases/{gone}" not in " ".join(e.link for e in feed.entries)
    similar = site.client.get(f"/api/cases/{site.ids['eczema']}").json()["similar"]
    assert gone not in [s["id"] for s in similar]
    assert site.client.get("/cases/99999").status_code == 404


def test_similar_cases_are_the_nearest_answered_first(site):
    data = site.client.get(f"/api/cases/{site.ids['eczema2']}").json()
    ids = [s["id"] for s in data["similar"]]
    assert ids[0] == site.ids["eczema"]  # the nearest, and answered
    assert site.ids["eczema2"] not in ids and len(ids) <= 5
    assert 0 < data["similar"][0]["similarity"] <= 1
    html = site.client.get(f"/cases/{site.ids['eczema2']}").text
    similar = html[html.index("Cas passés similaires") :]
    assert listed(similar)[0] == site.ids["eczema"] and "similarité" in similar
    assert site.client.app.state.web.similar.method == "classifier text features"


def test_similar_cases_fallback_without_classifier(db):
    from bot.web.similar import SimilarCases
    from tests.web.conftest import build_library

    ids = build_library(db)
    index = SimilarCases(db, classifier_loader=None)
    found = index.similar(ids["eczema2"], "Eczéma du bras qui gratte, plaque rouge")
    assert index.method == "TF-IDF fallback"
    assert found[0].post.id == ids["eczema"]
    late = add_request(
        db, "late", "Eczéma du bras, plaque rouge qui gratte encore", "dermatology", "routine"
    )
    assert late in [
        s.post.id for s in index.similar(ids["eczema2"], "Eczéma du bras qui gratte, plaque rouge")
    ]


# --- feeds, API, headers, admin ----------------------------------------------------------


def test_atom_feeds_parse_without_error(site):
    for name, count in (("all", 4), ("dermatology", 3), ("cardiology", 1), ("neurology", 0)):
        r = site.client.get(f"/feeds/{name}.atom")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
        feed = feedparser.parse(r.text)
        assert feed.bozo == 0, feed.get("bozo_exception")
        assert feed.version == "atom10" and len(feed.entries) == count
    feed = feedparser.parse(site.client.get("/feeds/cardiology.atom").text)
    [entry] = feed.entries
    assert entry.link == f"https://bot.example.org/cases/{site.ids['stemi']}"
    assert "sus-ST" in entry.summary and entry.title.startswith("URGENT")
    assert site.client.get("/feeds/dermato.atom").status_code == 404


def test_json_api_filters_and_pages(site):
    data = site.client.get("/api/cases?specialty=dermatology&answered=no").json()
    assert [c["id"] for c in data["cases"]] == [site.ids["eczema2"], site.ids["english"]]
    assert data["next"] is None and data["page"] == 1
    case = data["cases"][0]
    assert case["specialty"] == "dermatology" and case["created_at"] == "2026-11-27T10:00:00Z"
    assert site.client.get("/api/cases?urgency=x").status_code == 400
    one = site.client.get(f"/api/cases/{site.ids['eczema']}").json()
    assert [a["text"][:6] for a in one["answers"]] == ["Plutôt", "D'acco"]
    assert one["media"][1]["url"] is None  # javascript: dropped
    assert site.client.get("/api/cases/424242").status_code == 404


def test_every_page_sends_a_strict_csp_and_no_third_party_asset(site):
    urls = [
        "/",
        "/cases",
        f"/cases/{site.ids['eczema']}",
        f"/unsubscribe/{site.unsubscribe_token()}",
        f"/correct/{site.correction_token(site.ids['eczema'])}",
        "/feeds/all.atom",
        "/api/cases",
        "/static/style.css",
        "/nowhere",
    ]
    for url in urls:
        r = site.client.get(url)
        csp = r.headers["content-security-policy"]
        assert (
            "default-src 'none'" in csp
            and "script-src" not in csp
            and "frame-ancestors 'none'" in csp
        )
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        if r.headers["content-type"].startswith("text/html"):
            assert "<script" not in r.text and "style=" not in r.text
            assert not re.search(r'(src|href)="(https?:)?//(?!medecins|files)', r.text)
            assert '<meta name="viewport"' in r.text
    assert site.client.get("/nowhere").status_code == 404


def test_admin_page_needs_the_password_from_the_environment(site, caplog):
    with site.db.session() as s:
        s.add(
            DeliveryRow(
                subscriber_id="claire",
                post_id=site.ids["stemi"],
                channel="smtp",
                message=MessageRow(
                    subscriber_id="claire",
                    channel="smtp",
                    status="failed",
                    attempts=5,
                    due_at=T0,
                    last_error="550 mailbox unavailable",
                    created_at=T0,
                    updated_at=T0,
                ),
                created_at=T0,
            )
        )
    site.client.post(
        f"/correct/{site.correction_token(site.ids['stemi'])}", data={"kind": "not_request"}
    )
    caplog.set_level(logging.DEBUG)
    assert site.client.get("/admin").status_code == 401
    wrong = base64.b64encode(b"admin:guess").decode()
    assert site.client.get("/admin", headers={"authorization": f"Basic {wrong}"}).status_code == 401
    right = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    r = site.client.get("/admin", headers={"authorization": f"Basic {right}"})
    assert r.status_code == 200
    assert "550 mailbox unavailable" in r.text and "failed: 1" in r.text
    assert "Dr Claire Martin" in r.text  # the recent correction and who made it
    assert ADMIN_PASSWORD not in caplog.text


def test_admin_page_is_off_without_a_password(tmp_path, db, monkeypatch):
    from starlette.testclient import TestClient

    from bot.web.app import create_app
    from tests.digests.helpers import make_config

    monkeypatch.delenv("DOCTOCTOC_ADMIN_PASSWORD", raising=False)
    app = create_app(make_config(tmp_path, "[]"), db)
    r = TestClient(app).get("/admin")
    assert r.status_code == 404 and "DOCTOCTOC_ADMIN_PASSWORD" in r.text


def test_language_follows_hl_then_accept_language(site):
    assert "Cases" in site.client.get("/cases?hl=en").text
    assert (
        "<h1>#DocTocToc cases"
        in site.client.get("/cases", headers={"accept-language": "en-GB,en;q=0.8"}).text
    )
    assert "<h1>Cas #DocTocToc" in site.client.get("/cases").text


# --- storage on each backend ---------------------------------------------------------------


def test_search_and_filters_on_each_backend(any_db):
    from tests.web.conftest import build_library

    ids = build_library(any_db)
    with any_db.session() as s:
        page = store.list_cases(s, store.CaseFilters(q="plaque rouge"))
        assert [p.id for p, _ in page.cases] == [ids["eczema2"], ids["eczema"]]
        page = store.list_cases(s, store.CaseFilters(sort="urgent", per_page=2))
        assert [p.id for p, _ in page.cases] == [ids["stemi"], ids["eczema2"]] and page.has_next
        assert store.list_cases(s, store.CaseFilters(q="mélanome")).cases == []  # deleted
        walked = [
            [
                p.id
                for p, _ in store.list_cases(
                    s, store.CaseFilters(sort="urgent", per_page=1, page=n)
                ).cases
            ]
            for n in range(1, 6)
        ]  # deep pages start past the urgent and soon sections
        assert walked == [[ids["stemi"]], [ids["eczema2"]], [ids["eczema"]], [ids["english"]], []]
        assert store.claim_token(s, "correct", "tok", T0) is True
    with any_db.session() as s:
        assert store.claim_token(s, "correct", "tok", T0) is False
