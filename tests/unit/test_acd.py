from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.core.acd import Acd, WaitingCall, caller_needs, skill_gap
from switchboard.core.config import Agent, Queue


def q(id="q", strategy="longest_idle", max_wait_s=60, match=()):
    return Queue(id=id, strategy=strategy, max_wait_s=max_wait_s, match=list(match))


def a(id, queues=("q",), **kw):
    return Agent(id=id, queues=list(queues), **kw)


def call(cid, queue="q", at=0.0, needs=None):
    return WaitingCall(call_id=cid, queue_id=queue, enqueued_at=at, needs=needs or {})


def assigned_agent(offer):
    assert offer.status == "assigned", offer
    return offer.assignment.agent.id


def test_longest_idle_never_used_first_in_config_order_then_idle_longest():
    acd = Acd([q()], [a("ana"), a("ben"), a("cy")])
    assert assigned_agent(acd.offer(call("c1"), 0)) == "ana"
    assert assigned_agent(acd.offer(call("c2"), 1)) == "ben"
    acd.release("c2", 5)  # ben idle since 5
    acd.release("c1", 7)  # ana idle since 7
    assert assigned_agent(acd.offer(call("c3"), 8)) == "cy"  # never used beats both
    assert assigned_agent(acd.offer(call("c4"), 9)) == "ben"  # idle since 5 < 7
    assert assigned_agent(acd.offer(call("c5"), 9)) == "ana"


def test_no_free_agent_waits_fifo_and_release_serves_the_head():
    acd = Acd([q()], [a("ana"), a("ben")])
    assert assigned_agent(acd.offer(call("c1", at=0), 0)) == "ana"
    assert assigned_agent(acd.offer(call("c2", at=0), 0)) == "ben"
    w3 = acd.offer(call("c3", at=1), 1)
    w4 = acd.offer(call("c4", at=2), 2)
    assert (w3.status, w3.position, w4.position) == ("waiting", 1, 2)
    assert {c.excluded_by for c in w3.considered} == {"agent:busy"}
    rel = acd.release("c2", 3)
    assert rel.agent_id == "ben"
    assert [(x.call.call_id, x.agent.id) for x in rel.assignments] == [("c3", "ben")]
    assert rel.assignments[0].waited_s == 2
    assert [c.call_id for c in acd.waiting["q"]] == ["c4"]
    assert acd.agent_of("c3") == "ben"


def test_max_concurrent_allows_several_calls_per_agent():
    acd = Acd([q()], [a("ana", max_concurrent=2)])
    assert assigned_agent(acd.offer(call("c1"), 0)) == "ana"
    assert assigned_agent(acd.offer(call("c2"), 0)) == "ana"
    assert acd.offer(call("c3"), 0).status == "waiting"


def test_duplicate_offer_is_ignored_while_active_waiting_and_after_end():
    acd = Acd([q()], [a("ana")])
    assert acd.offer(call("c1"), 0).status == "assigned"
    assert acd.offer(call("c1"), 0).status == "duplicate"
    assert acd.offer(call("c2"), 0).status == "waiting"
    assert acd.offer(call("c2"), 0).status == "duplicate"
    assert len(acd.waiting["q"]) == 1
    acd.release("c1", 1)  # c2 gets ana
    acd.release("c2", 2)
    assert acd.offer(call("c1"), 3).status == "duplicate"
    assert acd.agents["ana"].handled == 2


def test_expire_abandons_calls_older_than_max_wait():
    acd = Acd([q(max_wait_s=10)], [a("ana")])
    acd.offer(call("c1", at=0), 0)
    acd.offer(call("c2", at=1), 1)
    acd.offer(call("c3", at=5), 5)
    assert acd.expire(10.5) == []  # c2 waited 9.5s
    out = acd.expire(11)
    assert [(x.call.call_id, x.why, x.waited_s) for x in out] == [("c2", "max_wait", 10)]
    assert [c.call_id for c in acd.waiting["q"]] == ["c3"]
    assert acd.offer(call("c2"), 12).status == "duplicate"


def test_release_of_waiting_call_is_caller_hangup():
    acd = Acd([q()], [a("ana")])
    acd.offer(call("c1"), 0)
    acd.offer(call("c2", at=1), 1)
    rel = acd.release("c2", 4)
    assert rel.agent_id is None and rel.abandoned.why == "caller_hangup" and rel.abandoned.waited_s == 3
    assert acd.waiting["q"] == []
    assert acd.release("unknown", 5) == type(rel)(None, None, ())


