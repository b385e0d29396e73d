import orjson
import pytest

from streams import state_table
from streams.checkpoints import marker_keys
from streams.kafka import partition_for
from streams.rooms.metrics import snapshot
from streams.rooms.room import RoomSettings, RoomState
from streams.state_table import RoomStateTable

from .helpers import T0, enter

PARTITIONS = 8


def big_room(room_id: str, viewers: int) -> RoomState:
    room = RoomState(room_id, RoomSettings())
    for i in range(viewers):
        room.apply(enter(f"user-{i}", ts=T0 + (i // 100) * 1000, room=room_id))
    return room


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(state_table, "CHUNK_BYTES", 10_000)  # the default chunk size


def test_big_state_is_chunked_on_the_rooms_partition_and_reads_back_exactly(small_chunks):
    table: dict = {}
    states = RoomStateTable(table, PARTITIONS)
    room = big_room("hot-room", 2000)
    states.write("hot-room", room.to_state())
    p = partition_for("hot-room", PARTITIONS)
    chunks = [k for k in table if "#" in k]
    assert len(chunks) > 5
    assert all(len(table[k]) <= 10_000 for k in chunks)
    assert {partition_for(k, PARTITIONS) for k in chunks} == {p}
    assert orjson.loads(table["hot-room"]) == {"__chunks__": chunks}

    reread = RoomStateTable(table, PARTITIONS).read_partition(p)
    assert [r for r, _ in reread] == ["hot-room"]
    restored = RoomState.from_state("hot-room", RoomSettings(), reread[0][1])
    assert snapshot(restored) == snapshot(room)


def test_a_new_generation_replaces_the_old_chunks_only_after_its_manifest(small_chunks):
    table: dict = {}
    states = RoomStateTable(table, PARTITIONS)
    room = big_room("r", 1500)
    states.write("r", room.to_state())
    first = set(orjson.loads(table["r"])["__chunks__"])
    room.apply(enter("late-comer", ts=T0 + 20_000, room="r"))
    states.write("r", room.to_state())
    second = set(orjson.loads(table["r"])["__chunks__"])
    assert first.isdisjoint(second)
    assert {k for k in table if "#" in k} == second  # the old generation is gone
    states.delete("r")
    assert table == {}


def test_small_states_stay_one_record_and_markers_are_not_rooms():
    table: dict = {}
    states = RoomStateTable(table, PARTITIONS)
    states.write("__underscored_room", big_room("__underscored_room", 3).to_state())
    for p, key in marker_keys(PARTITIONS).items():
        table[key] = orjson.dumps(p * 10)
    p = partition_for("__underscored_room", PARTITIONS)
    assert [r for r, _ in states.read_partition(p)] == ["__underscored_room"]
    assert sum(len(states.read_partition(q)) for q in range(PARTITIONS)) == 1
