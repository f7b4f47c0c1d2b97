"""Queue statuses, summaries and callbacks through the topics, with the real queue process and broker.

The test plays the router (call.queued), the ivr (callback.requested) and the edge (call.ended,
CALL_OUTCOME_CALLBACK_NO_ANSWER) and reads call.routed / queue.status / queue.summary / call.rejected
back (docs/ACD.md, Announcements and Callbacks). A kill -9 with callbacks pending is in
test_queue_restart.py (its queue instances must not share the broker with this module's).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from switchboard.core import reasons
from switchboard.platform import codec
from switchboard.platform.topics import (
    CALL_ENDED,
    CALL_QUEUED,
    CALL_REJECTED,
    CALL_ROUTED,
    CALLBACK_REQUESTED,
    DEAD_LETTER,
    QUEUE_STATUS,
    QUEUE_SUMMARY,
)
from switchboard.v1 import events_pb2 as pb
from tests.integration.test_queue_service import ended, queued
from tests.support import ServiceProcess, new_call_id, read_all, running_service, service_env, wait_event

pytestmark = pytest.mark.integration

TZ = "America/New_York"
CONFIG = f"""
version: 1
queues:
  - {{id: cb, max_wait_s: 4, announce_every_s: 1, callback_offer_after_s: 10, callback_retries: 1,
     callback_retry_after_s: 1}}
  - {{id: sched, max_wait_s: 300, callback_offer_after_s: 0, timezone: {TZ}}}
  - {{id: bad, max_wait_s: 300, callback_offer_after_s: 0}}
agents:
  - {{id: cb1, queues: [cb]}}
  - {{id: sc1, queues: [sched]}}
  - {{id: bad1, queues: [bad]}}
