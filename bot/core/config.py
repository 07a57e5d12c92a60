"""Read, check and resolve config.yaml.

Every problem becomes one line `FILE:LINE: key.path: what is wrong`. Secrets are
`${ENV}` references; a source or channel whose secret is missing is disabled (with
the reason) and the rest runs.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from bot.core.config_models import (
    BlueskySourceConfig,
    Config,
    MastodonSourceConfig,
    ReplaySourceConfig,
    XSourceConfig,
)
from bot.core.errors import ConfigError
from bot.core.yamlsource import Path, YamlSyntaxError, format_path, line_for, load_with_lines

SECRET_KEYS = frozenset(
    {
        "access_token",
        "app_password",
        "bearer_token",
        "password",
        "consumer_key",
        "consumer_secret",
        "access_token_secret",
        "secret",
        "dkim_private_key",
    }
)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SOURCE_MODELS = {
    "mastodon": MastodonSourceConfig,
    "bluesky": BlueskySourceConfig,
    "x": XSourceConfig,
    "replay": ReplaySourceConfig,
}
CONTACT_FOR_CHANNEL = {"smtp": "email", "mastodon": "mastodon", "bluesky": "bluesky", "x": "x"}


@dataclass
class LoadedConfig:
    config: Config
    path: FsPath
    disabled: dict[str, str] = field(default_factory=dict)  # "sources[1]" / "channels.smtp" -> why
    warnings: list[str] = field(default_factory=list)
    lines: dict[Path, int] = field(default_factory=dict)  # key path -> line, for messages

    def source_enabled(self, index: int) -> bool:
        return f"sources[{index}]" not in self.disabled

    def channel_enabled(self, name: str) -> bool:
        return getattr(self.config.channels, name) is not None and (
            f"channels.{name}" not in self.disabled
        )

    def report(self) -> list[str]:
        lines = [f"disabled: {where}: {why}" for where, why in self.disabled.items()]
        return lines + [f"warning: {w}" for w in self.warnings]


def load_config(path: str | os.PathLike[str], env: dict[str, str] | None = None) -> LoadedConfig:
    """Load and validate a config file; raise ConfigError listing every problem."""
    fs_path = FsPath(path)
    env = dict(os.environ) if env is None else env
    name = str(path)
    try:
        text = fs_path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError([f"{name}: file not found"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{name}: cannot read: {exc}"]) from exc
    try:
        data, lines = load_with_lines(text)
    except YamlSyntaxError as exc:
        raise ConfigError([f"{name}:{exc.line}: {exc.message}"]) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{name}:1: the file must be a mapping of keys (version, hashtags, ...)"]
        )

    errors: list[tuple[Path, str]] = []
    disabled: dict[str, str] = {}
    data = _resolve_env(data, (), env, errors, disabled)

    def fmt(loc: Path, msg: str) -> str:
        return f"{name}:{line_for(lines, loc)}: {format_path(loc)}: {msg}"

    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        messages = [fmt(loc, msg) for loc, msg in errors]
        env_locs = {loc for loc, _ in errors}
        messages += [
            fmt(tuple(e["loc"]), _message(e))
            for e in _dedupe(exc.errors())
            if tuple(e["loc"]) not in env_locs
        ]
        raise ConfigError(sorted(set(messages), key=_line_key)) from exc
    if errors:
        raise ConfigError([fmt(loc, msg) for loc, msg in errors])

    loaded = LoadedConfig(config=config, path=fs_path, disabled=disabled, lines=lines)
    problems = _cross_checks(loaded)
    if problems:
        raise ConfigError(sorted({fmt(loc, msg) for loc, msg in problems}, key=_line_key))
    _warnings(loaded)
    return loaded


def _line_key(message: str) -> tuple[int, str]:
    parts = message.split(":", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0, message)


def _resolve_env(
    value: Any,
    loc: Path,
    env: dict[str, str],
    errors: list[tuple[Path, str]],
    disabled: dict[str, str],
) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_env(v, (*loc, k), env, errors, disabled) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, (*loc, i), env, errors, disabled) for i, v in enumerate(value)]
    key = loc[-1] if loc else None
    if isinstance(value, str) and _ENV_REF.search(value):
        missing = [m for m in _ENV_REF.findall(value) if not env.get(m)]
        if not missing:
            return _ENV_REF.sub(lambda m: env[m.group(1)], value)
        owner = _owner(loc)
        reason = f"environment variable {missing[0]} is not set ({format_path(loc)})"
        if owner is None:
            errors.append((loc, reason))
        else:
            disabled.setdefault(owner, reason)
        return None
    if key in SECRET_KEYS and value is not None and value != "":
        errors.append((loc, "secrets must not be written in the file: use a ${ENV_NAME} reference"))
    return value


def _owner(loc: Path) -> str | None:
    """The source or channel a key belongs to, which gets disabled when its secret is missing."""
    if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
        return f"sources[{loc[1]}]"
    if len(loc) >= 2 and loc[0] == "channels":
        return f"channels.{loc[1]}"
    return None


def _dedupe(errors: list[Any]) -> list[Any]:
    """Drop pydantic's union-branch labels, and the `'all'` alternative of `specialties`
    when the list branch has a more specific error."""
    cleaned = []
    for err in errors:
        err = dict(err)
        err["loc"] = tuple(p for p in err["loc"] if not _is_branch_label(p))
        loc = err["loc"]
        if len(loc) >= 3 and loc[0] == "sources" and loc[2] in SOURCE_MODELS:
            err["loc"] = loc[:2] + loc[3:]  # the per-network model's tag
            err["network"] = loc[2]
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            err["loc"] = (*err["loc"], "network")
            if err["type"] == "union_tag_not_found":
                err["type"] = "missing"
            else:
                err["type"], err["input"] = "literal_error", err["ctx"]["tag"]
                err["ctx"] = {"expected": err["ctx"]["expected_tags"]}
        cleaned.append(err)
    out = []
    for err in cleaned:
        loc = err["loc"]
        is_all_branch = (
            err["type"] == "literal_error" and err.get("ctx", {}).get("expected") == "'all'"
        )
        if is_all_branch and any(e is not err and e["loc"][: len(loc)] == loc for e in cleaned):
            continue
        out.append(err)
    return out


def _is_branch_label(part: Any) -> bool:
    return isinstance(part, str) and (
        part.startswith(("list[", "literal[", "function-", "constrained-"))
        or part in {"str", "int", "float", "bool", "dict", "list"}
    )


def _all_field_names(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    seen = seen or set()
    names: set[str] = set()
    if model in seen:
        return names
    seen.add(model)
    for fname, finfo in model.model_fields.items():
        names.add(fname)
        for arg in _types_in(finfo.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= _all_field_names(arg, seen)
    return names


def _types_in(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    if not args:
        return [annotation]
    out = []
    for a in args:
        out += _types_in(a)
    return out


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        key = err["loc"][-1]
        network = err.get("network")
        if network and len(err["loc"]) == 3:
            owners = [n for n, model in SOURCE_MODELS.items() if key in model.model_fields]
            if owners:
                return f"unknown key for a {network} source (only {' and '.join(owners)} sources take it)"
        close = difflib.get_close_matches(str(key), sorted(_all_field_names(Config)), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return f"{value!r} is not allowed (choose from: {err['ctx']['expected']})"
    if kind == "value_error" or kind == "assertion_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind.startswith("int") or kind.startswith("float"):
        return f"expected a number, got {value!r}"
    if kind.startswith("bool"):
        return f"expected true or false, got {value!r}"
    if kind.startswith("string"):
        return f"expected text, got {value!r}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {value!r}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of keys, got {value!r}"
    return f"{err['msg']} (got {value!r})"


def _cross_checks(loaded: LoadedConfig) -> list[tuple[Path, str]]:
    config = loaded.config
    problems: list[tuple[Path, str]] = []
    seen_sources: dict[str, int] = {}
    for i, source in enumerate(config.sources):
        if source.key in seen_sources:
            problems.append(
                (
                    ("sources", i),
                    f"same source as sources[{seen_sources[source.key]}]: give it a different 'name'",
                )
            )
        seen_sources[source.key] = i
    seen_subs: dict[str, int] = {}
    for i, sub in enumerate(config.subscribers):
        if sub.key in seen_subs:
            other = seen_subs[sub.key]
            if sub.id is not None:
                problem = (
                    ("subscribers", i, "id"),
                    f"id '{sub.key}' is already used by subscribers[{other}]",
                )
            else:
                problem = (
                    ("subscribers", i, "name"),
                    f"'{sub.key}' is already used by subscribers[{other}]: give it an 'id'",
                )
            problems.append(problem)
        seen_subs[sub.key] = i
        for j, channel in enumerate(sub.deliver_by):
            if getattr(config.channels, channel) is None:
                problems.append(
                    (
                        ("subscribers", i, "deliver_by", j),
                        f"channel '{channel}' is not configured under 'channels'",
                    )
                )
            contact = CONTACT_FOR_CHANNEL.get(channel)
            if contact and not getattr(sub, contact):
                problems.append(
                    (
                        ("subscribers", i, "deliver_by", j),
                        f"delivery by '{channel}' needs the subscriber's '{contact}'",
                    )
                )
    return problems


def _warnings(loaded: LoadedConfig) -> None:
    config = loaded.config
    for i, sub in enumerate(config.subscribers):
        usable = [c for c in sub.deliver_by if loaded.channel_enabled(c)]
        if not usable:
            loaded.warnings.append(
                f"subscribers[{i}] ({sub.name}): every channel in deliver_by is disabled; "
                "their items wait until one works"
            )
