"""Normalisation, abbreviation expansion, lexicons and features."""

from __future__ import annotations

from bot.core.labels import SPECIALTIES
from classifiers.features import Featurizer
from classifiers.lexicons import compile_lexicons, load_raw
from classifiers.text import fold, fold_with_offsets, prepare


def test_fold_removes_case_accents_and_ligatures():
    assert fold("Œdème du CŒUR, fièvre à 39°, ÉCG") == "oedeme du coeur, fievre a 39°, ecg"
    folded, offsets = fold_with_offsets("Œil rouge")
    assert folded == "oeil rouge" and offsets[:3] == [0, 0, 1]


def test_prepare_handles_urls_mentions_hashtags_and_abbreviations():
    lex = compile_lexicons(load_raw())
    prep = prepare(
        "@dr_x #DocTocTocPedia FA rapide, HTA, voir https://t.co/abc #FOAMed 📷",
        lex.cased_abbrev, lex.folded_abbrev, lex.emoji, lex.abbrev_keys,
    )  # fmt: skip
    assert prep.tokens == ["pedia", "fa", "rapide", "hta", "voir", "foamed"]
    assert (prep.n_mentions, prep.n_urls, prep.n_hashtags, prep.starts_with_mention) == (
        1,
        1,
        1,
        True,
    )
    expanded = [" ".join(e) for e in prep.expansions]
    assert any("fibrillation atriale" in e for e in expanded)
    assert any("hypertension" in e for e in expanded)
    assert prep.extra == ["photo"]
    lower = prepare(
        "la fa de sa soeur", lex.cased_abbrev, lex.folded_abbrev, lex.emoji, lex.abbrev_keys
    )
    assert lower.expansions == [], (
        "case-sensitive abbreviations (FA, SA) do not fire on lower-case words"
    )


def test_lexicons_cover_every_specialty_in_both_languages():
    raw = load_raw()
    assert set(raw["specialties"]) == set(SPECIALTIES)
    for spec, sections in raw["specialties"].items():
        terms = [t for v in sections.values() for t in v]
        assert len(terms) >= 100, spec
        assert all(isinstance(t, str) and t.strip() for t in terms), spec
    featurizer = Featurizer(raw)
    fr = featurizer.analyze("Éruption prurigineuse du cuir chevelu, photo jointe").know
    en = featurizer.analyze("Itchy rash on the scalp, photo attached").know
    assert fr.get("L:dermatology", 0) >= 2 and en.get("L:dermatology", 0) >= 2
    assert fr.get("X:picture&skin") == en.get("X:picture&skin") == 1.0


def test_features_mark_age_drug_questions_and_requests():
    f = Featurizer(load_raw())
    know = f.analyze(
        "Posologie de l'amoxicilline chez un enfant de 4 ans allergique ? #DocTocToc"
    ).know
    assert know["A:child"] == 1.0 and know.get("G:drug_question") and know.get("X:drugq&drug")
    assert know["S:q"] == 1.0
    reply = f.analyze("@dr_b merci, bien vu ! #DocTocToc").know
    assert reply.get("S:reply") == 1.0 and reply.get("R:not")


def test_a_phrase_ending_in_a_star_matches_the_phrase_and_its_plurals():
    from classifiers.lexicons import PhraseMatcher, singular
    from classifiers.text import tokenize

    matcher = PhraseMatcher()
    matcher.add("beta blocker*", "cardiology")
    matcher.add("acouphène*", "ent")
    matcher.freeze()

    def labels(text: str) -> list[str]:
        return matcher.labels([singular(t) for t in tokenize(fold(text))])

    assert labels("on two beta blockers already") == ["cardiology"]
    assert labels("a beta-blocker?") == ["cardiology"]
    assert labels("acouphènes bilatéraux") == ["ent"]  # single-word stems still work
    assert labels("beta agonist") == []


def test_contractions_typed_without_apostrophe_split_like_the_apostrophe_would():
    def words(text):
        return prepare(text, {}, {}).tokens

    assert words("I cant breathe") == words("I can't breathe") == ["i", "can", "t", "breathe"]
    assert words("jarrive plus à respirer") == words("j'arrive plus à respirer")
    assert words("he isnt breathing") == words("he isn't breathing")
    # words of their own stay whole: "its", "ill", IM (intramuscular), French "quelle"
    assert words("its ill, adrénaline IM, quelle dose") == [
        "its", "ill", "adrenaline", "im", "quelle", "dose",
    ]  # fmt: skip
    prep = prepare("Mon fils narrive plus à respirer", {}, {})
    i = prep.tokens.index("arrive")
    assert prep.original(prep.start(i - 1), prep.end(i)) == "narrive", (
        "cue text keeps the post's words"
    )
