"""(d) The simulator's calls/s: `switchboard simulate --config demo.yaml --calls N --seed S --json` as a subprocess.

A small run first (interpreter start, imports, config load: t0 for n0 calls), then runs
sized up until one takes about sim_target_s beyond that; calls/s is (N - n0) / (t - t0),
so start-up does not count. The wall time of the big run (start-up included) is reported too. When the
command is not there (or fails), the stage is "unavailable" with the reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.settings import BenchSettings
from switchboard.platform.settings import DEMO_CONFIG

CALIBRATION_CALLS = 200
MAX_CALLS = 1_000_000


def command(config: Path, calls: int, seed: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "switchboard.cli",
        "simulate",
        "--config",
        str(config),
        "--calls",
        str(calls),
        "--seed",
        str(seed),
        "--json",
    ]


class Unavailable(Exception):
    pass


def _timed(config: Path, calls: int, seed: int, timeout_s: float) -> tuple[float, object]:
    """Wall seconds of one run and its parsed JSON output."""
    began = time.perf_counter()
    try:
        done = subprocess.run(
            command(config, calls, seed), check=False, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise Unavailable(f"`switchboard simulate --calls {calls}` took longer than {timeout_s:.0f} s (stopped)") from None
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        text = (done.stderr or done.stdout).strip()
        if "No such command" in text:
            raise Unavailable("`switchboard simulate` does not exist yet in this checkout")
        raise Unavailable(f"`switchboard simulate` exited {done.returncode}: {text[-500:]}")
    try:
        return elapsed, json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise Unavailable(f"`switchboard simulate --json` printed no JSON ({exc}): {done.stdout[:200]!r}") from None


def run_simulator(settings: BenchSettings, progress: Callable[[str], None], config: Path = DEMO_CONFIG) -> dict:
    base = {
        "config": str(config),
        "seed": settings.seed,
        "command": "switchboard simulate --config CONFIG --calls N --seed S --json",
    }
    target = settings.sim_target_s
    try:
        progress(f"(d) simulator: start-up run, {CALIBRATION_CALLS} calls")
        t0, _ = _timed(config, CALIBRATION_CALLS, settings.seed, settings.sim_timeout_s)
        calls, runs = CALIBRATION_CALLS * 10, 1
        while True:
            progress(f"(d) simulator: {calls:,} calls")
            t, output = _timed(config, calls, settings.seed, settings.sim_timeout_s)
            runs += 1
            work_s = t - t0
            if work_s >= 0.8 * target or calls >= MAX_CALLS or runs >= 6:
                break
            # Size the next run from what this one took beyond start-up (or grow blindly while that is noise).
            grown = CALIBRATION_CALLS + (calls - CALIBRATION_CALLS) / work_s * target if work_s > 0.25 else calls * 8
            calls = int(min(MAX_CALLS, max(calls * 2, grown)))
    except Unavailable as exc:
        return {**base, "status": "unavailable", "reason": str(exc)}
    marginal = (calls - CALIBRATION_CALLS) / (t - t0) if t > t0 else 0.0
    return {
        **base,
        "status": "ok",
        "calls": calls,
        "wall_s": t,
        "startup_wall_s": t0,
        "calls_per_s": marginal,
        "calls_per_s_wall": calls / t,
        "output_keys": sorted(output) if isinstance(output, dict) else type(output).__name__,
    }
