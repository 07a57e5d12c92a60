#!/usr/bin/env python3
"""Build the specialty-knowledge TSVs of classifiers/data/knowledge/ from curated vocabularies.

What it does
    Reads code lists that others curated (ICD-10-CM, CIM-10, ICD-9-CM vol. 3 procedures, WHO ATC),
    labels every code with one of the 20 specialty ids of shared/TAXONOMY.md through the
    code-range rules of mapping.yaml (first matching rule wins; "drop" or no match = left out),
    and writes one compact TSV per source:

        code <TAB> lang <TAB> specialty <TAB> text        (UTF-8, header line, sorted by code)

    icd10cm_en.tsv     ICD-10-CM (CMS/NCHS, FY2021 order file), categories + subcategories (3-5 chars)
    icd10cm_inclusion_en.tsv  inclusion terms (synonyms) of the ICD-10-CM FY2021 tabular list XML
    cim10_fr.tsv       CIM-10 FR (ATIH, as shipped by AP-HP's edsnlp), 3-5 chars
    icd9proc_en.tsv    ICD-9-CM volume 3 procedures (4-digit codes, titles + inclusion terms)
    atc_en.tsv         WHO ATC levels 2-5 (group names and substance names)
    ccam_fr.tsv        CCAM acts (French procedures, ATIH file as saved in an R app), libellé

Inputs are read straight from the git snapshots that the `fetch` tool put under /work/.mirror,
at pinned commits, so the output is deterministic (no network, no randomness, sorted output):

    python3 build_knowledge.py \
        --icd10cm /work/.mirror/StefanoTrv+simple_icd_10_CM/repo \
        --cim10   /work/.mirror/aphp+edsnlp/repo \
        --icd9proc /work/.mirror/ulpandms+icd9-cm-vol3-api/repo \
        --atc     /work/.mirror/fabkury+atcd/repo \
        --ccam    /work/.mirror/GuillaumePressiat+shiny.ehoh/repo \
        [--out DIR] [--mapping mapping.yaml]

Any source argument may be omitted; its TSV is then left untouched. Needs Python 3.9+ and PyYAML.
Text is whitespace-normalised; exact duplicate (specialty, text) pairs are written once; each
ICD-10 file is capped (categories first, then subcategories, then 5-character codes) at
--cap-icd10 lines (default 25,000) and procedures at --cap-proc (default 15,000).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from bot.core.labels import SPECIALTIES as _IDS  # noqa: E402  (the 20 ids of TAXONOMY.md)

SPECIALTIES = set(_IDS)

# Pinned snapshots: (commit, path inside the repository)
PINS = {
    "icd10cm": (
        "79ed12a0b803df634544d8ba2394bb7b3d0a2fd9",
        "package-files/dist/simple_icd_10_cm-1.2.0-py3-none-any.whl",
    ),
    "cim10": ("c04ccb90106ff0309bf07ee6a1e0294db1ef2f3b", "edsnlp/resources/cim10.csv.gz"),
    "icd9proc": ("6d4886d9eec3bf213f1e9e4bf01093fc87e26abc", "icd_9_cm_vol3.json"),
    "atc": ("1e92aec7c52c7e324080416294bb8e68cf686685", "WHO ATC-DDD 2026-04-25.csv"),
    "ccam": ("1290a6ca92c3d1f7a1223aadf3a0d021b3970b41", "oncle_ccam/ccam18.Rds"),
}
ICD10CM_MEMBER = "simple_icd_10_cm/data/icd10cm-order-Jan-2021.txt"


def git_blob(repo: Path, key: str) -> bytes:
    commit, path = PINS[key]
    return subprocess.run(
        ["git", "--git-dir", str(repo), "show", f"{commit}:{path}"], check=True, capture_output=True
    ).stdout


# ----------------------------------------------------------------------------- mapping
class Mapper:
    """First-match-wins code-range rules from one section of mapping.yaml."""

    def __init__(self, rules):
        self.rules = []
        for rng, spec in rules:
            if spec != "drop" and spec not in SPECIALTIES:
                raise ValueError(f"unknown specialty {spec!r} for {rng}")
            if rng.startswith("re:"):
                self.rules.append((re.compile(rng[3:]), None, spec))
                continue
            lo, _, hi = rng.partition("-")
            lo = lo.replace(".", "").strip()
            hi = (hi or lo).replace(".", "").strip()
            if len(lo) != len(hi):
                raise ValueError(f"range bounds of unequal length: {rng}")
            self.rules.append((lo, hi, spec))

    def __call__(self, code: str):
        c = code.replace(".", "")
        for lo, hi, spec in self.rules:
            if hi is None:  # regular expression rule
                hit = lo.search(c) is not None
            else:
                n = len(lo)
                hit = len(c) >= n and lo <= c[:n] <= hi
            if hit:
                return None if spec == "drop" else spec
        return None


def load_mapping(path: Path):
    with open(path, encoding="utf-8") as f:
        data = yaml.load(f, Loader=yaml.BaseLoader)  # every scalar stays a string ("00.66")
    maps = {k: Mapper(v) for k, v in data.items()}
    # CIM-10 tries its overrides first, then the shared icd10 rules
    maps["cim10"] = Mapper(list(data.get("cim10_overrides", [])) + list(data["icd10"]))
    return maps


# ----------------------------------------------------------------------------- helpers
WS = re.compile(r"\s+")
DIGITS = re.compile(r"\d+")


def clean(text: str) -> str:
    return WS.sub(" ", text).strip()


def dotted(code: str) -> str:
    return code if len(code) <= 3 else code[:3] + "." + code[3:]


def write_tsv(path: Path, rows):
    rows = sorted(rows)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("code\tlang\tspecialty\ttext\n")
        for code, lang, spec, text in rows:
            f.write(f"{code}\t{lang}\t{spec}\t{text}\n")
    return rows


def finish_icd10(items, mapper, lang, cap):
    """items: (code_without_dot, text). Keep 3-5 chars, map, dedupe, cap by code length."""
    out, seen = [], set()
    for code, text in sorted(items, key=lambda x: (len(x[0]), x[0])):
        if not 3 <= len(code) <= 5:
            continue
        if len(code) == 5 and code[0] in "ST":
            continue  # injury 5th-character detail (open/closed, laterality) adds no topic words
        spec = mapper(code)
        text = clean(text)
        if spec is None or not text or (spec, text.lower()) in seen:
            continue
        seen.add((spec, text.lower()))
        out.append((dotted(code), lang, spec, text))
        if len(out) >= cap:
            break
    return out


# ----------------------------------------------------------------------------- sources
def build_icd10cm(repo: Path, mapper, cap):
    whl = zipfile.ZipFile(io.BytesIO(git_blob(repo, "icd10cm")))
    raw = whl.read(ICD10CM_MEMBER).decode("latin-1")
    items = []
    for line in raw.splitlines():
        # CMS order file, fixed width: order(5) sp code(7) sp header/valid(1) sp short(60) sp long
        if len(line) < 16:
            continue
        items.append((line[6:13].strip(), line[77:].strip()))
    return finish_icd10(items, mapper, "en", cap)


ICD10CM_XML = "simple_icd_10_cm/data/icd10cm_tabular_2021.xml"
NOS = re.compile(r"\s+NOS\b")


def build_icd10cm_inclusion(repo: Path, mapper, cap):
    """Inclusion terms of the ICD-10-CM tabular list (synonyms such as 'Lumbago NOS')."""
    import xml.etree.ElementTree as ET

    whl = zipfile.ZipFile(io.BytesIO(git_blob(repo, "icd10cm")))
    root = ET.fromstring(whl.read(ICD10CM_XML))
    items = []
    for diag in root.iter("diag"):
        code = (diag.findtext("name") or "").replace(".", "").strip()
        for inc in diag.findall("inclusionTerm"):
            for note in inc.findall("note"):
                items.append((code, NOS.sub("", note.text or "")))
    out, seen = [], set()
    for code, text in sorted(items, key=lambda x: (len(x[0]), x[0], x[1])):
        spec = mapper(code)
        text = clean(text)
        if spec is None or len(text) < 3 or (spec, text.lower()) in seen:
            continue
        seen.add((spec, text.lower()))
        out.append((dotted(code), "en", spec, text))
        if len(out) >= cap:
            break
    return out


SU_TAG = re.compile(r"^\*+\s*SU\d+\s*\*+\s*")


def build_cim10(repo: Path, mapper, cap):
    text = gzip.decompress(git_blob(repo, "cim10")).decode("utf-8")
    items = []
    for row in csv.DictReader(io.StringIO(text)):
        label = SU_TAG.sub("", row["long"] or "")
        if label.lower().startswith("usage urgent de"):
            continue  # reserved placeholder codes
        items.append((row["code"].strip(), label))
    return finish_icd10(items, mapper, "fr", cap)


PROC_CUT = re.compile(r"\s+(Note:|Code also|Code first|Omit code).*$", re.S)


def build_icd9proc(repo: Path, mapper, cap):
    data = json.loads(git_blob(repo, "icd9proc"))
    out, seen = [], set()
    for entry in sorted(data, key=lambda e: e["icd_code_pcs"]):
        code = entry["icd_code_pcs"].strip()
        spec = mapper(code)
        text = clean(PROC_CUT.sub("", entry.get("procedure_desc") or ""))
        text = text.replace("Includes:", "").strip()
        if len(text) > 300:
            text = text[:300].rsplit(" ", 1)[0].strip()
        if spec is None or not text or (spec, text.lower()) in seen:
            continue
        seen.add((spec, text.lower()))
        out.append((code, "en", spec, text))
        if len(out) >= cap:
            break
    return out


def build_atc(repo: Path, mapper):
    text = git_blob(repo, "atc").decode("utf-8")
    out, seen = [], set()
    for row in csv.DictReader(io.StringIO(text)):
        code = row["atc_code"].strip()
        if len(code) < 3:
            continue  # level 1 anatomical groups are too broad
        name = clean(row["atc_name"])
        if len(code) < 7:
            name = name.capitalize() if name.isupper() else name  # group titles are UPPER CASE
        spec = mapper(code)
        if spec is None or not name or (code, name.lower()) in seen:
            continue
        seen.add((code, name.lower()))
        out.append((code, "en", spec, name))
    return out


# ----------------------------------------------------------------------------- CCAM (.Rds)
class _Rds:
    """Minimal reader for R's XDR serialisation (RDS v2/v3): enough for a data.frame of
    character/integer/double/logical columns. Written for this script; no R needed."""

    def __init__(self, data: bytes):
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if data[:2] != b"X\n":
            raise ValueError("not an XDR RDS stream")
        self.b, self.i, self.refs = data, 2, []
        version = self._int()
        self._int(), self._int()  # writer and minimal reader versions
        if version == 3:
            n = self._int()
            self.i += n  # native encoding name

    def _int(self):
        (v,) = struct.unpack(">i", self.b[self.i : self.i + 4])
        self.i += 4
        return v

    def read(self):
        flags = self._int()
        typ, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if typ in (254, 253, 242):  # NULL, global env, empty env
            return None
        if typ == 255:  # reference to an earlier symbol
            idx = flags >> 8 or self._int()
            return self.refs[idx - 1]
        if typ == 1:  # symbol
            name = self.read()
            self.refs.append(name)
            return name
        if typ == 9:  # CHARSXP
            n = self._int()
            if n == -1:
                return None
            v = self.b[self.i : self.i + n].decode("utf-8", "replace")
            self.i += n
            return v
        if typ == 2:  # pairlist (attributes)
            out = {}
            while True:
                if has_attr:
                    self.read()
                tag = self.read() if has_tag else None
                out[tag] = self.read()
                flags = self._int()
                if flags & 0xFF == 254:
                    return out
                has_attr, has_tag = flags & (1 << 9), flags & (1 << 10)
        n = self._int()
        if typ in (10, 13):  # logical, integer
            v = list(struct.unpack(f">{n}i", self.b[self.i : self.i + 4 * n]))
            self.i += 4 * n
        elif typ == 14:  # double
            v = list(struct.unpack(f">{n}d", self.b[self.i : self.i + 8 * n]))
            self.i += 8 * n
        elif typ in (16, 19):  # character vector, list
            v = [self.read() for _ in range(n)]
        else:
            raise ValueError(f"unsupported R type {typ}")
        attrs = self.read() if has_attr else None
        return (v, attrs) if attrs else v


def read_rds_frame(data: bytes):
    """data.frame -> dict column name -> list of values."""
    cols, attrs = _Rds(data).read()
    names = attrs["names"]
    names = names[0] if isinstance(names, tuple) else names
    return {
        name: (col[0] if isinstance(col, tuple) else col)
        for name, col in zip(names, cols, strict=False)
    }


def build_ccam(repo: Path, mapper, cap):
    frame = read_rds_frame(git_blob(repo, "ccam"))
    out, seen = [], set()
    for code, label in sorted(
        zip(frame["code"], frame["libelle"], strict=False), key=lambda x: x[0] or ""
    ):
        if not code or not label:
            continue
        spec = mapper(code)
        text = clean(label)
        key = (spec, DIGITS.sub("#", text.lower()))  # "pose de 4 implants" ~ "pose de 6 implants"
        if spec is None or key in seen:
            continue
        seen.add(key)
        out.append((code, "fr", spec, text))
        if len(out) >= cap:
            break
    return out


# ----------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--icd10cm", type=Path, help="git dir of StefanoTrv/simple_icd_10_CM")
    ap.add_argument("--cim10", type=Path, help="git dir of aphp/edsnlp")
    ap.add_argument("--icd9proc", type=Path, help="git dir of ulpandms/icd9-cm-vol3-api")
    ap.add_argument("--atc", type=Path, help="git dir of fabkury/atcd")
    ap.add_argument("--ccam", type=Path, help="git dir of GuillaumePressiat/shiny.ehoh")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--mapping", type=Path, default=HERE / "mapping.yaml")
    ap.add_argument("--cap-icd10", type=int, default=25000)
    ap.add_argument("--cap-proc", type=int, default=15000)
    a = ap.parse_args(argv)
    maps = load_mapping(a.mapping)
    a.out.mkdir(parents=True, exist_ok=True)
    jobs = [
        ("icd10cm", "icd10cm_en.tsv", lambda r: build_icd10cm(r, maps["icd10"], a.cap_icd10)),
        (
            "icd10cm",
            "icd10cm_inclusion_en.tsv",
            lambda r: build_icd10cm_inclusion(r, maps["icd10"], a.cap_icd10),
        ),
        ("cim10", "cim10_fr.tsv", lambda r: build_cim10(r, maps["cim10"], a.cap_icd10)),
        ("icd9proc", "icd9proc_en.tsv", lambda r: build_icd9proc(r, maps["icd9proc"], a.cap_proc)),
        ("atc", "atc_en.tsv", lambda r: build_atc(r, maps["atc"])),
        ("ccam", "ccam_fr.tsv", lambda r: build_ccam(r, maps["ccam"], a.cap_proc)),
    ]
    for key, fname, fn in jobs:
        repo = getattr(a, key)
        if repo is None:
            continue
        rows = write_tsv(a.out / fname, fn(repo))
        counts = {}
        for r in rows:
            counts[r[2]] = counts.get(r[2], 0) + 1
        print(f"{fname}: {len(rows)} lines", file=sys.stderr)
        for spec in sorted(counts):
            print(f"  {spec:22s} {counts[spec]}", file=sys.stderr)


if __name__ == "__main__":
    main()
