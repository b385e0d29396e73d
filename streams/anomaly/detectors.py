"""Detectors for any numeric series, one step at a time.

`step(...)` returns FIRED, RESOLVED or None. While a detector fires, `value`,
`baseline` and `threshold` describe it (for the alert text). Common rules:

- Cold start: nothing fires before `min_steps`; until `warmup_steps` the evidence
  needed is `warmup_factor` times higher (only an unmistakable failure pages).
- Outliers: baselines learn from clipped values, and drop detectors freeze their
  baseline while firing, so an incident does not become the new normal.
- Hysteresis: firing needs accumulated evidence (CUSUM) or a condition held for
  `fire_after` steps; resolving needs the series back past a separate, milder
  bound for `clear_after` steps.
"""

from __future__ import annotations

import math
from typing import Any

from streams.anomaly.fields import fields
from streams.anomaly.stats import (
    BinomialCusum,
    DecayingPeak,
    Dispersion,
    Ewma,
    PoissonCusum,
    TrackingLevel,
    Window,
)

FIRED, RESOLVED = 1, 2


# Unboxed (streams.anomaly.fields): a room keeps 5 detectors on this base and one per
# keyword list that fired (~25,000+ at 5,000 rooms; its ConditionalDrops are packed
# apart, streams.anomaly.conditional_drop), and each float here was a 24-byte object.
_DetectorFields = fields(
    "Detector",
    baseline="d",
    firing="?",
    min_steps="q",
    steps="q",
    streak="q",
    threshold="d",
    value="d",
    warmup_factor="d",
    warmup_steps="q",
)


class Detector(_DetectorFields):
    """Shared state handling: firing flag, step count, streaks, checkpoint state."""

    # Slots in each kind: an instance dict took ~290 bytes of each detector.
    __slots__ = ()

    _STATE: tuple[str, ...] = ()  # attributes saved in checkpoints (nested ones by to_state)

    def __init__(self, min_steps: int, warmup_steps: int, warmup_factor: float) -> None:
        self.min_steps = min_steps
        self.warmup_steps = warmup_steps
        self.warmup_factor = warmup_factor
        self.firing = False
        self.steps = 0
        self.streak = 0  # consecutive steps the fire (or clear) condition held
        self.value = 0.0
        self.baseline = 0.0
        self.threshold = 0.0

    def _evidence_needed(self, base: float) -> float:
        return base * (self.warmup_factor if self.steps < self.warmup_steps else 1.0)

    def _held(self, condition: bool, steps: int) -> bool:
        self.streak = self.streak + 1 if condition else 0
        if self.streak >= steps:
            self.streak = 0
            return True
        return False

    def to_state(self) -> list[Any]:
        """[firing, steps, streak, value, baseline, *_STATE, threshold]: what came later is
        appended, so a state saved before it loads (its tail keeps the defaults)."""
        out: list[Any] = [self.firing, self.steps, self.streak, self.value, self.baseline]
        for name in self._STATE:
            item = getattr(self, name)
            out.append(item.to_state() if hasattr(item, "to_state") else item)
        out.append(self.threshold)
        return out

    def load_state(self, state: list[Any]) -> None:
        self.firing, self.steps, self.streak, self.value, self.baseline = state[:5]
        for name, saved in zip(self._STATE, state[5:], strict=False):
            item = getattr(self, name)
            if hasattr(item, "load_state"):
                item.load_state(saved)
            else:
                setattr(self, name, saved)
        if len(state) > 5 + len(self._STATE):
            self.threshold = state[5 + len(self._STATE)]