def test_rejects_unknown_queue_no_agents_and_unmatchable_needs():
    acd = Acd([q(), q("empty"), q("lang", match=["language"])], [a("ana", queues=("q", "lang"), skills={"language": ["en"]})])
    assert acd.offer(call("c1", queue="nope"), 0).reason == "unknown_queue"
    assert acd.offer(call("c2", queue="empty"), 0).reason == "no_agents"
    r = acd.offer(call("c3", queue="lang", needs={"language": "fr"}), 0)
    assert (r.status, r.reason) == ("rejected", "no_matching_agent")
    assert acd.offer(call("c1", queue="q"), 0).status == "duplicate"  # rejected ids are remembered too


def test_skills_match_and_a_blocked_head_does_not_block_others():
    queue = q(match=["language"])
    acd = Acd([queue], [a("en1", skills={"language": ["en"]}), a("es1", skills={"language": ["en", "ES"]})])
    assert caller_needs(queue, {"language": "es", "zip": "90210"}) == {"language": "es"}
    assert caller_needs(queue, {"language": ""}) == {}
    assert skill_gap(acd.agents["en1"].agent, {"language": "es"}) == "language"
    assert assigned_agent(acd.offer(call("c1", needs={"language": "es"}), 0)) == "es1"
    # c2 needs es (only es1, busy) and waits; c3 needs nothing and en1 takes it despite c2 being older
    w = acd.offer(call("c2", at=1, needs={"language": "es"}), 1)
    assert w.status == "waiting"
    assert {(c.agent_id, c.excluded_by) for c in w.considered} == {("en1", "skill:language"), ("es1", "agent:busy")}
    assert assigned_agent(acd.offer(call("c3", at=2), 2)) == "en1"
    rel = acd.release("c1", 3)
    assert [(x.call.call_id, x.agent.id) for x in rel.assignments] == [("c2", "es1")]


def test_waiting_calls_are_served_oldest_first_across_queues():
    acd = Acd([q("a"), q("b")], [a("ana", queues=("a", "b"))])
    acd.offer(call("c0", queue="a"), 0)
    acd.offer(call("late", queue="a", at=5), 5)
    acd.offer(call("early", queue="b", at=2), 2)
    rel = acd.release("c0", 6)
    assert [x.call.call_id for x in rel.assignments] == ["early"]


def test_round_robin_rotates_in_config_order():
    acd = Acd([q(strategy="round_robin")], [a("x", max_concurrent=9), a("y", max_concurrent=9), a("z", max_concurrent=9)])
    got = [assigned_agent(acd.offer(call(f"c{i}"), i)) for i in range(5)]
    assert got == ["x", "y", "z", "x", "y"]


def test_fewest_calls_and_best_performer():
    acd = Acd([q(strategy="fewest_calls")], [a("x"), a("y")])
    assert assigned_agent(acd.offer(call("c1"), 0)) == "x"
    acd.release("c1", 1)
    assert assigned_agent(acd.offer(call("c2"), 2)) == "y"
    acd.release("c2", 3)
    assert assigned_agent(acd.offer(call("c3"), 4)) == "x"

    acd = Acd([q(strategy="best_performer")], [a("x", performance=0.5), a("y", performance=0.9), a("z", performance=0.9)])
    assert assigned_agent(acd.offer(call("c1"), 0)) == "y"
    assert assigned_agent(acd.offer(call("c2"), 0)) == "z"
    assert assigned_agent(acd.offer(call("c3"), 0)) == "x"


def test_dedupe_memory_is_bounded():
    acd = Acd([q()], [a("ana", max_concurrent=100)], remember=3)
    for i in range(5):
        acd.offer(call(f"c{i}"), 0)
        acd.release(f"c{i}", 1)
    assert not acd.knows("c0") and acd.knows("c4")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["offer", "release", "expire"]), st.integers(0, 7)), max_size=60))
def test_invariants_under_random_events(events):
    """No agent over capacity, no call both waiting and active, no free agent while a servable call waits."""
    acd = Acd([q(max_wait_s=5)], [a("x", max_concurrent=2), a("y")])
    now = 0.0
    for op, n in events:
        now += 1
        cid = f"c{n}"
        if op == "offer":
            acd.offer(call(cid, at=now), now)
        elif op == "release":
            acd.release(cid, now)
        else:
            acd.expire(now)
        active = [c for s in acd.agents.values() for c in s.active]
        assert len(active) == len(set(active))
        assert all(len(s.active) <= s.agent.max_concurrent for s in acd.agents.values())
        waiting = {c.call_id for c in acd.waiting["q"]}
        assert not waiting & set(active)
        if waiting:
            assert all(not s.has_capacity for s in acd.agents.values())


