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

SOLAR = "+18885550123"  # campaign solar-ca of the demo config


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ivr(broker, tmp_path_factory) -> Iterator[ServiceProcess]:
    env = service_env(broker.kafka_settings(), DEMO_CONFIG, SWITCHBOARD_IVR_AWAIT_TIMEOUT_MS="300")
    with running_service("ivr", env, tmp_path_factory.mktemp("ivr")) as service:
        yield service


@pytest.fixture()
async def stub(ivr) -> cc_grpc.CallControlStub:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ivr.info['grpc_port']}") as channel:
        yield cc_grpc.CallControlStub(channel)


# -- tests ---------------------------------------------------------------------------------------
async def test_start_call_publishes_call_started_with_caller_facts(stub, kafka):
    cid = new_call_id()
    resp = await stub.StartCall(cc.StartCallRequest(caller_number="(213) 555-1234", dialed_number=SOLAR, call_id=cid))
    assert (resp.call_id, resp.accepted, resp.campaign_id) == (cid, True, "solar-ca")
    [ev] = await wait_event(kafka, CALL_STARTED, lambda e: e.call_id == cid)
    assert (ev.campaign_id, ev.publisher_id, ev.dialed_number) == ("solar-ca", "solar-media", SOLAR)
    assert (ev.caller.number, ev.caller.state, ev.caller.area_code, ev.caller.timezone) == (
        "+12135551234", "CA", "213", "America/Los_Angeles",
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
    assert (done.caller.zip, done.caller.state, done.campaign_id, done.publisher_id) == ("90210", "CA", "solar-ca", "solar-media")
    assert done.qualified and done.call_started_at.seconds > 0

    pending = await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=cid, timeout_ms=200))
    assert pending.status == cc.ROUTING_STATUS_PENDING

    # Stand in for the router: publish the decision, AwaitRouting must report it.
    waiting = asyncio.ensure_future(stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=cid, timeout_ms=20_000)))
    async with event_bus(kafka) as bus:
        await bus.publish(
            CALL_ROUTED,
            pb.CallRouted(
                event_id=codec.new_id(), call_id=cid, occurred_at=codec.now_ts(), campaign_id="solar-ca",
                kind=pb.TARGET_KIND_BUYER, buyer_id="acme-solar", destination="+18005550100", price="40.00",
            ),
        )
    result = await waiting
    assert (result.status, result.buyer_id, result.destination, result.price) == (
        cc.ROUTING_STATUS_ROUTED, "acme-solar", "+18005550100", "40.00",
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
        assert resp.accepted and resp.campaign_id == "solar-ca"
    await stub.SubmitAnswers(cc.SubmitAnswersRequest(call_id=cid, complete=True))
    await wait_event(kafka, IVR_COMPLETED, lambda e: e.call_id == cid)
    # exactly one call.started for the two StartCall requests (both were published before the answers)
    assert len(await read_all(kafka, CALL_STARTED, lambda e: e.call_id == cid)) == 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SubmitAnswers(cc.SubmitAnswersRequest(call_id=cid, complete=True))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
