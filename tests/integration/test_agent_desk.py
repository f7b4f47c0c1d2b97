"""AgentDesk (gRPC, the queue process) with the real broker: login, offers on Work, wrap-up, dispositions, heartbeat."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest

from switchboard.platform import codec
from switchboard.platform.topics import AGENT_EVENTS, CALL_ENDED, CALL_QUEUED, CALL_ROUTED, CALLBACK_REQUESTED, QUEUE_STATUS
from switchboard.v1 import agent_desk_pb2 as dpb
from switchboard.v1 import agent_desk_pb2_grpc as dgrpc
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

CONFIG = """
version: 1
queues:
  - {id: desk, max_wait_s: 600, wrap_up_s: 600}
  - {id: beat, max_wait_s: 600}
agents:
  - {id: d1, queues: [desk], login: desk}
  - {id: hb1, queues: [beat], login: desk}
  - {id: always1, queues: [beat]}
"""


@pytest.fixture(scope="module")
def queue_service(broker, tmp_path_factory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("queue-desk")
    config = workdir / "acd.yaml"
    config.write_text(CONFIG)
    env = service_env(
        broker.kafka_settings(),
        config,
        SWITCHBOARD_QUEUE_SWEEP_INTERVAL_S="0.1",
        SWITCHBOARD_QUEUE_AGENT_HEARTBEAT_S="1",
    )
    with running_service("queue", env, workdir) as service:
        yield service


def queued(call_id: str, queue_id: str) -> pb.CallQueued:
    return pb.CallQueued(
        event_id=codec.new_id(),
        call_id=call_id,
        occurred_at=codec.now_ts(),
        campaign_id="solar-ca",
        publisher_id="solar-media",
        queue_id=queue_id,
        tier_index=1,
        attempt=1,
        caller=pb.Caller(number="+13105551234"),
        answers={"zip": "90210"},
    )


def ended(call_id: str) -> pb.CallEnded:
    return pb.CallEnded(
        event_id=codec.new_id(),
        call_id=call_id,
        occurred_at=codec.now_ts(),
        outcome=pb.CALL_OUTCOME_ANSWERED,
        connected_seconds=30,
    )


def desk_stub(service: ServiceProcess) -> tuple[grpc.aio.Channel, dgrpc.AgentDeskStub]:
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.info['desk_port']}")
    return channel, dgrpc.AgentDeskStub(channel)


async def test_login_offer_on_work_wrap_up_and_disposition(queue_service, bus, kafka):
    channel, stub = desk_stub(queue_service)
    async with channel:
        status = await stub.Login(dpb.AgentLoginRequest(agent_id="d1", ready=True))
        assert status.state == pb.AGENT_STATE_READY
        # Acknowledged: its agent.events record is published (after the snapshot holding it).
        [login] = await wait_event(kafka, AGENT_EVENTS, lambda e: e.agent_id == "d1")
        assert (login.previous_state, login.state) == (pb.AGENT_STATE_LOGGED_OUT, pb.AGENT_STATE_READY)
        work = stub.Work(dpb.AgentRequest(agent_id="d1"))
        first = await work.read()
        assert first.status.state == pb.AGENT_STATE_READY

        call_id = new_call_id()
        await bus.publish(CALL_QUEUED, queued(call_id, "desk"))
        # The offer comes after its call.routed is published.
        while True:
            push = await work.read()
            if push.HasField("offer"):
                break
        assert (push.offer.call_id, push.offer.queue_id, push.offer.caller_number) == (call_id, "desk", "+13105551234")
        [routed] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == call_id)
        assert routed.agent_id == "d1"

        await bus.publish(CALL_ENDED, ended(call_id))
        while True:
            push = await work.read()
            if push.HasField("status") and push.status.state == pb.AGENT_STATE_WRAP_UP:
                break
        assert push.status.call_id == call_id
        assert push.status.HasField("wrap_up_until")

        done = await stub.EndWrapUp(dpb.EndWrapUpRequest(agent_id="d1", call_id=call_id, disposition="sale", note="2 panels"))
        assert done.state == pb.AGENT_STATE_READY
        work.cancel()

        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.EndWrapUp(dpb.EndWrapUpRequest(agent_id="d1", disposition="sale"))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "not in wrap-up" in (e.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.GetAgent(dpb.AgentRequest(agent_id="nobody"))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.Logout(dpb.AgentRequest(agent_id="always1"))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    events = await wait_event(kafka, AGENT_EVENTS, lambda e: e.agent_id == "d1", count=4, timeout_s=5)
    assert [(e.previous_state, e.state) for e in events[:4]] == [
        (pb.AGENT_STATE_LOGGED_OUT, pb.AGENT_STATE_READY),
        (pb.AGENT_STATE_READY, pb.AGENT_STATE_ON_CALL),
        (pb.AGENT_STATE_ON_CALL, pb.AGENT_STATE_WRAP_UP),
        (pb.AGENT_STATE_WRAP_UP, pb.AGENT_STATE_READY),
    ]
    assert (events[3].call_id, events[3].disposition, events[3].note) == (call_id, "sale", "2 panels")
    assert list(events[3].queue_ids) == ["desk"]


async def test_an_agent_without_work_stream_or_heartbeat_is_logged_out(queue_service, kafka):
    channel, stub = desk_stub(queue_service)
    async with channel:
        await stub.Login(dpb.AgentLoginRequest(agent_id="hb1", ready=True))
        [out] = await wait_event(kafka, AGENT_EVENTS, lambda e: e.agent_id == "hb1" and e.state == pb.AGENT_STATE_LOGGED_OUT)
        assert out.reason == "heartbeat"
        status = await stub.GetAgent(dpb.AgentRequest(agent_id="hb1"))
        assert (status.state, status.reason) == (pb.AGENT_STATE_LOGGED_OUT, "heartbeat")
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await stub.Heartbeat(dpb.AgentRequest(agent_id="hb1"))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await asyncio.sleep(0)


KILL_CONFIG = """
version: 1
queues:
  - {id: kw, max_wait_s: 600, wrap_up_s: 600}
  - {id: kb, max_wait_s: 600, callback_offer_after_s: 0}