# -- re-offers: an agent did not take its call ------------------------------------------------------


def test_no_answer_reoffers_to_the_next_free_agent_with_the_next_attempt():
    acd = Acd([q()], [a("ana"), a("ben"), a("cy")])
    c = call("c1")
    c.attempt = 2  # the router's offers so far came first
    assert assigned_agent(acd.offer(c, 0)) == "ana"
    r = acd.offer_failed("c1", 5, attempt=2, why="no_answer")
    assert (r.status, r.agent_id, r.assignment.agent.id, r.call.attempt) == ("assigned", "ana", "ben", 3)
    assert ("ana", "agent:tried", "no_answer on offer 2") in {(x.agent_id, x.excluded_by, x.detail) for x in r.considered}
    assert acd.agent_of("c1") == "ben" and acd.agents["ana"].active == set() and acd.agents["ana"].idle_since == 5
    r = acd.offer_failed("c1", 6, why="declined")  # attempt 0: about the current offer
    assert (r.status, r.assignment.agent.id, r.call.attempt) == ("assigned", "cy", 4)
    assert set(r.call.tried) == {"ana", "ben"}


def test_every_matching_agent_tried_rejects_all_declined():
    acd = Acd([q(match=["language"])], [a("ana", skills={"language": ["en"]}), a("ben", skills={"language": ["es"]})])
    acd.offer(call("c1", needs={"language": "en"}), 0)
    r = acd.offer_failed("c1", 1, why="busy")
    assert (r.status, r.reason) == ("rejected", "all_declined")  # ben lacks the skill: nobody left
    assert "ana (busy on offer 1)" in r.detail
    assert not acd.agents["ana"].active and acd.call_of("c1") is None
    assert acd.offer(call("c1"), 2).status == "duplicate"  # finished ids stay remembered


def test_max_attempts_bounds_the_reoffers():
    acd = Acd([q()], [a("ana"), a("ben")])
    c = call("c1")
    c.attempt, c.max_attempts = 3, 3
    acd.offer(c, 0)
    r = acd.offer_failed("c1", 1, attempt=3)
    assert (r.status, r.reason, r.call.attempt) == ("rejected", "max_attempts", 4)
    assert acd.agent_of("c1") is None and not acd.agents["ana"].active


def test_no_other_free_agent_waits_at_the_head_and_the_freed_agent_serves_others():
    acd = Acd([q()], [a("ana"), a("ben")])
    acd.offer(call("c1", at=0), 0)  # ana
    acd.offer(call("c2", at=0), 0)  # ben
    assert acd.offer(call("c3", at=1), 1).status == "waiting"
    r = acd.offer_failed("c1", 2, attempt=1)
    # c1 goes back to the head; ana (free now) must not get c1 again, so she serves c3
    assert (r.status, r.call.attempt) == ("waiting", 2)
    assert [(x.call.call_id, x.agent.id) for x in r.others] == [("c3", "ana")]
    assert [c.call_id for c in acd.waiting["q"]] == ["c1"]
    assert acd.offer(call("c4", at=3), 3).status == "waiting"
    assert [c.call_id for c in acd.waiting["q"]] == ["c1", "c4"]
    rel = acd.release("c2", 4)  # ben frees up: the re-queued c1 goes first, although c4 is also servable
    assert [(x.call.call_id, x.agent.id, x.call.attempt) for x in rel.assignments] == [("c1", "ben", 2)]
    assert [c.call_id for c in acd.waiting["q"]] == ["c4"]


def test_stale_or_unknown_reports_are_ignored():
    acd = Acd([q()], [a("ana"), a("ben")])
    acd.offer(call("c1"), 0)
    assert acd.offer_failed("c1", 1, attempt=1).status == "assigned"  # to ben, attempt 2
    again = acd.offer_failed("c1", 2, attempt=1)  # the same report redelivered
    assert (again.status, again.reason) == ("ignored", "stale_attempt")
    assert acd.agent_of("c1") == "ben"
    assert acd.offer_failed("nope", 3).reason == "unknown_call"
    assert acd.offer_failed("c1", 4, attempt=2).reason == "all_declined"  # ana and ben both tried
    assert acd.offer_failed("c1", 5).reason == "unknown_call"  # finished


