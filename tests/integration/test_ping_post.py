"""ping_post over the wire: router + bidder + buyer simulator as subprocesses on the session broker.

The buyer simulator records every body it receives (--record), so the tests check what
buyers actually saw: pings never carry the caller number; the post carries it only to a
buyer with share_caller_number: true. A rejected or timed-out post goes to the next bid.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import (
    CALL_ROUTED,
    IVR_COMPLETED,
    POST_ANSWERED,
    POST_REQUESTED,
)
from switchboard.v1 import events_pb2 as pb
from tests.support import (
    BuyerSimProcess,
    Results,
    ServiceProcess,
    event_bus,
    ivr,
    service_env,
    stop_services,
    wait_event,
)

pytestmark = pytest.mark.integration

NUMBER = "+12135550199"  # the caller number of tests.support.ivr()

SIM = """
seed: 7
buyers:
  - {id: private,  bid: {type: fixed, value: 60}}
  - {id: sharer,   bid: {type: fixed, value: 55}}
  - {id: rejecter, bid: {type: fixed, value: 70}, post_reject_rate: 1.0, post_reject_reason: "caller already in CRM"}
  - {id: backup,   bid: {type: fixed, value: 50}}
  - {id: sleeper,  bid: {type: fixed, value: 70}, post_faults: {timeout: 1.0}}
  - {id: backup2,  bid: {type: fixed, value: 50}}
  - {id: grpc-rejecter, bid: {type: fixed, value: 70}, post_reject_rate: 1.0, post_reject_reason: "over daily budget"}
  - {id: grpc-private,  bid: {type: fixed, value: 60}}
"""

ROUTING = """
version: 1
publishers:
  - {{id: pub, min_price: 15.00}}
buyers:
  - {{id: private,  destination: "+18005550201", bid: {{type: rtb, url: "{http}/ping/private", timeout_ms: 800}}}}
  - {{id: sharer,   destination: "+18005550202", share_caller_number: true, bid: {{type: rtb, url: "{http}/ping/sharer", timeout_ms: 800}}}}
  - {{id: rejecter, destination: "+18005550203", bid: {{type: rtb, url: "{http}/ping/rejecter", timeout_ms: 800}}}}
  - {{id: backup,   destination: "+18005550204", bid: {{type: rtb, url: "{http}/ping/backup", timeout_ms: 800}}}}
  - {{id: sleeper,  destination: "+18005550205", bid: {{type: rtb, url: "{http}/ping/sleeper", timeout_ms: 800}}}}
  - {{id: backup2,  destination: "+18005550206", bid: {{type: rtb, url: "{http}/ping/backup2", timeout_ms: 800}}}}
  - {{id: static-a, destination: "+18005550207", share_caller_number: true, bid: {{type: static, price: 45.00}}}}
  - {{id: static-b, destination: "+18005550208", bid: {{type: static, price: 35.00}}}}
  - {{id: grpc-rejecter, destination: "+18005550209", bid: {{type: rtb, url: "{grpc}", timeout_ms: 800}}}}
  - {{id: grpc-private,  destination: "+18005550210", bid: {{type: rtb, url: "{grpc}", timeout_ms: 800}}}}
campaigns:
  - {{id: pp-numbers, numbers: ["+18885550101"], publisher: pub,
     routing: {{timeout_ms: 1500, tiers: [{{strategy: ping_post, buyers: [private, sharer]}}]}}}}
  - {{id: pp-sharer,  numbers: ["+18885550102"], publisher: pub,
     routing: {{timeout_ms: 1500, tiers: [{{strategy: ping_post, buyers: [sharer]}}]}}}}
  - {{id: pp-reject,  numbers: ["+18885550103"], publisher: pub,
     routing: {{timeout_ms: 1500, tiers: [{{strategy: ping_post, buyers: [rejecter, backup]}}]}}}}
  - {{id: pp-timeout, numbers: ["+18885550104"], publisher: pub,
     routing: {{timeout_ms: 1000, tiers: [{{strategy: ping_post, buyers: [sleeper, backup2]}}]}}}}
  - {{id: pp-static,  numbers: ["+18885550105"], publisher: pub,
     routing: {{timeout_ms: 1000, tiers: [{{strategy: ping_post, buyers: [static-a, static-b]}}]}}}}
  - {{id: pp-grpc,    numbers: ["+18885550106"], publisher: pub,
     routing: {{timeout_ms: 1500, tiers: [{{strategy: ping_post, buyers: [grpc-rejecter, grpc-private]}}]}}}}
