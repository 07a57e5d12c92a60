"""Helpers shared by the CLI modules: the --config option, loading config and database."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from bot.core.config import LoadedConfig, load_config
from bot.storage.db import Database

DEFAULT_CONFIG = os.environ.get("DOCTOCTOC_CONFIG", "config.yaml")


def config_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config",
        "config_path",
        default=DEFAULT_CONFIG,
        show_default=True,
        type=click.Path(dir_okay=False),
        help="Path to the config file (also $DOCTOCTOC_CONFIG).",
    )(fn)


def load(config_path: str) -> LoadedConfig:
    from bot.core.config import SECRET_KEYS
    from bot.core.logs import register_secrets

    loaded = load_config(config_path)
    register_secrets(_values_of(loaded.config.model_dump(), SECRET_KEYS))  # never logged
    return loaded


def _values_of(data: Any, keys: frozenset[str]) -> list[Any]:
    if isinstance(data, dict):
        out = []
        for k, v in data.items():
            out += [v] if k in keys else _values_of(v, keys)
        return out
    if isinstance(data, list):
        return [x for item in data for x in _values_of(item, keys)]
    return []


def open_db(loaded: LoadedConfig, *, upgrade: bool = True) -> Database:
    """Open the configured database, migrating it to the newest schema first (without
    `upgrade`: read only, e.g. `status`)."""
    db = Database(loaded.config.database.url, read_only=not upgrade)
    if upgrade:
        db.upgrade()
    return db
