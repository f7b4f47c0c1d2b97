"""The simulator reports a queue's waits per priority: callers a priority rule lifts wait less."""

from __future__ import annotations

from switchboard.core.config import RoutingConfig
from switchboard.simulation import run


def two_campaigns_one_queue(aging_s: int | None = None) -> RoutingConfig:
    """VIP and standard callers (two campaigns) share a queue of 2 agents loaded at ρ 0.8 (48 calls/h per campaign, 60 s handle times); VIPs get priority 5."""
    return RoutingConfig.model_validate(
        {
            "publishers": [{"id": "pub"}],
            "campaigns": [
                {
                    "id": cid,
                    "numbers": [number],
                    "publisher": "pub",
                    "routing": {"tiers": [{"strategy": "queue", "queue": "q"}]},
                }
                for cid, number in (("vip", "+18885550101"), ("standard", "+18885550102"))
            ],
            "queues": [
                {
                    "id": "q",
                    "max_wait_s": 10**6,
                    "priority": [{"when": {"campaigns": ["vip"]}, "priority": 5}],
                    **({"priority_aging_s": aging_s} if aging_s else {}),
                }
            ],
            "agents": [{"id": f"agent-{i}", "queues": ["q"]} for i in (1, 2)],
            "simulation": {
                "traffic": {"calls_per_hour": 48},
                "agents": {"defaults": {"handle_time_s": {"type": "exponential", "mean": 60}}},
            },
        }
    )


def test_waits_by_priority_favour_the_higher_priority() -> None:
    q = run(two_campaigns_one_queue(), 6_000, seed=3).to_dict()["queues"]["q"]
    by = q["waits_by_priority"]
    assert list(by) == ["5", "0"]  # highest first
    assert by["5"]["calls"] + by["0"]["calls"] == q["calls"] == 6_000
    assert by["5"]["calls"] > 1_000 and by["0"]["calls"] > 1_000  # both campaigns get traffic
    assert by["5"]["reached_agent"] + by["0"]["reached_agent"] == q["answered"]
    # ρ 0.8: standard callers wait behind every VIP who arrives meanwhile
    assert by["5"]["avg_wait_s"] * 2 < by["0"]["avg_wait_s"]
    overall = (by["5"]["avg_wait_s"] * by["5"]["reached_agent"] + by["0"]["avg_wait_s"] * by["0"]["reached_agent"]) / q[
        "answered"
    ]
    assert abs(overall - q["avg_wait_s"]) < 1e-6


def test_aging_narrows_the_gap() -> None:
    plain = run(two_campaigns_one_queue(), 6_000, seed=3).to_dict()["queues"]["q"]["waits_by_priority"]
    aged = run(two_campaigns_one_queue(aging_s=10), 6_000, seed=3).to_dict()["queues"]["q"]["waits_by_priority"]
    # every 10 s waited adds 1: a standard caller overtakes new VIPs after 50 s, so its longest wait shrinks
    assert aged["0"]["max_wait_s"] < plain["0"]["max_wait_s"]
    assert aged["5"]["avg_wait_s"] > plain["5"]["avg_wait_s"]