class RateDrop(Detector):
    """A count per step fell far below the series' own recent rate (or went silent).

    Poisson CUSUM against rate x `rho`, on a level that rises slowly and falls fast
    (bursts do not raise the bar, a decay lowers it). Only judged when that level is
    at least `min_rate` and at least `peak_fraction` of the recent peak: a room
    winding down at the end of its session is not a room whose stream broke.
    """

    __slots__ = (
        "clear_after",
        "cusum",
        "dispersion",
        "evidence",
        "fire_after",
        "frozen",
        "min_rate",
        "peak",
        "peak_fraction",
        "rate",
        "recent",
        "resolve_fraction",
        "resolve_window",
    )

    _STATE = ("rate", "peak", "cusum", "recent", "frozen", "dispersion")

    def __init__(
        self,
        *,
        rho: float = 0.1,
        evidence: float = 12.0,
        rise_half_life: float = 120.0,
        fall_half_life: float = 30.0,
        min_rate: float = 0.5,
        peak_fraction: float = 0.25,
        peak_half_life: float = 1800.0,
        resolve_fraction: float = 0.6,
        resolve_window: int = 5,
        fire_after: int = 3,
        clear_after: int = 5,
        min_steps: int = 20,
        warmup_steps: int = 120,
        warmup_factor: float = 3.0,
    ) -> None:
        super().__init__(min_steps, warmup_steps, warmup_factor)
        self.evidence, self.min_rate, self.fire_after = evidence, min_rate, fire_after
        self.peak_fraction, self.resolve_fraction = peak_fraction, resolve_fraction
        self.resolve_window, self.clear_after = resolve_window, clear_after
        self.rate = TrackingLevel(rise_half_life, fall_half_life)
        self.peak = DecayingPeak(peak_half_life)
        self.cusum = PoissonCusum(rho)
        self.recent = Window(resolve_window)
        self.frozen = 0.0
        self.dispersion = Dispersion()

    def step(self, x: float) -> int | None:
        self.steps += 1
        self.recent.push(x)
        if self.firing:
            self.value = self.recent.total() / self.resolve_window
            back = self.value >= self.resolve_fraction * self.frozen
            if self._held(back, self.clear_after):
                self.firing = False
                self.cusum.score = 0.0
                return RESOLVED
            return None
        expected = self.rate.mean
        judged = (
            self.steps > self.min_steps
            and expected >= self.min_rate
            and expected >= self.peak_fraction * self.peak.peak
        )
        if judged:
            self.cusum.update(x, expected, self.dispersion.phi)
        else:
            self.cusum.score = 0.0
        if self.cusum.score < self.evidence / 2:
            # Learn unless strong evidence of a drop is building up (then the level
            # must not follow the drop down). A slow decline keeps learning.
            self.dispersion.update(x, expected)
            # A x10 flash sale lifts the level no more than a x1.5 minute would.
            self.peak.update(self.rate.update(min(x, 1.5 * expected + 1.0) if expected else x))
        # Held for `fire_after` steps: a one-second ingest hiccup is not a broken stream.
        strong = judged and self.cusum.score >= self._evidence_needed(self.evidence)
        if self._held(strong, self.fire_after):
            self.firing = True
            self.frozen = self.baseline = expected
            self.threshold = self.resolve_fraction * expected
            self.value = self.recent.total() / self.resolve_window
            return FIRED
        return None


class RateSpike(Detector):
    """A count per step far above the series' own rate: a flood, or a viral moment.

    Poisson CUSUM against rate x `rho` (rho = 20 drifts up only above ~6.3x the
    baseline, so product-launch bursts of 2-3x stay quiet), plus a floor of
    `min_excess` extra events, so a quiet series cannot fire on a handful.
    `suppress()` (an announced flash sale) holds it off.
    """

    __slots__ = (
        "clear_after",
        "cusum",
        "dispersion",
        "evidence",
        "excess",
        "fast",
        "min_excess",
        "rate",
        "resolve_ratio",
        "suppressed_until",
    )

    _STATE = ("rate", "fast", "cusum", "excess", "suppressed_until", "dispersion")

    def __init__(
        self,
        *,
        rho: float = 20.0,
        evidence: float = 15.0,
        half_life: float = 60.0,
        min_excess: float = 50.0,
        resolve_ratio: float = 2.0,
        clear_after: int = 10,
        min_steps: int = 30,
        warmup_steps: int = 120,
        warmup_factor: float = 3.0,
    ) -> None:
        super().__init__(min_steps, warmup_steps, warmup_factor)
        self.evidence, self.min_excess = evidence, min_excess
        self.resolve_ratio, self.clear_after = resolve_ratio, clear_after
        self.rate = Ewma(half_life)
        self.fast = Ewma(3.0)
        self.cusum = PoissonCusum(rho)
        self.excess = 0.0  # events above expectation since the CUSUM last left zero
        self.suppressed_until = -1
        self.dispersion = Dispersion()

    def suppress(self, until_step: int) -> None:
        self.suppressed_until = max(self.suppressed_until, until_step)

    def step(self, x: float) -> int | None:
        self.steps += 1
        expected = self.rate.mean
        fast = self.fast.update(x)
        suppressed = self.steps <= self.suppressed_until
        # The baseline follows level shifts slowly even while firing (a room that
        # went viral and stays big stops being news), but a spike moves it little.
        spread = 4.0 * math.sqrt(expected * self.dispersion.phi) + 2.0
        self.rate.update(min(x, expected + spread) if self.steps > 1 else x)
        if self.firing:
            self.value, self.baseline = fast, self.rate.mean
            if self._held(
                fast < self.resolve_ratio * self.rate.mean or suppressed, self.clear_after
            ):
                self.firing = False
                self.cusum.score = self.excess = 0.0
                return RESOLVED
            return None
        if self.steps <= self.min_steps or suppressed:
            self.cusum.score = self.excess = 0.0
            return None
        before = self.cusum.score
        score = self.cusum.update(x, max(expected, 0.05), self.dispersion.phi)
        if score == 0.0:
            self.dispersion.update(x, expected)
        self.excess = self.excess + x - expected if before > 0 or score > 0 else 0.0
        if score >= self._evidence_needed(self.evidence) and self.excess >= self.min_excess:
            self.firing = True
            self.value, self.baseline = fast, expected
            self.threshold = expected * self.cusum.rho
            self.streak = 0
            return FIRED
        return None


