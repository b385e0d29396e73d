"""Running statistics the detectors share: decayed means, peaks, CUSUM scores, windows.

Every class keeps a fixed number of floats (a window a fixed number of steps), and
can be saved to and loaded from a JSON-able list for room checkpoints.
"""

from __future__ import annotations

import math
from array import array
from functools import cache
from typing import Any

from streams.anomaly.fields import PURE, ewma_fields, fields


@cache  # the same few half-lives in every room: one float each, not one per detector
def decay_for(half_life_steps: float) -> float:
    return 0.5 ** (1.0 / half_life_steps)


class Ewma(ewma_fields()):
    """Exponentially weighted mean, bias-corrected so that early values are plain means.

    `update(x)` adds x and returns the mean: in C on the unboxed base (`_fields.c`), or
    `update_python`, its reference, over plain slots (LIVEROOM_PURE_FIELDS=1)."""

    __slots__ = ()

    def __init__(self, half_life_steps: float) -> None:
        self.decay = decay_for(half_life_steps)
        self.mean = 0.0
        self.weight = 0.0

    def update_python(self, x: float) -> float:
        self.weight = self.weight * self.decay + 1.0
        self.mean += (x - self.mean) / self.weight
        return self.mean

    if PURE:
        update = update_python

    def to_state(self) -> list[float]:
        return [self.mean, self.weight]

    def load_state(self, state: list[float]) -> None:
        self.mean, self.weight = state


class TrackingLevel(fields("TrackingLevel", down="d", mean="d", n="q", up="d", warm_after="q")):
    """A level that follows rises slowly and falls quickly.

    For drop detection: a burst (a product launch, a flash sale) barely lifts it, so
    the normal level after the burst does not look like a drop; a session that winds
    down pulls it down with it, so a decay does not either.

    Its first steps are a plain mean, until the mean's weight of a step (1/n) falls
    below the decayed mean's: started at the first value, a room's first busy seconds
    held the level up for a minute (it falls with a 30 s half-life), and a small room
    whose true rate was a third of them looked like a broken stream (267 ViewerDrops in
    200 s of the 5,000-room `memory` scenario, all in rooms of 5-30 viewers)."""

    __slots__ = ()

    def __init__(self, up_half_life: float, down_half_life: float) -> None:
        self.up = decay_for(up_half_life)
        self.down = decay_for(down_half_life)
        self.mean = 0.0
        self.n = 0  # steps seen, counted up to `warm_after`
        # From this step on the plain mean's weight is below both decays' (1 - d).
        self.warm_after = math.ceil(1.0 / (1.0 - max(self.up, self.down)))

    def update(self, x: float) -> float:
        n = self.n
        d = self.up if x > self.mean else self.down
        if n < self.warm_after:
            self.n = n = n + 1
            if 1.0 / n > 1.0 - d:
                self.mean += (x - self.mean) / n
                return self.mean
        self.mean = d * self.mean + (1.0 - d) * x
        return self.mean

    def to_state(self) -> list[Any]:
        return [self.mean, self.n]

    def load_state(self, state: list[Any]) -> None:
        self.mean, self.n = state[0], saved_level_steps(state[1], self.warm_after)


def saved_level_steps(n: int | bool, warm_after: int) -> int:
    """A saved TrackingLevel's steps; one written before its warm start saved whether it
    had started (True: as warm as can be)."""
    if isinstance(n, bool):
        return warm_after if n else 0
    return n


class DecayingPeak(fields("DecayingPeak", decay="d", peak="d")):
    """The recent peak of a series: jumps up at once, fades with a long half-life."""

    __slots__ = ()

    def __init__(self, half_life_steps: float) -> None:
        self.decay = decay_for(half_life_steps)
        self.peak = 0.0

    def update(self, x: float) -> float:
        self.peak = max(x, self.peak * self.decay)
        return self.peak

    def to_state(self) -> list[float]:
        return [self.peak]

    def load_state(self, state: list[float]) -> None:
        (self.peak,) = state


class Dispersion:
    """How much wider than Poisson a count series is (at least 1).

    Real per-second counts are over-dispersed (traffic comes in waves), and the more
    so the bigger the room: a 20 % wobble of 1,000 entries/s is 40x the Poisson
    variance. Dividing counts and expectations by it (quasi-Poisson) keeps the CUSUMs
    honest for big rooms and leaves small ones as they are. Estimated from
    differences of consecutive steps, (x_t - x_t-1)^2 / 2 / expected, so that ramps,
    decays and the level itself do not count as noise.
    """

    __slots__ = ("ewma", "last")

    def __init__(self, half_life_steps: float = 300.0) -> None:
        self.ewma = Ewma(half_life_steps)
        self.last: float | None = None

    @property
    def phi(self) -> float:
        mean = self.ewma.mean
        return mean if mean > 1.0 else 1.0  # max(1.0, mean), without the call

    def update(self, observed: float, expected: float) -> None:
        if self.last is not None and expected > 0:
            residual = (observed - self.last) ** 2 / (2.0 * expected)
            cap = 10.0 * self.phi  # a launch's edge moves it little
            self.ewma.update(residual if residual < cap else cap)
        self.last = observed

    def to_state(self) -> list[Any]:
        return [*self.ewma.to_state(), self.last]

    def load_state(self, state: list[Any]) -> None:
        self.ewma.load_state(state[:2])
        self.last = state[2]


