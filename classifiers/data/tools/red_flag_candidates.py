"""List the corpus requests that the triage red flags of lexicons/redflags.yaml read as a
current case with a red flag but whose gold urgency is not `urgent`: the candidates for the
TAXONOMY relabel of December 2026 (each was then reviewed by a person, see
data/relabel-2026-12.jsonl). Also lists gold non-requests that carry a red flag.

    .venv/bin/python classifiers/data/tools/red_flag_candidates.py > /tmp/candidates.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from classifiers.corpus import load_corpus  # noqa: E402
from classifiers.features import Featurizer  # noqa: E402
from classifiers.lexicons import load_raw  # noqa: E402


def main() -> None:
    fz = Featurizer(load_raw())
    for e in load_corpus():
        doc = fz.analyze(e.text)
        red = [c.text for c in doc.cues if c.kind == "red_flag" and not (c.negated or c.earlier)]
        # whole-post past markers, and the history / "... ago" phrases next to a red flag
        past = [c.text for c in doc.cues if c.kind in ("past", "history", "ago") and not c.negated]
        if not red:
            continue
        if (e.is_request and e.urgency != "urgent") or not e.is_request:
            print(json.dumps({
                "id": e.id, "text": e.text, "is_request": e.is_request,
                "specialty": e.specialty, "urgency": e.urgency,
                "red_flags": red, "past": past,
            }, ensure_ascii=False))  # fmt: skip


if __name__ == "__main__":
    main()
