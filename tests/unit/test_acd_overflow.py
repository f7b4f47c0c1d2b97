"""Overflow: a queue tier gives calls back to routing, the tiers after it go on (docs/ACD.md, Overflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from switchboard.core import engine, reasons
from switchboard.core.acd import OVERFLOW_AFTER, OVERFLOW_PROJECTED, Acd, WaitingCall
from switchboard.core.config import Agent, ConfigError, Queue, RoutingConfig
from switchboard.platform.configfile import load_config
from tests.unit.test_engine import NOW, call, make_config, static
from tests.unit.test_simulation import config as sim_config
from tests.unit.test_simulation import records


def waiting(cid: str, at: float = 0.0, needs: dict[str, str] | None = None, can_overflow: bool = True) -> WaitingCall:
    return WaitingCall(cid, "q", at, needs or {}, can_overflow=can_overflow)


def test_no_matching_agent_overflows_when_a_later_tier_exists_and_is_rejected_otherwise() -> None:
    queue = Queue(id="q", match=["language"])
    acd = Acd([queue], [Agent(id="ana", queues=["q"], skills={"language": ["en"]})])
    out = acd.offer(waiting("c1", needs={"language": "fr"}), 0.0)
    assert (out.status, out.reason) == ("overflow", reasons.NO_MATCHING_AGENT)
    assert acd.offer(waiting("c1", needs={"language": "fr"}), 1.0).status == "duplicate"  # finished here
    last = acd.offer(waiting("c2", needs={"language": "fr"}, can_overflow=False), 0.0)
    assert (last.status, last.reason) == ("rejected", reasons.NO_MATCHING_AGENT)
    no_agents = Acd([Queue(id="q")], []).offer(waiting("c3"), 0.0)
    assert (no_agents.status, no_agents.reason) == ("overflow", reasons.NO_AGENTS)


def test_every_agent_letting_it_go_overflows() -> None:
    acd = Acd([Queue(id="q")], [Agent(id="ana", queues=["q"])])
    assert acd.offer(waiting("c1"), 0.0).status == "assigned"
    r = acd.offer_failed("c1", 5.0, why="no_answer")
    assert (r.status, r.reason) == ("overflow", reasons.ALL_DECLINED) and r.call is not None and r.call.attempt == 2


def test_waiting_calls_overflow_after_overflow_after_s_or_a_long_projected_wait() -> None:
    after = Queue(id="q", max_wait_s=600, overflow_after_s=60)
    acd = Acd([after], [Agent(id="ana", queues=["q"])])
    assert acd.offer(waiting("busy", can_overflow=False), 0.0).status == "assigned"
    assert acd.offer(waiting("w1", 0.0), 0.0).status == "waiting"
    assert acd.offer(waiting("stay", 0.0, can_overflow=False), 0.0).status == "waiting"  # last tier: it waits on
    assert acd.overflow(59.0) == []
    (due,) = acd.overflow(60.0)
    assert (due.call.call_id, due.reason, due.waited_s) == ("w1", OVERFLOW_AFTER, 60.0)
    assert acd.call_of("w1") is None and acd.call_of("stay") is not None

    projected = Queue(id="q", max_wait_s=600, overflow_when_projected_wait_s=100)
    acd = Acd([projected], [Agent(id="ana", queues=["q"])])
    assert acd.offer(waiting("busy", can_overflow=False), 0.0).status == "assigned"
    for cid in ("p1", "p2", "p3"):
        assert acd.offer(waiting(cid, 1.0), 1.0).status == "waiting"
    assert acd.overflow(2.0) == []  # no handle time known yet: no projection, nobody overflows
    due = acd.overflow(2.0, lambda _q: 60.0)  # places 1, 2, 3 of one slot: 60, 120, 180 s
    assert [(o.call.call_id, o.reason) for o in due] == [("p2", OVERFLOW_PROJECTED), ("p3", OVERFLOW_PROJECTED)]
    assert "projected wait 120s" in due[0].detail


def test_routing_resumes_after_the_queue_tier_with_the_offers_counted() -> None:
    cfg = make_config(
        [static("a", "40.00"), static("b", "30.00")],
        [{"strategy": "queue", "queue": "sales"}, {"strategy": "priority", "buyers": ["a", "b"]}],
    )
    assert engine.has_later_tier(cfg, "camp", 0) and not engine.has_later_tier(cfg, "camp", 1)
    first = engine.start_routing(cfg, call(), NOW)
    assert isinstance(first.action, engine.HandToQueue)
    step = engine.resume_after_queue(cfg, call(), 0, 3, first.progress.trace, NOW)
    assert isinstance(step.action, engine.RouteToBuyer)
    assert (step.action.buyer_id, step.action.tier_index, step.action.attempt) == ("a", 1, 3)
    assert any("handed to queue sales" in n for n in step.progress.trace.notes)  # the story so far is kept
    capped = engine.resume_after_queue(cfg, call(), 0, 4, first.progress.trace, NOW)
    assert isinstance(capped.action, engine.RejectCall) and capped.action.reason == reasons.MAX_ATTEMPTS  # 3 made


BASE = """
version: 1
publishers: [{id: pub}]
buyers: [{id: b, destination: "+18005550100", bid: {type: static, price: 10}}]
agents: [{id: ana, queues: [q, r]}]
"""


def _load(tmp_path: Path, text: str) -> RoutingConfig:
    path = tmp_path / "routing.yaml"
    path.write_text(BASE + text)
    return load_config(path)


def test_config_refuses_overflow_settings_nothing_could_use_and_a_queue_twice(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        _load(
            tmp_path,
            """
campaigns:
  - id: camp
    numbers: ["+18885550123"]
    publisher: pub
    routing: {tiers: [{strategy: queue, queue: q}, {strategy: queue, queue: q}]}
queues:
  - {id: q}
  - {id: r, overflow_after_s: 30}
""",
        )
    text = str(exc.value)
    assert "campaigns.0.routing.tiers.1.queue: queue 'q' is already tier 0 of this campaign" in text
    assert "queues.1.overflow_after_s: overflow_after_s is set but no campaign has tiers after this queue's tier" in text


def test_config_accepts_overflow_to_buyers(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        """
campaigns:
  - id: camp
    numbers: ["+18885550123"]
    publisher: pub
    routing: {tiers: [{strategy: queue, queue: q}, {strategy: price, buyers: [b]}]}
queues:
  - {id: q, overflow_after_s: 30, overflow_when_projected_wait_s: 120}
  - {id: r}
""",
    )
    assert cfg.queues[0].overflow_after_s == 30


def test_the_simulator_overflows_a_queue_with_nobody_to_the_buyers_of_the_next_tier() -> None:
    sections: dict[str, Any] = {
        "campaigns": [
            {
                "id": "camp",
                "numbers": ["+18885550123"],
                "publisher": "pub",
                "routing": {"tiers": [{"strategy": "queue", "queue": "q"}, {"strategy": "price", "buyers": ["b1"]}]},
            }
        ],
        "queues": [{"id": "q"}],  # nobody on the line tonight
    }
    summary, calls = records(sim_config(**sections), 50)
    assert summary["queues"]["q"]["overflowed"] == 50
    outcomes = [c["outcome"] for c in calls]
    assert all((o["kind"], o["buyer_id"], o["tier"], o["attempt"]) == ("buyer", "b1", 1, 1) for o in outcomes), outcomes[0]
    assert all(c["trace"]["winning_tier"] == 1 for c in calls)
    assert all("queue q: overflowed after 0.0s" in c["trace"]["notes"] for c in calls)
