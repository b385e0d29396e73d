"""The embedded broker's memory forecast: growth over the last 10 minutes, hours left
before the cap, nothing claimed before a minute of samples or while it does not grow."""

from __future__ import annotations

import os

import pytest

from streams.runtime.broker_memory import MemoryForecast, rss_bytes

MB = 2**20


def test_hours_left_at_the_recent_growth():
    forecast = MemoryForecast(cap_bytes=4_000 * MB)
    forecast.observe(0, 1_000 * MB)
    assert forecast.hours_left() is None  # one sample
    forecast.observe(30, 1_010 * MB)
    assert forecast.hours_left() is None  # less than a minute
    for t in range(60, 3_601, 60):
        forecast.observe(t, 1_000 * MB + t * MB // 3)  # 1,200 MB an hour
    assert forecast.bytes_per_hour() == pytest.approx(1_200 * MB, rel=0.01)
    assert forecast.hours_left() == pytest.approx((4_000 - 2_200) / 1_200, rel=0.01)
    assert len(forecast.samples) <= 11  # the last 10 minutes only
    assert not forecast.over_cap()
    forecast.observe(3_660, 4_100 * MB)
    assert forecast.over_cap() and forecast.hours_left() == 0.0
    assert forecast.summary()["note"].startswith("the embedded broker keeps every record")


def test_a_flat_or_shrinking_broker_has_no_deadline():
    forecast = MemoryForecast(cap_bytes=4_000 * MB)
    for t in range(0, 700, 60):
        forecast.observe(t, 900 * MB - t * 1000)
    assert forecast.hours_left() is None


def test_rss_of_a_process_and_of_none():
    assert rss_bytes(os.getpid()) > 10 * MB
    assert rss_bytes(2**22 + 12345) is None


def test_a_broker_the_demo_rotates_has_no_deadline_and_says_why():
    forecast = MemoryForecast(cap_bytes=4_000 * MB, rotates_at_mb=512)
    for t in range(0, 3_700, 60):
        forecast.observe(t, 100 * MB + t * MB // 3)  # growing, until the next rotation
    assert forecast.bytes_per_hour() and forecast.hours_left() is None
    assert "fresh generation at 512 MB" in forecast.summary()["note"]
