"""`liveroom broker` stops with its parent, whatever killed the parent."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from streams.broker import free_port

from .conftest import wait_until

pytestmark = pytest.mark.integration


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_broker_stops_with_the_command(how):
    port = free_port()
    command = subprocess.Popen(
        [sys.executable, "-m", "streams", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ,
    )
    try:
        wait_until(lambda: listening(port), 20, "broker listening")
        command.send_signal(how)
        command.wait(20)
        wait_until(lambda: not listening(port), 10, "broker gone after the command stopped")
    finally:
        if command.poll() is None:
            command.kill()
    if how != signal.SIGKILL:
        assert command.returncode == 0


def test_topics_exist_once_the_command_says_so():
    from confluent_kafka.admin import AdminClient

    port = free_port()
    command = subprocess.Popen(
        [sys.executable, "-m", "streams", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in command.stdout:
            if "broker listening" in line:
                break
        topics = (
            AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=10).topics
        )
        for name in (
            "liveroom.views",
            "liveroom.comments",
            "liveroom.carts",
            "liveroom.orders",
            "liveroom.room-metrics",
            "liveroom.alerts",
            "liveroom.deadletter",
        ):
            assert name in topics
            assert len(topics[name].partitions) == 8
    finally:
        command.terminate()
        command.wait(20)


def test_worker_refuses_a_partition_count_that_does_not_match_room_events(broker):
    import asyncio

    from streams import config
    from streams.broker import create_topics

    env = {
        **os.environ,
        **config.namespaced(f"mismatch-{os.getpid()}"),
        "LIVEROOM_KAFKA_BOOTSTRAP": broker.bootstrap,
        "LIVEROOM_PARTITIONS": "4",
        "LIVEROOM_METRICS_PORT": str(free_port()),  # a demo on 9464 must not matter
    }
    room_events = env["LIVEROOM_TOPIC_ROOM_EVENTS"]
    asyncio.run(create_topics({"bootstrap_servers": broker.bootstrap}, [room_events], 6))
    result = subprocess.run(
        [sys.executable, "-m", "streams", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr  # a configuration error
    assert f"{room_events} has 6 partitions but LIVEROOM_PARTITIONS=4" in result.stderr
