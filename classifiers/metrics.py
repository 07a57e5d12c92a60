"""Evaluation measures computed from `classify` outputs against gold labels (pure Python).

Conventions (also in README.md):
- request/non-request: precision, recall and F1 of the `request` class over all posts;
- specialty: over gold requests, a prediction counts when it equals the label or an accepted
  alternative; a request predicted as a non-request counts as wrong (end to end, as routed);
- urgency: over gold requests; urgent recall = gold-urgent requests predicted `urgent`,
  urgent precision = predicted-urgent posts that are gold urgent (a non-request predicted
  urgent is impossible: non-requests get no urgency).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.core.labels import SPECIALTIES, URGENCIES
from classifiers.corpus import Example
from classifiers.types import Classification

NONE = "(not a request)"


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "support": tp + fn}


@dataclass
class Confusion:
    labels: list[str]  # rows: gold; columns: predicted (labels + NONE)
    matrix: list[list[int]]

    def to_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "matrix": self.matrix}


def _confusion(gold: list[str], pred: list[str], labels: list[str]) -> Confusion:
    cols = [*labels, NONE]
    index = {label: i for i, label in enumerate(cols)}
    m = [[0] * len(cols) for _ in labels]
    for g, p in zip(gold, pred, strict=True):
        m[index[g]][index[p]] += 1
    return Confusion(labels=labels, matrix=m)


def _per_class(gold: list[str], pred: list[str], labels: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for label in labels:
        tp = sum(1 for g, p in zip(gold, pred, strict=True) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, pred, strict=True) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, pred, strict=True) if g == label and p != label)
        out[label] = prf(tp, fp, fn)
    return out


def compute(gold: list[Example], pred: list[Classification]) -> dict[str, Any]:
    if len(gold) != len(pred):
        raise ValueError("gold and predictions differ in length")
    # request / non-request
    tp = sum(1 for g, p in zip(gold, pred, strict=True) if g.is_request and p.is_request)
    fp = sum(1 for g, p in zip(gold, pred, strict=True) if not g.is_request and p.is_request)
    fn = sum(1 for g, p in zip(gold, pred, strict=True) if g.is_request and not p.is_request)
    tn = len(gold) - tp - fp - fn
    request = {**prf(tp, fp, fn), "confusion": [[tn, fp], [fn, tp]], "posts": len(gold)}
    # specialty (gold requests; a prediction equal to an accepted alternative counts)
    req = [(g, p) for g, p in zip(gold, pred, strict=True) if g.is_request]
    s_gold = [g.specialty or NONE for g, _ in req]
    s_pred = []
    strict_ok = 0
    for g, p in req:
        predicted = p.specialty if p.is_request and p.specialty else NONE
        strict_ok += predicted == g.specialty
        s_pred.append(g.specialty if predicted in g.alt_specialties else predicted)
    correct = sum(1 for a, b in zip(s_gold, s_pred, strict=True) if a == b)
    spec_labels = [s for s in SPECIALTIES if s in set(s_gold) | set(s_pred)]
    best_ok = sum(
        1
        for g, p in req
        if p.specialties and p.specialties[0]["id"] in {g.specialty, *g.alt_specialties}
    )
    specialty = {
        "accuracy": correct / len(req) if req else 0.0,
        # the best-scored specialty, whatever the request decision (a report or question
        # that is not a post still gets scores)
        "best_scored_accuracy": best_ok / len(req) if req else 0.0,
        "strict_accuracy": strict_ok / len(req) if req else 0.0,
        "top3_accuracy": _top3(req),
        "requests": len(req),
        "per_class": _per_class(s_gold, s_pred, spec_labels),
        "confusion": _confusion(s_gold, s_pred, spec_labels).to_dict(),
    }
    # urgency (gold requests)
    u_gold = [g.urgency or NONE for g, _ in req]
    u_pred = [p.urgency if p.is_request and p.urgency else NONE for _, p in req]
    per_u = _per_class(u_gold, u_pred, list(URGENCIES))
    fp_urgent_nonreq = sum(
        1 for g, p in zip(gold, pred, strict=True) if not g.is_request and p.urgency == "urgent"
    )
    urgent_tp = sum(1 for a, b in zip(u_gold, u_pred, strict=True) if a == b == "urgent")
    urgent_pred = sum(1 for b in u_pred if b == "urgent") + fp_urgent_nonreq
    urgent_gold = sum(1 for a in u_gold if a == "urgent")
    urgency = {
        "accuracy": sum(1 for a, b in zip(u_gold, u_pred, strict=True) if a == b) / len(req)
        if req
        else 0.0,
        "urgent_recall": urgent_tp / urgent_gold if urgent_gold else 0.0,
        "urgent_precision": urgent_tp / urgent_pred if urgent_pred else 0.0,
        "urgent_support": urgent_gold,
        "per_class": per_u,
        "confusion": _confusion(u_gold, u_pred, list(URGENCIES)).to_dict(),
    }
    return {"request": request, "specialty": specialty, "urgency": urgency}


def compact(gold: list[Example], pred: list[Classification]) -> dict[str, Any]:
    """The headline measures of one set, overall and by language (for `evaluate` on several
    sets and for the benchmark)."""

    def row(pairs: list[tuple[Example, Classification]]) -> dict[str, Any]:
        m = compute([g for g, _ in pairs], [p for _, p in pairs])
        return {
            "posts": m["request"]["posts"],
            "requests": m["specialty"]["requests"],
            "request_recall": m["request"]["recall"],
            "request_f1": m["request"]["f1"],
            "specialty": m["specialty"]["accuracy"],
            "specialty_best": m["specialty"]["best_scored_accuracy"],
            "urgent": m["urgency"]["urgent_support"],
            "urgent_recall": m["urgency"]["urgent_recall"],
            "urgent_precision": m["urgency"]["urgent_precision"],
        }

    pairs = list(zip(gold, pred, strict=True))
    langs = sorted({g.lang or "?" for g in gold})
    out = {"all": row(pairs)}
    if len(langs) > 1:
        for lang in langs:
            out[lang] = row([(g, p) for g, p in pairs if (g.lang or "?") == lang])
    return out


COMPACT_HEADER = (
    f"{'set':40s} {'lang':4s} {'posts':>5s} {'req':>5s} {'req.rec':>7s} {'req.F1':>6s} "
    f"{'spec':>5s} {'best':>5s} {'urg':>4s} {'urg.rec':>7s} {'urg.prec':>8s}"
)


def format_compact(name: str, rows: dict[str, Any]) -> list[str]:
    """Lines of the multi-set table; a measure without support shows '-'."""
    lines = []
    for lang, r in rows.items():
        spec = f"{r['specialty']:5.3f}" if r["requests"] else "    -"
        best = f"{r['specialty_best']:5.3f}" if r["requests"] else "    -"
        rec = f"{r['request_recall']:7.3f}" if r["requests"] else "      -"
        ur = f"{r['urgent_recall']:7.3f}" if r["urgent"] else "      -"
        up = f"{r['urgent_precision']:8.3f}" if r["urgent"] else "       -"
        lines.append(
            f"{name[:40]:40s} {lang:4s} {r['posts']:5d} {r['requests']:5d} {rec} "
            f"{r['request_f1']:6.3f} {spec} {best} {r['urgent']:4d} {ur} {up}"
        )
    return lines


def _top3(req: list[tuple[Example, Classification]]) -> float:
    if not req:
        return 0.0
    ok = 0
    for g, p in req:
        accepted = {g.specialty, *g.alt_specialties}
        ok += any(s["id"] in accepted for s in p.specialties[:3])
    return ok / len(req)


TARGETS = {
    "specialty top-1 accuracy": (("specialty", "accuracy"), 0.90),
    "urgent recall": (("urgency", "urgent_recall"), 0.95),
    "urgent precision": (("urgency", "urgent_precision"), 0.70),
    "request F1": (("request", "f1"), 0.95),
}


def headline(m: dict[str, Any]) -> dict[str, float]:
    return {name: float(m[a][b]) for name, ((a, b), _) in TARGETS.items()}


def format_summary(m: dict[str, Any]) -> list[str]:
    """One line per target: value, goal, met or not."""
    lines = []
    for name, ((a, b), goal) in TARGETS.items():
        value = float(m[a][b])
        lines.append(
            f"{name:26s} {value:.3f}  (target >= {goal:.2f}: {'met' if value >= goal else 'NOT met'})"
        )
    return lines


def format_per_class(per_class: dict[str, dict[str, float]], title: str) -> list[str]:
    lines = [title, f"  {'class':24s} {'prec':>6s} {'recall':>6s} {'f1':>6s} {'n':>5s}"]
    for label, v in per_class.items():
        lines.append(
            f"  {label:24s} {v['precision']:6.3f} {v['recall']:6.3f} {v['f1']:6.3f} {int(v['support']):5d}"
        )
    return lines


def format_confusion(conf: dict[str, Any], title: str, short: int = 6) -> list[str]:
    labels = conf["labels"]
    cols = [*labels, NONE]
    head = "".join(f"{c[:short]:>{short + 1}s}" for c in cols)
    lines = [title + " (rows: gold, columns: predicted)", f"  {'':{short + 2}s}{head}"]
    for label, row in zip(labels, conf["matrix"], strict=True):
        lines.append(f"  {label[:short]:{short + 2}s}" + "".join(f"{v:{short + 1}d}" for v in row))
    return lines
