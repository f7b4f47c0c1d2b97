"""core.acd state persistence: to_dict / from_dict restore an ACD that behaves exactly like the original."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.core.acd import Acd, WaitingCall
from switchboard.core.config import Agent, Queue


def q(id="q", strategy="longest_idle", max_wait_s=60, match=()):
    return Queue(id=id, strategy=strategy, max_wait_s=max_wait_s, match=list(match))


def a(id, queues=("q",), **kw):
    return Agent(id=id, queues=list(queues), **kw)


def call(cid, queue="q", at=0.0, needs=None, **kw):
    return WaitingCall(call_id=cid, queue_id=queue, enqueued_at=at, needs=needs or {}, payload=f"payload-{cid}", **kw)


def via_json(acd: Acd, **kw) -> Acd:
    """What a restarted process gets: the state through JSON, payloads handed back by call id."""
    data = json.loads(json.dumps(acd.to_dict()))
    payloads = {c.call_id: c.payload for c in acd.live_calls()}
    return Acd.from_dict(acd.queues.values(), [s.agent for s in acd.agents.values()], data, payloads=payloads, **kw)


def test_round_trip_keeps_agents_waiting_lists_tried_agents_and_seen_ids():
    queues = [q("sales", match=["lang"]), q("rr", strategy="round_robin")]
    agents = [
        a("ana", ["sales"], skills={"lang": ["en"]}),
        a("ben", ["sales", "rr"], skills={"lang": ["en", "es"]}),
        a("cy", ["rr"]),
    ]
    acd = Acd(queues, agents)
    acd.offer(call("c1", "sales", 0, {"lang": "en"}, max_attempts=3), 0)  # ana
    acd.offer(call("c2", "sales", 1, {"lang": "es"}), 1)  # ben
    acd.offer(call("c3", "sales", 2, {"lang": "en"}), 2)  # waits
    acd.offer_failed("c1", 3, attempt=1, why="no_answer")  # ana free → c3; c1 back to the head (ben busy, ana tried)
    acd.offer(call("c4", "rr", 4), 4)  # cy (round robin after nobody)
    acd.release("c4", 5)
    acd.offer(call("c5", "sales", 6, {"lang": "es"}), 6)  # waits behind requeued c1

    restored = via_json(acd)
    assert restored.to_dict() == acd.to_dict()
    assert restored.agent_of("c2") == "ben" and restored.agent_of("c3") == "ana"
    c1 = restored.call_of("c1")
    assert (c1.attempt, c1.max_attempts, c1.tried, c1.requeued, c1.payload) == (
        2,
        3,
        {"ana": "no_answer on offer 1"},
        True,
        "payload-c1",
    )
    assert [c.call_id for c in restored.waiting["sales"]] == ["c1", "c5"]
    assert restored.offer(call("c4", "rr", 7), 7).status == "duplicate"  # finished ids survive
    assert restored.agents["ana"].has_capacity is False and restored.agents["cy"].idle_since == 5
    # Round robin goes on after the agent used last (cy), not from the start of the list.
    assert restored.offer(call("c6", "rr", 8), 8).assignment.agent.id == "cy"


def test_time_shift_moves_enqueue_and_idle_times_so_max_wait_counts_from_the_first_arrival():
    acd = Acd([q(max_wait_s=30)], [a("ana")])
    acd.offer(call("c1", at=100.0), 100.0)
    acd.offer(call("c2", at=110.0), 110.0)  # waits
    acd.release("c1", 115.0)  # c2 to ana
    acd.offer(call("c3", at=120.0), 120.0)  # waits since 120
    # The new process's clock reads 1000 less for the same instant.
    restored = via_json(acd, time_shift=-1000.0)
    assert restored.call_of("c3").enqueued_at == -880.0
    assert restored.agents["ana"].idle_since == -885.0
    assert restored.expire(-851.0) == []  # 29 s after it arrived
    [gone] = restored.expire(-850.0)  # 30 s
    assert (gone.call.call_id, gone.waited_s) == ("c3", 30.0)


def test_calls_of_removed_queues_and_agents_become_orphans_and_count_as_seen():
    acd = Acd([q("keep"), q("gone")], [a("ana", ["keep"]), a("ben", ["gone"])])
    acd.offer(call("on-ben", "gone"), 0)
    acd.offer(call("waits", "gone"), 0)
    acd.offer(call("on-ana", "keep"), 0)
    restored = Acd.from_dict([q("keep")], [a("ana", ["keep"])], json.loads(json.dumps(acd.to_dict())))
    assert {(o.call.call_id, o.agent_id, o.reason) for o in restored.orphans} == {
        ("on-ben", "ben", "agent_removed"),
        ("waits", None, "queue_removed"),
    }
    assert restored.agent_of("on-ana") == "ana"
    assert restored.offer(call("waits", "keep"), 1).status == "duplicate"


def test_done_ids_and_finished_counter_give_the_newest_finished_calls_in_order():
    acd = Acd([q()], [a("ana")], remember=3)
    for i in range(5):
        acd.offer(call(f"c{i}"), i)
        acd.release(f"c{i}", i)
    assert acd.finished == 5
    assert acd.done_ids() == ["c2", "c3", "c4"]
    assert acd.done_ids(last=2) == ["c3", "c4"]
    assert acd.done_ids(last=0) == []
    # Restored without the ids in the dict, with the owner's own list instead (oldest first, bounded).
    data = acd.to_dict(done=False)
    assert "done" not in data
    restored = Acd.from_dict(
        acd.queues.values(), [s.agent for s in acd.agents.values()], data, done=["x", "c3", "c4"], remember=2
    )
    assert restored.done_ids() == ["c3", "c4"]


def test_payloads_can_be_stored_as_references_and_come_back_as_stored():
    acd = Acd([q()], [a("ana")])
    acd.offer(call("c1"), 0)
    acd.offer(call("c2"), 0)  # waits
    data = json.loads(json.dumps(acd.to_dict(payload=lambda p: {"ref": p})))
    restored = Acd.from_dict([q()], [a("ana")], data)
    assert [c.payload for c in restored.live_calls()] == [{"ref": "payload-c1"}, {"ref": "payload-c2"}]
    assert "payload" not in json.dumps(acd.to_dict())  # left out by default
    assert Acd.from_dict([q()], [a("ana")], data, payloads={"c2": "given"}).call_of("c2").payload == "given"


def test_assignment_times_and_remembered_hang_ups_survive_a_restart_moved_by_time_shift():
    acd = Acd([q(max_wait_s=1000)], [a("ana"), a("ben")])
    acd.offer(call("c1", at=100.0), 100.0)  # ana at 100
    acd.offer(call("c2", at=150.0), 150.0)  # ben at 150
    acd.offer(call("c3", at=160.0), 160.0)  # waits
    acd.caller_left("gone", 170.0)
    acd.caller_left("older", 120.0)
    data = json.loads(json.dumps(acd.to_dict()))
    assert [(x["call_id"], x["assigned_at"]) for x in data["active"]] == [("c1", 100.0), ("c2", 150.0)]
    assert data["hung_up"] == [["gone", 170.0], ["older", 120.0]]
    # The new process's clock reads 1000 less for the same instant.
    restored = via_json(acd, time_shift=-1000.0)
    assert (restored.assigned_at("c1"), restored.assigned_at("c2")) == (-900.0, -850.0)
    assert restored.hung_up_ids() == ["gone", "older"]
    assert restored.forget_hang_ups(-831.0, 50) == 0  # "older" was read 49 s ago
    assert restored.forget_hang_ups(-830.0, 50) == 1 and restored.hung_up_ids() == ["gone"]
    r = restored.offer(call("gone", at=-829.0), -829.0)
    assert (r.status, r.reason) == ("rejected", "abandoned")
    assert restored.reap(-801.0, 100).reaped == ()  # c1 is 99 s on the line
    out = restored.reap(-800.0, 100)
    assert [(r.call.call_id, r.agent_id, r.age_s) for r in out.reaped] == [("c1", "ana", 100.0)]
    assert [(x.call.call_id, x.agent.id) for x in out.assignments] == [("c3", "ana")]


def test_a_state_written_before_assignment_times_were_kept_counts_its_calls_from_the_load():
    acd = Acd([q()], [a("ana"), a("ben")])
    acd.offer(call("c1"), 0.0)
    acd.offer(call("c2"), 0.0)
    old = json.loads(json.dumps(acd.to_dict()))
    for item in old["active"]:
        del item["assigned_at"]  # as an older release wrote it
    del old["hung_up"]
    assert old["version"] == 1
    restored = Acd.from_dict([q()], [a("ana"), a("ben")], old, now=500.0)
    assert restored.hung_up_ids() == [] and restored.assigned_at("c1") == 500.0
    assert restored.reap(599.0, 100).reaped == ()  # not at once: max_call counts from the load
    assert {r.call.call_id for r in restored.reap(600.0, 100).reaped} == {"c1", "c2"}
    # Without `now`, from the first reap that sees the calls.
    lazy = Acd.from_dict([q()], [a("ana"), a("ben")], old)
    assert lazy.assigned_at("c1") is None and lazy.to_dict()["active"][0]["assigned_at"] is None
    assert lazy.reap(700.0, 100).reaped == () and lazy.assigned_at("c1") == 700.0
    assert lazy.reap(799.0, 100).reaped == () and len(lazy.reap(800.0, 100).reaped) == 2


def test_restored_hang_ups_skip_calls_the_state_knows_and_stay_bounded():
    acd = Acd([q()], [a("ana")])
    acd.offer(call("c1"), 0.0)
    data = json.loads(json.dumps(acd.to_dict()))
    data["hung_up"] = [["c1", 1.0], ["h1", 2.0], ["seen", 3.0], ["h2", 4.0], ["h3", 5.0]]
    restored = Acd.from_dict([q()], [a("ana")], data, done=["seen"], remember_hung_up=2)
    assert restored.hung_up_ids() == ["h2", "h3"]


def test_unknown_state_version_is_refused():
    with pytest.raises(ValueError, match="version"):
        Acd.from_dict([q()], [a("ana")], {"version": 99})


# -- property: a restored ACD makes the same decisions as the original ------------------------------
def summary(result) -> object:
    """The decisions in a result of offer / release / offer_failed / expire, as plain data."""
    if isinstance(result, list):
        return [(x.call.call_id, x.why, x.waited_s) for x in result]
    if isinstance(result, int):  # forget_hang_ups
        return result
    d = {}
    for name in ("status", "position", "reason", "detail", "agent_id"):
        if hasattr(result, name):
            d[name] = getattr(result, name)
    for name in ("assignment",):
        x = getattr(result, name, None)
        d[name] = x and (x.call.call_id, x.agent.id, x.call.attempt, x.waited_s, x.considered)
    for name in ("assignments", "others"):
        d[name] = [(x.call.call_id, x.agent.id, x.call.attempt, x.waited_s, x.considered) for x in getattr(result, name, ())]
    abandoned = getattr(result, "abandoned", None)
    d["abandoned"] = abandoned and (abandoned.call.call_id, abandoned.why)
    d["remembered"] = getattr(result, "remembered", None)
    d["reaped"] = [(r.call.call_id, r.agent_id, r.assigned_at, r.age_s) for r in getattr(result, "reaped", ())]
    return d


ops = st.lists(
    st.tuples(
        st.sampled_from(["offer", "offer", "offer", "release", "failed", "failed", "expire", "reap", "left", "forget"]),
        st.integers(0, 11),
        st.integers(0, 2),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.integers(0, 60), st.sampled_from(["longest_idle", "round_robin", "fewest_calls", "best_performer"]))
def test_restored_acd_decides_exactly_like_the_original(steps, cut, strategy):
    queues = [q("a", strategy, max_wait_s=7, match=["lang"]), q("b", strategy, max_wait_s=4)]
    agents = [
        a("x", ["a", "b"], skills={"lang": ["en"]}, performance=0.5),
        a("y", ["a"], skills={"lang": ["en", "es"]}, max_concurrent=2, performance=0.9),
        a("z", ["b"]),
    ]
    original = Acd(queues, agents, remember=6)
    restored: Acd | None = None
    for i, (op, n, qi, extra) in enumerate(steps):
        if i == cut:
            restored = via_json(original, remember=6)
        now = float(i)
        cid = f"c{n}"
        results = []
        for acd in (original, restored) if restored else (original,):
            if op == "offer":
                queue = ["a", "b", "nope"][qi]
                needs = {"lang": ["en", "es", "fr", ""][extra]} if queue == "a" else {}
                r = acd.offer(
                    WaitingCall(cid, queue, now, {k: v for k, v in needs.items() if v}, max_attempts=2 + extra % 2), now
                )
            elif op == "release":
                r = acd.release(cid, now)
            elif op == "failed":
                r = acd.offer_failed(cid, now, attempt=extra % 3, why="no_answer")
            elif op == "reap":
                r = acd.reap(now, 2 + extra)
            elif op == "left":
                r = acd.caller_left(cid, now)
            elif op == "forget":
                r = acd.forget_hang_ups(now, 1 + extra)
            else:
                r = acd.expire(now)
            results.append(summary(r))
        assert all(x == results[0] for x in results)
    if restored is not None:
        assert restored.to_dict() == original.to_dict()
