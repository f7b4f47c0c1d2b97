"""The ivr edge killed with SIGKILL while it has bridged calls, restarted, and the calls still end (docs/IVR.md,
"Restarts and replicas").

Two ivr replicas (A and B) behind the test's "edge", a real router and bidder. Under load, calls are started on A
and reach different stages: bridged (ROUTED and returned to the edge), decided but not yet asked for (the
call.routed is out, the edge has not polled), re-routed (NO_ANSWER reported just before the kill, the next offer
comes while A is down), and still in the IVR (answers not complete). Then A is killed with SIGKILL and started
again. Every call is carried on to its end, half through the restarted A and half through B (which never took
a StartCall). The checks, from the topics and the router's published ledger view:

* every call has exactly one final call.ended, for the offer the router made (attempt and buyer);
* no call.ended was published twice for one report;
* every buyer's slot is free again (no call of the test open in the router's view).

Without ivr.calls the restarted A answers NOT_FOUND for every call and B never knew them: nothing ends, and the
buyer's slots stay held until the router's reaper.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from pathlib import Path

import grpc
import pytest

from switchboard.core.call_end import meaning_of
from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.topics import CALL_ENDED, CALL_ROUTED
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import call_control_pb2_grpc as cc_grpc
from switchboard.v1 import events_pb2 as pb
from tests.integration.test_router_ledger import Routers, edge
from tests.support import ServiceProcess, ivr_channel, read_all, service_env, stop_services, until

pytestmark = pytest.mark.integration

CAP = 3
BRIDGED = 8  # calls bridged at the kill (more than the top buyer's cap: the rest go to the next buyers)
UNASKED = 3  # decided, the edge did not poll yet
IN_IVR = 3  # answers not complete at the kill

CONFIG = """
version: 1
publishers:
  - {id: pub, min_price: 10.00}
buyers:
  - {id: TOP,   destination: "+18005550500", bid: {type: static, price: 40.00}, billable_after_s: 10, caps: {concurrency: CAP}}
  - {id: NEXT,  destination: "+18005550501", bid: {type: static, price: 30.00}}
  - {id: SPARE, destination: "+18005550502", bid: {type: static, price: 20.00}}
campaigns:
  - {id: CAMPAIGN, numbers: ["NUMBER"], publisher: pub, routing: {timeout_ms: 3000, tiers: [{strategy: price, buyers: [TOP, NEXT, SPARE]}]}}
"""


async def routed(stub: cc_grpc.CallControlStub, call_id: str, attempt: int = 1) -> cc.RoutingResult:
    """AwaitRouting until the call's offer `attempt` (PENDING answers are asked again)."""

    async def ask() -> cc.RoutingResult | None:
        r = await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=call_id, timeout_ms=2000))
        assert r.status != cc.ROUTING_STATUS_REJECTED, f"{call_id} rejected: {r.reason}"
        return r if r.status == cc.ROUTING_STATUS_ROUTED and r.attempt >= attempt else None

    return await until(f"{call_id} routed (attempt {attempt})", ask, timeout_s=60, interval_s=0)  # type: ignore[return-value]


