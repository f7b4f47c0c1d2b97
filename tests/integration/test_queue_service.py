"""The queue service (in-house ACD) as a real process: call.queued / call.ended in, call.routed / call.rejected out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from switchboard.platform import codec
from switchboard.platform.topics import CALL_ENDED, CALL_QUEUED, CALL_REJECTED, CALL_ROUTED, DEAD_LETTER
from switchboard.v1 import events_pb2 as pb
from tests.support import ServiceProcess, new_call_id, publish_raw, read_all, running_service, service_env, wait_event

pytestmark = pytest.mark.integration

CONFIG = """
version: 1
queues:
  - {id: two, strategy: longest_idle, max_wait_s: 120}
  - {id: short, strategy: longest_idle, max_wait_s: 1}
  - {id: wide, strategy: round_robin, max_wait_s: 120}
  - {id: hang, max_wait_s: 120}
  - {id: pair, strategy: longest_idle, max_wait_s: 120}
  - {id: busy, strategy: longest_idle, max_wait_s: 120}
  - {id: reap, max_wait_s: 120}
  - {id: left, max_wait_s: 120}
  - {id: gone, max_wait_s: 120}
  - {id: loc, match: [location], max_wait_s: 120}
  - id: prio
    max_wait_s: 120
    priority: [{when: {answers: {credit_score: {gte: 700}}}, priority: 5}]
agents:
  - {id: a1, queues: [two], destination: "sip:a1@switchboard.local"}
  - {id: a2, queues: [two]}
  - {id: s1, queues: [short]}
  - {id: w1, queues: [wide], max_concurrent: 50}
  - {id: h1, queues: [hang]}
  - {id: p1, queues: [pair]}
  - {id: p2, queues: [pair]}
  - {id: b1, queues: [busy]}
  - {id: b2, queues: [busy]}
  - {id: r1, queues: [reap]}
  - {id: l1, queues: [left]}
  - {id: g1, queues: [gone]}
  - {id: pr1, queues: [prio]}
  - {id: loc-ca, queues: [loc], location: US-CA}
  - {id: loc-tx, queues: [loc], location: US-TX}
