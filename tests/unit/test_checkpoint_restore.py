"""Checkpoints and restores against an in-memory log: a crash at every step of the
checkpoint sequence (in the middle of an epoch's payloads, between payloads and commit,
right after the commit) restores a state that, replayed to the end, equals an
uninterrupted run (the way Bytewax tests recovery)."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError

from streams.rooms.flat import sorted_entries
from streams.rooms.partition import Outcome, RoomPartition
from streams.rooms.room import RoomSettings
from streams.runtime import checkpoint
from streams.runtime.checkpoint import Checkpointer
from streams.runtime.restore import restore_partition, restore_when_answered
from streams.state import writer as writer_module
from streams.state.log import LogFailure, LogRecord, MemoryLog
from streams.state.writer import EpochWriter

from .helpers import T0, cart, comment, enter, group, in_key_order, leave, order

SETTINGS = RoomSettings()
NOW = 5000.0
TOPIC = "state"
CHECKPOINT_EVERY = 6


def make_records(seed: int = 1, count: int = 36) -> list[list[list]]:
    """Room-events records: groups from three input partitions, five rooms (one big
    enough to be split into pieces and chunks), duplicates, leaves, late events."""
    rng = random.Random(seed)
    records, n, source_offsets = [], 0, [0, 0, 0]
    for r in range(count):
        groups = []
        for _ in range(rng.randint(1, 3)):
            source = rng.randrange(3)
            events = []
            for _ in range(rng.randint(1, 30)):
                n += 1
                room = "big" if rng.random() < 0.5 else f"r{rng.randrange(4)}"
                user = f"u{rng.randrange(400 if room == 'big' else 30)}"
                ts = T0 + r * 700 + rng.randrange(-3000, 800)
                roll = rng.random()
                if roll < 0.45:
                    events.append(enter(user, ts=ts, room=room, event_id=f"e{n}"))
                elif roll < 0.6:
                    events.append(leave(user, ts=ts, room=room, event_id=f"e{n}"))
                elif roll < 0.8:
                    events.append(comment(user, "好", ts=ts, room=room, event_id=f"e{n}"))
                elif roll < 0.9:
                    events.append(cart(user, ts=ts, room=room, event_id=f"e{n}"))
                else:
                    events.append(order(user, 9.9, ts=ts, room=room, event_id=f"e{n}"))
                if rng.random() < 0.05:
                    events.append(events[-1])  # a client retry: same event_id
            groups.append(group(source_offsets[source], events, source))
            source_offsets[source] += 1
        records.append(groups)
    return records


def fingerprint(part: RoomPartition) -> dict:
    """Everything a room holds, order-free."""
    rooms = {}
    for room_id, room in part.rooms.items():
        base = room.state.capture_base()
        for name, entries in base["indexes"].items():
            base["indexes"][name] = sorted_entries(entries)
        base["presence"] = sorted_entries(base["presence"])
        base["settled"]["before"] = sorted_entries(base["settled"]["before"])
        base["settled"]["pending"] = sorted_entries(base["settled"]["pending"])
        for pairs in ("carted", "bought"):
            if pairs in base.get("products", {}):
                base["products"][pairs] = sorted_entries(base["products"][pairs])
        for change in base["counts"].values():
            if "add" in change:
                change["add"] = sorted_entries(change["add"])
        rooms[room_id] = orjson.loads(orjson.dumps(base, option=orjson.OPT_SORT_KEYS))
        rooms[room_id]["rows"] = sorted(map(tuple, rooms[room_id]["rows"]))
        rooms[room_id]["online"] = room.state.online
    return {"rooms": rooms, "offset": part.applied_offset, "sources": part.sources}


def reference(records) -> dict:
    part = RoomPartition(0, SETTINGS)
    for offset, groups in enumerate(records):
        part.apply(offset, groups, NOW, Outcome())
    return fingerprint(part)


async def run(records, log: MemoryLog, crash_after: int | None) -> tuple[RoomPartition, int]:
    """Apply the records with a checkpoint every few; the log fails after
    `crash_after` appended records (once): the worker 'dies' and a new one restores."""
    return await replay_with_crashes(records, log, crash_after, RoomPartition(0, SETTINGS), NOW)


async def replay_with_crashes(
    records,
    log: MemoryLog,
    crash_after: int | None,
    part: RoomPartition,
    now: float,
    every: int = CHECKPOINT_EVERY,
    before_write: Callable[[RoomPartition, int], object] = lambda part, offset: None,
    adopt: Callable[[RoomPartition], None] = lambda part: None,
) -> tuple[RoomPartition, int]:
    """`part` applies the records with a checkpoint every `every` (after `before_write`);
    the log fails after `crash_after` appended records (once): the worker 'dies', a new
    one restores the partition (`adopt` does what the worker does to it then) and
    replays from its checkpoint. The partition at the end, and the crashes."""
    checkpointer = Checkpointer(
        EpochWriter(log, TOPIC, 0, "w1", None, chunk_bytes=700, payload_bytes=2000), part, None
    )
    log.fail_after = crash_after
    crashes, offset = 0, 0
    while offset < len(records):
        part.apply(offset, records[offset], now, Outcome())
        offset += 1
        if offset % every and offset != len(records):
            continue
        before_write(part, offset)
        try:
            await checkpointer.write(checkpointer.capture(now, room_ttl=3600))
        except LogFailure:
            crashes += 1
            log.fail_after = None
            restored = await restore_partition(log, TOPIC, 0, part.settings, None, now)
            part = restored.part
            adopt(part)
            writer = EpochWriter(
                log, TOPIC, 0, f"w{crashes + 1}", restored.restored.epoch, 700, 2000
            )
            checkpointer = Checkpointer(writer, part, None)
            offset = part.applied_offset + 1  # the worker seeks here
    return part, crashes


def checkpointed_every_record(
    records, log: MemoryLog, rebase_ratio: float, rebase_min_entries: int
) -> RoomPartition:
    """The records applied by writer "A", with an epoch written after each one."""
    part = RoomPartition(0, SETTINGS)
    cp = Checkpointer(
        EpochWriter(log, TOPIC, 0, "A", None), part, None, rebase_ratio, rebase_min_entries
    )
    for offset, groups in enumerate(records):
        part.apply(offset, groups, NOW, Outcome())
        asyncio.run(cp.write(cp.capture(NOW, 3600)))
    return part


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch):
    monkeypatch.setattr(checkpoint, "PIECE_ENTRIES", 40)  # the big room spans pieces


def test_uninterrupted_checkpoints_restore_exactly():
    records = make_records()
    log = MemoryLog()
    part, crashes = asyncio.run(run(records, log, None))
    assert crashes == 0
    assert fingerprint(part) == reference(records)
    restored = asyncio.run(restore_partition(log, TOPIC, 0, SETTINGS, None, NOW))
    assert fingerprint(restored.part) == reference(records)


def test_a_big_epoch_goes_to_the_log_a_few_payloads_at_a_time(monkeypatch):
    """A base of every room: handed to the log in appends of about APPEND_BYTES as it is
    packed, each piece let go once packed, and it restores whole."""
    monkeypatch.setattr(writer_module, "APPEND_BYTES", 6_000)
    appends: list[int] = []

    class CountingLog(MemoryLog):
        async def append(self, topic, partition, records):
            appends.append(sum(len(v) for _, v in records))
            return await super().append(topic, partition, records)

    part = RoomPartition(0, SETTINGS)
    for offset, record in enumerate(make_records()):
        part.apply(offset, record, NOW, Outcome())
    log = CountingLog()
    checkpointer = Checkpointer(
        EpochWriter(log, TOPIC, 0, "w1", None, chunk_bytes=700, payload_bytes=2000), part, None
    )
    capture = checkpointer.capture(NOW, room_ttl=3600)
    pieces = len(capture.pieces)
    asyncio.run(checkpointer.write(capture))
    assert capture.pieces == [None] * pieces  # let go as written
    *payloads, _commit = appends
    assert sum(payloads) > 5 * 6_000 and len(payloads) > 5
    # The bound and one payload over (a payload is 2,000 bytes, or one piece's cut if more)
    assert max(payloads) < 2 * 6_000
    restored = asyncio.run(restore_partition(log, TOPIC, 0, SETTINGS, None, NOW))
    assert fingerprint(restored.part) == fingerprint(part)


def test_a_crash_at_every_step_of_the_checkpoint_sequence_restores_exactly():
    records = make_records()
    want = reference(records)
    clean = MemoryLog()
    asyncio.run(run(records, clean, None))
    steps = len(clean.partitions[(TOPIC, 0)])
    assert steps > 40, "the scenario writes several epochs of several chunked payloads"
    for crash_after in range(steps):
        log = MemoryLog()
        part, crashes = asyncio.run(run(records, log, crash_after))
        assert crashes == 1, crash_after
        assert fingerprint(part) == want, f"crash after {crash_after} appended records"
        # and the log the second writer left restores to the same state, the failed
        # epoch's payloads notwithstanding
        again = asyncio.run(restore_partition(log, TOPIC, 0, SETTINGS, None, NOW))
        assert fingerprint(again.part) == want, f"restore after crash at {crash_after}"
        assert again.without_base == [], crash_after


def test_restore_reads_a_bounded_tail_however_long_the_log():
    """Quiet rooms' bases are rewritten a little every epoch: the oldest base still
    needed moves on, so a restore reads about the state, not the whole history."""
    rng = random.Random(2)
    part = RoomPartition(0, SETTINGS)
    for q in range(50):  # quiet rooms, written once
        part.apply(q, [group(q, [enter(f"q{q}", room=f"quiet{q}")])], NOW, Outcome())
    log = MemoryLog()
    checkpointer = Checkpointer(EpochWriter(log, TOPIC, 0, "w1", None), part, None)
    offset = 50
    for _ in range(200):
        events = [enter(f"u{rng.randrange(5000)}", ts=T0 + offset, room="hot") for _ in range(200)]
        part.apply(offset, [group(offset, events)], NOW, Outcome())
        offset += 1
        asyncio.run(checkpointer.write(checkpointer.capture(NOW, room_ttl=3600)))
    total = len(log.partitions[(TOPIC, 0)])
    restored = asyncio.run(restore_partition(log, TOPIC, 0, SETTINGS, None, NOW))
    assert restored.restored.read_from > 0
    assert restored.restored.records_read < total / 4, (restored.restored.records_read, total)
    assert fingerprint(restored.part) == fingerprint(part)


def test_a_stale_writer_that_keeps_writing_does_not_corrupt_the_new_chain():
    """Worker A lost the partition but wrote one more epoch after worker B restored:
    a restore follows one chain only. (A folds other records here, so that its stale
    epoch differs from B's state and applying it would show.)"""
    records = make_records(seed=4, count=30)
    other = make_records(seed=5, count=30)
    log = MemoryLog()
    a = RoomPartition(0, SETTINGS)
    a_cp = Checkpointer(EpochWriter(log, TOPIC, 0, "A", None), a, None, 0.0, 0)
    for offset in range(10):
        a.apply(offset, records[offset], NOW, Outcome())
    asyncio.run(a_cp.write(a_cp.capture(NOW, 3600)))
    restored = asyncio.run(restore_partition(log, TOPIC, 0, SETTINGS, None, NOW))
    b = restored.part
    # no rolling rebase: B's restore still reads from A's bases, past A's stale epoch
    b_cp = Checkpointer(EpochWriter(log, TOPIC, 0, "B", restored.restored.epoch), b, None, 0.0, 0)
    for offset in range(10, 20):
        a.apply(offset, other[offset], NOW, Outcome())  # A, unaware, goes on
        b.apply(offset, records[offset], NOW, Outcome())
    asyncio.run(b_cp.write(b_cp.capture(NOW, 3600)))
    for offset in range(20, 25):
        b.apply(offset, records[offset], NOW, Outcome())
    asyncio.run(a_cp.write(a_cp.capture(NOW, 3600)))  # A's stale epoch lands last
    asyncio.run(b_cp.write(b_cp.capture(NOW, 3600)))
    final = asyncio.run(restore_partition(log, TOPIC, 0, SETTINGS, None, NOW))
    assert final.restored.read_from == 0  # A's first epoch, so A's stale one is read too
    assert final.restored.epochs[-1][0] == "B"
    assert fingerprint(final.part) == fingerprint(b)


def test_a_paced_capture_lets_the_loop_run_and_captures_what_a_synchronous_one_does(
    monkeypatch,
):
    """The worker captures with `capture_paced` (under the lock folding takes), so a big
    room's base does not hold the event loop for its whole copy."""
    monkeypatch.setattr(checkpoint, "CAPTURE_SLICE_S", 0.0)  # pause at every step
    records = make_records()

    def folded() -> RoomPartition:
        part = RoomPartition(0, SETTINGS)
        for offset, groups in enumerate(records):
            part.apply(offset, groups, NOW, Outcome())
        return part

    sync_part, paced_part = folded(), folded()
    sync = Checkpointer(EpochWriter(MemoryLog(), TOPIC, 0, "a", None), sync_part, None)
    paced = Checkpointer(EpochWriter(MemoryLog(), TOPIC, 0, "a", None), paced_part, None)
    expected = sync.capture(NOW, room_ttl=3600)

    async def capture_while_counting() -> tuple[checkpoint.Capture, int]:
        turns = 0

        async def other_work() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1

        other = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        started = turns
        captured = await paced.capture_paced(NOW, room_ttl=3600)
        other.cancel()
        return captured, turns - started

    captured, turns = asyncio.run(capture_while_counting())
    # every room's base, and the big room's maps, are separate steps
    assert turns >= len(paced_part.rooms) + 5
    assert in_key_order(captured.pieces) == in_key_order(expected.pieces)
    assert captured.meta == expected.meta
    assert [r.state.room_id for r, _ in captured.bases] == [
        r.state.room_id for r, _ in expected.bases
    ]


def test_a_writer_that_adopts_the_partition_again_keeps_the_chain_whole():
    """A owns the partition, then B; B loses it in a rebalance and gets it straight back,
    restoring its own chain. If B's second ownership reuses its writer name (workers did
    before names were per ownership), its epochs 1, 2, ... carry the ids of its first
    ownership's: a restore must follow the chain by log position (a parent is the last
    commit of its id before its child), or the walk loops back into the new epochs, stops
    before A's bases, and rebuilds rooms from B's deltas alone: the totals survive, the
    distinct viewers do not (a CI run saw uv 39 instead of 107)."""
    records = make_records(seed=6, count=40)
    log = MemoryLog()
    part = RoomPartition(0, SETTINGS)
    for owner, span in (("A", range(0, 10)), ("B", range(10, 20)), ("B", range(20, 40))):
        restored = asyncio.run(restore_partition(log, TOPIC, 0, SETTINGS, None, NOW))
        part = restored.part
        assert part.applied_offset == span.start - 1
        writer = EpochWriter(log, TOPIC, 0, owner, restored.restored.epoch)
        cp = Checkpointer(writer, part, None, 0.0, 0)  # no rolling rebase: A's bases stay
        for offset in span:
            part.apply(offset, records[offset], NOW, Outcome())
            if offset % 3 == 2:
                asyncio.run(cp.write(cp.capture(NOW, 3600)))
        asyncio.run(cp.write(cp.capture(NOW, 3600)))  # the final checkpoint of a revoke
    final = asyncio.run(restore_partition(log, TOPIC, 0, SETTINGS, None, NOW))
    assert final.without_base == []
    assert fingerprint(final.part) == fingerprint(part) == reference(records)
    owners = [writer for writer, _ in final.restored.epochs]
    assert owners == ["A"] * 4 + ["B"] * 4 + ["B"] * cp.writer.epoch


def test_partitions_checkpoint_in_slots_of_their_own():
    """Each partition checkpoints every interval, in its own slot: a worker's eight
    partitions are captured one per tick, not all in one (which held the fold)."""
    interval, now = 5.0, 1_763_000_003.3
    slots = [checkpoint.next_slot(now, interval, p, 8) for p in range(8)]
    assert all(now < slot <= now + interval for slot in slots)
    gaps = sorted((slot - now) % interval for slot in slots)
    assert [round(b - a, 6) for a, b in itertools.pairwise(gaps)] == [0.625] * 7
    # from its own slot, a partition's next is one interval on, and stays in phase
    p3 = slots[3]
    assert checkpoint.next_slot(p3, interval, 3, 8) == pytest.approx(p3 + interval)
    assert checkpoint.next_slot(p3 + 0.1, interval, 3, 8) == pytest.approx(p3 + interval)
    assert checkpoint.next_slot(p3 + 12.0, interval, 3, 8) == pytest.approx(p3 + 3 * interval)


def test_a_restore_names_the_rooms_it_rebuilt_from_deltas_without_their_base():
    """Deltas before a room's base are normal (the restore reads from the oldest base);
    a room left with no base at all means the chain lost it, and its distinct counts
    are short: the restore says which rooms, so the worker can log and count them."""
    records = make_records(seed=8, count=12)
    log = MemoryLog()
    checkpointed_every_record(records, log, rebase_ratio=0.0, rebase_min_entries=0)
    whole = asyncio.run(restore_partition(log, TOPIC, 0, SETTINGS, None, NOW))
    assert whole.without_base == []
    # Lose the payloads of the first epoch, as a broken chain would: the rooms based
    # there and changed later are rebuilt from their deltas alone.
    entries = log.partitions[(TOPIC, 0)]
    first_commit = next(i for i, r in enumerate(entries) if r.key.startswith(b"c|"))
    pieces = [orjson.loads(r.value) for r in entries if r.key.startswith(b"p|")]
    first = [orjson.loads(r.value) for r in entries[:first_commit]]
    based_first = {p["room"] for payload in first for p in payload if p.get("base")}
    changed_later = {
        p["room"] for payload in pieces[len(first) :] for p in payload if not p.get("base")
    }
    for i in range(first_commit):
        entries[i] = LogRecord(i, b"lost", entries[i].value)
    broken = asyncio.run(restore_partition(log, TOPIC, 0, SETTINGS, None, NOW))
    assert based_first & changed_later, "the scenario has rooms based first, changed later"
    assert broken.without_base == sorted(based_first & changed_later)


def test_a_sketched_room_whose_deltas_come_before_its_rebase_restores():
    """A room above the exact limit (its distinct viewers a sketch) whose deltas of
    raised registers come, in the tail a restore reads, before its latest base: the
    restore used to apply such a delta to a fresh, exact count and fail (the 420 s
    `loadtest.memory --restore` run, 8 partitions). One room is rebased per epoch here,
    so the small room's rebase becomes the oldest base while the big room still has a
    delta after it."""
    from streams.rooms.distinct import EXACT_LIMIT

    async def run() -> tuple[dict, dict]:
        log = MemoryLog()
        part = RoomPartition(0, SETTINGS)
        writer = EpochWriter(log, TOPIC, 0, "w", None)
        checkpointer = Checkpointer(writer, part, None, rebase_min_entries=1)
        outcome, offset, n = Outcome(), 0, 0

        def fold(room: str, users: range) -> None:
            nonlocal offset, n
            events = []
            for u in users:
                n += 1
                events.append(enter(f"u{u}", ts=T0 + n, room=room, event_id=f"e{n}"))
            part.apply(offset, [group(offset, events)], NOW, outcome)
            offset += 1

        fold("small", range(3))
        fold("big", range(EXACT_LIMIT + 500))  # a sketch from here on
        for epoch in range(3):
            fold(
                "big", range(EXACT_LIMIT + 500 + epoch * 2_000, EXACT_LIMIT + 2_500 + epoch * 2_000)
            )
            if epoch == 1:
                fold("small", range(3, 4))
            await checkpointer.write(checkpointer.capture(NOW, 3600))
        restored = await restore_partition(log, TOPIC, 0, SETTINGS, None, NOW)
        return fingerprint(part), fingerprint(restored.part)

    live, restored = asyncio.run(run())
    assert restored == live


def test_a_restore_skips_the_pieces_a_later_base_of_their_room_replaces():
    """A room's pieces from before its latest base would be applied, then replaced: the
    commits list the rooms each epoch based, and the restore skips those pieces. It
    restores the same state as a restore that applies everything (commits without the
    lists, as an older worker wrote them)."""
    records = make_records(seed=3)
    log = MemoryLog()
    part = checkpointed_every_record(records, log, rebase_ratio=1.0, rebase_min_entries=1)
    skipping = asyncio.run(restore_partition(log, TOPIC, 0, SETTINGS, None, NOW))
    assert skipping.restored.superseded > 0
    assert fingerprint(skipping.part) == fingerprint(part) == reference(records)
    entries = log.partitions[(TOPIC, 0)]
    for i, record in enumerate(entries):
        if record.key.startswith(b"c|"):
            commit = orjson.loads(record.value)
            assert commit.get("bases"), "every epoch rebases a room or two"
            del commit["bases"]
            entries[i] = LogRecord(record.offset, record.key, orjson.dumps(commit))
    everything = asyncio.run(restore_partition(log, TOPIC, 0, SETTINGS, None, NOW))
    assert everything.restored.superseded == 0
    assert everything.restored.pieces == skipping.restored.pieces
    assert fingerprint(everything.part) == fingerprint(part)


class BrokerGoneMidRead(MemoryLog):
    """A state log whose broker goes away in the middle of the first `outages` reads:
    the read yields its first batch, then the connection drops."""

    def __init__(self, log: MemoryLog, outages: int) -> None:
        super().__init__()
        self.partitions = log.partitions
        self.outages = outages

    async def read(self, topic, partition, start, end):
        first = True
        async for batch in super().read(topic, partition, start, end):
            for record in batch:  # a batch a record: a read breaks after its first
                if not first and self.outages:
                    self.outages -= 1
                    raise KafkaConnectionError("connection to the broker lost")
                first = False
                yield [record]


def test_a_broker_gone_during_the_first_restore_is_waited_for_and_the_restore_is_whole():
    records = make_records()
    log = MemoryLog()
    asyncio.run(run(records, log, None))
    reasons: list[str | None] = []
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    restored = asyncio.run(
        restore_when_answered(
            BrokerGoneMidRead(log, outages=3),
            (TOPIC, "alerts"),
            0,
            SETTINGS,
            None,
            lambda: NOW,
            reasons.append,
            "kafka:9092 (restoring room partition 0)",
            sleep=sleep,
        )
    )
    assert restored is not None
    assert fingerprint(restored.part) == reference(records)  # not half of it, not twice
    assert slept == [0.5, 1.0, 2.0]
    assert reasons[0] == (
        "waiting for the broker at kafka:9092 (restoring room partition 0): "
        "KafkaConnectionError (attempt 1)"
    )
    assert reasons[-1] is None  # ready again


def test_a_worker_stopping_while_the_broker_is_gone_stops_restoring():
    log = MemoryLog()
    asyncio.run(run(make_records(), log, None))

    async def sleep(seconds: float) -> None:
        pass

    restored = asyncio.run(
        restore_when_answered(
            BrokerGoneMidRead(log, outages=10**6),
            (TOPIC, "alerts"),
            0,
            SETTINGS,
            None,
            lambda: NOW,
            lambda reason: None,
            "kafka:9092",
            stopping=iter([False, False, True]).__next__,
            sleep=sleep,
        )
    )
    assert restored is None
