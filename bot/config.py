"""Settings (environment, read once at start-up) and the targets the bot watches.

Nothing here runs at import: call ``Settings()`` and ``bot.targets_file.load_targets()``
from the composition root (``bot.wiring``) or a CLI command.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from bot.datadir import default_database_url
from bot.errors import ConfigError, UsageError
from bot.labels import check_labels
from bot.limits import echo
from bot.units import MAX_DURATION_SECONDS, format_duration, parse_duration

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_SLACK_WORKERS = 4
DEFAULT_SLACK_QUEUE = 32
DEFAULT_TARGET_NAME = "default"
MIN_WEBHOOK_TOKEN = 16  # REDIS_MEM_WEBHOOK_TOKEN: shorter is guessable
# A Slack channel as chat.postMessage takes it: an id (C..., G... private) or a name
# (#ops, lower case, at most 80 characters).
SLACK_CHANNEL = re.compile(r"^(?:[CG][A-Z0-9]{2,30}|#?[a-z0-9][a-z0-9._-]{0,79})$")


def slack_channel(value: str | None) -> str | None:
    """A channel id or name, None when empty; ValueError for anything else."""
    if value is None or not value.strip():
        return None
    if not SLACK_CHANNEL.fullmatch(value.strip()):
        raise ValueError("must be a Slack channel id (C0123ABCD) or name (#ops)")
    return value.strip()


class Thresholds(BaseModel):
    """Every number the diagnosis judges by; each one overridable (see README).

    Environment: ``REDIS_MEM_THRESHOLDS__<FIELD>``, e.g.
    ``REDIS_MEM_THRESHOLDS__WARNING_RATIO=0.75``.
    """

    model_config = ConfigDict(frozen=True)

    warning_ratio: float = Field(0.80, gt=0, le=1, description="used/maxmemory for warning")
    critical_ratio: float = Field(0.90, gt=0, le=1, description="used/maxmemory for critical")
    mitigation_ratio: float = Field(
        0.95,
        gt=0,
        le=1,
        description="used/maxmemory above which the runbook's immediate mitigation applies",
    )
    ttl_leak_ratio: float = Field(
        0.05, ge=0, le=1, description="share of session keys without TTL that is a leak"
    )
    long_ttl_seconds: int = Field(
        7 * 86400, gt=0, description="a TTL longer than this is reported as 'very long'"
    )
    large_session_bytes: int = Field(
        10 * 1024, gt=0, description="mean or p95 session size above this is 'large'"
    )
    sessions_share_ratio: float = Field(
        0.5, ge=0, le=1, description="session keys hold at least this share of used memory"
    )
    expected_sessions: int | None = Field(
        None, ge=0, description="session count the capacity plan expects (optional)"
    )
    fragmentation_ratio: float = Field(1.5, gt=1, description="runbook: > 1.5 is high")
    fragmentation_min_bytes: int = Field(
        10 * 1024**2, ge=0, description="wasted RSS must also exceed this (MEMORY DOCTOR)"
    )
    stale_idle_seconds: int = Field(
        4 * 3600, gt=0, description="a session idle longer than this is stale"
    )
    stale_ratio: float = Field(
        0.5, ge=0, le=1, description="share of stale sessions that makes the scenario"
    )
    min_sample: int = Field(20, ge=1, description="fewer sampled session keys: no key verdicts")


class KubeCoordinates(BaseModel):
    """Where a target lives in Kubernetes; defaults are the runbook's names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str = "langgraph-agent"
    pod_selector: str = "app=redis-session"
    redis_configmap: str = "redis-session-config"
    redis_configmap_key: str = "redis.conf"
    redis_deployment: str = "redis-session"
    redis_container: str = "redis"
    app_configmap: str = "langgraph-agent-config"
    app_deployment: str = "langgraph-agent"


TARGET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
TARGET_NAME_RULE = (
    "must be 1-63 letters, digits, '_', '.' or '-', starting with a letter or a digit"
)


