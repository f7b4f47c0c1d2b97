"""(b) and (e): the whole stack as processes (switchboard.stack.Stack), driven over gRPC CallControl.

Each call is driven as `switchboard run` drives it (demo.driver.one_call, callers from
the demo traffic model; every offer answered, talk time scaled by talk_scale), minus the
callers the edge turns away at once (unknown tracking numbers, invalid caller numbers),
whose instant rejects would flatter the latency figures.

Measured from the events on the broker, not from the driver: a Watcher reads
call.started, the terminal decisions (call.routed / call.rejected / call.queued) and
bid.received. Decision latency of a call = occurred_at of its first decision event -
occurred_at of its call.started (which the edge stamps at StartCall); bid.received
latency_ms is the buyers' think time as the bidder saw it.

A step offers `rate` calls/s for step_s seconds, then waits up to drain_s for the
backlog; whether it kept up is bench.measure.verdict. The ramp multiplies the rate by
rate_factor until a step does not keep up (or max_steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import yaml
from aiokafka import TopicPartition
from google.protobuf.timestamp_pb2 import Timestamp

from bench.measure import percentile, rate_of, verdict
from bench.settings import BenchSettings
from switchboard.core.config import RoutingConfig
from switchboard.demo.driver import one_call
from switchboard.demo.traffic import DemoCall, TrafficModel
from switchboard.platform import codec
from switchboard.platform.configfile import load_config
from switchboard.platform.kafka import make_consumer
from switchboard.platform.lifecycle import READY_DIR_ENV, ready_path
from switchboard.platform.settings import DEMO_CONFIG, KafkaSettings
from switchboard.platform.topics import (
    BID_RECEIVED,
    CALL_QUEUED,
    CALL_REJECTED,
    CALL_ROUTED,
    CALL_STARTED,
    Topic,
)
from switchboard.stack import Stack
from switchboard.v1 import call_control_pb2_grpc as cc_grpc
from switchboard.v1 import events_pb2 as pb

DECISION_TOPICS = (CALL_ROUTED, CALL_REJECTED, CALL_QUEUED)
WATCHED: tuple[Topic, ...] = (CALL_STARTED, *DECISION_TOPICS, BID_RECEIVED)

Progress = Callable[[str], None]
# Decisions/s of a step: over the middle 90 % of its decisions (see bench.measure.rate_of).
THROUGHPUT_TRIM = 0.05


def _secs(ts: Timestamp) -> float:
    return ts.ToNanoseconds() / 1e9


@dataclass
class Decision:
    at: float  # occurred_at of the first decision event, epoch seconds
    topic: str
    routing_started_at: float  # ivr.completed time (0 when the decision came before routing)


@dataclass
class Watcher:
    """Reads the watched topics from their ends at start(): every call started and decided from then on."""

    kafka: KafkaSettings
    started: dict[str, float] = field(default_factory=dict)
    decided: dict[str, Decision] = field(default_factory=dict)
    bids: list[tuple[str, str, int, int]] = field(default_factory=list)  # (call id, buyer id, latency ms, outcome)
    _task: asyncio.Task | None = None

    def __post_init__(self) -> None:
        self.consumer = make_consumer(self.kafka, None, "bench-watcher")  # connects in start()

    async def start(self) -> None:
        await self.consumer.start()
        tps = [TopicPartition(t.name, p) for t in WATCHED for p in range(self.kafka.partitions)]
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:
            await self.consumer.position(tp)  # resolve the end now, before any call of the bench starts
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        by_name = {t.name: t for t in WATCHED}
        while True:
            for records in (await self.consumer.getmany(timeout_ms=100, max_records=2000)).values():
                for r in records:
                    try:
                        ev = codec.decode(by_name[r.topic], r.value)
                    except codec.UndecodableEvent:
                        continue
                    if r.topic == CALL_STARTED.name:
                        self.started.setdefault(ev.call_id, _secs(ev.occurred_at))
                    elif r.topic == BID_RECEIVED.name:
                        self.bids.append((ev.call_id, ev.buyer_id, ev.latency_ms, ev.outcome))
                    else:
                        at = _secs(ev.occurred_at)
                        known = self.decided.get(ev.call_id)
                        if known is None or at < known.at:  # the first decision (a queued call is routed to an agent later)
                            self.decided[ev.call_id] = Decision(at, r.topic, _secs(ev.routing_started_at))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()

    def calls_since(self, t: float) -> list[str]:
        """Calls started at or after epoch `t`, in start order."""
        return sorted((c for c, at in self.started.items() if at >= t), key=self.started.__getitem__)


def static_config(workdir: Path, source: Path = DEMO_CONFIG) -> Path:
    """The demo config without its RTB buyers (and without tiers left empty): every buyer has a standing price."""
    raw = yaml.safe_load(source.read_text())
    rtb = {b["id"] for b in raw["buyers"] if b.get("bid", {}).get("type") == "rtb"}
    raw["buyers"] = [b for b in raw["buyers"] if b["id"] not in rtb]
    sim_buyers = (raw.get("simulation") or {}).get("buyers") or {}
    for buyer_id in rtb & set(sim_buyers):
        del sim_buyers[buyer_id]  # the simulate section's behaviour of the removed buyers
    for campaign in raw["campaigns"]:
        tiers = []
        for tier in campaign["routing"]["tiers"]:
            if "buyers" in tier:
                tier["buyers"] = [b for b in tier["buyers"] if b not in rtb]
                if not tier["buyers"]:
                    continue
            tiers.append(tier)
        campaign["routing"]["tiers"] = tiers
    path = workdir / "static.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    load_config(path)  # refuse now, with the config's own message, rather than in every service
    return path


class Traffic:
    """One step's calls through the gRPC edge, one task per call, each driven by demo.driver.one_call
    (StartCall, SubmitAnswers, AwaitRouting, talk, ReportOutcome: as `switchboard run` drives them)."""

    def __init__(self, stub: cc_grpc.CallControlStub, model: TrafficModel, talk_scale: float, seed: int) -> None:
        self.stub, self.model, self.talk_scale = stub, model, talk_scale
        self.rng = random.Random(seed)
        self.sent = 0
        self.errors: Counter[str] = Counter()
        self.tasks: set[asyncio.Task] = set()

    async def _call(self, call: DemoCall) -> None:
        try:
            await one_call(self.stub, call, talk_scale=self.talk_scale, answer_rate=1.0, rng=self.rng)
        except grpc.aio.AioRpcError as exc:
            self.errors[exc.code().name] += 1

    async def offer(self, rate: float, duration_s: float) -> None:
        """Start `rate` calls per second for `duration_s` (on schedule: a late start is caught up at once)."""
        loop = asyncio.get_running_loop()
        interval = 1.0 / rate
        began = next_at = loop.time()
        while next_at < began + duration_s:
            task = asyncio.create_task(self._call(self.model.next_call()))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            self.sent += 1
            next_at += interval
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def settle(self, timeout_s: float) -> None:
        """Let the calls in flight finish (talk time, ReportOutcome) for at most `timeout_s`."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout_s)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@dataclass
