"""core.waits: projected waits from the live state, the running estimates, Erlang C (docs/ACD.md)."""

from __future__ import annotations

import math

import pytest

from switchboard.core.acd import Acd, WaitingCall
from switchboard.core.config import Agent, Queue
from switchboard.core.waits import QueueEstimates, erlang_c, projected_wait_s


def test_projected_wait_is_the_kth_departure_of_the_busy_slots() -> None:
    assert projected_wait_s(1, slots=2, free_slots=0, handle_time_s=120) == 60  # 1 · 120 / 2
    assert projected_wait_s(3, slots=2, free_slots=0, handle_time_s=120) == 180
    assert projected_wait_s(1, slots=2, free_slots=1, handle_time_s=120) == 0  # a free slot takes it
    assert projected_wait_s(2, slots=2, free_slots=1, handle_time_s=120) == 60  # the free slot takes the first
    assert projected_wait_s(1, slots=2, free_slots=0, handle_time_s=None) is None  # no handle time yet
    assert projected_wait_s(1, slots=0, free_slots=0, handle_time_s=60) is None  # nobody to wait for


def test_the_acd_projects_a_waiting_calls_wait_over_the_agents_that_can_take_it() -> None:
    queue = Queue(id="q", match=["language"], max_wait_s=10_000)
    agents = [
        Agent(id="en1", queues=["q"], skills={"language": ["en"]}),
        Agent(id="en2", queues=["q"], skills={"language": ["en"]}),
        Agent(id="es1", queues=["q"], skills={"language": ["es"]}),
    ]
    acd = Acd([queue], agents)
    for cid in ("a", "b"):
        assert acd.offer(WaitingCall(cid, "q", 0.0, {"language": "en"}), 0.0).status == "assigned"
    assert acd.offer(WaitingCall("w1", "q", 1.0, {"language": "en"}), 1.0).status == "waiting"
    assert acd.offer(WaitingCall("w2", "q", 2.0, {"language": "en"}), 2.0).status == "waiting"
    assert acd.slots("q", {"language": "en"}) == (2, 0)  # es1 is free, and cannot take them
    assert acd.projected_wait("w1", 3.0, 100.0) == 50.0
    assert acd.projected_wait("w2", 3.0, 100.0) == 100.0
    assert acd.projected_wait("a", 3.0, 100.0) is None  # on an agent, not waiting
    acd.release("a", 4.0)  # w1 takes en1's slot
    assert acd.projected_wait("w2", 4.0, 100.0) == 50.0


def test_estimates_follow_arrivals_and_handle_times() -> None:
    est = QueueEstimates(rate_window_s=100.0)
    assert est.handle_time_s("q") is None and est.arrival_rate("q", 0.0) == 0.0
    for t in range(1000):  # one call a second for long past the window: the rate tends to 1/s
        est.arrived("q", float(t))
    assert est.arrival_rate("q", 999.0) == pytest.approx(1.0, rel=0.02)
    assert est.arrival_rate("q", 1099.0) == pytest.approx(math.exp(-1), rel=0.02)  # decays by e per window
    est.handled("q", 100)
    assert est.handle_time_s("q") == 100
    est.handled("q", 200)
    assert est.handle_time_s("q") == pytest.approx(120)  # 100 + 0.2 · (200 − 100)
    restored = QueueEstimates(rate_window_s=100.0)
    restored.load(est.to_dict(), time_shift=10.0)
    assert restored.handle_time_s("q") == est.handle_time_s("q")
    assert restored.arrival_rate("q", 1109.0) == pytest.approx(est.arrival_rate("q", 1099.0))


def test_erlang_c_known_case_and_refuses_an_unstable_queue() -> None:
    # λ = 1/s, h = 3 s (a = 3), c = 4: C(4, 3) ≈ 0.5094, ASA = C · h / (c − a) ≈ 1.528 s (textbook value)
    out = erlang_c(1.0, 3.0, 4)
    assert out.wait_probability == pytest.approx(0.5094, abs=1e-4)
    assert out.avg_wait_s == pytest.approx(1.528, abs=1e-3)
    with pytest.raises(ValueError, match="utilisation"):
        erlang_c(2.0, 3.0, 4)
