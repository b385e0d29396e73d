"""ConditionalDrop as it was built until 2026-12-08, from the statistics objects of
streams.anomaly.stats on the Detector base: the reference the packed form
(streams.anomaly.conditional_drop) is held to, state by state, in test_conditional_drop."""

from __future__ import annotations

import math

from streams.anomaly.detectors import FIRED, RESOLVED, Detector
from streams.anomaly.stats import Dispersion, Ewma, PoissonCusum, TrackingLevel, Window


class ComposedConditionalDrop(Detector):
    """The composed form: streams.anomaly.conditional_drop.ConditionalDrop's docstring."""

    __slots__ = (
        "clear_after",
        "cusum",
        "dispersion",
        "evidence",
        "exposure_level",
        "exposures",
        "fire_after",
        "freeze_above",
        "frozen_q",
        "held",
        "hold_fraction",
        "min_success_rate",
        "q_margin",
        "recent",
        "recent_exposures",
        "resolve_fraction",
        "resolve_window",
        "successes",
    )

    _STATE = (
        "successes",
        "exposures",
        "recent_exposures",
        "held",
        "cusum",
        "recent",
        "frozen_q",
        "dispersion",
        "exposure_level",  # since 2026-12-02 (learnt again from a state without it)
    )

    def __init__(
        self,
        *,
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
        super().__init__(min_steps, warmup_steps, warmup_factor)
        self.freeze_above = freeze_above
        self.q_margin = q_margin
        self.evidence, self.hold_fraction = evidence, hold_fraction
        self.min_success_rate = min_success_rate
        self.resolve_fraction, self.clear_after = resolve_fraction, clear_after
        self.resolve_window, self.fire_after = resolve_window, fire_after
        self.successes = Ewma(half_life)
        self.exposures = Ewma(half_life)
        self.recent_exposures = Ewma(exposure_half_life)
        self.held = Window(hold_window)
        # What "exposures keep coming" is judged against: a level a flash sale barely
        # lifts (the slow mean above would stay inflated for minutes after one).
        self.exposure_level = TrackingLevel(120.0, 30.0)
        self.cusum = PoissonCusum(rho)
        self.recent = Window(resolve_window, columns=2)  # successes, expected
        self.frozen_q = 0.0
        self.dispersion = Dispersion()

    def step(self, exposures: float, successes: float) -> int | None:
        self.steps += 1
        recent_exposures = self.recent_exposures.update(exposures)
        self.held.push(exposures)
        q = self.frozen_q if self.firing else self._q()
        expected = q * recent_exposures
        self.recent.push(successes, expected)
        if self.firing:
            got, wanted = self.recent.total(0), self.recent.total(1)
            self.value = got
            if self._held(got >= self.resolve_fraction * wanted and got > 0, self.clear_after):
                self.firing = False
                self.cusum.score = 0.0
                return RESOLVED
            return None
        eligible = self.steps > self.min_steps and self.successes.mean >= self.min_success_rate
        # Exposures paused (a small room with no cart for a few seconds): the evidence
        # so far is kept, not wiped, but this step adds none.
        usual = self.exposure_level.mean
        holding = self.held.total() >= self.hold_fraction * self.held.size * usual
        judged = eligible and holding
        if judged:
            self.cusum.update(successes, expected, self.dispersion.phi)
        elif not eligible:
            self.cusum.score = 0.0
        if self.cusum.score == 0.0:
            self.dispersion.update(successes, expected)
        if not (self.freeze_above and self.cusum.score > self.freeze_above):
            self.successes.update(successes)
            self.exposures.update(exposures)
        self.exposure_level.update(min(exposures, 1.5 * usual + 1.0) if usual else exposures)
        strong = judged and self.cusum.score >= self._evidence_needed(self.evidence)
        if self._held(strong, self.fire_after):
            self.firing = True
            self.frozen_q = self.baseline = q
            self.threshold = self.resolve_fraction * q
            self.value = 0.0
            self.streak = 0
            # Resolving is judged on what came after the firing only.
            self.recent = Window(self.resolve_window, columns=2)
            return FIRED
        return None

    def _q(self) -> float:
        if self.exposures.mean <= 0:
            return 0.0
        q = self.successes.mean / self.exposures.mean
        if self.q_margin:
            # Standard error of a rate learnt from n successes: about q / sqrt(n).
            n = self.successes.mean * self.successes.weight
            q *= max(0.0, 1.0 - self.q_margin / math.sqrt(n)) if n > 0 else 0.0
        return q