class LiveRun:
    """A started stack plus the bench's watcher, gRPC channel and traffic model."""

    stack: Stack
    config: RoutingConfig
    watcher: Watcher
    stub: cc_grpc.CallControlStub
    settings: BenchSettings
    progress: Progress
    label: str
    extra_pids: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.settings
        # One model for the stack's life: each step calls from new numbers, none repeats an earlier step's callers.
        self.model = TrafficModel(self.config, s.seed, invalid_rate=0.0, unknown_number_rate=0.0)

    @property
    def rtb_buyers(self) -> set[str]:
        return {b.id for b in self.config.buyers if b.bid.type == "rtb"}

    def pids(self) -> dict[str, int]:
        """The stack's processes (and the bench's own: driver and watcher) by name."""
        pids = {name: sp.process.pid for name, sp in self.stack.procs.items()}
        if self.stack.broker is not None and self.stack.broker.process is not None:
            pids["broker"] = self.stack.broker.process.pid
        pids.update(self.extra_pids)
        pids["bench (driver)"] = os.getpid()
        return pids

    async def idle_cpu(self, duration_s: float) -> dict[str, float]:
        """Share of a CPU each process uses with no calls at all (consumers polling the broker), busiest first."""
        self.progress(f"{self.label} · idle CPU for {duration_s:g} s")
        before, t0 = cpu_seconds(self.pids()), time.monotonic()
        await asyncio.sleep(duration_s)
        after, wall = cpu_seconds(self.pids()), time.monotonic() - t0
        cpu = {n: round(100 * (after[n] - before[n]) / wall, 1) for n in after if n in before}
        return dict(sorted(cpu.items(), key=lambda kv: -kv[1]))

    async def step(self, rate: float, duration_s: float, *, record: bool = True) -> dict:
        """Offer `rate` calls/s for `duration_s`, wait for the backlog (at most drain_s); the step's figures."""
        s = self.settings
        t_begin = time.time()
        cpu_before, wall_before = cpu_seconds(self.pids()), time.monotonic()
        traffic = Traffic(self.stub, self.model, s.talk_scale, s.seed)
        sending = asyncio.create_task(traffic.offer(rate, duration_s))
        what = f"{self.label} · {rate:g} calls/s" if record else f"{self.label} · warm-up"
        try:
            send_began = time.monotonic()
            while not sending.done():
                self.progress(
                    f"{what} · {time.monotonic() - send_began:.0f}/{duration_s:.0f} s · {self._counts(t_begin, traffic)}"
                )
                await asyncio.wait({sending}, timeout=1.0)
            sending.result()
            drain_began = time.monotonic()
            while time.monotonic() - drain_began < s.drain_s and not self._drained(t_begin, traffic):
                self.progress(f"{what} · draining · {self._counts(t_begin, traffic)}")
                await asyncio.sleep(0.1)
            drained_s = time.monotonic() - drain_began
            cpu_after, wall = cpu_seconds(self.pids()), time.monotonic() - wall_before
            if self._drained(t_begin, traffic):
                # The calls' ends reach the stack (talk time, queue waits): caps free up before the next step.
                await traffic.settle(s.drain_s)
        finally:
            sending.cancel()
            await traffic.close()
        if dead := self.stack.dead_services():
            raise RuntimeError(f"{self.label}: services exited during the step: {dead}; logs in {self.stack.log_dir}")
        if not record:
            return {}
        figures = self._figures(rate, duration_s, t_begin, traffic, drained_s)
        # Share of one CPU each process used over the step (sending and draining): where the time goes.
        cpu = {n: round(100 * (cpu_after[n] - cpu_before[n]) / wall, 1) for n in cpu_after if n in cpu_before}
        figures["cpu_percent"] = dict(sorted(cpu.items(), key=lambda kv: -kv[1]))
        return figures

    def _counts(self, t_begin: float, stats: Traffic) -> str:
        calls = self.watcher.calls_since(t_begin)
        decided = sum(1 for c in calls if c in self.watcher.decided)
        return f"sent {stats.sent} · started {len(calls)} · decided {decided}"

    def _drained(self, t_begin: float, stats: Traffic) -> bool:
        calls = self.watcher.calls_since(t_begin)
        errors = sum(stats.errors.values())
        return len(calls) + errors >= stats.sent and all(c in self.watcher.decided for c in calls)

    def _figures(self, rate: float, duration_s: float, t_begin: float, stats: Traffic, drain_s: float) -> dict:
        w = self.watcher
        calls = w.calls_since(t_begin)
        decided = [c for c in calls if c in w.decided]
        latency = [(w.decided[c].at - w.started[c]) * 1000 for c in decided]
        # From ivr.completed (routing_started_at), over the decisions that carry it: JSON only, a different set of calls.
        routing = [(w.decided[c].at - w.decided[c].routing_started_at) * 1000 for c in decided if w.decided[c].routing_started_at]
        throughput = rate_of([w.decided[c].at for c in decided], trim=THROUGHPUT_TRIM)
        errors = sum(stats.errors.values())
        v = verdict(
            rate, throughput, max(len(calls), stats.sent - errors), len(decided), errors, latency, self.settings.p99_bound_ms
        )
        in_step = set(calls)
        rtb = self.rtb_buyers
        think = [
            lat
            for cid, buyer, lat, outcome in w.bids
            if cid in in_step and buyer in rtb and outcome != pb.BID_OUTCOME_UNSPECIFIED
        ]
        outcomes: dict[str, int] = {}
        for c in decided:
            outcomes[w.decided[c].topic] = outcomes.get(w.decided[c].topic, 0) + 1
        return {
            "offered_calls_per_s": rate,
            "duration_s": duration_s,
            "sent": stats.sent,
            "started": len(calls),
            "decided": len(decided),
            "driver_errors": dict(stats.errors),
            "calls_per_s": throughput,
            "started_per_s": rate_of([w.started[c] for c in calls], trim=THROUGHPUT_TRIM),
            "decision_p50_ms": percentile(latency, 50),
            "decision_p99_ms": percentile(latency, 99),
            "routing_p50_ms": percentile(routing, 50),
            "routing_p99_ms": percentile(routing, 99),
            "drain_wait_s": round(drain_s, 2),
            "outcomes": outcomes,
            "rtb_bids": len(think),
            "rtb_think_p50_ms": percentile(think, 50) if think else None,
            "rtb_think_p99_ms": percentile(think, 99) if think else None,
            "verdict": v.to_dict(),
        }

    def step_line(self, r: dict) -> str:
        mark = "keeps up" if r["verdict"]["keeps_up"] else f"does not keep up ({r['verdict']['why']})"
        think = (
            f" · RTB think p50/p99 {r['rtb_think_p50_ms']:.0f}/{r['rtb_think_p99_ms']:.0f} ms"
            if r.get("rtb_think_p50_ms") is not None
            else ""
        )
        busiest = ", ".join(f"{n} {p:.0f}%" for n, p in list(r.get("cpu_percent", {}).items())[:3])
        return (
            f"{self.label} · {r['offered_calls_per_s']:g} calls/s offered → {r['calls_per_s']:.1f} decided/s, "
            f"decision p50/p99 {r['decision_p50_ms']:.0f}/{r['decision_p99_ms']:.0f} ms{think} · {mark}"
            + (f" · CPU: {busiest}" if busiest else "")
        )


