"""Caller priority in the ACD: queues[].priority rules, FIFO within a priority, aging, re-queued calls keep their place."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.core.acd import Acd, WaitingCall, call_priority, effective_priority
from switchboard.core.config import Agent, ConfigError, Queue, RoutingConfig
from switchboard.platform.configfile import load_config


def vip_queue(aging: int | None = None) -> Queue:
    return Queue.model_validate(
        {
            "id": "q",
            "max_wait_s": 10_000,
            "priority_aging_s": aging,
            "priority": [
                {"when": {"campaigns": ["vip"]}, "priority": 10},
                {"when": {"answers": {"credit_score": {"gte": 700}}, "publishers": ["good"]}, "priority": 5},
                {"when": {"answers": {"language": {"in": ["es"]}}}, "priority": -1},
            ],
        }
    )


def test_the_first_rule_that_holds_gives_the_priority() -> None:
    queue = vip_queue()
    assert call_priority(queue, "vip", "any", {"credit_score": "720"}) == 10  # first rule wins
    assert call_priority(queue, "solar", "good", {"credit_score": "720"}) == 5
    assert call_priority(queue, "solar", "other", {"credit_score": "720"}) == 0  # publishers must hold too
    assert call_priority(queue, "solar", "good", {"credit_score": "650"}) == 0
    assert call_priority(queue, "solar", "good", {}) == 0  # a missing answer fails its condition
    assert call_priority(queue, "solar", "x", {"language": "es"}) == -1
    assert call_priority(Queue(id="plain"), "vip", "good", {}) == 0  # no rules: everyone 0


def _waiting(acd: Acd, cid: str, at: float, priority: int) -> None:
    assert acd.offer(WaitingCall(cid, "q", at, priority=priority), at).status == "waiting"


def test_higher_priority_is_served_first_fifo_within_a_priority() -> None:
    acd = Acd([vip_queue()], [Agent(id="ana", queues=["q"])])
    assert acd.offer(WaitingCall("busy", "q", 0.0), 0.0).status == "assigned"
    _waiting(acd, "low-1", 1.0, 0)
    _waiting(acd, "vip-1", 2.0, 10)
    _waiting(acd, "low-2", 3.0, 0)
    _waiting(acd, "vip-2", 4.0, 10)
    assert [acd.position(c, 5.0) for c in ("vip-1", "vip-2", "low-1", "low-2")] == [1, 2, 3, 4]
    served = []
    current = "busy"
    for t in (10.0, 20.0, 30.0, 40.0):
        rel = acd.release(current, t)
        (assignment,) = rel.assignments
        current = assignment.call.call_id
        served.append(current)
    assert served == ["vip-1", "vip-2", "low-1", "low-2"]


def test_aging_lets_a_low_priority_caller_through() -> None:
    queue = vip_queue(aging=30)
    acd = Acd([queue], [Agent(id="ana", queues=["q"])])
    assert acd.offer(WaitingCall("busy", "q", 0.0), 0.0).status == "assigned"
    _waiting(acd, "old-low", 0.0, 0)
    _waiting(acd, "new-vip", 290.0, 10)
    old = acd.call_of("old-low")
    assert old is not None and effective_priority(old, queue, 299.0) == 9  # 299 s / 30 s
    assert acd.position("new-vip", 299.0) == 1
    assert acd.position("old-low", 301.0) == 1  # 10 (aged) ties 10: the older arrival first
    (assignment,) = acd.release("busy", 301.0).assignments
    assert assignment.call.call_id == "old-low"


def test_a_requeued_call_keeps_its_priority_and_place() -> None:
    acd = Acd([vip_queue()], [Agent(id="ana", queues=["q"]), Agent(id="ben", queues=["q"])])
    assert acd.offer(WaitingCall("vip", "q", 0.0, priority=10), 0.0).assignment.agent.id == "ana"  # type: ignore[union-attr]
    assert acd.offer(WaitingCall("busy", "q", 0.0), 0.0).status == "assigned"  # ben
    _waiting(acd, "low", 1.0, 0)
    _waiting(acd, "vip-later", 5.0, 10)
    again = acd.offer_failed("vip", 6.0, why="no_answer")  # ana let it ring: back to waiting, ben busy
    assert again.status == "waiting"
    assert [(x.call.call_id, x.agent.id) for x in again.others] == [("vip-later", "ana")]  # ana's freed slot
    assert [c.call_id for c in acd.in_service_order(7.0)] == ["vip", "low"]  # priority 10 ahead of the earlier 0
    (assignment,) = acd.release("busy", 8.0).assignments
    assert assignment.call.call_id == "vip" and assignment.call.priority == 10 and assignment.agent.id == "ben"


def test_priority_survives_a_snapshot() -> None:
    queue = vip_queue()
    acd = Acd([queue], [Agent(id="ana", queues=["q"])])
    assert acd.offer(WaitingCall("busy", "q", 0.0), 0.0).status == "assigned"
    _waiting(acd, "low", 1.0, 0)
    _waiting(acd, "vip", 2.0, 10)
    restored = Acd.from_dict([queue], [Agent(id="ana", queues=["q"])], acd.to_dict())
    assert [c.call_id for c in restored.in_service_order(3.0)] == ["vip", "low"]
    assert "priority" not in acd.to_dict()["waiting"]["q"][0]  # default left out: snapshots stay small


def load_text(tmp_path: Path, text: str) -> RoutingConfig:
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return load_config(path)


BASE = """
version: 1
publishers: [{id: pub}]
buyers: [{id: b, destination: "+18005550100", bid: {type: static, price: 10}}]
campaigns:
  - id: camp
    numbers: ["+18885550123"]
    publisher: pub
    routing: {tiers: [{strategy: queue, queue: q}]}
agents: [{id: ana, queues: [q]}]
"""


def test_config_refuses_a_rule_naming_an_unknown_campaign_or_a_bad_operator(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_text(
            tmp_path,
            BASE
            + """
queues:
  - id: q
    priority:
      - {when: {campaigns: [cmap]}, priority: 5}
      - {when: {answers: {score: {greater: 5}}}, priority: 1}
""",
        )
    text = str(exc.value)
    assert "routing.yaml:15: queues.0.priority.0.when.campaigns.0: unknown campaign 'cmap'; did you mean camp?" in text
    assert "routing.yaml:16: queues.0.priority.1.when.answers.score.greater: unknown operator 'greater'" in text


def test_config_accepts_priority_and_aging(tmp_path: Path) -> None:
    cfg = load_text(
        tmp_path,
        BASE
        + """
queues:
  - id: q
    priority_aging_s: 30
    priority: [{when: {campaigns: [camp], answers: {score: {gte: 5}}}, priority: 5}]
""",
    )
    (queue,) = cfg.queues
    assert queue.priority_aging_s == 30 and queue.priority[0].priority == 5