"""
# A call on an agent whose call.ended never comes frees the agent after this long. Small, so that the
# reaper test is quick; above every hold in the other tests (they end their calls within a second or so)
# and above max_wait_s of queue `short` (its waiter must be abandoned, not served by a reaped agent).
MAX_CALL_DURATION_S = 8.0  # long enough that no other test of the module holds a call that long, even on a loaded machine


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def queue_service(broker, tmp_path_factory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("queue")
    config = workdir / "acd.yaml"
    config.write_text(CONFIG)
    env = service_env(
        broker.kafka_settings(),
        config,
        SWITCHBOARD_QUEUE_SWEEP_INTERVAL_S="0.1",
        SWITCHBOARD_QUEUE_MAX_CALL_DURATION_S=str(MAX_CALL_DURATION_S),
    )
    with running_service("queue", env, workdir) as service:
        yield service


def queued(call_id: str, queue_id: str, attempt: int = 1, answers: dict[str, str] | None = None, **kw) -> pb.CallQueued:
    trace = pb.DecisionTrace(notes=["tier 0 price: no eligible buyer"])
    return pb.CallQueued(
        event_id=codec.new_id(),
        call_id=call_id,
        occurred_at=codec.now_ts(),
        call_started_at=codec.now_ts(),
        campaign_id="solar-ca",
        publisher_id="solar-media",
        queue_id=queue_id,
        tier_index=1,
        attempt=attempt,
        caller=pb.Caller(number="+13105551234", state="CA", area_code="310"),
        answers=answers or {"zip": "90210"},
        trace=trace,
        routing_started_at=codec.now_ts(),
        **kw,
    )


def ended(
    call_id: str, outcome: int = pb.CALL_OUTCOME_ANSWERED, attempt: int = 0, agent_id: str = "", *, routing_pending: bool = False
) -> pb.CallEnded:
    return pb.CallEnded(
        event_id=codec.new_id(),
        call_id=call_id,
        occurred_at=codec.now_ts(),
        outcome=outcome,
        connected_seconds=30 if outcome == pb.CALL_OUTCOME_ANSWERED else 0,
        attempt=attempt,
        agent_id=agent_id,
        routing_pending=routing_pending,
    )


# -- tests ---------------------------------------------------------------------------------------
async def test_two_agents_three_calls_third_waits_for_a_free_agent(queue_service, bus, kafka):
    c1, c2, c3 = new_call_id(), new_call_id(), new_call_id()
    for c in (c1, c2):
        await bus.publish(CALL_QUEUED, queued(c, "two"))
    r1, r2 = [(await wait_event(kafka, CALL_ROUTED, lambda e, c=c: e.call_id == c))[0] for c in (c1, c2)]
    assert {r1.agent_id, r2.agent_id} == {"a1", "a2"}
    for r in (r1, r2):
        assert (r.kind, r.queue_id, r.price, r.strategy, r.campaign_id) == (pb.TARGET_KIND_AGENT, "two", "0", "queue", "solar-ca")
        assert r.caller.state == "CA" and dict(r.answers) == {"zip": "90210"}
        assert r.tier_index == 1 and r.trace.winning_tier == 1 and r.trace.notes[0] == "tier 0 price: no eligible buyer"
        winners = [e for e in r.trace.entries if e.winner]
        assert [(w.target_id, w.kind) for w in winners] == [(r.agent_id, pb.TARGET_KIND_AGENT)]
    a1_call = r1 if r1.agent_id == "a1" else r2
    assert a1_call.destination == "sip:a1@switchboard.local"
    assert (r2 if a1_call is r1 else r1).destination == "agent:a2"

    await bus.publish(CALL_QUEUED, queued(c3, "two"))
    # A marker on c3's partition of call.queued: once it is routed, c3 was handled, and it must be waiting.
    marker = new_call_id()
    await bus.publish(CALL_QUEUED, queued(marker, "wide"), key=c3)
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == marker)
    assert await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == c3) == []
    freed = r2
    await bus.publish(CALL_ENDED, ended(freed.call_id))
    [r3] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == c3)
    assert r3.agent_id == freed.agent_id
    busy = [e for e in r3.trace.entries if not e.winner]
    assert [(e.target_id, e.excluded_by) for e in busy] == [(r1.agent_id, "agent:busy")]  # r1's agent still talks
    for c in (c1, c3):  # free the agents for whoever comes next
        await bus.publish(CALL_ENDED, ended(c))


async def test_a_higher_priority_caller_is_served_before_an_earlier_one(queue_service, bus, kafka):
    holder, low, vip = new_call_id(), new_call_id(), new_call_id()
    await bus.publish(CALL_QUEUED, queued(holder, "prio"))
    [r] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == holder)
    assert r.agent_id == "pr1"
    # One after the other, each handled (waiting) before the next is sent: the low priority caller is the older.
    # A marker on the call's partition: once the marker is routed, the call before it was handled.
    for c, answers in ((low, {"zip": "90210"}), (vip, {"zip": "90210", "credit_score": "720"})):  # priority 0, then 5
        await bus.publish(CALL_QUEUED, queued(c, "prio", answers=answers))
        marker = new_call_id()
        await bus.publish(CALL_QUEUED, queued(marker, "wide"), key=c)
        await wait_event(kafka, CALL_ROUTED, lambda e, m=marker: e.call_id == m)
    await bus.publish(CALL_ENDED, ended(holder))
    [first] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == vip)
    assert first.agent_id == "pr1"
    assert await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == low) == []  # still waiting behind the vip
    await bus.publish(CALL_ENDED, ended(vip))
    [second] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == low)
    assert second.agent_id == "pr1"
    await bus.publish(CALL_ENDED, ended(low))


async def test_a_queue_matching_on_location_picks_the_agent_there(queue_service, bus, kafka):
    call_id = new_call_id()
    await bus.publish(CALL_QUEUED, queued(call_id, "loc", answers={"zip": "75001", "location": "US-TX"}))
    [r] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == call_id)
    assert r.agent_id == "loc-tx"  # loc-ca is first in config order and idle: only the location decides
    assert [(e.target_id, e.excluded_by) for e in r.trace.entries if not e.winner] == [("loc-ca", "skill:location")]
    await bus.publish(CALL_ENDED, ended(call_id))


async def test_waiting_longer_than_max_wait_is_abandoned(queue_service, bus, kafka):
    holder, waiter = new_call_id(), new_call_id()
    await bus.publish(CALL_QUEUED, queued(holder, "short"))
    [r] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == holder)
    assert r.agent_id == "s1"
    await bus.publish(CALL_QUEUED, queued(waiter, "short"))
    [rej] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == waiter)
    assert rej.reason == "abandoned" and "max_wait_s 1" in rej.detail and rej.announcement
    assert rej.campaign_id == "solar-ca" and rej.trace.winning_tier == -1
    assert await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == waiter) == []
    await bus.publish(CALL_ENDED, ended(holder))


# routing_pending: how the edge reports it (no decision reached it: the queue's waiting calls are not
# announced to the edge); without it: as an older edge did.
@pytest.mark.parametrize("routing_pending", [True, False])
async def test_caller_hanging_up_while_waiting_is_abandoned(queue_service, bus, kafka, routing_pending):
    holder, waiter = new_call_id(), new_call_id()
    await bus.publish(CALL_QUEUED, queued(holder, "hang"))
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == holder)
    await bus.publish(CALL_QUEUED, queued(waiter, "hang"))
    # call.queued and call.ended are not ordered against each other: make sure the waiter waits first
    # (a marker on the waiter's partition of call.queued is routed only after the waiter was handled).
    marker = new_call_id()
    await bus.publish(CALL_QUEUED, queued(marker, "wide"), key=waiter)
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == marker)
    await bus.publish(CALL_ENDED, ended(waiter, pb.CALL_OUTCOME_CALLER_HANGUP, routing_pending=routing_pending))
    [rej] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == waiter)
    assert rej.reason == "abandoned" and "hung up after" in rej.detail and "in queue hang" in rej.detail
    await bus.publish(CALL_ENDED, ended(holder))  # h1 is free again and nobody waits for it
    assert await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == waiter) == []


async def test_duplicate_call_queued_is_assigned_once(queue_service, bus, kafka):
    cid, marker = new_call_id(), new_call_id()
    event = queued(cid, "wide")
    await bus.publish(CALL_QUEUED, event)
    await bus.publish(CALL_QUEUED, event)  # redelivery: same event, same call
    # The marker shares the key (so the partition) with the duplicate: once it is routed, the duplicate was handled.
    await bus.publish(CALL_QUEUED, queued(marker, "wide"), key=cid)
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == marker)
    routed = await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == cid)
    assert len(routed) == 1 and routed[0].agent_id == "w1"


async def test_unknown_queue_is_rejected(queue_service, bus, kafka):
    cid = new_call_id()
    await bus.publish(CALL_QUEUED, queued(cid, "no-such-queue"))
    [rej] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == cid)
    assert rej.reason == "unknown_queue" and "no-such-queue" in rej.detail


async def test_garbage_goes_to_dead_letter_and_service_keeps_working(queue_service, bus, kafka):
    key = new_call_id().encode()
    await publish_raw(kafka, [(CALL_QUEUED.name, key, b"\xff\xfe definitely not protobuf")])
    [letter] = await wait_event(kafka, DEAD_LETTER, lambda e: e.key == key)
    assert (letter.service, letter.source_topic) == ("queue", CALL_QUEUED.name) and "undecodable" in letter.reason
    cid = new_call_id()
    await bus.publish(CALL_QUEUED, queued(cid, "wide"))
    [r] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == cid)
    assert r.agent_id == "w1"


# -- re-offers: an agent did not take the call --------------------------------------------------------
async def call_ended_handled(bus, kafka, key: str, queue_id: str = "wide", agent_id: str = "w1") -> None:
    """Return once the queue handled every call.ended published so far on `key`'s partition.

    Marker: a call on `agent_id` (the only agent of `queue_id`) whose NO_ANSWER, published with `key`, leaves
    nobody to offer it to: its call.rejected all_declined shows that the partition was read up to there.
    """
    marker = new_call_id()
    await bus.publish(CALL_QUEUED, queued(marker, queue_id))
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == marker)
    await bus.publish(CALL_ENDED, ended(marker, pb.CALL_OUTCOME_NO_ANSWER, 1, agent_id), key=key)
    [rej] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == marker)
    assert rej.reason == "all_declined"


async def test_agent_no_answer_offers_the_call_to_the_next_agent_with_the_next_attempt(queue_service, bus, kafka):
    cid = new_call_id()
    await bus.publish(CALL_QUEUED, queued(cid, "pair", attempt=2))  # the router made offer 1 to a buyer
    [first] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == cid)
    assert (first.agent_id, first.attempt, first.trace.winning_attempt) == ("p1", 2, 2)

    await bus.publish(CALL_ENDED, ended(cid, pb.CALL_OUTCOME_NO_ANSWER, 2, "p1"))
    offers = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == cid, count=2)
    second = offers[1]
    assert (second.agent_id, second.attempt, second.trace.winning_attempt, second.kind) == ("p2", 3, 3, pb.TARGET_KIND_AGENT)
    entries = {(e.target_id, e.excluded_by, e.attempt, e.winner) for e in second.trace.entries}
    assert ("p1", "agent:tried", 3, False) in entries and ("p2", "", 3, True) in entries
    assert any("p1 did not take the call (no_answer on offer 2)" in n for n in second.trace.notes)

    # A redelivered report about offer 2 changes nothing (offer 3 is current).
    await bus.publish(CALL_ENDED, ended(cid, pb.CALL_OUTCOME_NO_ANSWER, 2, "p1"))
    await call_ended_handled(bus, kafka, cid)
    assert len(await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == cid)) == 2
    assert await read_all(kafka, CALL_REJECTED, lambda e: e.call_id == cid) == []

    # p2 declines too: nobody in the queue is left to offer it to.
    await bus.publish(CALL_ENDED, ended(cid, pb.CALL_OUTCOME_DECLINED, 3, "p2"))
    [rej] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == cid)
    assert rej.reason == "all_declined" and "p1 (no_answer on offer 2)" in rej.detail and "p2 (declined on offer 3)" in rej.detail


async def test_no_free_agent_sends_the_call_back_to_the_head_of_the_queue(queue_service, bus, kafka):
    c1, c2, c3 = new_call_id(), new_call_id(), new_call_id()
    await bus.publish(CALL_QUEUED, queued(c1, "busy"))
    [r1] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == c1)
    await bus.publish(CALL_QUEUED, queued(c2, "busy"))
    [r2] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == c2)
    assert (r1.agent_id, r2.agent_id) == ("b1", "b2")
    await bus.publish(CALL_QUEUED, queued(c3, "busy"))
    marker = new_call_id()  # on c3's partition of call.queued: once routed, c3 is waiting
    await bus.publish(CALL_QUEUED, queued(marker, "wide"), key=c3)
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == marker)

    # b1 lets c1 ring: b2 is busy, so c1 goes back to the head; b1 (free now) serves c3, not c1 again.
    await bus.publish(CALL_ENDED, ended(c1, pb.CALL_OUTCOME_NO_ANSWER, 1, "b1"))
    [r3] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == c3)
    assert (r3.agent_id, r3.attempt) == ("b1", 1)
    assert len(await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == c1)) == 1

    # b2 frees up: c1, at the head, gets it as offer 2.
    await bus.publish(CALL_ENDED, ended(c2, pb.CALL_OUTCOME_ANSWERED, 1, "b2"))
    offers = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == c1, count=2)
    assert (offers[1].agent_id, offers[1].attempt) == ("b2", 2)
    for c in (c1, c3):
        await bus.publish(CALL_ENDED, ended(c, pb.CALL_OUTCOME_ANSWERED))


# -- calls whose end never comes; hang-ups read before the call ----------------------------------------
async def test_an_agent_whose_call_end_never_comes_gets_the_next_waiting_call_after_max_call_duration(queue_service, bus, kafka):
    holder, waiter, third = new_call_id(), new_call_id(), new_call_id()
    await bus.publish(CALL_QUEUED, queued(holder, "reap"))
    [held] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == holder)
    assert held.agent_id == "r1"
    await bus.publish(CALL_QUEUED, queued(waiter, "reap"))
    marker = new_call_id()  # on the waiter's partition of call.queued: once routed, the waiter waits (r1 is busy)
    await bus.publish(CALL_QUEUED, queued(marker, "wide"), key=waiter)
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == marker)

    # The holder's call.ended never comes: after max_call_duration_s r1 is freed and takes the waiter.
    [served] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == waiter, timeout_s=MAX_CALL_DURATION_S + 20)
    assert (served.agent_id, served.attempt) == ("r1", 1)
    held_for = served.occurred_at.ToNanoseconds() / 1e9 - held.occurred_at.ToNanoseconds() / 1e9
    assert held_for >= MAX_CALL_DURATION_S - 0.05, held_for  # not freed before max_call_duration_s
    assert [(e.target_id, e.winner) for e in served.trace.entries] == [("r1", True)]
    # No event for the reaped call: its call.routed to r1 stands as its outcome.
    assert await read_all(kafka, CALL_REJECTED, lambda e: e.call_id == holder) == []

    # Its call.ended still comes, late: ignored (no re-offer, r1 is not freed: it talks to the waiter).
    await bus.publish(CALL_ENDED, ended(holder, pb.CALL_OUTCOME_NO_ANSWER, 1, "r1"))
    await bus.publish(CALL_ENDED, ended(holder, pb.CALL_OUTCOME_ANSWERED, 1, "r1"))
    await call_ended_handled(bus, kafka, holder)
    await bus.publish(CALL_QUEUED, queued(third, "reap"))
    marker = new_call_id()
    await bus.publish(CALL_QUEUED, queued(marker, "wide"), key=third)
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == marker)
    assert await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == third) == []  # waits: r1 is on the waiter
    assert len(await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == holder)) == 1
    assert await read_all(kafka, CALL_REJECTED, lambda e: e.call_id == holder) == []

    await bus.publish(CALL_ENDED, ended(waiter, pb.CALL_OUTCOME_ANSWERED, 1, "r1"))
    [r] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == third)
    assert r.agent_id == "r1"
    await bus.publish(CALL_ENDED, ended(third, pb.CALL_OUTCOME_ANSWERED, 1, "r1"))


async def test_a_hang_up_read_before_its_call_queued_rejects_the_call_abandoned_and_rings_no_agent(queue_service, bus, kafka):
    cid = new_call_id()
    # The edge reports the caller's hang-up while routing was pending; the queue reads it first.
    await bus.publish(CALL_ENDED, ended(cid, pb.CALL_OUTCOME_CALLER_HANGUP, routing_pending=True))
    await call_ended_handled(bus, kafka, cid)
    event = queued(cid, "left")
    await bus.publish(CALL_QUEUED, event)
    [rej] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == cid)
    assert (rej.reason, rej.detail) == ("abandoned", "the caller hung up before the queue got the call")
    assert rej.campaign_id == "solar-ca" and rej.trace.winning_tier == -1
    assert rej.trace.notes[-1] == "queue left: abandoned (the caller hung up before the queue got the call)"

    await bus.publish(CALL_QUEUED, event)  # redelivered: the call is finished
    await handled_queued(bus, kafka, cid)
    assert await read_all(kafka, CALL_ROUTED, lambda e: e.call_id == cid) == []
    assert len(await read_all(kafka, CALL_REJECTED, lambda e: e.call_id == cid)) == 1
    # l1 was never booked for the gone caller: the next call of its queue goes to it at once.
    nxt = new_call_id()
    await bus.publish(CALL_QUEUED, queued(nxt, "left"))
    [r] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == nxt)
    assert r.agent_id == "l1"
    await bus.publish(CALL_ENDED, ended(nxt, pb.CALL_OUTCOME_ANSWERED, 1, "l1"))


async def handled_queued(bus, kafka, key: str) -> None:
    """Return once the queue handled every call.queued published so far on `key`'s partition (a marker behind them)."""
    marker = new_call_id()
    await bus.publish(CALL_QUEUED, queued(marker, "wide"), key=key)
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == marker)


