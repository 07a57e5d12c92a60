#!/usr/bin/env python3
"""Build doctoctoc-bot's real-text evaluation (and training) sets from public sources.

Deterministic: every sample uses random.Random(SEED) on sorted source rows.
Raw inputs are files extracted from snapshots under /work/.mirror (see README.md
and ../SOURCES.md for repository, path and commit of each one).

Usage (one sub-command per source):
  build_eval_sets.py nhamcs    ED2010_RAW  ED22FOR_TXT  OUT_EVAL.jsonl  OUT_TRAIN.jsonl
  build_eval_sets.py abstracts MEDICAL_TC_TEST_CSV  OUT_EVAL.jsonl
  build_eval_sets.py fig8      OVERVIEW_OF_RECORDINGS_CSV  OUT_EVAL.jsonl
  build_eval_sets.py morfitt   TRAIN_TSV DEV_TSV TEST_TSV  OUT_EVAL.jsonl  OUT_TRAIN.jsonl

Gold format: one JSON object a line with exactly the keys
id, text, lang, is_request, specialty, alt_specialties, urgency.
"""

import csv
import re
import sys

from common import record, write_jsonl
from nhamcs import build_nhamcs

ABSTRACT_SPECIALTY = {
    "1": "oncology_hematology",  # neoplasms
    "2": "gastroenterology",  # digestive system diseases
    "3": "neurology",  # nervous system diseases
    "4": "cardiology",  # cardiovascular diseases
}


def build_abstracts(test_csv, out_eval):
    out = []
    with open(test_csv, encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            spec = ABSTRACT_SPECIALTY.get(row["condition_label"].strip())
            if spec:
                out.append(
                    record(f"medabs-test-{i}", row["medical_abstract"], "en", spec, [], "routine")
                )
    write_jsonl(out_eval, out)


# --------------------------------------------------------------------------- Figure Eight
# "Medical Speech, Transcription, and Intent": crowd contributors wrote a phrase describing
# a given symptom prompt (first person, lay words).  Prompt -> specialty id (+ accepted
# alternatives), following TAXONOMY (joints without injury = rheumatology, etc.).
FIG8_SPECIALTY = {
    "Acne": ("dermatology", []),
    "Back pain": ("rheumatology", ["orthopedics_trauma", "general_practice"]),  # no injury stated
    "Blurry vision": ("ophthalmology", []),
    "Body feels weak": ("general_practice", ["neurology"]),  # unspecific asthenia
    "Cough": ("pulmonology", ["general_practice", "ent"]),
    "Ear ache": ("ent", []),
    "Emotional pain": ("psychiatry", []),
    "Feeling cold": (
        "general_practice",
        ["endocrinology", "infectious_disease"],
    ),  # chills/cold intolerance
    "Feeling dizzy": ("neurology", ["ent", "cardiology"]),  # vertigo vs presyncope
    "Foot ache": ("orthopedics_trauma", ["rheumatology"]),
    "Hair falling out": ("dermatology", []),
    "Hard to breath": ("pulmonology", ["cardiology", "emergency"]),
    "Head ache": ("neurology", ["general_practice"]),
    "Heart hurts": ("cardiology", ["emergency"]),
    "Infected wound": ("infectious_disease", ["dermatology", "general_practice"]),
    "Injury from sports": ("orthopedics_trauma", ["emergency"]),
    "Internal pain": ("general_practice", ["gastroenterology"]),  # vague visceral pain
    "Joint pain": ("rheumatology", ["orthopedics_trauma"]),
    "Knee pain": ("rheumatology", ["orthopedics_trauma"]),  # joint without stated injury
    "Muscle pain": ("rheumatology", ["general_practice"]),
    "Neck pain": ("rheumatology", ["orthopedics_trauma"]),
    "Open wound": ("emergency", ["dermatology", "general_practice"]),
    "Shoulder pain": ("rheumatology", ["orthopedics_trauma"]),
    "Skin issue": ("dermatology", []),
    "Stomach ache": ("gastroenterology", ["general_practice"]),
}


def build_fig8(overview_csv, out_eval):
    """One row per distinct phrase (recordings repeat phrases); eval only."""
    seen = {}
    with open(overview_csv, encoding="utf-8", errors="replace", newline="") as f:
        for row in csv.DictReader(f):
            phrase = re.sub(r"\s+", " ", row["phrase"]).strip()
            if not phrase or row["prompt"] not in FIG8_SPECIALTY:
                continue
            seen.setdefault(phrase, set()).add(row["prompt"])
    out = []
    for k, phrase in enumerate(sorted(seen)):
        prompts = sorted(seen[phrase])
        spec, alts = FIG8_SPECIALTY[prompts[0]]
        alts = list(alts) + [FIG8_SPECIALTY[p][0] for p in prompts[1:]]
        rid = "fig8-" + str(k)
        out.append(record(rid, phrase, "en", spec, alts, "soon"))
    write_jsonl(out_eval, out)


# --------------------------------------------------------------------------- MORFITT (French)
# Labrak et al. 2023: French PubMed abstracts, multi-label, 12 "specialities".  Only the
# labels that name one of our ids are mapped; documents labelled veterinary are dropped;
# a document needs at least one mapped label.
MORFITT_SPECIALTY = {
    "psychology": "psychiatry",  # psychologie -> mental health
    "pharmacology": "pharmacology",
    "microbiology": "infectious_disease",
    "virology": "infectious_disease",
    "parasitology": "infectious_disease",
    # immunology, surgery, etiology, physiology, genetics, chemistry: no single id -> unmapped
}
MORFITT_EXCLUDE = {"veterinary"}


def morfitt_rows(tsv_path, split):
    csv.field_size_limit(10**9)
    out = []
    with open(tsv_path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            labels = [x.strip() for x in row["specialities"].split("|") if x.strip()]
            if any(x in MORFITT_EXCLUDE for x in labels):
                continue
            ids = list(
                dict.fromkeys(MORFITT_SPECIALTY[x] for x in labels if x in MORFITT_SPECIALTY)
            )
            if not ids:
                continue
            out.append(
                record(
                    f"morfitt-{split}-{row['identifier'][:16]}",
                    row["abstract"],
                    "fr",
                    ids[0],
                    ids[1:],
                    "routine",
                )
            )
    return out


def build_morfitt(train_tsv, dev_tsv, test_tsv, out_eval, out_train):
    """Published split: test -> eval; train + dev -> training file."""
    write_jsonl(out_eval, morfitt_rows(test_tsv, "test"))
    write_jsonl(out_train, morfitt_rows(train_tsv, "train") + morfitt_rows(dev_tsv, "dev"))


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "nhamcs":
        build_nhamcs(*args)
    elif cmd == "abstracts":
        build_abstracts(*args)
    elif cmd == "fig8":
        build_fig8(*args)
    elif cmd == "morfitt":
        build_morfitt(*args)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
