"""IVR flows and duplicate callers through the ivr process: gRPC prompts in, events on the broker out."""

from __future__ import annotations

import random
from collections.abc import Iterator

import grpc
import pytest

from switchboard.platform.topics import CALL_ENDED, CALL_REJECTED, CALL_STARTED, CALLERS_SEEN, IVR_COMPLETED
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import call_control_pb2_grpc as cc_grpc
from switchboard.v1 import events_pb2 as pb
from tests.support import (
    ServiceProcess,
    assert_clean_exit,
    new_call_id,
    read_all,
    running_service,
    service_env,
    start_service,
    wait_event,
)

pytestmark = pytest.mark.integration

QUALIFY = "+18885550301"  # campaign qualify: runs the flow, duplicate_window 1h
PLAIN = "+18885550302"  # campaign plain: no flow, no window
DIGITS, SPEECH = cc.INPUT_KIND_DIGITS, cc.INPUT_KIND_SPEECH

CONFIG = f"""version: 1
publishers: [{{id: pub}}]
buyers: [{{id: b, destination: "+18005550100", bid: {{type: static, price: 10}}}}]
campaigns:
  - id: qualify
    numbers: ["{QUALIFY}"]
    publisher: pub
    ivr: flow
    duplicate_window: 1h
    routing: {{tiers: [{{strategy: price, buyers: [b]}}]}}
  - id: plain
    numbers: ["{PLAIN}"]
    publisher: pub
    routing: {{tiers: [{{strategy: price, buyers: [b]}}]}}
ivr_flows:
  - id: flow
    start: language
    nodes:
      language:
        type: set_language
        prompt: "For English press 1. Para español oprima 2."
        options: {{1: en, 2: {{language: es, say: [espanol]}}}}
        next: homeowner
      homeowner:
        type: question
        prompt: {{en: "Do you own your home?", es: "¿Es dueño de su casa?"}}
        answer_key: homeowner
        validate: {{yes_no: true}}
        retries: 1
        next: zip
      zip:
        type: question
        prompt: {{en: "Your ZIP code?", es: "¿Su código postal?"}}
        answer_key: zip
        validate: {{pattern: '\\d{{5}}'}}
        next: bill
      bill:
        type: question
        prompt: {{en: "Monthly bill?", es: "¿Factura mensual?"}}
        answer_key: monthly_bill
        validate: {{min: 0, max: 5000}}
        branches: [{{when: {{lt: 50}}, goto: low}}]
        next: done
      done: {{type: end, result: qualified, prompt: {{en: "Connecting you.", es: "Le comunicamos."}}}}
      low: {{type: end, result: disqualified, reason: low_bill, prompt: {{en: "Sorry, no savings.", es: "Lo sentimos."}}}}
"""


def new_caller() -> str:
    """A fresh valid Los Angeles number: the broker (and ivr.callers) is shared by the whole session."""
    return f"+1213{random.randint(200, 999)}{random.randint(0, 9999):04d}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ivr-flow")
    (workdir / "routing.yaml").write_text(CONFIG)
    return workdir


@pytest.fixture(scope="module")
def ivr(broker, workdir) -> Iterator[ServiceProcess]:
    env = service_env(broker.kafka_settings(), workdir / "routing.yaml", SWITCHBOARD_IVR_AWAIT_TIMEOUT_MS="300")
    with running_service("ivr", env, workdir) as service:
        yield service


@pytest.fixture
async def stub(ivr) -> cc_grpc.CallControlStub:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ivr.info['grpc_port']}") as channel:
        yield cc_grpc.CallControlStub(channel)


async def say(stub, prompt: cc.IvrPrompt, text: str, kind: int = DIGITS) -> cc.IvrPrompt:
    return await stub.SubmitInput(cc.SubmitInputRequest(call_id=prompt.call_id, node=prompt.node, kind=kind, input=text))


