"""`liveroom plan`: the formula of README.md over the measured figures."""

import math

import pytest

from streams.cli import main
from streams.plan import HEADROOM, MEMORY_MARGIN, MIB, Measured, plan, zipf_top_share

FIGURES = Measured(
    worker_events_per_s=40_000,
    room_cpu_seconds=100e-6,
    worker_base_bytes=100 * MIB,
    bytes_per_viewer=500,
    bytes_per_room=50_000,
    bytes_per_event_per_s=3_000,
    input_bytes_per_event=200,
    room_events_bytes_per_event=100,
    state_bytes_per_event=50,
    snapshot_bytes=2_000,
)


def test_workers_partitions_memory_and_broker_from_the_formula():
    p = plan(1_000, 100_000, 2_000_000, FIGURES, replication=3)
    assert p.workers == 6  # (100,000 / 40,000 + 1,000 x 100 µs) / 0.5 = 5.2
    assert p.partitions == 32  # 4 x 6 = 24 -> 32
    assert p.cores == 6
    per_worker = 100 * MIB + 2_000_000 / 6 * 500 + 1_000 / 6 * 50_000 + 100_000 / 6 * 3_000
    assert p.memory_per_worker_bytes == pytest.approx(MEMORY_MARGIN * per_worker)
    assert p.broker_in_bytes_per_s == pytest.approx(3 * (100_000 * 350 + 1_000 * 2_000))
    assert p.broker_out_bytes_per_s == pytest.approx(100_000 * 300 + 1_000 * 2_000)


def test_many_quiet_rooms_need_workers_too():
    assert plan(20_000, 1_000, 100_000, FIGURES).workers == 5  # (0.025 + 2.0) / 0.5


def test_small_peaks_get_one_worker_and_eight_partitions():
    p = plan(10, 1_000, 5_000, FIGURES)
    assert (p.workers, p.partitions) == (1, 8)
    assert p.hottest_room_fits


def test_a_room_above_one_worker_gets_the_shards_it_needs_and_a_worker_each():
    share = zipf_top_share(100)
    assert 0.15 < share < 0.25  # Zipf 1.1 over 100 rooms: the top room takes ~19 %
    p = plan(100, 1_000_000, 10_000_000, FIGURES)
    assert p.hottest_room_events_per_s == pytest.approx(1_000_000 * share)
    assert not p.hottest_room_fits
    per_worker = HEADROOM * FIGURES.worker_events_per_s
    assert p.hottest_room_shards == math.ceil(1_000_000 * share / per_worker)
    fits = plan(100, 1_000_000, 0, FIGURES, hottest_room_events_per_s=per_worker)
    assert fits.hottest_room_fits and fits.hottest_room_shards == 1
    # a single head room: the plan has a worker for each of its shards
    alone = plan(1, 200_000, 0, FIGURES, hottest_room_events_per_s=200_000)
    assert alone.hottest_room_shards == math.ceil(200_000 / per_worker)
    assert alone.workers >= alone.hottest_room_shards and alone.partitions >= alone.workers


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        plan(0, 1_000, 10)


def test_the_command_prints_the_plan(capsys):
    main(["plan", "--rooms", "5000", "--events-per-second", "300000", "--viewers", "3000000"])
    out = capsys.readouterr().out
    assert "worker processes" in out and "partitions" in out and "broker writes" in out
