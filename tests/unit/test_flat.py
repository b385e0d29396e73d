"""The flat table (C) against a dict doing the same, op by op, and its byte format."""

from __future__ import annotations

import base64
import struct
import sys
from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.rooms.flat import MODE_ADD, MODE_MAX, MODE_SET, FlatMap, hash64, packed

KEYS = st.sampled_from([f"u{i}" for i in range(40)] + ["用户", "🙂", ""])
T = 1_763_900_000_000  # epoch ms
# Presence's values: epoch ms, negative for a leave, some far older than the first.
TIMES = st.one_of(
    st.integers(T - 5_000, T + 5_000), st.integers(-T - 5_000, -T + 5_000), st.just(T // 2)
)
# The dedup index's and the windows' values: epoch seconds, some hours apart.
S = 1_763_900_000
SECONDS = st.integers(S - 40_000, S + 40_000)
# Zeros, 16-bit, 32-bit and wider values: a table stores values in the fewest bytes they
# fit (0, 2, 4 or 8), widens when one does not and may narrow after a drop, so every op
# must meet every width.
VALUES = st.one_of(
    st.just(0),
    st.integers(-(2**15) - 2, 2**15 + 1),
    SECONDS,
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([2**31 - 1, -(2**31), 2**31, -(2**31) - 1]),
    st.integers(-(2**40), 2**40),
    TIMES,
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, VALUES),
        st.tuples(st.just("add"), KEYS, VALUES),
        st.tuples(st.just("raise_to"), KEYS, VALUES),
        st.tuples(st.just("renew"), KEYS, st.tuples(VALUES, VALUES)),
        st.tuples(st.just("drop"), VALUES, st.booleans()),
        st.tuples(st.just("drop_into"), VALUES, st.booleans()),
        st.tuples(st.just("discard"), KEYS, st.none()),
        st.tuples(st.just("take"), st.none(), st.none()),
        st.tuples(st.just("reload"), st.sampled_from([MODE_SET, MODE_MAX, MODE_ADD]), VALUES),
    ),
    max_size=300,
)


def unpack(data: bytes) -> dict[int, int]:
    return dict(struct.iter_unpack("<Qq", data))


@settings(max_examples=300, deadline=None)
@given(OPS, st.sampled_from([0, 1_000, 1 << 14]), st.lists(st.one_of(TIMES, SECONDS), max_size=5))
def test_flat_map_does_what_a_dict_does(ops: list[tuple], slack: int, times: list[int]) -> None:
    """Every op, at every value width, and with a bias (bias_slack): values near the first
    held, in either sign, and ones at or below the bias that drop it."""
    table, model = FlatMap(bias_slack=slack), {}
    for i, value in enumerate(times):  # a biased start, then the ops
        table.set(f"t{i}", value)
        model[hash64(f"t{i}")] = value
    changed: dict[int, int] = dict(model)
    # (changed: what take_changes must give, the keys set since and their values now)
    for op, a, b in ops:
        if op == "set":
            table.set(a, b)
            model[hash64(a)] = b
            changed[hash64(a)] = b
        elif op == "add":
            inserted = table.add(a, b)
            assert inserted == (hash64(a) not in model)
            if inserted:
                model[hash64(a)] = changed[hash64(a)] = b
        elif op == "raise_to":
            prev = table.raise_to(a, b)
            assert prev == model.get(hash64(a))
            if prev is None or b > prev:
                model[hash64(a)] = changed[hash64(a)] = b
        elif op == "renew":  # the dedup index's lookup: an entry at or below cutoff is gone
            value, cutoff = b
            held = model.get(hash64(a))
            expected = 0 if held is not None and held > cutoff else 1 if held is None else 2
            assert table.renew(a, value, cutoff) == expected
            if expected:
                model[hash64(a)] = changed[hash64(a)] = value
        elif op == "drop":
            kept = {k: v for k, v in model.items() if (abs(v) if b else v) > a}
            removed, removed_nonneg, least = table.drop_upto(a, b)
            gone = [v for k, v in model.items() if k not in kept]
            assert (removed, removed_nonneg) == (len(gone), sum(v >= 0 for v in gone))
            assert least == (min((abs(v) if b else v) for v in kept.values()) if kept else None)
            model = kept
            changed = {k: v for k, v in changed.items() if k in kept}
        elif op == "drop_into":  # presence's expiry: what goes keeps in `into` if new there
            into = FlatMap()
            into.set(hash64("u0"), -1)
            into_model = {hash64("u0"): -1}
            kept = {k: v for k, v in model.items() if (abs(v) if b else v) > a}
            table.drop_upto(a, b, into)
            for k, v in model.items():
                if k not in kept:
                    into_model.setdefault(k, v)
            assert dict(into.items()) == into_model
            assert unpack(into.take_changes()) == into_model  # a delta carries them
            model = kept
            changed = {k: v for k, v in changed.items() if k in kept}
        elif op == "discard":  # not in a delta: a restore repairs what it must
            assert table.discard(a) == (hash64(a) in model)
            model.pop(hash64(a), None)
            changed.pop(hash64(a), None)
        elif op == "take":
            assert unpack(table.take_changes()) == changed
            changed = {}
        else:  # a restore into a table holding other entries, in each mode
            other = FlatMap(bias_slack=slack)
            other.set(hash64("u0"), b)
            other.set(hash64("zz"), b)
            other.load(table.snapshot(), a)
            expected = {hash64("u0"): b, hash64("zz"): b}
            for k, v in model.items():
                if k not in expected or a == MODE_SET or (a == MODE_MAX and v > expected[k]):
                    expected[k] = v
            assert dict(other.items()) == expected
            assert other.take_changes() == b""  # a load marks nothing as changed
            changed = {}  # snapshot() reset the changes
        assert len(table) == len(model)
        assert dict(table.items()) == model
    assert sum(v >= 0 for v in model.values()) == table.count_nonneg()
    values = list(model.values())
    assert table.value_range() == ((min(values), max(values)) if values else None)
    ring = array("i", bytes(4 * 7))
    table.count_into(ring)  # per value % 7, as Python's % (values may be negative)
    assert list(ring) == [sum(v % 7 == slot for v in values) for slot in range(7)]
    copy = FlatMap()
    copy.load(table.snapshot())
    assert copy == table
    copy.set("another", 1)
    assert copy != table


