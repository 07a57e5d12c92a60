"""Load what a valid config points at: the classifier model, the digest templates, replay
files. `check-config`, `run` and a hot reload use it, so a config that passes the schema but
cannot run (a model path that does not exist) is refused before it replaces a working one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.core.config import LoadedConfig
from bot.core.errors import ClassifierError, ConfigError
from bot.core.yamlsource import format_path, line_for


def preflight(loaded: LoadedConfig, *, load_model: bool = True) -> Any:
    """Raise ConfigError naming each resource that does not load; return the classifier."""
    problems: list[tuple[tuple, str]] = []
    classifier = None
    if load_model:
        from classifiers import load_classifier

        cfg = loaded.config.classifier
        try:
            classifier = load_classifier(cfg.model, uncertain_below=cfg.uncertain_below)
        except ClassifierError as exc:
            problems.append((("classifier", "model"), str(exc)))
    problems += _templates()
    problems += _replay_files(loaded)
    problems += _dkim_key(loaded)
    if problems:
        name = str(loaded.path)
        raise ConfigError(
            [
                f"{name}:{line_for(loaded.lines, loc)}: {format_path(loc)}: {msg}"
                for loc, msg in problems
            ]
        )
    return classifier


def _templates() -> list[tuple[tuple, str]]:
    from jinja2 import TemplateError

    from digests.render import TEMPLATES, _env

    out = []
    for path in sorted(TEMPLATES.glob("*.j2")):
        try:
            _env(path.name.endswith(".html.j2")).get_template(path.name)
        except (TemplateError, OSError) as exc:
            out.append(((), f"digest template {path} does not load: {exc}"))
    return out


def _replay_files(loaded: LoadedConfig) -> list[tuple[tuple, str]]:
    from bot.collectors.replay import resolve_path

    out = []
    base = loaded.path.resolve().parent
    for i, source in enumerate(loaded.config.sources):
        if source.network != "replay" or not loaded.source_enabled(i):
            continue
        path = resolve_path(source.url or "", base)
        try:
            with Path(path).open("rb"):
                pass
        except OSError as exc:
            out.append((("sources", i, "url"), f"cannot read replay file {path}: {exc.strerror}"))
    return out


def _dkim_key(loaded: LoadedConfig) -> list[tuple[tuple, str]]:
    """The DKIM key is PEM text or the path of a readable file."""
    smtp = loaded.config.channels.smtp
    if smtp is None or not smtp.dkim_private_key or not loaded.channel_enabled("smtp"):
        return []
    key = smtp.dkim_private_key
    if "-----BEGIN" in key:
        return []
    try:
        Path(key).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return [
            (
                ("channels", "smtp", "dkim_private_key"),
                f"neither PEM text nor a readable file ({reason})",
            )
        ]
    return []
