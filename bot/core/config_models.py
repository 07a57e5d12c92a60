"""Typed models of config.yaml (the admin's contract). See README, section "Admin"."""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from bot.core.durations import parse_duration, parse_quiet_hours, schedule_to_cron
from bot.core.labels import SPECIALTIES


def _check_specialty(value: str) -> str:
    if value not in SPECIALTIES:
        raise ValueError(f"'{value}' is not a specialty (choose from: {', '.join(SPECIALTIES)})")
    return value


def _check_schedule(value: str) -> str:
    schedule_to_cron(value)
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"'{value}' is not a time zone (e.g. Europe/Paris)") from exc
    return value


def _check_quiet(value: str) -> str:
    parse_quiet_hours(value)
    return value


def _check_hashtag(value: str) -> str:
    tag = value.lstrip("#")
    if not tag or not re.fullmatch(r"\w+", tag):
        raise ValueError(f"'{value}' is not a hashtag (letters, digits and _ only)")
    return tag


def _check_http_url(value: str) -> str:
    if not re.match(r"https?://[^/\s]+", value):
        raise ValueError(f"'{value}' is not an http(s):// URL")
    return value.rstrip("/")


DEFAULT_APPVIEW = "https://public.api.bsky.app"
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Specialty = Annotated[str, AfterValidator(_check_specialty)]
Urgency = Literal["routine", "soon", "urgent"]
Language = Literal["fr", "en"]
ChannelName = Literal["smtp", "mastodon", "bluesky", "x", "outbox"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class DatabaseConfig(Strict):
    url: str = "sqlite:///doctoctoc.db"


class _SourceBase(Strict):
    """Keys every source takes; each network adds its own (an X source refuses `stream_url`)."""

    name: str | None = None
    url: str | None = None
    poll_every: Duration = timedelta(minutes=2)
    hashtags: list[Annotated[str, AfterValidator(_check_hashtag)]] | None = None
    timeout: Duration = timedelta(seconds=30)
    retries: int = Field(default=3, ge=0, le=10)
    unhealthy_after: Duration = timedelta(minutes=30)
    # First run only (no cursor yet): also read posts this far back (README: sources[]).
    backfill: Duration | None = None

    @model_validator(mode="after")
    def _needs_url(self) -> _SourceBase:
        if self.network in ("mastodon", "replay") and not self.url:
            raise ValueError(f"a {self.network} source needs 'url'")
        if self.network == "x" and self.backfill and self.backfill > timedelta(days=7):
            raise ValueError("backfill: X's recent search reaches back 7 days at most (7d)")
        return self

    @property
    def key(self) -> str:
        return self.name or f"{self.network}:{self.url or 'default'}"


class MastodonSourceConfig(_SourceBase):
    network: Literal["mastodon"]
    access_token: str | None = None
    # Optional streaming of the hashtag timeline.
    stream: bool = False


class BlueskySourceConfig(_SourceBase):
    network: Literal["bluesky"]
    handle: str | None = None
    app_password: str | None = None
    # Firehose / Jetstream base URI for streaming, and search backfill.
    stream_url: str | None = None
    search: bool = True
    # AppView for firehose authors' profiles when there are no credentials (null: off).
    appview_url: Annotated[str, AfterValidator(_check_http_url)] | None = DEFAULT_APPVIEW


class XSourceConfig(_SourceBase):
    network: Literal["x"]
    bearer_token: str | None = None
    # Stop before spending more reads than this per calendar month.
    monthly_read_budget: int | None = Field(default=None, ge=0)


class ReplaySourceConfig(_SourceBase):
    network: Literal["replay"]


class SourceConfig(_SourceBase):
    """Every key of every network, for sources built by code and tests (config files use
    the per-network models through `AnySource`)."""

    network: Literal["mastodon", "bluesky", "x", "replay"]
    access_token: str | None = None
    stream: bool = False
    handle: str | None = None
    app_password: str | None = None
    stream_url: str | None = None
    search: bool = True
    appview_url: Annotated[str, AfterValidator(_check_http_url)] | None = DEFAULT_APPVIEW
    bearer_token: str | None = None
    monthly_read_budget: int | None = Field(default=None, ge=0)


AnySource = Annotated[
    MastodonSourceConfig | BlueskySourceConfig | XSourceConfig | ReplaySourceConfig,
    Field(discriminator="network"),
]


class SmtpConfig(Strict):
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "starttls"
    username: str | None = None
    password: str | None = None
    sender: str
    timeout: Duration = timedelta(seconds=30)
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_private_key: str | None = None

    @property
    def effective_port(self) -> int:
        return self.port or {"none": 25, "starttls": 587, "ssl": 465}[self.security]


class MastodonChannelConfig(Strict):
    url: str
    access_token: str | None = None


class BlueskyChannelConfig(Strict):
    url: str = "https://bsky.social"
    handle: str | None = None
    app_password: str | None = None


class XChannelConfig(Strict):
    consumer_key: str | None = None
    consumer_secret: str | None = None
    access_token: str | None = None
    access_token_secret: str | None = None


class OutboxConfig(Strict):
    dir: str = "outbox"


class ChannelsConfig(Strict):
    smtp: SmtpConfig | None = None
    mastodon: MastodonChannelConfig | None = None
    bluesky: BlueskyChannelConfig | None = None
    x: XChannelConfig | None = None
    outbox: OutboxConfig | None = None


def _languages(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class SubscriberConfig(Strict):
    name: str
    id: str | None = None
    role: Literal["clinician", "student"] = "clinician"
    language: Annotated[list[Language], BeforeValidator(_languages)] = ["fr"]
    email: str | None = None
    mastodon: str | None = None
    bluesky: str | None = None
    x: str | None = None
    deliver_by: list[ChannelName] = ["outbox"]
    specialties: list[Specialty] | Literal["all"] = "all"
    min_urgency: Urgency = "routine"
    digest: Annotated[str, AfterValidator(_check_schedule)] = "daily 07:30"
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "Europe/Paris"
    immediate: Urgency | Literal["never"] = "urgent"
    quiet_hours: Annotated[str, AfterValidator(_check_quiet)] | None = None
    urgent_overrides_quiet: bool = True
    triage: bool = False
    escalation: bool = False
    escalate_after: Duration | None = None
    hide_authors: bool = False
    max_items: int = Field(default=20, ge=1, le=500)

    @property
    def key(self) -> str:
        return self.id or slugify(self.name)

    def wants_specialty(self, specialty: str | None) -> bool:
        if specialty is None:
            return False
        return self.specialties == "all" or specialty in self.specialties


class ClassifierConfig(Strict):
    model: str | None = None
    uncertain_below: float = Field(default=0.45, ge=0.0, le=1.0)


class DeliveryConfig(Strict):
    max_attempts: int = Field(default=8, ge=1, le=50)
    first_retry: Duration = timedelta(minutes=1)
    max_retry: Duration = timedelta(hours=4)
    sending_timeout: Duration = timedelta(minutes=10)
    # An alert for a post older than this says so in its subject ("posted 10 days ago").
    stale_alert_after: Duration = timedelta(hours=6)
    # Processes that share a large flush of e-mail (outbox, smtp): "auto" is one per CPU
    # core, at most 4; 1 sends everything from the bot's own process.
    workers: Literal["auto"] | Annotated[int, Field(ge=1, le=16)] = "auto"


class WebConfig(Strict):
    # Links in digests are built on it: http(s) only (never `javascript:`).
    public_url: Annotated[str, AfterValidator(_check_http_url)] = "http://localhost:8080"
    secret: str | None = None
    # `doctoctoc web` listens here; `serve: true` also serves it inside `doctoctoc run`.
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    serve: bool = False


class RetentionConfig(Strict):
    """How long raw payloads and the delivery log are kept (purged nightly)."""

    raw_payloads: Duration = timedelta(days=30)
    delivery_log: Duration = timedelta(days=180)


class MonitoringConfig(Strict):
    """`run` serves /healthz and Prometheus /metrics here (no port: not served)."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535)


class Config(Strict):
    version: Literal[1]
    database: DatabaseConfig = DatabaseConfig()
    hashtags: list[Annotated[str, AfterValidator(_check_hashtag)]] = Field(min_length=1)
    sources: list[AnySource] = []
    channels: ChannelsConfig = ChannelsConfig()
    subscribers: list[SubscriberConfig] = []
    classifier: ClassifierConfig = ClassifierConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    web: WebConfig = WebConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    retention: RetentionConfig = RetentionConfig()
    blocked_authors: list[str] = []
    only_known_authors: bool = False
    known_authors: list[str] = []


def slugify(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-") or "subscriber"
