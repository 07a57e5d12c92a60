"""Issue 10: requests without a question, triage red flags, extra training data, several
evaluation sets."""

from __future__ import annotations

import json

import pytest

from bot.core.errors import InputError
from classifiers.augment import questionless_variants, without_question
from classifiers.corpus import Example, load_extra, read_knowledge


def test_question_sentences_are_dropped_and_the_presentation_kept():
    text = (
        "#DocTocToc ECG en PJ, M. 58 ans douleur thoracique depuis 40 min, il est au cabinet. "
        "sus-ST en D2 D3 aVF ou je me fais des films ? j'appelle le 15 direct ?"
    )
    out = without_question(text)
    assert (
        out
        == "#DocTocToc ECG en PJ, M. 58 ans douleur thoracique depuis 40 min, il est au cabinet."
    )
    assert "?" not in out


def test_a_post_that_is_only_a_question_loses_its_question_marks_and_keeps_its_hashtags():
    text = "Dose d'amoxicilline chez un enfant de 14 kg pour une otite ?? #DocTocToc"
    assert (
        without_question(text)
        == "Dose d'amoxicilline chez un enfant de 14 kg pour une otite #DocTocToc"
    )
    assert without_question("Un avis ?") is None  # nothing clinical left
    assert without_question("Homme 62 ans, oppression thoracique. #DocTocToc") is None


def test_variants_are_requests_only_and_weighted():
    train = [
        Example("a", "Femme 30 ans, éruption prurigineuse du tronc. Une idée ?", True,
                "dermatology", "soon", lang="fr"),
        Example("b", "Congrès de dermato à Lyon, inscrivez-vous ! Qui vient ?", False, None, None),
    ]  # fmt: skip
    [v] = questionless_variants(train, 0.5)
    assert v.text == "Femme 30 ans, éruption prurigineuse du tronc."
    assert (v.is_request, v.specialty, v.weight, v.source) == (
        True,
        "dermatology",
        0.5,
        "augmented",
    )


