"""Corrections are stored, listed, and change the next model's prediction on the post."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from bot.cli.classifier import correct_cmd, corrections_cmd
from bot.storage import corrections as stored
from bot.storage.models import ClassificationRow, PostRow
from classifiers.corrections import CorrectionError, training_examples, validate
from classifiers.train import train

from .conftest import small_corpus

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
TEXT = "Plaque rouge qui gratte sur le coude depuis 2 semaines, photo jointe, vous en pensez quoi ? #DocTocToc"


def add_post(db, text: str = TEXT, native: str = "111", **kw) -> int:
    with db.session() as session:
        row = PostRow(
            network="mastodon", key=f"mastodon:{native}", native_id=native, text=text, lang="fr",
            created_at=T0, collected_at=T0, **kw,
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def add_correction(db, ref: str, *, is_request=None, specialty=None, urgency=None, **kw):
    """As `doctoctoc correct` and the web page do: labels checked, then recorded."""
    is_request = validate(is_request, specialty, urgency)
    with db.session() as session:
        return stored.add_correction(
            session, ref, is_request=is_request, specialty=specialty, urgency=urgency, **kw
        )


def list_corrections(db):
    with db.session() as session:
        return stored.list_corrections(session)


def examples_from(db):
    with db.session() as session:
        return training_examples(stored.corrected_posts(session))


def test_a_correction_changes_the_next_model_prediction(db, small_model):
    post_id = add_post(db)
    before = small_model.classify([TEXT], ["fr"])[0]
    target = "ophthalmology" if before.specialty != "ophthalmology" else "cardiology"
    urgency = "urgent" if before.urgency != "urgent" else "routine"
    add_correction(
        db, str(post_id), specialty=target, urgency=urgency, corrected_by="dr.a@example.org"
    )
    examples = examples_from(db)
    assert [(e.text, e.is_request, e.specialty, e.urgency) for e in examples] == [
        (TEXT, True, target, urgency)
    ]
    after = train(small_corpus(), examples)
    result = after.classifier.classify([TEXT], ["fr"])[0]
    assert (result.specialty, result.urgency) == (target, urgency)
    assert after.corrections == 1 and after.correction_weight >= 5
    assert after.state.version != small_model.version


def test_not_request_correction_and_merging(any_db):
    db = any_db
    post_id = add_post(db, "Congrès à Lyon, inscrivez-vous ! #DocTocToc", native="222")
    with db.session() as session:
        session.add(ClassificationRow(
            post_id=post_id, model_version="v0", is_request=True, specialty="general_practice",
            specialty_scores=[], urgency="routine", urgency_score=0.5, cues=[], created_at=T0,
        ))  # fmt: skip
    add_correction(db, "mastodon:222", urgency="soon")
    [ex] = examples_from(db)
    assert (ex.is_request, ex.specialty, ex.urgency) == (True, "general_practice", "soon")
    add_correction(db, str(post_id), is_request=False)
    [ex] = examples_from(db)
    assert (ex.is_request, ex.specialty, ex.urgency) == (False, None, None)
    listed = list_corrections(db)
    assert [c["urgency"] for c in listed] == ["soon", None]
    assert listed[0]["was"]["specialty"] == "general_practice"


def test_invalid_corrections_are_refused(any_db):
    db = any_db
    post_id = add_post(db, native="333")
    with pytest.raises(CorrectionError, match="no stored post"):
        add_correction(db, "999999", specialty="cardiology")
    with pytest.raises(CorrectionError, match="not a request"):
        add_correction(db, str(post_id), is_request=False, specialty="cardiology")
    with pytest.raises(CorrectionError, match="nothing to correct"):
        add_correction(db, str(post_id))
    with pytest.raises(CorrectionError, match="unknown specialty"):
        add_correction(db, str(post_id), specialty="cardio")
    deleted = add_post(db, text="", native="444", deleted=True)
    with pytest.raises(CorrectionError, match="deleted"):
        add_correction(db, str(deleted), specialty="cardiology")


def test_correct_and_corrections_commands(tmp_path, db):
    config = tmp_path / "config.yaml"
    config.write_text(
        f"version: 1\ndatabase:\n  url: {db.url}\nhashtags: [DocTocToc]\n", encoding="utf-8"
    )
    post_id = add_post(db, native="555")
    runner = CliRunner()
    out = runner.invoke(
        correct_cmd,
        [str(post_id), "--specialty", "dermatology", "--by", "Dr A", "--config", str(config)],
    )
    assert out.exit_code == 0, out.output
    assert "recorded for post" in out.output and "dermatology" in out.output
    out = runner.invoke(corrections_cmd, ["--config", str(config)])
    assert (
        out.exit_code == 0 and "-> request, dermatology" in out.output and "by Dr A" in out.output
    )
    out = runner.invoke(corrections_cmd, ["--format", "jsonl", "--config", str(config)])
    assert '"specialty": "dermatology"' in out.output
    bad = runner.invoke(correct_cmd, [str(post_id), "--specialty", "nope", "--config", str(config)])
    assert bad.exit_code != 0
    args = [str(post_id), "--not-request", "--specialty", "cardiology", "--config", str(config)]
    contradictory = runner.invoke(correct_cmd, args)
    assert isinstance(contradictory.exception, CorrectionError)
    assert "not a request has no specialty" in str(contradictory.exception)
    assert len(list_corrections(db)) == 1
