"""NHAMCS 2010 emergency-department visits -> the urgency evaluation set and the training
file (see README.md, section nhamcs2010_ed_urgency.jsonl): reading the fixed-width public-use
file, reason-for-visit labels, the specialty mapping and the post templates."""

import random
import re

from common import SEED, record, stratified_sample, write_jsonl

NH_COLS = {
    "AGE": (4, 6),
    "SEX": (21, 21),
    "IMMEDR": (61, 62),
    "RFV1": (71, 75),
    "RFV2": (76, 80),
    "RFV3": (81, 85),
    "INJURY": (88, 88),
    "IMMEDFL": (312, 312),
}


def nh_field(line, name):
    a, b = NH_COLS[name]
    return line[a - 1 : b].strip()


def load_rfv_labels(ed22for_path):
    """5-digit reason-for-visit code -> label, from NCHS's SAS format file (VALUE RFVF)."""
    labels, sec = {}, None
    with open(ed22for_path, encoding="latin-1") as f:
        for line in f:
            s = line.strip()
            if s.upper().startswith("VALUE"):
                sec = s.split()[1].upper()
                continue
            if sec == "RFVF":
                m = re.match(r"(-?\d+)\s*=\s*['\"](.*)['\"]", s)
                if m:
                    labels[m.group(1)] = m.group(2)
    return labels


# NCHS's format file cuts long labels at 40 characters ("...").  Completions of the
# frequent ones, worded after the RFV classification (doc2010.pdf, Appendix II); the rest
# are cut at their last comma or last whole word (rfv_text).
RFV_FULL = {
    "11650": "psychological or mental problem",
    "19101": "low back pain, ache, soreness, discomfort",
    "58050": "motor vehicle accident",
    "19401": "shoulder pain, ache, soreness, discomfort",
    "55050": "injury of head, neck and face",
    "15450": "stomach and abdominal pain, cramps and spasms",
    "19351": "foot and toe pain, ache, soreness, discomfort",
    "28000": "carbuncle, furuncle, boil, cellulitis, abscess",
    "19601": "hand and finger pain, ache, soreness, discomfort",
    "55700": "injury of hand and fingers",
    "59300": "complication of a surgical or medical procedure",
    "14450": "head cold, upper respiratory infection (coryza)",
    "55450": "injury of foot and toes",
    "12400": "other symptoms referable to the nervous system",
    "10550": "pain, site unspecified",
    "31300": "general psychiatric or psychological examination",
    "47351": "police involvement in the visit",
    "27350": "diagnosed complication of pregnancy or puerperium",
    "22150": "other endocrine, nutritional or metabolic disease",
    "54050": "contusions, abrasions, bruises of head, neck and face",
    "55500": "injury of shoulder",
    "59002": "ingestion, inhalation or exposure to a potentially poisonous product",
    "56200": "foreign body, other site",
    "10801": "infant crying too much, fussy, fidgety, irritable",
    "54200": "contusions, abrasions, bruises of lower extremity",
    "17151": "pain, aching, tenderness of the scrotum or testes",
    "16150": "other symptoms referable to the digestive system",
    "54250": "contusions, abrasions, bruises of upper extremity",
    "13650": "other symptoms referable to the ears",
    "54300": "contusion, abrasion, bruise",
    "13350": "other symptoms referable to the eye",
    "10460": "symptoms of the face",
    "26700": "disease of the liver, gallbladder or pancreas",
    "19003": "limitation of movement, stiffness of the neck",
    "20350": "other infectious or parasitic disease",
    "16003": "change in size, color, shape or odor of stools",
    "45600": "other therapeutic procedure",
    "57050": "burn of head, neck and face",
    "23700": "other disease of the central nervous system",
    "17152": "swelling, inflammation of the scrotum or testes",
    "10850": "nonviral infection",
    "19701": "joint pain, ache, soreness, discomfort",
    "18402": "infection of skin of arm, hand or fingers",
    "13102": "discharge from eye, tearing, watering",
    "55200": "injury of chest and abdomen",
    "42000": "preoperative visit",
    "26500": "disease of the esophagus, stomach or duodenum",
    "29100": "other musculoskeletal or connective tissue disease",
    "12800": "other symptoms of the cardiovascular or lymphatic system",
    "19651": "muscle pain, ache, soreness",
    "17001": "pain, aching, soreness, tenderness of the penis",
    "16551": "involuntary urination, can't hold urine",
    "17950": "other symptoms of the female reproductive system",
    "54150": "contusions, abrasions, bruises of trunk",
    "14850": "other symptoms referable to the respiratory system",
    "13401": "infection, inflammation, swelling of eyelids",
    "26000": "upper respiratory infection",
    "50150": "fracture or dislocation of trunk area",
    "17401": "excessively heavy menstrual flow (menorrhagia)",
    "19652": "muscle cramps, contractures, spasms",
}
STOP_TAIL = {"to", "of", "the", "and", "or", "a", "an", "in", "with", "for", "by", "from", "not"}


