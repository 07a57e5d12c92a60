"""Words of the digests in French and English (the subscriber's `language`, first entry)."""

from __future__ import annotations

SPECIALTY_NAMES = {
    "fr": {
        "cardiology": "Cardiologie",
        "dermatology": "Dermatologie",
        "emergency": "Urgences",
        "endocrinology": "Endocrinologie",
        "ent": "ORL",
        "gastroenterology": "Gastro-entérologie",
        "general_practice": "Médecine générale",
        "gynecology_obstetrics": "Gynécologie-obstétrique",
        "infectious_disease": "Infectiologie",
        "nephrology_urology": "Néphrologie-urologie",
        "neurology": "Neurologie",
        "oncology_hematology": "Onco-hématologie",
        "ophthalmology": "Ophtalmologie",
        "orthopedics_trauma": "Orthopédie-traumatologie",
        "pediatrics": "Pédiatrie",
        "pharmacology": "Pharmacologie",
        "psychiatry": "Psychiatrie",
        "pulmonology": "Pneumologie",
        "radiology": "Radiologie",
        "rheumatology": "Rhumatologie",
    },
    "en": {
        "cardiology": "Cardiology",
        "dermatology": "Dermatology",
        "emergency": "Emergency medicine",
        "endocrinology": "Endocrinology",
        "ent": "ENT",
        "gastroenterology": "Gastroenterology",
        "general_practice": "General practice",
        "gynecology_obstetrics": "Obstetrics & gynecology",
        "infectious_disease": "Infectious diseases",
        "nephrology_urology": "Nephrology & urology",
        "neurology": "Neurology",
        "oncology_hematology": "Oncology & hematology",
        "ophthalmology": "Ophthalmology",
        "orthopedics_trauma": "Orthopedics & trauma",
        "pediatrics": "Pediatrics",
        "pharmacology": "Pharmacology",
        "psychiatry": "Psychiatry",
        "pulmonology": "Pulmonology",
        "radiology": "Radiology",
        "rheumatology": "Rheumatology",
    },
}


class Plural:
    """A phrase with a count: `.format(count=n)` picks the singular or the plural form.

    French uses the singular for 0 and 1 ("0 réponse", "1 réponse"), English for 1 only.
    """

    def __init__(self, lang: str, one: str, other: str):
        self.lang, self.one, self.other = lang, one, other

    def format(self, *, count: int, **kwargs: object) -> str:
        singular = count <= 1 if self.lang == "fr" else count == 1
        return (self.one if singular else self.other).format(count=count, **kwargs)


STRINGS: dict[str, dict[str, str | Plural]] = {
    "fr": {
        "urgent": "URGENT",
        "urgent_unsure": "URGENT ?",
        "soon": "Aujourd'hui",
        "routine": "Pas urgent",
        "subject_alert": "URGENT #DocTocToc : {specialty}",
        "subject_alert_unsure": "URGENT ? #DocTocToc : {specialty}",
        "subject_alert_soon": "#DocTocToc : {specialty}",
        "subject_digest": Plural(
            "fr",
            "#DocTocToc : {count} demande pour vous",
            "#DocTocToc : {count} demandes pour vous",
        ),
        "subject_student": "#DocTocToc : {count} cas à étudier",
        "intro_alert": "Un confrère demande de l'aide maintenant.",
        "intro_digest": Plural(
            "fr", "{count} demande dans vos spécialités.", "{count} demandes dans vos spécialités."
        ),
        "intro_student": "{count} cas réels, avec les réponses reçues.",
        "answered_section": "Déjà répondu",
        "replies": Plural("fr", "{count} réponse", "{count} réponses"),
        "age_now": "à l'instant",
        "age_minutes": "il y a {count} min",
        "age_hours": "il y a {count} h",
        "age_days": Plural("fr", "il y a {count} jour", "il y a {count} jours"),
        "subject_stale": "{subject} (posté {age})",
        "no_reply": "Pas encore de réponse",
        "open": "Voir le message",
        "why": "Indices",
        "photo": "Photo",
        "more": "et {count} de plus",
        "see_all": "tout voir",
        "wrong": "Mal classé ?",
        "correct": "Corriger",
        "unsubscribe": "Se désabonner",
        "footer": "Vous recevez ce message car vous êtes abonné·e au bot #DocTocToc ({specialties}).",
        "by": "par",
        "hidden_author": "auteur masqué",
        "uncertain": "classement incertain",
        "escalation": "Toujours sans réponse",
        "rest": "Suite",
    },
    "en": {
        "urgent": "URGENT",
        "urgent_unsure": "URGENT?",
        "soon": "Today",
        "routine": "Not urgent",
        "subject_alert": "URGENT #DocTocToc: {specialty}",
        "subject_alert_unsure": "URGENT? #DocTocToc: {specialty}",
        "subject_alert_soon": "#DocTocToc: {specialty}",
        "subject_digest": Plural(
            "en", "#DocTocToc: {count} request for you", "#DocTocToc: {count} requests for you"
        ),
        "subject_student": Plural(
            "en", "#DocTocToc: {count} case to study", "#DocTocToc: {count} cases to study"
        ),
        "intro_alert": "A colleague needs help now.",
        "intro_digest": Plural(
            "en", "{count} request in your specialties.", "{count} requests in your specialties."
        ),
        "intro_student": Plural(
            "en",
            "{count} real case, with the answers it received.",
            "{count} real cases, with the answers they received.",
        ),
        "answered_section": "Already answered",
        "replies": Plural("en", "{count} reply", "{count} replies"),
        "age_now": "just now",
        "age_minutes": "{count} min ago",
        "age_hours": "{count} h ago",
        "age_days": Plural("en", "{count} day ago", "{count} days ago"),
        "subject_stale": "{subject} (posted {age})",
        "no_reply": "No reply yet",
        "open": "Open the post",
        "why": "Cues",
        "photo": "Photo",
        "more": "and {count} more",
        "see_all": "see all",
        "wrong": "Wrong label?",
        "correct": "Correct it",
        "unsubscribe": "Unsubscribe",
        "footer": "You get this because you subscribed to the #DocTocToc bot ({specialties}).",
        "by": "by",
        "hidden_author": "author hidden",
        "uncertain": "uncertain label",
        "escalation": "Still unanswered",
        "rest": "More",
    },
}


def strings(lang: str) -> dict[str, str | Plural]:
    return STRINGS.get(lang, STRINGS["en"])


def age_text(lang: str, seconds: float) -> str:
    """How long ago a post was published: "il y a 3 h", "10 days ago"."""
    s = strings(lang)
    minutes = int(max(0, seconds) // 60)
    if minutes < 1:
        return str(s["age_now"])
    if minutes < 60:
        return s["age_minutes"].format(count=minutes)
    if minutes < 48 * 60:
        return s["age_hours"].format(count=minutes // 60)
    return s["age_days"].format(count=minutes // (24 * 60))


def specialty_name(lang: str, specialty: str | None) -> str:
    if specialty is None:
        return "?"
    return SPECIALTY_NAMES.get(lang, SPECIALTY_NAMES["en"]).get(specialty, specialty)