@contextlib.asynccontextmanager
async def running_stack(
    settings: BenchSettings, config: Path, workdir: Path, label: str, progress: Progress, say: Progress
) -> AsyncIterator[LiveRun]:
    """A started stack with a watcher on its broker; everything stopped (by pid) on the way out."""
    stack = Stack(workdir=workdir, config=config, partitions=settings.partitions)
    watcher: Watcher | None = None
    try:
        began = time.monotonic()
        await stack.start(progress=lambda name: progress(f"{label} · starting {name}"))
        say(f"{label} · stack up in {time.monotonic() - began:.1f} s (logs in {stack.log_dir})")
        watcher = Watcher(stack.kafka_settings())
        await watcher.start()
        run_config = load_config(config, env=stack.config_env())
        async with grpc.aio.insecure_channel(stack.ivr_target) as channel:
            yield LiveRun(stack, run_config, watcher, cc_grpc.CallControlStub(channel), settings, progress, label)
    finally:
        if watcher is not None:
            with contextlib.suppress(Exception):
                await watcher.stop()
        await asyncio.to_thread(stack.stop)


def rates(settings) -> list[float]:
    return [round(settings.start_rate * settings.rate_factor**k, 1) for k in range(settings.max_steps)]


async def ramp(settings: BenchSettings, config: Path, workdir: Path, label: str, progress: Progress, say: Progress) -> dict:
    """Rising rates until a step does not keep up: every step, the limit and the figures at it."""
    steps: list[dict] = []
    async with running_stack(settings, config, workdir, label, progress, say) as run:
        idle = await run.idle_cpu(settings.idle_s)
        say(f"{label} · idle CPU (% of a CPU): " + ", ".join(f"{n} {p:.0f}" for n, p in idle.items()))
        await run.step(settings.start_rate, settings.warmup_s, record=False)
        for rate in rates(settings):
            result = await run.step(rate, settings.step_s)
            steps.append(result)
            say(run.step_line(result))
            if not result["verdict"]["keeps_up"] and result["verdict"]["drained"] and settings.confirm_failures:
                # One noisy step (other work on the machine) must not end the ramp: the same rate once more
                # (not after a backlog that did not drain: that one is no noise, and the retry would start on it).
                progress(f"{label} · {rate:g} calls/s once more, to confirm")
                retry = await run.step(rate, settings.step_s)
                retry["retry"] = True
                steps.append(retry)
                say(run.step_line(retry) + " (retry)")
                if retry["verdict"]["keeps_up"]:
                    result["superseded_by_retry"] = True
                    continue
            if not result["verdict"]["keeps_up"]:
                break
    return {**summarize(steps), "idle_cpu_percent": idle}


