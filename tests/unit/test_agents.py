"""Agent states in the ACD (core.agents): login, ready, wrap-up, desk commands, learned performance, snapshot."""

import pytest

from switchboard.core import agents as desk
from switchboard.core.acd import Acd, WaitingCall
from switchboard.core.config import Agent, Queue
from switchboard.v1 import events_pb2 as pb


def q(id="q", wrap_up_s=0, strategy="longest_idle"):
    return Queue(id=id, strategy=strategy, max_wait_s=600, wrap_up_s=wrap_up_s)


def a(id, queues=("q",), **kw):
    return Agent(id=id, queues=list(queues), **kw)


def call(cid, queue="q", at=0.0):
    return WaitingCall(call_id=cid, queue_id=queue, enqueued_at=at, needs={})


def state(acd, agent_id):
    return desk.state_of(acd.agents[agent_id])


def changes(acd):
    out = [(c.agent_id, c.previous_state, c.state, c.reason, c.call_id, c.disposition) for c in acd.agent_changes]
    acd.agent_changes.clear()
    return out


def test_login_always_is_ready_from_the_start_and_desk_is_logged_out_until_login():
    acd = Acd([q()], [a("ana", login="desk"), a("ben")])
    assert state(acd, "ana") == pb.AGENT_STATE_LOGGED_OUT
    assert state(acd, "ben") == pb.AGENT_STATE_READY
    assert acd.offer(call("c1"), 0).assignment.agent.id == "ben"
    w = acd.offer(call("c2"), 1)
    assert w.status == "waiting"
    assert {c.agent_id: c.excluded_by for c in w.considered}["ana"] == "agent:logged_out"
    assert changes(acd) == [("ben", pb.AGENT_STATE_READY, pb.AGENT_STATE_ON_CALL, "", "c1", "")]
    got = desk.login(acd, "ana", 2, ready=True)
    assert [(x.call.call_id, x.agent.id) for x in got] == [("c2", "ana")]
    assert changes(acd) == [
        ("ana", pb.AGENT_STATE_LOGGED_OUT, pb.AGENT_STATE_READY, "", "", ""),
        ("ana", pb.AGENT_STATE_READY, pb.AGENT_STATE_ON_CALL, "", "c2", ""),
    ]


def test_not_ready_with_a_reason_takes_no_call_until_ready_again():
    acd = Acd([q()], [a("ana", login="desk")])
    assert desk.login(acd, "ana", 0, ready=False) == []
    assert acd.agents["ana"].presence.reason == desk.NOT_READY_LOGIN
    desk.set_ready(acd, "ana", 1, ready=False, reason="lunch")
    assert changes(acd)[-1] == ("ana", pb.AGENT_STATE_NOT_READY, pb.AGENT_STATE_NOT_READY, "lunch", "", "")
    w = acd.offer(call("c1"), 2)
    assert w.status == "waiting"
    assert [(c.excluded_by, c.detail) for c in w.considered] == [("agent:not_ready", "not ready (lunch)")]
    got = desk.set_ready(acd, "ana", 3, ready=True)
    assert [x.call.call_id for x in got] == ["c1"]


def test_wrap_up_after_a_call_until_wrap_up_s_then_the_next_waiting_call():
    acd = Acd([q(wrap_up_s=30)], [a("ana")])
    acd.offer(call("c1"), 0)
    assert acd.offer(call("c2"), 1).status == "waiting"
    rel = acd.release("c1", 10)
    assert rel.assignments == ()  # in wrap-up: c2 keeps waiting
    assert state(acd, "ana") == pb.AGENT_STATE_WRAP_UP
    assert acd.agents["ana"].presence.wrap_up == desk.WrapUp("c1", 40)
    assert desk.end_due_wrap_ups(acd, 39) == []
    got = desk.end_due_wrap_ups(acd, 40)
    assert [(x.call.call_id, x.agent.id) for x in got] == [("c2", "ana")]
    assert changes(acd)[-3:] == [
        ("ana", pb.AGENT_STATE_ON_CALL, pb.AGENT_STATE_WRAP_UP, "", "c1", ""),
        ("ana", pb.AGENT_STATE_WRAP_UP, pb.AGENT_STATE_READY, "", "c1", ""),
        ("ana", pb.AGENT_STATE_READY, pb.AGENT_STATE_ON_CALL, "", "c2", ""),
    ]


