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


def test_a_term_with_a_gap_matches_its_parts_in_order_within_three_words():
    from classifiers.lexicons import PhraseMatcher

    m = PhraseMatcher()
    m.add("selles ... noir*", "C:red_flag")
    m.add("throat ... closing up", "C:red_flag")
    m.freeze()

    def spans(text, crosses=None):
        return m.find_spans(tokenize(fold(text)), crosses)

    assert spans("mes selles sont noires") == [("C:red_flag", 1, 4)]
    assert spans("selles molles et très noires") == [("C:red_flag", 0, 5)]
    assert spans("my throat is closing up") == [("C:red_flag", 1, 5)]
    assert spans("selles a b c d noires") == [], "four words between the parts"
    assert spans("noires les selles") == [], "the parts keep their order"
    assert spans("my throat is closing") == [], "every word of a part is needed"
    # the caller says where clauses end: no match across a break
    assert spans("selles normales, urines noires", lambda a, b: True) == []
    with pytest.raises(ValueError, match="needs a word"):
        m.add("selles ... , ... noir*", "C:red_flag")  # a part without a word: a typo


def test_a_gapped_red_flag_stays_in_its_clause_and_shows_the_patients_words(featurizer):
    found = cues(featurizer, "Depuis hier mes selles sont noires et je me sens faible")
    assert "selles sont noires" in CueSummary(found).shown("urgent")
    assert (
        featurizer.analyze("Selles normales, urines très noires").cue_counts.get("U:case&red")
        is None
    )


def test_a_past_event_next_to_a_red_flag_leaves_the_rest_of_the_case_current(featurizer):
    def red_case(text):
        return bool(featurizer.analyze(text).cue_counts.get("U:case&red"))

    # the history names another disease, the red flag is today's
    assert red_case("Homme 62 ans, ATCD de diabète, douleur thoracique depuis 1 h")
    assert red_case("Patient with history of diabetes, chest pain since 1 hour")
    assert red_case("Femme 70 ans, antécédent d'AVC il y a 3 ans, ce matin hémiparésie droite")
    # the red flag itself is the past event
    assert not red_case("Patiente avec ATCD d'AVC, quelle statine ?")
    assert not red_case("Patient with history of stroke, which statin?")
    assert not red_case("Douleur thoracique il y a 3 ans, bilan normal, je refais quoi ?")
    assert not red_case("Had a seizure as a kid, nothing in 15 years, can I drive?")
    # a denied history is not a past event
    assert red_case("Pas d'antécédent d'AVC, hémiparésie droite depuis 1 h")
    found = cues(
        featurizer, "Femme 70 ans, antécédent d'AVC il y a 3 ans, ce matin hémiparésie droite"
    )
    shown = CueSummary(found).shown("urgent")
    assert "hémiparésie droite" in shown and "AVC" not in shown, shown


def test_iron_turns_black_stools_into_a_known_cause_unless_denied(featurizer):
    def red_case(text):
        return bool(featurizer.analyze(text).cue_counts.get("U:case&red"))

    assert not red_case("Mes selles sont noires depuis que je prends le fer, c'est normal ?")
    assert not red_case("My poop has been black since I started the iron tablets")
    assert red_case("Black sticky poop like tar since this morning, I'm not on any iron pills")


def test_a_vital_read_off_a_device_counts(featurizer):
    got = kinds(cues(featurizer, "Grandad's pulse on his watch says 32 and he keeps fainting"))
    assert ("vital", "pulse on his watch says 32", False, True) in got
    got = kinds(cues(featurizer, "Sa saturation affiche 84 sur l'oxymètre"))
    assert ("vital", "saturation affiche 84", False, True) in got


def test_an_english_verb_negated_with_nt_cancels_the_red_flag_after_it(featurizer):
    for text in ("Which antihistamine doesn't make you drowsy?", "one that doesnt make you drowsy"):
        assert {c.text for c in cues(featurizer, text) if c.negated} == {"drowsy"}, text
    # a wording that starts with the negated verb is the red flag itself
    found = cues(featurizer, "My mum doesn't know where she is since lunch")
    assert any(c.kind == "red_flag" and not c.negated for c in found)
