"""Model artifacts: a skops file (no pickle) plus a small JSON metadata file beside it.

The skops file holds only plain data (a dict of strings, numbers and NumPy arrays), so it
can be audited and loaded with `skops.io.load(path, trusted=[])`. Importing skops pulls in
all of scikit-learn (about 2 s), so serving reads the same file with a small reader for those
plain node types (NumPy arrays are read with `allow_pickle=False`); anything else in the file
is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bot.core.errors import ClassifierError
from classifiers.model import Head, ModelState

FORMAT = "doctoctoc-classifier/1"
MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = MODELS_DIR / "doctoctoc-classifier.skops"


def metadata_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def compute_version(state: ModelState) -> str:
    """A content hash: the same training data and settings always give the same version."""
    h = hashlib.sha256()
    h.update(json.dumps(state.config, sort_keys=True).encode())
    h.update(json.dumps(state.lexicons, sort_keys=True, ensure_ascii=False).encode())
    h.update("\n".join(state.vocabulary).encode())
    for arr in (state.idf, state.weights, state.bias):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(json.dumps([hd.to_dict() for hd in state.heads], sort_keys=True).encode())
    return f"lexlin-{h.hexdigest()[:10]}"


def to_plain(state: ModelState) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": state.version,
        "config": json.dumps(state.config, sort_keys=True),
        "lexicons": json.dumps(state.lexicons, sort_keys=True, ensure_ascii=False),
        "vocabulary": "\n".join(state.vocabulary),
        "n_text": int(state.n_text),
        "idf": np.asarray(state.idf, dtype=np.float64),
        "weights": np.asarray(state.weights, dtype=np.float32),
        "bias": np.asarray(state.bias, dtype=np.float64),
        "heads": json.dumps([h.to_dict() for h in state.heads]),
        "meta": json.dumps(state.meta, sort_keys=True),
    }


def from_plain(obj: dict[str, Any]) -> ModelState:
    if obj.get("format") != FORMAT:
        raise ValueError(f"unknown artifact format {obj.get('format')!r} (expected {FORMAT})")
    vocab_blob = obj["vocabulary"]
    return ModelState(
        version=str(obj["version"]),
        config=json.loads(obj["config"]),
        lexicons=json.loads(obj["lexicons"]),
        vocabulary=vocab_blob.split("\n") if vocab_blob else [],
        n_text=int(obj["n_text"]),
        idf=np.asarray(obj["idf"], dtype=np.float64),
        weights=np.asarray(obj["weights"], dtype=np.float32),
        bias=np.asarray(obj["bias"], dtype=np.float64),
        heads=[Head(**h) for h in json.loads(obj["heads"])],
        meta=json.loads(obj.get("meta") or "{}"),
    )


def save(state: ModelState, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write the skops artifact and its JSON metadata (version, metrics, split seed...)."""
    import skops.io as sio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    sio.dump(to_plain(state), tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    tmp.replace(path)
    meta = {"version": state.version, "artifact": path.name, **(metadata or state.meta)}
    metadata_path(path).write_text(
        json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return path


class _Unsupported(Exception):
    pass


def _node(node: dict[str, Any], zf: zipfile.ZipFile) -> Any:
    loader = node.get("__loader__")
    if loader == "DictNode":
        return {k: _node(v, zf) for k, v in node["content"].items()}
    if loader == "ListNode":
        return [_node(v, zf) for v in node["content"]]
    if loader == "JsonNode":
        return json.loads(node["content"])
    if loader == "NdArrayNode" and node.get("type") == "numpy":
        with zf.open(node["file"]) as fh:
            return np.load(io.BytesIO(fh.read()), allow_pickle=False)
    raise _Unsupported(f"unsupported node {loader!r}")


def read_plain(path: Path) -> dict[str, Any]:
    """Read a plain-data skops file without importing skops or scikit-learn."""
    with zipfile.ZipFile(path) as zf:
        schema = json.loads(zf.read("schema.json"))
        obj = _node(schema, zf)
    if not isinstance(obj, dict):
        raise _Unsupported("the artifact is not a dict")
    return obj


def load_state(path: str | Path | None = None) -> ModelState:
    path = Path(path) if path else DEFAULT_MODEL
    if not path.is_file():
        raise ClassifierError(
            f"classifier model not found: {path} (build it with `doctoctoc train`)"
        )
    try:
        return from_plain(read_plain(path))
    except _Unsupported as exc:
        raise ClassifierError(
            f"classifier model {path} holds objects that are not plain data: {exc}"
        ) from exc
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, EOFError) as exc:
        raise ClassifierError(f"classifier model {path} is corrupt or incompatible: {exc}") from exc