async def test_spanish_caller_answers_by_keypad_and_speech_and_qualifies(stub, kafka):
    cid, caller = new_call_id(), new_caller()
    start = await stub.StartCall(cc.StartCallRequest(caller_number=caller, dialed_number=QUALIFY, call_id=cid))
    assert (start.accepted, start.ivr_flow, start.prompt.node, start.prompt.language) == (True, "flow", "language", "en")
    assert start.prompt.text.startswith("For English") and dict(start.prompt.choices) == {"1": "en", "2": "es"}
    assert (start.prompt.expects, start.prompt.num_digits, start.prompt.finished) == (cc.INPUT_KIND_DIGITS_OR_SPEECH, 1, False)
    assert (await stub.NextPrompt(cc.NextPromptRequest(call_id=cid))).node == "language"

    p = await say(stub, start.prompt, "espanol", SPEECH)
    assert (p.node, p.language, p.text, p.answer_key) == ("homeowner", "es", "¿Es dueño de su casa?", "homeowner")
    p = await say(stub, p, "1")
    assert p.node == "zip"
    p = await say(stub, p, "90210")
    assert p.node == "bill"
    p = await say(stub, p, "one hundred twenty", SPEECH)
    assert (p.finished, p.qualified, p.node, p.text) == (True, True, "done", "Le comunicamos.")

    [done] = await wait_event(kafka, IVR_COMPLETED, lambda e: e.call_id == cid)
    assert dict(done.answers) == {"language": "es", "homeowner": "yes", "zip": "90210", "monthly_bill": "120"}
    assert (done.caller.zip, done.caller.state, done.campaign_id, done.qualified) == ("90210", "CA", "qualify", True)
    # A retried input after the end changes nothing and publishes nothing again.
    again = await say(stub, p, "5")
    assert (again.finished, again.qualified) == (True, True)
    assert len(await read_all(kafka, IVR_COMPLETED, lambda e: e.call_id == cid)) == 1


async def test_invalid_input_reprompts_then_a_low_bill_ends_disqualified(stub, kafka):
    cid = new_call_id()
    start = await stub.StartCall(cc.StartCallRequest(caller_number=new_caller(), dialed_number=QUALIFY, call_id=cid))
    p = await say(stub, start.prompt, "1")
    bad = await say(stub, p, "7")  # not yes (1) or no (2): the same question again
    assert (bad.node, bad.attempt, bad.finished) == ("homeowner", 2, False)
    p = await say(stub, bad, "yes", SPEECH)
    p = await say(stub, p, "90001")
    end = await say(stub, p, "20")
    assert (end.finished, end.qualified, end.reason, end.text) == (True, False, "low_bill", "Sorry, no savings.")

    [rejected] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == cid)
    assert (rejected.reason, rejected.announcement, rejected.campaign_id) == ("disqualified", "Sorry, no savings.", "qualify")
    assert "low_bill" in rejected.detail
    result = await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=cid, timeout_ms=1))
    assert (result.status, result.reason) == (cc.ROUTING_STATUS_REJECTED, "disqualified")
    assert await read_all(kafka, IVR_COMPLETED, lambda e: e.call_id == cid) == []


async def test_a_caller_who_hangs_up_in_the_ivr_is_rejected_abandoned(stub, kafka):
    """Nobody else would end the call (no ivr.completed): the ivr itself gives its one outcome."""
    cid = new_call_id()
    start = await stub.StartCall(cc.StartCallRequest(caller_number=new_caller(), dialed_number=QUALIFY, call_id=cid))
    p = await say(stub, start.prompt, "1")
    assert p.node == "homeowner"
    await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_CALLER_HANGUP))
    [rejected] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == cid)
    assert (rejected.reason, rejected.detail, rejected.campaign_id) == (
        "abandoned",
        "the caller hung up in the IVR, at IVR node 'homeowner'",
        "qualify",
    )
    [ended] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == cid)
    assert (ended.outcome, ended.attempt, ended.routing_pending) == (pb.CALL_OUTCOME_CALLER_HANGUP, 0, False)
    assert await read_all(kafka, IVR_COMPLETED, lambda e: e.call_id == cid) == []
    # A retried report is answered from memory and publishes nothing again.
    await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_CALLER_HANGUP))
    assert len(await read_all(kafka, CALL_REJECTED, lambda e: e.call_id == cid)) == 1


