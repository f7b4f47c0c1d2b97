"""The ivr's side of the ACD as a real process: waiting callers hear queue.status (WAITING results), accept a
callback (RequestCallback → callback.requested, virtual hold) and are called back (WatchCallbacks).

The test plays the queue: it publishes QueueStatus and CallRouted (callback_attempt > 0) on the real broker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from switchboard.platform.topics import CALL_ENDED, CALLBACK_REQUESTED
from switchboard.v1 import call_control_pb2 as cc
from switchboard.v1 import call_control_pb2_grpc as cc_grpc
from switchboard.v1 import events_pb2 as pb
from tests.support import (
    ServiceProcess,
    event_bus,
    new_call_id,
    publish_agent_offer,
    publish_queue_status,
    read_all,
    running_service,
    service_env,
    wait_event,
)

pytestmark = pytest.mark.integration

NUMBER = "+18885550777"
CALLER = "+13105551234"
CONFIG = """\
version: 1
publishers:
  - {id: pub, name: Pub}
campaigns:
  - id: inhouse
    name: In-house
    numbers: ["+18885550777"]
    publisher: pub
    routing:
      tiers:
        - {strategy: queue, queue: sales}
queues:
  - id: sales
    max_wait_s: 600
    callback_offer_after_s: 60
    timezone: America/New_York
    announcements:
      es: {waiting: "Lugar {position}, unos {minutes}."}
agents:
  - {id: ana, queues: [sales], destination: "sip:ana@switchboard.local"}
