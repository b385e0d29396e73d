"""Real broker, real worker processes, real clients: the integration test harness.

One embedded broker per test session; each test gets its own topic names and
consumer group, so tests never see each other's records.
"""

from __future__ import annotations

import asyncio
import glob
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from streams import config
from streams.broker import EmbeddedBroker, all_topics, create_topics, free_port
from streams.config import Settings

PARTITIONS = 4
_test_numbers = itertools.count(1)


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # the endpoint may not be up yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error})"
    )


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def room_value(samples: dict, name: str, room: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted({"room_id": room, **labels}.items()))))


def rooms_in(samples: dict) -> set[str]:
    return {dict(labels)["room_id"] for name, labels in samples if name == "liveroom_views_total"}


def total(samples: dict, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


class WorkerProcess:
    """`python -m streams worker` in a child process."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = int(env["LIVEROOM_METRICS_PORT"])
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it until it exits
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "--loglevel", "info"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: see {self.log_path}")
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2):
                return "Worker ready" in self.log_path.read_text(errors="replace")

        wait_until(ready, timeout, f"worker ready ({self.log_path})")

    def scrape(self) -> dict:
        return scrape(self.port)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class Stack:
    """Topic names, settings and helpers for one test on the shared broker."""

    def __init__(self, broker: EmbeddedBroker, tmp_path: Path) -> None:
        n = next(_test_numbers)
        prefix = f"it{n}-{os.getpid()}"
        self.env = {
            **os.environ,
            "LIVEROOM_KAFKA_BOOTSTRAP": broker.bootstrap,
            "LIVEROOM_PARTITIONS": str(PARTITIONS),
            "LIVEROOM_METRICS_HOST": "127.0.0.1",
            "LIVEROOM_DATA_DIR": str(tmp_path),
            **config.namespaced(prefix),
        }
        self.settings: Settings = config.load(self.env)
        self.tmp_path = tmp_path
        self.bootstrap = broker.bootstrap
        self.workers: list[WorkerProcess] = []
        asyncio.run(
            create_topics(
                {"bootstrap_servers": broker.bootstrap}, all_topics(self.settings), PARTITIONS
            )
        )
        self.producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})

    def topic(self, kind: str) -> str:
        return getattr(self.settings, f"topic_{kind}")

    def worker(self, **env: str) -> WorkerProcess:
        port = free_port()
        worker = WorkerProcess(
            {**self.env, "LIVEROOM_METRICS_PORT": str(port), **env},
            self.tmp_path / f"worker-{len(self.workers)}.log",
        )
        self.workers.append(worker)
        return worker.start()

    def produce(self, kind: str, value: Any, key: bytes | None = None) -> None:
        data = value if isinstance(value, bytes) else orjson.dumps(value)
        self.producer.produce(self.topic(kind), data, key=key)
        self.producer.poll(0)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0

    def record_counts(self, kind: str) -> list[int]:
        """Records per partition of a topic: log end offsets from a Fetch (the embedded
        broker's ListOffsets answer is short, see streams/state/log.py)."""
        from streams.state.log import end_offsets

        topic = self.topic(kind)
        ends = asyncio.run(
            end_offsets(
                {"bootstrap_servers": self.bootstrap}, [(topic, p) for p in range(PARTITIONS)]
            )
        )
        return [ends[(topic, p)] for p in range(PARTITIONS)]

    def committed(self, tps: list[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
        """The worker group's committed offsets."""
        from aiokafka import AIOKafkaConsumer
        from aiokafka.structs import TopicPartition

        async def read() -> dict[tuple[str, int], int | None]:
            consumer = AIOKafkaConsumer(
                group_id=self.settings.app_id,
                enable_auto_commit=False,
                bootstrap_servers=self.bootstrap,
            )
            await consumer.start()
            try:
                return {tp: await consumer.committed(TopicPartition(*tp)) for tp in tps}
            finally:
                await consumer.stop()

        return asyncio.run(read())

    def read_all(self, kind: str) -> list[Any]:
        """Every record of a topic so far, decoded from JSON, partition by partition."""
        from streams.state.log import KafkaLog

        topic = self.topic(kind)
        ends = self.record_counts(kind)

        async def read() -> list[Any]:
            out: list[Any] = []
            reader = KafkaLog({"bootstrap_servers": self.bootstrap}, None)
            for p, end in enumerate(ends):
                async for batch in reader.read(topic, p, 0, end):
                    out.extend(orjson.loads(r.value) for r in batch)
            return out

        return asyncio.run(read())

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def stack(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(broker, tmp_path)
    try:
        yield s
    finally:
        s.close()


def kcat_env() -> dict[str, str]:
    """Debian's kcat links a librdkafka too old for the embedded broker; point it at the
    one the confluent-kafka wheel ships (see ../shared/notes/embedded-broker.md)."""
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    found = glob.glob(str(libs / "librdkafka-*.so.1"))
    if not found:
        pytest.skip("confluent-kafka wheel ships no librdkafka")
    link_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "liveroom-kcat-lib"
    link_dir.mkdir(exist_ok=True)
    link = link_dir / "librdkafka.so.1"
    if link.is_symlink() and os.readlink(link) != found[0]:
        link.unlink()  # left by another confluent-kafka version
    if not link.is_symlink():
        link.symlink_to(found[0])
    return {**os.environ, "LD_LIBRARY_PATH": str(link_dir)}


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: `make test` installs it (make system-deps)")
    return path


@contextmanager
def running_prometheus(tmp_path: Path, config_yaml: str) -> Iterator[int]:
    """Debian's Prometheus with this configuration, on a free port (yielded); its log in
    tmp_path/prometheus.log. Stopped on leaving."""
    config = tmp_path / "prometheus.yml"
    config.write_text(config_yaml)
    port = free_port()
    with open(tmp_path / "prometheus.log", "wb") as log:
        prometheus = subprocess.Popen(
            [
                require_tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            yield port
        finally:
            prometheus.terminate()
            prometheus.wait(20)


@contextmanager
def local_s3(tmp_path: Path, bucket: str) -> Iterator[dict[str, str]]:
    """An S3 endpoint on loopback (moto's server, in memory) with `bucket` made; yields
    the environment that points the embedded broker's s3:// storage at it. It outlives
    broker restarts within the block, so the broker's log does too."""
    server = Path(sys.executable).parent / "moto_server"
    if not server.exists():
        pytest.fail("moto_server is not installed: `make test` installs it (moto[server])")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(tmp_path / "s3.log", "wb") as log:
        process = subprocess.Popen(
            [str(server), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            # Moto takes unsigned requests: a plain PUT makes the bucket.
            make = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")
            wait_until(lambda: urllib.request.urlopen(make, timeout=2), 30, "moto_server")
            yield {
                "AWS_ENDPOINT": endpoint,
                "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": "liveroom-test",
                "AWS_SECRET_ACCESS_KEY": "liveroom-test",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        finally:
            process.terminate()
            process.wait(20)
