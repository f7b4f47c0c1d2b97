"""`python -m bench` (make bench): run the stages, show progress, write bench/results.json and bench/results.md.

Every process a stage starts (broker, relay, services, buyer simulator, extra router,
simulator) is stopped by pid when the stage ends, fails or is interrupted (Ctrl-C, SIGTERM).
A failing stage is recorded with its error and the next stage runs; the exit code is 1 then.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console

from bench import live, report
from bench.floor import run_floor
from bench.routing_core import run_core
from bench.settings import BenchSettings
from bench.simulator import run_simulator

console = Console()


class Progress:
    """One status line that changes (rich spinner on a terminal) and lines that stay, with the time since the start."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.status = console.status("starting…")

    def _t(self) -> str:
        return f"[dim]{time.monotonic() - self.began:6.0f} s[/dim]"

    def update(self, msg: str) -> None:
        self.status.update(f"{msg}")

    def say(self, msg: str) -> None:
        console.print(f"{self._t()}  {msg}", highlight=False)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def run(settings: BenchSettings) -> dict:
    stages = settings.stage_list
    results: dict = {
        "meta": {
            "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": _commit(),
            "quick": settings.quick,
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "load_before": _load(),
            "settings": json.loads(settings.model_dump_json()),
        }
    }
    p = Progress()
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    failed = False

    def stage(key: str, title: str, fn: Callable[[], dict]) -> None:
        nonlocal failed
        p.say(f"[b]{title}[/b]")
        began = time.monotonic()
        try:
            section = fn()
            section.setdefault("status", "ok")
        except (KeyboardInterrupt, SystemExit):
            results[key] = {"status": "interrupted"}
            raise
        except Exception as exc:  # noqa: BLE001 - one stage failing must not lose the others' figures
            failed = True
            section = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            p.say(f"[red]{title} failed: {exc}")
        section["stage_s"] = round(time.monotonic() - began, 1)
        results[key] = section

    try:
        with p.status:
            if "floor" in stages:
                stage("floor", "(a) floor: bare aiokafka relay", lambda: asyncio.run(run_floor(settings, workdir, p.update)))
                f = results["floor"]
                if f["status"] == "ok":
                    p.say(
                        f"floor: hop p50/p99 {f['hop_p50_ms']:.1f}/{f['hop_p99_ms']:.1f} ms, {f['msgs_per_s']:,.0f} msgs/s pipelined, {f['serial_msgs_per_s']:,.0f} serial"
                    )
            if "core" in stages:
                stage("core", "(c) routing core, 50 buyers", lambda: run_core(settings.core_s, settings.seed))
                if results["core"]["status"] == "ok":
                    p.say(f"core: {results['core']['decisions_per_s']:,.0f} decisions/s")
            if "simulator" in stages:
                stage("simulator", "(d) switchboard simulate", lambda: run_simulator(settings, p.update))
                sim = results["simulator"]
                p.say(
                    f"simulator: {sim['calls_per_s']:,.0f} calls/s"
                    if sim["status"] == "ok"
                    else f"simulator: {sim['status']}: {sim.get('reason', sim.get('error'))}"
                )
            if "live" in stages:
                stage(
                    "live_static",
                    "(b) live stack, static buyers",
                    lambda: asyncio.run(
                        live.ramp(settings, live.static_config(workdir), workdir / "live-static", "(b) static", p.update, p.say)
                    ),
                )
                stage(
                    "live_rtb",
                    "(b) live stack, RTB buyers (buyer simulator)",
                    lambda: asyncio.run(live.ramp(settings, live.DEMO_CONFIG, workdir / "live-rtb", "(b) RTB", p.update, p.say)),
                )
            if "workers" in stages:
                rate, why = live.workers_rate(settings, results.get("live_static"))

                def run_workers() -> dict:
                    out = asyncio.run(
                        live.workers(settings, live.static_config(workdir), workdir / "workers", rate, p.update, p.say)
                    )
                    return {**out, "rate": rate, "rate_reason": why}

                stage("workers", f"(e) one vs two router workers at {rate:g} calls/s", run_workers)
    finally:
        results["meta"]["load_after"] = _load()
        results["meta"]["duration_s"] = round(time.monotonic() - p.began, 1)
        results["meta"]["complete"] = all(k in results for k in _keys(stages))
        results["meta"]["failed"] = failed
        write(results, settings.out_dir)
        if failed:
            p.say(f"[yellow]logs of the failed stage kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def _keys(stages: list[str]) -> list[str]:
    keys = {
        "floor": ["floor"],
        "core": ["core"],
        "simulator": ["simulator"],
        "live": ["live_static", "live_rtb"],
        "workers": ["workers"],
    }
    return [k for s in stages for k in keys[s]]


def write(results: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out_dir / "results.md").write_text(report.markdown(results))


def main() -> None:
    try:
        settings = BenchSettings()
    except ValidationError as exc:
        console.print(f"[red]bench settings: {exc}")
        sys.exit(2)
    # Ctrl-C and SIGTERM stop the bench alike (inside asyncio.run too: it cancels the stage's main task),
    # so every stage's cleanup stops its processes. SIGINT is handled even when the shell started the bench
    # with it ignored (a background job): SIGTERM relies on it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))
    try:
        results = run(settings)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted; partial results in {settings.out_dir / 'results.json'}")
        sys.exit(130)
    console.print(report.rich_table(results))
    console.print(f"written: {settings.out_dir / 'results.json'}, {settings.out_dir / 'results.md'}")
    sys.exit(1 if results["meta"]["failed"] else 0)