def test_a_requeued_call_is_abandoned_by_max_wait_counted_from_its_first_arrival():
    acd = Acd([q(max_wait_s=10)], [a("ana"), a("ben")])
    acd.offer(call("c1", at=0), 0)
    acd.offer(call("c2", at=0), 0)
    assert acd.offer_failed("c1", 8).status == "waiting"
    assert [(x.call.call_id, x.why) for x in acd.expire(10)] == [("c1", "max_wait")]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["offer", "release", "fail", "expire"]), st.integers(0, 7)), max_size=60))
def test_invariants_with_reoffers(events):
    """Capacity holds, no call both waiting and active, never offered again to an agent that failed it,
    and no free agent stays idle while a waiting call could take it."""
    acd = Acd([q(max_wait_s=5)], [a("x", max_concurrent=2), a("y"), a("z")])
    now = 0.0
    for op, n in events:
        now += 1
        cid = f"c{n}"
        if op == "offer":
            acd.offer(call(cid, at=now), now)
        elif op == "release":
            acd.release(cid, now)
        elif op == "fail":
            acd.offer_failed(cid, now)
        else:
            acd.expire(now)
        active = [c for s in acd.agents.values() for c in s.active]
        assert len(active) == len(set(active))
        assert all(len(s.active) <= s.agent.max_concurrent for s in acd.agents.values())
        waiting = acd.waiting["q"]
        assert not {c.call_id for c in waiting} & set(active)
        for s in acd.agents.values():
            for c in s.active:
                assert s.agent.id not in acd.call_of(c).tried
            if s.has_capacity:
                assert all(s.agent.id in c.tried for c in waiting)


# -- calls whose end never comes (reap) -------------------------------------------------------------


def test_reap_frees_the_agents_of_calls_older_than_max_call_and_gives_the_slots_to_waiting_calls():
    acd = Acd([q(max_wait_s=1000)], [a("ana"), a("ben")])
    acd.offer(call("old", at=0), 0)  # ana at 0
    acd.offer(call("young", at=5), 5)  # ben at 5
    acd.offer(call("waits", at=6), 6)
    assert acd.assigned_at("old") == 0 and acd.assigned_at("young") == 5 and acd.assigned_at("waits") is None
    assert acd.reap(99.9, 100) == type(acd.reap(0, 100))((), ())  # nobody is 100 s on the line yet
    out = acd.reap(100, 100)
    assert [(r.call.call_id, r.agent_id, r.assigned_at, r.age_s) for r in out.reaped] == [("old", "ana", 0, 100)]
    assert [(x.call.call_id, x.agent.id, x.waited_s) for x in out.assignments] == [("waits", "ana", 94)]
    assert acd.agents["ana"].active == {"waits"} and acd.agent_of("young") == "ben"
    assert acd.assigned_at("waits") == 100 and acd.assigned_at("old") is None
    # The reaped call is finished: a report that still comes changes nothing, a redelivered offer is a duplicate.
    assert acd.release("old", 101) == type(acd.release("nope", 0))(None, None, ())
    assert acd.offer_failed("old", 101, why="no_answer").reason == "unknown_call"
    assert acd.caller_left("old", 101).remembered is False
    assert acd.offer(call("old", at=102), 102).status == "duplicate"
    assert acd.agents["ana"].active == {"waits"}


def test_reap_frees_every_stale_call_oldest_first_and_dispatches_once_all_are_freed():
    acd = Acd([q()], [a("ana", max_concurrent=2), a("ben")])
    acd.offer(call("c1"), 3)  # ana
    acd.offer(call("c2"), 1)  # ben
    acd.offer(call("c3"), 2)  # ana (second slot)
    out = acd.reap(50, 10)
    assert [(r.call.call_id, r.agent_id) for r in out.reaped] == [("c2", "ben"), ("c3", "ana"), ("c1", "ana")]
    assert out.assignments == () and all(not s.active for s in acd.agents.values())
    assert acd.agents["ana"].idle_since == 50 and acd.finished == 3


def test_a_reoffer_counts_max_call_from_the_new_agent():
    acd = Acd([q()], [a("ana"), a("ben")])
    acd.offer(call("c1"), 0)
    acd.offer_failed("c1", 8, why="no_answer")  # to ben at 8
    assert acd.reap(10, 5).reaped == ()
    assert [(r.agent_id, r.age_s) for r in acd.reap(13, 5).reaped] == [("ben", 5)]


