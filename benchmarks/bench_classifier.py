"""Classifier benchmark: this project's model against a fastText supervised baseline.

One run, same machine, same corpus and the same held-out split (classifiers.corpus.split):
both models are trained on the training part, measured on the test part (specialty top-1
with accepted alternatives, urgent recall/precision with an urgent threshold tuned by 5-fold
cross-validation on the training part for both, request F1), then each is timed in its own
fresh process: model load (including imports), throughput on 100,000 posts in batches of
1,000 (one process), single-post latency (median, p99) and peak memory (max RSS).

    python benchmarks/bench_classifier.py            # also run by `make bench`
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N_POSTS = 100_000
BATCH = 1_000
N_LATENCY = 2_000
# fastText settings chosen on a validation fold of the training split (fastText needs many
# epochs and character n-grams on a corpus this small; its defaults reach ~0.10).
FT_PARAMS = {"epoch": 100, "lr": 1.0, "wordNgrams": 2, "minn": 3, "maxn": 5, "dim": 50,
             "bucket": 200_000, "loss": "softmax", "thread": 1, "seed": 7, "verbose": 0}  # fmt: skip


# --- fastText baseline ---------------------------------------------------------------------


def ft_text(text: str) -> str:
    from classifiers.text import WORD_RE, fold, mask_markup

    return " ".join(WORD_RE.findall(fold(mask_markup(text))))


def ft_train(rows: list[tuple[str, str]], path: Path, **overrides: Any) -> Any:
    import fasttext

    with open(path, "w", encoding="utf-8") as fh:
        for text, label in rows:
            fh.write(f"__label__{label} {ft_text(text)}\n")
    model = fasttext.train_supervised(input=str(path), **(FT_PARAMS | overrides))
    return model


def ft_proba(model: Any, texts: list[str], prepared: bool = False) -> list[dict[str, float]]:
    lines = texts if prepared else [ft_text(t) for t in texts]
    labels, probs = model.predict(lines, k=-1)  # always a list: a single string fails with NumPy 2
    return [
        {lab.removeprefix("__label__"): float(p) for lab, p in zip(ls, ps, strict=True)}
        for ls, ps in zip(labels, probs, strict=True)
    ]


class FastTextClassifier:
    """Three fastText models with the same decision rules as ours (request >= 0.5, urgent
    threshold tuned on cross-validation)."""

    version = "fasttext-baseline"

    def __init__(self, request: Any, specialty: Any, urgency: Any, urgent_threshold: float):
        self.models = (request, specialty, urgency)
        self.urgent_threshold = urgent_threshold

    @classmethod
    def load(cls, directory: Path) -> FastTextClassifier:
        import fasttext

        meta = json.loads((directory / "fasttext.json").read_text())
        models = [
            fasttext.load_model(str(directory / f"ft_{n}.bin"))
            for n in ("request", "specialty", "urgency")
        ]
        return cls(*models, urgent_threshold=meta["urgent_threshold"])

    def classify(self, texts: list[str], langs: list[str | None] | None = None) -> list[Any]:
        from classifiers.types import Classification

        lines = [ft_text(t) for t in texts]  # the same normalisation as ours, done once
        preq, pspec, purg = (ft_proba(m, lines, prepared=True) for m in self.models)
        out = []
        for r, s, u in zip(preq, pspec, purg, strict=True):
            top = [{"id": k, "score": v} for k, v in sorted(s.items(), key=lambda kv: -kv[1])[:3]]
            if r.get("request", 0.0) < 0.5:
                out.append(Classification(False, None, top, None, 0.0, model_version=self.version))
                continue
            if u.get("urgent", 0.0) >= self.urgent_threshold:
                urgency, score = "urgent", u.get("urgent", 0.0)
            else:
                urgency = max(("soon", "routine"), key=lambda k: u.get(k, 0.0))
                score = u.get(urgency, 0.0)
            out.append(
                Classification(True, top[0]["id"], top, urgency, score, model_version=self.version)
            )
        return out


def train_fasttext(
    train: list[Any], directory: Path, extra: list[Any] | None = None
) -> FastTextClassifier:
    """fastText on the same training data as ours: the corpus training split, plus the extra
    data for the heads each teaches (corpus.teaches)."""
    import numpy as np

    from classifiers.corpus import folds, teaches
    from classifiers.train import tune_urgent_threshold

    extra = extra or []
    req = [e for e in train if e.is_request]
    spec = req + [e for e in extra if e.is_request and e.specialty and teaches(e, "specialty")]
    urg = req + [e for e in extra if e.is_request and e.urgency and teaches(e, "urgency")]
    requests = train + [e for e in extra if teaches(e, "request")]
    models = {
        "request": ft_train(
            [(e.text, "request" if e.is_request else "other") for e in requests],
            directory / "r.txt",
        ),
        "specialty": ft_train([(e.text, e.specialty) for e in spec], directory / "s.txt"),
        "urgency": ft_train([(e.text, e.urgency) for e in urg], directory / "u.txt"),
    }
    fold_of = folds(req, 5)
    p_urgent = np.zeros(len(req))
    for k in range(5):
        fit = [e for e, f in zip(req, fold_of, strict=True) if f != k]
        val = [i for i, f in enumerate(fold_of) if f == k]
        model = ft_train([(e.text, e.urgency) for e in fit], directory / "cv.txt")
        for i, p in zip(val, ft_proba(model, [req[i].text for i in val]), strict=True):
            p_urgent[i] = p.get("urgent", 0.0)
    gold = np.asarray([e.urgency == "urgent" for e in req])
    threshold = tune_urgent_threshold(p_urgent, gold, 0.96)
    for name, model in models.items():
        model.save_model(str(directory / f"ft_{name}.bin"))
    (directory / "fasttext.json").write_text(json.dumps({"urgent_threshold": threshold}))
    return FastTextClassifier(models["request"], models["specialty"], models["urgency"], threshold)


# --- timing worker (fresh process per model) -------------------------------------------------


def worker(kind: str, directory: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    if kind == "ours":
        from classifiers import load_classifier

        clf = load_classifier(str(directory / "ours.skops"))
    else:
        clf = FastTextClassifier.load(directory)
    load_s = time.perf_counter() - t0
    texts = json.loads((directory / "posts.json").read_text(encoding="utf-8"))
    langs = json.loads((directory / "langs.json").read_text(encoding="utf-8"))
    clf.classify(texts[:BATCH], langs[:BATCH])  # warm-up
    t0 = time.perf_counter()
    for start in range(0, len(texts), BATCH):
        clf.classify(texts[start : start + BATCH], langs[start : start + BATCH])
    throughput = len(texts) / (time.perf_counter() - t0)
    latencies = []
    for i in range(N_LATENCY):
        t = time.perf_counter()
        clf.classify([texts[i]], [langs[i]])
        latencies.append(time.perf_counter() - t)
    latencies.sort()
    return {
        "load_s": load_s,
        "throughput": throughput,
        "latency_median_ms": latencies[len(latencies) // 2] * 1000,
        "latency_p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss survives exec on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(kind: str, directory: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--dir", str(directory)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    from classifiers import metrics as M
    from classifiers.artifact import save
    from classifiers.corpus import load_corpus, load_extra, read_jsonl, split
    from classifiers.evaluate import EVAL_DIR
    from classifiers.train import train

    corpus = load_corpus()
    extra = load_extra()
    train_part, test_part = split(corpus)
    with tempfile.TemporaryDirectory(prefix="bench-classifier-") as tmp:
        directory = Path(tmp)
        t0 = time.perf_counter()
        ours = train(corpus, extra=extra)
        ours_train_s = time.perf_counter() - t0
        save(ours.state, directory / "ours.skops")
        t0 = time.perf_counter()
        ft = train_fasttext(train_part, directory, extra)
        ft_train_s = time.perf_counter() - t0
        texts = [e.text for e in test_part]
        langs = [e.lang for e in test_part]
        acc = {
            "ours": M.headline(M.compute(test_part, ours.classifier.classify(texts, langs))),
            "fasttext": M.headline(M.compute(test_part, ft.classify(texts, langs))),
        }
        # every held-out evaluation set (real text, red-flag guard set), each on its own
        sets: list[str] = []
        for path in sorted(EVAL_DIR.glob("*.jsonl")):
            gold = read_jsonl(path)
            gtexts, glangs = [g.text for g in gold], [g.lang for g in gold]
            for name, clf in (("ours", ours.classifier), ("fastText", ft)):
                rows = M.compact(gold, clf.classify(gtexts, glangs))
                sets += M.format_compact(f"{path.stem} [{name}]", rows)
        rng = random.Random(20261128)
        posts = [rng.choice(corpus) for _ in range(N_POSTS)]
        (directory / "posts.json").write_text(
            json.dumps([p.text for p in posts], ensure_ascii=False)
        )
        (directory / "langs.json").write_text(json.dumps([p.lang for p in posts]))
        perf = {
            "ours": run_worker("ours", directory),
            "fasttext": run_worker("fasttext", directory),
        }
        size = {
            "ours": (directory / "ours.skops").stat().st_size / 1e6,
            "fasttext": sum(
                (directory / f"ft_{n}.bin").stat().st_size
                for n in ("request", "specialty", "urgency")
            )
            / 1e6,
        }
    print(
        f"corpus {len(corpus)} posts, split seed 20261128: {len(train_part)} train / {len(test_part)} test"
    )
    print(
        f"training time: ours {ours_train_s:.1f} s (incl. cross-validation), fastText {ft_train_s:.1f} s"
    )
    header = f"{'measure':34s} {'ours':>12s} {'fastText':>12s}   goal"
    print(header)
    print("-" * len(header))
    goals = {name: f">= {goal:.2f}" for name, (_, goal) in M.TARGETS.items()}
    for name in M.TARGETS:
        print(f"{name:34s} {acc['ours'][name]:12.3f} {acc['fasttext'][name]:12.3f}   {goals[name]}")
    rows = [
        ("throughput (posts/s, 100k, batch 1000)", "throughput", "{:12,.0f}", ">= 1,000"),
        ("single-post latency median (ms)", "latency_median_ms", "{:12.2f}", ""),
        ("single-post latency p99 (ms)", "latency_p99_ms", "{:12.2f}", "<= 20"),
        ("model load, fresh process (s)", "load_s", "{:12.3f}", "<= 2"),
        ("peak memory, max RSS (MB)", "peak_rss_mb", "{:12.0f}", ""),
    ]
    for label, key, fmt, goal in rows:
        print(
            f"{label:34s} {fmt.format(perf['ours'][key])} {fmt.format(perf['fasttext'][key])}   {goal}"
        )
    print(f"{'model size on disk (MB)':34s} {size['ours']:12.2f} {size['fasttext']:12.2f}")
    if sets:
        print("\nheld-out evaluation sets (classifiers/data/eval, never trained or tuned on):")
        print(M.COMPACT_HEADER)
        for line in sets:
            print(line)
    print(f"\nreproduce: cd {ROOT} && .venv/bin/python benchmarks/bench_classifier.py")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["ours", "fasttext"])
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.dir)))
    else:
        main()