"""


@pytest.fixture(scope="module")
def queue_service(broker, tmp_path_factory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("queue-callbacks")
    config = workdir / "acd.yaml"
    config.write_text(CONFIG)
    env = service_env(broker.kafka_settings(), config, SWITCHBOARD_QUEUE_SWEEP_INTERVAL_S="0.1")
    with running_service("queue", env, workdir) as service:
        yield service


def requested(call_id: str, queue_id: str, at_local: str = "") -> pb.CallbackRequested:
    return pb.CallbackRequested(
        event_id=codec.new_id(), call_id=call_id, occurred_at=codec.now_ts(), queue_id=queue_id, at_local=at_local
    )


async def routed(kafka, call_id: str, count: int = 1) -> list[pb.CallRouted]:
    return await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == call_id, count=count)


async def status(kafka, call_id: str, kind: int, count: int = 1) -> list[pb.QueueStatus]:
    return await wait_event(kafka, QUEUE_STATUS, lambda e: e.call_id == call_id and e.kind == kind, count=count)


async def learn_handle_time(bus, kafka, queue_id: str) -> None:
    """One answered call of 30 s: the queue knows its handle time, projected waits are known."""
    warm = new_call_id()
    await bus.publish(CALL_QUEUED, queued(warm, queue_id))
    [r] = await routed(kafka, warm)
    await bus.publish(CALL_ENDED, ended(warm, attempt=r.attempt))


async def test_waiting_statuses_offer_accept_virtual_hold_retry_then_callback_failed(queue_service, bus, kafka):
    await learn_handle_time(bus, kafka, "cb")
    busy, caller = new_call_id(), new_call_id()
    await bus.publish(CALL_QUEUED, queued(busy, "cb"))
    [on_agent] = await routed(kafka, busy)
    await bus.publish(CALL_QUEUED, queued(caller, "cb"))
    # Place 1 behind one busy slot of 30 s: 30 s projected, above callback_offer_after_s 10.
    [offered] = await status(kafka, caller, pb.QUEUE_STATUS_KIND_CALLBACK_OFFERED)
    assert (offered.queue_id, offered.position, offered.projected_wait_s, offered.waiting) == ("cb", 1, 30, 1)
    assert offered.callback_offered
    # Refreshed every announce_every_s, and the offer stands on later statuses.
    [again] = await status(kafka, caller, pb.QUEUE_STATUS_KIND_WAITING)
    assert again.callback_offered and again.position == 1
    summary = (await wait_event(kafka, QUEUE_SUMMARY, lambda e: e.queue_id == "cb" and e.waiting == 1))[0]
    assert (summary.slots, summary.busy_slots, summary.handle_time_s, summary.projected_wait_s) == (1, 1, 30.0, 60)

    await bus.publish(CALLBACK_REQUESTED, requested(caller, "cb"))
    [accepted] = await status(kafka, caller, pb.QUEUE_STATUS_KIND_CALLBACK_ACCEPTED)
    assert accepted.position == 1 and not accepted.HasField("callback_at")  # as soon as an agent is free
    # The caller hung up on purpose: a hang-up report changes nothing; max_wait_s (4 s) does not apply.
    await bus.publish(CALL_ENDED, ended(caller, pb.CALL_OUTCOME_CALLER_HANGUP, routing_pending=True))
    await wait_event(kafka, QUEUE_SUMMARY, lambda e: e.queue_id == "cb" and e.callbacks_waiting == 1 and e.longest_wait_s >= 5)
    assert await read_all(kafka, CALL_REJECTED, lambda e: e.call_id == caller) == []

    await bus.publish(CALL_ENDED, ended(busy, attempt=on_agent.attempt))
    [first] = await routed(kafka, caller)
    assert (first.agent_id, first.callback_attempt, first.queue_id) == ("cb1", 1, "cb")
    await bus.publish(CALL_ENDED, ended(caller, pb.CALL_OUTCOME_CALLBACK_NO_ANSWER, attempt=first.attempt))
    tries = await routed(kafka, caller, count=2)  # retried after callback_retry_after_s
    assert [(t.callback_attempt, t.attempt) for t in tries] == [(1, first.attempt), (2, first.attempt + 1)]
    await bus.publish(CALL_ENDED, ended(caller, pb.CALL_OUTCOME_CALLBACK_NO_ANSWER, attempt=tries[1].attempt))
    [failed] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == caller)
    assert failed.reason == reasons.CALLBACK_FAILED and "did not answer 2 callback(s)" in failed.detail
    # The agent is free again: the next caller gets it at once.
    nxt = new_call_id()
    await bus.publish(CALL_QUEUED, queued(nxt, "cb"))
    assert (await routed(kafka, nxt))[0].agent_id == "cb1"


async def test_a_scheduled_callback_waits_for_its_time_in_the_queue_timezone(queue_service, bus, kafka):
    busy, later, plain = new_call_id(), new_call_id(), new_call_id()
    await bus.publish(CALL_QUEUED, queued(busy, "sched"))
    [on_agent] = await routed(kafka, busy)
    await bus.publish(CALL_QUEUED, queued(later, "sched"))
    await wait_event(kafka, QUEUE_STATUS, lambda e: e.call_id == later)
    due_local = (datetime.now(UTC) + timedelta(hours=2)).astimezone(ZoneInfo(TZ)).replace(second=0, microsecond=0)
    await bus.publish(CALLBACK_REQUESTED, requested(later, "sched", due_local.strftime("%Y-%m-%d %H:%M")))
    [accepted] = await status(kafka, later, pb.QUEUE_STATUS_KIND_CALLBACK_ACCEPTED)
    assert accepted.callback_at.ToDatetime(tzinfo=UTC) == due_local.astimezone(UTC)
    # A caller queued after it is served first: the callback is not due for two hours.
    await bus.publish(CALL_QUEUED, queued(plain, "sched"))
    await wait_event(kafka, QUEUE_STATUS, lambda e: e.call_id == plain)
    await bus.publish(CALL_ENDED, ended(busy, attempt=on_agent.attempt))
    assert (await routed(kafka, plain))[0].agent_id == "sc1"
    assert await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == later) == []


async def test_a_callback_time_that_is_no_time_is_dead_lettered_and_an_unknown_call_ignored(queue_service, bus, kafka):
    busy, caller = new_call_id(), new_call_id()
    await bus.publish(CALL_QUEUED, queued(busy, "bad"))
    await routed(kafka, busy)
    await bus.publish(CALL_QUEUED, queued(caller, "bad"))
    await wait_event(kafka, QUEUE_STATUS, lambda e: e.call_id == caller)
    await bus.publish(CALLBACK_REQUESTED, requested(caller, "bad", "25:99"))
    [letter] = await wait_event(kafka, DEAD_LETTER, lambda e: e.key == caller.encode())
    assert letter.source_topic == CALLBACK_REQUESTED.name and "is not a time" in letter.reason
    await bus.publish(CALLBACK_REQUESTED, requested(new_call_id(), "bad"))  # served or ended already: ignored
    await bus.publish(CALLBACK_REQUESTED, requested(caller, "bad"))  # a valid one is accepted
    await status(kafka, caller, pb.QUEUE_STATUS_KIND_CALLBACK_ACCEPTED)