"""


@dataclass
class Stack:
    kafka: KafkaSettings
    record: Path


@pytest.fixture(scope="module")
def stack(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("ping_post")
    (tmp / "sim.yaml").write_text(SIM)
    record = tmp / "received.jsonl"
    sim = BuyerSimProcess(tmp / "sim.yaml", tmp, tmp / "buyersim.log", "--record", str(record))
    procs: list[ServiceProcess] = []
    try:
        sim.wait_ready()
        config = tmp / "routing.yaml"
        config.write_text(ROUTING.format(http=f"http://127.0.0.1:{sim.http_port}", grpc=sim.grpc_url()))
        kafka = broker.kafka_settings()
        env = service_env(
            kafka,
            config,
            SWITCHBOARD_ROUTER_APP_ID=f"router-pp-{uuid.uuid4().hex[:8]}",
            SWITCHBOARD_ROUTER_DATA_DIR=str(tmp / "router-data"),
            SWITCHBOARD_BIDDER_GROUP_ID=f"bidder-pp-{uuid.uuid4().hex[:8]}",
        )
        procs = [ServiceProcess(name, env, ready_dir=tmp, log=tmp / f"{name}.log") for name in ("bidder", "router")]
        for p in procs:
            p.wait_ready()
        yield Stack(kafka, record)
    finally:
        codes = stop_services(*procs)
        sim_code = sim.stop()
        assert all(c == 0 for c in codes.values()) and sim_code == 0, (
            f"unclean shutdown {codes} buyersim={sim_code}; logs in {tmp}"
        )


async def route(stack: Stack, event: pb.IvrCompleted) -> pb.CallRouted:
    async with Results(stack.kafka) as results, event_bus(stack.kafka) as bus:
        await bus.publish(IVR_COMPLETED, event)
        topic, out = await results.wait_terminal(event.call_id)
    assert topic == CALL_ROUTED.name, out
    assert isinstance(out, pb.CallRouted)
    return out


def received(stack: Stack, call_id: str) -> list[dict]:
    """What the simulated buyers received for one call (the recorded request bodies)."""
    if not stack.record.exists():
        return []
    lines = [json.loads(line) for line in stack.record.read_text().splitlines() if line.strip()]
    return [r for r in lines if r["body"].get("call_id") == call_id]


def wait_received(stack: Stack, call_id: str, kinds: list[str], timeout_s: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = received(stack, call_id)
        if sorted(r["kind"] for r in got) == sorted(kinds) or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


async def test_pings_never_carry_the_number_and_the_post_only_to_a_sharing_buyer(stack: Stack) -> None:
    private_call = ivr("pp-numbers")
    routed = await route(stack, private_call)
    assert (routed.buyer_id, routed.price, routed.strategy) == ("private", "60.00", "ping_post")
    got = wait_received(stack, private_call.call_id, ["ping", "ping", "post"])
    pings = [r for r in got if r["kind"] == "ping"]
    assert {r["buyer_id"] for r in pings} == {"private", "sharer"}
    for r in pings:
        assert r["body"]["type"] == "ping" and NUMBER not in json.dumps(r["body"]) and r["body"]["caller_number"] == ""
    [post] = [r for r in got if r["kind"] == "post"]
    assert post["buyer_id"] == "private" and post["body"]["type"] == "post"
    assert post["body"]["caller_number"] == "" and NUMBER not in json.dumps(post["body"])
    assert (post["body"]["price"], post["body"]["zip"], post["body"]["answers"]) == ("60.00", "90001", {"homeowner": "yes"})

    sharing_call = ivr("pp-sharer")
    routed = await route(stack, sharing_call)
    assert routed.buyer_id == "sharer"
    got = wait_received(stack, sharing_call.call_id, ["ping", "post"])
    [ping] = [r for r in got if r["kind"] == "ping"]
    assert NUMBER not in json.dumps(ping["body"])
    [post] = [r for r in got if r["kind"] == "post"]
    assert post["body"]["caller_number"] == NUMBER
    assert any("post to sharer" in n and "accepted" in n for n in routed.trace.notes), list(routed.trace.notes)


async def test_a_rejected_post_goes_to_the_next_highest_bid(stack: Stack) -> None:
    call = ivr("pp-reject")
    routed = await route(stack, call)
    assert (routed.buyer_id, routed.price) == ("backup", "50.00")
    posts = [r["buyer_id"] for r in wait_received(stack, call.call_id, ["ping", "ping", "post", "post"]) if r["kind"] == "post"]
    assert posts == ["rejecter", "backup"]
    notes = list(routed.trace.notes)
    assert any("post to rejecter" in n and "rejected: caller already in CRM" in n for n in notes), notes
    answers = await wait_event(stack.kafka, POST_ANSWERED, lambda e: e.call_id == call.call_id, count=2)
    assert {(a.buyer_id, a.accepted, a.reason) for a in answers} == {
        ("rejecter", False, "caller already in CRM"),
        ("backup", True, ""),
    }


async def test_a_post_that_times_out_goes_to_the_next_highest_bid(stack: Stack) -> None:
    call = ivr("pp-timeout")
    routed = await route(stack, call)
    assert (routed.buyer_id, routed.price) == ("backup2", "50.00")
    notes = list(routed.trace.notes)
    assert any("post to sleeper" in n and "rejected: timeout" in n for n in notes), notes
    [requested] = await wait_event(stack.kafka, POST_REQUESTED, lambda e: e.call_id == call.call_id and e.buyer_id == "sleeper")
    assert requested.caller.number == "" and requested.price == "70.00"


async def test_static_ping_post_buyers_need_no_network(stack: Stack) -> None:
    call = ivr("pp-static")
    routed = await route(stack, call)
    assert (routed.buyer_id, routed.price) == ("static-a", "45.00")
    [requested] = await wait_event(stack.kafka, POST_REQUESTED, lambda e: e.call_id == call.call_id)
    assert requested.buyer_id == "static-a" and requested.caller.number == NUMBER  # static-a shares the number
    [answered] = await wait_event(stack.kafka, POST_ANSWERED, lambda e: e.call_id == call.call_id)
    assert answered.accepted and answered.attempt == requested.attempt
    assert received(stack, call.call_id) == []  # the simulator never heard of this call


async def test_ping_post_over_grpc_rejected_post_then_the_next_bid(stack: Stack) -> None:
    """The same auction with buyers on gRPC (BuyerBidding Ping and Post): no number in pings or in the post."""
    call = ivr("pp-grpc")
    routed = await route(stack, call)
    assert (routed.buyer_id, routed.price, routed.strategy) == ("grpc-private", "60.00", "ping_post")
    got = wait_received(stack, call.call_id, ["ping", "ping", "post", "post"])
    assert sorted((r["kind"], r["buyer_id"]) for r in got) == [
        ("ping", "grpc-private"),
        ("ping", "grpc-rejecter"),
        ("post", "grpc-private"),
        ("post", "grpc-rejecter"),
    ]
    for r in got:
        assert NUMBER not in json.dumps(r["body"]) and not r["body"].get("caller_number"), r
    assert [r["buyer_id"] for r in got if r["kind"] == "post"] == ["grpc-rejecter", "grpc-private"]
    answers = await wait_event(stack.kafka, POST_ANSWERED, lambda e: e.call_id == call.call_id, count=2)
    assert {(a.buyer_id, a.accepted, a.reason) for a in answers} == {
        ("grpc-rejecter", False, "over daily budget"),
        ("grpc-private", True, ""),
    }
    notes = list(routed.trace.notes)
    assert any("post to grpc-rejecter" in n and "rejected: over daily budget" in n for n in notes), notes
