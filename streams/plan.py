"""`liveroom plan`: a capacity plan for a peak, from figures measured on this project's
own benchmarks and load tests (README.md, "Capacity plan", says where each comes from).

    workers     = ceil((events/s / one worker's sustained events/s
                        + rooms x CPU seconds per room and second) / headroom)
    partitions  = max(8, next power of two >= 4 x workers)
    memory      = base + viewers/worker x bytes per viewer + rooms/worker x bytes per room
                  + events/s per worker x bytes per event/s (the event ids kept to drop repeats)
    broker in   = events/s x (input bytes + room-events bytes + state-log bytes per event)
                  + rooms x snapshot bytes (one snapshot per room per second)
    broker out  = events/s x (input bytes + room-events bytes per event) + snapshots x readers

A room is folded by one partition, so by one worker, unless it is split: a room whose
own peak is above one worker's planned rate is pinned to
ceil(its peak / one worker's planned rate) shards (LIVEROOM_ROOM_SHARDS), each on a
partition and a worker of its own, and the plan has at least that many workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class Measured:
    """Per-worker and per-room figures, measured on a 2-vCPU machine (README.md)."""

    worker_events_per_s: float  # one worker process (one core), `capacity` scenario
    room_cpu_seconds: float  # per live room and second: its snapshot and its alert detectors
    worker_base_bytes: float  # RSS of a worker with no rooms
    bytes_per_viewer: float  # worker memory per concurrent viewer (`memory` scenario)
    bytes_per_room: float
    bytes_per_event_per_s: float  # the dedup horizon's event ids, per event/s of the worker
    input_bytes_per_event: float  # simulator events as JSON, arrays of 100
    room_events_bytes_per_event: float  # the routed copy (compact arrays)
    state_bytes_per_event: float  # checkpoint deltas written to the state log
    snapshot_bytes: float  # one room-metrics record


MEASURED = Measured(
    worker_events_per_s=60_000,  # `capacity`, 2026-11-24: highest step held (3 runs of 3)
    room_cpu_seconds=84e-6,  # `memory --profile`: snapshots + alerts were 42 % of a core / 5,000
    # a worker with no rooms, less the 28 MiB an idle worker shed on 2026-12-01 (96 -> 68
    # MiB measured side by side: the scorer's n-gram table read without a dict)
    worker_base_bytes=92 * MIB,
    # `memory`, 2026-11-24 midday: 598-600 MiB RSS max at 15,000 events/s, 5,000 rooms and
    # ~2M viewers inside the session timeout, less the base, the rooms and the event ids
    bytes_per_viewer=130,
    # tracemalloc of a room past its 5-minute horizon (60 kB on 2026-11-23), less what its
    # per-second rows' narrow counts (12.6 kB) and its count rings' bytes (3.8 kB) saved
    # since, and the alert watch's rings as arrays and the distinct counts' lazy sets (4.9 kB
    # on 2026-12-01) (idle: ~21 kB)
    bytes_per_room=38_000,
    # the dedup index: 600 s of ids (SPEC's 10 minutes) at ~11.8 B an id (10.1 B slots,
    # 2-byte seconds, in flat tables grown by a tenth at 9/10 full; the `memory` harness,
    # 2026-12-07 23:45: 78.0 MB for 6.9M ids), plus up to a sixteenth expired, not swept
    bytes_per_event_per_s=7_500,
    input_bytes_per_event=129,  # make bench: the traffic model's events, arrays of 100
    room_events_bytes_per_event=68,
    # `steady` at 18,300 events/s (2026-11-23): deltas + rolling rebase wrote ~160 B an
    # event of JSON; the checkpoint producer's zstd shrinks it ~7x (make bench: 83 -> 10)
    state_bytes_per_event=25,
    snapshot_bytes=3_600,  # make bench, 2026-12-07 (1,800 before the product list and ROI)
)
HEADROOM = 0.5  # plan for half a worker's rate: bursts above the minute peak, catch-up
MEMORY_MARGIN = 1.5  # checkpoint bases and bursts on top of the steady state
PARTITIONS_PER_WORKER = 4  # partitions cannot be added later without moving state
ZIPF_S = 1.1  # room popularity (the simulator's; live-commerce audiences are this skewed)


@dataclass(frozen=True)
class Plan:
    rooms: int
    events_per_second: float
    viewers: int
    workers: int
    partitions: int
    cores: int
    memory_per_worker_bytes: float
    broker_in_bytes_per_s: float
    broker_out_bytes_per_s: float
    hottest_room_events_per_s: float
    hottest_room_fits: bool
    hottest_room_shards: int  # 1: it fits one worker; else pin it to this many shards
    measured: Measured

    def lines(self) -> list[tuple[str, str, str]]:
        """(what, value, how it was reached) for printing."""
        m = self.measured
        per_worker = m.worker_events_per_s * HEADROOM
        return [
            (
                "worker processes",
                f"{self.workers}",
                f"({self.events_per_second:,.0f} ev/s / {m.worker_events_per_s:,.0f}"
                f" + {self.rooms:,} rooms x {m.room_cpu_seconds * 1e6:.0f} µs) / {HEADROOM}",
            ),
            (
                "partitions",
                f"{self.partitions}",
                f"{PARTITIONS_PER_WORKER} per worker, power of two, at least 8",
            ),
            ("cores (workers)", f"{self.cores}", "one Python process uses one core"),
            (
                "memory per worker",
                f"{self.memory_per_worker_bytes / MIB:,.0f} MiB",
                f"({m.worker_base_bytes / MIB:,.0f} MiB + viewers x {m.bytes_per_viewer:,.0f} B"
                f" + rooms x {m.bytes_per_room / 1000:,.0f} kB"
                f" + events/s x {m.bytes_per_event_per_s / 1000:,.1f} kB per worker)"
                f" x {MEMORY_MARGIN}",
            ),
            (
                "broker writes",
                f"{self.broker_in_bytes_per_s / MIB:,.1f} MiB/s",
                "input + room-events + state log + room snapshots (x replication)",
            ),
            (
                "broker reads",
                f"{self.broker_out_bytes_per_s / MIB:,.1f} MiB/s",
                "workers read input and room-events; one reader of room-metrics",
            ),
            (
                "hottest room",
                f"{self.hottest_room_events_per_s:,.0f} ev/s"
                + ("" if self.hottest_room_fits else f": {self.hottest_room_shards} shards"),
                (
                    "fits in one worker"
                    if self.hottest_room_fits
                    else f"above one worker's planned {per_worker:,.0f} ev/s: pin it, "
                    f"LIVEROOM_ROOM_SHARDS=<room_id>={self.hottest_room_shards}"
                ),
            ),
        ]


def zipf_top_share(rooms: int, s: float = ZIPF_S) -> float:
    """Share of all events that the most popular of `rooms` rooms takes."""
    return 1.0 / sum(1.0 / k**s for k in range(1, rooms + 1))


def plan(
    rooms: int,
    events_per_second: float,
    viewers: int,
    measured: Measured = MEASURED,
    hottest_room_events_per_s: float | None = None,
    replication: int = 1,
) -> Plan:
    if rooms < 1 or events_per_second <= 0 or viewers < 0:
        raise ValueError("rooms >= 1, events per second > 0 and viewers >= 0")
    m = measured
    load = events_per_second / m.worker_events_per_s + rooms * m.room_cpu_seconds  # in cores
    workers = max(1, math.ceil(load / HEADROOM))
    partitions = max(8, 1 << math.ceil(math.log2(PARTITIONS_PER_WORKER * workers)))
    hottest = (
        hottest_room_events_per_s
        if hottest_room_events_per_s is not None
        else events_per_second * zipf_top_share(rooms)
    )
    shards = max(1, math.ceil(hottest / (m.worker_events_per_s * HEADROOM)))
    if shards > workers:  # each shard on a worker of its own
        workers = shards
        partitions = max(8, 1 << math.ceil(math.log2(PARTITIONS_PER_WORKER * workers)))
    memory = MEMORY_MARGIN * (
        m.worker_base_bytes
        + viewers / workers * m.bytes_per_viewer
        + rooms / workers * m.bytes_per_room
        + events_per_second / workers * m.bytes_per_event_per_s
    )
    per_event_in = m.input_bytes_per_event + m.room_events_bytes_per_event
    snapshots = rooms * m.snapshot_bytes  # at most one per room per second
    broker_in = replication * (
        events_per_second * (per_event_in + m.state_bytes_per_event) + snapshots
    )
    broker_out = events_per_second * per_event_in + snapshots
    return Plan(
        rooms=rooms,
        events_per_second=events_per_second,
        viewers=viewers,
        workers=workers,
        partitions=partitions,
        cores=workers,
        memory_per_worker_bytes=memory,
        broker_in_bytes_per_s=broker_in,
        broker_out_bytes_per_s=broker_out,
        hottest_room_events_per_s=hottest,
        hottest_room_fits=shards == 1,
        hottest_room_shards=shards,
        measured=m,
    )