async def test_a_caller_who_hangs_up_after_qualifying_leaves_it_to_the_router(stub, kafka):
    """After ivr.completed the router owns the outcome: call.ended says routing was pending, the ivr rejects nothing."""
    start = await stub.StartCall(cc.StartCallRequest(caller_number=new_caller(), dialed_number=PLAIN))
    await stub.SubmitAnswers(cc.SubmitAnswersRequest(call_id=start.call_id, complete=True))
    await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=start.call_id, outcome=pb.CALL_OUTCOME_CALLER_HANGUP))
    [ended] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == start.call_id)
    assert (ended.attempt, ended.routing_pending) == (0, True)
    assert await read_all(kafka, CALL_REJECTED, lambda e: e.call_id == start.call_id) == []


async def test_flow_calls_refuse_out_of_turn_requests(stub):
    cid = new_call_id()
    start = await stub.StartCall(cc.StartCallRequest(caller_number=new_caller(), dialed_number=QUALIFY, call_id=cid))
    with pytest.raises(grpc.aio.AioRpcError) as err:  # the flow decides when the call is qualified
        await stub.SubmitAnswers(cc.SubmitAnswersRequest(call_id=cid, answers={"homeowner": "yes"}, complete=True))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "SubmitInput" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:  # answering a node the call is not at
        await stub.SubmitInput(cc.SubmitInputRequest(call_id=cid, node="zip", kind=DIGITS, input="90210"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "'language'" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SubmitInput(cc.SubmitInputRequest(call_id=cid, input="1"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "kind" in err.value.details()
    assert (await say(stub, start.prompt, "2")).language == "es"

    plain = await stub.StartCall(cc.StartCallRequest(caller_number=new_caller(), dialed_number=PLAIN))
    assert (plain.accepted, plain.ivr_flow, plain.HasField("prompt")) == (True, "", False)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.NextPrompt(cc.NextPromptRequest(call_id=plain.call_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "no IVR flow" in err.value.details()


async def test_duplicate_caller_is_rejected_also_after_a_restart(stub, kafka, broker, workdir):
    caller = new_caller()
    first = await stub.StartCall(cc.StartCallRequest(caller_number=caller, dialed_number=QUALIFY, call_id=new_call_id()))
    assert first.accepted
    [seen] = await wait_event(kafka, CALLERS_SEEN, lambda e: e.call_id == first.call_id)
    assert (seen.campaign_id, seen.caller_number) == ("qualify", caller)

    cid = new_call_id()
    dup = await stub.StartCall(cc.StartCallRequest(caller_number=caller, dialed_number=QUALIFY, call_id=cid))
    assert (dup.accepted, dup.reject_reason) == (False, "duplicate") and dup.announcement
    [started] = await wait_event(kafka, CALL_STARTED, lambda e: e.call_id == cid)
    [rejected] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == cid)
    assert rejected.reason == "duplicate" and caller in rejected.detail and "1h" in rejected.detail
    assert rejected.call_started_at == started.occurred_at
    # A refused duplicate does not open a window of its own.
    assert await read_all(kafka, CALLERS_SEEN, lambda e: e.call_id == cid) == []
    # The window is per campaign: the same caller on a campaign without one goes through.
    assert (await stub.StartCall(cc.StartCallRequest(caller_number=caller, dialed_number=PLAIN))).accepted

    # A second ivr instance (as after a restart or a scale-out) reads the callers back from the broker.
    env = service_env(broker.kafka_settings(), workdir / "routing.yaml", SWITCHBOARD_IVR_AWAIT_TIMEOUT_MS="300")
    other_dir = workdir / "second"
    other_dir.mkdir()
    other = start_service("ivr", env, other_dir)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{other.info['grpc_port']}") as channel:
            stub2 = cc_grpc.CallControlStub(channel)
            again = await stub2.StartCall(cc.StartCallRequest(caller_number=caller, dialed_number=QUALIFY))
            assert (again.accepted, again.reject_reason) == (False, "duplicate")
            fresh = await stub2.StartCall(cc.StartCallRequest(caller_number=new_caller(), dialed_number=QUALIFY))
            assert fresh.accepted
    finally:
        assert_clean_exit(other)
