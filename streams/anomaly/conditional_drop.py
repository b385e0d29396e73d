"""ConditionalDrop: successes stopped coming at the series' own rate per exposure.

Each step brings `exposures` (carts, or entries) and `successes` (orders). The room's
own rate q = successes per exposure is learnt slowly; the successes expected this step
are q x the recent exposures (smoothed: an order follows its cart by tens of seconds),
and a Poisson CUSUM asks whether they now come at rho x that. Works at small counts: a
room that converts 1 cart in 3 needs ~30 carts without an order before it fires,
however long that takes. Judged only while exposures keep coming: over the last
`hold_window` steps at least `hold_fraction` of their usual number.

`freeze_above`: the rate q is not learnt while the evidence of a drop is above this many
nats (0: always learnt). For slow series (one product's orders: a few a minute) the
evidence takes minutes, and q learning the incident's zeros meanwhile halved what it
expected and hid a broken product link.

`q_margin`: judge against a lower bound of q, `q_margin` standard errors below it (0: q
itself). q learnt from a few dozen orders is uncertain by 20 % and more, and where it
came out high by chance, a normal stretch looked like a drop: the false
ProductCheckoutStalled of slow products.

Packed: a detector is one array of doubles (its numbers, then its two windows) and its
settings are shared by every detector built with the same arguments. There is one per
room for checkout, one for conversion and one per watched product (~35,000 at 5,000
rooms), and built from the statistics objects of streams.anomaly.stats each took
1.2-1.5 kB; this takes 0.4-0.5 kB. The arithmetic is theirs, step for step and in the
same order of operations (Ewma, TrackingLevel, Window, PoissonCusum, Dispersion):
tests/unit/conditional_drop_reference.py is that composed form, and
tests/unit/test_conditional_drop.py holds this one to it state by state.
"""

from __future__ import annotations

import math
from array import array
from functools import cache
from typing import Any

from streams.anomaly.detectors import FIRED, RESOLVED
from streams.anomaly.stats import decay_for, saved_level_steps, saved_window_totals

# Where each number sits in a detector's array; the two windows follow at WINDOWS.
(
    FIRING,  # 0 or 1
    STEPS,
    STREAK,  # consecutive steps the fire (or clear) condition held
    VALUE,
    BASELINE,
    THRESHOLD,
    SUCCESS_MEAN,  # the decayed mean of successes a step, and its weight
    SUCCESS_WEIGHT,
    EXPOSURE_MEAN,  # ... of exposures a step
    EXPOSURE_WEIGHT,
    RECENT_MEAN,  # ... of exposures over the last few steps (their own half-life)
    RECENT_WEIGHT,
    LEVEL,  # exposures' usual level: rises slowly, falls fast (TrackingLevel)
    LEVEL_STEPS,  # the level's steps, counted up to its warm start's end
    CUSUM,  # evidence of a drop, in nats
    FROZEN_Q,  # q when it fired: resolving is judged against it
    NOISE_MEAN,  # dispersion (Dispersion): decayed mean of the residuals
    NOISE_WEIGHT,
    NOISE_LAST,  # the last successes seen (NaN: none yet)
    HELD_POS,  # the hold window: its next slot, its total
    HELD_TOTAL,
    RECENT_POS,  # the resolve window: its next slot, its two totals
    RECENT_GOT,
    RECENT_WANTED,
    WINDOWS,  # hold_window steps of exposures, then resolve_window (successes, expected)
) = range(25)

_NONE = math.nan  # NOISE_LAST before any step
_ZERO = array("d", [0.0])  # repeated: an array of exactly that size (from bytes it grows 20 %)


