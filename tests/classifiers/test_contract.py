"""The classify contract the bot relies on (classifiers/__init__.py, classifiers/types.py)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from bot.core.errors import ClassifierError
from bot.core.labels import SPECIALTIES, URGENCIES
from classifiers import detect_lang, load_classifier
from classifiers.types import Classification

POSTS = [
    "ECG en PJ, M. 58 ans douleur thoracique depuis 40 min, il est au cabinet, sus-ST en D2 D3 aVF ? #DocTocToc",
    "Congrès de médecine générale à Lyon le 12 mars, inscriptions ouvertes ! #DocTocToc",
    "Teaching question, no rush: how do you explain inhaler technique to COPD patients? #DocTocToc",
    "Nourrisson de 5 semaines, fièvre 38,7, geignard, je l'ai devant moi. PL ? #doctoctoc",
    "",
]


def test_classify_returns_one_classification_per_post_in_order(shipped):
    results = shipped.classify(POSTS, ["fr", None, "en", None, None])
    assert len(results) == len(POSTS)
    for r in results:
        assert isinstance(r, Classification)
        assert r.model_version == shipped.version and r.model_version
        assert len(r.specialties) == 3
        ids = [s["id"] for s in r.specialties]
        scores = [s["score"] for s in r.specialties]
        assert len(set(ids)) == 3 and set(ids) <= set(SPECIALTIES)
        assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
        assert 0.0 <= r.urgency_score <= 1.0
        assert isinstance(r.cues, list) and all(isinstance(c, str) and c for c in r.cues)
        assert isinstance(r.uncertain, bool)
        if r.is_request:
            assert r.specialty == r.specialties[0]["id"]
            assert r.urgency in URGENCIES
        else:
            # a non-request may be `uncertain` (it then reaches triage subscribers)
            assert r.specialty is None and r.urgency is None and r.cues == []
    ecg, congress, teaching, baby, empty = results
    assert ecg.is_request and ecg.specialty == "cardiology" and ecg.urgency == "urgent"
    assert "il est au cabinet" in ecg.cues
    assert not congress.is_request
    assert (
        teaching.is_request
        and teaching.specialty == "pulmonology"
        and teaching.urgency == "routine"
    )
    assert baby.is_request and baby.specialty == "pediatrics" and baby.urgency == "urgent"
    assert not empty.is_request and not empty.uncertain


def test_contract_line_has_exactly_the_documented_keys(shipped):
    line = shipped.classify(POSTS[:1])[0].contract("a")
    assert set(line) == {"id", "is_request", "specialty", "specialties", "urgency", "urgency_score"}


def test_lang_is_detected_when_not_given_and_kept_when_given(shipped):
    results = shipped.classify(POSTS[:3], [None, None, "de"])
    assert [r.lang for r in results] == ["fr", "fr", "de"]
    assert shipped.classify([POSTS[2]])[0].lang == "en"
    assert detect_lang("Patient in front of me, chest pain, what now? #DocTocToc") == "en"
    assert detect_lang("https://t.co/x @dr_a #DocTocToc") is None


def test_uncertain_below_is_configurable(shipped):
    clf = load_classifier(uncertain_below=1.0)
    assert clf.classify([POSTS[0]])[0].uncertain
    clf.uncertain_below = 0.0
    assert not clf.classify([POSTS[0]])[0].uncertain
    assert shipped.uncertain_below == 0.45


def test_empty_batch_and_mismatched_langs(shipped):
    assert shipped.classify([]) == []
    with pytest.raises(ValueError):
        shipped.classify(["a", "b"], ["fr"])


def test_missing_or_corrupt_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(ClassifierError, match="not found"):
        load_classifier(str(tmp_path / "nope.skops"))
    bad = tmp_path / "bad.skops"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ClassifierError, match="corrupt"):
        load_classifier(str(bad))
    empty = tmp_path / "empty.skops"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("schema.json", '{"__loader__": "ObjectNode", "__class__": "X"}')
    with pytest.raises(ClassifierError):
        load_classifier(str(empty))


def test_import_and_load_stay_light():
    """`import classifiers` and loading the model import neither scikit-learn nor skops."""
    code = (
        "import sys, classifiers\n"
        "assert 'sklearn' not in sys.modules and 'numpy' not in sys.modules\n"
        "c = classifiers.load_classifier()\n"
        "c.classify(['ECG en PJ, il est au cabinet #DocTocToc'], ['fr'])\n"
        "assert 'sklearn' not in sys.modules and 'skops' not in sys.modules and 'scipy' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
