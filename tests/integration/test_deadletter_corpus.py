"""Black box: a corpus of malformed records of every kind and reason, produced with a
real client (confluent-kafka) to partition 0 of each input topic, checked against the
dead-letter topic record by record: reason, source topic, offset, array index, bytes."""

from __future__ import annotations

import base64
import time
from collections import defaultdict

import orjson
import pytest
from confluent_kafka import Producer

from streams.events import REASONS

from .conftest import room_value, total, wait_until

pytestmark = pytest.mark.integration


def corpus(now: int) -> list[tuple[str, bytes, list[tuple[int | None, str]]]]:
    """(kind, record bytes, [(array index or None, reason), ...] expected)."""
    n = iter(range(10**6))

    def ok(kind: str, **fields: object) -> dict:
        base = {"event_id": f"dl-{next(n)}", "room_id": "dl-room", "user_id": "u", "ts": now}
        extra = {
            "views": {},
            "comments": {"text": "好看"},
            "carts": {"product_id": "p"},
            "orders": {"order_id": f"o{next(n)}", "product_id": "p", "amount": 10.0},
        }[kind]
        return {**base, **extra, **fields}

    def enc(doc: object) -> bytes:
        return orjson.dumps(doc)

    out: list[tuple[str, bytes, list[tuple[int | None, str]]]] = []
    for kind in ("views", "comments", "carts", "orders"):
        good = ok(kind)
        no_user = {k: v for k, v in ok(kind).items() if k != "user_id"}
        other_type = "order" if kind != "orders" else "view"
        out += [
            (kind, b"{not json", [(None, "invalid_json")]),
            (kind, b'{"event_id": "\xff\xfe"}', [(None, "invalid_utf8")]),
            (kind, b"[]", [(None, "not_an_object")]),
            (kind, b'"just a string"', [(None, "not_an_object")]),
            (kind, enc(no_user), [(None, "missing_field")]),
            (kind, enc(ok(kind, ts=str(now))), [(None, "wrong_type")]),
            (kind, enc(ok(kind, room_id="room with spaces")), [(None, "out_of_range")]),
            (kind, enc(ok(kind, type="gift")), [(None, "unknown_type")]),
            (kind, enc(ok(kind, type=other_type)), [(None, "type_mismatch")]),
            (kind, enc(ok(kind, ts=0)), [(None, "ts_out_of_range")]),
            (kind, enc(ok(kind, type=[1])), [(None, "wrong_type")]),
            (kind, b"[" + b" " * (1024 * 1024) + b"]", [(None, "too_large")]),
            # good neighbours of bad elements are kept
            (kind, enc([good, no_user, ok(kind), 7]), [(1, "missing_field"), (3, "not_an_object")]),
        ]
    out += [
        ("views", enc(ok("views", action="dance")), [(None, "out_of_range")]),
        ("comments", enc(ok("comments", text="长" * 2001)), [(None, "out_of_range")]),
        ("carts", enc(ok("carts", quantity=0)), [(None, "out_of_range")]),
        ("orders", enc(ok("orders", amount=-1)), [(None, "out_of_range")]),
        ("orders", enc(ok("orders", status="lost")), [(None, "out_of_range")]),
    ]
    return out


def test_every_malformed_record_is_dead_lettered_with_reason_offset_and_index(stack):
    worker = stack.worker()
    worker.wait_ready()
    records = corpus(int(time.time() * 1000))
    reasons = {reason for _, _, expected in records for _, reason in expected}
    assert reasons == set(REASONS)  # the corpus covers every reason
    # A client allowed to send the 1 MiB+ record (librdkafka stops at 1,000,000 bytes).
    producer = Producer({"bootstrap.servers": stack.bootstrap, "message.max.bytes": 3_000_000})
    expected: dict[tuple[str, int, int | None], tuple[str, bytes]] = {}
    offsets: dict[str, int] = defaultdict(int)
    for kind, value, rejects in records:
        topic = stack.topic(kind)
        producer.produce(topic, value, partition=0)
        for index, reason in rejects:
            raw = value if index is None else orjson.dumps(orjson.loads(value)[index])
            expected[(topic, offsets[topic], index)] = (reason, raw)
        offsets[topic] += 1
    assert producer.flush(30) == 0

    def all_dead_lettered() -> list:
        letters = stack.read_all("deadletter")
        return letters if len(letters) >= len(expected) else []

    letters = wait_until(all_dead_lettered, 60, "every reject in the dead-letter topic")
    got = {}
    for d in letters:
        raw = base64.b64decode(d["value_base64"])
        got[(d["source_topic"], d["offset"], d["index"])] = (d["reason"], raw, d)
    assert set(got) == set(expected)
    for key, (reason, raw) in expected.items():
        got_reason, got_raw, letter = got[key]
        assert got_reason == reason, key
        assert letter["detail"], key  # a human-readable why
        assert letter["partition"] == 0
        if letter["truncated"]:
            assert raw.startswith(got_raw) and letter["value_bytes"] == len(raw), key
        else:
            assert got_raw == raw, key

    # The good neighbours were counted: two per mixed array, one array per topic.
    samples = wait_until(
        lambda: (
            (m := worker.scrape())
            and room_value(m, "liveroom_comments_total", "dl-room") == 2
            and m
        ),
        30,
        "good neighbours counted",
    )
    assert room_value(samples, "liveroom_views_total", "dl-room") == 2
    assert room_value(samples, "liveroom_cart_adds_total", "dl-room") == 2
    assert room_value(samples, "liveroom_orders_total", "dl-room") == 2
    assert total(samples, "liveroom_events_rejected_total") == len(expected)