class _Settings:
    """What every detector built with the same arguments shares, decays included."""

    __slots__ = (
        "clear_after",
        "evidence",
        "fire_after",
        "freeze_above",
        "hold_fraction",
        "hold_window",
        "level_down",
        "level_up",
        "level_warm_after",
        "log_rho",
        "min_steps",
        "min_success_rate",
        "noise_decay",
        "q_margin",
        "rate_decay",
        "recent_at",
        "recent_decay",
        "resolve_fraction",
        "resolve_window",
        "rho",
        "size",
        "warmup_factor",
        "warmup_steps",
    )

    def __init__(
        self,
        rho: float = 0.1,
        evidence: float = 9.0,
        half_life: float = 120.0,
        exposure_half_life: float = 10.0,
        hold_fraction: float = 0.5,
        hold_window: int = 3,
        min_success_rate: float = 0.02,
        resolve_fraction: float = 0.5,
        resolve_window: int = 10,
        fire_after: int = 2,
        clear_after: int = 3,
        min_steps: int = 60,
        warmup_steps: int = 120,
        warmup_factor: float = 3.0,
        freeze_above: float = 0.0,
        q_margin: float = 0.0,
    ) -> None:
        self.rho, self.log_rho = rho, math.log(rho)
        self.evidence, self.hold_fraction = evidence, hold_fraction
        self.min_success_rate, self.q_margin = min_success_rate, q_margin
        self.resolve_fraction, self.freeze_above = resolve_fraction, freeze_above
        self.fire_after, self.clear_after = fire_after, clear_after
        self.min_steps, self.warmup_steps, self.warmup_factor = (
            min_steps,
            warmup_steps,
            warmup_factor,
        )
        self.rate_decay = decay_for(half_life)
        self.recent_decay = decay_for(exposure_half_life)
        # The usual level of exposures: one a flash sale barely lifts (the slow mean
        # would stay inflated for minutes after one).
        self.level_up, self.level_down = decay_for(120.0), decay_for(30.0)
        self.level_warm_after = math.ceil(1.0 / (1.0 - max(self.level_up, self.level_down)))
        self.noise_decay = decay_for(300.0)
        self.hold_window, self.resolve_window = hold_window, resolve_window
        self.recent_at = WINDOWS + hold_window
        self.size = self.recent_at + 2 * resolve_window


@cache
def _settings(arguments: tuple[tuple[str, Any], ...]) -> _Settings:
    return _Settings(**dict(arguments))