def test_values_take_the_fewest_bytes_they_fit_and_widen_keeping_every_entry() -> None:
    table = FlatMap()
    users = [f"u{i}" for i in range(50_000)]
    for user in users:
        table.add(user)  # a distinct count's set: keys only
    slots = 57_240  # 50,000 keys: grown by a tenth at the 46,829th (9/10 of 52,032 slots)
    assert table.value_bytes == 0 and table.nbytes == slots * 8 + slots // 8  # key + a bit
    table.take_changes()
    table.raise_to("u6", 30_000)  # a count
    assert table.value_bytes == 2 and table.nbytes == slots * 10 + slots // 8
    table.raise_to("u7", 1_763_900_000)  # a second of epoch time, no bias
    assert table.value_bytes == 4 and table.nbytes == slots * 12 + slots // 8
    table.set("u8", -1_763_900_000_123)  # presence's milliseconds (a leave)
    assert table.value_bytes == 8
    assert table.get("u7") == 1_763_900_000 and table.get("u8") == -1_763_900_000_123
    assert table.get("u9") == 0 and len(table) == 50_000
    # The entries marked before the widening stay marked, and only they.
    assert sorted(unpack(table.take_changes()).values()) == [
        -1_763_900_000_123,
        30_000,
        1_763_900_000,
    ]
    copy = FlatMap()
    copy.load(table.snapshot())  # a restore widens as it meets the values
    assert copy == table and copy.value_bytes == 8


