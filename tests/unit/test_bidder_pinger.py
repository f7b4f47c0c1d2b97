"""rtb.Pinger against an in-process buyer simulator on loopback: every fault → its no-bid reason, HTTP and gRPC.

The end-to-end version through Kafka and real processes is tests/integration/test_bidder_rtb.py.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import trustme
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import SecretStr

from switchboard.buyersim.config import SimConfig
from switchboard.buyersim.server import BuyerSim
from switchboard.platform import signing
from switchboard.services.bidder.rtb import Pinger
from switchboard.services.bidder.settings import BidderSettings
from switchboard.v1 import bidding_pb2 as bpb
from switchboard.v1 import bidding_pb2_grpc
from switchboard.v1 import events_pb2 as pb

BID, DECLINE, NO_BID = pb.BID_OUTCOME_BID, pb.BID_OUTCOME_DECLINE, pb.BID_OUTCOME_NO_BID

SIM = {
    "seed": 7,
    "buyers": [
        {"id": "ok", "bid": {"type": "fixed", "value": 37.5}},
        {"id": "decliner", "decline_rate": 1.0, "decline_reason": "no reps"},
        {"id": "busy", "available_rate": 0.0, "bid": {"type": "fixed", "value": 20}},
        {"id": "timeout", "faults": {"timeout": 1.0}},
        {"id": "slow", "faults": {"slow": 1.0}, "slow_ms": 5000},
        {"id": "http_500", "faults": {"http_500": 1.0}},
        {"id": "garbage", "faults": {"garbage": 1.0}},
        {"id": "reset", "faults": {"reset": 1.0}},
        {"id": "signed", "secret": "s3cret", "bid": {"type": "fixed", "value": 11}},
    ],
}


@pytest.fixture
async def sim() -> AsyncIterator[BuyerSim]:
    s = BuyerSim(SimConfig.model_validate(SIM))
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


@pytest.fixture
async def pinger() -> AsyncIterator[Pinger]:
    p = Pinger(BidderSettings(), {"signed": SecretStr("s3cret")})
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def ping(buyer: str, deadline_in_s: float = 2.0) -> pb.PingRequested:
    ts = Timestamp()
    ts.FromNanoseconds(time.time_ns() + int(deadline_in_s * 1e9))
    return pb.PingRequested(event_id="e", call_id="c", auction_id="a", buyer_ids=[buyer], deadline=ts, zip="90001")


@pytest.mark.parametrize("transport", ["http", "grpc"])
@pytest.mark.parametrize(
    ("buyer", "outcome", "reason", "amount"),
    [
        ("ok", BID, "", "37.50"),
        ("decliner", DECLINE, "no reps", ""),
        ("timeout", NO_BID, "timeout", ""),
        ("slow", NO_BID, "timeout", ""),
        ("garbage", NO_BID, "malformed", ""),
        ("signed", BID, "", "11.00"),
    ],
)
async def test_answers_and_faults(
    sim: BuyerSim, pinger: Pinger, transport: str, buyer: str, outcome: int, reason: str, amount: str
) -> None:
    url = sim.http_url(buyer) if transport == "http" else sim.grpc_url()
    a = await pinger.ping(ping(buyer), buyer, url, timeout_s=0.5)
    assert (a.outcome, a.reason, a.amount) == (outcome, reason, amount), a.detail


async def test_transport_specific_failures(sim: BuyerSim, pinger: Pinger) -> None:
    http = {b: await pinger.ping(ping(b), b, sim.http_url(b), 0.5) for b in ("http_500", "reset", "busy")}
    assert http["http_500"].reason == "http_5xx"
    assert http["reset"].reason == "connection_error"
    assert (http["busy"].outcome, http["busy"].available) == (BID, False)
    grpc_ = {b: await pinger.ping(ping(b), b, sim.grpc_url(), 0.5) for b in ("http_500", "reset")}
    assert grpc_["http_500"].reason == "grpc_internal"
    assert grpc_["reset"].reason == "connection_error"


async def test_wrong_or_missing_signature_is_refused_by_the_buyer(sim: BuyerSim) -> None:
    for secrets in ({"signed": SecretStr("wrong")}, {}):
        p = Pinger(BidderSettings(), secrets)
        await p.start()
        try:
            assert (await p.ping(ping("signed"), "signed", sim.http_url("signed"), 0.5)).reason == "http_4xx"
            assert (await p.ping(ping("signed"), "signed", sim.grpc_url(), 0.5)).reason == "grpc_unauthenticated"
        finally:
            await p.stop()
    assert sim.sim.stats["signed"]["bad_signature"] == 4


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: nothing listens there


async def test_closed_port_is_connection_refused(pinger: Pinger) -> None:
    port = closed_port()
    assert (await pinger.ping(ping("x"), "x", f"http://127.0.0.1:{port}/ping", 0.5)).reason == "connection_refused"
    assert (await pinger.ping(ping("x"), "x", f"grpc://127.0.0.1:{port}", 0.5)).reason == "connection_refused"


async def test_no_time_left_is_timeout_without_a_call(pinger: Pinger) -> None:
    a = await pinger.ping(ping("x", deadline_in_s=-1), "x", f"http://127.0.0.1:{closed_port()}/ping", 0.0)
    assert (a.outcome, a.reason) == (NO_BID, "timeout")


@pytest.fixture
def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate (trusted by nobody)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def test_untrusted_certificate_is_tls_error(pinger: Pinger, self_signed: ssl.SSLContext) -> None:

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{"bid": 99}')
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=self_signed)
    port = server.sockets[0].getsockname()[1]
    try:
        a = await pinger.ping(ping("x"), "x", f"https://127.0.0.1:{port}/ping", 1.0)
        assert (a.outcome, a.reason) == (NO_BID, "tls_error"), a.detail
    finally:
        server.close()
        await server.wait_closed()


async def test_grpcs_buyer_is_called_over_tls(tmp_path: Path) -> None:
    """A grpcs:// buyer (a real grpc.aio server with a trustme certificate): verified against tls_ca_file, signed
    answers still checked; the system CAs do not know the test CA (tls_error); grpc:// to it is no TLS."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    chain = b"".join(b.bytes() for b in cert.cert_chain_pems)
    sim = BuyerSim(SimConfig.model_validate(SIM), grpc_tls=(cert.private_key_pem.bytes(), chain))
    await sim.start()
    trusting = Pinger(BidderSettings(tls_ca_file=ca_file), {"signed": SecretStr("s3cret")})
    system = Pinger(BidderSettings(), {})
    await trusting.start()
    await system.start()
    try:
        url = sim.grpc_url()
        assert url.startswith("grpcs://127.0.0.1:")
        for buyer, amount in (("ok", "37.50"), ("signed", "11.00")):
            a = await trusting.ping(ping(buyer), buyer, url, 2.0)
            assert (a.outcome, a.amount) == (BID, amount), a.detail
        untrusted = await system.ping(ping("ok"), "ok", url, 2.0)
        assert (untrusted.outcome, untrusted.reason) == (NO_BID, "tls_error"), untrusted.detail
        plaintext = await trusting.ping(ping("ok"), "ok", url.replace("grpcs://", "grpc://"), 1.0)
        assert plaintext.outcome == NO_BID and plaintext.reason in ("connection_error", "timeout"), plaintext
    finally:
        await trusting.stop()
        await system.stop()
        await sim.stop()


