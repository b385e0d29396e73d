"""Where a worker's memory goes: the pure core fed a scenario's traffic, measured with
tracemalloc (no Kafka, no Faust), grouped by the line that allocated it.

    python -m loadtest.memory --scenario memory --seconds 120

With --restore, the core checkpoints into an in-memory state log as the worker does
(every checkpoint interval: deltas, new bases, rolling rebases), and at the end the
partition is restored from that log, timed, and checked against the live state: how
long a restart after a SIGKILL spends rebuilding this much state, less the reading.

    python -m loadtest.memory --scenario memory --seconds 420 --rss-only --restore

With --outputs, the partitions also do each second what the worker's timers do: the
rooms' snapshots (with their product lists) and the alert detectors, so what they hold
is measured too (the worker holds more still: fetches, producer buffers, the live page).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc
from collections import Counter

import orjson

from loadtest.bench import FakeRecord
from loadtest.generator import records_of
from loadtest.scenario import load
from streams import config, sentiment
from streams.alerts.partition import PartitionAlerts
from streams.alerts.rules import AlertRules
from streams.kafka import RoomPartitions
from streams.rooms.partition import Outcome, RoomPartition
from streams.rooms.room import RoomSettings, RoomState
from streams.runtime.checkpoint import Checkpointer
from streams.runtime.heap import release_free_memory, rss_bytes, tune_malloc
from streams.runtime.ingest import route
from streams.runtime.restore import restore_partition
from streams.runtime.worker import HEAP_TRIM_S, tune_gc
from streams.state.log import LogRecord, MemoryLog
from streams.state.writer import EpochWriter
from streams.traffic.model import KINDS

STATE_TOPIC = "state"


def _short(path: str) -> str:
    for marker in ("/site-packages/", "/streams/", "/loadtest/"):
        if marker in path:
            _, tail = path.split(marker, 1)
            return tail if marker == "/site-packages/" else marker.strip("/") + "/" + tail
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--scenario", default="memory")
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--rss-only", action="store_true", help="no tracemalloc (5x faster): the RSS only"
    )
    parser.add_argument(
        "--restore", action="store_true", help="checkpoint as the worker does, then time a restore"
    )
    parser.add_argument(
        "--outputs",
        action="store_true",
        help="snapshots and alert detectors each second, as the worker's timers run them",
    )
    args = parser.parse_args()
    tune_gc()  # as the worker does: its collections are part of what is measured
    tune_malloc()
    scenario = load(args.scenario)
    model = scenario.model()
    kinds = {name: i for i, name in enumerate(KINDS)}  # in the order of the input topics
    settings = RoomSettings()
    rules = AlertRules.load()
    worker = config.load()
    # Rooms spread over the worker's room partitions as it spreads them: a checkpoint
    # rebases at most 64 rooms of a partition per epoch, so one partition of all 5,000
    # rooms would cycle its bases 8x slower than the worker does.
    partition_of = RoomPartitions(worker.partitions)
    parts: dict[int, RoomPartition] = {}
    alerts_of: dict[int, PartitionAlerts] = {}
    checkpointers: dict[int, Checkpointer] = {}
    log = MemoryLog()
    for p in range(worker.partitions):
        alerts = PartitionAlerts(p, rules, settings.allowed_lateness_ms)
        parts[p] = RoomPartition(p, settings, alerts)
        alerts_of[p] = alerts
        writer = EpochWriter(log, STATE_TOPIC, p, "memory", None)
        checkpointers[p] = Checkpointer(writer, parts[p], alerts)
    score = sentiment.default_scorer().score
    # The worker's checkpoint interval (LIVEROOM_CHECKPOINT_INTERVAL_SECONDS, default 5 s).
    checkpoint_every_s = max(1, round(worker.checkpoint_interval_seconds))
    if not args.rss_only:
        tracemalloc.start()
    start_ms = int(time.time() * 1000) - args.seconds * 1000
    offset = 0  # of the input records
    room_offsets = dict.fromkeys(parts, 0)  # of the room-events records, per partition
    events = 0
    for t in range(args.seconds):
        now_ms = start_ms + t * 1000
        for kind, batch in model.second(t, now_ms).items():
            for e in batch:
                e.pop("late", None)
            # Records of the scenario's batch size, as the producers send them, routed
            # as the ingest stage routes a fetch; the rooms stage decodes what it sends.
            fetch = [
                FakeRecord(offset + i, None, record)
                for i, record in enumerate(records_of(batch, scenario.batch))
            ]
            offset += len(fetch)
            routed = route([(kind, kinds[kind], 0, fetch)], partition_of, now_ms + 1000)
            outcome = Outcome()  # one per fetch, as the worker's (it lists event times)
            events += routed.events
            for p, values in routed.records.items():
                for value in values:
                    parts[p].apply(
                        room_offsets[p], orjson.loads(value), now_ms / 1000, outcome, score
                    )
                    room_offsets[p] += 1
        if args.outputs:  # the worker's timers, once a second of the run
            for p, part in parts.items():
                part.due_snapshots(now_ms / 1000 + 1)
                alerts_of[p].advance(now_ms / 1000 + 1, part)
                alerts_of[p].take()
        if t % round(HEAP_TRIM_S) == 0:  # as the worker does: freed heap pages given back
            release_free_memory()
        if t % checkpoint_every_s == 0:  # as the worker does: change tracking is reset
            if args.restore:
                for p, checkpointer in checkpointers.items():
                    checkpoint(checkpointer, log, p, now_ms / 1000, worker.room_ttl_seconds)
                continue
            for room in (r for part in parts.values() for r in part.rooms.values()):
                if room.dirty_state:
                    room.state.capture_delta()
                    room.dirty_state = False
    rss = rss_bytes()
    rooms = [room for part in parts.values() for room in part.rooms.values()]
    print(
        f"{scenario.name}: {args.seconds} s of traffic, {events:,} events, "
        f"{len(rooms):,} rooms, {sum(len(r.state.viewers) for r in rooms):,} "
        f"distinct viewers (session, summed); RSS {rss / 2**20:,.0f} MB"
    )
    print_state_bytes([room.state for room in rooms])
    if args.restore:
        now = start_ms / 1000 + args.seconds
        for p, checkpointer in checkpointers.items():
            checkpoint(checkpointer, log, p, now, worker.room_ttl_seconds)
        time_restore(log, parts, settings, rules, now)
    if args.rss_only:
        return
    snapshot = tracemalloc.take_snapshot()
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    by_file: Counter[str] = Counter()
    for s in stats:
        by_file[s.traceback[0].filename.split("/site-packages/")[-1].split("/work/main/")[-1]] += (
            s.size
        )
    print(f"traced: {total / 2**20:,.0f} MB\n\nby file:")
    for name, size in by_file.most_common(args.top):
        print(f"  {size / 2**20:8.1f} MB  {name}")
    print("\nby line:")
    for s in stats[: args.top]:
        frame = s.traceback[0]
        print(f"  {s.size / 2**20:8.1f} MB  {_short(frame.filename)}:{frame.lineno}")


def state_bytes(states: list[RoomState]) -> Counter[str]:
    """Bytes of the rooms' big parts by name: the flat tables' arrays (keys, values,
    changed bits), the rings of per-second counts, the per-second sums, the sketches."""
    out: Counter[str] = Counter()
    for state in states:
        for name in RoomState._INDEXES:
            index = getattr(state, name)
            out[f"index {name}"] += index.table_bytes
            out["rings of per-second counts"] += index.ring_bytes
        for name in RoomState._COUNTS:
            count = getattr(state, name)
            if count.exact is not None:
                out["distinct (exact)"] += count.exact.nbytes
            else:
                out["distinct (sketches)"] += len(count.registers or b"")
        out["presence"] += state.presence.at.nbytes
        out["presence (settled timeline)"] += state.presence.before.nbytes
        out["per-second sums (settled ring)"] += state.sums.ring_bytes
        out["per-second spend (settled ring)"] += state.spend_sums.ring_bytes
    return out


def print_state_bytes(states: list[RoomState]) -> None:
    sizes = state_bytes(states)
    print(f"room state's big parts: {sum(sizes.values()) / 2**20:,.0f} MB")
    for name, size in sizes.most_common():
        print(f"  {size / 2**20:8.1f} MB  {name}")


def checkpoint(
    checkpointer: Checkpointer, log: MemoryLog, partition: int, now: float, room_ttl: float
) -> None:
    """One epoch, as the worker writes it; then the records before the oldest one a
    restore still reads are emptied (the broker would keep them; this process need not)."""
    asyncio.run(checkpointer.write(checkpointer.capture(now, room_ttl)))
    records = log.partitions[(STATE_TOPIC, partition)]
    commit = orjson.loads(records[-1].value or b"{}")
    for offset in range(int(commit.get("restore_from", -1))):
        if records[offset].value is not None:
            records[offset] = LogRecord(offset, None, None)


def time_restore(
    log: MemoryLog,
    live: dict[int, RoomPartition],
    settings: RoomSettings,
    rules: AlertRules,
    now: float,
) -> None:
    """Every partition restored one after another (the worker restores them at once,
    on one core), timed, and compared with the live state."""
    seconds = 0.0
    read = json_bytes = pieces = superseded = rooms = 0
    same = True
    for p, part in live.items():
        started = time.perf_counter()
        restored = asyncio.run(restore_partition(log, STATE_TOPIC, p, settings, rules, now))
        seconds += time.perf_counter() - started
        records = log.partitions[(STATE_TOPIC, p)][restored.restored.read_from :]
        read += len(records)
        json_bytes += sum(len(r.value or b"") for r in records)
        pieces += restored.restored.pieces
        superseded += restored.restored.superseded
        rooms += len(restored.part.rooms)
        same = same and _same_rooms(part, restored.part)
    print(
        f"restore: {rooms:,} rooms in {len(live)} partitions from {read:,} state records "
        f"({json_bytes / 2**20:,.0f} MB of JSON, {pieces:,} pieces, {superseded:,} of them "
        f"skipped as superseded by a later base) in {seconds:.1f} s of "
        f"CPU; {'equal to' if same else 'DIFFERENT from'} the live state (rooms, views, "
        "GMV, distinct viewers, online, every product's figures and user pairs)"
    )


def _same_rooms(live: RoomPartition, restored: RoomPartition) -> bool:
    def key(part: RoomPartition) -> dict[str, tuple]:
        return {
            room_id: (
                r.state.views,
                r.state.gmv,
                len(r.state.viewers),
                r.state.online,
                r.state.products.partial(),
                (len(r.state.products.carted), len(r.state.products.bought)),
            )
            for room_id, r in part.rooms.items()
        }

    return key(live) == key(restored)


if __name__ == "__main__":
    main()