def rfv_text(label, code=None):
    """'Pain, site not referable..., NOS' -> readable lower-case complaint text."""
    if code in RFV_FULL:
        return RFV_FULL[code]
    if label.endswith("..."):
        label = label[:-3]
        if "," in label:
            label = label[: label.rfind(",")]
        else:
            words = label.split()[:-1]
            while words and words[-1].lower() in STOP_TAIL:
                words.pop()
            label = " ".join(words)
    t = re.sub(
        r"^For (results|other|radiolog|cytolog)", r"\1", label
    )  # "For results of ..." (6100-6700)
    t = re.sub(r"\b(NOS|NEC)\b", "", t)
    t = re.sub(r"\((?:excludes|includes)[^)]*\)", "", t, flags=re.I)
    t = re.sub(r"\s*,\s*(,|$)", r"\1", t).strip(" ,;-")
    t = re.sub(r"\s+", " ", t)
    if t[:2].isupper() or re.match(r"[A-Z]{2,}", t):  # EKG, HIV, COPD... keep case
        return t
    return t[:1].lower() + t[1:]


# Reason-for-visit classification (NCHS RFV, 4-digit groups) -> specialty id.
# Ranges are the RFV modules (doc2010 Appendix II, "Summary of codes"); finer entries
# override coarser ones.  Each line says why.
RFV_SPECIALTY_RANGES = [
    ((1001, 1099), "emergency"),  # general symptoms (fever, weakness, malaise...) in an ED
    ((1100, 1199), "psychiatry"),  # symptoms referable to psychological/mental disorders
    ((1200, 1259), "neurology"),  # symptoms referable to the nervous system
    ((1260, 1299), "cardiology"),  # cardiovascular and lymphatic symptoms
    ((1300, 1344), "ophthalmology"),  # eye symptoms
    ((1345, 1399), "ent"),  # ear symptoms
    ((1400, 1499), "pulmonology"),  # respiratory symptoms (nose/throat overridden below)
    ((1500, 1639), "gastroenterology"),  # digestive symptoms (mouth/teeth overridden below)
    ((1640, 1729), "nephrology_urology"),  # urinary and male genital symptoms
    ((1730, 1829), "gynecology_obstetrics"),  # female genital, pregnancy, breast
    ((1830, 1899), "dermatology"),  # skin, nails, hair
    ((1900, 1999), "rheumatology"),  # musculoskeletal symptoms (ortho if injury: see below)
    ((2001, 2099), "infectious_disease"),  # infective and parasitic diseases
    ((2100, 2199), "oncology_hematology"),  # neoplasms
    ((2200, 2249), "endocrinology"),  # endocrine, nutritional, metabolic
    ((2250, 2299), "oncology_hematology"),  # diseases of blood and blood-forming organs
    ((2300, 2349), "psychiatry"),  # mental disorders
    ((2350, 2399), "neurology"),  # diseases of the nervous system
    ((2400, 2449), "ophthalmology"),  # diseases of the eye
    ((2450, 2499), "ent"),  # diseases of the ear
    ((2500, 2599), "cardiology"),  # diseases of the circulatory system
    ((2600, 2649), "pulmonology"),  # diseases of the respiratory system
    ((2650, 2699), "gastroenterology"),  # diseases of the digestive system
    ((2700, 2712), "nephrology_urology"),  # cystitis, urinary tract, male genital organs
    ((2713, 2749), "gynecology_obstetrics"),  # breast, PID, vaginitis, female organs, pregnancy
    ((2800, 2899), "dermatology"),  # diseases of the skin
    ((2900, 2949), "rheumatology"),  # diseases of musculoskeletal/connective tissue
    ((2950, 2999), "pediatrics"),  # congenital anomalies, perinatal conditions
    ((3100, 3199), "general_practice"),  # general examinations
    ((3200, 3229), "gynecology_obstetrics"),  # pregnancy test, prenatal/postpartum/breast/gyn exam
    ((3300, 3399), "general_practice"),  # diagnostic tests (radiology etc. overridden below)
    ((3400, 3499), "infectious_disease"),  # inoculations, exposures to infectious disease
    ((3500, 3599), "gynecology_obstetrics"),  # family planning
    ((4100, 4199), "pharmacology"),  # medications, injections, non-compliance
    ((4200, 4299), "general_practice"),  # pre/post-operative visits
    ((4400, 4599), "general_practice"),  # therapies and therapeutic procedures
    ((4600, 4699), "general_practice"),  # counselling
    ((4700, 4799), "general_practice"),  # social problems
    ((4800, 4899), "general_practice"),  # progress visit
    ((5000, 5199), "orthopedics_trauma"),  # fractures, dislocations, sprains, strains
    ((5200, 5599), "emergency"),  # lacerations, punctures, contusions, injuries NOS
    ((5600, 5699), "emergency"),  # foreign bodies (eye/nose overridden below)
    ((5700, 5799), "emergency"),  # burns, bites
    ((5800, 5899), "emergency"),  # accidents, violence, arrests, unconscious on arrival
    ((5900, 5999), "emergency"),  # poisoning and adverse effects
    ((6100, 6799), "general_practice"),  # for test results (refined below)
    ((7100, 7199), "general_practice"),  # administrative examinations
]
RFV_SPECIALTY_OVERRIDES = {
    1010: "infectious_disease",  # fever
    1050: "cardiology",  # chest pain and related symptoms (alt emergency)
    1030: "cardiology",  # fainting (syncope): cardiac work-up first (alt neurology)
    1075: "pediatrics",  # growth and developmental disorders
    1080: "pediatrics",  # general symptoms of infants
    1085: "infectious_disease",  # general or unspecified nonviral infection
    1140: "pulmonology",  # smoking problems (tobacco) - alt psychiatry
    1225: "ent",  # vertigo-dizziness: ENT or neurology (alt neurology)
    1275: "oncology_hematology",  # symptoms of lymph glands
    1400: "ent",
    1405: "ent",
    1410: "ent",
    1435: "ent",  # nose, sinus, sneezing
    1445: "ent",  # head cold, upper respiratory infection
    1450: "infectious_disease",  # general viral infection
    1455: "ent",
    1460: "ent",
    1480: "ent",  # throat, tonsils, voice
    1500: "ent",
    1501: "ent",
    1505: "ent",
    1510: "ent",
    1515: "ent",  # teeth, jaw, lips, mouth, tongue
    1800: "gynecology_obstetrics",
    1805: "oncology_hematology",  # breast pain; breast lump
    1820: "endocrinology",  # hormone deficiency or problem
    2010: "ent",  # streptococcal (throat) infection - alt infectious_disease
    2201: "dermatology",  # diabetic skin ulcer (wound check) - alt endocrinology
    2210: "rheumatology",  # gout, hyperuricemia
    2320: "psychiatry",
    2321: "psychiatry",  # alcoholism, drug dependence
    2525: "neurology",  # cerebrovascular disease
    2545: "gastroenterology",  # hemorrhoids
    2600: "ent",
    2605: "ent",
    2635: "ent",  # URI, tonsillitis, hay fever
    2631: "infectious_disease",
    2632: "infectious_disease",  # COVID-19
    3130: "psychiatry",  # general psychiatric examination
    3230: "ophthalmology",  # eye examination
    3235: "cardiology",  # heart examination
    3310: "endocrinology",  # glucose level determination
    3320: "cardiology",  # blood pressure test
    3325: "nephrology_urology",  # urine test
    3330: "gastroenterology",  # diagnostic endoscopies
    3340: "radiology",
    3345: "radiology",  # mammography; diagnostic radiology
    3350: "cardiology",  # EKG
    3355: "neurology",  # EEG
    3360: "ent",  # hearing test
    3365: "gynecology_obstetrics",  # pap smear
    4401: "emergency",  # cardiopulmonary resuscitation
    4405: "pulmonology",  # respiratory therapy
    4410: "psychiatry",  # psychotherapy
    4415: "oncology_hematology",
    4425: "oncology_hematology",  # radiation therapy, chemotherapy
    4507: "emergency",  # IV therapy, infusion
    4510: "nephrology_urology",  # urinary tract instrumentation and catheterization
    4515: "ophthalmology",  # glasses, contact lenses
    4518: "psychiatry",  # detoxification
    4525: "nephrology_urology",  # kidney dialysis
    4540: "orthopedics_trauma",  # cast, splint
    4555: "emergency",  # suture insertion/removal
    4604: "infectious_disease",  # HIV counselling
    5005: "emergency",  # head and face fractures (head injury triage)
    5410: "ophthalmology",
    5510: "ophthalmology",
    5600: "ophthalmology",  # eye contusion/injury/foreign body
    5525: "orthopedics_trauma",
    5530: "orthopedics_trauma",
    5535: "orthopedics_trauma",
    5540: "orthopedics_trauma",
    5545: "orthopedics_trauma",
    5550: "orthopedics_trauma",
    5555: "orthopedics_trauma",
    5560: "orthopedics_trauma",
    5565: "orthopedics_trauma",
    5570: "orthopedics_trauma",
    5515: "orthopedics_trauma",  # limb/joint/back injuries
    5605: "ent",  # nose foreign body
    5705: "dermatology",
    5710: "dermatology",
    5715: "dermatology",
    5720: "dermatology",
    5750: "dermatology",  # burns, sunburn - alt emergency
    5755: "dermatology",  # insect bites
    5800: "orthopedics_trauma",  # late effects of an old injury
    5818: "psychiatry",
    5820: "psychiatry",  # self-mutilation, suicide attempt (alt emergency)
    5830: "gynecology_obstetrics",  # rape (forensic gynecological exam) - alt emergency
    5905: "pharmacology",  # adverse effect of medication
    5910: "psychiatry",
    5915: "psychiatry",  # adverse effect of drug abuse / alcohol
    5930: "emergency",  # surgical complications
    6100: "endocrinology",  # blood glucose results
    6105: "cardiology",  # cholesterol results
    6106: "infectious_disease",  # HIV test results
    6110: "oncology_hematology",  # other blood test results
    6200: "nephrology_urology",  # urine test results
    6300: "oncology_hematology",  # cytology findings
    6400: "radiology",  # radiological findings
    6500: "cardiology",  # EKG results
    6600: "dermatology",  # skin test results
    7137: "emergency",  # direct admission to hospital
}
# Specialties an organ-specific child problem keeps (TAXONOMY: a child's problem is
# pediatrics unless it clearly belongs to an organ or surgical specialty).
PEDIATRIC_KEEPS = {
    "orthopedics_trauma",
    "dermatology",
    "ophthalmology",
    "ent",
    "psychiatry",
    "gynecology_obstetrics",
    "pediatrics",
}
# Usual second choice for some groups (alt_specialties).
RFV_ALTS = {
    1030: ["neurology"],
    1225: ["neurology"],
    1140: ["psychiatry"],
    2010: ["infectious_disease"],
    2201: ["endocrinology"],
    5818: ["emergency"],
    5820: ["emergency"],
    5830: ["emergency"],
    1050: ["emergency"],
    1260: ["emergency"],
    1265: ["emergency"],
}


