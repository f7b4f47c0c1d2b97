"""Queue statuses and callbacks of the pure ACD (docs/ACD.md, Announcements and Callbacks)."""

from __future__ import annotations

from switchboard.core import reasons
from switchboard.core.acd import Acd, WaitingCall
from switchboard.core.config import Agent, Queue

H = 60.0  # the queue's handle time in these tests: place k of one busy slot waits k·60 s


def ht(_queue_id: str) -> float:
    return H


def waiting(cid: str, at: float = 0.0, priority: int = 0) -> WaitingCall:
    return WaitingCall(cid, "q", at, {}, priority=priority)


def busy_acd(**queue: object) -> Acd:
    """One agent, busy with `busy`: every later call waits."""
    acd = Acd([Queue.model_validate({"id": "q", "max_wait_s": 3600, **queue})], [Agent(id="ana", queues=["q"])])
    assert acd.offer(waiting("busy"), 0.0).status == "assigned"
    return acd


def test_a_waiting_call_gets_a_status_on_arrival_then_every_announce_every_s() -> None:
    acd = busy_acd(announce_every_s=30)
    acd.offer(waiting("w1", 1.0), 1.0)
    acd.offer(waiting("w2", 2.0, priority=3), 2.0)
    first = acd.statuses(2.0, ht)
    assert [(s.call.call_id, s.kind, s.position, s.projected_wait_s, s.waiting) for s in first] == [
        ("w2", "waiting", 1, 60.0, 2),
        ("w1", "waiting", 2, 120.0, 2),
    ]
    assert first[0].priority == 3 and first[1].waited_s == 1.0
    assert acd.statuses(31.0, ht) == []  # not due yet: 2 + 30
    assert [s.call.call_id for s in acd.statuses(32.0, ht)] == ["w2", "w1"]
    # Unknown handle time: the projection is unknown, the status still goes out.
    acd.offer(waiting("w3", 40.0), 40.0)
    (s3,) = acd.statuses(40.0)
    assert (s3.call.call_id, s3.position, s3.projected_wait_s) == ("w3", 3, None)


def test_announce_every_s_0_says_it_once() -> None:
    acd = busy_acd(announce_every_s=0)
    acd.offer(waiting("w1"), 0.0)
    assert len(acd.statuses(0.0, ht)) == 1
    assert acd.statuses(10_000.0, ht) == []


def test_the_callback_is_offered_once_when_the_projected_wait_exceeds_callback_offer_after_s() -> None:
    acd = busy_acd(announce_every_s=30, callback_offer_after_s=90)
    acd.offer(waiting("w1"), 0.0)
    acd.offer(waiting("w2"), 0.0)
    out = {s.call.call_id: s.kind for s in acd.statuses(0.0, ht)}
    assert out == {"w1": "waiting", "w2": "callback_offered"}  # 60 s is not above 90, 120 s is
    call = acd.call_of("w2")
    assert call is not None and call.callback_offered
    # Not offered again; the next status is a WAITING one, on the timer.
    assert acd.statuses(10.0, ht) == []
    assert {s.call.call_id: s.kind for s in acd.statuses(30.0, ht)} == {"w1": "waiting", "w2": "waiting"}


def test_a_callback_keeps_its_place_and_is_exempt_from_max_wait_and_statuses() -> None:
    acd = Acd([Queue(id="q", max_wait_s=100)], [Agent(id="ana", queues=["q"])])
    acd.offer(waiting("busy"), 0.0)
    acd.offer(waiting("cb", 1.0), 1.0)
    acd.offer(waiting("later", 2.0), 2.0)
    assert acd.request_callback("cb", 5.0).status == "accepted"
    assert acd.request_callback("cb", 6.0).status == "already"
    assert acd.request_callback("nobody", 6.0).status == "not_waiting"
    assert [s.call.call_id for s in acd.statuses(5.0, ht)] == ["later"]  # the caller of cb is off the line
    assert acd.position("later", 5.0) == 2  # behind the callback: it kept its place
    assert [a.call.call_id for a in acd.expire(150.0)] == ["later"]  # max_wait_s: not for the callback
    assert acd.caller_left("cb", 151.0).abandoned is None  # a hang-up report changes nothing
    release = acd.release("busy", 160.0)
    (assignment,) = release.assignments
    assert (assignment.call.call_id, assignment.call.callback_attempt, assignment.agent.id) == ("cb", 1, "ana")


def test_a_scheduled_callback_is_not_served_before_its_time() -> None:
    acd = busy_acd()
    acd.offer(waiting("cb", 1.0), 1.0)
    acd.offer(waiting("now", 2.0), 2.0)
    acd.request_callback("cb", 5.0, at=500.0)
    assert acd.position("now", 6.0) == 1  # a callback held until later holds nobody up
    (first,) = acd.release("busy", 10.0).assignments
    assert first.call.call_id == "now"
    assert acd.release("now", 100.0).assignments == ()  # 100 < 500: the agent stays free
    assert acd.serve_due(499.0) == []
    (cb,) = acd.serve_due(500.0)
    assert cb.call.call_id == "cb" and cb.call.callback_attempt == 1