def test_knowledge_and_real_training_files_are_read_and_eval_sets_never(tmp_path):
    (tmp_path / "knowledge").mkdir()
    (tmp_path / "knowledge" / "icd.tsv").write_text(
        "code\tlang\tspecialty\ttext\nI21\ten\tcardiology\tAcute myocardial infarction\n"
        "# a comment\nH25\ten\tophthalmology\tSenile cataract\n",
        encoding="utf-8",
    )
    (tmp_path / "real").mkdir()
    row = {"id": "q1", "text": "My knee hurts when I climb stairs", "lang": "en",
           "is_request": True, "specialty": "orthopedics_trauma", "alt_specialties": [],
           "urgency": "routine"}  # fmt: skip
    (tmp_path / "real" / "qa.train.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "held.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    extra = load_extra(tmp_path)
    assert [(e.source, e.specialty, e.text) for e in extra] == [
        ("knowledge", "cardiology", "Acute myocardial infarction"),
        ("knowledge", "ophthalmology", "Senile cataract"),
        ("real:request+specialty", "orthopedics_trauma", "My knee hurts when I climb stairs"),
    ]


def test_a_bad_knowledge_line_names_its_file_and_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("I21\ten\tcardio\tAcute myocardial infarction\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.tsv:1: 'cardio' is not one of the 20 ids"):
        read_knowledge(path)


def _featurizer_with(flags, current=(), past=()):
    from classifiers.features import Featurizer
    from classifiers.lexicons import load_raw

    raw = load_raw()
    raw["redflags"] = {"flags": flags, "current_case": list(current), "not_current": list(past)}
    raw["urgency"] = {**raw["urgency"], "severity": []}  # only the flags under test
    return Featurizer(raw)


def test_a_red_flag_in_a_current_case_marks_it_and_past_or_negated_ones_do_not():
    fz = _featurizer_with(
        [
            {
                "id": "chest_pain",
                "level": 2,
                "source": "test",
                "fr": ["douleur thoracique"],
                "en": ["chest pain"],
            }
        ],  # fmt: skip
        past=["il y a 3 ans", "quiz"],
    )
    assert fz.analyze("Homme 62 ans, douleur thoracique depuis 1 h").cue_counts.get("U:case&red")
    assert fz.analyze("Patient with chest pain, what do you think?").cue_counts.get("U:case&red")
    for text in (
        "Douleur thoracique il y a 3 ans, bilan normal, je refais quoi ?",
        "Quiz du jour : ECG d'un homme avec douleur thoracique",
        "Homme 62 ans, pas de douleur thoracique, fatigue",
    ):
        assert not fz.analyze(text).cue_counts.get("U:case&red"), text


def test_a_flag_that_needs_a_companion_word_counts_only_with_it():
    fz = _featurizer_with(
        [
            {
                "id": "pregnancy_bleeding",
                "level": 2,
                "source": "test",
                "fr": ["saignement"],
                "en": ["bleeding"],
                "needs": ["enceinte", "pregnant"],
            }
        ],  # fmt: skip
    )
    assert fz.analyze("Femme enceinte de 30 ans, saignement abondant").cue_counts.get("U:case&red")
    assert not fz.analyze("Saignement de nez chez un homme de 30 ans").cue_counts.get("U:red_flag")


def test_each_real_file_teaches_only_the_heads_named_for_it(tmp_path):
    from classifiers.corpus import teaches

    (tmp_path / "real").mkdir()
    row = {"id": "v1", "text": "Patient with chest pain, what do you think?", "lang": "en",
           "is_request": True, "specialty": "cardiology", "alt_specialties": [],
           "urgency": "urgent"}  # fmt: skip
    (tmp_path / "real" / "ed.train.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    (tmp_path / "real" / "heads.yaml").write_text("ed: [request, urgency]\n", encoding="utf-8")
    [e] = load_extra(tmp_path)
    assert [h for h in ("request", "specialty", "urgency") if teaches(e, h)] == [
        "request",
        "urgency",
    ]
    (tmp_path / "real" / "heads.yaml").write_text("ed: [colour]\n", encoding="utf-8")
    with pytest.raises(InputError, match="heads.yaml: ed"):
        load_extra(tmp_path)


def test_a_real_file_can_teach_each_head_at_its_own_weight(tmp_path):
    from classifiers.corpus import teaches, weight_copy

    (tmp_path / "real").mkdir()
    row = {"id": "v1", "text": "Patient with toothache, what do you think?", "lang": "en",
           "is_request": True, "specialty": "ent", "alt_specialties": [], "urgency": "soon"}  # fmt: skip
    (tmp_path / "real" / "ed.train.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    heads = "ed: {request: 1.0, urgency: 1.0, specialty: 0.3}\n"
    (tmp_path / "real" / "heads.yaml").write_text(heads, encoding="utf-8")
    full, light = load_extra(tmp_path)
    assert [h for h in ("request", "specialty", "urgency") if teaches(full, h)] == [
        "request",
        "urgency",
    ]
    assert [h for h in ("request", "specialty", "urgency") if teaches(light, h)] == ["specialty"]
    assert (full.weight, light.weight) == (1.0, 0.3)
    assert full.id != light.id and full.text == light.text
    # The vectorizer's vocabulary and IDF count the text once: the second copy is left out.
    assert not weight_copy(full) and weight_copy(light)
    for bad in ("ed: {specialty: 0}\n", "ed: {specialty: yes}\n", "ed: {colour: 1}\n"):
        (tmp_path / "real" / "heads.yaml").write_text(bad, encoding="utf-8")
        with pytest.raises(InputError, match="heads.yaml: ed"):
            load_extra(tmp_path)


# --- the shipped model on the posts that issue 10 found dropped or under-triaged ----------

RED_FLAG_CASES = [
    ("#DocTocToc enfant 4 ans, stridor, bave, fièvre 39,5, assis penché en avant", "stridor"),
    ("Homme 62 ans, oppression thoracique depuis 1 h, sueurs. ECG en PJ #DocTocToc",
     "oppression thoracique"),
    ("Patient with right hemiparesis, what do you think? #DocTocToc", "right hemiparesis"),
    ("Femme 28 ans, 8 SA, métrorragies abondantes et douleur FID #DocTocToc", "métrorragies"),
    ("Pt 70 yo, melena since this morning, BP 95/60 #DocTocToc", "melena"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "cue"), RED_FLAG_CASES)
def test_a_current_red_flag_case_without_a_question_is_an_urgent_request(shipped, text, cue):
    [c] = shipped.classify([text])
    assert c.is_request, "a case presented under the hashtag is a request, question or not"
    assert c.urgency == "urgent"
    assert any(cue.lower() in shown.lower() for shown in c.cues), c.cues  # shown in digests


def test_red_flag_words_outside_a_current_case_do_not_make_it_urgent(shipped):
    quiz, past, congress = shipped.classify(
        [
            "Cas du jour pour les externes 🫀 ECG ci-dessous, homme 55 ans douleur thoracique. "
            "Réponse et explications demain à 18h ! #DocTocToc",
            "Pour ma culture : une patiente avait fait un AVC il y a 3 ans, on reprend la pilule ? "
            "#DocTocToc",
            "Congrès de la SFMU à Paris : douleur thoracique et AVC, inscrivez-vous ! #DocTocToc",
        ]
    )
    assert quiz.urgency != "urgent" and past.urgency != "urgent"
    assert not congress.is_request


def test_an_ordinary_complaint_is_not_flagged_urgent(shipped):
    results = shipped.classify(
        [f"Patient with {c}, what do you think? #DocTocToc" for c in ("abd pain", "dizziness")]
    )
    assert all(r.urgency != "urgent" for r in results), [r.urgency for r in results]
    assert all(r.is_request for r in results)


def test_a_procedure_report_gets_its_specialty_from_curated_vocabulary(shipped):
    [c] = shipped.classify(["Left heart cath, selective coronary angiography, LV gram"], ["en"])
    assert c.specialties[0]["id"] == "cardiology"


# --- patients' own words (lay vocabulary) and a patient's voice ----------------------------

LAY_CASES = [
    # a drug named by what it treats: a side effect is a drug question (TAXONOMY)
    ("Is it ok to take my iron tablets with my tea in the morning? #DocTocToc", "en",
     "pharmacology"),
    # a pregnancy told by its week, a mother after the birth: the baby is not the patient
    ("36 weeks with my second and the baby hasn't moved since this morning #DocTocToc", "en",
     "gynecology_obstetrics"),
    ("J'ai accouché il y a 8 jours et je saigne beaucoup depuis ce matin, avec des caillots "
     "#DocTocToc", "fr", "gynecology_obstetrics"),
    ("Depuis quelques jours j'ai des brûlures en urinant et du sang dans les urines #DocTocToc",
     "fr", "nephrology_urology"),
    ("I have been feeling very down for months, I do not enjoy anything and I sleep badly. "
     "I do not know who to talk to. #DocTocToc", "en", "psychiatry"),
    ("For 3 weeks I have had a tummy ache after meals, bloated and gassy #DocTocToc", "en",
     "gastroenterology"),
    ("My husband snores very loudly and stops breathing at night, he is always sleepy during "
     "the day #DocTocToc", "en", "pulmonology"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "lang", "specialty"), LAY_CASES)
def test_a_patient_in_everyday_words_reaches_the_right_specialty(shipped, text, lang, specialty):
    [c] = shipped.classify([text], [lang])
    assert c.is_request
    assert c.specialty == specialty, c.specialties


def test_lay_words_count_as_their_specialty_and_a_phrase_as_one_specific_term():
    from classifiers.features import Featurizer
    from classifiers.lexicons import load_raw

    fz = Featurizer(load_raw())
    know = fz.analyze("j'ai des brûlures en urinant").know
    assert know.get("P:nephrology_urology") == 1.0  # the phrase, not only "brûlure"
    assert fz.analyze("I keep getting heartburn and acid reflux").know.get("L:gastroenterology")
    assert fz.analyze("my eyes are red and sticky").know.get("L:ophthalmology")


def test_a_patients_first_person_voice_does_not_change_the_scores(shipped):
    """`I` and `my` are not word features: a patient's wording is read like a clinician's
    (the model shipped before this change called 40% of patients' sentences urgent)."""
    from dataclasses import replace

    text = "I think my rash is worse since I started the cream, my skin burns #DocTocToc"
    [doc] = shipped.analyze([text])
    assert {"i", "my"} <= set(doc.text)
    without = replace(doc, text=[w for w in doc.text if w not in {"i", "my"}])
    assert (shipped.scores([doc]) == shipped.scores([without])).all()
    assert not set(shipped.state.vocabulary) & {"i", "my", "me", "je", "j", "mon", "ma", "mes"}


def test_stop_words_are_left_out_of_the_vocabulary():
    from classifiers.features import DocFeatures, fit_vocabulary

    docs = [DocFeatures(text=["my", "knee", "hurts"]), DocFeatures(text=["my", "knee"])]
    vocab, _, n_text = fit_vocabulary(docs, 2, frozenset({"my"}))
    assert n_text == 1 and "knee" in vocab and "my" not in vocab
    vocab, _, n_text = fit_vocabulary(docs, 2)
    assert n_text == 2 and "my" in vocab


def test_the_symptom2disease_development_file_maps_diseases_and_skips_allergy(tmp_path):
    import importlib.util
    from pathlib import Path

    from classifiers.corpus import read_jsonl

    path = Path(__file__).resolve().parents[2] / "classifiers" / "data" / "tools" / "dev_sets.py"
    spec = importlib.util.spec_from_file_location("dev_sets", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    src = tmp_path / "s2d.csv"
    src.write_text(
        'index,label,text\n0,Migraine,"My head pounds, light hurts my eyes."\n'
        '1,allergy,I sneeze around cats.\n2,Migraine,"My head pounds, light hurts my eyes."\n'
        "3,diabetes,I am thirsty all the time.\n",
        encoding="utf-8",
    )
    assert tool.symptom2disease(src, tmp_path / "out.jsonl") == 2
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [(e.specialty, e.is_request) for e in rows] == [
        ("neurology", True),
        ("endocrinology", True),
    ]


def test_everyday_words_are_not_read_as_announcement_cues_but_announcements_still_are():
    from classifiers.features import Featurizer
    from classifiers.lexicons import load_raw

    fz = Featurizer(load_raw())
    for text in (  # words that fold to a French cue, or that clinical speech uses
        "Of course she has a fever, alert and oriented, these pills are new, sleep study done",
        "J'ai du mal à respirer dans la journée, au cours de l'effort",
        "Perte de mémoire depuis un épisode de confusion, rupture du tendon d'Achille, PSA à 12",
        "Pose de DIU, annonce diagnostique demain, any advice welcome, is she out of breath",
    ):
        assert not fz.analyze(text).know.get("R:not"), text
    for text in (
        "La HAS publie ses nouvelles recommandations sur l'HTA",
        "Ma thèse porte sur le dépistage, petit questionnaire pour les MG",
        "New NICE guidelines are out, link in bio",
        "Nouvel épisode du podcast en ligne !",
    ):
        assert fz.analyze(text).know.get("R:not"), text


def test_a_patients_narrative_with_everyday_words_is_a_request(shipped):
    results = shipped.classify(
        [
            "The rash on my arm has spread and these red spots itch a lot, it has been like "
            "this for a week #DocTocToc",
            "My son has a swollen knee since football, of course he still wants to play, it has "
            "not gone down #DocTocToc",
        ],
        ["en", "en"],
    )
    assert all(c.is_request for c in results)