def rfv_specialty(code5, injury, age):
    g = int(code5) // 10
    spec = RFV_SPECIALTY_OVERRIDES.get(g)
    if spec is None:
        for (a, b), s in RFV_SPECIALTY_RANGES:
            if a <= g <= b:
                spec = s
                break
    if spec is None:
        return None, []
    alts = list(RFV_ALTS.get(g, []))
    if 1900 <= g <= 1999 and injury == "1":  # musculoskeletal symptom after an injury
        alts.append(spec)
        spec = "orthopedics_trauma"
    if spec == "emergency" and injury != "1" and g < 2000:
        alts.append("general_practice")
    if age is not None and age < 16:
        if spec not in PEDIATRIC_KEEPS and injury != "1":  # injured child: keep trauma/ED
            alts.append(spec)
            spec = "pediatrics"
        else:
            alts.append("pediatrics")
    return spec, alts


# Immediacy (IMMEDR; ESI-like 5-level, 3/4-level systems rescaled by NCHS) -> urgency.
# 1 immediate, 2 emergent = the two top triage levels -> "urgent" (TAXONOMY red-flag rule);
# 3 urgent, 4 semi-urgent -> "soon" (a decision today, no immediate threat);
# 5 non-urgent -> "routine".  7 (no nursing triage) and imputed values are dropped.
IMMEDR_URGENCY = {1: "urgent", 2: "urgent", 3: "soon", 4: "soon", 5: "routine"}

