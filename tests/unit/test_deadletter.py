import base64

import orjson

from streams.events import Reject
from streams.runtime.ingest import DEADLETTER_MAX_BYTES, deadletter_record


def letter(raw: bytes, index=None) -> dict:
    return orjson.loads(
        deadletter_record(
            "liveroom.views", 3, 41, Reject("invalid_json", "not JSON", raw, index), 1
        )
    )


def test_dead_letter_carries_the_original_bytes_and_where_they_came_from():
    got = letter(b'{"oops"', index=2)
    assert got["source_topic"] == "liveroom.views" and got["partition"] == 3 and got["offset"] == 41
    assert got["index"] == 2 and got["reason"] == "invalid_json" and got["detail"] == "not JSON"
    assert got["value"] == '{"oops"'
    assert base64.b64decode(got["value_base64"]) == b'{"oops"'
    assert got["value_bytes"] == 7 and got["truncated"] is False


def test_invalid_utf8_is_kept_as_base64_only():
    got = letter(b"\xff\xfe\x00")
    assert got["value"] is None and base64.b64decode(got["value_base64"]) == b"\xff\xfe\x00"


def test_a_huge_reject_still_fits_in_a_default_kafka_record():
    raw = b"\x00" * (3 * 1024 * 1024)  # control characters: the worst case for JSON text
    data = deadletter_record("liveroom.views", 0, 0, Reject("too_large", "too big", raw), 1)
    assert len(data) < 1_000_000
    got = orjson.loads(data)
    assert got["truncated"] is True and got["value_bytes"] == len(raw)
    assert base64.b64decode(got["value_base64"]) == raw[:DEADLETTER_MAX_BYTES]