def summarize(steps: list[dict]) -> dict:
    passing = [s for s in steps if s["verdict"]["keeps_up"]]
    failing = [s for s in steps if not s["verdict"]["keeps_up"] and not s.get("superseded_by_retry")]
    best = max(passing, key=lambda s: s["calls_per_s"]) if passing else None
    out: dict = {
        "steps": steps,
        "limit_found": bool(failing),
        "max_rate_kept_up": best["offered_calls_per_s"] if best else 0.0,
        "first_rate_not_kept_up": failing[0]["offered_calls_per_s"] if failing else None,
    }
    shown = best or (max(steps, key=lambda s: s["calls_per_s"]) if steps else None)
    if shown:
        out.update(
            sustained_calls_per_s=shown["calls_per_s"] if best else 0.0,
            best_measured_calls_per_s=max(s["calls_per_s"] for s in steps),
            decision_p50_ms=shown["decision_p50_ms"],
            decision_p99_ms=shown["decision_p99_ms"],
            routing_p50_ms=shown["routing_p50_ms"],
            routing_p99_ms=shown["routing_p99_ms"],
            at_offered_calls_per_s=shown["offered_calls_per_s"],
            rtb_think_p50_ms=shown.get("rtb_think_p50_ms"),
            rtb_think_p99_ms=shown.get("rtb_think_p99_ms"),
        )
    return out