# -- hang-ups before the call reached the queue (caller_left) ---------------------------------------


def test_a_hang_up_read_before_its_call_queued_rejects_the_call_abandoned_without_an_agent():
    acd = Acd([q()], [a("ana")])
    left = acd.caller_left("c1", 3)
    assert (left.remembered, left.agent_id, left.abandoned, left.assignments) == (True, None, None, ())
    assert acd.hung_up_ids() == ["c1"] and not acd.knows("c1")
    r = acd.offer(call("c1", at=4), 4)
    assert (r.status, r.reason, r.detail) == ("rejected", "abandoned", "the caller hung up before the queue got the call")
    assert r.assignment is None and not acd.agents["ana"].active and acd.agents["ana"].handled == 0
    assert acd.hung_up_ids() == [] and acd.offer(call("c1", at=5), 5).status == "duplicate"
    assert assigned_agent(acd.offer(call("c2", at=6), 6)) == "ana"  # other calls are served as before


def test_caller_left_of_a_waiting_call_abandons_it_of_a_call_on_an_agent_frees_the_agent_of_a_finished_call_is_ignored():
    acd = Acd([q()], [a("ana")])
    acd.offer(call("talks", at=0), 0)
    acd.offer(call("waits", at=1), 1)
    acd.offer(call("next", at=2), 2)
    w = acd.caller_left("waits", 4)
    assert (w.remembered, w.abandoned.call.call_id, w.abandoned.why, w.abandoned.waited_s) == (False, "waits", "caller_hangup", 3)
    t = acd.caller_left("talks", 5)  # its call.routed had not reached the edge yet: the agent is free again
    assert (t.agent_id, t.remembered, [(x.call.call_id, x.agent.id) for x in t.assignments]) == ("ana", False, [("next", "ana")])
    done = acd.caller_left("talks", 6)  # redelivered: finished, nothing to remember
    assert done == type(done)(None, None, ()) and acd.hung_up_ids() == []


def test_remembered_hang_ups_are_bounded_forgotten_by_age_and_keep_their_first_time():
    acd = Acd([q()], [a("ana")], remember_hung_up=3)
    for i in range(5):
        acd.caller_left(f"h{i}", float(i))
    assert acd.hung_up_ids() == ["h2", "h3", "h4"]  # the oldest dropped first
    acd.caller_left("h2", 9.0)  # redelivered: still counts from 2
    assert acd.forget_hang_ups(12.0, 10) == 1 and acd.hung_up_ids() == ["h3", "h4"]
    assert acd.forget_hang_ups(13.9, 10) == 1 and acd.forget_hang_ups(13.9, 10) == 0
    assert assigned_agent(acd.offer(call("h2", at=14), 14)) == "ana"  # forgotten: offered as any call


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["offer", "release", "fail", "expire", "reap", "left"]), st.integers(0, 7)), max_size=60)
)
def test_invariants_with_reaps_and_hang_ups(events):
    """Capacity holds; a call is never both waiting and on an agent; a remembered hang-up is never live;
    a call whose caller left before it was offered never reaches an agent; no agent idles while a call it may take waits."""
    acd = Acd([q(max_wait_s=6)], [a("x", max_concurrent=2), a("y")])
    now = 0.0
    left_first: set[str] = set()
    for op, n in events:
        now += 1
        cid = f"c{n}"
        if op == "offer":
            r = acd.offer(call(cid, at=now), now)
            assert (cid not in left_first) or r.status in ("rejected", "duplicate")
        elif op == "release":
            acd.release(cid, now)
        elif op == "fail":
            acd.offer_failed(cid, now)
        elif op == "expire":
            acd.expire(now)
        elif op == "reap":
            for r in acd.reap(now, 3).reaped:
                assert r.age_s >= 3
        elif acd.caller_left(cid, now).remembered:
            left_first.add(cid)
        active = [c for s in acd.agents.values() for c in s.active]
        assert len(active) == len(set(active)) and not set(active) & left_first
        assert all(len(s.active) <= s.agent.max_concurrent for s in acd.agents.values())
        assert all(now - acd.assigned_at(c) < 3 or op != "reap" for c in active)
        waiting = {c.call_id for c in acd.waiting["q"]}
        assert not waiting & set(active) and not (waiting | set(active)) & set(acd.hung_up_ids())
        for s in acd.agents.values():
            if s.has_capacity:  # free only for calls it let ring
                assert all(s.agent.id in c.tried for c in acd.waiting["q"])
