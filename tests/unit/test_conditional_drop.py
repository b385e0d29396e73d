"""The packed ConditionalDrop (one array of doubles a detector) against its composed
reference (tests/unit/conditional_drop_reference.py): with each rule section's settings,
through carts that pause, orders that stop and come back, and fractional exposures, both
save the same state at every step and fire and resolve at the same steps."""

from __future__ import annotations

import random
import sys
import tomllib
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.anomaly import FIRED, RESOLVED, ConditionalDrop
from streams.anomaly.conditional_drop import WINDOWS
from tests.unit.conditional_drop_reference import ComposedConditionalDrop
from tests.unit.test_detectors import poisson

RULES = tomllib.loads(
    (Path(__file__).resolve().parents[2] / "streams/alerts/default_rules.toml").read_text()
)
SECTIONS = {
    "defaults": {},
    "checkout_stalled": RULES["checkout_stalled"]["detector"],
    "conversion_drop": RULES["conversion_drop"]["detector"],
    "product_checkout_stalled": RULES["product_checkout_stalled"]["detector"],
}


def series(seed: int, steps: int = 1500) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    rate, q = rng.choice([0.5, 2.0, 5.0, 40.0]), rng.choice([0.05, 0.3, 0.6])
    out = []
    for t in range(steps):
        carts: float = poisson(rng, 0 if t % 70 < 5 else rate)  # pauses, as in a room
        orders = 0 if 400 <= t < 520 or 900 <= t < 960 else poisson(rng, carts * q)
        if rng.random() < 0.1:
            carts += 0.5  # entries per step of a merged room can be fractions
        out.append((carts, orders))
    return out


def composed_state(detector: ComposedConditionalDrop) -> list[Any]:
    """The reference's state as the packed form writes it: its last successes seen, kept
    as the int it was given, is a double there."""
    state = detector.to_state()
    last = state[12][2]
    state[12][2] = None if last is None else float(last)
    return state


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_the_packed_detector_saves_the_composed_ones_state_at_every_step(section: str) -> None:
    arguments = SECTIONS[section]
    transitions = []
    for seed in range(5):
        packed, composed = ConditionalDrop(**arguments), ComposedConditionalDrop(**arguments)
        if seed % 2:  # a product's prior: history learnt before its first step
            for _ in range(3):
                packed.prime(4.0, 1.3)
                composed.exposures.update(4.0)
                composed.successes.update(1.3)
        for t, (carts, orders) in enumerate(series(seed)):
            got, wanted = packed.step(carts, orders), composed.step(carts, orders)
            assert got == wanted, (section, seed, t)
            # orjson writes 3 and 3.0 apart: an int field saved as a double would differ.
            assert orjson.dumps(packed.to_state()) == orjson.dumps(composed_state(composed)), (
                section,
                seed,
                t,
            )
            if got:
                transitions.append(got)
    assert FIRED in transitions and RESOLVED in transitions  # the input exercises both


def test_a_state_the_composed_detector_saved_runs_on_in_the_packed_one() -> None:
    """Checkpoints written before the packing restore into it (a rolling upgrade)."""
    arguments = SECTIONS["product_checkout_stalled"]
    steps = series(3)
    for cut in range(50, len(steps), 113):
        composed = ComposedConditionalDrop(**arguments)
        for x in steps[:cut]:
            composed.step(*x)
        packed = ConditionalDrop(**arguments)
        packed.load_state(orjson.loads(orjson.dumps(composed.to_state())))
        for t, x in enumerate(steps[cut:]):
            assert packed.step(*x) == composed.step(*x), (cut, t)
        assert orjson.dumps(packed.to_state()) == orjson.dumps(composed_state(composed))


def test_a_window_saved_with_another_size_starts_empty() -> None:
    """The rules' resolve_window changed between runs: the saved window is not read into
    the wrong number of slots."""
    before = ConditionalDrop(resolve_window=10)
    for t in range(100):
        before.step(3.0, 1.0 if t % 3 else 0.0)
    after = ConditionalDrop(resolve_window=4)
    after.load_state(before.to_state())
    assert after.resolve_totals() == (0.0, 0.0)
    assert after.to_state()[10] == [[0.0] * 8, 0, [0.0, 0.0]]
    assert after.to_state()[:10] == before.to_state()[:10]  # the rest is as saved


def test_a_detector_is_its_array_and_shares_its_settings() -> None:
    arguments = SECTIONS["product_checkout_stalled"]
    a, b = ConditionalDrop(**arguments), ConditionalDrop(**dict(reversed(arguments.items())))
    assert a.settings is b.settings
    assert len(a.s) == WINDOWS + arguments["hold_window"] + 2 * arguments["resolve_window"]
    # Object, array and its doubles: ~0.4 kB, where the composed form took ~1.2 kB.
    assert sys.getsizeof(a) + sys.getsizeof(a.s) == 48 + 80 + 8 * len(a.s)
