"""`evaluate` numbers on a tiny hand-checked file, and the command's report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli.classifier import evaluate_cmd, train_cmd
from classifiers.evaluate import evaluate_file
from classifiers.types import Classification

TINY = Path(__file__).parent / "data" / "tiny_gold.jsonl"

# What a stub classifier answers for t1..t8 (is_request, specialty, urgency).
ANSWERS = [
    (True, "emergency", "urgent"),  # t1: an accepted alternative, urgent right
    (True, "cardiology", "urgent"),  # t2: specialty right, urgency wrong (soon)
    (True, "dermatology", "routine"),  # t3: all right
    (False, None, None),  # t4: a missed request (specialty and urgent missed)
    (True, "neurology", "soon"),  # t5: specialty wrong (radiology), urgency right
    (False, None, None),  # t6: right
    (True, "general_practice", "routine"),  # t7: a false request
    (True, "neurology", "urgent"),  # t8: all right
]


class Stub:
    version = "stub"

    def classify(self, texts, langs=None):
        out = []
        for is_request, spec, urg in ANSWERS[: len(texts)]:
            top = [
                {"id": s, "score": v}
                for s, v in ((spec or "cardiology", 0.6), ("ent", 0.3), ("pulmonology", 0.1))
            ]
            out.append(Classification(is_request, spec, top, urg, 0.7 if urg else 0.0))
        return out


def test_measures_on_a_hand_checked_file():
    _, _, m = evaluate_file(TINY, Stub())
    # request: 6 gold, 6 predicted, 5 in common -> P = R = F1 = 5/6
    assert m["request"]["precision"] == pytest.approx(5 / 6)
    assert m["request"]["recall"] == pytest.approx(5 / 6)
    assert m["request"]["f1"] == pytest.approx(5 / 6)
    assert m["request"]["confusion"] == [[1, 1], [1, 5]]
    # specialty over the 6 gold requests: t1 (alternative), t2, t3, t8 right -> 4/6; strict 3/6
    assert m["specialty"]["accuracy"] == pytest.approx(4 / 6)
    assert m["specialty"]["strict_accuracy"] == pytest.approx(3 / 6)
    per = m["specialty"]["per_class"]
    assert per["cardiology"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert per["neurology"]["precision"] == pytest.approx(0.5) and per["neurology"]["recall"] == 1.0
    assert per["neurology"]["f1"] == pytest.approx(2 / 3)
    assert per["pediatrics"]["recall"] == 0.0 and per["radiology"]["recall"] == 0.0
    conf = m["specialty"]["confusion"]
    row = conf["matrix"][conf["labels"].index("radiology")]
    assert row[conf["labels"].index("neurology")] == 1
    assert conf["matrix"][conf["labels"].index("pediatrics")][-1] == 1  # predicted "not a request"
    # urgency: gold urgent t1, t4, t8; predicted urgent t1, t2, t8 -> recall 2/3, precision 2/3
    assert m["urgency"]["urgent_recall"] == pytest.approx(2 / 3)
    assert m["urgency"]["urgent_precision"] == pytest.approx(2 / 3)
    assert m["urgency"]["accuracy"] == pytest.approx(4 / 6)
    assert m["urgency"]["per_class"]["soon"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }


def test_evaluate_command_prints_measures_and_writes_the_report(tmp_path):
    out = CliRunner().invoke(
        evaluate_cmd,
        [str(TINY), "--report-dir", str(tmp_path / "rep"), "--config", str(tmp_path / "none.yaml")],
    )
    assert out.exit_code != 0, "an explicit --config that does not exist is an error"
    out = CliRunner().invoke(evaluate_cmd, [str(TINY), "--report-dir", str(tmp_path / "rep")])
    assert out.exit_code == 0, out.output
    for needle in (
        "urgent recall",
        "request F1",
        "specialty, per class",
        "confusion matrix",
        "report written",
    ):
        assert needle in out.output
    assert (tmp_path / "rep" / "report.html").read_text().count("<img") == 2
    png = (tmp_path / "rep" / "confusion_specialty.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_rejects_a_malformed_gold_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "is_request": true, "specialty": "cardio", "urgency": "soon"}\n')
    out = CliRunner().invoke(evaluate_cmd, [str(bad)])
    assert out.exit_code != 0 and "cardio" in str(out.exception)


def test_train_command_on_a_small_corpus(tmp_path):
    from .conftest import small_corpus

    data = tmp_path / "data"
    data.mkdir()
    rows = [
        {"id": e.id, "text": e.text, "lang": e.lang, "is_request": e.is_request,
         "specialty": e.specialty, "alt_specialties": e.alt_specialties, "urgency": e.urgency}
        for e in small_corpus()
    ]  # fmt: skip
    (data / "corpus_part1.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    out = CliRunner().invoke(
        train_cmd, ["--data", str(data), "--output", str(tmp_path / "m.skops"), "--no-corrections"]
    )
    assert out.exit_code == 0, out.output
    assert "held-out test split" in out.output and "urgent recall" in out.output
    assert (tmp_path / "m.skops").exists() and (tmp_path / "m.json").exists()


def test_several_sets_are_reported_each_on_its_own_and_by_language(tmp_path, monkeypatch):
    import classifiers

    monkeypatch.setattr(classifiers, "load_classifier", lambda *a, **k: Stub())
    rows = [json.loads(line) for line in TINY.read_text(encoding="utf-8").splitlines()]
    other = tmp_path / "other_set.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]), encoding="utf-8")
    out = CliRunner().invoke(
        evaluate_cmd, [str(TINY), str(other), "--report-dir", str(tmp_path / "rep")]
    )
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    tiny = [line.split() for line in lines if line.startswith("tiny_gold ")]
    assert [r[1] for r in tiny] == ["all", "en", "fr"]
    # all: 8 posts, 6 gold requests, request recall 5/6, specialty 4/6, urgent recall 2/3
    assert tiny[0][2:5] == ["8", "6", f"{5 / 6:.3f}"] and tiny[0][6] == f"{4 / 6:.3f}"
    assert tiny[0][9] == f"{2 / 3:.3f}"
    assert any(line.startswith("other_set ") for line in lines)
    assert (tmp_path / "rep" / "tiny_gold" / "report.html").exists()
    assert (tmp_path / "rep" / "other_set" / "report.html").exists()
    assert CliRunner().invoke(evaluate_cmd, []).exit_code != 0, "no file and no --sets"
