"""The settings: one frozen value, read from the environment (or Django/Flask) in one place.

Every name is `SHAHIHOOKS_<NAME>` in the environment, `SHAHIHOOKS = {"<NAME>": ...}` in
Django and `app.config["SHAHIHOOKS_<NAME>"]` in Flask. A bad value is a ConfigurationError
naming the variable and the value, raised when the settings are loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from shahihooks import readers as read
from shahihooks.bodystyle import BodyStyle, body_style
from shahihooks.clusterurl import is_node_list, startup_nodes
from shahihooks.errors import ConfigurationError, EventError
from shahihooks.events import check_name
from shahihooks.outcome import RetryPolicy
from shahihooks.payload import MAX_BODY_BYTES
from shahihooks.safety import Network, check_url, redact_url
from shahihooks.signing import secret_key

# Signing secrets: checked for strength, and never shown, not even in an error about them.
_SECRET_SETTINGS = frozenset({"SECRET", "OLD_SECRETS", "OPS_SECRET"})
_HIDDEN_SETTINGS = _SECRET_SETTINGS | {"DASHBOARD_AUTH"}  # never shown


@dataclass(frozen=True)
class Throttle:
    """At most one delivery of `event` per value of `data[field]` per `window_s` seconds."""

    event: str
    field: str
    window_s: int


@dataclass(frozen=True)
class Settings:
    """Everything shahihooks reads from its configuration; units are in the names."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str = ""
    sentinel_master: str = "mymaster"  # the primary's name, for sentinel:// URLs
    redis_cluster: bool = False  # redis_url names a node of a Redis Cluster (shards.py)
    enabled: bool = True
    urls: tuple[str, ...] = ()
    events: tuple[str, ...] | None = None  # None: every registered event
    secret: str | None = None
    old_secrets: tuple[str, ...] = ()
    site_url: str = ""
    retry_schedule_s: tuple[float, ...] = (60, 300, 1800)
    retry_after_max_s: float = 3600
    rate_limit: int = 10
    rate_window_s: int = 3600
    backlog_max: int = 10_000
    timeout_s: float = 15
    allow_http: bool = False
    allow_networks: tuple[Network, ...] = ()
    ca_bundle: str = ""  # a CA file to trust instead of the system's (internal CAs, tests)
    max_body_bytes: int = MAX_BODY_BYTES
    max_response_bytes: int = 65_536
    idempotency_ttl_s: int = 7 * 86_400
    throttles: tuple[Throttle, ...] = (Throttle("article.viewed", "article_id", 3600),)
    log_max_len: int = 100_000
    stats_retention_s: int = 8 * 86_400
    queue: str = "shahihooks"
    prefix: str = "shahihooks"
    body_style: BodyStyle = BodyStyle.STANDARD  # for the URLs not in the endpoint store
    endpoint_concurrency: int = 50  # the adaptive limit's ceiling: attempts in flight per URL
    circuit_threshold: int = 5  # consecutive failures that open an endpoint's circuit
    circuit_cooldown_s: float = 30  # the first wait before a probe; doubles on each failed one
    circuit_cooldown_max_s: float = 600
    disable_after_s: int = 432_000  # only failures for this long: disabled (0: never)
    dead_ttl_s: int = 30 * 86_400  # a dead letter is kept this long (then it and its body go)
    ops_urls: tuple[str, ...] = ()  # receivers of operational events
    ops_secret: str | None = None  # what signs them (None: the secret)
    dashboard_auth: str = ""  # "user:password" for `shahihooks dashboard` (basic auth)
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # how a setting's name is written where these came from: SHAHIHOOKS_{} (environment),
    # settings.SHAHIHOOKS["{}"] (Django), app.config["SHAHIHOOKS_{}"] (Flask)
    source: str = field(default="SHAHIHOOKS_{}", compare=False)

    def __hash__(self) -> int:  # hashed on every delivery (state_for): computed once
        found: int | None = self.__dict__.get("_hash")
        if found is None:
            found = hash(tuple(getattr(self, f.name) for f in fields(self) if f.compare))
            object.__setattr__(self, "_hash", found)
        return found

    def __post_init__(self) -> None:
        _check_redis_url(self)
        if not self.broker_url:
            object.__setattr__(self, "broker_url", self.redis_url)
        object.__setattr__(self, "body_style", body_style(self.body_style))
        if self.redis_cluster:
            _check_cluster_broker(self)
        for name, urls in (("SHAHIHOOKS_URLS", self.urls), ("SHAHIHOOKS_OPS_URLS", self.ops_urls)):
            for url in urls:
                try:
                    check_url(url, self)
                except ConfigurationError as exc:
                    raise type(exc)(f"{name}: {exc}") from None
        if self.urls and not self.secret:
            raise ConfigurationError(
                "SHAHIHOOKS_URLS is set but SHAHIHOOKS_SECRET is not: every delivery is "
                "signed, so set a secret (there is no fallback secret)"
            )
        if self.ops_urls and not (self.ops_secret or self.secret):
            raise ConfigurationError(
                "SHAHIHOOKS_OPS_URLS is set but neither SHAHIHOOKS_OPS_SECRET nor "
                "SHAHIHOOKS_SECRET is: operational events are signed too"
            )
        if self.endpoint_concurrency < 1:
            raise ConfigurationError(
                f"SHAHIHOOKS_ENDPOINT_CONCURRENCY={self.endpoint_concurrency!r} must be at "
                "least 1 (attempts in flight to one endpoint)"
            )
        if self.circuit_cooldown_max_s < self.circuit_cooldown_s:
            raise ConfigurationError(
                f"SHAHIHOOKS_CIRCUIT_COOLDOWN_MAX={self.circuit_cooldown_max_s:g} is shorter "
                f"than SHAHIHOOKS_CIRCUIT_COOLDOWN={self.circuit_cooldown_s:g}"
            )
        _check_secrets(self.secret, "SHAHIHOOKS_SECRET")
        _check_secrets(self.old_secrets, "SHAHIHOOKS_OLD_SECRETS")
        _check_secrets(self.ops_secret, "SHAHIHOOKS_OPS_SECRET")

    def __repr__(self) -> str:
        """Every field, with secrets as *** and URLs through `redact_url`."""
        shown = []
        for f in fields(self):
            value: Any = getattr(self, f.name)
            if f.name in ("secret", "ops_secret", "dashboard_auth") and value:
                value = "***"
            elif f.name == "old_secrets":
                value = tuple("***" for _ in value)
            elif f.name in ("redis_url", "broker_url", "site_url"):
                value = redact_url(value)
            elif f.name in ("urls", "ops_urls"):
                value = tuple(redact_url(u) for u in value)
            elif f.name == "extra":
                value = {k: "***" for k in value}
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The global secrets, newest first (the first signs the page's header)."""
        return ((self.secret,) if self.secret else ()) + self.old_secrets

    def setting_name(self, name: str) -> str:
        """The setting `name` ("ALLOW_HTTP") as the user wrote it, for messages."""
        return self.source.format(name)

    @property
    def ops_secrets(self) -> tuple[str, ...]:
        """The secrets operational events are signed with, newest first."""
        return (self.ops_secret,) if self.ops_secret else self.secrets

    @property
    def tls_verify(self) -> bool | str:
        """What requests' `verify=` gets: the CA bundle if one is set, else the system's."""
        return self.ca_bundle or True

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry schedule and the Retry-After cap, as `outcome.classify` takes them."""
        return RetryPolicy(self.retry_schedule_s, self.retry_after_max_s)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `SHAHIHOOKS_*` environment variables."""
        env = os.environ if environ is None else environ
        prefix = "SHAHIHOOKS_"
        return cls.from_mapping(
            {k[len(prefix) :]: v for k, v in env.items() if k.startswith(prefix)}
        )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "SHAHIHOOKS_{}") -> Settings:
        """Settings from a mapping of names without the prefix (`{"URLS": ..., ...}`).

        `source` says how a name is written where the value came from, for error messages.
        """
        unknown = sorted(set(values) - set(_READERS))
        if unknown:
            raise ConfigurationError(
                f"unknown setting {source.format(unknown[0])}: known settings are "
                + ", ".join(source.format(n) for n in sorted(_READERS))
            )
        kwargs: dict[str, Any] = {}
        for name, raw in values.items():
            attr, reader = _READERS[name]
            where = source.format(name)
            try:
                kwargs[attr] = reader(raw)
            except (ValueError, TypeError) as exc:
                shown = _shown(name, raw)
                raise ConfigurationError(f"{where}{shown} is not valid: {exc}") from None
            if name in _SECRET_SETTINGS:
                _check_secrets(kwargs[attr], where)
        return cls(**kwargs, source=source)