"""


@pytest.fixture(scope="module")
def ivr(broker, tmp_path_factory) -> Iterator[ServiceProcess]:
    work: Path = tmp_path_factory.mktemp("ivr-waiting")
    (work / "acd.yaml").write_text(CONFIG)
    env = service_env(broker.kafka_settings(), work / "acd.yaml", SWITCHBOARD_IVR_AWAIT_TIMEOUT_MS="300")
    with running_service("ivr", env, work) as service:
        yield service


@pytest.fixture
async def stub(ivr) -> AsyncIterator[cc_grpc.CallControlStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ivr.info['grpc_port']}") as channel:
        yield cc_grpc.CallControlStub(channel)


async def _waiting_call(stub: cc_grpc.CallControlStub, answers: dict[str, str] | None = None) -> str:
    cid = new_call_id()
    await stub.StartCall(cc.StartCallRequest(caller_number=CALLER, dialed_number=NUMBER, call_id=cid))
    await stub.SubmitAnswers(cc.SubmitAnswersRequest(call_id=cid, answers=answers or {}, complete=True))
    return cid


async def _await(stub: cc_grpc.CallControlStub, cid: str, timeout_ms: int = 20_000) -> cc.RoutingResult:
    return await stub.AwaitRouting(cc.AwaitRoutingRequest(call_id=cid, timeout_ms=timeout_ms))


async def _code(coro: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await coro  # type: ignore[misc]
    return err.value.code()


@contextlib.asynccontextmanager
async def _watch(stub: cc_grpc.CallControlStub) -> AsyncIterator[asyncio.Queue[cc.CallbackPlacement]]:
    """A WatchCallbacks stream read into a queue; cancelled on exit (the edge going away)."""
    got: asyncio.Queue[cc.CallbackPlacement] = asyncio.Queue()
    stream = stub.WatchCallbacks(cc.WatchCallbacksRequest())

    async def read() -> None:
        async for placement in stream:
            await got.put(placement)

    task = asyncio.create_task(read())
    try:
        yield got
    finally:
        stream.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await task


async def _next(got: asyncio.Queue[cc.CallbackPlacement], cid: str) -> cc.CallbackPlacement:
    while True:
        placement = await asyncio.wait_for(got.get(), 20)
        if placement.call_id == cid:
            return placement


# -- tests ---------------------------------------------------------------------------------------
async def test_waiting_results_say_each_newer_status_once_and_a_decision_wins(stub, kafka):
    cid = await _waiting_call(stub)
    async with event_bus(kafka) as bus:
        await publish_queue_status(bus, cid, 3, 125)
        first = await _await(stub, cid)
        assert (first.status, first.queue_position, first.projected_wait_s, first.callback_offered) == (
            cc.ROUTING_STATUS_WAITING,
            3,
            125,
            False,
        )
        assert first.announcement == "You are number 3 in line. Your expected wait is 3 minutes."
        # Nothing newer: the same status is not said again.
        assert (await _await(stub, cid, 300)).status == cc.ROUTING_STATUS_PENDING
        await publish_queue_status(bus, cid, 1, -1)
        second = await _await(stub, cid)
        assert (second.status, second.queue_position, second.projected_wait_s) == (cc.ROUTING_STATUS_WAITING, 1, -1)
        assert "number 1 in line" in second.announcement and "minute" not in second.announcement
        # An agent takes the call: ROUTED, also when a status arrives after it.
        await publish_agent_offer(bus, cid, attempt=1)
        routed = await _await(stub, cid)
        assert (routed.status, routed.agent_id) == (cc.ROUTING_STATUS_ROUTED, "ana")
        await publish_queue_status(bus, cid, 1, 30)
        assert (await _await(stub, cid, 300)).status == cc.ROUTING_STATUS_ROUTED
    await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_ANSWERED, connected_seconds=5))


async def test_waiting_announcement_in_the_call_language_with_the_queue_override(stub, kafka):
    cid = await _waiting_call(stub, {"language": "es"})
    async with event_bus(kafka) as bus:
        await publish_queue_status(bus, cid, 2, 30, offered=True)
        result = await _await(stub, cid)
    assert result.status == cc.ROUTING_STATUS_WAITING and result.callback_offered
    assert result.announcement.startswith("Lugar 2, unos menos de un minuto.")
    assert "oprima 1 o diga sí" in result.announcement  # the built-in offer: the queue overrides only `waiting`
    await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_CALLER_HANGUP))


async def test_callback_refused_until_offered_and_bad_times_refused(stub, kafka):
    cid = await _waiting_call(stub)
    assert await _code(stub.RequestCallback(cc.RequestCallbackRequest(call_id=cid))) == grpc.StatusCode.FAILED_PRECONDITION
    async with event_bus(kafka) as bus:
        await publish_queue_status(bus, cid, 4, 300)
        await _await(stub, cid)
        assert await _code(stub.RequestCallback(cc.RequestCallbackRequest(call_id=cid))) == grpc.StatusCode.FAILED_PRECONDITION
        await publish_queue_status(bus, cid, 4, 300, offered=True)
        offered = await _await(stub, cid)
    assert offered.callback_offered and offered.announcement.endswith("press 1 or say yes.")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RequestCallback(cc.RequestCallbackRequest(call_id=cid, at_local="25:99"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "HH:MM" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RequestCallback(cc.RequestCallbackRequest(call_id=cid, at_local="2020-01-01 10:00"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "past" in (err.value.details() or "")
    # A time of day resolves to its next occurrence in the queue's timezone.
    accepted = await stub.RequestCallback(cc.RequestCallbackRequest(call_id=cid, at_local="17:30"))
    assert accepted.at_local.endswith(" 17:30") and len(accepted.at_local) == 16
    assert f"at 17:30 on {accepted.at_local[:10]}" in accepted.announcement
    [requested] = await wait_event(kafka, CALLBACK_REQUESTED, lambda e: e.call_id == cid)
    assert (requested.queue_id, requested.at_local) == ("sales", accepted.at_local)
    await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_CALLER_HANGUP))


async def test_callback_accepted_placed_not_answered_then_answered(stub, kafka):
    cid = await _waiting_call(stub)
    async with event_bus(kafka) as bus:
        await publish_queue_status(bus, cid, 6, 900, offered=True)
        assert (await _await(stub, cid)).callback_offered
        accepted = await stub.RequestCallback(cc.RequestCallbackRequest(call_id=cid))
        assert accepted.at_local == "" and "as soon as an agent is free" in accepted.announcement
        again = await stub.RequestCallback(cc.RequestCallbackRequest(call_id=cid))  # a retried RPC
        assert again.announcement == accepted.announcement
        # The caller's leg ends; an edge that reports that hang-up does not end the call on virtual hold.
        await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_CALLER_HANGUP))
        requested = await wait_event(kafka, CALLBACK_REQUESTED, lambda e: e.call_id == cid, count=2)
        assert len({e.event_id for e in requested}) == 1  # one event for the two RPCs

        async with _watch(stub) as got:
            await publish_agent_offer(bus, cid, attempt=1, callback_attempt=1)
            placement = await _next(got, cid)
        assert (
            placement.caller_number,
            placement.dialed_number,
            placement.destination,
            placement.agent_id,
            placement.attempt,
            placement.callback_attempt,
            placement.language,
        ) == (CALLER, NUMBER, "sip:ana@switchboard.local", "ana", 1, 1, "en")
        assert placement.announcement.startswith("Hello, this is your callback.")

        # The edge was gone before reporting: a reopened stream gets the placement again.
        async with _watch(stub) as got:
            assert (await _next(got, cid)).attempt == 1
            await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_CALLBACK_NO_ANSWER))
        [no_answer] = await wait_event(
            kafka, CALL_ENDED, lambda e: e.call_id == cid and e.outcome == pb.CALL_OUTCOME_CALLBACK_NO_ANSWER
        )
        assert (no_answer.attempt, no_answer.agent_id) == (1, "ana")

        # The retry comes while no edge listens: sent when a stream opens.
        await publish_agent_offer(bus, cid, attempt=2, callback_attempt=2)
        async with _watch(stub) as got:
            retry = await _next(got, cid)
            assert (retry.attempt, retry.callback_attempt) == (2, 2)
            await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_ANSWERED, connected_seconds=42))
    [answered] = await wait_event(kafka, CALL_ENDED, lambda e: e.call_id == cid and e.outcome == pb.CALL_OUTCOME_ANSWERED)
    assert (answered.attempt, answered.connected_seconds, answered.agent_id) == (2, 42, "ana")
    assert await _code(_await(stub, cid, 1)) == grpc.StatusCode.NOT_FOUND
    # The hang-up of the caller's own leg published nothing.
    ended = await read_all(kafka, CALL_ENDED, lambda e: e.call_id == cid)
    assert sorted(e.outcome for e in ended) == [pb.CALL_OUTCOME_ANSWERED, pb.CALL_OUTCOME_CALLBACK_NO_ANSWER]


async def test_callback_no_answer_is_refused_for_an_offer_that_is_no_callback(stub, kafka):
    cid = await _waiting_call(stub)
    async with event_bus(kafka) as bus:
        await publish_agent_offer(bus, cid, attempt=1)
        assert (await _await(stub, cid)).status == cc.ROUTING_STATUS_ROUTED
    code = await _code(stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_CALLBACK_NO_ANSWER)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    await stub.ReportOutcome(cc.ReportOutcomeRequest(call_id=cid, outcome=pb.CALL_OUTCOME_ANSWERED, connected_seconds=3))
