"""Issue 10: triage red flags as patients, relatives and carers write them (`lay` wordings of
classifiers/lexicons/redflags.yaml), their harmless look-alikes, and the specialty a red-flag
case leans to."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers.features import Featurizer
from classifiers.lexicons import load_raw
from classifiers.model import adjust_specialty


@pytest.fixture(scope="module")
def fz():
    return Featurizer(load_raw())


@pytest.fixture(scope="module")
def red_case(fz):
    return lambda text: bool(fz.analyze(text).cue_counts.get("U:case&red"))


# --- red flags as patients and families write them (redflags.yaml `lay`) ------------------

PATIENT_RED_FLAGS = [
    ("My face is drooping on one side and I can't move my right arm since this morning #DocTocToc",
     "en", "face is drooping"),
    ("I can't breathe properly and my lips are turning blue #DocTocToc", "en", "can't breathe"),
    ("My stools are black like tar since yesterday and I feel faint #DocTocToc", "en",
     "stools are black"),
    ("I want to end my life, I have the pills ready #DocTocToc", "en", "end my life"),
    ("My husband passed out and is not waking up properly #DocTocToc", "en", "not waking up"),
    ("J'ai la bouche de travers et je n'arrive plus à bouger le bras droit #DocTocToc", "fr",
     "bouche de travers"),
    ("J'ai le pire mal de tête de ma vie, c'est arrivé d'un coup #DocTocToc", "fr",
     "pire mal de tête de ma vie"),
    ("Je vomis du sang #DocTocToc", "fr", "vomis du sang"),
    ("Je veux en finir, j'ai préparé les médicaments #DocTocToc", "fr", "veux en finir"),
    ("Ma fille a des petites taches rouges qui ne s'effacent pas à la vitre et beaucoup de "
     "fièvre #DocTocToc", "fr", "s'effacent pas à la vitre"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "lang", "cue"), PATIENT_RED_FLAGS)
def test_a_red_flag_in_a_patients_own_words_is_urgent_and_shown(shipped, text, lang, cue):
    [c] = shipped.classify([text], [lang])
    assert c.is_request and c.urgency == "urgent", (c.is_request, c.urgency)
    assert any(cue.lower() in shown.lower() for shown in c.cues), c.cues


def test_everyday_look_alikes_of_red_flags_are_not_red_flag_cases(shipped):
    """Near misses that share words with a lay red flag: a teething baby drools, a cold
    blocks the nose, iron blackens stools, Raynaud whitens fingers, a childhood seizure."""
    for text in (
        "Mon bébé bave beaucoup et mâchouille tout, c'est les dents je pense ? #DocTocToc",
        "My baby is drooling loads and chewing everything, teeth coming? #DocTocToc",
        "Stuffy nose with this cold, can't breathe through my nose at night #DocTocToc",
        "Je n'arrive pas à respirer par le nez depuis mon rhume #DocTocToc",
        "Mes selles sont noires depuis que je prends le fer, c'est normal ? #DocTocToc",
        "My fingers go cold and white in winter then turn red #DocTocToc",
        "Had a seizure as a kid, nothing in 15 years, can I get my driving licence? #DocTocToc",
    ):
        doc = shipped.featurizer.analyze(text)
        assert not doc.cue_counts.get("U:case&red"), (text, [c.text for c in doc.cues])


def test_a_current_red_flag_case_leans_to_the_specialty_of_its_flag(fz):
    classes = ["cardiology", "neurology", "psychiatry"]
    docs = [
        fz.analyze("Homme 62 ans, douleur thoracique depuis 1 h"),  # current case: cardiology
        fz.analyze("Douleur thoracique il y a 3 ans, bilan normal"),  # past: no lean
        fz.analyze("Je veux en finir, j'ai préparé les médicaments"),  # psychiatry
    ]
    flat = np.full((3, 3), 1 / 3)
    out = adjust_specialty(flat, docs, classes, boost=2.0)
    # one flag word: its specialty's odds times e^2
    assert out[0, 0] == pytest.approx(np.exp(2) / (np.exp(2) + 2))
    assert np.allclose(out[1], flat[1]), "a past red flag leaves the scores as they were"
    assert out[2].argmax() == 2
    assert np.allclose(out.sum(axis=1), 1.0)
    assert np.allclose(flat, 1 / 3), "the input is not modified"


def test_red_flags_told_in_regional_words_or_around_the_flag_make_a_current_case(red_case):
    for text in (  # a companion word around the flag, regional or family words
        "Mon gars de 12 ans s'est réveillé avec mal aux gosses d'un bord, c'est enflé pis il a vomi",
        "9 month old, no wet nappy for 12 hours, soft spot on his head looks sunken",
        "My wife is 35 weeks, pounding headache all day and seeing flashing lights",
        "J'ai accouché il y a 6 jours, je saigne énormément avec des gros caillots",
        "Toute la famille a mal à la tête depuis qu'on a rallumé la vieille chaudière",
        "Il a fait un malaise avec douleur thoracique ce matin",  # passé composé: today
    ):
        assert red_case(text), text
    for text in (  # a family history, a feared or prevented event, a device
        "Lp(a) élevée chez une femme de 38 ans dont le père a fait un IDM à 50 ans",
        "How to prevent heat stroke in my parents without AC?",
        "Carbon monoxide detector keeps chirping, where should it go?",
        "My dad gets a bit confused with his pill organiser",
    ):
        assert not red_case(text), text


def test_a_flag_with_lean_points_to_its_specialty_only_once_its_companion_is_there(fz):
    def organs(text):
        return {k: v for k, v in fz.analyze(text).know.items() if k.startswith("F:")}

    assert organs("Je suis enceinte de 7 mois et je saigne") == {"F:gynecology_obstetrics": 1.0}
    assert organs("My wife is 35 weeks, seeing flashing lights") == {"F:gynecology_obstetrics": 1.0}
    assert organs("Je saigne du genou") == {}, "no companion word: no pregnancy"
    no_pregnancy = organs("Je ne suis pas enceinte et je saigne beaucoup")
    assert "F:gynecology_obstetrics" not in no_pregnancy, "a negated companion does not lean"
    assert organs("Palpitations et sueurs depuis ce matin") == {}, "a flag without lean: true"


# --- rounds 4 to 7 of lay red flags (development sets D to G, December 2026) --------------

LAY_RED_CASES = [
    "My husband's been fitting for about 7 minutes now, first time ever",
    "He's going a bit blue round the mouth and won't answer me",
    "Toddler got into her gran's bag and ate some of her heart tablets, very sleepy",
    "Carer here, Mr B has swallowed his whole dosette box in one go this morning",
    "Ma fille a renversé la casserole d'eau bouillante sur elle, des cloques qui se décollent",
    "Granny hasn't pooed or passed wind in 4 days and keeps being sick",
    "Asthmatique, 10 bouffées de ventoline et je n'arrive plus à finir mes phrases",
    "Diabétique, très somnolent, son lecteur affiche HI depuis ce matin",
    "Dad's right leg is cold and pale since this afternoon and he can't wiggle his toes",
    "She can't find her words this morning and her right arm is weak",
    "My 2 year old bit into a laundry pod, foam around her mouth",
    "38 weeks, waters just broke and I can feel a cord between my legs",
    "soeur sous chimio 39 elle grelotte",
    "Il a touché un fil électrique sur le chantier, son cœur bat n'importe comment",
    "Cut my hand, 3 towels soaked through, blood keeps spurting out",
    "Ma mère a une douleur dans le dos comme un coup de poignard, d'un coup",
    "grandma says its indigestion but shes all sweaty and grey rn",
    "My dad just coughed up half a cup of bright red blood",
    "Teammate's shin bone poking through his sock, going pale",
    (
        "wife 9 days after birth filling a maternity pad in under an hour, clots bigger "
        "than a golf ball"
    ),
    "gym buddy wheezing so bad he can only say one word at a time, inhaler done nothing",
    "Mum suddenly has a painful red eye tonight with rainbow rings round the lights",
    "My 2 yr old just swallowed one of those little flat round batteries from the car key",
    "Mum has breast cancer in her bones, her legs feel weak and heavy and she can't feel the floor",
    "Husband got bitten on the ankle by a snake, leg swelling and turning purple",
    "36 weeks, pounding headache, flashing zigzags and my face and hands have blown up",
    "My 4 year old is dribbling, won't swallow, squeaky noise when she breathes in",
    "Ma mère a l'air bizarre, a parle tout croche pis son sourire est pas égal",
    "Mon frère a 39,8, il supporte pas la lumière et il peut pas baisser le menton sur la poitrine",
    "Mon gars de 2 ans a avalé deux aimants du frigo",
]


LAY_LOOK_ALIKES = [
    "Had a small heart attack moment when the nappy was red, then remembered the beetroot",
    "Can we pick wild mushrooms in the forest with the kids this weekend?",
    "Which antihistamine doesn't make you drowsy?",
    "Does my son need the meningitis jab before uni?",
    "16 weeks and I haven't felt the baby move yet, first pregnancy",
    "20 weeks pregnant and my gums bleed every time I brush",
    "Mon mari ronfle et s'arrête de respirer quelques secondes la nuit",
    "J'ai mal à la poitrine quand j'appuie sur une côte depuis le déménagement",
    "Quand je bois trois cafés mon cœur s'emballe, jamais de malaise",
    "On m'a donné du fer pour mon anémie et mes selles sont noires",
    "Splashed a bit of hot oil on my wrist, small red patch, no blister",
    "Where's the safest place to keep laundry pods with a crawling baby?",
    "Comment ranger les capsules de lessive avec un bébé qui ouvre tout ?",
    "why do i keep getting small electric shocks from my car door",
    "took pepto bismol for an upset stomach and now my poop is black",
    "my mate's chest hurts but only when he presses on his ribs, after bench press",
    "Every month on day 1 and 2 I'm soaking through a night pad, since I was a teen",
    "4yo with a blotchy rash, I did the glass test and it fades completely",
    "Since his stroke 3 yrs ago grandad's speech goes a bit slurry when he's tired",
]


@pytest.mark.parametrize("text", LAY_RED_CASES)
def test_later_rounds_of_lay_wordings_make_a_current_red_flag_case(red_case, text):
    """Carers, relatives, friends and regional or texting wordings of sets D to G."""
    assert red_case(text)


@pytest.mark.parametrize("text", LAY_LOOK_ALIKES)
def test_their_look_alikes_are_not_red_flag_cases(red_case, text):
    """A jab, a rash that fades under a glass, heavy periods, static shocks, bismuth, an old
    stroke, chest pain only when pressed: the words of a red flag, not the case."""
    assert not red_case(text)


# --- a fever under 3 months, whatever words give the age (features._infant_fever) -----------

INFANT_FEVERS = [
    "Mon bébé a 6 semaines, il a 38,4 dans les fesses ce soir #DocTocToc",
    "notre fils a 7 semaines, il a 38,5 depuis ce soir et il gémit #DocTocToc",
    "bb de 6 semaines, 38,7 en rectal ce soir #DocTocToc",
    "Baby is 9 weeks old, temp 38.5 under the arm, doesn't want to nurse #DocTocToc",
    "bebe 2 mois chaud 38,6 ce matin dort beaucoup #DocTocToc",
    "My son is 7 weeks, temperature 38.2 tonight #DocTocToc",
]
NOT_INFANT_FEVERS = [
    "Our 4 month old had her jabs and now has a temp of 38, feeding fine #DocTocToc",
    "My 8 month old has a little temp of 37.8 after his jabs #DocTocToc",
    "My 6 week old has a temp of 37.6, is that ok? #DocTocToc",
    "Enceinte de 6 semaines, 38,2 de fièvre depuis hier #DocTocToc",
    "The baby is 2 weeks overdue and I've got a temp of 38.2 #DocTocToc",
]


@pytest.mark.parametrize("text", INFANT_FEVERS)
def test_a_fever_under_three_months_is_a_red_flag_however_the_age_is_written(fz, red_case, text):
    assert red_case(text)
    assert fz.analyze(text).know.get("F:pediatrics")  # leans to pediatrics like the flag


@pytest.mark.parametrize("text", NOT_INFANT_FEVERS)
def test_an_older_baby_or_a_normal_temperature_is_not_the_infant_fever_flag(red_case, text):
    assert not red_case(text)