class PoissonCusum(fields("PoissonCusum", log_rho="d", rho="d", score="d")):
    """One-sided CUSUM of the log-likelihood ratio "rate is rho x expected" vs "as expected".

    The score is the evidence, in nats, that the shift happened; it never goes below
    zero, so a long normal stretch cannot bank credit against a later shift. Silence
    counts as evidence too (a step with 0 observed adds (1 - rho) x expected), which
    is what lets a drop be seen without waiting for the next event.
    """

    __slots__ = ()

    def __init__(self, rho: float) -> None:
        self.rho = rho
        self.log_rho = math.log(rho)
        self.score = 0.0

    def update(self, observed: float, expected: float, phi: float = 1.0) -> float:
        """Add one step; `phi` is the series' dispersion (counts are scaled by 1/phi)."""
        score = self.score + (observed * self.log_rho - (self.rho - 1.0) * expected) / phi
        self.score = score = score if score > 0.0 else 0.0  # never below zero
        return score

    def to_state(self) -> list[float]:
        return [self.score]

    def load_state(self, state: list[float]) -> None:
        (self.score,) = state


class BinomialCusum(fields("BinomialCusum", score="d")):
    """One-sided CUSUM of "hits happen with probability p1" vs "with p0", per trial."""

    __slots__ = ()

    def __init__(self) -> None:
        self.score = 0.0

    def update(self, trials: float, hits: float, p0: float, p1: float) -> float:
        llr = hits * math.log(p1 / p0) + (trials - hits) * math.log((1 - p1) / (1 - p0))
        self.score = max(0.0, self.score + llr)
        return self.score

    def to_state(self) -> list[float]:
        return [self.score]

    def load_state(self, state: list[float]) -> None:
        (self.score,) = state


class Window:
    """Sum of the last `size` steps of a few columns (a ring; O(size) memory, O(1) update).

    The ring is an array of doubles (4-byte floats for `counts`): 8 bytes a step and
    column, where a list of floats held a 24-byte float object besides each 8-byte
    pointer (a room's detectors keep ~170 steps: ~5 kB a room, 25 MB at 5,000 rooms,
    once the windows have filled). The
    columns' running totals follow the ring in the same array (a list of them and their
    float objects took ~110 bytes more a window, and a room and its watched products
    keep ~15)."""

    __slots__ = ("columns", "pos", "ring", "size")

    def __init__(self, size: int, columns: int = 1, counts: bool = False) -> None:
        """`counts`: the values pushed are whole numbers and a column's total stays below
        2**24 (comments over a minute: ~1.2M in a room of 20,000 a second), so the ring
        holds 4-byte floats, exactly: half the bytes of the 60-step windows of a room's
        comment detectors (~1 kB each at 5,000 rooms)."""
        self.size = size
        self.columns = columns
        # The steps, then the totals.
        self.ring = array("f" if counts else "d", [0.0]) * ((size + 1) * columns)
        self.pos = 0

    def push(self, *values: float) -> None:
        base = self.pos * self.columns
        ring = self.ring
        end = self.size * self.columns  # the totals' place
        # The detectors' windows have one or two columns: those without the loop.
        if len(values) == 1:
            v = values[0]
            ring[end] += v - ring[base]
            ring[base] = v
        elif len(values) == 2:
            v, w = values
            ring[end] += v - ring[base]
            ring[end + 1] += w - ring[base + 1]
            ring[base] = v
            ring[base + 1] = w
        else:
            for i, v in enumerate(values):
                ring[end + i] += v - ring[base + i]
                ring[base + i] = v
        pos = self.pos + 1
        self.pos = pos if pos < self.size else 0

    def total(self, column: int = 0) -> float:
        return self.ring[self.size * self.columns + column]

    def recent(self, steps: int, column: int = 0) -> float:
        """Sum of the last `steps` (<= size) steps of one column."""
        out = 0.0
        for back in range(1, steps + 1):
            out += self.ring[((self.pos - back) % self.size) * self.columns + column]
        return out

    def to_state(self) -> list[Any]:
        # The running totals too: summed afresh, a column of fractions differs from them
        # in the last bits, and a restored detector would judge a boundary otherwise.
        end = self.size * self.columns
        return [self.ring[:end].tolist(), self.pos, self.ring[end:].tolist()]

    def load_state(self, state: list[Any]) -> None:
        steps, self.pos = state[0], state[1]
        totals = saved_window_totals(state, self.columns)
        self.ring = array(self.ring.typecode, [*steps, *totals])


def saved_window_totals(state: list[Any], columns: int) -> list[float]:
    """A saved Window's running totals, as saved: summed afresh, a column of fractions
    differs from them in the last bits, and a restored detector would judge a boundary
    otherwise. A window saved before 2026-12-02 has none: its steps are summed."""
    if len(state) > 2:
        return list(state[2])
    steps = state[0]
    return [sum(steps[i::columns]) for i in range(columns)]
