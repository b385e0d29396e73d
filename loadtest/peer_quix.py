"""The peer baseline of `make bench`: a plain Quix Streams app counting view events per
room (RocksDB state + changelog), on the same broker and the same records as the
worker. Runs in its own virtualenv (.venv-peer: quixstreams pins a confluent-kafka
the project's tests do not use); imports nothing from this project.

Prints one JSON line: {"events": n, "seconds": s, "rate": n / s}, timed from the first
record processed to the last, as the worker's figure is.
"""

from __future__ import annotations

import argparse
import json
import time

import orjson
from quixstreams import Application
from quixstreams.models.topics.manager import TopicManager

_derive = TopicManager.derive_topic_config.__func__  # type: ignore[attr-defined]


def _derive_with_retention(cls, topics):  # type: ignore[no-untyped-def]
    """The embedded broker answers DescribeConfigs with nothing, so Quix finds no
    retention.ms to give its changelog topics: default it to 'forever'."""
    for topic in topics:
        topic.broker_config.extra_config.setdefault("retention.ms", "-1")
    return _derive(cls, topics)


TopicManager.derive_topic_config = classmethod(_derive_with_retention)  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True, help="the views topic")
    parser.add_argument("--events", type=int, required=True, help="events to wait for")
    parser.add_argument("--group", required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
    )
    topic = app.topic(args.topic, value_deserializer="bytes", key_deserializer="bytes")
    seen = {"events": 0, "first": 0.0, "last": 0.0}

    def count(value: bytes, state) -> None:  # type: ignore[no-untyped-def]
        events = orjson.loads(value)
        if isinstance(events, dict):
            events = [events]
        for event in events:
            key = event["room_id"]
            state.set(key, state.get(key, 0) + 1)
        if not seen["first"]:
            seen["first"] = time.monotonic()
        seen["events"] += len(events)
        seen["last"] = time.monotonic()
        if seen["events"] >= args.events:
            app.stop()

    sdf = app.dataframe(topic)
    sdf = sdf.update(count, stateful=True)
    app.run()
    seconds = max(seen["last"] - seen["first"], 1e-9)
    print(
        json.dumps({"events": seen["events"], "seconds": seconds, "rate": seen["events"] / seconds})
    )


if __name__ == "__main__":
    main()