class LevelDrop(Detector):
    """A level (e.g. online viewers) fell below `ratio` x its recent level and stayed.

    The recent level rises slowly and falls fast, so a session's decay lowers it as
    it goes and only a sudden fall (a mass exit) is judged."""

    __slots__ = (
        "clear_after",
        "fire_after",
        "frozen",
        "level",
        "min_level",
        "peak",
        "peak_fraction",
        "ratio",
        "resolve_ratio",
        "unmistakable_ratio",
    )

    _STATE = ("level", "peak", "frozen")

    def __init__(
        self,
        *,
        ratio: float = 0.5,
        unmistakable_ratio: float = 0.1,
        rise_half_life: float = 120.0,
        fall_half_life: float = 30.0,
        min_level: float = 20.0,
        peak_fraction: float = 0.25,
        peak_half_life: float = 1800.0,
        resolve_ratio: float = 0.8,
        fire_after: int = 3,
        clear_after: int = 5,
        min_steps: int = 20,
        warmup_steps: int = 60,
    ) -> None:
        super().__init__(min_steps, warmup_steps, 1.0)
        self.ratio, self.unmistakable_ratio = ratio, unmistakable_ratio
        self.min_level, self.peak_fraction = min_level, peak_fraction
        self.resolve_ratio = resolve_ratio
        self.fire_after, self.clear_after = fire_after, clear_after
        self.level = TrackingLevel(rise_half_life, fall_half_life)
        self.peak = DecayingPeak(peak_half_life)
        self.frozen = 0.0

    def step(self, x: float) -> int | None:
        self.steps += 1
        self.value = x
        if self.firing:
            if self._held(x >= self.resolve_ratio * self.frozen, self.clear_after):
                self.firing = False
                return RESOLVED
            return None
        usual = self.level.mean
        ratio = self.ratio if self.steps >= self.warmup_steps else self.unmistakable_ratio
        low = (
            self.steps > self.min_steps
            and usual >= self.min_level
            and usual >= self.peak_fraction * self.peak.peak
            and x < ratio * usual
        )
        if self._held(low, self.fire_after):
            self.firing = True
            self.frozen = self.baseline = usual
            self.threshold = ratio * usual
            return FIRED
        if not low:
            self.peak.update(self.level.update(x))
        return None


