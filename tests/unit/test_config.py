import pytest

from streams import config
from streams.config import ConfigError
from streams.rooms.room import RoomSettings


def test_defaults_match_the_spec():
    s = config.load({})
    assert s.metrics_port == 9464
    assert s.room_ttl_seconds == 600
    assert s.max_rooms == 5000
    assert s.input_topics == (
        "liveroom.views",
        "liveroom.comments",
        "liveroom.carts",
        "liveroom.orders",
        "liveroom.spend",
    )
    assert s.output_topics == ("liveroom.room-metrics", "liveroom.alerts", "liveroom.deadletter")
    assert s.dedup_horizon_seconds == 600  # a repeated event_id within 10 minutes
    # The worker's room settings by default are RoomSettings' own, which the room tests use.
    assert s.room_settings() == RoomSettings()


def test_environment_and_overrides():
    s = config.load(
        {"LIVEROOM_MAX_ROOMS": "10", "LIVEROOM_TOPIC_VIEWS": "tenant1.views"}, metrics_port=1234
    )
    assert (s.max_rooms, s.topic_views, s.metrics_port) == (10, "tenant1.views", 1234)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"LIVEROOM_METRICS_PORT": "http"},
            "LIVEROOM_METRICS_PORT='http' is not valid: expected a TCP port",
        ),
        ({"LIVEROOM_METRICS_PORT": "70000"}, "TCP port 0-65535"),
        (
            {"LIVEROOM_MAX_ROOMS": "0"},
            "LIVEROOM_MAX_ROOMS='0' is not valid: expected a whole number >= 1",
        ),
        ({"LIVEROOM_ROOM_TTL_SECONDS": "-5"}, "LIVEROOM_ROOM_TTL_SECONDS"),
        ({"LIVEROOM_TOPIC_ALERTS": "bad topic"}, "LIVEROOM_TOPIC_ALERTS"),
        (
            {"LIVEROOM_KAFKA_SECURITY_PROTOCOL": "TLS"},
            "one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        ),
        (
            {"LIVEROOM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "LIVEROOM_KAFKA_SASL_USERNAME is required",
        ),
        ({"LIVEROOM_BROKER_BIN": "/nonexistent/broker"}, "LIVEROOM_BROKER_BIN"),
    ],
)
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("?", r"\?")):
        config.load(env)


def test_sasl_options_reach_aiokafka():
    from streams.kafka import aiokafka_options

    s = config.load(
        {
            "LIVEROOM_KAFKA_BOOTSTRAP": "k1:9093, k2:9093",
            "LIVEROOM_KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
            "LIVEROOM_KAFKA_SASL_MECHANISM": "scram-sha-512",
            "LIVEROOM_KAFKA_SASL_USERNAME": "svc",
            "LIVEROOM_KAFKA_SASL_PASSWORD": "pw",
        }
    )
    options = aiokafka_options(s)
    assert options["bootstrap_servers"] == ["k1:9093", "k2:9093"]
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "svc"


def test_describe_lists_every_variable():
    names = [name for name, _, _ in config.describe()]
    assert "LIVEROOM_KAFKA_BOOTSTRAP" in names and "LIVEROOM_BROKER_BIN" in names
    assert all(name.startswith("LIVEROOM_") for name in names)


def test_namespaced_settings_share_nothing_with_the_defaults():
    s = config.load(config.namespaced("t1"))
    defaults = config.load({})
    assert s.app_id == "t1-app"
    assert s.topic_room_events == "t1.room-events"
    names = {*s.input_topics, *s.output_topics, s.topic_room_events}
    assert len(names) == 9 and not names & {*defaults.input_topics, *defaults.output_topics}


def test_room_families_are_checked_at_start():
    s = config.load(
        {"LIVEROOM_METRICS_ROOM_FAMILIES": " liveroom_online_viewers, liveroom_gmv_yuan_total"}
    )
    assert s.room_families == ("liveroom_online_viewers", "liveroom_gmv_yuan_total")
    assert config.load({}).room_families is None
    with pytest.raises(config.ConfigError, match="LIVEROOM_METRICS_ROOM_FAMILIES"):
        config.load({"LIVEROOM_METRICS_ROOM_FAMILIES": "liveroom_views"})
