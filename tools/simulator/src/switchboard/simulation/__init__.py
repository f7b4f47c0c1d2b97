"""Offline simulation of a routing configuration through the routing core (docs/SIMULATION.md).

    from switchboard.simulation import run
    result = run("libs/platform/src/switchboard/examples/demo.yaml", calls=10_000, seed=1)
    result.revenue, result.fill_rate, result.to_dict()

`run` and `compare` use the same core as the router (core.engine, core.ledger, core.acd): no
routing decision is made here, only the outside world is simulated (see simulator.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from switchboard.core.config import RoutingConfig
from switchboard.platform.configfile import load_config
from switchboard.simulation.compare import Comparison
from switchboard.simulation.compare import compare as _compare
from switchboard.simulation.erlang import ErlangC, erlang_c
from switchboard.simulation.results import Outcome, Tally
from switchboard.simulation.simulator import CallRecord, CallSink, SimCall, Simulator

__all__ = [
    "CallRecord",
    "CallSink",
    "Comparison",
    "ErlangC",
    "Outcome",
    "SimCall",
    "Simulator",
    "Tally",
    "compare",
    "erlang_c",
    "run",
]


def _config(config: RoutingConfig | str | Path) -> RoutingConfig:
    return config if isinstance(config, RoutingConfig) else load_config(config)


def run(
    config: RoutingConfig | str | Path,
    calls: int,
    seed: int = 1,
    *,
    on_call: CallSink | None = None,
    progress: Callable[[int], None] | None = None,
) -> Tally:
    """Simulate `calls` calls of `config` (a loaded config or a YAML path) with `seed`; same inputs, same result.

    `on_call(record)` gets every call as it ends (a CallRecord: `.outcome`, `.trace()`, `.to_dict()`);
    `progress(n)` is called every 1000 arrivals.
    """
    return Simulator(_config(config), seed, on_call=on_call).run(calls, progress)


def compare(
    config_a: RoutingConfig | str | Path,
    config_b: RoutingConfig | str | Path,
    calls: int,
    runs: int,
    seed: int = 1,
    progress: Callable[[int], None] | None = None,
) -> Comparison:
    """Plans A and B on the same traffic, `runs` paired runs (seeds seed..seed+runs−1); B − A with 95% CIs."""
    return _compare(_config(config_a), _config(config_b), calls, runs, seed, progress)
