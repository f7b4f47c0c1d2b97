"""The simulator's queue statuses and callbacks run on core.acd: offered past callback_offer_after_s,
accepted with callback_accept_rate, placed to a reserved agent, answered with callback_answer_rate,
retried callback_retries times, then callback_failed; every accepted callback ends exactly one way."""

from __future__ import annotations

from switchboard.core.config import RoutingConfig
from switchboard.simulation import run


def callback_queue(accept: float, answer: float, handle_s: float = 65, **queue: object) -> RoutingConfig:
    return RoutingConfig.model_validate(
        {
            "publishers": [{"id": "pub"}],
            "campaigns": [
                {
                    "id": "c",
                    "numbers": ["+18885550101"],
                    "publisher": "pub",
                    "routing": {"tiers": [{"strategy": "queue", "queue": "q"}]},
                }
            ],
            "queues": [
                {
                    "id": "q",
                    "max_wait_s": 900,
                    "announce_every_s": 20,
                    "callback_offer_after_s": 60,
                    "callback_retries": 1,
                    "callback_retry_after_s": 30,
                    **queue,
                }
            ],
            "agents": [{"id": f"agent-{i}", "queues": ["q"]} for i in (1, 2)],
            "simulation": {
                "traffic": {"calls_per_hour": 100},
                "agents": {"defaults": {"handle_time_s": {"type": "exponential", "mean": handle_s}, "ring_s": 10}},
                "queues": {"q": {"callback_accept_rate": accept, "callback_answer_rate": answer}},
            },
        }
    )


def test_callbacks_are_offered_accepted_placed_and_each_ends_once() -> None:
    out = run(callback_queue(0.6, 0.7), 3_000, seed=5).to_dict()
    q = out["queues"]["q"]
    assert q["announcements"] >= q["callbacks_offered"] > 100
    assert 0.5 < q["callbacks_accepted"] / q["callbacks_offered"] < 0.7
    # every accepted callback ends once: connected to its agent, failed after its retries, or expired
    assert q["callbacks_accepted"] == q["callbacks_connected"] + q["callbacks_failed"] + q["callbacks_expired"]
    assert q["callbacks_placed"] >= q["callbacks_connected"] + q["callbacks_failed"] * 2  # a failed one was tried twice
    assert 0.6 < q["callbacks_connected"] / q["callbacks_placed"] < 0.8
    assert out["rejects_by_reason"].get("callback_failed", 0) == q["callbacks_failed"] > 0
    assert out["rejects_by_reason"].get("callback_expired", 0) == q["callbacks_expired"]
    assert sum(out["outcomes"].values()) == 3_000


def test_nobody_accepts_no_callback_is_placed() -> None:
    q = run(callback_queue(0.0, 1.0), 1_000, seed=5).to_dict()["queues"]["q"]
    assert q["callbacks_offered"] > 0
    assert q["callbacks_accepted"] == q["callbacks_placed"] == q["callbacks_connected"] == 0


def test_callbacks_not_placed_in_time_expire() -> None:
    # 2 agents offered far more than they can take (10-minute calls): a callback waits past callback_max_wait_s
    out = run(callback_queue(1.0, 1.0, handle_s=600, callback_max_wait_s=60), 600, seed=2).to_dict()
    q = out["queues"]["q"]
    assert q["callbacks_expired"] > 0
    assert out["rejects_by_reason"]["callback_expired"] == q["callbacks_expired"]