def test_no_wrap_up_when_wrap_up_s_is_0():
    acd = Acd([q()], [a("ana")])
    acd.offer(call("c1"), 0)
    acd.offer(call("c2"), 0)
    rel = acd.release("c1", 5)
    assert [x.call.call_id for x in rel.assignments] == ["c2"]


def test_end_wrap_up_with_a_disposition_and_its_refusals():
    acd = Acd([q(wrap_up_s=300)], [a("ana")])
    with pytest.raises(desk.DeskError) as e:
        desk.end_wrap_up(acd, "ana", 0, disposition="sale")
    assert e.value.code == "failed_precondition" and "not in wrap-up" in str(e.value)
    with pytest.raises(desk.DeskError) as e:
        desk.end_wrap_up(acd, "nobody", 0)
    assert e.value.code == "not_found"
    acd.offer(call("c1"), 0)
    acd.release("c1", 10)
    with pytest.raises(desk.DeskError, match="wrapping up call c1, not c9"):
        desk.end_wrap_up(acd, "ana", 11, call_id="c9")
    changes(acd)
    desk.end_wrap_up(acd, "ana", 12, call_id="c1", disposition="sale", note_text="two units")
    [c] = acd.agent_changes
    assert (c.previous_state, c.state, c.call_id, c.disposition, c.note, c.queue_ids) == (
        pb.AGENT_STATE_WRAP_UP,
        pb.AGENT_STATE_READY,
        "c1",
        "sale",
        "two units",
        ("q",),
    )


def test_logout_on_a_call_keeps_the_call_and_takes_no_new_one():
    acd = Acd([q(wrap_up_s=30)], [a("ana", login="desk", max_concurrent=2)])
    desk.login(acd, "ana", 0, ready=True)
    acd.offer(call("c1"), 1)
    desk.logout(acd, "ana", 2)
    assert acd.agent_of("c1") == "ana"
    assert state(acd, "ana") == pb.AGENT_STATE_ON_CALL
    assert acd.offer(call("c2"), 3).status == "waiting"
    changes(acd)
    acd.release("c1", 4)
    assert state(acd, "ana") == pb.AGENT_STATE_LOGGED_OUT  # logged out: no wrap-up
    assert changes(acd) == [("ana", pb.AGENT_STATE_ON_CALL, pb.AGENT_STATE_LOGGED_OUT, "agent", "", "")]
    assert acd.agent_of("c2") is None


def test_login_always_agents_cannot_log_in_or_out_through_the_desk():
    acd = Acd([q()], [a("ben")])
    for command in (desk.login, desk.logout):
        with pytest.raises(desk.DeskError) as e:
            command(acd, "ben", 0, **({"ready": True} if command is desk.login else {}))
        assert e.value.code == "failed_precondition" and "login: always" in str(e.value)
    desk.set_ready(acd, "ben", 0, ready=False, reason="break")  # a break is allowed
    assert state(acd, "ben") == pb.AGENT_STATE_NOT_READY


def test_set_ready_when_logged_out_is_refused():
    acd = Acd([q()], [a("ana", login="desk")])
    with pytest.raises(desk.DeskError, match="logged out: Login first"):
        desk.set_ready(acd, "ana", 0, ready=True)


def test_heartbeat_logout_only_without_a_work_stream_and_after_heartbeat_s():
    acd = Acd([q()], [a("ana", login="desk"), a("ben", login="desk"), a("cy")])
    desk.login(acd, "ana", 0, ready=True)
    desk.login(acd, "ben", 0, ready=True)
    desk.stream_opened(acd, "ben", 1)
    assert desk.heartbeat_logouts(acd, 29, 30) == []
    desk.heartbeat(acd, "ana", 20)
    assert desk.heartbeat_logouts(acd, 49, 30) == []
    assert desk.heartbeat_logouts(acd, 50, 30) == ["ana"]  # ben has a stream, cy is login: always
    assert acd.agents["ana"].presence.reason == desk.LOGOUT_HEARTBEAT
    with pytest.raises(desk.DeskError, match="Login again"):
        desk.heartbeat(acd, "ana", 51)
    desk.stream_closed(acd, "ben", 60)
    assert desk.heartbeat_logouts(acd, 89, 30) == []
    assert desk.heartbeat_logouts(acd, 90, 30) == ["ben"]