class Target(BaseModel):
    """One Redis session store the bot can diagnose (and later fix)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=TARGET_NAME_PATTERN)
    redis_url: str = DEFAULT_REDIS_URL
    # Sentinel (docs/decisions/sentinel.md): the primary is asked of the sentinels on every
    # check; redis_url then lends only its scheme, credentials and db to the data nodes.
    # Cluster (docs/decisions/cluster.md): the primaries are discovered from ``seeds`` on
    # every reading; the first seed lends the same to each primary (no redis_url then).
    mode: Literal["standalone", "sentinel", "cluster"] = "standalone"
    sentinels: tuple[str, ...] = Field((), max_length=16, validate_default=True)
    seeds: tuple[str, ...] = Field((), max_length=16, validate_default=True)
    master_name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.:-]{1,128}$", validate_default=True
    )
    sentinel_password_env: str | None = None  # the sentinels' own; password_env: the data nodes'
    password_env: str | None = None
    session_pattern: str = "session:*"
    # Where this target's alerts are posted (overrides REDIS_MEM_CHANNEL).
    channel: str | None = None
    # ``env: prod``, ``team: payments``: filter ``status``, route alerts (``routes:``).
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        return check_labels(value)

    def __hash__(self) -> int:  # pydantic's would hash the labels dict (TypeError)
        return hash((self.name, self.redis_url, tuple(sorted(self.labels.items()))))

    kubernetes: KubeCoordinates = Field(default_factory=KubeCoordinates)

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        return slack_channel(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        return _checked_url(value, what="redis_url")

    @field_validator("sentinels")
    @classmethod
    def _sentinels(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        _of_mode(value, info, "sentinel", needs="1-16 sentinel URLs (redis://host:26379)")
        return tuple(_checked_url(u, what=f"sentinel URL {i + 1}") for i, u in enumerate(value))

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        _of_mode(value, info, "cluster", needs="1-16 seed URLs (redis://host:6379)")
        urls = tuple(_checked_url(u, what=f"seed URL {i + 1}") for i, u in enumerate(value))
        for index, url in enumerate(urls):  # a db elsewhere would read an empty keyspace
            if _url_db(url) != 0:
                raise ValueError(
                    f"seed URL {index + 1} must use database 0 (a cluster has no other)"
                )
        return urls

    @model_validator(mode="after")
    def _cluster_urls(self) -> Target:
        if self.mode != "cluster":
            return self
        # The seeds lend their scheme, credentials and options to every primary: a
        # redis_url beside them would be a second, ignored, source of truth.
        if "redis_url" in self.model_fields_set:
            raise ValueError("a cluster target has seeds, not a redis_url")
        return self

    @field_validator("sentinel_password_env")
    @classmethod
    def _sentinel_password_env(cls, value: str | None, info: ValidationInfo) -> str | None:
        _of_mode(value, info, "sentinel", needs=None)  # silently unused elsewhere: refused
        return value

    @field_validator("master_name")
    @classmethod
    def _master_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        needs = "master_name (as in 'sentinel monitor NAME')"
        _of_mode(value, info, "sentinel", needs=needs, has="a master_name")
        return value

    def connection_url(self) -> str:
        """The URL to connect with, the password taken from ``password_env`` if set
        (a cluster target's: its first seed's, which every primary's URL is built on).

        Never log or show this: use ``safe_url`` instead.
        """
        url = self.seeds[0] if self.mode == "cluster" else self.redis_url
        return _with_password(url, self.password_env, target=self.name)

    def seed_urls(self) -> tuple[str, ...]:
        """A cluster's seed URLs to connect with (``password_env`` applied); secret."""
        return tuple(_with_password(url, self.password_env, target=self.name) for url in self.seeds)

    def sentinel_urls(self) -> tuple[str, ...]:
        """The sentinels' URLs to connect with (``sentinel_password_env`` applied); secret."""
        env = self.sentinel_password_env
        return tuple(_with_password(url, env, target=self.name) for url in self.sentinels)

    @property
    def safe_url(self) -> str:
        """The Redis URL with any password replaced by ``***``: fit for logs and Slack."""
        return redact_url(self.seeds[0] if self.mode == "cluster" else self.redis_url)


def _of_mode(
    value: object, info: ValidationInfo, mode: str, *, needs: str | None, has: str | None = None
) -> None:
    """A field only a ``mode`` target has: required there (``needs``; None: optional),
    refused elsewhere (``has``: how the refusal names it; default the field's name)."""
    current = info.data.get("mode")  # None: mode itself was refused, that error is enough
    if needs is not None and current == mode and not value:
        raise ValueError(f"mode {mode} needs {needs}")
    if current not in (mode, None) and value:
        raise ValueError(f"only a target with mode: {mode} has {has or info.field_name}")


def _checked_url(value: str, *, what: str) -> str:
    """``value`` when redis-py reads it as a Redis URL; ValueError naming ``what`` otherwise."""
    # As redis-py reads it: case-sensitive (urlsplit would take "REDIS://").
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"{what} must start with redis://, rediss:// or unix://")
    try:
        urlsplit(value)
    except ValueError:  # not its message: it quotes the URL between "[" and "]"
        raise ValueError(
            f"{what} has a host in brackets that is not an IPv6 address"
            " (a password holding '[' or ']' must be percent-encoded: %5B, %5D)"
        ) from None
    return value


