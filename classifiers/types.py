"""What the classifier returns, and the JSON shape of `doctoctoc classify` (a contract)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Classification:
    is_request: bool
    specialty: str | None
    specialties: list[dict[str, Any]]  # top 3: [{"id": ..., "score": ...}], best first
    urgency: str | None
    urgency_score: float
    cues: list[str] = field(default_factory=list)
    uncertain: bool = False
    model_version: str = ""
    lang: str | None = None

    def contract(self, item_id: Any) -> dict[str, Any]:
        """The exact output line of `doctoctoc classify`."""
        return {
            "id": item_id,
            "is_request": self.is_request,
            "specialty": self.specialty,
            "specialties": [
                {"id": s["id"], "score": round(float(s["score"]), 4)} for s in self.specialties[:3]
            ],
            "urgency": self.urgency,
            "urgency_score": round(float(self.urgency_score), 4),
        }


class Classifier(Protocol):
    version: str

    def classify(
        self, texts: list[str], langs: list[str | None] | None = None
    ) -> list[Classification]:
        """Classify posts in order; `langs` fills nothing, it only helps when known."""
        ...
