"""The ivr service as a real process: a gRPC client drives calls, events are read back from the broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest

from switchboard.platform import codec
from switchboard.platform.settings import DEMO_CONFIG
from switchboard.platform.topics import CALL_ENDED, CALL_REJECTED, CALL_ROUTED, CALL_STARTED, IVR_COMPLETED
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import call_control_pb2_grpc as cc_grpc
from switchboard.v1 import events_pb2 as pb
from tests.support import ServiceProcess, event_bus, new_call_id, read_all, running_service, service_env, wait_event

pytestmark = pytest.mark.integration

SOLAR = "+18885550188"  # campaign auto-insurance of the demo config (no IVR flow: the edge qualifies)


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ivr(broker, tmp_path_factory) -> Iterator[ServiceProcess]:
    env = service_env(broker.kafka_settings(), DEMO_CONFIG, SWITCHBOARD_IVR_AWAIT_TIMEOUT_MS="300")
    with running_service("ivr", env, tmp_path_factory.mktemp("ivr")) as service:
        yield service


@pytest.fixture
async def stub(ivr) -> cc_grpc.CallControlStub:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ivr.info['grpc_port']}") as channel:
        yield cc_grpc.CallControlStub(channel)


# -- tests ---------------------------------------------------------------------------------------
async def test_start_call_publishes_call_started_with_caller_facts(stub, kafka):
    cid = new_call_id()
    resp = await stub.StartCall(cc.StartCallRequest(caller_number="(213) 555-1234", dialed_number=SOLAR, call_id=cid))
    assert (resp.call_id, resp.accepted, resp.campaign_id) == (cid, True, "auto-insurance")
    [ev] = await wait_event(kafka, CALL_STARTED, lambda e: e.call_id == cid)
    assert (ev.campaign_id, ev.publisher_id, ev.dialed_number) == ("auto-insurance", "insure-clicks", SOLAR)
    assert (ev.caller.number, ev.caller.state, ev.caller.area_code, ev.caller.timezone) == (
        "+12135551234",
        "CA",
        "213",
        "America/Los_Angeles",
    )


async def test_generated_call_id_when_request_has_none(stub, kafka):
    resp = await stub.StartCall(cc.StartCallRequest(caller_number="+15125550100", dialed_number=SOLAR))
    assert resp.accepted and len(resp.call_id) == 32
    [ev] = await wait_event(kafka, CALL_STARTED, lambda e: e.call_id == resp.call_id)
    assert ev.caller.state == "TX"


async def test_unknown_dialed_number_is_rejected(stub, kafka):
    cid = new_call_id()
    resp = await stub.StartCall(cc.StartCallRequest(caller_number="+13105551234", dialed_number="+18005550000", call_id=cid))
    assert (resp.accepted, resp.reject_reason) == (False, "unknown_number")
    [ev] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == cid)
    assert ev.reason == "unknown_number" and ev.announcement and "+18005550000" in ev.detail
    result = await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=cid))
    assert (result.status, result.reason) == (cc.ROUTING_STATUS_REJECTED, "unknown_number")


async def test_full_call_answers_routing_and_outcome(stub, kafka):
    cid = new_call_id()
    await stub.StartCall(cc.StartCallRequest(caller_number="+13105551234", dialed_number=SOLAR, call_id=cid))
    await stub.SubmitAnswers(cc.SubmitAnswersRequest(call_id=cid, answers={"homeowner": "yes"}))
    await stub.SubmitAnswers(cc.SubmitAnswersRequest(call_id=cid, answers={"zip": "90210-1234"}, complete=True))
    [done] = await wait_event(kafka, IVR_COMPLETED, lambda e: e.call_id == cid)
    assert dict(done.answers) == {"homeowner": "yes", "zip": "90210"}
    assert (done.caller.zip, done.caller.state, done.campaign_id, done.publisher_id) == (
        "90210",
        "CA",
        "auto-insurance",
        "insure-clicks",
    )
    assert done.qualified and done.call_started_at.seconds > 0

    pending = await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=cid, timeout_ms=200))
    assert pending.status == cc.ROUTING_STATUS_PENDING

    # Stand in for the router: publish the decision, AwaitRouting must report it.
    waiting = asyncio.ensure_future(stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=cid, timeout_ms=20_000)))
    async with event_bus(kafka) as bus:
        await bus.publish(
            CALL_ROUTED,
            pb.CallRouted(
                event_id=codec.new_id(),
                call_id=cid,
                occurred_at=codec.now_ts(),
                campaign_id="auto-insurance",
                kind=pb.TARGET_KIND_BUYER,
                buyer_id="acme-solar",
                destination="+18005550100",
                price="40.00",
            ),
        )
    result = await waiting
    assert (result.status, result.buyer_id, result.destination, result.price) == (
        cc.ROUTING_STATUS_ROUTED,
        "acme-solar",
        "+18005550100",
        "40.00",
    )
    late = await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=cid, timeout_ms=1))  # kept for a late ask
    assert late.status == cc.ROUTING_STATUS_ROUTED

    await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_ANSWERED, connected_seconds=120))
    [ended] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == cid)
    assert (ended.outcome, ended.connected_seconds, ended.buyer_id) == (pb.CALL_OUTCOME_ANSWERED, 120, "acme-solar")
    with pytest.raises(grpc.aio.AioRpcError) as err:  # forgotten after the outcome
        await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=cid, timeout_ms=1))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_pending_uses_server_default_timeout(stub):
    cid = new_call_id()
    await stub.StartCall(cc.StartCallRequest(caller_number="+13105551234", dialed_number=SOLAR, call_id=cid))
    result = await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=cid))  # 0: the 300 ms set for this test
    assert result.status == cc.ROUTING_STATUS_PENDING and result.call_id == cid


async def test_errors_not_found_and_invalid_argument(stub):
    unknown = new_call_id()
    for rpc, req in [
        (stub.SubmitAnswers, cc.SubmitAnswersRequest(call_id=unknown, answers={"a": "b"})),
        (stub.AwaitRouting, cc.AwaitRoutingRequest(call_id=unknown, timeout_ms=1)),
        (stub.ReportOutcome, cc.ReportOutcomeRequest(call_id=unknown, outcome=pb.CALL_OUTCOME_BUSY)),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await rpc(req)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and unknown in err.value.details()

    cid = new_call_id()
    await stub.StartCall(cc.StartCallRequest(caller_number="+13105551234", dialed_number=SOLAR, call_id=cid))
    for rpc, req in [
        (stub.StartCall, cc.StartCallRequest(caller_number="+13105551234", dialed_number="")),
        (stub.StartCall, cc.StartCallRequest(caller_number="+13105551234", dialed_number=SOLAR, call_id="bad id with spaces")),
        (stub.SubmitAnswers, cc.SubmitAnswersRequest(call_id=cid, answers={"zip": "nine"})),
        (stub.AwaitRouting, cc.AwaitRoutingRequest(call_id=cid, timeout_ms=-1)),
        (stub.ReportOutcome, cc.ReportOutcomeRequest(call_id=cid)),
        (stub.ReportOutcome, cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_ANSWERED, connected_seconds=-5)),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await rpc(req)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, req


async def test_start_call_retry_is_idempotent(stub, kafka):
    cid = new_call_id()
    for _ in range(2):
        resp = await stub.StartCall(cc.StartCallRequest(caller_number="+13105551234", dialed_number=SOLAR, call_id=cid))
        assert resp.accepted and resp.campaign_id == "auto-insurance"
    await stub.SubmitAnswers(cc.SubmitAnswersRequest(call_id=cid, complete=True))
    await wait_event(kafka, IVR_COMPLETED, lambda e: e.call_id == cid)
    # exactly one call.started for the two StartCall requests (both were published before the answers)
    assert len(await read_all(kafka, CALL_STARTED, lambda e: e.call_id == cid)) == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SubmitAnswers(cc.SubmitAnswersRequest(call_id=cid, complete=True))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


# -- re-routing: the call stays open after a re-routable outcome ----------------------------------------
def routed_event(call_id: str, attempt: int, buyer: str = "acme-solar", **kw) -> pb.CallRouted:
    return pb.CallRouted(
        event_id=codec.new_id(),
        call_id=call_id,
        occurred_at=codec.now_ts(),
        campaign_id="auto-insurance",
        kind=pb.TARGET_KIND_BUYER,
        buyer_id=buyer,
        destination="+18005550100",
        price="40.00",
        attempt=attempt,
        **kw,
    )


async def started_call(stub) -> str:
    cid = new_call_id()
    await stub.StartCall(cc.StartCallRequest(caller_number="+13105551234", dialed_number=SOLAR, call_id=cid))
    await stub.SubmitAnswers(cc.SubmitAnswersRequest(call_id=cid, answers={"homeowner": "yes"}, complete=True))
    return cid


async def routing(stub, cid: str, timeout_ms: int = 20_000) -> cc.RoutingResult:
    return await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=cid, timeout_ms=timeout_ms))


async def handled_before(stub, bus, cid: str) -> None:
    """Return once the ivr has read every call.routed of `cid` published so far.

    A marker call's call.routed goes to cid's partition (same key): the ivr reads a partition in order, so
    once the marker call is ROUTED, everything published before it for cid was handled.
    """
    marker = await started_call(stub)
    await bus.publish(CALL_ROUTED, routed_event(marker, 1), key=cid)
    assert (await routing(stub, marker)).status == cc.ROUTING_STATUS_ROUTED
    await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=marker, outcome=pb.CALL_OUTCOME_CALLER_HANGUP))


async def test_no_answer_keeps_the_call_open_for_the_next_offer_and_never_returns_the_old_one(stub, kafka):
    cid = await started_call(stub)
    async with event_bus(kafka) as bus:
        await bus.publish(CALL_ROUTED, routed_event(cid, 1))
        first = await routing(stub, cid)
        assert (first.status, first.attempt, first.buyer_id) == (cc.ROUTING_STATUS_ROUTED, 1, "acme-solar")

        no_answer = cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_NO_ANSWER)
        await stub.ReportOutcome(no_answer)
        await stub.ReportOutcome(no_answer)  # the edge retried: published once (checked below)
        [ended] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == cid)
        assert (ended.outcome, ended.attempt, ended.buyer_id) == (pb.CALL_OUTCOME_NO_ANSWER, 1, "acme-solar")

        # The result of offer 1 is gone: PENDING now, and still after a redelivered attempt-1 call.routed.
        pending = await routing(stub, cid, timeout_ms=1)
        assert (pending.status, pending.attempt) == (cc.ROUTING_STATUS_PENDING, 1)
        await bus.publish(CALL_ROUTED, routed_event(cid, 1))
        await handled_before(stub, bus, cid)
        assert (await routing(stub, cid, timeout_ms=1)).status == cc.ROUTING_STATUS_PENDING

        waiting = asyncio.ensure_future(routing(stub, cid))
        await bus.publish(CALL_ROUTED, routed_event(cid, 2, buyer="sunpower"))
        second = await waiting
        assert (second.status, second.attempt, second.buyer_id) == (cc.ROUTING_STATUS_ROUTED, 2, "sunpower")
        # While offer 2 is current, a late attempt-1 and a duplicate attempt-2 call.routed change nothing.
        await bus.publish(CALL_ROUTED, routed_event(cid, 1, buyer="late"))
        await bus.publish(CALL_ROUTED, routed_event(cid, 2, buyer="dup"))
        await handled_before(stub, bus, cid)
        current = await routing(stub, cid, timeout_ms=1)
        assert (current.attempt, current.buyer_id) == (2, "sunpower")

        answered = cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_ANSWERED, connected_seconds=120)
        await stub.ReportOutcome(answered)
        await stub.ReportOutcome(answered)  # a retry after the call was forgotten: OK, nothing published
        events = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == cid, count=2)
        assert [(e.outcome, e.attempt, e.buyer_id) for e in events] == [
            (pb.CALL_OUTCOME_NO_ANSWER, 1, "acme-solar"),
            (pb.CALL_OUTCOME_ANSWERED, 2, "sunpower"),
        ]
    with pytest.raises(grpc.aio.AioRpcError) as err:  # forgotten after the final outcome
        await routing(stub, cid, timeout_ms=1)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:  # a different report for an ended call
        await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_BUSY))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # Exactly two call.ended although each report was sent twice (same key: one partition, in order).
    assert len(await read_all(kafka, CALL_ENDED, lambda e: e.call_id == cid)) == 2


async def test_rejected_after_a_reroute(stub, kafka):
    cid = await started_call(stub)
    async with event_bus(kafka) as bus:
        await bus.publish(CALL_ROUTED, routed_event(cid, 1))
        assert (await routing(stub, cid)).attempt == 1
        await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_DECLINED))
        # A re-routable outcome needs an offer: none is outstanding until the next decision.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_BUSY))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        await bus.publish(
            CALL_REJECTED,
            pb.CallRejected(
                event_id=codec.new_id(),
                call_id=cid,
                occurred_at=codec.now_ts(),
                reason="max_attempts",
                announcement="Sorry, nobody can take your call.",
            ),
        )
        rejected = await routing(stub, cid)
    assert (rejected.status, rejected.reason, rejected.attempt) == (cc.ROUTING_STATUS_REJECTED, "max_attempts", 1)
    await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_CALLER_HANGUP))
    events = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == cid, count=2)
    assert [(e.outcome, e.attempt, e.buyer_id) for e in events] == [
        (pb.CALL_OUTCOME_DECLINED, 1, "acme-solar"),
        (pb.CALL_OUTCOME_CALLER_HANGUP, 0, ""),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await routing(stub, cid, timeout_ms=1)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_buyer_hangup_reroutes_only_before_billable_after_s(stub, kafka):
    # acme-solar: billable_after_s 90 (the default) in the demo config
    early, late = await started_call(stub), await started_call(stub)
    async with event_bus(kafka) as bus:
        for cid in (early, late):
            await bus.publish(CALL_ROUTED, routed_event(cid, 1))
            assert (await routing(stub, cid)).status == cc.ROUTING_STATUS_ROUTED
    await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=early, outcome=pb.CALL_OUTCOME_BUYER_HANGUP, connected_seconds=30))
    await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=late, outcome=pb.CALL_OUTCOME_BUYER_HANGUP, connected_seconds=95))
    assert (await routing(stub, early, timeout_ms=1)).status == cc.ROUTING_STATUS_PENDING  # open for the next offer
    with pytest.raises(grpc.aio.AioRpcError) as err:  # the sale stands: the call is over
        await routing(stub, late, timeout_ms=1)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=early, outcome=pb.CALL_OUTCOME_CALLER_HANGUP))


async def test_demo_driver_reports_no_answer_and_follows_the_reroute(stub, kafka):
    from switchboard.demo.driver import one_call
    from switchboard.demo.traffic import DemoCall

    class Rolls:  # the simulated buyer: offer 1 not answered (0.9 >= 0.5), offer 2 answered (0.1 < 0.5)
        def __init__(self) -> None:
            self.values = [0.9, 0.1]

        def random(self) -> float:
            return self.values.pop(0)

    probe = new_call_id()
    call = DemoCall("+13105551234", SOLAR, {"homeowner": "yes", "probe": probe}, talk_seconds=120)
    driving = asyncio.ensure_future(one_call(stub, call, talk_scale=0, answer_rate=0.5, rng=Rolls()))  # type: ignore[arg-type]  # scripted rolls
    [done] = await wait_event(kafka, IVR_COMPLETED, lambda e: e.answers.get("probe") == probe)
    cid = done.call_id
    async with event_bus(kafka) as bus:  # stand in for the router
        await bus.publish(CALL_ROUTED, routed_event(cid, 1))
        [no_answer] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == cid)
        assert (no_answer.outcome, no_answer.attempt) == (pb.CALL_OUTCOME_NO_ANSWER, 1)
        await bus.publish(CALL_ROUTED, routed_event(cid, 2, buyer="sunpower"))
    result = await driving
    assert (result.status, result.buyer_id, result.attempts) == ("routed", "sunpower", ["acme-solar", "sunpower"])
    events = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == cid, count=2)
    assert [(e.outcome, e.attempt, e.connected_seconds) for e in events] == [
        (pb.CALL_OUTCOME_NO_ANSWER, 1, 0),
        (pb.CALL_OUTCOME_ANSWERED, 2, 120),
    ]