EN_TEMPLATES = [  # the eval set uses template 0 only; the training set rotates them all
    "Patient ({who}) with {c}, what do you think? #DocTocToc",
    "#DocTocToc {Who} presenting with {c}. Thoughts?",
    "{Who}, {c}. Any advice? #DocTocToc",
    "Patient with {c} ({who}) #DocTocToc",
    "#DocTocToc I have a {who} here with {c}, what would you do?",
]


def who(age, sex):
    if age == 0:
        return "infant under 1 year, " + ("girl" if sex == "1" else "boy")
    noun = ("girl" if sex == "1" else "boy") if age < 18 else ("woman" if sex == "1" else "man")
    return f"{age}-year-old {noun}"


def build_nhamcs(raw_path, ed22for_path, out_eval, out_train, n_eval=2000, n_train=10000):
    n_eval, n_train = int(n_eval), int(n_train)
    labels = load_rfv_labels(ed22for_path)
    with open(raw_path, "rb") as f:
        lines = f.read().decode("latin-1").split("\n")
    rows = []
    for i, line in enumerate(lines, start=1):
        if len(line) < 312:
            continue
        if nh_field(line, "IMMEDFL") != "0":  # imputed triage level: not a nurse's grade
            continue
        try:
            level = int(nh_field(line, "IMMEDR"))
        except ValueError:
            continue
        if level not in IMMEDR_URGENCY:
            continue
        codes = [nh_field(line, k) for k in ("RFV1", "RFV2", "RFV3")]
        codes = [c for c in codes if c.isdigit() and c in labels and not c.startswith("899")]
        if not codes or codes[0] != nh_field(line, "RFV1"):
            continue
        age = int(nh_field(line, "AGE"))
        sex = nh_field(line, "SEX")
        injury = nh_field(line, "INJURY")
        spec, alts = rfv_specialty(codes[0], injury, age)
        if spec is None:
            continue
        complaint = ", ".join(dict.fromkeys(rfv_text(labels[c], c) for c in codes))
        rows.append(
            {
                "row": i,
                "level": level,
                "age": age,
                "sex": sex,
                "c": complaint,
                "spec": spec,
                "alts": alts,
            }
        )
    rng = random.Random(SEED)
    order = list(range(len(rows)))
    rng.shuffle(order)
    n_test = len(rows) // 5  # fixed-seed 20 % test pool / 80 % train pool
    test_pool = sorted((rows[j] for j in order[:n_test]), key=lambda r: r["row"])
    train_pool = sorted((rows[j] for j in order[n_test:]), key=lambda r: r["row"])
    # eval: urgent over-represented (~25 %, natural rate 12 %) so urgent recall and
    # precision are measurable; every level-1 row of the test pool, level 2 fills to 500.
    n1 = sum(1 for r in test_pool if r["level"] == 1)
    quotas = {1: n1, 2: 500 - n1, 3: 700, 4: 550, 5: n_eval - 500 - 700 - 550}
    ev = stratified_sample(test_pool, lambda r: r["level"], quotas, random.Random(SEED + 1))
    rng_t = random.Random(SEED + 2)
    tr = list(train_pool)
    rng_t.shuffle(tr)
    tr = tr[:n_train]

    def to_rec(r, template):
        w = who(r["age"], r["sex"])
        text = template.format(who=w, Who=w[:1].upper() + w[1:], c=r["c"])
        return record(
            f"nhamcs2010ed-{r['row']}", text, "en", r["spec"], r["alts"], IMMEDR_URGENCY[r["level"]]
        )

    write_jsonl(out_eval, [to_rec(r, EN_TEMPLATES[0]) for r in ev])
    write_jsonl(
        out_train, [to_rec(r, EN_TEMPLATES[k % len(EN_TEMPLATES)]) for k, r in enumerate(tr)]
    )


# --------------------------------------------------------------------------- Medical abstracts
# Schopf et al. 2022, 5 classes; "general pathological conditions" has no single specialty
# and is left out.
