"""Load-test scenarios: built-in TOML files (loadtest/scenarios/) or your own."""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from streams.traffic.model import Funnel, Imperfections, TrafficModel
from streams.traffic.session import INCIDENT_KINDS, PRODUCT_LINK_BROKEN, Incident, SessionShape


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class InjectedIncident:
    kind: str
    room_rank: int  # 1 = the biggest room
    start: float  # seconds into the run
    length: float


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    rate: float = 20_000.0
    duration: float = 60.0
    rooms: int = 500
    batch: int = 100
    seed: int = 1
    zipf_s: float = 1.1
    ramp_s: float = 10.0
    launches: int = 0
    duplicate_share: float = 0.0
    late_share: float = 0.0
    malformed_share: float = 0.0
    flash_sale: dict[str, float] = field(default_factory=dict)  # start, length, factor, every
    incidents: tuple[InjectedIncident, ...] = ()
    steps: tuple[float, ...] = ()  # rate steps (capacity search); empty = one rate
    step_duration: float = 0.0
    workers: int = 1  # worker processes in the group (--workers overrides)
    top_room_shards: int = 0  # pin the biggest room to this many shards (0: not split)
    top_room_share: float = 0.0  # the biggest room's share of the audience (0: by Zipf)

    @property
    def top_room_id(self) -> str:
        """The biggest room's id, as the traffic model names it."""
        return f"room-{1:0{max(3, len(str(self.rooms)))}d}"

    @property
    def total_duration(self) -> float:
        return len(self.steps) * self.step_duration if self.steps else self.duration

    def rate_at(self, t: float) -> float:
        if not self.steps:
            return self.rate
        return self.steps[min(int(t // self.step_duration), len(self.steps) - 1)]

    def bursts(self) -> list[tuple[float, float, float]]:
        """(start, length, factor) of every flash sale in the run: one, or one `every`
        seconds (the soak's repeated bursts)."""
        fs = self.flash_sale
        if not fs:
            return []
        every = fs.get("every", 0)
        starts = [fs["start"]]
        while every and starts[-1] + every < self.total_duration:
            starts.append(starts[-1] + every)
        return [(start, fs["length"], fs["factor"]) for start in starts]

    def imperfections(self) -> Imperfections:
        return Imperfections(self.duplicate_share, self.late_share, self.malformed_share)

    def sessions(self) -> dict[int, SessionShape]:
        """Every room's session shape over the run (index 0 = the biggest room)."""
        rng = random.Random(self.seed)
        horizon = self.total_duration + 3600  # no decay inside the run
        out = {}
        for index in range(self.rooms):
            shape = SessionShape(duration_s=horizon, ramp_s=self.ramp_s, decay_s=0.0)
            # Launches of one room never overlap, and a run too short for one has none.
            latest = self.total_duration - 40
            for _ in range(self.launches if latest > self.ramp_s else 0):
                start = rng.uniform(self.ramp_s, latest)
                if all(abs(start - other) > 40 for other, _, _ in shape.launches):
                    shape.launches.append((start, rng.uniform(20, 40), rng.uniform(2, 3)))
            for start, length, factor in self.bursts():
                shape.flash_sales.append((start, length, factor))
            out[index] = shape
        for incident in self.incidents:
            shape = out[incident.room_rank - 1]
            product = -1
            if incident.kind == PRODUCT_LINK_BROKEN:  # the room's best product then
                weights = shape.product_mix(incident.start).weights
                product = max(range(len(weights)), key=lambda k: (weights[k], k))
            shape.incidents.append(
                Incident(incident.kind, incident.start, incident.start + incident.length, product)
            )
        return out

    def model(self, seed_offset: int = 0, producers: int = 1, share: int = 0) -> TrafficModel:
        """The traffic of this scenario, or of one producer's share of its rooms."""
        first_rate = self.steps[0] if self.steps else self.rate
        return TrafficModel(
            rooms=self.rooms,
            total_viewers=TrafficModel.viewers_for_rate(first_rate, Funnel()),
            seed=self.seed * 1000 + seed_offset,
            zipf_s=self.zipf_s,
            ramp_s=self.ramp_s,
            imperfections=self.imperfections(),
            sessions=self.sessions(),
            only=(lambda i: i % producers == share) if producers > 1 else None,
            warm_start=True,
            top_share=self.top_room_share or None,
        )


BUILT_IN = (
    "steady",
    "mega-room",
    "flash-sale",
    "hot-room",
    "incidents",
    "capacity",
    "capacity-single",
    "memory",
    "soak",
)


def load(name_or_path: str, **overrides: Any) -> Scenario:
    """A built-in scenario by name, or a TOML file; command-line options override it."""
    if name_or_path in BUILT_IN:
        text = resources.files(__package__).joinpath("scenarios", f"{name_or_path}.toml")
        raw, name = tomllib.loads(text.read_text("utf-8")), name_or_path
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ScenarioError(
                f"no scenario {name_or_path!r}: use one of {', '.join(BUILT_IN)} or a TOML file"
            )
        try:
            raw = tomllib.loads(path.read_text("utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ScenarioError(f"{path}: {err}") from None
        name = path.stem
    known = {f.name for f in fields(Scenario)}
    unknown = set(raw) - known
    if unknown:
        raise ScenarioError(f"{name}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    incidents = []
    for item in raw.pop("incidents", []):
        if item.get("kind") not in INCIDENT_KINDS:
            raise ScenarioError(f"{name}: incident kind must be one of {INCIDENT_KINDS}")
        incidents.append(
            InjectedIncident(
                item["kind"], int(item["room_rank"]), float(item["start"]), float(item["length"])
            )
        )
    raw["steps"] = tuple(float(x) for x in raw.get("steps", ()))
    scenario = Scenario(name=name, incidents=tuple(incidents), **raw)
    given = {k: v for k, v in overrides.items() if v is not None}
    if "rate" in given and scenario.steps:
        given["steps"] = ()  # an explicit rate replaces the steps
    if "duration" in given and scenario.steps:
        given["steps"] = ()
    scenario = replace(scenario, **given)
    if scenario.batch < 1 or scenario.rooms < 1 or scenario.rate <= 0 or scenario.duration <= 0:
        raise ScenarioError(f"{name}: batch, rooms, rate and duration must be positive")
    for incident in scenario.incidents:
        if not 1 <= incident.room_rank <= scenario.rooms:
            raise ScenarioError(f"{name}: incident room_rank {incident.room_rank} out of range")
    return scenario
