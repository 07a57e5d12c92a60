"""When a subscriber's digest goes out, and quiet hours, in the subscriber's time zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from bot.core.config_models import SubscriberConfig
from bot.core.durations import parse_quiet_hours, schedule_to_cron


@lru_cache(maxsize=256)
def _trigger(schedule: str, timezone: str) -> CronTrigger:
    return CronTrigger.from_crontab(schedule_to_cron(schedule), timezone=ZoneInfo(timezone))


def next_digest_time(sub: SubscriberConfig, after: datetime) -> datetime:
    """The first scheduled digest strictly after `after` (aware UTC in, aware out)."""
    return _next_fire(sub.digest, sub.timezone, after)


@lru_cache(maxsize=1024)
def _next_fire(schedule: str, timezone: str, after: datetime) -> datetime:
    # Thousands of subscribers share a handful of schedules: one computation per cycle each.
    fire = _trigger(schedule, timezone).get_next_fire_time(None, after + timedelta(microseconds=1))
    assert fire is not None
    return fire


def in_quiet_hours(sub: SubscriberConfig, when: datetime) -> bool:
    if not sub.quiet_hours:
        return False
    (sh, sm), (eh, em) = parse_quiet_hours(sub.quiet_hours)
    local = when.astimezone(ZoneInfo(sub.timezone)).time()
    start, end = time(sh, sm), time(eh, em)
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours_end(sub: SubscriberConfig, when: datetime) -> datetime:
    """When the quiet period containing `when` ends (local wall clock, DST-safe)."""
    (_, _), (eh, em) = parse_quiet_hours(sub.quiet_hours or "00:00-00:00")
    tz = ZoneInfo(sub.timezone)
    local = when.astimezone(tz)
    end = datetime.combine(local.date(), time(eh, em), tzinfo=tz)
    if end <= local:
        end = datetime.combine(local.date() + timedelta(days=1), time(eh, em), tzinfo=tz)
    return end