def test_learned_performance_is_the_answered_share_of_recent_offers_and_best_performer_uses_it():
    acd = Acd([q(strategy="best_performer")], [a("ana", performance="learned"), a("ben", performance=0.6)])
    assert desk.performance(acd.agents["ana"]) == desk.UNLEARNED_PERFORMANCE
    assert acd.offer(call("c1"), 0).assignment.agent.id == "ben"
    acd.release("c1", 1)
    # ana answers 3 of 4 offers: 0.75 > ben's 0.6
    for i in range(4):
        acd.agents["ben"].presence.ready = False
        off = acd.offer(call(f"d{i}"), 2 + i)
        assert off.assignment.agent.id == "ana"
        if i == 0:
            acd.offer_failed(f"d{i}", 2 + i)
            acd.release(f"d{i}", 2 + i)  # no one else: it waited; end it
        else:
            acd.release(f"d{i}", 2 + i)
    assert desk.performance(acd.agents["ana"]) == 0.75
    acd.agents["ben"].presence.ready = True
    assert acd.offer(call("e1"), 10).assignment.agent.id == "ana"
    recent = acd.agents["ana"].presence.recent
    assert recent.maxlen == desk.LEARNED_WINDOW
    # the caller hung up while ana's phone rang: neither an answer nor a miss
    acd.release("e1", 11, connected=False)
    assert len(recent) == 4 and desk.performance(acd.agents["ana"]) == 0.75


def test_snapshot_keeps_login_ready_wrap_up_and_learned_performance_without_new_events():
    acd = Acd([q(wrap_up_s=60)], [a("ana", login="desk", performance="learned"), a("ben", login="desk")])
    desk.login(acd, "ana", 0, ready=True)
    desk.login(acd, "ben", 0, ready=False)
    desk.set_ready(acd, "ben", 1, ready=False, reason="lunch")
    acd.offer(call("c1"), 2)
    acd.release("c1", 10)
    data = acd.to_dict()
    back = Acd.from_dict([q(wrap_up_s=60)], [a("ana", login="desk", performance="learned"), a("ben", login="desk")], data)
    assert back.agent_changes == []
    assert state(back, "ana") == pb.AGENT_STATE_WRAP_UP
    assert back.agents["ana"].presence.wrap_up == desk.WrapUp("c1", 70)
    assert (state(back, "ben"), back.agents["ben"].presence.reason) == (pb.AGENT_STATE_NOT_READY, "lunch")
    assert list(back.agents["ana"].presence.recent) == [True]
    # Nobody double-booked: the agent in wrap-up takes no call until its wrap-up ends.
    assert back.offer(call("c2"), 20).status == "waiting"
    got = desk.end_due_wrap_ups(back, 70)
    assert [(x.call.call_id, x.agent.id) for x in got] == [("c2", "ana")]


def test_a_state_written_before_presences_restores_the_initial_ones():
    acd = Acd([q()], [a("ana", login="desk"), a("ben")])
    data = acd.to_dict()
    for st in data["agents"].values():
        del st["desk"]
    back = Acd.from_dict([q()], [a("ana", login="desk"), a("ben")], data)
    assert (state(back, "ana"), state(back, "ben")) == (pb.AGENT_STATE_LOGGED_OUT, pb.AGENT_STATE_READY)


def test_states_count_has_every_state():
    acd = Acd([q()], [a("ana", login="desk"), a("ben")])
    counts = desk.states_count(acd.agents.values())
    assert counts[pb.AGENT_STATE_LOGGED_OUT] == 1 and counts[pb.AGENT_STATE_READY] == 1
    assert counts[pb.AGENT_STATE_WRAP_UP] == 0


def test_queue_figures_count_logged_in_and_ready_agents():
    acd = Acd([q(wrap_up_s=30)], [a("ana", login="desk"), a("ben"), a("cleo", login="desk")])
    f = acd.figures("q", 0, None)
    assert (f.agents_logged_in, f.agents_ready, f.slots) == (1, 1, 1)  # desk agents count once logged in
    desk.login(acd, "ana", 1, ready=False)
    desk.login(acd, "cleo", 1, ready=True)
    acd.offer(call("c1"), 2)  # to cleo or ben: on a call, still ready
    f = acd.figures("q", 2, None)
    # busy: the call's slot and not-ready ana's (a slot of a logged-in agent that takes no call)
    assert (f.agents_logged_in, f.agents_ready, f.busy_slots) == (3, 2, 2)
    acd.release("c1", 3)  # wrap-up: not ready for the queue's figures
    assert acd.figures("q", 3, None).agents_ready == 1