def auction(auction_id: str) -> pb.PingRequested:
    p = ping("signed")
    p.auction_id = auction_id
    return p


async def test_a_signed_answer_replayed_for_another_auction_is_unsigned(pinger: Pinger) -> None:
    """A buyer's genuine signed answer of auction a-first, captured and sent back for a-other: no bid (`unsigned`),
    over HTTP and over gRPC, while the same answer to its own auction is a bid."""
    answer = b'{"accept":true,"bid":"55.00"}'
    header = signing.sign_answer("s3cret", "c", "a-first", answer)

    async def replay(_request: web.Request) -> web.Response:
        return web.Response(body=answer, content_type="application/json", headers={signing.HEADER: header})

    app = web.Application()
    app.router.add_post("/ping/signed", replay)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/ping/signed"

    grpc_answer = bpb.PingResponse(accept=True, bid="55.00")
    grpc_header = signing.sign_answer("s3cret", "c", "a-first", grpc_answer.SerializeToString(deterministic=True))

    class Replayer(bidding_pb2_grpc.BiddingServicer):
        async def Ping(self, request: bpb.PingRequest, context: grpc.aio.ServicerContext) -> bpb.PingResponse:
            context.set_trailing_metadata(((signing.GRPC_METADATA_KEY, grpc_header),))
            return grpc_answer

    server = grpc.aio.server()
    bidding_pb2_grpc.add_BiddingServicer_to_server(Replayer(), server)
    grpc_url = f"grpc://127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    try:
        for target in (url, grpc_url):
            own = await pinger.ping(auction("a-first"), "signed", target, 2.0)
            assert (own.outcome, own.amount) == (BID, "55.00"), (target, own.detail)
            replayed = await pinger.ping(auction("a-other"), "signed", target, 2.0)
            assert (replayed.outcome, replayed.reason) == (NO_BID, "unsigned"), target
            assert "another auction" in replayed.detail
    finally:
        await server.stop(None)
        await runner.cleanup()