@pytest.mark.parametrize("routing_pending", [False, True])
async def test_a_caller_who_hangs_up_while_the_agent_rings_is_rejected_abandoned(queue_service, bus, kafka, routing_pending):
    """The offer never connected: the outcome is call.rejected abandoned (as for a buyer's offer), the agent is free.
    routing_pending: the hang-up came before the call.routed reached the edge (attempt 0)."""
    cid = new_call_id()
    await bus.publish(CALL_QUEUED, queued(cid, "gone"))
    [offer] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == cid)
    assert offer.agent_id == "g1"
    hang_up = ended(cid, pb.CALL_OUTCOME_CALLER_HANGUP, routing_pending=routing_pending)
    if not routing_pending:
        hang_up.attempt, hang_up.agent_id = offer.attempt, "g1"
    await bus.publish(CALL_ENDED, hang_up)
    [rej] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == cid)
    assert (rej.reason, rej.detail) == ("abandoned", "the caller hung up during offer 1 to agent g1")
    assert rej.trace.notes[-1] == "queue gone: abandoned (the caller hung up during offer 1 to agent g1)"
    nxt = new_call_id()  # g1 is free again
    await bus.publish(CALL_QUEUED, queued(nxt, "gone"))
    [served] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == nxt)
    assert served.agent_id == "g1"
    await bus.publish(CALL_ENDED, ended(nxt, pb.CALL_OUTCOME_ANSWERED, 1, "g1"))
    await call_ended_handled(bus, kafka, nxt)
    assert len(await read_all(kafka, CALL_REJECTED, lambda e: e.call_id == cid)) == 1
