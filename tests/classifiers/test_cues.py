"""Urgency cues in French and English, negations included, shown with the post's own words."""

from __future__ import annotations

import pytest

from classifiers.cues import CueSummary
from classifiers.features import Featurizer, age_years
from classifiers.lexicons import load_raw
from classifiers.text import fold, tokenize


@pytest.fixture(scope="module")
def featurizer():
    return Featurizer(load_raw())


def cues(featurizer, text):
    return featurizer.analyze(text).cues


def kinds(found):
    return {(c.kind, c.text, c.negated, c.abnormal) for c in found}


def test_french_presence_vitals_and_deadline(featurizer):
    found = cues(
        featurizer,
        "Interne aux urgences, ECG : QRS à 160ms, FC 110, TA 85/50. il est au cabinet, réponse rapide svp",
    )
    got = kinds(found)
    assert ("now", "il est au cabinet", False, False) in got
    assert ("vital", "FC 110", False, False) in got
    assert ("vital", "TA 85/50", False, True) in got
    assert ("deadline", "réponse rapide", False, False) in got
    shown = CueSummary(found).shown("urgent")
    assert "FC 110" in shown and "il est au cabinet" in shown


def test_english_presence_and_abnormal_vitals(featurizer):
    got = kinds(
        cues(
            featurizer, "Patient in front of me right now: HR 210, SpO2 86% on room air, temp 40.1"
        )
    )
    assert ("now", "in front of me", False, False) in got
    assert ("now", "right now", False, False) in got
    assert ("vital", "HR 210", False, True) in got
    assert ("vital", "SpO2 86", False, True) in got
    assert ("vital", "temp 40.1", False, True) in got


def test_negated_urgency_french_and_english(featurizer):
    fr = cues(
        featurizer, "Question pour ma culture, pas urgent du tout : la goutte chez la femme ?"
    )
    en = cues(featurizer, "No rush, not urgent at all: gout in women?")
    assert ("not_urgent", "pas urgent", False, False) in kinds(fr)
    assert all(c.kind != "deadline" for c in fr), "'urgent' inside 'pas urgent' is not a deadline"
    assert {c.text for c in en if c.kind == "not_urgent"} == {"No rush", "not urgent"}
    counts = CueSummary(fr).counts()
    assert counts["U:not_urgent"] == 1 and counts["U:calm"] == 1
    assert CueSummary(fr).shown("routine") == ["pour ma culture", "pas urgent"]


def test_negated_red_flags_do_not_count(featurizer):
    fr = cues(
        featurizer,
        "céphalées, pas de déficit, pas de raideur de nuque. Et une douleur thoracique ce matin",
    )
    en = cues(featurizer, "no chest pain, no syncope; but sudden aphasia")
    neg_fr = {c.text for c in fr if c.negated}
    assert neg_fr == {"déficit", "raideur de nuque"}
    assert any(c.text == "douleur thoracique" and not c.negated for c in fr), (
        "a comma ends the negation"
    )
    assert {c.text for c in en if c.negated} == {"chest pain", "syncope"}
    assert any(c.text == "aphasia" and not c.negated for c in en)
    counts = CueSummary(fr).counts()
    # triage red flags (redflags.yaml) and severity words (urgency.yaml) count apart
    assert counts["U:red_neg"] == 1 and counts["U:red_flag"] == 1
    assert counts["U:sev_neg"] == 2 and counts["U:severity"] == 1
    assert counts["U:case&red"] == 1, "a current case ('ce matin') with a red flag"
    assert "déficit" not in CueSummary(fr).shown("urgent")


def test_cue_text_keeps_accents_and_ligatures(featurizer):
    found = cues(featurizer, "Œdème des lèvres qui s'étend, elle est devant moi")
    texts = {c.text for c in found}
    assert "Œdème des lèvres" in texts and "elle est devant moi" in texts


def test_ages_are_read_and_durations_skipped():
    def age(text):
        return age_years(tokenize(fold(text)))

    assert age("M. 58 ans douleur thoracique depuis 3 ans") == 58
    assert age("pt 62a, TA 230/130") == 62
    assert age("34yo, palpitations") == 34
    assert age("68M with chest pain") == 68
    assert age("depuis 2 ans, une femme de 40 ans") == 40
    assert age("9 years of alendronate") is None
    assert round(age("nourrisson de 8 mois"), 3) == round(8 / 12, 3)
    assert age("6-week-old, feeding well") < 0.2
    assert age("il y a 6 mois") is None


def test_help_and_quick_are_not_deadlines_but_sos_and_asap_are(featurizer):
    for text in (
        "Red itchy rash for months, creams from the pharmacy do not help",
        "Quick question about statins in the elderly",
        "Can you help me read this ECG?",
    ):
        assert not [c for c in cues(featurizer, text) if c.kind == "deadline"], text
    for text, word in (("SOS, bébé 2 mois fébrile", "SOS"), ("Need an answer asap", "asap")):
        assert ("deadline", word) in {(c.kind, c.text) for c in cues(featurizer, text)}
