"""The detectors' statistics held as unboxed C fields (streams.anomaly.fields) against the
same classes over plain __slots__ (LIVEROOM_PURE_FIELDS=1): every detector, run through
input that makes it judge, fire and resolve, saves the same states step by step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from streams import anomaly
from streams.anomaly import ConditionalDrop
from streams.anomaly.stats import Ewma, TrackingLevel

ROOT = Path(__file__).resolve().parents[2]

# Run in a process of its own: the storage is chosen when streams.anomaly is imported.
STATES = """
import random, sys
import orjson
sys.path.insert(0, "tests/unit")
from test_detectors import checkpoint_series
out = {}
for name, (detector, series) in checkpoint_series(random.Random(16)).items():
    states = out[name] = []
    for x in series:
        detector.step(*x) if isinstance(x, tuple) else detector.step(x)
        states.append(detector.to_state())
sys.stdout.buffer.write(orjson.dumps(out))
"""


def states(pure: bool) -> dict[str, list]:
    env = {**os.environ, "LIVEROOM_PURE_FIELDS": "1" if pure else "0"}
    done = subprocess.run(
        [sys.executable, "-c", STATES], cwd=ROOT, env=env, capture_output=True, check=True
    )
    return orjson.loads(done.stdout)


def test_detectors_over_c_fields_save_the_states_plain_slots_do() -> None:
    c, pure = states(pure=False), states(pure=True)
    # Every kind the package exports is run.
    assert sorted(c) == sorted(set(anomaly.__all__) - {"FIRED", "RESOLVED"})
    for name in c:
        assert len(c[name]) >= 700
        # orjson writes 3 and 3.0 apart: an int field read back as a float would differ.
        assert orjson.dumps(c[name]) == orjson.dumps(pure[name]), name
    assert any(state[0] for state in c["ConditionalDrop"])  # it fired


def test_fields_hold_doubles_ints_and_bools_unboxed() -> None:
    ewma = Ewma(10.0)
    assert type(ewma).__mro__[1].__module__ == "streams.anomaly._fields"
    assert sys.getsizeof(ewma) == 16 + 16 + 3 * 8  # GC and object headers, three doubles
    ewma.update(3)
    assert ewma.to_state() == [3.0, 1.0] and type(ewma.mean) is float
    level = TrackingLevel(120.0, 30.0)
    level.update(5.0)
    assert level.n == 1 and type(level.n) is int
    drop = ConditionalDrop()
    assert drop.firing is False
    drop.firing = True
    assert drop.firing is True
