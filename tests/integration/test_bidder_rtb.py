"""Bidder + buyer simulator as real processes on the session broker: ping.requested in, bid.received read back.

Every fault of the simulator maps to its no-bid reason over HTTP and gRPC, no
answer lands past the ping's deadline by more than a small margin (checked on
the events' own timestamps), signatures are checked by the buyer and answer signatures by the bidder, garbage does
not stop the bidder, 50 buyers in one ping get 50 answers, and static buyers
answer without waiting for any network call.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import SecretStr

from switchboard.buyersim.config import SimConfig
from switchboard.buyersim.server import BuyerSim
from switchboard.platform import codec
from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import BID_RECEIVED, DEAD_LETTER, PING_REQUESTED
from switchboard.services.bidder.rtb import Pinger
from switchboard.services.bidder.settings import BidderSettings
from switchboard.v1 import events_pb2 as pb
from tests.support import (
    BuyerSimProcess,
    ServiceProcess,
    event_bus,
    publish_raw,
    service_env,
    stop_services,
    wait_event,
)

pytestmark = pytest.mark.integration

BID, DECLINE, NO_BID = pb.BID_OUTCOME_BID, pb.BID_OUTCOME_DECLINE, pb.BID_OUTCOME_NO_BID
DEADLINE_MARGIN_MS = 250  # how late past the deadline an answer may be stamped (publish + clock granularity)
SECRET = "s3cret-for-tests"

FAULTY = {  # simulated buyer → the no-bid reason it must produce (HTTP, gRPC)
    "timeout": ("timeout", "timeout"),
    "slow": ("timeout", "timeout"),
    "http_500": ("http_5xx", "grpc_internal"),
    "garbage": ("malformed", "malformed"),
    "reset": ("connection_error", "connection_error"),
}

BASE_BUYERS = [
    {"id": "ok", "bid": {"type": "fixed", "value": 37.5}},
    {"id": "decliner", "decline_rate": 1.0, "decline_reason": "no reps free"},
    {"id": "timeout", "faults": {"timeout": 1.0}},
    {"id": "slow", "faults": {"slow": 1.0}, "slow_ms": 3000},
    {"id": "http_500", "faults": {"http_500": 1.0}},
    {"id": "garbage", "faults": {"garbage": 1.0}},
    {"id": "reset", "faults": {"reset": 1.0}},
    {"id": "signed", "secret": SECRET, "bid": {"type": "fixed", "value": 12}},
    {"id": "wrongly-signed", "secret": SECRET},
    # Issue #4: the bidder has these buyers' secret, so their answers must be signed.
    {"id": "unsigned", "secret": SECRET, "faults": {"unsigned": 1.0}},
    {"id": "bad-signature", "secret": SECRET, "faults": {"bad_signature": 1.0}},
    {"id": "bulk-{n}", "count": 50, "bid": {"type": "normal", "mean": 30, "sd": 8, "min": 1}},
]
# The simulator knows a buyer by the id the bidder sends (HTTP path, gRPC buyer_id), so each
# behaviour exists twice: "<name>-http" and "<name>-grpc", the ids of the routing config.
SIM = {
    "seed": 11,
    "defaults": {"latency_ms": {"type": "uniform", "min": 1, "max": 20}},
    "buyers": [{**b, "id": f"{b['id']}-{t}"} for b in BASE_BUYERS for t in ("http", "grpc")],
}
NAMES = [b["id"] for b in BASE_BUYERS if "count" not in b] + [f"bulk-{n}" for n in range(1, 51)]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def routing_config(sim: BuyerSimProcess) -> dict:
    buyers = [
        {"id": "static-a", "bid": {"type": "static", "price": 40.00}},
        {"id": "static-b", "bid": {"type": "static", "price": 25.50}},
        {"id": "refused-http", "bid": {"type": "rtb", "url": f"http://127.0.0.1:{closed_port()}/ping", "timeout_ms": 500}},
        {"id": "refused-grpc", "bid": {"type": "rtb", "url": f"grpc://127.0.0.1:{closed_port()}", "timeout_ms": 500}},
        # timeout_ms far beyond any ping deadline: the deadline must bind
        {"id": "patient-timeout", "bid": {"type": "rtb", "url": sim.http_url("timeout-http"), "timeout_ms": 60_000}},
    ]
    for name in NAMES:
        buyers.append({"id": f"{name}-http", "bid": {"type": "rtb", "url": sim.http_url(f"{name}-http"), "timeout_ms": 800}})
        buyers.append({"id": f"{name}-grpc", "bid": {"type": "rtb", "url": sim.grpc_url(), "timeout_ms": 800}})
    for i, b in enumerate(buyers):
        b["destination"] = f"+1800555{i:04d}"
    return {"version": 1, "buyers": buyers}


@dataclass
class Stack:
    kafka: KafkaSettings
    bidder: ServiceProcess
    sim: BuyerSimProcess


@pytest.fixture(scope="module")
def stack(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("bidder_rtb")
    (tmp / "buyers.yaml").write_text(yaml.safe_dump(SIM))
    sim = BuyerSimProcess(tmp / "buyers.yaml", tmp, tmp / "buyersim.log").wait_ready()
    bidder = None
    try:
        (tmp / "routing.yaml").write_text(yaml.safe_dump(routing_config(sim)))
        secrets = {"signed-http": SECRET, "wrongly-signed-http": "not-the-secret", "wrongly-signed-grpc": "nope"}
        secrets |= {f"{n}-{t}": SECRET for n in ("unsigned", "bad-signature") for t in ("http", "grpc")}
        env = service_env(
            broker.kafka_settings(),
            tmp / "routing.yaml",
            SWITCHBOARD_BIDDER_GROUP_ID=f"bidder-it-{uuid.uuid4().hex[:8]}",
            SWITCHBOARD_BIDDER_SECRETS=json.dumps(secrets),
        )
        (tmp / "secrets.yaml").write_text(yaml.safe_dump({"signed-grpc": SECRET}))
        env["SWITCHBOARD_BIDDER_SECRETS_FILE"] = str(tmp / "secrets.yaml")
        bidder = ServiceProcess("bidder", env, ready_dir=tmp, log=tmp / "bidder.log")
        bidder.wait_ready()
        yield Stack(broker.kafka_settings(), bidder, sim)
    finally:
        codes = stop_services(bidder) if bidder else {}
        sim_code = sim.stop()
        assert all(c == 0 for c in codes.values()) and sim_code == 0, (
            f"unclean shutdown {codes} buyersim={sim_code}; logs in {tmp}"
        )
    assert SECRET not in (tmp / "bidder.log").read_text(), "a secret leaked into the bidder's log"


def new_ping(buyers: list[str], deadline_in_s: float = 1.0) -> pb.PingRequested:
    deadline = Timestamp()
    deadline.FromNanoseconds(time.time_ns() + int(deadline_in_s * 1e9))
    return pb.PingRequested(
        event_id=codec.new_id(),
        call_id=f"t-{uuid.uuid4().hex}",
        occurred_at=codec.now_ts(),
        auction_id=codec.new_id(),
        campaign_id="solar",
        publisher_id="pub",
        tier_index=0,
        attempt=1,
        strategy="ping_post",
        buyer_ids=buyers,
        deadline=deadline,
        state="CA",
        zip="90001",
        area_code="213",
        answers={"homeowner": "yes"},
    )


async def auction(
    stack: Stack, buyers: list[str], deadline_in_s: float = 1.0, *, check_deadline: bool = True
) -> tuple[pb.PingRequested, dict[str, pb.BidReceived]]:
    """Publish one ping; wait for one bid.received per buyer; check none is stamped past the deadline."""
    ping = new_ping(buyers, deadline_in_s)
    async with event_bus(stack.kafka) as bus:
        await bus.publish(PING_REQUESTED, ping)
    events = await wait_event(stack.kafka, BID_RECEIVED, lambda e: e.auction_id == ping.auction_id, 30.0, count=len(buyers))
    by_buyer = {e.buyer_id: e for e in events}
    assert sorted(by_buyer) == sorted(buyers) and len(events) == len(buyers), [e.buyer_id for e in events]
    deadline_ms = codec.ts_ms(ping.deadline)
    for e in events:
        assert e.call_id == ping.call_id
        if not check_deadline:
            continue
        late = codec.ts_ms(e.occurred_at) - deadline_ms
        assert late <= DEADLINE_MARGIN_MS, f"{e.buyer_id} answered {late} ms past the deadline ({e.reason})"
    return ping, by_buyer


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_each_fault_maps_to_its_no_bid_reason_within_the_deadline(stack: Stack, transport: str) -> None:
    idx = 0 if transport == "http" else 1
    names = ["ok", "decliner", *FAULTY, "signed"]
    ping, bids = await auction(stack, [f"{n}-{transport}" for n in names])
    ok = bids[f"ok-{transport}"]
    assert (ok.outcome, ok.amount, ok.available, ok.reason) == (BID, "37.50", True, "")
    dec = bids[f"decliner-{transport}"]
    assert (dec.outcome, dec.reason) == (DECLINE, "no reps free")
    for fault, reasons in FAULTY.items():
        e = bids[f"{fault}-{transport}"]
        assert (e.outcome, e.reason, e.amount) == (NO_BID, reasons[idx], ""), fault
    signed = bids[f"signed-{transport}"]
    assert (signed.outcome, signed.amount) == (BID, "12.00"), signed.reason
    # Timed-out buyers carry their measured latency, never more than the ping's deadline allowed.
    allowed_ms = codec.ts_ms(ping.deadline) - codec.ts_ms(ping.occurred_at) + DEADLINE_MARGIN_MS
    for fault in ("timeout", "slow"):
        assert 0 < bids[f"{fault}-{transport}"].latency_ms <= allowed_ms


async def test_deadline_binds_when_it_is_shorter_than_timeout_ms(stack: Stack) -> None:
    ping, bids = await auction(stack, ["patient-timeout", "ok-http"], deadline_in_s=0.6)
    e = bids["patient-timeout"]
    assert (e.outcome, e.reason) == (NO_BID, "timeout")
    assert e.latency_ms <= codec.ts_ms(ping.deadline) - codec.ts_ms(ping.occurred_at) + DEADLINE_MARGIN_MS
    assert bids["ok-http"].outcome == BID


async def test_already_expired_ping_answers_rtb_buyers_timeout_at_once(stack: Stack) -> None:
    _, bids = await auction(stack, ["ok-http", "ok-grpc", "static-a"], deadline_in_s=-1.0, check_deadline=False)
    assert (bids["ok-http"].reason, bids["ok-grpc"].reason) == ("timeout", "timeout")
    assert bids["static-a"].amount == "40.00"


async def test_connection_refused_and_signature_failures(stack: Stack) -> None:
    _, bids = await auction(stack, ["refused-http", "refused-grpc", "wrongly-signed-http", "wrongly-signed-grpc"])
    assert bids["refused-http"].reason == "connection_refused"
    assert bids["refused-grpc"].reason == "connection_refused"
    assert bids["wrongly-signed-http"].reason == "http_4xx"  # the buyer answered 401
    assert bids["wrongly-signed-grpc"].reason == "grpc_unauthenticated"


async def test_static_buyers_answer_without_waiting_for_rtb_buyers(stack: Stack) -> None:
    _, bids = await auction(stack, ["static-a", "static-b", "refused-http", "timeout-http"])
    assert (bids["static-a"].outcome, bids["static-a"].amount) == (BID, "40.00")
    assert (bids["static-b"].outcome, bids["static-b"].amount) == (BID, "25.50")
    slow = bids["timeout-http"]
    for s in ("static-a", "static-b"):
        # published before the slow buyer gave up, not after: nothing waited for the network
        assert codec.ts_ms(bids[s].occurred_at) < codec.ts_ms(slow.occurred_at)
        assert bids[s].latency_ms < slow.latency_ms


async def test_fifty_rtb_buyers_in_one_ping_get_fifty_answers(stack: Stack) -> None:
    buyers = [f"bulk-{n}-http" for n in range(1, 26)] + [f"bulk-{n}-grpc" for n in range(26, 51)]
    _, bids = await auction(stack, buyers)
    assert len(bids) == 50
    assert all(e.outcome == BID and e.amount for e in bids.values()), {k: e.reason for k, e in bids.items() if e.outcome != BID}


async def test_garbage_never_stops_the_bidder(stack: Stack) -> None:
    for _ in range(3):
        _, bids = await auction(stack, ["garbage-http", "garbage-grpc", "reset-http", "http_500-http"])
        assert {e.reason for e in bids.values()} == {"malformed", "connection_error", "http_5xx"}
    # An undecodable ping is dead-lettered; the next ping is answered as usual.
    key = f"garbage-{uuid.uuid4().hex}"
    await publish_raw(stack.kafka, [(PING_REQUESTED.name, key.encode(), b"\xff\xfe not a ping")])
    [letter] = await wait_event(stack.kafka, DEAD_LETTER, lambda e: e.key == key.encode())
    assert letter.service == "bidder" and "undecodable" in letter.reason
    _, bids = await auction(stack, ["ok-http", "static-a"])
    assert bids["ok-http"].amount == "37.50"
    assert stack.bidder.proc.poll() is None


async def test_unknown_buyer_is_no_bid(stack: Stack) -> None:
    _, bids = await auction(stack, ["no-such-buyer"])
    assert (bids["no-such-buyer"].outcome, bids["no-such-buyer"].reason) == (NO_BID, "unknown_buyer")


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_answers_without_a_valid_signature_are_no_bid_unsigned(stack: Stack, transport: str) -> None:
    """Issue #4: an answer that is unsigned or wrongly signed never changes who gets a call."""
    _, bids = await auction(stack, [f"{n}-{transport}" for n in ("signed", "unsigned", "bad-signature", "ok")])
    assert (bids[f"signed-{transport}"].outcome, bids[f"signed-{transport}"].amount) == (BID, "12.00")
    for name in ("unsigned", "bad-signature"):
        e = bids[f"{name}-{transport}"]
        assert (e.outcome, e.reason, e.amount) == (NO_BID, "unsigned", ""), (name, e.reason)
    # A buyer without a secret is not asked for a signature.
    assert bids[f"ok-{transport}"].outcome == BID


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_post_answers_must_be_signed_and_operators_can_relax_the_check(transport: str) -> None:
    """The bidder's Pinger against an in-process simulator: posts (no broker needed) and require_signed_answers=false."""
    sim = BuyerSim(
        SimConfig.model_validate(
            {
                "buyers": [
                    {"id": "signed", "secret": SECRET, "bid": {"type": "fixed", "value": 12}},
                    {"id": "unsigned", "secret": SECRET, "faults": {"unsigned": 1.0}, "post_faults": {"unsigned": 1.0}},
                    {
                        "id": "bad-signature",
                        "secret": SECRET,
                        "faults": {"bad_signature": 1.0},
                        "post_faults": {"bad_signature": 1.0},
                    },
                ]
            }
        )
    )
    await sim.start()
    ids = ("signed", "unsigned", "bad-signature")
    try:
        for required in (True, False):
            pinger = Pinger(BidderSettings(require_signed_answers=required), {b: SecretStr(SECRET) for b in ids})
            await pinger.start()
            try:
                for b in ids:
                    url = sim.http_url(b) if transport == "http" else sim.grpc_url()
                    ping = new_ping([b], 5.0)
                    post = pb.PostRequested(
                        event_id=codec.new_id(),
                        call_id=ping.call_id,
                        occurred_at=codec.now_ts(),
                        auction_id=ping.auction_id,
                        buyer_id=b,
                        price="12.00",
                        campaign_id="solar",
                        publisher_id="pub",
                        deadline=ping.deadline,
                        attempt=1,
                    )
                    answer = await pinger.ping(ping, b, url, 2.0)
                    result = await pinger.post(post, url, 2.0)
                    if b == "signed" or not required:
                        assert (answer.outcome, result.accepted) == (BID, True), (b, required, answer, result)
                    else:
                        assert (answer.outcome, answer.reason) == (NO_BID, "unsigned"), (b, answer)
                        assert (result.accepted, result.reason) == (False, "unsigned"), (b, result)
            finally:
                await pinger.stop()
    finally:
        await sim.stop()