class ConditionalDrop:
    """See the module's docstring. `step(exposures, successes)` returns FIRED, RESOLVED
    or None; while it fires, `value`, `baseline` and `threshold` describe it."""

    __slots__ = ("s", "settings")

    def __init__(self, **arguments: Any) -> None:
        self.settings = settings = _settings(tuple(sorted(arguments.items())))
        self.s = _ZERO * settings.size
        self.s[NOISE_LAST] = _NONE

    # -- what alerts read --------------------------------------------------------------

    @property
    def firing(self) -> bool:
        return self.s[FIRING] != 0.0

    @firing.setter
    def firing(self, on: bool) -> None:
        self.s[FIRING] = 1.0 if on else 0.0

    @property
    def steps(self) -> int:
        return int(self.s[STEPS])

    @property
    def value(self) -> float:
        return self.s[VALUE]

    @property
    def baseline(self) -> float:
        return self.s[BASELINE]

    @property
    def threshold(self) -> float:
        return self.s[THRESHOLD]

    @property
    def exposure_mean(self) -> float:
        """Exposures a step, over the slow half-life."""
        return self.s[EXPOSURE_MEAN]

    @property
    def recent_exposure_mean(self) -> float:
        """Exposures a step, over the last few steps."""
        return self.s[RECENT_MEAN]

    def resolve_totals(self) -> tuple[float, float]:
        """(successes, expected successes) in the resolve window."""
        return self.s[RECENT_GOT], self.s[RECENT_WANTED]

    def prime(self, exposures: float, successes: float) -> None:
        """Learn one step of history without judging it (a product's prior)."""
        s = self.s
        self._mean(s, EXPOSURE_MEAN, self.settings.rate_decay, exposures)
        self._mean(s, SUCCESS_MEAN, self.settings.rate_decay, successes)

    # -- the step ----------------------------------------------------------------------

    @staticmethod
    def _mean(s: array, at: int, decay: float, x: float) -> float:
        """Ewma.update on the mean at `at` and its weight after it."""
        weight = s[at + 1] = s[at + 1] * decay + 1.0
        mean = s[at] = s[at] + (x - s[at]) / weight
        return mean

    def _held(self, s: array, condition: bool, steps: int) -> bool:
        streak = s[STREAK] + 1.0 if condition else 0.0
        if streak >= steps:
            s[STREAK] = 0.0
            return True
        s[STREAK] = streak
        return False

    def _q(self, s: array) -> float:
        exposures = s[EXPOSURE_MEAN]
        if exposures <= 0:
            return 0.0
        successes = s[SUCCESS_MEAN]
        q = successes / exposures
        margin = self.settings.q_margin
        if margin:
            # Standard error of a rate learnt from n successes: about q / sqrt(n).
            n = successes * s[SUCCESS_WEIGHT]
            q *= max(0.0, 1.0 - margin / math.sqrt(n)) if n > 0 else 0.0
        return q

    def step(self, exposures: float, successes: float) -> int | None:
        s, k = self.s, self.settings
        steps = s[STEPS] = s[STEPS] + 1.0
        # Ewma.update of the recent exposures, inline as the two below (the hot path).
        weight = s[RECENT_WEIGHT] = s[RECENT_WEIGHT] * k.recent_decay + 1.0
        mean = s[RECENT_MEAN]
        recent_exposures = s[RECENT_MEAN] = mean + (exposures - mean) / weight
        # The hold window (one column): its total, then the step in its slot.
        at = WINDOWS + int(s[HELD_POS])
        s[HELD_TOTAL] += exposures - s[at]
        s[at] = exposures
        s[HELD_POS] = (s[HELD_POS] + 1.0) % k.hold_window
        firing = s[FIRING] != 0.0
        q = s[FROZEN_Q] if firing else self._q(s)
        expected = q * recent_exposures
        # The resolve window (two columns): successes, and those expected.
        at = k.recent_at + 2 * int(s[RECENT_POS])
        s[RECENT_GOT] += successes - s[at]
        s[RECENT_WANTED] += expected - s[at + 1]
        s[at], s[at + 1] = successes, expected
        s[RECENT_POS] = (s[RECENT_POS] + 1.0) % k.resolve_window
        if firing:
            got, wanted = s[RECENT_GOT], s[RECENT_WANTED]
            s[VALUE] = got
            if self._held(s, got >= k.resolve_fraction * wanted and got > 0, k.clear_after):
                s[FIRING] = 0.0
                s[CUSUM] = 0.0
                return RESOLVED
            return None
        eligible = steps > k.min_steps and s[SUCCESS_MEAN] >= k.min_success_rate
        # Exposures paused (a small room with no cart for a few seconds): the evidence so
        # far is kept, not wiped, but this step adds none.
        usual = s[LEVEL]
        holding = s[HELD_TOTAL] >= k.hold_fraction * k.hold_window * usual
        judged = eligible and holding
        if judged:  # PoissonCusum.update, counts scaled by the dispersion
            noise = s[NOISE_MEAN]
            phi = noise if noise > 1.0 else 1.0
            score = s[CUSUM] + (successes * k.log_rho - (k.rho - 1.0) * expected) / phi
            s[CUSUM] = score if score > 0.0 else 0.0
        elif not eligible:
            s[CUSUM] = 0.0
        if s[CUSUM] == 0.0:
            self._learn_noise(s, successes, expected)
        if not (k.freeze_above and s[CUSUM] > k.freeze_above):
            decay = k.rate_decay
            weight = s[SUCCESS_WEIGHT] = s[SUCCESS_WEIGHT] * decay + 1.0
            mean = s[SUCCESS_MEAN]
            s[SUCCESS_MEAN] = mean + (successes - mean) / weight
            weight = s[EXPOSURE_WEIGHT] = s[EXPOSURE_WEIGHT] * decay + 1.0
            mean = s[EXPOSURE_MEAN]
            s[EXPOSURE_MEAN] = mean + (exposures - mean) / weight
        self._learn_level(s, min(exposures, 1.5 * usual + 1.0) if usual else exposures)
        needed = k.evidence * (k.warmup_factor if steps < k.warmup_steps else 1.0)
        if self._held(s, judged and s[CUSUM] >= needed, k.fire_after):
            s[FIRING] = 1.0
            s[FROZEN_Q] = s[BASELINE] = q
            s[THRESHOLD] = k.resolve_fraction * q
            s[VALUE] = 0.0
            s[STREAK] = 0.0
            # Resolving is judged on what came after the firing only.
            s[RECENT_POS] = s[RECENT_GOT] = s[RECENT_WANTED] = 0.0
            s[k.recent_at : k.size] = _ZERO * (2 * k.resolve_window)
            return FIRED
        return None

    def _learn_noise(self, s: array, observed: float, expected: float) -> None:
        """Dispersion.update: how much wider than Poisson the successes are."""
        last = s[NOISE_LAST]
        if last == last and expected > 0:  # not NaN: a step seen before
            residual = (observed - last) ** 2 / (2.0 * expected)
            noise = s[NOISE_MEAN]
            cap = 10.0 * (noise if noise > 1.0 else 1.0)  # a launch's edge moves it little
            self._mean(
                s, NOISE_MEAN, self.settings.noise_decay, residual if residual < cap else cap
            )
        s[NOISE_LAST] = observed

    def _learn_level(self, s: array, x: float) -> None:
        """TrackingLevel.update: a plain mean while warming up, then decayed."""
        k = self.settings
        mean = s[LEVEL]
        d = k.level_up if x > mean else k.level_down
        n = s[LEVEL_STEPS]
        if n < k.level_warm_after:
            s[LEVEL_STEPS] = n = n + 1.0
            if 1.0 / n > 1.0 - d:
                s[LEVEL] = mean + (x - mean) / n
                return
        s[LEVEL] = d * mean + (1.0 - d) * x

    # -- checkpoints -------------------------------------------------------------------

    def to_state(self) -> list[Any]:
        """The layout the composed detector saved (streams.anomaly.detectors.Detector):
        [firing, steps, streak, value, baseline, successes, exposures, recent exposures,
        hold window, cusum, resolve window, frozen q, dispersion, level, threshold]."""
        s, k = self.s, self.settings
        last = s[NOISE_LAST]
        return [
            s[FIRING] != 0.0,
            int(s[STEPS]),
            int(s[STREAK]),
            s[VALUE],
            s[BASELINE],
            [s[SUCCESS_MEAN], s[SUCCESS_WEIGHT]],
            [s[EXPOSURE_MEAN], s[EXPOSURE_WEIGHT]],
            [s[RECENT_MEAN], s[RECENT_WEIGHT]],
            [s[WINDOWS : k.recent_at].tolist(), int(s[HELD_POS]), [s[HELD_TOTAL]]],
            [s[CUSUM]],
            [
                s[k.recent_at : k.size].tolist(),
                int(s[RECENT_POS]),
                [s[RECENT_GOT], s[RECENT_WANTED]],
            ],
            s[FROZEN_Q],
            [s[NOISE_MEAN], s[NOISE_WEIGHT], None if last != last else last],
            [s[LEVEL], int(s[LEVEL_STEPS])],
            s[THRESHOLD],
        ]

    def load_state(self, state: list[Any]) -> None:
        """A state `to_state` wrote, or one written before 2026-12-02 (no level, no
        threshold, windows without their totals: those are learnt or summed again)."""
        s, k = self.s, self.settings
        s[FIRING] = 1.0 if state[0] else 0.0
        s[STEPS], s[STREAK], s[VALUE], s[BASELINE] = state[1:5]
        (s[SUCCESS_MEAN], s[SUCCESS_WEIGHT]), (s[EXPOSURE_MEAN], s[EXPOSURE_WEIGHT]) = state[5:7]
        s[RECENT_MEAN], s[RECENT_WEIGHT] = state[7]
        s[HELD_POS], (s[HELD_TOTAL],) = self._load_window(state[8], WINDOWS, k.hold_window, 1)
        (s[CUSUM],) = state[9]
        s[RECENT_POS], (s[RECENT_GOT], s[RECENT_WANTED]) = self._load_window(
            state[10], k.recent_at, k.resolve_window, 2
        )
        s[FROZEN_Q] = state[11]
        s[NOISE_MEAN], s[NOISE_WEIGHT], last = state[12]
        s[NOISE_LAST] = _NONE if last is None else last
        if len(state) > 13:
            level, n = state[13]
            s[LEVEL], s[LEVEL_STEPS] = level, saved_level_steps(n, k.level_warm_after)
        if len(state) > 14:
            s[THRESHOLD] = state[14]

    def _load_window(
        self, saved: list[Any], at: int, size: int, columns: int
    ) -> tuple[int, list[float]]:
        """A Window's state into its place: (its position, its totals). A window saved
        with another size (the rules changed between runs) starts empty."""
        steps, pos = saved[0], saved[1]
        if len(steps) != size * columns:
            self.s[at : at + size * columns] = _ZERO * (size * columns)
            return 0, [0.0] * columns
        self.s[at : at + size * columns] = array("d", steps)
        return pos, saved_window_totals(saved, columns)