async def test_sigkill_of_the_ivr_loses_no_bridged_call(broker: EmbeddedBroker, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    campaign, top, nxt, spare = f"ivrcrash-{tag}", f"top-{tag}", f"next-{tag}", f"spare-{tag}"
    number = f"+1888{int(tag, 16) % 10_000_000:07d}"
    config = tmp_path / "routing.yaml"
    config.write_text(
        CONFIG.replace("CAMPAIGN", campaign)
        .replace("TOP", top)
        .replace("NEXT", nxt)
        .replace("SPARE", spare)
        .replace("CAP", str(CAP))
        .replace("NUMBER", number)
    )
    kafka = broker.kafka_settings()
    app_id = f"router-ivrcrash-{tag}"
    env = service_env(kafka, config, SWITCHBOARD_ROUTER_APP_ID=app_id, SWITCHBOARD_BIDDER_GROUP_ID=f"bidder-ivrcrash-{tag}")
    routers = Routers(kafka, app_id, tmp_path, env)
    procs: list[ServiceProcess] = []

    def spawn(name: str, n: int) -> ServiceProcess:
        p = ServiceProcess(name, env, ready_dir=tmp_path / f"{name}-ready-{n}", log=tmp_path / f"{name}-{n}.log")
        procs.append(p)
        return p

    try:
        bidder = spawn("bidder", 0)
        a, b = spawn("ivr", 0), spawn("ivr", 1)
        for p in (bidder, a, b):
            p.wait_ready(60)
        routers.start()
        async with edge(routers) as e, ivr_channel(a.info) as chan_a, ivr_channel(b.info) as chan_b:
            stub_a = cc_grpc.CallControlStub(chan_a)

            async def start(complete: bool) -> str:
                call_id = f"c-{uuid.uuid4().hex}"
                resp = await stub_a.StartCall(
                    cc.StartCallRequest(call_id=call_id, caller_number="+13105550123", dialed_number=number)
                )
                assert resp.accepted, resp
                await stub_a.SubmitAnswers(
                    cc.SubmitAnswersRequest(call_id=call_id, answers={"homeowner": "yes"}, complete=complete)
                )
                return call_id

            # -- load: calls started together on A; the first ones bridged (ROUTED returned to the edge).
            bridged = await asyncio.gather(*(start(True) for _ in range(BRIDGED)))
            offers = dict(zip(bridged, await asyncio.gather(*(routed(stub_a, c) for c in bridged)), strict=True))
            assert sum(1 for o in offers.values() if o.buyer_id == top) == CAP
            # One offer not answered just before the kill: the router re-routes it while A is down.
            rerouted = bridged[-1]
            await stub_a.ReportOutcome(cc.ReportOutcomeRequest(call_id=rerouted, outcome=pb.CALL_OUTCOME_NO_ANSWER))
            # Decided but never asked for: the edge's next AwaitRouting goes to the restarted A.
            unasked = await asyncio.gather(*(start(True) for _ in range(UNASKED)))
            in_ivr = await asyncio.gather(*(start(False) for _ in range(IN_IVR)))

            async def decided() -> bool:
                evs = await read_all(kafka, CALL_ROUTED, lambda ev: ev.call_id in {*unasked, rerouted})
                return {(ev.call_id, ev.attempt) for ev in evs} >= {*((c, 1) for c in unasked), (rerouted, 2)}

            await until("the unasked calls and the re-route decided", decided, interval_s=0.1)

            a.kill()  # SIGKILL by pid: nothing flushed, every in-memory call gone
            assert a.proc.returncode == -9
            a2 = spawn("ivr", 2)
            a2.wait_ready(60)
            async with ivr_channel(a2.info) as chan_a2:
                stubs = [cc_grpc.CallControlStub(chan_a2), cc_grpc.CallControlStub(chan_b)]  # restarted A, and B

                # The restarted A (and B) know every call and its current offer.
                for call_id, offer in offers.items():
                    if call_id != rerouted:
                        for stub in stubs:
                            again = await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=call_id, timeout_ms=1))
                            assert (again.status, again.attempt, again.buyer_id) == (cc.ROUTING_STATUS_ROUTED, 1, offer.buyer_id)
                offers[rerouted] = await routed(stubs[0], rerouted, attempt=2)
                for i, call_id in enumerate(unasked):
                    offers[call_id] = await routed(stubs[i % 2], call_id)
                for i, call_id in enumerate(in_ivr):  # the rest of the IVR, on either instance
                    await stubs[i % 2].SubmitAnswers(cc.SubmitAnswersRequest(call_id=call_id, complete=True))
                    offers[call_id] = await routed(stubs[i % 2], call_id)

                # -- every call ends: answered and billable, half through each instance.
                async def end(i: int, call_id: str) -> None:
                    request = cc.ReportOutcomeRequest(call_id=call_id, outcome=pb.CALL_OUTCOME_ANSWERED, connected_seconds=60)
                    await stubs[i % 2].ReportOutcome(request)

                calls = list(offers)
                await asyncio.gather(*(end(i, c) for i, c in enumerate(calls)))
                for stub in stubs:  # forgotten everywhere once ended
                    with pytest.raises(grpc.aio.AioRpcError) as err:
                        await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=calls[0], timeout_ms=1))
                    assert err.value.code() == grpc.StatusCode.NOT_FOUND
                for call_id in calls:
                    await e.released(offers[call_id].buyer_id, call_id)

            # -- the checks, from the topics.
            ended = await read_all(kafka, CALL_ENDED, lambda ev: ev.call_id in offers)
            by_call: dict[str, list[pb.CallEnded]] = defaultdict(list)
            for ev in ended:
                by_call[ev.call_id].append(ev)
            for call_id, offer in offers.items():
                final = [ev for ev in by_call[call_id] if not meaning_of(ev.outcome, ev.connected_seconds, 10).reroutable]
                assert [(ev.attempt, ev.buyer_id) for ev in final] == [(offer.attempt, offer.buyer_id)], (
                    f"{call_id}: {by_call[call_id]}; logs in {tmp_path}"
                )
            assert len({ev.event_id for ev in ended}) == len(ended), "a call.ended published twice"
            for buyer in (top, nxt, spare):
                load = e.view.loads.get(buyer)
                held = set(load[1].open_calls) & set(offers) if load else set()
                assert not held, f"{buyer} still holds {held}"
    finally:
        stop_services(*[p for p in (*procs, *routers.procs) if p.proc.poll() is None])
