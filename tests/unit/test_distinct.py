"""Exact up to 10,000 distinct keys, then within 2 % (SPEC), and checkpoint-safe."""

from __future__ import annotations

import pytest

from streams.rooms.distinct import EXACT_LIMIT, DistinctCount


def test_exact_up_to_the_limit_repeats_counted_once() -> None:
    d = DistinctCount()
    for i in range(EXACT_LIMIT):
        d.add(f"u{i}")
        d.add(f"u{i}")
    assert d.is_exact and len(d) == EXACT_LIMIT


@pytest.mark.parametrize("n", [10_001, 25_000, 200_000, 1_000_000])
def test_estimate_within_two_percent_above_the_limit(n: int) -> None:
    d = DistinctCount()
    for i in range(n):
        d.add(f"room-1-u{i}")
    assert not d.is_exact
    assert abs(len(d) - n) / n < 0.02, len(d)


def test_sketch_survives_a_checkpoint_and_keeps_counting_the_same_users_once() -> None:
    d = DistinctCount()
    for i in range(50_000):
        d.add(f"u{i}")
    restored = DistinctCount()
    restored.load(d.snapshot())
    assert len(restored) == len(d)
    for i in range(50_000):  # the same users again: no growth
        restored.add(f"u{i}")
    assert len(restored) == len(d)
    empty = DistinctCount()
    empty.load(DistinctCount().snapshot())
    assert empty.is_exact


def test_a_delta_of_raised_registers_onto_an_exact_count_makes_it_a_sketch():
    """What a restore does when a sketched room's delta comes before its base."""
    sketched = DistinctCount()
    sketched.update(f"u{i}" for i in range(EXACT_LIMIT + 1_000))
    sketched.take_changes()
    sketched.update(f"v{i}" for i in range(2_000))
    delta = sketched.take_changes()
    assert "reg" in delta
    fresh = DistinctCount()
    fresh.add("u1")
    fresh.load(delta)
    assert fresh.exact is None
    assert fresh.registers is not None
    assert [fresh.registers[i] for i, _ in delta["reg"]] == [r for _, r in delta["reg"]]
    assert 0 < len(fresh) < len(sketched)
