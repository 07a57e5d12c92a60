"""Lexicon words that are another word in everyday text: a French term in an English post
("main", "dents"), an acronym that spells a word ("ten", "aids", "pop"), a French verb form
("qu'il ait", "il aura", "je vis"), a plural folded onto another word ("waters" -> "water"),
and English plurals the folding used to miss ("rashes", "babies")."""

from __future__ import annotations

import pytest

from classifiers.features import Featurizer
from classifiers.lexicons import load_raw, singular


@pytest.fixture(scope="module")
def specialties_of():
    fz = Featurizer(load_raw())
    return lambda text: {k[2:] for k in fz.analyze(text).know if k.startswith("L:")}


def test_english_plurals_and_y_words_meet_their_singular_and_the_french_form():
    assert singular("rashes") == singular("rash")
    assert singular("patches") != singular("patch")  # skin patches are not a nicotine patch
    assert singular("stitches") == singular("stitch")
    assert singular("babies") == singular("baby")
    assert singular("allergy") == singular("allergies") == singular("allergie")
    assert singular("many") != singular("manie")  # "many" is not mania
    assert singular("pathologies") == singular("pathologie")  # French plurals unchanged
    assert singular("hanches") == singular("hanche")


EVERYDAY_WORDS = [
    # (post, specialty its everyday word used to point to)
    ("Faut-il qu'il ait un scanner avant de partir ? #DocTocToc", "neurology"),
    ("Il aura 70 ans demain, on vérifie quoi au bilan ? #DocTocToc", "neurology"),
    ("The main problem is that she can't sleep #DocTocToc", "orthopedics_trauma"),
    ("Je vis seule depuis le décès de mon mari #DocTocToc", "orthopedics_trauma"),
    ("Attitudes des soignants vis-à-vis de la vaccination #DocTocToc", "orthopedics_trauma"),
    ("My dad got new hearing aids last week #DocTocToc", "infectious_disease"),
    ("Should I cut out red meat completely? #DocTocToc", "nephrology_urology"),
    ("I'm drinking more water than usual lately #DocTocToc", "gynecology_obstetrics"),
    ("She has had ten days of this, any hints? #DocTocToc", "dermatology"),
    ("Any hints for a good night's sleep? #DocTocToc", "neurology"),
    ("Il manque la créatinine sur le bilan #DocTocToc", "psychiatry"),
    ("Heard a pop in my knee at football #DocTocToc", "gynecology_obstetrics"),
    ("My mum (83) keeps forgetting where she put her keys #DocTocToc", "pediatrics"),
    ("Malaise associé à une dyspnée #DocTocToc", "general_practice"),
    ("Réduction de dose de l'apixaban chez l'insuffisant rénal ? #DocTocToc", "orthopedics_trauma"),
    ("Quelles gouttes pour une otite externe ? #DocTocToc", "rheumatology"),
    ("Blocked nose and sinus congestion for a week #DocTocToc", "cardiology"),
    ("Stomach cramps after every meal #DocTocToc", "neurology"),
]


@pytest.mark.parametrize(("text", "wrong"), EVERYDAY_WORDS)
def test_an_everyday_word_is_not_a_specialty_term(specialties_of, text, wrong):
    assert wrong not in specialties_of(text)


STILL_TERMS = [
    ("AIT il y a 2 mois, bithérapie combien de temps ? #DocTocToc", "neurology"),
    ("Suspected TEN after lamotrigine, skin peeling off #DocTocToc", "dermatology"),
    ("Patient asking about PrEP after a condom broke #DocTocToc", "infectious_disease"),
    ("Her waters broke at 34 weeks #DocTocToc", "gynecology_obstetrics"),
    ("Plaie de la main droite par scie circulaire #DocTocToc", "orthopedics_trauma"),
    ("I think I have piles, it bleeds when I wipe #DocTocToc", "gastroenterology"),
    ("Rashes on both arms for a week #DocTocToc", "dermatology"),
    ("Goutte du gros orteil, colchicine ? #DocTocToc", "rheumatology"),
    ("Crampes nocturnes dans les mollets #DocTocToc", "neurology"),
    ("He had a fit at school this morning #DocTocToc", "neurology"),
    ("Capteur FreeStyle Libre qui décroche #DocTocToc", "endocrinology"),
]


@pytest.mark.parametrize(("text", "specialty"), STILL_TERMS)
def test_the_medical_sense_still_counts(specialties_of, text, specialty):
    assert specialty in specialties_of(text)