# ------------------------------------------------------------------ (e) router workers


def workers_rate(settings: BenchSettings, static: dict | None) -> tuple[float, str]:
    """The fixed rate of (e) and why: BENCH_WORKERS_RATE, else the one-worker limit found by (b) with static buyers."""
    if settings.workers_rate:
        return settings.workers_rate, "BENCH_WORKERS_RATE"
    if static and static.get("max_rate_kept_up"):
        kept, failed = static["max_rate_kept_up"], static.get("first_rate_not_kept_up")
        if failed:
            return kept, f"the highest rate one worker kept up with in (b) (it did not at {failed:g})"
        return kept, f"the highest rate (b) offered ({kept:g}); one worker kept up with all of them"
    return settings.start_rate * 2, "(b) found no rate one worker kept up with: a fixed low rate"


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system, all threads) each process used so far, from /proc; {} where there is no /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 0, utime 11, stime 12
        out[name] = (int(fields[11]) + int(fields[12])) / tick
    return out


class ExtraRouter:
    """A second router worker next to the stack's (same group), started as the stack starts services."""

    def __init__(self, stack: Stack, index: int = 2) -> None:
        self.stack = stack
        self.name = f"router{index}"
        self.ready_dir = stack.workdir / f"ready-{self.name}"
        self.log_path = stack.log_dir / f"{self.name}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, timeout_s: float = 90.0) -> dict:
        self.ready_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **self.stack.env(),
            READY_DIR_ENV: str(self.ready_dir),  # its own ready file: every worker writes router.ready
            "SWITCHBOARD_ROUTER_DATA_DIR": str(self.stack.workdir / self.name),
        }
        log = await asyncio.to_thread(open, self.log_path, "ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "switchboard.services.router",
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.stack.workdir,
            )
        finally:
            log.close()
        path = ready_path("router", self.ready_dir)
        assert path is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} before it was ready; log {self.log_path}")
            if path.exists():
                info = json.loads(path.read_text())
                if info.get("pid") == self.process.pid:
                    return info
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} was not ready within {timeout_s:.0f} s; log {self.log_path}")

    async def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (a clean shutdown), SIGKILL to its process group after `timeout_s`."""
        proc, self.process = self.process, None
        if proc is None:
            return None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            return await proc.wait()


async def workers(settings: BenchSettings, config: Path, workdir: Path, rate: float, progress: Progress, say: Progress) -> dict:
    """The same rate with one router worker, then with a second one in the group."""
    out: dict = {}
    async with running_stack(settings, config, workdir, "(e) 1 router worker", progress, say) as run:
        await run.step(min(rate, settings.start_rate), settings.warmup_s, record=False)
        out["one"] = await run.step(rate, settings.step_s)
        say(run.step_line(out["one"]))
        extra = ExtraRouter(run.stack)
        try:
            progress("(e) starting a second router worker")
            info = await extra.start()
            assert extra.process is not None
            run.extra_pids[extra.name] = extra.process.pid
            run.label = "(e) 2 router workers"
            say(f"(e) second router worker ready, owns {info.get('partitions')} topic partitions")
            await run.step(min(rate, settings.start_rate), settings.warmup_s, record=False)
            out["two"] = await run.step(rate, settings.step_s)
            say(run.step_line(out["two"]))
        finally:
            await extra.stop()
    return out
