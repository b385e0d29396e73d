"""Kafka over TLS, run for real: certificates made here with openssl (a CA, the broker's
certificate for 127.0.0.1, a client certificate), and the worker's whole path (topic
set-up, consumer group, produce, commits) through mutual TLS.

The embedded broker's own TLS does not work (Tansu 0.6 refuses `--cert` with `--key`;
with `--cert` alone its listener stays plain), so TLS is terminated in front of it by
stunnel, as a TLS proxy or sidecar would in production. The broker advertises the TLS
port only, so every connection a client opens, bootstrap and partition leaders alike,
goes through the handshake: a plain client or one without a client certificate gets
nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from streams import config
from streams.broker import EmbeddedBroker, free_port
from streams.config import Settings
from streams.kafka import aiokafka_options

from .conftest import WorkerProcess, require_tool, room_value, wait_until

pytestmark = pytest.mark.integration


def openssl(*args: str | Path) -> None:
    subprocess.run([require_tool("openssl"), *map(str, args)], check=True, capture_output=True)


def make_certificates(d: Path) -> dict[str, Path]:
    """A CA, and the broker's and a client's keys and certificates signed by it."""
    out = {"ca": d / "ca.pem", "ca_key": d / "ca.key"}
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=liveroom test CA", "-keyout", out["ca_key"], "-out", out["ca"],
    )  # fmt: skip
    san = d / "san.ext"
    san.write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject in (("broker", "/CN=127.0.0.1"), ("client", "/CN=liveroom-worker")):
        key, csr, cert = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem"
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", key, "-out", csr
        )
        openssl(
            "x509", "-req", "-in", csr, "-CA", out["ca"], "-CAkey", out["ca_key"],
            "-CAcreateserial", "-days", "1", "-out", cert, "-extfile", san,
        )  # fmt: skip
        out[f"{name}_key"], out[f"{name}_cert"] = key, cert
    return out


@contextmanager
def tls_terminator(d: Path, accept: int, connect: int, certs: dict[str, Path]) -> Iterator[Path]:
    """stunnel on 127.0.0.1:`accept` -> the broker on `connect`; client certificates
    signed by the CA required. Yields its log."""
    log = d / "stunnel.log"
    conf = d / "stunnel.conf"
    conf.write_text(
        f"""foreground = yes
pid =
output = {log}
debug = info
[kafka]
accept = 127.0.0.1:{accept}
connect = 127.0.0.1:{connect}
cert = {certs["broker_cert"]}
key = {certs["broker_key"]}
CAfile = {certs["ca"]}
requireCert = yes
verifyChain = yes
"""
    )
    process = subprocess.Popen(
        [require_tool("stunnel4"), str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: log.exists() and "Configuration successful" in log.read_text(), 15, "stunnel"
        )
        yield log
    finally:
        process.terminate()
        process.wait(10)


async def produce(settings: Settings, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(**aiokafka_options(settings))
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value, key=b"tls-room")
        await producer.flush()
    finally:
        await producer.stop()


def test_the_worker_runs_over_mutual_tls(tmp_path):
    certs = make_certificates(tmp_path)
    tls_port = free_port()
    with (
        EmbeddedBroker(log_path=str(tmp_path / "broker.log"), advertised_port=tls_port) as broker,
        tls_terminator(tmp_path, tls_port, broker.port, certs) as stunnel_log,
    ):
        env = {
            **os.environ,
            "LIVEROOM_KAFKA_BOOTSTRAP": broker.bootstrap,
            "LIVEROOM_KAFKA_SECURITY_PROTOCOL": "SSL",
            "LIVEROOM_KAFKA_SSL_CAFILE": str(certs["ca"]),
            "LIVEROOM_KAFKA_SSL_CERTFILE": str(certs["client_cert"]),
            "LIVEROOM_KAFKA_SSL_KEYFILE": str(certs["client_key"]),
            "LIVEROOM_PARTITIONS": "4",
            "LIVEROOM_METRICS_HOST": "127.0.0.1",
            "LIVEROOM_METRICS_PORT": str(free_port()),
            "LIVEROOM_DATA_DIR": str(tmp_path),
            **config.namespaced(f"tls-{os.getpid()}"),
        }
        settings = config.load(env)
        worker = WorkerProcess(env, tmp_path / "worker.log").start()
        try:
            worker.wait_ready()  # topics made, group joined: all through TLS
            now = int(time.time() * 1000)
            views = [
                orjson.dumps(
                    {"event_id": f"t{i}", "room_id": "tls-room", "user_id": f"u{i % 40}", "ts": now}
                )
                for i in range(120)
            ]
            asyncio.run(produce(settings, settings.topic_views, views))
            wait_until(
                lambda: room_value(worker.scrape(), "liveroom_views_total", "tls-room") == 120,
                30,
                "120 views counted through TLS",
            )
            # The worker's state checkpoints and commits went through TLS too: it is ready.
            assert worker.process is not None and worker.process.poll() is None

            # Without a client certificate, or without TLS, a client gets nothing.
            no_cert = replace(settings, kafka_ssl_certfile="", kafka_ssl_keyfile="")
            plain = replace(settings, kafka_security_protocol="PLAINTEXT")
            for refused in (no_cert, plain):
                with pytest.raises(KafkaConnectionError):
                    asyncio.run(produce(refused, settings.topic_views, views[:1]))
            assert room_value(worker.scrape(), "liveroom_views_total", "tls-room") == 120
        finally:
            worker.stop()
        text = stunnel_log.read_text()
        # The worker's connections: its certificate checked against the CA...
        assert text.count("Certificate accepted at depth=0: CN=liveroom-worker") >= 3
        # ...and the two clients turned away, for the reason each should be.
        assert "peer did not return a certificate" in text
        assert "wrong version number" in text  # plain Kafka protocol on a TLS port