_REDIS_BROKERS = ("redis://", "rediss://", "unix://", "sentinel://")


def _check_redis_url(settings: Settings) -> None:
    """A list of nodes only for a Redis Cluster, and a Cluster's URL checked item by item
    (clusterurl.py), here rather than at a worker's first connection."""
    url, name = settings.redis_url, settings.setting_name("REDIS_URL")
    if is_node_list(url) and not settings.redis_cluster:
        raise ConfigurationError(
            f"{name}={redact_url(url)!r} is a list of nodes, which only a Redis Cluster takes: "
            f"set {settings.setting_name('REDIS_CLUSTER')}=1 for a Cluster, or name one Redis"
        )
    if settings.redis_cluster:
        try:
            startup_nodes(url)
        except ValueError as exc:
            raise ConfigurationError(f"{name}: {exc}") from None


def _check_cluster_broker(settings: Settings) -> None:
    """With the state in a Redis Cluster, the broker is RabbitMQ: kombu's Redis transport
    cannot use a Cluster, and the messages must not share the state's shards."""
    if settings.broker_url.startswith(_REDIS_BROKERS) or settings.broker_url == settings.redis_url:
        raise ConfigurationError(
            f"{settings.setting_name('REDIS_CLUSTER')} is set, so the broker must be RabbitMQ "
            f"({settings.setting_name('BROKER_URL')}=amqp://...), got "
            f"{redact_url(settings.broker_url)!r}"
        )


