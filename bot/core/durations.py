"""Durations (`30s`, `2m`, `1h30m`, `2d`) and digest schedules (`daily 07:30`, cron...)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

_DURATION = re.compile(r"(\d+)\s*(s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> timedelta:
    """`90s`, `2m`, `1h30m`, `2d` or a number of seconds -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (examples: 30s, 2m, 1h30m)")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration (examples: 30s, 2m, 1h30m)")
    text = value.strip().lower().replace(" ", "")
    pos, total = 0, 0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"'{value}' is not a duration (examples: 30s, 2m, 1h30m, 2d)")
    return timedelta(seconds=total)


_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_clock(text: str) -> tuple[int, int]:
    match = _TIME.match(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not a time of day (HH:MM, e.g. 07:30)")
    return int(match.group(1)), int(match.group(2))


def schedule_to_cron(schedule: str) -> str:
    """Turn a digest schedule into a five-field cron expression; ValueError if invalid.

    Accepted: `hourly`, `daily HH:MM`, `weekdays HH:MM`, or five cron fields.
    """
    text = " ".join(str(schedule).split())
    low = text.lower()
    if low == "hourly":
        return "0 * * * *"
    for word, dow in (("daily", "*"), ("weekdays", "mon-fri")):
        if low.startswith(word + " "):
            hour, minute = parse_clock(text[len(word) + 1 :])
            return f"{minute} {hour} * * {dow}"
    fields = text.split(" ")
    if len(fields) == 5:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(text, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"'{schedule}' is not a valid cron expression: {exc}") from exc
        return text
    raise ValueError(
        f"'{schedule}' is not a schedule (use 'hourly', 'daily 07:30', "
        "'weekdays 12:00' or a five-field cron expression such as '30 7 * * 1-5')"
    )


def parse_quiet_hours(text: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """`22:00-07:00` -> ((22, 0), (7, 0))."""
    if not isinstance(text, str) or "-" not in text:
        raise ValueError(f"'{text}' is not a time range (e.g. 22:00-07:00)")
    start, end = text.split("-", 1)
    return parse_clock(start), parse_clock(end)
