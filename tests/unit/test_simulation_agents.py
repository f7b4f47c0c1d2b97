"""The simulator's agents follow core.agents: wrap-up after each call (wrap_up_s) keeps them from the next
call, and `login: desk` agents take calls (logged in for the whole run: no desk in a simulation)."""

from __future__ import annotations

from switchboard.core.config import RoutingConfig
from switchboard.simulation import run
from switchboard.simulation.fidelity import mmc_config


def with_queue(config: RoutingConfig, **fields: object) -> RoutingConfig:
    data = config.model_dump(exclude_unset=True)
    data["queues"][0].update(fields)
    return RoutingConfig.model_validate(data)


def test_wrap_up_keeps_agents_from_the_next_call() -> None:
    base = mmc_config(60, 30, 2)  # ρ 0.25 without wrap-up
    plain = run(base, 4_000, seed=4).to_dict()["queues"]["q"]
    wrapped = run(with_queue(base, wrap_up_s=30), 4_000, seed=4).to_dict()["queues"]["q"]
    assert plain["answered"] == wrapped["answered"] == 4_000
    # 30 s of wrap-up after 30 s of talk: each call holds its agent about twice as long (ρ ≈ 0.5)
    assert wrapped["wait_probability"] > 2 * plain["wait_probability"]
    assert wrapped["avg_wait_s"] > 2 * plain["avg_wait_s"]
    assert abs(wrapped["avg_handle_s"] - plain["avg_handle_s"]) < 3  # wrap-up is not talk time


def test_desk_agents_take_calls() -> None:
    data = mmc_config(60, 30, 2).model_dump(exclude_unset=True)
    for a in data["agents"]:
        a["login"] = "desk"
    out = run(RoutingConfig.model_validate(data), 500, seed=4).to_dict()
    assert out["queues"]["q"]["answered"] == 500
    assert sum(a["calls"] for a in out["agents"].values()) == 500
