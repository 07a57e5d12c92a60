"""Words of the digests in French and English (the subscriber's `language`, first entry)."""

from __future__ import annotations

SPECIALTY_NAMES = {
    "fr": {
        "cardiology": "Cardiologie", "dermatology": "Dermatologie", "emergency": "Urgences",
        "endocrinology": "Endocrinologie", "ent": "ORL", "gastroenterology": "Gastro-entérologie",
        "general_practice": "Médecine générale", "gynecology_obstetrics": "Gynécologie-obstétrique",
        "infectious_disease": "Infectiologie", "nephrology_urology": "Néphrologie-urologie",
        "neurology": "Neurologie", "oncology_hematology": "Onco-hématologie",
        "ophthalmology": "Ophtalmologie", "orthopedics_trauma": "Orthopédie-traumatologie",
        "pediatrics": "Pédiatrie", "pharmacology": "Pharmacologie", "psychiatry": "Psychiatrie",
        "pulmonology": "Pneumologie", "radiology": "Radiologie", "rheumatology": "Rhumatologie",
    },
    "en": {
        "cardiology": "Cardiology", "dermatology": "Dermatology", "emergency": "Emergency medicine",
        "endocrinology": "Endocrinology", "ent": "ENT", "gastroenterology": "Gastroenterology",
        "general_practice": "General practice", "gynecology_obstetrics": "Obstetrics & gynecology",
        "infectious_disease": "Infectious diseases", "nephrology_urology": "Nephrology & urology",
        "neurology": "Neurology", "oncology_hematology": "Oncology & hematology",
        "ophthalmology": "Ophthalmology", "orthopedics_trauma": "Orthopedics & trauma",
        "pediatrics": "Pediatrics", "pharmacology": "Pharmacology", "psychiatry": "Psychiatry",
        "pulmonology": "Pulmonology", "radiology": "Radiology", "rheumatology": "Rheumatology",
    },
}

STRINGS = {
    "fr": {
        "urgent": "URGENT", "soon": "Aujourd'hui", "routine": "Pas urgent",
        "subject_alert": "URGENT #DocTocToc : {specialty}",
        "subject_alert_soon": "#DocTocToc : {specialty}",
        "subject_digest": "#DocTocToc : {count} demande(s) pour vous",
        "subject_student": "#DocTocToc : {count} cas à étudier",
        "intro_alert": "Un confrère demande de l'aide maintenant.",
        "intro_digest": "{count} demande(s) dans vos spécialités.",
        "intro_student": "{count} cas réels, avec les réponses reçues.",
        "answered_section": "Déjà répondu",
        "replies": "{count} réponse(s)", "no_reply": "Pas encore de réponse",
        "open": "Voir le message", "why": "Indices", "photo": "Photo",
        "more": "et {count} de plus", "see_all": "tout voir",
        "wrong": "Mal classé ?", "correct": "Corriger",
        "unsubscribe": "Se désabonner", "footer": "Vous recevez ce message car vous êtes abonné·e au bot #DocTocToc ({specialties}).",
        "by": "par", "hidden_author": "auteur masqué", "uncertain": "classement incertain",
        "escalation": "Toujours sans réponse",
        "rest": "Suite",
    },
    "en": {
        "urgent": "URGENT", "soon": "Today", "routine": "Not urgent",
        "subject_alert": "URGENT #DocTocToc: {specialty}",
        "subject_alert_soon": "#DocTocToc: {specialty}",
        "subject_digest": "#DocTocToc: {count} request(s) for you",
        "subject_student": "#DocTocToc: {count} cases to study",
        "intro_alert": "A colleague needs help now.",
        "intro_digest": "{count} request(s) in your specialties.",
        "intro_student": "{count} real cases, with the answers they received.",
        "answered_section": "Already answered",
        "replies": "{count} reply(ies)", "no_reply": "No reply yet",
        "open": "Open the post", "why": "Cues", "photo": "Photo",
        "more": "and {count} more", "see_all": "see all",
        "wrong": "Wrong label?", "correct": "Correct it",
        "unsubscribe": "Unsubscribe", "footer": "You get this because you subscribed to the #DocTocToc bot ({specialties}).",
        "by": "by", "hidden_author": "author hidden", "uncertain": "uncertain label",
        "escalation": "Still unanswered",
        "rest": "More",
    },
}


def strings(lang: str) -> dict[str, str]:
    return STRINGS.get(lang, STRINGS["en"])


def specialty_name(lang: str, specialty: str | None) -> str:
    if specialty is None:
        return "?"
    return SPECIALTY_NAMES.get(lang, SPECIALTY_NAMES["en"]).get(specialty, specialty)
