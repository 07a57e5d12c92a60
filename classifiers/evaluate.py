"""`doctoctoc evaluate FILE`: measures on a gold JSONL file, a text summary and an HTML report.

The report (report.html) embeds the confusion matrices as PNG files drawn with matplotlib
(Agg backend, no display needed), written next to it.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from classifiers import metrics as M
from classifiers.corpus import DATA_DIR, Example, read_jsonl
from classifiers.types import Classification

# Held-out evaluation sets shipped with the project (real text from other sources, and the
# red-flag guard set): never trained or tuned on. See data/eval/README.md.
EVAL_DIR = DATA_DIR / "eval"


def evaluate_file(
    path: str | Path, classifier: Any
) -> tuple[list[Example], list[Classification], dict[str, Any]]:
    gold = read_jsonl(path)
    preds = classifier.classify([g.text for g in gold], [g.lang for g in gold])
    return gold, preds, M.compute(gold, preds)


def text_report(m: dict[str, Any]) -> list[str]:
    r, s, u = m["request"], m["specialty"], m["urgency"]
    lines = [
        f"posts: {r['posts']}, gold requests: {s['requests']}",
        "",
        *M.format_summary(m),
        f"{'gold urgent requests':26s} {u['urgent_support']}",
        f"{'specialty strict top-1':26s} {s['strict_accuracy']:.3f}  (label only, alternatives not accepted)",
        f"{'specialty top-3':26s} {s['top3_accuracy']:.3f}",
        f"{'urgency accuracy':26s} {u['accuracy']:.3f}",
        f"request precision {r['precision']:.3f}, recall {r['recall']:.3f}; "
        f"confusion [[tn, fp], [fn, tp]] = {r['confusion']}",
        "",
        *M.format_per_class(
            s["per_class"], "specialty, per class (a match with an accepted alternative counts):"
        ),
        "",
        *M.format_per_class(u["per_class"], "urgency, per class (gold requests):"),
        "",
        *M.format_confusion(s["confusion"], "specialty confusion matrix", short=5),
        "",
        *M.format_confusion(u["confusion"], "urgency confusion matrix", short=8),
    ]
    return lines


def confusion_png(conf: dict[str, Any], title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = conf["labels"]
    cols = [*labels, M.NONE]
    matrix = np.asarray(conf["matrix"], dtype=float)
    size = max(4.0, 0.45 * len(cols) + 2)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    top = matrix.max() if matrix.size else 0
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j]:
                color = "white" if matrix[i, j] > top / 2 else "black"
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _table(per_class: dict[str, dict[str, float]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v['precision']:.3f}</td><td>{v['recall']:.3f}</td>"
        f"<td>{v['f1']:.3f}</td><td>{int(v['support'])}</td></tr>"
        for k, v in per_class.items()
    )
    return f"<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>n</th></tr>{rows}</table>"


def write_report(
    m: dict[str, Any],
    out_dir: str | Path,
    *,
    source: str,
    model_version: str,
    errors: list[dict[str, Any]] | None = None,
) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    confusion_png(
        m["specialty"]["confusion"], "specialty (gold requests)", out / "confusion_specialty.png"
    )
    confusion_png(
        m["urgency"]["confusion"], "urgency (gold requests)", out / "confusion_urgency.png"
    )
    summary = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{value:.3f}</td><td>{goal:.2f}</td>"
        f"<td class={'ok' if value >= goal else 'no'}>{'met' if value >= goal else 'not met'}</td></tr>"
        for name, ((a, b), goal) in M.TARGETS.items()
        for value in [float(m[a][b])]
    )
    err_rows = "".join(
        f"<tr><td>{html.escape(str(e['id']))}</td><td>{html.escape(e['gold'])}</td>"
        f"<td>{html.escape(e['predicted'])}</td><td>{html.escape(e['text'])}</td></tr>"
        for e in (errors or [])[:200]
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>DocTocToc classifier evaluation</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}}.ok{{color:#070}}.no{{color:#b00}}</style>
</head><body>
<h1>DocTocToc classifier evaluation</h1>
<p>File: <code>{html.escape(source)}</code> &middot; model <code>{html.escape(model_version)}</code> &middot;
{m["request"]["posts"]} posts, {m["specialty"]["requests"]} gold requests &middot; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>
<h2>Targets</h2><table><tr><th>measure</th><th>value</th><th>target</th><th></th></tr>{summary}</table>
<p>Specialty strict top-1 (no alternatives): {m["specialty"]["strict_accuracy"]:.3f}; top-3: {m["specialty"]["top3_accuracy"]:.3f}.
Urgent: {m["urgency"]["urgent_support"]} gold. Request precision {m["request"]["precision"]:.3f}, recall {m["request"]["recall"]:.3f}.</p>
<h2>Specialty</h2>{_table(m["specialty"]["per_class"])}
<img src="confusion_specialty.png" alt="specialty confusion matrix">
<h2>Urgency</h2>{_table(m["urgency"]["per_class"])}
<img src="confusion_urgency.png" alt="urgency confusion matrix">
<h2>Errors</h2><table><tr><th>id</th><th>gold</th><th>predicted</th><th>text</th></tr>{err_rows}</table>
<script type="application/json" id="metrics">{html.escape(json.dumps(m))}</script>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def error_list(gold: list[Example], preds: list[Classification]) -> list[dict[str, Any]]:
    """Posts whose request flag, specialty (with alternatives) or urgency is wrong."""
    out = []
    for g, p in zip(gold, preds, strict=True):
        want = f"{'request' if g.is_request else 'not a request'}"
        got = f"{'request' if p.is_request else 'not a request'}"
        wrong = g.is_request != p.is_request
        if g.is_request and p.is_request:
            want += f", {g.specialty}, {g.urgency}"
            got += f", {p.specialty}, {p.urgency}"
            wrong = wrong or (p.specialty != g.specialty and p.specialty not in g.alt_specialties)
            wrong = wrong or p.urgency != g.urgency
        if wrong:
            out.append({"id": g.id, "gold": want, "predicted": got, "text": g.text})
    return out