class RatioSurge(Detector):
    """The share of hits among trials (negative comments among scored ones) rose well
    above the series' own baseline share.

    Binomial CUSUM of p1 = max(`lift` x p0, p0 + `margin`) against p0, judged only
    with at least `min_volume` trials in the last `window` steps. The baseline p0
    starts at `prior` (weighted as `prior_weight` trials) and learns slowly. Resolves
    when the share over the last `resolve_window` steps is back below halfway
    between p0 and p1.
    """

    __slots__ = (
        "clear_after",
        "cusum",
        "evidence",
        "hits",
        "lift",
        "margin",
        "min_volume",
        "prior",
        "prior_weight",
        "rearm_steps",
        "resolve_window",
        "resolved_at",
        "trials",
        "window_sums",
    )

    _STATE = ("trials", "hits", "cusum", "window_sums", "resolved_at")

    def __init__(
        self,
        *,
        prior: float = 0.1,
        prior_weight: float = 200.0,
        lift: float = 2.0,
        margin: float = 0.2,
        evidence: float = 10.0,
        half_life: float = 600.0,
        window: int = 60,
        min_volume: float = 30.0,
        resolve_window: int = 20,
        clear_after: int = 10,
        rearm_steps: int = 300,
        min_steps: int = 0,
        warmup_steps: int = 0,
        warmup_factor: float = 1.0,
    ) -> None:
        super().__init__(min_steps, warmup_steps, warmup_factor)
        self.prior, self.prior_weight = prior, prior_weight
        self.lift, self.margin, self.evidence = lift, margin, evidence
        self.min_volume, self.resolve_window = min_volume, resolve_window
        self.clear_after, self.rearm_steps = clear_after, rearm_steps
        self.resolved_at = -(10**9)
        self.trials = Ewma(half_life)
        self.hits = Ewma(half_life)
        self.cusum = BinomialCusum()
        self.window_sums = Window(window, columns=2, counts=True)  # trials, hits

    def p0(self) -> float:
        n = self.trials.mean * self.trials.weight
        k = self.hits.mean * self.hits.weight
        return min(0.9, max(0.01, (k + self.prior * self.prior_weight) / (n + self.prior_weight)))

    def share(self) -> float:
        n = self.window_sums.total(0)
        return self.window_sums.total(1) / n if n else 0.0

    def step(self, trials: float, hits: float) -> int | None:
        self.steps += 1
        self.window_sums.push(trials, hits)
        self.value = self.share()
        p0 = self.p0()
        p1 = min(0.95, max(self.lift * p0, p0 + self.margin))
        # The baseline keeps learning while firing, slowly: a room that stays this
        # angry for many minutes becomes its own normal and the alert resolves.
        self.trials.update(trials)
        self.hits.update(hits)
        if self.firing:
            n = self.window_sums.recent(self.resolve_window, 0)
            k = self.window_sums.recent(self.resolve_window, 1)
            calm = n == 0 or k / n <= (p0 + p1) / 2
            if self._held(calm, self.clear_after):
                self.firing = False
                self.cusum.score = 0.0
                self.resolved_at = self.steps
                return RESOLVED
            return None
        judged = self.steps > self.min_steps and self.window_sums.total(0) >= self.min_volume
        if trials:
            self.cusum.update(trials, hits, p0, p1)
        if not judged:
            self.cusum.score = 0.0
        needed = self._evidence_needed(self.evidence)
        if self.steps - self.resolved_at < self.rearm_steps:
            needed *= 2  # just resolved: firing again takes twice the evidence (no flapping)
        if judged and self.cusum.score >= needed:
            self.firing = True
            self.baseline, self.threshold = p0, p1
            self.streak = 0
            return FIRED
        return None


class CountThreshold(Detector):
    """At least `min_hits` in the last `window` steps, and at least `min_share` of the
    `total` seen over the same steps (so a busy series' usual trickle of hits is not
    news); quiet again below half of that for `clear_after` steps; then `cooldown`
    steps before it may fire again."""

    __slots__ = (
        "clear_after",
        "cooldown",
        "cooldown_until",
        "min_hits",
        "min_share",
        "window_sums",
    )

    _STATE = ("window_sums", "cooldown_until")

    def __init__(
        self,
        *,
        min_hits: int = 5,
        min_share: float = 0.0,
        window: int = 60,
        clear_after: int = 30,
        cooldown: int = 300,
    ) -> None:
        super().__init__(0, 0, 1.0)
        self.min_hits, self.min_share = min_hits, min_share
        self.clear_after, self.cooldown = clear_after, cooldown
        self.window_sums = Window(window, columns=2, counts=True)  # hits, total
        self.cooldown_until = -1

    def step(self, hits: float, total: float = 0.0) -> int | None:
        self.steps += 1
        self.window_sums.push(hits, total)
        self.value = self.window_sums.total(0)
        bar = max(self.min_hits, self.min_share * self.window_sums.total(1))
        if self.firing:
            if self._held(self.value < max(1.0, bar / 2), self.clear_after):
                self.firing = False
                self.cooldown_until = self.steps + self.cooldown
                return RESOLVED
            return None
        if self.steps > self.cooldown_until and self.value >= bar:
            self.firing = True
            self.threshold = float(bar)  # a double field (min_hits is a whole number)
            self.streak = 0
            return FIRED
        return None
