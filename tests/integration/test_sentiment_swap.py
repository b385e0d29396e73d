"""A sentiment model swapped under a running worker (LIVEROOM_SENTIMENT_MODEL changes
on disk): no restart, no event lost or counted twice, scores change at the swap, the
model's name and hash in /metrics; a damaged file is refused and the model kept."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streams.sentiment import adapt, labels
from streams.sentiment.resources import load

from ..unit.test_sentiment_adapt import write_labels
from .conftest import Stack, room_value, wait_until

pytestmark = pytest.mark.integration
ROOM = "swap-room"
MISREAD = "跟主播说的不一样"  # the shipped weights read it as praise


def comments(prefix: str, n: int, now: int) -> list[dict]:
    return [
        {
            "event_id": f"{prefix}{i}",
            "room_id": ROOM,
            "user_id": f"{prefix}u{i}",
            "ts": now + i,
            "text": f"{MISREAD}{i}",
        }
        for i in range(n)
    ]


def model_info(samples: dict) -> list[tuple[str, str]]:
    return [
        (dict(labels)["model"], dict(labels)["sha256"])
        for (name, labels), v in samples.items()
        if name == "liveroom_sentiment_model_info" and v == 1
    ]


def test_a_model_swapped_on_disk_changes_scores_without_a_restart(stack: Stack, tmp_path: Path):
    path = tmp_path / "live.model"
    shipped = {"format": adapt.FORMAT, "version": adapt.VERSION, "ngrams": load().ngrams}
    path.write_bytes(adapt.dumps(shipped))
    worker = stack.worker(LIVEROOM_SENTIMENT_MODEL=str(path))
    worker.wait_ready()
    before = model_info(worker.scrape())
    assert [name for name, _ in before] == ["live.model"]
    now = int(time.time() * 1000)
    stack.produce("comments", comments("a", 20, now))
    stack.flush()
    wait_until(lambda: room_value(worker.scrape(), "liveroom_comments_total", ROOM) == 20, 30, "20")
    assert (
        room_value(worker.scrape(), "liveroom_negative_comment_ratio", ROOM, window="session") == 0
    )

    labelled = tmp_path / "ours.csv"
    write_labels(labelled, 1_200)
    read = labels.read([str(labelled)])
    path.write_bytes(adapt.dumps(adapt.train(read.rows, read.sources)))
    wait_until(lambda: model_info(worker.scrape()) != before, 30, "the swap")
    stack.produce("comments", comments("b", 20, now + 1000))
    stack.flush()
    wait_until(lambda: room_value(worker.scrape(), "liveroom_comments_total", ROOM) == 40, 30, "40")
    ratio = room_value(worker.scrape(), "liveroom_negative_comment_ratio", ROOM, window="session")
    assert ratio == 0.5  # the 20 after the swap read as complaints, the 20 before did not

    swapped = model_info(worker.scrape())
    path.write_text("{damaged")
    wait_until(lambda: "sentiment model not swapped" in worker.log_path.read_text(), 30, "refusal")
    assert model_info(worker.scrape()) == swapped  # the running model kept
    time.sleep(2)
    assert room_value(worker.scrape(), "liveroom_comments_total", ROOM) == 40  # none twice
    assert "sentiment model swapped: live.model" in worker.log_path.read_text()