def test_a_table_grows_when_an_insert_would_fill_more_than_nine_tenths() -> None:
    """By half while small; by a tenth from 128 entries, so a big table is 82-90 % full
    (the dedup index, presence and the last-seen tables: ~33 MB at 5,000 rooms)."""
    table = FlatMap()
    slots = [8]
    for i in range(1, 60_001):
        table.add(f"u{i}")
        now = table.nbytes * 8 // 65  # a key (8 bytes) and a changed bit a slot
        if now != slots[-1]:
            assert (i - 1) * 10 <= slots[-1] * 9 < i * 10  # this insert overfilled it
            if i < 128:
                assert now == (i * 12 // 7 + 8) & ~7  # i at 7/12 full: half as many again
            else:
                assert now == (i * 11 // 9 + 8) & ~7  # i at 9/11 full: a tenth again
            slots.append(now)
        assert i * 10 <= now * 9 and len(table) == i
    assert slots[:9] == [8, 16, 32, 56, 88, 144, 160, 184, 208] and len(slots) == 68
    assert slots[-3:] == [57_240, 62_968, 69_272]
    table.add("u1")  # there already: no growth
    assert table.nbytes * 8 // 65 == 69_272
    assert all(f"u{i}" in table for i in range(1, 60_001, 997)) and "u0" not in table


def test_each_table_orders_its_slots_by_its_own_salt() -> None:
    """A base is written in slot order and restored in runs: were two tables' orders the
    same, each run's keys would crowd one stretch of the table loading them (a restore
    at 5,000 rooms went quadratic, 191 s). Same entries, different orders."""
    tables = [FlatMap() for _ in range(3)]
    for table in tables:
        for i in range(2_000):
            table.set(f"u{i}", i)
    snapshots = [table.snapshot() for table in tables]
    assert len(set(snapshots)) == 3
    assert all(
        sorted(struct.iter_unpack("<Qq", s)) == sorted(struct.iter_unpack("<Qq", snapshots[0]))
        for s in snapshots
    )
    restored = FlatMap()
    for start in range(0, len(snapshots[0]), 500 * 16):  # in runs, as a restore reads pieces
        restored.load(snapshots[0][start : start + 500 * 16], MODE_SET)
    assert restored == tables[0] and restored.snapshot() != snapshots[0]


def test_epoch_seconds_take_2_bytes_and_narrow_back_after_a_drop() -> None:
    """The dedup index and the last-seen windows: seconds within 2**14 of the bias (set
    by the first value) in 2 bytes. One ~5 h later widens the table; once the older ones
    are dropped it narrows again with a bias set from the newest, every value intact."""
    t0 = 1_763_900_000
    table = FlatMap(bias_slack=1 << 14)
    for i in range(1_000):
        table.set(f"e{i}", t0 + i % 600)  # ten minutes of ids
    assert table.value_bytes == 2 and table.bias == t0 - (1 << 14)
    late = t0 + 5 * 3600
    table.set("late", late)  # 18,000 s after the first: more than 2**15 - 2**14
    assert table.value_bytes == 4 and table.get("late") == late
    table.set("early", t0 - 20_000)  # older than the bias: held as itself
    assert table.value_bytes == 8 and table.bias == 0
    assert table.drop_upto(t0 + 299) == (601, 601, t0 + 300)  # keeps 300..599 and "late"
    # more than the slack apart, less than 2**15: a bias just below the least kept
    assert table.value_bytes == 2 and table.bias == t0 + 299
    assert table.drop_upto(t0 + 599) == (400, 400, late)
    assert table.value_bytes == 2 and table.bias == t0 + 299  # no narrower: no new bias
    later = late + 20_000
    table.set("later", later)  # 37,701 s past the bias: 4 bytes
    assert table.value_bytes == 4
    assert table.drop_upto(late) == (1, 1, later)
    assert table.value_bytes == 2 and table.bias == later - (1 << 14)
    assert dict(table.items()) == {hash64("later"): later} and table.get("later") == later
    copy = FlatMap(bias_slack=1 << 14)
    copy.load(table.snapshot(), MODE_SET)
    assert copy == table and copy.value_bytes == 2


def test_epoch_milliseconds_are_held_in_4_bytes_less_a_bias_until_one_is_far_older() -> None:
    """Presence's table: signed epoch ms (a leave is negative) within ~12 days of the
    first fit 4 bytes; the entries leave as the values given; a far older one drops the
    bias (8 bytes, every value intact)."""
    from streams.rooms.presence import BIAS_SLACK_MS

    table, plain = FlatMap(bias_slack=BIAS_SLACK_MS), FlatMap()
    for i in range(100_000):
        value = T + i * 1_000 if i % 3 else -(T + i * 1_000)  # a third are leaves
        table.set(f"u{i}", value)
        plain.set(f"u{i}", value)
    assert table.value_bytes == 4 and plain.value_bytes == 8 and table.bias == T - BIAS_SLACK_MS
    assert table.nbytes < plain.nbytes * 0.76  # 12.1 bytes a slot against 16.1
    assert table == plain and table.get("u3") == -(T + 3_000) and table.get("u4") == T + 4_000
    assert table.drop_upto(T + 50_000_000, True)[:2] == plain.drop_upto(T + 50_000_000, True)[:2]
    assert sorted(unpack(table.snapshot()).items()) == sorted(unpack(plain.snapshot()).items())
    table.set("ancient", T - 13 * 86_400_000)  # 13 days older than the first
    assert (table.value_bytes, table.bias) == (8, 0) and table.get("ancient") == T - 13 * 86_400_000
    plain.set("ancient", T - 13 * 86_400_000)
    assert table == plain


def test_hash64_is_stable_across_processes() -> None:
    # Checkpoints hold these hashes and sketches hash the same way: a changed hash
    # function would count restored users again. MurmurHash64A of the UTF-8 bytes.
    assert hash64("u1") == 7631040859419055602
    assert hash64("用户-42") == hash64("用户-42") != hash64("用户-43")
    assert FlatMap().add("u1") and hash64("u1") in {k for k, _ in _items("u1")}


def _items(key: str) -> list[tuple[int, int]]:
    table = FlatMap()
    table.set(key, 1)
    return table.items()


def test_state_written_before_the_flat_tables_loads_with_its_ids_hashed() -> None:
    legacy_map = {"u1": 10, "u2": -20}
    assert unpack(packed(legacy_map)) == {hash64("u1"): 10, hash64("u2"): -20}
    assert unpack(packed(["u1"])) == {hash64("u1"): 0}
    table = FlatMap()
    table.set("u1", 5)
    blob = table.snapshot()
    assert packed(base64.b64encode(blob).decode()) == blob == packed(blob)


def test_a_table_shrinks_when_its_entries_expire() -> None:
    table = FlatMap()
    for i in range(100_000):
        table.set(f"u{i}", i)
    big = table.nbytes
    table.drop_upto(99_000)
    assert len(table) == 999 and table.nbytes < big / 50
    assert table.get("u99999") == 99_999 and table.get("u5") is None


def test_a_room_checkpointed_before_the_flat_tables_restores_and_counts_on() -> None:
    """A base in the old format (maps and lists of user ids) restores the same room, and
    the users in it are the same users afterwards (no double count)."""
    from streams.rooms.room import RoomSettings, RoomState

    from .helpers import T0, enter

    second = T0 // 1000
    old_base = {
        "base": True,
        "scalars": [T0, 2, 0, 0, 0, 0, 0, 0.0, 0, 0, 0.0, 2],
        "rows": [[second, [2, 0, 0, 0, 0, 0, 0, 0, 0]]],
        "counts": {"viewers": {"add": ["u1", "u2"]}},
        "indexes": {"recent_viewers": {"u1": second, "u2": second}, "seen_event_ids": {}},
        "presence": {"u1": T0, "u2": -T0},  # u2 has left
    }
    room = RoomState("r", RoomSettings())
    room.load(old_base)
    room.settle()
    assert (len(room.viewers), room.online, room.recent_viewers.count_since(second)) == (2, 1, 2)
    room.apply(enter("u1", ts=T0 + 1_000))
    room.apply(enter("u3", ts=T0 + 1_000))
    assert (len(room.viewers), room.online, room.recent_viewers.count_since(second)) == (3, 2, 3)


def test_the_change_list_stays_under_a_32nd_of_the_slots_and_goes_at_the_take() -> None:
    """A delta comes from a list of the changed keys while they are few, else from a scan
    of the changed flags; the list is never longer than the scan would pay off, and is
    let go at each take (kept, they held 34 MB at 5,000 rooms)."""
    struct_bytes = sys.getsizeof(FlatMap()) - FlatMap().nbytes
    table = FlatMap()
    for i in range(10_000):
        table.set(f"u{i}", i)
    table.take_changes()
    assert sys.getsizeof(table) - table.nbytes == struct_bytes  # no list held

    def listed_bytes() -> int:
        return sys.getsizeof(table) - table.nbytes - struct_bytes

    slots = table.nbytes * 8 // 81  # 8 bytes of key, 2 of value and a bit a slot
    few = {f"u{i}" for i in range(0, 10_000, 1_000)}
    for key in few:
        table.set(key, -1)
    assert 0 < listed_bytes() <= 8 * 16  # ten keys, in a list of 16
    assert unpack(table.take_changes()) == {hash64(k): -1 for k in few}
    many = {f"u{i}" for i in range(0, 10_000, 3)}
    for key in many:
        table.set(key, -2)
    # Stopped at the take's limit (its room doubles: at most twice that).
    assert 8 * slots // 32 < listed_bytes() <= 2 * 8 * slots // 32
    # Grown past that while the list stopped: the flags still name every change.
    grown = {f"v{i}" for i in range(20_000)}
    for key in grown:
        table.set(key, -3)
    assert table.nbytes * 8 // 81 > slots
    expected = {hash64(k): -2 for k in many} | {hash64(k): -3 for k in grown}
    assert unpack(table.take_changes()) == expected
    assert listed_bytes() == 0
    table.set("u1", 7)  # after a take, a short list again
    assert unpack(table.take_changes()) == {hash64("u1"): 7}


def test_loads_grow_by_half_and_compact_makes_the_table_as_full_as_inserts_keep_it() -> None:
    """A restore loads a table in many deltas, and growing by a tenth would rebuild it
    every few of them. So a load grows by half, and the restore compacts after."""
    live, loaded = FlatMap(), FlatMap()
    for i in range(1, 50_001):
        live.set(f"u{i}", i)
    blob = live.snapshot()
    for start in range(0, len(blob), 16 * 1_000):  # 50 deltas of 1,000 entries
        loaded.load(blob[start : start + 16 * 1_000])
    assert loaded == live and loaded.nbytes > live.nbytes * 1.2  # grown by half
    assert loaded.compact() is True and loaded == live
    assert loaded.nbytes * 8 // 97 == (50_000 * 11 // 9 + 8) & ~7  # 9/11 full
    assert loaded.compact() is False  # already as full as inserts keep it
    loaded.set("u50001", 50_001)
    assert loaded.get("u50001") == 50_001 and loaded.get("u7") == 7