def test_an_unanswered_callback_is_retried_then_fails() -> None:
    acd = Acd([Queue(id="q", callback_retries=1, callback_retry_after_s=120)], [Agent(id="ana", queues=["q"])])
    acd.offer(waiting("busy"), 0.0)
    acd.offer(waiting("cb"), 0.0)
    acd.request_callback("cb", 1.0)
    (a1,) = acd.release("busy", 10.0).assignments
    assert a1.call.attempt == 1
    missed = acd.callback_no_answer("cb", 20.0, attempt=1)
    assert (missed.status, missed.agent_id, missed.retry_at) == ("retry", "ana", 140.0)
    assert acd.agents["ana"].has_capacity and "ana" not in missed.call.tried  # type: ignore[union-attr]
    assert acd.callback_no_answer("cb", 21.0, attempt=1).status == "ignored"  # not on an agent (redelivery)
    assert acd.serve_due(139.0) == []
    (a2,) = acd.serve_due(140.0)
    assert (a2.call.attempt, a2.call.callback_attempt) == (2, 2)
    assert acd.callback_no_answer("cb", 150.0, attempt=1).reason == "stale_attempt"
    failed = acd.callback_no_answer("cb", 150.0, attempt=2)
    assert (failed.status, failed.reason) == ("failed", reasons.CALLBACK_FAILED)
    assert acd.knows("cb") and acd.call_of("cb") is None  # finished: a redelivery is a duplicate


def test_a_callback_not_placed_within_callback_max_wait_s_expires() -> None:
    acd = busy_acd(callback_max_wait_s=600)
    acd.offer(waiting("asap"), 0.0)
    acd.offer(waiting("sched"), 0.0)
    acd.request_callback("asap", 10.0)
    acd.request_callback("sched", 10.0, at=1000.0)
    assert acd.expire_callbacks(609.0) == []
    (e,) = acd.expire_callbacks(610.0)
    assert e.call.call_id == "asap"
    assert acd.expire_callbacks(1599.0) == []  # counted from its chosen time
    assert [x.call.call_id for x in acd.expire_callbacks(1600.0)] == ["sched"]
    assert acd.call_of("sched") is None


def test_a_callback_does_not_overflow() -> None:
    acd = Acd([Queue(id="q", max_wait_s=3600, overflow_after_s=60)], [Agent(id="ana", queues=["q"])])
    acd.offer(waiting("busy"), 0.0)
    acd.offer(WaitingCall("cb", "q", 0.0, {}, can_overflow=True), 0.0)
    acd.offer(WaitingCall("plain", "q", 0.0, {}, can_overflow=True), 0.0)
    acd.request_callback("cb", 1.0)
    assert [o.call.call_id for o in acd.overflow(100.0)] == ["plain"]


def test_callbacks_offered_flags_and_timers_survive_a_snapshot() -> None:
    acd = busy_acd(announce_every_s=30, callback_offer_after_s=90, callback_retry_after_s=100)
    acd.offer(waiting("w1"), 0.0)
    acd.offer(waiting("w2"), 0.0)
    acd.offer(waiting("sched"), 0.0)
    acd.statuses(0.0, ht)  # w2 and sched are offered the callback
    acd.request_callback("sched", 5.0, at=400.0)
    data = acd.to_dict()
    back = Acd.from_dict(acd.queues.values(), [s.agent for s in acd.agents.values()], data, time_shift=1000.0)
    w2, sched = back.call_of("w2"), back.call_of("sched")
    assert w2 is not None and w2.callback_offered and w2.announce_at == 1030.0
    assert sched is not None and sched.callback and sched.not_before == 1400.0 and sched.callback_since == 1400.0
    assert [s.kind for s in back.statuses(1030.0, ht)] == ["waiting", "waiting"]  # no second offer
    assert back.to_dict()["waiting"] == Acd.from_dict(back.queues.values(), [], back.to_dict()).to_dict()["waiting"]


def test_queue_figures() -> None:
    acd = busy_acd()
    acd.offer(waiting("w1"), 0.0)
    acd.offer(waiting("cb"), 0.0)
    acd.request_callback("cb", 1.0)
    f = acd.figures("q", 10.0, H)
    assert (f.waiting, f.callbacks_waiting, f.slots, f.busy_slots, f.projected_wait_s, f.longest_wait_s) == (
        2,
        1,
        1,
        1,
        180.0,
        10.0,
    )
    assert acd.figures("q", 10.0, None).projected_wait_s is None
