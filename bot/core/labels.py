"""Label ids from TAXONOMY.md (shared/TAXONOMY.md, kept outside this repository). Every stage
uses exactly these."""

from __future__ import annotations

SPECIALTIES: tuple[str, ...] = (
    "cardiology",
    "dermatology",
    "emergency",
    "endocrinology",
    "ent",
    "gastroenterology",
    "general_practice",
    "gynecology_obstetrics",
    "infectious_disease",
    "nephrology_urology",
    "neurology",
    "oncology_hematology",
    "ophthalmology",
    "orthopedics_trauma",
    "pediatrics",
    "pharmacology",
    "psychiatry",
    "pulmonology",
    "radiology",
    "rheumatology",
)

URGENCIES: tuple[str, ...] = ("routine", "soon", "urgent")

# Rank used by routing: a request "reaches" min_urgency when its rank is >= that rank.
URGENCY_RANK: dict[str, int] = {u: i for i, u in enumerate(URGENCIES)}


def urgency_at_least(urgency: str | None, threshold: str) -> bool:
    if urgency is None:
        return False
    return URGENCY_RANK[urgency] >= URGENCY_RANK[threshold]