def _url_db(url: str) -> int:
    """The database a Redis URL selects (``?db=N`` over the path ``/N``; default 0), read
    as redis-py reads it: percent-decoded."""
    parts = urlsplit(url)
    path = unquote(parts.path).strip("/")
    query = dict(parse_qsl(parts.query))
    raw = query.get("db") or (path if parts.scheme != "unix" else "") or "0"
    return int(raw) if raw.isdecimal() else -1  # isdigit: "²", which int() refuses


def _with_password(url: str, env: str | None, *, target: str) -> str:
    """``url`` with the password read from the environment variable ``env`` (None: as is)."""
    if not env:
        return url
    password = os.environ.get(env)
    if password is None:
        raise ConfigError(f"target {target!r}: environment variable {env} is not set")
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


# scheme://user:password@ up to the LAST "@": a password may hold an unencoded
# "#", "?" or "/" that makes urlsplit see no password at all (and show it whole).
_USERINFO_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^:@/]*):(.*)@", re.DOTALL)
# redis-py also reads credentials from the query string (?password=..., &pass=...). The
# key is tested in Python, not in the pattern: a pattern that searches the key for a secret
# word backtracks quadratically on a long key. A value runs to the next ``&`` (``#`` too
# may be part of a password: hide it rather than print what follows it).
_QUERY_PARAM = re.compile(r"([?&])([^=&#\s]*)=([^&\s]*)")
_QUERY_SECRET_KEY = re.compile(r"pass|pwd|token|secret|auth|key", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Replace a URL's password (userinfo or query string) with ``***``; never raises."""
    url = _QUERY_PARAM.sub(_redact_query_param, url)
    return _USERINFO_PASSWORD.sub(r"\1\2:***@", url, count=1)


def _redact_query_param(match: re.Match[str]) -> str:
    sep, key, _value = match.groups()
    return f"{sep}{key}=***" if _QUERY_SECRET_KEY.search(key) else match.group(0)


class Settings(BaseSettings):
    """Process settings from the environment (names are a contract: see docs/DESIGN.md)."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__", extra="ignore", populate_by_name=True
    )

    redis_url: str = Field(DEFAULT_REDIS_URL, validation_alias="REDIS_URL")
    # A factory, read when Settings are built: the user's data directory (bot/datadir.py).
    database_url: str = Field(default_factory=default_database_url, validation_alias="DATABASE_URL")
    targets_file: Path | None = Field(None, validation_alias="REDIS_MEM_TARGETS_FILE")
    slack_bot_token: str | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: str | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str | None = Field(None, validation_alias="SLACK_API_URL")
    channel: str | None = Field(None, validation_alias="REDIS_MEM_CHANNEL")
    # Alertmanager's bearer token for POST /alertmanager (unset: the endpoint is off).
    # A secret: never logged, and kept out of the settings' repr.
    webhook_token: str | None = Field(None, validation_alias="REDIS_MEM_WEBHOOK_TOKEN", repr=False)
    approvers: str | None = Field(None, validation_alias="REDIS_MEM_APPROVERS")
    port: int = Field(3000, ge=1, le=65535, validation_alias="PORT")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", validation_alias="REDIS_MEM_LOG_LEVEL"
    )
    session_pattern: str = Field("session:*", validation_alias="REDIS_MEM_SESSION_PATTERN")
    sample_size: int = Field(1000, ge=10, le=100_000, validation_alias="REDIS_MEM_SAMPLE_SIZE")
    # The full scan measures what each batch costs Redis and sleeps to stay under this
    # share of one core (bot/redisinfo/pacing.py); nan fails gt/le, so it is refused.
    scan_budget: float = Field(
        0.5,
        gt=0,
        le=1,
        validation_alias="REDIS_MEM_SCAN_BUDGET",
        description="--full: share of one Redis core the scan may use (1.0: as fast as possible)",
    )
    # Slack work (diagnoses, answers, clicks) runs on its own threads, so acks never wait
    # behind it; beyond workers + queue the ack says "busy" (bot/runtime/pool.py).
    slack_workers: int = Field(
        DEFAULT_SLACK_WORKERS,
        ge=1,
        le=64,
        validation_alias="REDIS_MEM_SLACK_WORKERS",
        description="Slack requests worked on at once (acks are never held by them)",
    )
    slack_queue: int = Field(
        DEFAULT_SLACK_QUEUE,
        ge=0,
        le=1000,
        validation_alias="REDIS_MEM_SLACK_QUEUE",
        description="Slack requests that may wait for a worker; more are answered 'busy'",
    )
    approval_ttl_minutes: int = Field(
        15,
        ge=1,
        le=24 * 60,
        validation_alias="REDIS_MEM_APPROVAL_TTL_MINUTES",
        description="a fix request not approved within this many minutes expires",
    )
    max_keys: int = Field(
        100_000,
        ge=1,
        validation_alias="REDIS_MEM_MAX_KEYS",
        description="a key action (expire, evict) touches at most this many keys",
    )
    # The default (RemediationLimits.rate) adds well under 1 ms to other clients' p99;
    # lower it on a loaded store (a slower fix is also easier to cancel in time).
    fix_rate: int = Field(
        20_000,
        ge=100,
        validation_alias="REDIS_MEM_FIX_RATE",
        description="a key action (expire, evict) changes at most this many keys per second",
    )
    thresholds: Thresholds = Field(
        default_factory=Thresholds,
        validation_alias=AliasChoices("REDIS_MEM_THRESHOLDS", "thresholds"),
    )
    check_interval: int = Field(
        60,
        ge=1,
        le=86_400,
        validation_alias="REDIS_MEM_CHECK_INTERVAL",
        description="seconds between scheduled health checks",
    )
    # A hung Redis costs this much of its own check and never delays the others'.
    check_timeout: float = Field(
        5.0,
        gt=0,
        le=60,
        validation_alias="REDIS_MEM_CHECK_TIMEOUT",
        description="seconds a target's check may take before it counts as unreachable",
    )
    rules_file: Path | None = Field(None, validation_alias="REDIS_MEM_RULES_FILE")
    repeat_interval: float = Field(
        4 * 3600.0,
        validation_alias="REDIS_MEM_REPEAT_INTERVAL",
        description="reminder cadence of a firing alert nobody acknowledged (0: none)",
    )
    sample_retention: float = Field(
        48 * 3600.0,
        validation_alias="REDIS_MEM_SAMPLE_RETENTION",
        description="how long raw health-check samples are kept (then 5-minute aggregates)",
    )
    aggregate_retention: float = Field(
        30 * 86400.0,
        validation_alias="REDIS_MEM_AGGREGATE_RETENTION",
        description="how long the samples' 5-minute aggregates are kept (reports read them)",
    )

    # Who runs the scheduled jobs among replicas (docs/decisions/leader-election.md).
    leader_election: Literal["auto", "kubernetes", "database", "none"] = Field(
        "auto",
        validation_alias="REDIS_MEM_LEADER_ELECTION",
        description="auto, kubernetes (Lease), database (PostgreSQL advisory lock) or none",
    )
    # One knob, client-go's proportions: 15 s lease, 10 s renew deadline, 2 s retry.
    lease_seconds: float = Field(
        15.0,
        ge=3,
        le=300,
        validation_alias="REDIS_MEM_LEASE_SECONDS",
        description="leader lease duration (renew deadline 2/3 of it, retry 2/15 of it)",
    )

    # The schedule is read (and refused in one line) where it is used: bot/runtime/cron.py.
    report_schedule: str = Field(
        "0 9 * * *",
        validation_alias="REDIS_MEM_REPORT_SCHEDULE",
        description="five-field cron of the channel health report ('off': none)",
    )
    timezone: str = Field(
        "UTC",
        validation_alias="REDIS_MEM_TIMEZONE",
        description="IANA zone of the report schedule and of times in reports",
    )

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        """An IANA zone name this machine knows (tzdata), else one line at start-up."""
        return iana_zone(value)

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        """Empty is unset; anything but a channel id or name is one line at start-up."""
        return slack_channel(value)

    @field_validator("webhook_token")
    @classmethod
    def _webhook_token(cls, value: str | None) -> str | None:
        """Empty is unset (the endpoint off); else one printable word of 16+ characters
        (Alertmanager sends it as ``Bearer <token>``). The message never shows it."""
        if value is None or not value.strip():
            return None
        token = value.strip()
        one_word = all(c.isprintable() and not c.isspace() for c in token)
        if len(token) < MIN_WEBHOOK_TOKEN or not one_word:
            # "(hidden)" stands where the value would: the CLI's scrubber masks the word
            # after "TOKEN:", which must not be a word of the sentence.
            raise ValueError(
                f"(hidden) must be one word of at least {MIN_WEBHOOK_TOKEN} printable characters"
            )
        return token

    @field_validator("repeat_interval", "sample_retention", "aggregate_retention", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        """``4h``, ``14d``, ``30m`` or bare seconds; pydantic makes the error one line."""
        if isinstance(value, float):  # a default, or a value given in code (tests)
            if not 0 <= value <= MAX_DURATION_SECONDS:
                raise ValueError(f"must be between 0s and {MAX_DURATION_SECONDS // 86400}d")
            return value
        try:
            return parse_duration(value)
        except UsageError as err:
            raise ValueError(err.message) from None

    @field_validator("aggregate_retention")
    @classmethod
    def _aggregates_outlive_samples(cls, value: float, info: ValidationInfo) -> float:
        """The aggregates are rolled up from the raw samples: they cannot go first."""
        raw = info.data.get("sample_retention")
        if raw is not None and value < raw:
            raise ValueError(
                f"must be at least REDIS_MEM_SAMPLE_RETENTION ({format_duration(raw)})"
            )
        return value

    @classmethod
    def load(cls) -> Settings:
        """Read the environment; a bad value becomes a one-line ConfigError."""
        try:
            return cls()
        except ValidationError as err:
            raise ConfigError(f"invalid configuration: {first_error(err)}") from None
        except SettingsError as err:  # e.g. REDIS_MEM_THRESHOLDS='{bad' (not JSON)
            raise ConfigError(f"invalid configuration: {err}".splitlines()[0]) from None


def iana_zone(value: str) -> str:
    """``value`` if it names an IANA time zone (``Europe/Paris``); ValueError otherwise."""
    name = value.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: "../x", an absolute path
        # A zone-shaped word is shown whole (echo would stop at its "/"); others as echo does.
        shown = name if _ZONE_WORD.fullmatch(name) else echo(name)
        raise ValueError(f"unknown time zone '{shown}' (an IANA name: UTC, Europe/Paris)") from None
    return name


_ZONE_WORD = re.compile(r"[A-Za-z0-9_+/-]{1,40}")


def first_error(err: ValidationError) -> str:
    """The first problem of ``err`` in one line, ``field: what is wrong`` (never the value)."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "value"
    # A setting checked at its default value is reported by its field name: name the
    # environment variable people set instead.
    field = Settings.model_fields.get(where) if err.title == Settings.__name__ else None
    if field is not None and isinstance(field.validation_alias, str):
        where = field.validation_alias
    if first.get("type") == "string_pattern_mismatch" and where == "name":
        return f"{where}: {TARGET_NAME_RULE}"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}"