def _check_secrets(value: str | tuple[str, ...] | None, where: str) -> None:
    """Refuse a weak secret, naming the setting `where` (never the value)."""
    for secret in (value,) if isinstance(value, str) else value or ():
        secret_key(secret, where)


def _shown(name: str, raw: Any) -> str:
    """How a bad value is quoted in an error: a secret never is."""
    return "" if name in _HIDDEN_SETTINGS else f"={raw!r}"


def _throttles(raw: Any) -> tuple[Throttle, ...]:
    out = []
    for item in read.words(raw, r"[\s,]+"):
        parts = item.split(":")
        if len(parts) != 3:
            raise ValueError(
                f"{item!r} is not event:field:seconds (e.g. article.viewed:article_id:3600)"
            )
        event, data_field, window = parts
        try:
            check_name(event)
        except EventError as exc:
            raise ValueError(str(exc)) from None
        out.append(Throttle(event, data_field, read.positive_int(window)))
    return tuple(out)


_READERS: dict[str, tuple[str, Any]] = {
    "REDIS_URL": ("redis_url", read.text),
    "BROKER_URL": ("broker_url", read.text),
    "SENTINEL_MASTER": ("sentinel_master", read.text),
    "REDIS_CLUSTER": ("redis_cluster", read.boolean),
    "ENABLED": ("enabled", read.boolean),
    "URLS": ("urls", read.urls),
    "EVENTS": ("events", read.events),
    "SECRET": ("secret", read.secret),
    "OLD_SECRETS": ("old_secrets", read.words),
    "SITE_URL": ("site_url", read.text),
    "RETRY_SCHEDULE": ("retry_schedule_s", read.schedule),
    "RETRY_AFTER_MAX": ("retry_after_max_s", read.seconds),
    "RATE_LIMIT": ("rate_limit", read.count),
    "RATE_WINDOW": ("rate_window_s", read.positive_int),
    "BACKLOG_MAX": ("backlog_max", read.positive_int),
    "TIMEOUT": ("timeout_s", read.seconds),
    "ALLOW_HTTP": ("allow_http", read.boolean),
    "ALLOW_NETWORKS": ("allow_networks", read.networks),
    "CA_BUNDLE": ("ca_bundle", read.text),
    "MAX_BODY_BYTES": ("max_body_bytes", read.positive_int),
    "MAX_RESPONSE_BYTES": ("max_response_bytes", read.positive_int),
    "IDEMPOTENCY_TTL": ("idempotency_ttl_s", read.positive_int),
    "THROTTLE": ("throttles", _throttles),
    "LOG_MAX_LEN": ("log_max_len", read.positive_int),
    "QUEUE": ("queue", read.text),
    "PREFIX": ("prefix", read.text),
    "BODY_STYLE": ("body_style", read.style),
    "ENDPOINT_CONCURRENCY": ("endpoint_concurrency", read.positive_int),
    "CIRCUIT_THRESHOLD": ("circuit_threshold", read.positive_int),
    "CIRCUIT_COOLDOWN": ("circuit_cooldown_s", read.seconds),
    "CIRCUIT_COOLDOWN_MAX": ("circuit_cooldown_max_s", read.seconds),
    "DISABLE_AFTER": ("disable_after_s", read.count),
    "DEAD_TTL": ("dead_ttl_s", read.positive_int),
    "OPS_URLS": ("ops_urls", read.urls),
    "OPS_SECRET": ("ops_secret", read.secret),
    "DASHBOARD_AUTH": ("dashboard_auth", read.user_password),
}


