"""Screening at StartCall through the ivr process: blocklists and invalid numbers end as call.rejected."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from switchboard.platform.topics import CALL_REJECTED, CALL_STARTED
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import call_control_pb2_grpc as cc_grpc
from tests.support import ServiceProcess, new_call_id, running_service, service_env, wait_event

pytestmark = pytest.mark.integration

STRICT = "+18885550101"  # campaign strict: blocks area code 213, refuses invalid callers
LENIENT = "+18885550102"  # campaign lenient: allows invalid callers

CONFIG = f"""version: 1
blocklist:
  numbers: ["+13105550000"]
  prefixes: ["+1312555"]
publishers: [{{id: pub}}]
buyers: [{{id: b, destination: "+18005550100", bid: {{type: static, price: 10}}}}]
campaigns:
  - id: strict
    numbers: ["{STRICT}"]
    publisher: pub
    blocklist: {{area_codes: ["213"]}}
    routing: {{tiers: [{{strategy: price, buyers: [b]}}]}}
  - id: lenient
    numbers: ["{LENIENT}"]
    publisher: pub
    allow_invalid_numbers: true
    routing: {{tiers: [{{strategy: price, buyers: [b]}}]}}
"""


@pytest.fixture(scope="module")
def ivr(broker, tmp_path_factory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("ivr-screening")
    config = workdir / "routing.yaml"
    config.write_text(CONFIG)
    env = service_env(broker.kafka_settings(), config, SWITCHBOARD_IVR_AWAIT_TIMEOUT_MS="300")
    with running_service("ivr", env, workdir) as service:
        yield service


@pytest.fixture
async def stub(ivr) -> cc_grpc.CallControlStub:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ivr.info['grpc_port']}") as channel:
        yield cc_grpc.CallControlStub(channel)


async def assert_rejected(stub, kafka, caller: str, dialed: str, reason: str, campaign: str) -> str:
    """StartCall refuses the call; call.started and call.rejected are on the broker; AwaitRouting says REJECTED."""
    cid = new_call_id()
    resp = await stub.StartCall(cc.StartCallRequest(caller_number=caller, dialed_number=dialed, call_id=cid))
    assert (resp.accepted, resp.reject_reason, resp.campaign_id) == (False, reason, campaign)
    [started] = await wait_event(kafka, CALL_STARTED, lambda e: e.call_id == cid)
    assert started.campaign_id == campaign
    [rejected] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == cid)
    assert (rejected.reason, rejected.campaign_id, rejected.publisher_id) == (reason, campaign, "pub")
    assert rejected.announcement and rejected.call_started_at == started.occurred_at
    result = await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=cid, timeout_ms=1))
    assert (result.status, result.reason, result.announcement) == (cc.ROUTING_STATUS_REJECTED, reason, rejected.announcement)
    with pytest.raises(grpc.aio.AioRpcError) as err:  # nothing to qualify
        await stub.SubmitAnswers(cc.SubmitAnswersRequest(call_id=cid, complete=True))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    return rejected.detail


async def test_blocked_exact_number(stub, kafka):
    detail = await assert_rejected(stub, kafka, "(310) 555-0000", STRICT, "blocked", "strict")
    assert "number +13105550000" in detail and "global blocklist" in detail


async def test_blocked_prefix(stub, kafka):
    detail = await assert_rejected(stub, kafka, "+13125551234", LENIENT, "blocked", "lenient")
    assert "prefix +1312555" in detail and "global blocklist" in detail


async def test_blocked_area_code_on_the_campaign_list(stub, kafka):
    detail = await assert_rejected(stub, kafka, "+12135551234", STRICT, "blocked", "strict")
    assert "area code 213" in detail and "campaign strict" in detail
    # the same caller is fine on a campaign without that list
    resp = await stub.StartCall(cc.StartCallRequest(caller_number="+12135551234", dialed_number=LENIENT))
    assert resp.accepted


async def test_invalid_number_rejected(stub, kafka):
    detail = await assert_rejected(stub, kafka, "+11555551234", STRICT, "invalid_number", "strict")
    assert "+11555551234" in detail


async def test_invalid_number_allowed_when_the_campaign_allows_it(stub, kafka):
    cid = new_call_id()
    resp = await stub.StartCall(cc.StartCallRequest(caller_number="+11555551234", dialed_number=LENIENT, call_id=cid))
    assert (resp.accepted, resp.reject_reason, resp.campaign_id) == (True, "", "lenient")
    [started] = await wait_event(kafka, CALL_STARTED, lambda e: e.call_id == cid)
    assert (started.caller.number, started.caller.area_code) == ("+11555551234", "")
    pending = await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=cid, timeout_ms=1))
    assert pending.status == cc.ROUTING_STATUS_PENDING
    await stub.SubmitAnswers(cc.SubmitAnswersRequest(call_id=cid, complete=True))


async def test_start_call_retry_of_a_rejected_call_answers_the_same(stub, kafka):
    cid = new_call_id()
    for _ in range(2):
        resp = await stub.StartCall(cc.StartCallRequest(caller_number="+12135551234", dialed_number=STRICT, call_id=cid))
        assert (resp.accepted, resp.reject_reason, resp.campaign_id) == (False, "blocked", "strict")
