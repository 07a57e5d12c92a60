"""Classifier commands: train, evaluate, correct, corrections (registered by bot.cli)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bot.cli.common import config_option, load, open_db
from bot.core.errors import ConfigError
from bot.core.labels import SPECIALTIES, URGENCIES


def _echo_lines(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


@click.command("train")
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write the artifact (default: classifiers/models/doctoctoc-classifier.skops).",
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Directory of corpus_part*.jsonl files (default: classifiers/data).",
)
@click.option(
    "--no-corrections", is_flag=True, help="Ignore the corrections stored in the database."
)
@config_option
def train_cmd(output: str | None, data: str | None, no_corrections: bool, config_path: str) -> None:
    """Rebuild the model from the corpus plus the stored corrections (deterministic).

    Prints the measures on the held-out test split (20% of the corpus, stratified, fixed
    seed; training never reads it) and writes the artifact with a JSON metadata file.
    """
    from bot.storage.corrections import corrected_posts
    from classifiers import metrics as M
    from classifiers.artifact import DEFAULT_MODEL, save
    from classifiers.corpus import load_corpus, load_extra
    from classifiers.corrections import training_examples
    from classifiers.train import train

    corrections = []
    if not no_corrections:
        with open_db(load(config_path)).session() as session:
            corrections = training_examples(corrected_posts(session))
    corpus = load_corpus(data)
    result = train(corpus, corrections, extra=load_extra(data))
    path = save(result.state, output or DEFAULT_MODEL)
    v = result.validation
    click.echo(f"model {result.state.version} written to {path}")
    click.echo(
        f"corpus {len(corpus)} posts: {result.n_train} train, {result.n_test} held-out test "
        f"(seed {result.state.meta['split']['seed']}); corrections: {result.corrections}"
        + (f" (weight {result.correction_weight:g})" if result.corrections else "")
    )
    click.echo(
        f"urgent threshold {v['tuned']['threshold']} tuned on {v['method']}: "
        f"recall {v['tuned']['urgent_recall']:.3f}, precision {v['tuned']['urgent_precision']:.3f} "
        f"(argmax would give recall {v['argmax']['urgent_recall']:.3f}, "
        f"precision {v['argmax']['urgent_precision']:.3f})"
    )
    click.echo("held-out test split:")
    _echo_lines(["  " + line for line in M.format_summary(result.metrics)])


def _classifier_settings(ctx: click.Context, config_path: str) -> tuple[str | None, float | None]:
    """(model path, uncertain_below) from the config; the default config may be absent."""
    try:
        loaded = load(config_path)
    except ConfigError:
        source = ctx.get_parameter_source("config_path")
        if source is not None and source.name == "DEFAULT" and not Path(config_path).exists():
            return None, None
        raise
    cfg = loaded.config.classifier
    return (
        cfg.model,
        cfg.uncertain_below,
    )  # a relative path is read from the working directory, as the pipeline does


@click.command("evaluate")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--sets",
    "shipped_sets",
    is_flag=True,
    help="Also measure every shipped evaluation set (classifiers/data/eval/*.jsonl: real text "
    "and the red-flag guard set, never trained on), each reported separately.",
)
@click.option(
    "--model",
    type=click.Path(dir_okay=False),
    help="Model artifact (default: config, else the shipped one).",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False),
    default="reports",
    show_default=True,
    help="Where report.html and the confusion-matrix PNGs are written.",
)
@config_option
@click.pass_context
def evaluate_cmd(
    ctx: click.Context,
    files: tuple[str, ...],
    shipped_sets: bool,
    model: str | None,
    report_dir: str,
    config_path: str,
) -> None:
    """Measure the classifier on FILE... (JSON Lines with gold labels).

    Each line: text, is_request, specialty, alt_specialties (optional), urgency, lang
    (optional), id (optional). One file: per-class precision/recall/F1, the confusion
    matrices, urgent recall and precision, request F1, and an HTML report. Several files (or
    --sets): each set on its own lines, overall and by language, and one report per set in
    REPORT_DIR/<set name>/.
    """
    from classifiers import load_classifier
    from classifiers import metrics as M
    from classifiers.evaluate import (
        EVAL_DIR,
        error_list,
        evaluate_file,
        text_report,
        write_report,
    )

    paths = list(files)
    if shipped_sets:
        paths += [str(p) for p in sorted(EVAL_DIR.glob("*.jsonl")) if str(p) not in paths]
    if not paths:
        raise click.UsageError("give at least one FILE, or --sets")
    cfg_model, uncertain = _classifier_settings(ctx, config_path)
    classifier = load_classifier(model or cfg_model, uncertain_below=uncertain)
    if len(paths) == 1:
        file = paths[0]
        gold, preds, m = evaluate_file(file, classifier)
        _echo_lines([f"model {classifier.version} on {file}", *text_report(m)])
        path = write_report(
            m,
            report_dir,
            source=file,
            model_version=classifier.version,
            errors=error_list(gold, preds),
        )
        click.echo(f"report written to {path}")
        return
    click.echo(f"model {classifier.version} on {len(paths)} sets, each measured on its own")
    click.echo(M.COMPACT_HEADER)
    for file in paths:
        gold, preds, m = evaluate_file(file, classifier)
        name = Path(file).stem
        _echo_lines(M.format_compact(name, M.compact(gold, preds)))
        write_report(
            m,
            Path(report_dir) / name,
            source=file,
            model_version=classifier.version,
            errors=error_list(gold, preds),
        )
    click.echo(f"reports written to {report_dir}/<set>/report.html")


@click.command("correct")
@click.argument("post_id")
@click.option("--specialty", type=click.Choice(SPECIALTIES), help="The right specialty.")
@click.option("--urgency", type=click.Choice(URGENCIES), help="The right urgency.")
@click.option(
    "--request/--not-request", "is_request", default=None, help="Whether the post is a request."
)
@click.option(
    "--by", "corrected_by", help="Who corrects (name or e-mail), stored with the correction."
)
@config_option
def correct_cmd(
    post_id: str,
    specialty: str | None,
    urgency: str | None,
    is_request: bool | None,
    corrected_by: str | None,
    config_path: str,
) -> None:
    """Record a correction for POST_ID (the post's number, or NETWORK:ID).

    The next `doctoctoc train` learns from it: the corrected post is added to the training
    set with a weight that makes the new model give the corrected labels.
    """
    from bot.storage.corrections import add_correction
    from classifiers.corrections import validate

    database = open_db(load(config_path))
    is_request = validate(is_request, specialty, urgency)
    with database.session() as session:
        view = add_correction(
            session,
            post_id,
            is_request=is_request,
            specialty=specialty,
            urgency=urgency,
            corrected_by=corrected_by,
        )
    click.echo(
        f"correction {view['id']} recorded for post {view['post']} ({view['ref']}): {_labels(view)}"
    )
    click.echo("run `doctoctoc train` to build a model that uses it")


def _labels(v: dict[str, Any]) -> str:
    if v["is_request"] is False:
        return "not a request"
    parts = ["request" if v["is_request"] else None, v["specialty"], v["urgency"]]
    return ", ".join(p for p in parts if p)


@click.command("corrections")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text", show_default=True
)
@config_option
def corrections_cmd(fmt: str, config_path: str) -> None:
    """List the stored corrections, oldest first, with what the model had said."""
    from bot.storage.corrections import list_corrections

    with open_db(load(config_path)).session() as session:
        rows = list_corrections(session)
    if fmt == "jsonl":
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        click.echo("no corrections")
        return
    for row in rows:
        was = row["was"]
        before = "unclassified" if was is None else _labels(was)
        who = f" by {row['corrected_by']}" if row["corrected_by"] else ""
        text = " ".join(row["text"].split())
        click.echo(
            f"#{row['id']} post {row['post']} ({row['ref']}) {row['created_at'][:16]}{who}: "
            f"{before} -> {_labels(row)}\n    {text[:100]}{'…' if len(text) > 100 else ''}"
        )
    click.echo(f"{len(rows)} correction(s)")


COMMANDS = [train_cmd, evaluate_cmd, correct_cmd, corrections_cmd]