_current: Settings | None = None
_listeners: list[Callable[[Settings], None]] = []
# Framework hooks naming the settings of the code running now (Flask: the app in context)
_sources: list[Callable[[], Settings | None]] = []


def current() -> Settings:
    """The settings of the code running now.

    A Flask app's own, inside its app context; else those given to `configure()`; else the
    Django project's `SHAHIHOOKS` dict when DJANGO_SETTINGS_MODULE is set; else the
    environment's.
    """
    for source in _sources:
        found = source()
        if found is not None:
            return found
    global _current
    if _current is None:
        _current = _django_settings() or Settings.from_env()
    return _current


def _django_settings() -> Settings | None:
    """The `SHAHIHOOKS` dict of the project DJANGO_SETTINGS_MODULE names, if it has one.

    Only the settings module is imported (not the project's apps), so the CLI, Flower and
    `celery -A shahihooks.app` read the same configuration as the project's web processes.
    """
    module = os.environ.get("DJANGO_SETTINGS_MODULE")
    if not module:
        return None
    try:
        from django.conf import settings as django_settings
    except ImportError:
        return None
    try:
        values = getattr(django_settings, "SHAHIHOOKS", None)
    except ImportError as exc:
        raise ConfigurationError(
            f"DJANGO_SETTINGS_MODULE={module!r} cannot be imported ({exc}): run from the "
            "project's directory, or use `python manage.py shahihooks ...`"
        ) from None
    if values is None:
        return None
    return Settings.from_mapping(values, 'settings.SHAHIHOOKS["{}"]')


def add_source(source: Callable[[], Settings | None]) -> None:
    """Let a framework name the settings of the code running now (see `current`)."""
    if source not in _sources:
        _sources.append(source)


def configure(settings: Settings | None = None, **changes: Any) -> Settings:
    """Replace the process's settings (Django, Flask and tests call this)."""
    global _current
    base = settings if settings is not None else current()
    _current = base.with_(**changes) if changes else base
    for listener in _listeners:
        listener(_current)
    return _current


def on_configure(listener: Callable[[Settings], None]) -> None:
    _listeners.append(listener)
