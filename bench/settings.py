"""Bench settings from the environment (prefix BENCH_); BENCH_QUICK=1 shortens every stage to a smoke run."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bench.measure import P99_BOUND_MS

STAGES = ("floor", "core", "simulator", "live", "workers")

# Budgets per profile: (full, quick). Every stage is bounded by these, so a run ends in time.
PROFILES: dict[str, tuple[object, object]] = {
    "step_s": (20.0, 4.0),  # seconds of traffic per live rate step
    "warmup_s": (3.0, 1.0),  # unmeasured traffic after a stack starts (connections, first fetches)
    "idle_s": (5.0, 2.0),  # the started stack's CPU use with no calls
    "drain_s": (10.0, 5.0),  # after a step's last call: how long the backlog may take to drain
    "start_rate": (5.0, 5.0),  # calls/s of the first live step
    "rate_factor": (1.5, 2.0),  # each step offers this many times the previous rate
    "max_steps": (9, 2),  # live steps per buyer mode at most (the ramp stops at the first rate that does not keep up)
    "confirm_failures": (True, False),  # a step that does not keep up (but drained) is run once more before the ramp stops
    "floor_latency_s": (5.0, 1.5),  # paced relay traffic for the hop latency
    "floor_rate": (200.0, 200.0),  # msgs/s of the paced relay traffic
    "floor_messages": (5000, 1000),  # flooded into the relay for its msgs/s
    "core_s": (5.0, 1.0),  # seconds of routing-core decisions
    "sim_target_s": (10.0, 2.0),  # the simulator run is sized to take about this long
    "sim_timeout_s": (120.0, 30.0),  # a simulator run taking longer is stopped
}


class BenchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_", extra="ignore")

    quick: bool = Field(False, description="short smoke run: every stage a few seconds")
    stages: str = Field(",".join(STAGES), description=f"comma-separated subset of {', '.join(STAGES)}")
    out_dir: Path = Field(Path(__file__).resolve().parent, description="where results.json and results.md go")
    partitions: int = Field(4, ge=1, description="partitions per topic (as `switchboard run`)")
    seed: int = 1
    talk_scale: float = Field(0.01, ge=0, description="demo talk time scale, as `switchboard run`")
    p99_bound_ms: float = Field(P99_BOUND_MS, gt=0, description="a live step whose decision p99 is above this does not keep up")
    workers_rate: float = Field(0.0, ge=0, description="(e) calls/s; 0: the one-worker limit found by (b) with static buyers")
    # Profile budgets; None takes the full or quick default from PROFILES.
    step_s: float | None = None
    warmup_s: float | None = None
    idle_s: float | None = None
    drain_s: float | None = None
    start_rate: float | None = None
    rate_factor: float | None = None
    max_steps: int | None = None
    confirm_failures: bool | None = None
    floor_latency_s: float | None = None
    floor_rate: float | None = None
    floor_messages: int | None = None
    core_s: float | None = None
    sim_target_s: float | None = None
    sim_timeout_s: float | None = None

    @model_validator(mode="after")
    def _fill_profile(self) -> BenchSettings:
        for name, (full, quick) in PROFILES.items():
            if getattr(self, name) is None:
                setattr(self, name, quick if self.quick else full)
        unknown = set(self.stage_list) - set(STAGES)
        if unknown:
            raise ValueError(f"BENCH_STAGES: unknown stage(s) {sorted(unknown)}; choose from {', '.join(STAGES)}")
        return self

    @property
    def stage_list(self) -> list[str]:
        return [s.strip() for s in self.stages.split(",") if s.strip()]
