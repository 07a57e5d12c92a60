"""Development data for choosing classifier settings (never the evaluation sets of data/eval/).

Two commands:

    # Symptom2Disease (patients' first-person symptom descriptions, 24 diseases; see
    # data/SOURCES.md): CSV with columns index,label,text -> gold JSONL for `doctoctoc evaluate`.
    .venv/bin/python classifiers/data/tools/dev_sets.py symptom2disease Symptom2Disease.csv OUT.jsonl

    # A copy of classifiers/data whose real training files lack a fixed fifth (md5(id) % 5 == 0),
    # and that fifth as JSONL files (<name>_dev.jsonl): train on the copy with
    # `doctoctoc train --data DIR/data --output m.skops`, then evaluate on the fifth.
    .venv/bin/python classifiers/data/tools/dev_sets.py real-fifth DIR

The Symptom2Disease text is not shipped (no licence found in the copy used): fetch it, build the
file outside the repository. "allergy" is left out (no single specialty answers it).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1]

# Disease -> (specialty, accepted alternatives), by TAXONOMY's rules.
SYMPTOM2DISEASE = {
    "Psoriasis": ("dermatology", ["rheumatology"]),
    "Varicose Veins": ("cardiology", ["dermatology"]),
    "Typhoid": ("infectious_disease", []),
    "Chicken pox": ("infectious_disease", ["dermatology", "pediatrics"]),
    "Impetigo": ("dermatology", ["infectious_disease"]),
    "Dengue": ("infectious_disease", []),
    "Fungal infection": ("dermatology", ["infectious_disease"]),
    "Common Cold": ("ent", ["infectious_disease", "general_practice"]),
    "Pneumonia": ("pulmonology", ["infectious_disease"]),
    "Dimorphic Hemorrhoids": ("gastroenterology", []),
    "Arthritis": ("rheumatology", []),
    "Acne": ("dermatology", []),
    "Bronchial Asthma": ("pulmonology", []),
    "Hypertension": ("cardiology", []),
    "Migraine": ("neurology", []),
    "Cervical spondylosis": ("rheumatology", ["orthopedics_trauma", "neurology"]),
    "Jaundice": ("gastroenterology", []),
    "Malaria": ("infectious_disease", []),
    "urinary tract infection": ("nephrology_urology", ["infectious_disease"]),
    "gastroesophageal reflux disease": ("gastroenterology", []),
    "drug reaction": ("pharmacology", ["dermatology"]),
    "peptic ulcer disease": ("gastroenterology", []),
    "diabetes": ("endocrinology", []),
}


def symptom2disease(src: Path, out: Path) -> int:
    seen: set[str] = set()
    n = 0
    with open(src, encoding="utf-8", newline="") as fh, open(out, "w", encoding="utf-8") as dst:
        for row in csv.DictReader(fh):
            label, text = row["label"], row["text"].strip()
            if label not in SYMPTOM2DISEASE or text in seen:
                continue
            seen.add(text)
            spec, alt = SYMPTOM2DISEASE[label]
            dst.write(json.dumps({
                "id": f"s2d-{row['index']}", "text": f"{text} #DocTocToc", "lang": "en",
                "is_request": True, "specialty": spec, "alt_specialties": alt,
                "urgency": "routine", "disease": label,
            }, ensure_ascii=False) + "\n")  # fmt: skip
            n += 1
    return n


def real_fifth(out_dir: Path) -> dict[str, tuple[int, int]]:
    data = out_dir / "data"
    if data.exists():
        shutil.rmtree(data)
    shutil.copytree(DATA, data, ignore=shutil.ignore_patterns("eval", "tools", "__pycache__"))
    counts = {}
    for path in sorted((DATA / "real").glob("*.train.jsonl")):
        keep, fifth = [], []
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            ident = json.loads(line)["id"]
            in_fifth = int(hashlib.md5(ident.encode()).hexdigest(), 16) % 5 == 0
            (fifth if in_fifth else keep).append(line)
        (data / "real" / path.name).write_text("".join(keep), encoding="utf-8")
        name = path.name.removesuffix(".train.jsonl")
        (out_dir / f"{name}_dev.jsonl").write_text("".join(fifth), encoding="utf-8")
        counts[name] = (len(keep), len(fifth))
    return counts


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "symptom2disease":
        print(symptom2disease(Path(argv[1]), Path(argv[2])), "posts written")
        return 0
    if len(argv) == 2 and argv[0] == "real-fifth":
        for name, (kept, fifth) in real_fifth(Path(argv[1])).items():
            print(f"{name}: {kept} kept for training, {fifth} held out")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