agents:
  - {id: k1, queues: [kw], login: desk}
  - {id: kb1, queues: [kb]}
"""


async def test_kill_9_in_wrap_up_with_a_callback_pending_keeps_both_and_books_nobody_twice(broker, kafka, bus, tmp_path):
    """One SIGKILL with an agent in wrap-up (queue kw) and a callback on virtual hold (queue kb) at once."""
    from tests.integration.test_queue_restart import callback_requested, start_group_at_end

    config = tmp_path / "acd.yaml"
    config.write_text(KILL_CONFIG)
    group = f"queue-desk-kill-{codec.new_id()[:8]}"
    env = service_env(
        kafka,
        config,
        SWITCHBOARD_QUEUE_GROUP_ID=group,
        SWITCHBOARD_QUEUE_SWEEP_INTERVAL_S="0.1",
        SWITCHBOARD_QUEUE_AGENT_HEARTBEAT_S="600",
    )
    await start_group_at_end(kafka, group)
    first = start_service("queue", env, tmp_path, log=tmp_path / "queue-1.log")
    second = None
    try:
        c1, c2 = new_call_id(), new_call_id()
        channel, stub = desk_stub(first)
        async with channel:
            await stub.Login(dpb.AgentLoginRequest(agent_id="k1", ready=True))
            await bus.publish(CALL_QUEUED, queued(c1, "kw"))
            await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == c1)
            await bus.publish(CALL_ENDED, ended(c1))
            await wait_event(kafka, AGENT_EVENTS, lambda e: e.agent_id == "k1" and e.state == pb.AGENT_STATE_WRAP_UP)
            await bus.publish(CALL_QUEUED, queued(c2, "kw"))
            status = await stub.GetAgent(dpb.AgentRequest(agent_id="k1"))
            assert status.state == pb.AGENT_STATE_WRAP_UP
        # Queue kb: its one agent busy, a caller waiting who accepted a callback.
        busy, held = new_call_id(), new_call_id()
        await bus.publish(CALL_QUEUED, queued(busy, "kb"))
        [on_kb1] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == busy)
        await bus.publish(CALL_QUEUED, queued(held, "kb"))
        await wait_event(kafka, QUEUE_STATUS, lambda e: e.call_id == held)
        await bus.publish(CALLBACK_REQUESTED, callback_requested(held, "kb"))
        await wait_event(kafka, QUEUE_STATUS, lambda e: e.call_id == held and e.kind == pb.QUEUE_STATUS_KIND_CALLBACK_ACCEPTED)
        first.kill()
        second = start_service("queue", env, tmp_path, log=tmp_path / "queue-2.log")
        channel, stub = desk_stub(second)
        async with channel:
            status = await stub.GetAgent(dpb.AgentRequest(agent_id="k1"))
            assert (status.state, status.call_id) == (pb.AGENT_STATE_WRAP_UP, c1)
            done = await stub.EndWrapUp(dpb.EndWrapUpRequest(agent_id="k1", call_id=c1, disposition="no_sale"))
            assert done.state in (pb.AGENT_STATE_READY, pb.AGENT_STATE_ON_CALL)
        [routed] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == c2)
        assert routed.agent_id == "k1"
        ended_wrap = await wait_event(
            kafka, AGENT_EVENTS, lambda e: e.agent_id == "k1" and e.previous_state == pb.AGENT_STATE_WRAP_UP
        )
        assert [(e.call_id, e.disposition) for e in ended_wrap] == [(c1, "no_sale")]
        # Nobody double-booked: c2 went to k1 once, and only after its wrap-up ended.
        assert len(await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == c2)) == 1
        # The callback survived too: placed to kb1 once its call ends, once.
        busy_end = ended(busy)
        busy_end.attempt = on_kb1.attempt
        await bus.publish(CALL_ENDED, busy_end)
        [placed] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == held)
        assert (placed.agent_id, placed.callback_attempt) == ("kb1", 1)
        tail = new_call_id()
        await bus.publish(CALL_QUEUED, queued(tail, "kw"))  # k1 is on c2: tail waits, its status marks "read up to here"
        await wait_event(kafka, QUEUE_STATUS, lambda e: e.call_id == tail)
        assert len({e.event_id for e in await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == held)}) == 1
    finally:
        first.kill()
        if second is not None:
            assert_clean_exit(second)
