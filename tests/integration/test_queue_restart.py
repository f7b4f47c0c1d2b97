"""The queue service stopped (SIGTERM) or killed (SIGKILL) while calls wait and agents talk, then started again.

Its ACD state survives in queue.state (services/queue/state.py): waiting calls keep their place and
their enqueue time, busy agents stay busy, and every call ends in exactly one outcome. Everything is
checked from the events on the topics, with a simulated edge that answers and ends the offers.

Each test runs its own queue instance (a group id of its own, so a state of its own) that starts at
the current end of the inputs: the session broker holds other tests' calls.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from switchboard.platform import codec
from switchboard.platform.configfile import load_config
from switchboard.platform.kafka import EventBus, make_consumer
from switchboard.platform.kafka import read_all as read_topics
from switchboard.platform.settings import KafkaSettings
from switchboard.platform.topics import (
    CALL_ENDED,
    CALL_QUEUED,
    CALL_REJECTED,
    CALL_ROUTED,
    CALLBACK_REQUESTED,
    QUEUE_STATE,
    QUEUE_STATUS,
    QUEUE_SUMMARY,
)
from switchboard.services.queue.service import QueueRunner
from switchboard.services.queue.settings import QueueSettings
from switchboard.services.queue.state import decode_acd
from switchboard.v1 import events_pb2 as pb
from tests.integration.test_queue_service import call_ended_handled, ended, queued
from tests.support import (
    Results,
    ServiceProcess,
    new_call_id,
    publish_raw,
    read_all,
    service_env,
    start_service,
    until,
    wait_event,
    wait_records,
)

pytestmark = pytest.mark.integration

MAX_WAIT_S = 2

CONFIG = f"""
version: 1
queues:
  - {{id: sr, strategy: longest_idle, max_wait_s: 300}}
  - {{id: sw, strategy: longest_idle, max_wait_s: {MAX_WAIT_S}}}
  - {{id: crash, strategy: longest_idle, max_wait_s: 300}}
  - {{id: mark, max_wait_s: 300}}
  - {{id: rp, max_wait_s: 300}}
  - {{id: kc, max_wait_s: {MAX_WAIT_S}, announce_every_s: 1}}
agents:
  - {{id: r1, queues: [sr]}}
  - {{id: r2, queues: [sr]}}
  - {{id: w1, queues: [sw]}}
  - {{id: k1, queues: [crash]}}
  - {{id: k2, queues: [crash]}}
  - {{id: k3, queues: [crash]}}
  - {{id: k4, queues: [crash]}}
  - {{id: m1, queues: [mark], max_concurrent: 100000}}
  - {{id: p1, queues: [rp]}}
  - {{id: kc1, queues: [kc]}}
"""
CRASH_AGENTS = {"k1", "k2", "k3", "k4"}


# -- helpers -------------------------------------------------------------------------------------
async def start_group_at_end(kafka: KafkaSettings, group: str) -> None:
    """Commit the current end of the queue's inputs for `group`: a new queue instance starts there.

    (Without a snapshot the queue starts at its group's committed offsets, else at the beginning.)
    Tansu's ListOffsets can fall short of the end by one record batch: a fetch tells the true end.
    """
    consumer = make_consumer(kafka, group, "test")
    await consumer.start()
    try:
        await consumer.topics()
        tps = [
            TopicPartition(t.name, p)
            for t in (CALL_QUEUED, CALL_ENDED, CALLBACK_REQUESTED)
            for p in sorted(consumer.partitions_for_topic(t.name))
        ]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(0, ends[tp] - 1))
        deadline = time.monotonic() + 20
        while any(consumer.highwater(tp) is None for tp in tps):
            assert time.monotonic() < deadline, "no fetch answer for every input partition"
            await consumer.getmany(timeout_ms=100)
        await consumer.commit({tp: consumer.highwater(tp) for tp in tps})
    finally:
        await consumer.stop()


class QueueInstance:
    """One queue instance (group id, config, env) that can be started again after a stop or a kill."""

    def __init__(self, kafka: KafkaSettings, workdir: Path, **env: str) -> None:
        self.group = f"queue-restart-{uuid.uuid4().hex[:8]}"
        self.workdir = workdir
        config = workdir / "acd.yaml"
        config.write_text(CONFIG)
        self.env = service_env(
            kafka, config, SWITCHBOARD_QUEUE_GROUP_ID=self.group, SWITCHBOARD_QUEUE_SWEEP_INTERVAL_S="0.1", **env
        )
        self.runs = 0
        self.process: ServiceProcess | None = None

    def start(self) -> ServiceProcess:
        self.runs += 1
        self.process = start_service("queue", self.env, self.workdir, log=self.workdir / f"queue-{self.runs}.log")
        return self.process


@pytest.fixture
async def instance(kafka, tmp_path):
    inst = QueueInstance(kafka, tmp_path)
    await start_group_at_end(kafka, inst.group)
    yield inst
    if inst.process is not None:
        inst.process.kill()


async def handled(bus: EventBus, kafka: KafkaSettings, key: str) -> None:
    """Return once the queue handled every call.queued published so far on `key`'s partition (a marker behind them)."""
    marker = new_call_id()
    await bus.publish(CALL_QUEUED, queued(marker, "mark"), key=key)
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == marker)


def waited_s(rejected: pb.CallRejected) -> float:
    m = re.search(r"waited ([0-9.]+)s", rejected.detail)
    assert m, rejected.detail
    return float(m.group(1))


# -- SIGTERM -------------------------------------------------------------------------------------
async def test_sigterm_restart_keeps_waiting_calls_their_enqueue_time_and_busy_agents(instance, bus, kafka):
    queue = instance.start()
    c1, c2, c3, c4, c5 = (new_call_id() for _ in range(5))
    s1, s2 = new_call_id(), new_call_id()

    for c in (c1, c2):
        await bus.publish(CALL_QUEUED, queued(c, "sr"))
    r1, r2 = [(await wait_event(kafka, CALL_ROUTED, lambda e, c=c: e.call_id == c))[0] for c in (c1, c2)]
    assert {r1.agent_id, r2.agent_id} == {"r1", "r2"}
    await bus.publish(CALL_QUEUED, queued(s1, "sw"))
    [rs1] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == s1)
    assert rs1.agent_id == "w1"
    s2_queued_at = time.time()
    for c, q in ((c3, "sr"), (c4, "sr"), (s2, "sw")):
        await bus.publish(CALL_QUEUED, queued(c, q))
        await handled(bus, kafka, c)  # c is waiting now (its agents are busy)
    early = [e for _, e in await read_topics(kafka, [CALL_ROUTED, CALL_REJECTED]) if e.call_id in (c3, c4, s2)]
    assert early == []

    assert queue.stop() == 0, queue.logs()
    # While the queue is down: a new call arrives, and s2 waits longer than its queue's max_wait_s.
    await bus.publish(CALL_QUEUED, queued(c5, "sr"))
    await asyncio.sleep(max(0.0, s2_queued_at + 2 * MAX_WAIT_S - time.time()))
    queue = instance.start()
    assert queue.info["restored"] is True

    # s2 is abandoned at once: its wait counts from its first arrival, not from the restart.
    [rej] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == s2)
    assert rej.reason == "abandoned" and f"max_wait_s {MAX_WAIT_S}" in rej.detail
    assert waited_s(rej) >= 2 * MAX_WAIT_S - 0.5, rej.detail  # a forgotten enqueue time would give ~MAX_WAIT_S

    # r1 and r2 still talk: c5, which arrived while the queue was down, waits behind c3 and c4.
    await handled(bus, kafka, c5)
    assert [e for _, e in await read_topics(kafka, [CALL_ROUTED]) if e.call_id in (c3, c4, c5)] == []

    # Agents free up: the waiting calls are served oldest first by the agent that just hung up.
    agent_of = {c1: r1.agent_id, c2: r2.agent_id}
    for done, nxt in ((c1, c3), (c2, c4), (c3, c5)):
        await bus.publish(CALL_ENDED, ended(done, pb.CALL_OUTCOME_ANSWERED, 1, agent_of[done]))
        [r] = await wait_event(kafka, CALL_ROUTED, lambda e, c=nxt: e.call_id == c)
        assert (r.agent_id, r.attempt) == (agent_of[done], 1), (done, nxt, r.agent_id)
        agent_of[nxt] = r.agent_id
    assert [(t.name, e.call_id) for t, e in await read_topics(kafka, [CALL_REJECTED]) if e.call_id in (c1, c2, c3, c4, c5)] == []

    # A clean stop leaves nothing to publish again: every call got exactly one event.
    for c in (c4, c5, s1):
        await bus.publish(CALL_ENDED, ended(c, pb.CALL_OUTCOME_ANSWERED, 1, agent_of.get(c, "w1")))
    await handled(bus, kafka, new_call_id())
    assert queue.stop() == 0, queue.logs()
    events = [e for _, e in await read_topics(kafka, [CALL_ROUTED, CALL_REJECTED]) if e.call_id in (c1, c2, c3, c4, c5, s1, s2)]
    assert sorted(e.call_id for e in events) == sorted([c1, c2, c3, c4, c5, s1, s2])


# -- calls whose end never comes and hang-ups read early, across a restart ------------------------------
MAX_CALL_S = 6.0  # markers on m1 must be answered within it, even on a loaded machine


async def ended_handled(bus: EventBus, kafka: KafkaSettings, key: str) -> None:
    """call_ended_handled with a marker call on m1, the only agent of queue `mark` here."""
    await call_ended_handled(bus, kafka, key, "mark", "m1")


async def test_a_call_on_an_agent_is_reaped_by_its_first_assignment_time_and_a_remembered_hang_up_holds_after_a_restart(
    kafka, bus, tmp_path
):
    instance = QueueInstance(kafka, tmp_path, SWITCHBOARD_QUEUE_MAX_CALL_DURATION_S=str(MAX_CALL_S), SWITCHBOARD_LOG_JSON="1")
    await start_group_at_end(kafka, instance.group)
    queue = instance.start()
    try:
        holder, waiter, gone = new_call_id(), new_call_id(), new_call_id()
        await bus.publish(CALL_QUEUED, queued(holder, "rp"))
        [held] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == holder)
        assert held.agent_id == "p1"
        await bus.publish(CALL_QUEUED, queued(waiter, "rp"))
        await handled(bus, kafka, waiter)  # the waiter waits: p1 is busy
        await bus.publish(CALL_ENDED, ended(gone, pb.CALL_OUTCOME_CALLER_HANGUP, routing_pending=True))
        await ended_handled(bus, kafka, gone)  # remembered: its call.queued has not come yet
        assert queue.stop() == 0, queue.logs()
        assert await read_all_for(kafka, (holder, waiter, gone)) == [(CALL_ROUTED.name, holder)]

        # Down for longer than max_call_duration_s: the holder's call (its end never comes) is past it.
        await asyncio.sleep(max(0.0, held.occurred_at.ToNanoseconds() / 1e9 + MAX_CALL_S + 1 - time.time()))
        queue = instance.start()
        assert queue.info["restored"] is True
        [served] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == waiter)
        assert served.agent_id == "p1"
        # Reaped by the time it was given to p1 before the stop, not counted from the restart.
        # (The markers on m1 are never ended either: they are reaped too.)
        [reaped] = [r for r in log_records(queue) if r.get("event") == "agent_call_reaped" and r["call_id"] == holder]
        assert (reaped["agent"], reaped["queue"], reaped["level"]) == ("p1", "rp", "warning")
        assert reaped["age_s"] >= MAX_CALL_S + 1, reaped

        # The hang-up read before the stop still stands: the call.queued that comes now is rejected at once.
        await bus.publish(CALL_QUEUED, queued(gone, "rp"))
        [rej] = await wait_event(kafka, CALL_REJECTED, lambda e: e.call_id == gone)
        assert (rej.reason, rej.detail) == ("abandoned", "the caller hung up before the queue got the call")
        await bus.publish(CALL_ENDED, ended(waiter, pb.CALL_OUTCOME_ANSWERED, 1, "p1"))
        await ended_handled(bus, kafka, waiter)
        assert queue.stop() == 0, queue.logs()
        assert await read_all_for(kafka, (holder, waiter, gone)) == sorted(
            [(CALL_ROUTED.name, holder), (CALL_ROUTED.name, waiter), (CALL_REJECTED.name, gone)]
        )
    finally:
        instance.process.kill()


async def read_all_for(kafka: KafkaSettings, calls: tuple[str, ...]) -> list[tuple[str, str]]:
    """(topic, call id) of every call.routed / call.rejected of `calls`, sorted."""
    return sorted((t.name, e.call_id) for t, e in await read_topics(kafka, [CALL_ROUTED, CALL_REJECTED]) if e.call_id in calls)


def log_records(process: ServiceProcess) -> list[dict]:
    """The JSON log lines of a service started with SWITCHBOARD_LOG_JSON=1."""
    out = []
    for line in process.logs(tail=0).splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


# -- SIGKILL -------------------------------------------------------------------------------------
class Edge:
    """The telephony edge and the agents: takes every offer, lets some ring out, ends the others after a while.

    It frees an agent before it reports the end of its call, so the queue may offer that agent
    the next call only after the edge knows it is free: an offer to an agent the edge still has on
    a call is a double booking.
    """

    def __init__(self, bus: EventBus, results: Results, calls: set[str], seed: int = 7) -> None:
        self.bus, self.results, self.calls = bus, results, calls
        self.rng = random.Random(seed)
        self.on_agent: dict[str, str] = {}  # agent → call it talks to
        self.offers: dict[tuple[str, int], pb.CallRouted] = {}  # (call, attempt) → the offer
        self.seen: set[str] = set()  # event ids
        self.outcome: dict[tuple[str, int], int] = {}  # (call, attempt) → the outcome reported
        self.violations: list[str] = []
        self.tasks: set[asyncio.Task] = set()
        self._cursor = 0

    async def run(self) -> None:
        while True:
            records = self.results.records
            while self._cursor < len(records):
                topic, key, event = records[self._cursor]
                self._cursor += 1
                if topic == CALL_ROUTED.name and key in self.calls:
                    self.offered(event)
            await asyncio.sleep(0.005)

    def offered(self, ev: pb.CallRouted) -> None:
        if ev.event_id in self.seen:
            return  # the same decision published again after a restart: at-least-once
        self.seen.add(ev.event_id)
        first = self.offers.setdefault((ev.call_id, ev.attempt), ev)
        if first is not ev:
            self.violations.append(f"{ev.call_id} offer {ev.attempt} decided twice: {first.agent_id} and {ev.agent_id}")
        busy_with = self.on_agent.get(ev.agent_id)
        if busy_with is not None:
            self.violations.append(f"{ev.agent_id} offered {ev.call_id} while on {busy_with}")
        self.on_agent[ev.agent_id] = ev.call_id
        outcome = pb.CALL_OUTCOME_NO_ANSWER if ev.attempt == 1 and self.rng.random() < 0.3 else pb.CALL_OUTCOME_ANSWERED
        task = asyncio.create_task(self.end(ev, outcome, self.rng.uniform(0.05, 0.25)))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def end(self, ev: pb.CallRouted, outcome: int, after_s: float) -> None:
        await asyncio.sleep(after_s)  # the agent talks (or lets it ring) for a while
        if self.on_agent.get(ev.agent_id) == ev.call_id:
            del self.on_agent[ev.agent_id]
        self.outcome[(ev.call_id, ev.attempt)] = outcome
        await self.bus.publish(CALL_ENDED, ended(ev.call_id, outcome, ev.attempt, ev.agent_id))

    def answered(self) -> set[str]:
        return {c for (c, _), o in self.outcome.items() if o == pb.CALL_OUTCOME_ANSWERED}


async def test_sigkill_mid_stream_loses_no_call_and_books_no_agent_twice(instance, bus, kafka):
    calls = [new_call_id() for _ in range(36)]
    async with Results(kafka, (CALL_ROUTED, CALL_REJECTED)) as results:
        edge = Edge(bus, results, set(calls))
        edge_task = asyncio.create_task(edge.run())
        queue = instance.start()
        try:
            kills = []
            for i, c in enumerate(calls):
                await bus.publish(CALL_QUEUED, queued(c, "crash"))
                await asyncio.sleep(0.02)
                if i in (11, 23):  # mid-stream: agents on calls, calls waiting, outcomes in flight
                    routed_calls = {k[0] for k in edge.offers}
                    kills.append((len(edge.on_agent), i + 1 - len(routed_calls & set(calls[: i + 1]))))
                    queue.kill()  # SIGKILL: no last snapshot
                    await asyncio.sleep(0.2)  # the edge goes on ending calls meanwhile
                    queue = instance.start()
                    assert queue.info["restored"] is True
            assert any(busy and waiting for busy, waiting in kills), f"(busy agents, waiting calls) at the kills: {kills}"
            await until("every call answered or rejected", lambda: edge.answered() | rejected_calls(results, calls) >= set(calls))
            await asyncio.gather(*edge.tasks)
        finally:
            edge_task.cancel()
            await asyncio.gather(edge_task, return_exceptions=True)
    assert edge.violations == []

    # Read back from the topics: one decision per offer, exactly one outcome per call.
    events = [(t, e) for t, e in await read_topics(kafka, [CALL_ROUTED, CALL_REJECTED, CALL_ENDED]) if e.call_id in set(calls)]
    by_id: dict[str, bytes] = {}
    for _, e in events:
        if e.event_id in by_id:  # published again after a crash: must be the very same event
            assert by_id[e.event_id] == e.SerializeToString(), e.event_id
        by_id[e.event_id] = e.SerializeToString()
    offers: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    rejections: dict[str, set[str]] = defaultdict(set)
    outcomes: dict[tuple[str, int], int] = {}
    for t, e in events:
        if t is CALL_ROUTED:
            offers[e.call_id][e.attempt].add(e.agent_id)
            assert e.agent_id in CRASH_AGENTS
        elif t is CALL_REJECTED:
            rejections[e.call_id].add(e.event_id)
        else:
            outcomes[(e.call_id, e.attempt)] = e.outcome
    for c in calls:
        attempts = offers[c]
        assert sorted(attempts) == list(range(1, len(attempts) + 1)), (c, dict(attempts))
        assert all(len(agents) == 1 for agents in attempts.values()), (c, dict(attempts))  # no offer to two agents
        agents = [next(iter(attempts[n])) for n in sorted(attempts)]
        assert len(set(agents)) == len(agents), (c, agents)  # never the same agent twice for one call
        last = max(attempts, default=0)
        for n in range(1, last):
            assert outcomes.get((c, n)) == pb.CALL_OUTCOME_NO_ANSWER, (c, n)
        answered = last and outcomes.get((c, last)) == pb.CALL_OUTCOME_ANSWERED
        assert (1 if answered else 0) + len(rejections[c]) == 1, (c, dict(attempts), rejections[c])

    # No agent is left booked: four new calls go to the four agents at once.
    probes = [new_call_id() for _ in CRASH_AGENTS]
    for c in probes:
        await bus.publish(CALL_QUEUED, queued(c, "crash"))
    routed = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id in probes, count=len(probes))
    assert {e.agent_id for e in routed} == CRASH_AGENTS
    for e in routed:
        await bus.publish(CALL_ENDED, ended(e.call_id, pb.CALL_OUTCOME_ANSWERED, e.attempt, e.agent_id))
    assert queue.stop() == 0, queue.logs()


def rejected_calls(results: Results, calls: list[str]) -> set[str]:
    wanted = set(calls)
    return {k for t, k, _ in results.records if t == CALL_REJECTED.name and k in wanted}


# -- the snapshot itself ---------------------------------------------------------------------------
async def test_state_is_one_compacted_record_per_instance_with_offsets_and_no_pending_decisions_after_a_clean_stop(
    instance, bus, kafka
):
    queue = instance.start()
    c = new_call_id()
    await bus.publish(CALL_QUEUED, queued(c, "sr"))
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == c)
    assert queue.stop() == 0
    snapshots = [e for _, e in await read_topics(kafka, [QUEUE_STATE]) if e.instance == instance.group and e.segment == 0]
    assert len(snapshots) >= 2  # at start, before the decision, at the stop
    last = snapshots[-1]
    assert [s.seq for s in snapshots] == sorted(s.seq for s in snapshots)
    assert last.outbox == [] and {o.topic for o in last.offsets} == {CALL_QUEUED.name, CALL_ENDED.name, CALLBACK_REQUESTED.name}
    [on_agent] = decode_acd(last.acd)["active"]
    [(_, record)] = [(e, r) for r, e in await wait_records(kafka, CALL_QUEUED, lambda r, e: e.call_id == c)]
    assert (on_agent["call_id"], on_agent["agent_id"]) == (c, "r1")
    assert on_agent["payload"] == [record.partition, record.offset]  # where its call.queued is, not a copy
    # The decision for c was in the snapshot written before it was published.
    decided = [s for s in snapshots if any(o.topic == CALL_ROUTED.name for o in s.outbox)]
    assert len(decided) == 1 and decided[0].outbox[0].key == c.encode()
    await bus.publish(CALL_ENDED, ended(c, pb.CALL_OUTCOME_ANSWERED, 1, "r1"))


# -- a crash at the worst moments, in process (the runner with a store that fails once) -------------
class Crash(Exception):
    """The process dies here."""


def runner_settings(instance: QueueInstance, kafka: KafkaSettings) -> QueueSettings:
    return QueueSettings(kafka=kafka, config=instance.workdir / "acd.yaml", group_id=instance.group, sweep_interval_s=0.1)


async def run_until_crash(runner: QueueRunner) -> None:
    """Run the runner's loop until it crashes; then drop it as a dead process would (no last snapshot)."""
    with pytest.raises(Crash):
        await asyncio.wait_for(runner.loop(asyncio.Event()), 30)
    await runner.stop()


async def test_crash_after_the_snapshot_before_publishing_publishes_the_same_decision_after_restart(instance, bus, kafka):
    settings = runner_settings(instance, kafka)
    config = load_config(settings.config)
    first = QueueRunner(settings, config)
    await first.start()
    publish = first.store.publish

    async def crash_with_decisions(outbox, stop=None):
        if outbox:
            raise Crash
        await publish(outbox, stop)

    first.store.publish = crash_with_decisions  # type: ignore[method-assign]  # the crash injected
    c = new_call_id()
    await bus.publish(CALL_QUEUED, queued(c, "sr"))
    await run_until_crash(first)
    assert [e for _, e in await read_topics(kafka, [CALL_ROUTED]) if e.call_id == c] == []  # nobody saw the decision yet
    [decision] = [
        o
        for _, s in await read_topics(kafka, [QUEUE_STATE])
        if s.instance == instance.group
        for o in s.outbox
        if o.key == c.encode()
    ]

    second = QueueRunner(settings, config)
    await second.start()
    try:
        [routed] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == c)
        assert routed.SerializeToString() == decision.value  # the decision taken before the crash, not a new one
        assert second.service.acd.agent_of(c) == routed.agent_id == "r1"
        c2 = new_call_id()  # r1 is busy: the next call goes to r2
        await bus.publish(CALL_QUEUED, queued(c2, "sr"))
        stop = asyncio.Event()
        loop = asyncio.create_task(second.loop(stop))
        [r2] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == c2)
        assert r2.agent_id == "r2"
        stop.set()
        await loop
    finally:
        await second.stop()
    assert len([e for _, e in await read_topics(kafka, [CALL_ROUTED]) if e.call_id == c]) == 1


async def test_crash_before_the_snapshot_decides_again_from_the_last_snapshot(instance, bus, kafka):
    settings = runner_settings(instance, kafka)
    config = load_config(settings.config)
    first = QueueRunner(settings, config)
    await first.start()
    write_snapshot = first.store.write_snapshot

    async def crash_with_decisions(state):
        if state.outbox:
            raise Crash
        return await write_snapshot(state)

    first.store.write_snapshot = crash_with_decisions  # type: ignore[method-assign]  # the crash injected
    c = new_call_id()
    await bus.publish(CALL_QUEUED, queued(c, "sr"))
    await run_until_crash(first)
    assert first.service.acd.agent_of(c) == "r1"  # decided in memory, never written, never published

    second = QueueRunner(settings, config)
    await second.start()
    stop = asyncio.Event()
    loop = asyncio.create_task(second.loop(stop))
    try:
        [routed] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == c)  # call.queued read again
        assert routed.agent_id == "r1"
    finally:
        stop.set()
        await loop
        await second.stop()
    assert len([e for _, e in await read_topics(kafka, [CALL_ROUTED]) if e.call_id == c]) == 1


async def state_records(kafka: KafkaSettings, group: str) -> list[tuple[str, bytes | None]]:
    """(key, value) of every record of `group` in queue.state, tombstones included, in order."""
    consumer = make_consumer(kafka, None, "test")
    await consumer.start()
    out = []
    try:
        await consumer.topics()
        tps = [TopicPartition(QUEUE_STATE.name, p) for p in sorted(consumer.partitions_for_topic(QUEUE_STATE.name))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + 20
        pending = set(tps)
        while pending:
            assert time.monotonic() < deadline
            for records in (await consumer.getmany(timeout_ms=100)).values():
                out += [(r.key.decode(), r.value) for r in records if r.key.decode().split("/")[0] == group]
            for tp in list(pending):
                if consumer.highwater(tp) is not None and await consumer.position(tp) >= consumer.highwater(tp):
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return out


async def test_finished_call_ids_survive_a_restart_in_sealed_segments_and_old_segments_are_dropped(instance, bus, kafka):
    settings = runner_settings(instance, kafka)
    config = load_config(settings.config)
    first = QueueRunner(settings, config)
    first.done.segment_size, first.done.keep = 2, 4  # small, to seal and drop segments with a few calls
    await first.start()
    stop = asyncio.Event()
    loop = asyncio.create_task(first.loop(stop))
    calls = [new_call_id() for _ in range(7)]
    events = {c: queued(c, "sr") for c in calls}
    for c in calls:
        await bus.publish(CALL_QUEUED, events[c])
        [r] = await wait_event(kafka, CALL_ROUTED, lambda e, c=c: e.call_id == c)
        await bus.publish(CALL_ENDED, ended(c, pb.CALL_OUTCOME_ANSWERED, 1, r.agent_id))
    await until("every call ended", lambda: first.service.acd.finished == len(calls))
    stop.set()
    await loop
    await first.flush(force=True)
    await first.stop()
    # 7 finished ids: segments 1-3 of 2 ids sealed, one id in the snapshot; segment 1 is not needed to keep 4.
    keys = [(k, v is None) for k, v in await state_records(kafka, instance.group) if "/done/" in k]
    done = f"{instance.group}/done"
    assert keys == [(f"{done}/1", False), (f"{done}/2", False), (f"{done}/3", False), (f"{done}/1", True)], keys

    second = QueueRunner(settings, config)
    await second.start()
    assert second.service.acd.done_ids() == calls[2:]
    stop = asyncio.Event()
    loop = asyncio.create_task(second.loop(stop))
    try:
        for c in (calls[3], calls[6]):  # redelivered after the restart: still known, so ignored
            await bus.publish(CALL_QUEUED, events[c])
            await handled(bus, kafka, c)
    finally:
        stop.set()
        await loop
        await second.stop()
    routed = [e.call_id for _, e in await read_topics(kafka, [CALL_ROUTED]) if e.call_id in (calls[3], calls[6])]
    assert sorted(routed) == sorted([calls[3], calls[6]])


async def test_a_tombstone_resets_the_state_and_an_unreadable_snapshot_stops_the_start_with_the_fix(instance, kafka):
    queue = instance.start()
    assert queue.info["restored"] is False
    assert queue.stop() == 0
    assert instance.start().info["restored"] is True
    assert instance.process.stop() == 0

    await publish_raw(kafka, [(QUEUE_STATE.name, instance.group.encode(), None)])  # tombstone: start empty
    assert instance.start().info["restored"] is False
    assert instance.process.stop() == 0

    await publish_raw(kafka, [(QUEUE_STATE.name, instance.group.encode(), b"\xff\xfe not a snapshot")])
    broken = ServiceProcess("queue", instance.env, instance.workdir / "ready", instance.workdir / "broken.log")
    assert broken.wait(60) == 2, broken.logs()
    out = broken.logs()
    assert f"the snapshot of queue instance '{instance.group}' is unreadable" in out and "Fix: publish a tombstone" in out
    assert "Traceback" not in out


async def test_a_snapshot_over_the_record_limit_is_written_in_chunks_and_restored_whole(instance, bus, kafka):
    """Many waiting calls: the state is over max_record_bytes, so it goes out in chunks; a restart joins them."""
    small = kafka.model_copy(update={"max_record_bytes": 10_000})
    settings = QueueSettings(kafka=small, config=instance.workdir / "acd.yaml", group_id=instance.group, sweep_interval_s=0.1)
    config = load_config(settings.config)
    first = QueueRunner(settings, config)
    await first.start()
    stop = asyncio.Event()
    loop = asyncio.create_task(first.loop(stop))
    calls = [new_call_id() for _ in range(400)]
    await publish_raw(kafka, [(CALL_QUEUED.name, c.encode(), codec.encode(queued(c, "rp"))) for c in calls])
    await until("all calls read", lambda: len(first.service.acd.live_calls()) == len(calls), timeout_s=60)
    stop.set()
    await loop
    await first.flush(force=True)
    waiting = [c.call_id for c in first.service.acd.waiting["rp"]]
    [on_agent] = [c for c in calls if first.service.acd.agent_of(c) == "p1"]
    await first.stop()
    assert len(waiting) == len(calls) - 1 and first.store.chunked >= 1
    assert first.stats["max_bytes"] > small.max_record_bytes
    records = await state_records(kafka, instance.group)
    assert all(v is None or len(v) <= small.max_record_bytes for _, v in records), "every record under the limit"
    chunk_keys = {k for k, v in records if "/chunk/" in k and v is not None}
    assert len(chunk_keys) >= 2

    second = QueueRunner(settings, config)
    await second.start()
    try:
        assert second.restored
        assert [c.call_id for c in second.service.acd.waiting["rp"]] == waiting  # same calls, same order
        assert second.service.acd.agent_of(on_agent) == "p1"
        assert all(c.payload.event.call_id == c.call_id for c in second.service.acd.waiting["rp"])  # payloads read back
        await second.flush(force=True)  # a new chunked snapshot: the previous one's chunks are tombstoned
    finally:
        await second.stop()
    tombstoned = {k for k, v in await state_records(kafka, instance.group) if "/chunk/" in k and v is None}
    assert tombstoned >= chunk_keys


async def test_a_decision_the_broker_refuses_for_a_while_is_retried_not_a_crash(instance, bus, kafka):
    """Publishing the outbox times out (broker hiccup): the runner retries with backoff and publishes it once."""
    settings = runner_settings(instance, kafka)
    first = QueueRunner(settings, load_config(settings.config))
    await first.start()
    producer = first.store.producer
    send = producer.send_and_wait
    refused = 0

    async def flaky(topic, value=None, key=None, **kw):
        nonlocal refused
        if topic == CALL_ROUTED.name and refused < 3:
            refused += 1
            raise KafkaTimeoutError("injected: the broker did not answer")
        return await send(topic, value, key=key, **kw)

    producer.send_and_wait = flaky  # type: ignore[method-assign]  # the failure injected at the wiring point
    stop = asyncio.Event()
    loop = asyncio.create_task(first.loop(stop))
    try:
        c = new_call_id()
        await bus.publish(CALL_QUEUED, queued(c, "sr"))
        [routed] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == c)
        assert refused == 3 and not loop.done()
    finally:
        stop.set()
        await loop
        await first.stop()
    assert len([e for _, e in await read_topics(kafka, [CALL_ROUTED]) if e.call_id == c]) == 1
    assert routed.agent_id in ("r1", "r2")


# -- callbacks on virtual hold -------------------------------------------------------------------
def callback_requested(call_id: str, queue_id: str) -> pb.CallbackRequested:
    return pb.CallbackRequested(event_id=codec.new_id(), call_id=call_id, occurred_at=codec.now_ts(), queue_id=queue_id)


async def test_kill_9_with_callbacks_pending_places_every_callback_exactly_once(instance, bus, kafka):
    """Callbacks on virtual hold are in the snapshot: after a SIGKILL each is placed once (docs/ACD.md, Callbacks)."""
    instance.start()
    busy = new_call_id()
    callers = [new_call_id() for _ in range(3)]
    await bus.publish(CALL_QUEUED, queued(busy, "kc"))
    [on_agent] = await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == busy)
    for c in callers:
        await bus.publish(CALL_QUEUED, queued(c, "kc"))
        await wait_event(kafka, QUEUE_STATUS, lambda e, c=c: e.call_id == c)
        await bus.publish(CALLBACK_REQUESTED, callback_requested(c, "kc"))
    for c in callers:
        await wait_event(kafka, QUEUE_STATUS, lambda e, c=c: e.call_id == c and e.kind == pb.QUEUE_STATUS_KIND_CALLBACK_ACCEPTED)
    assert instance.process is not None
    instance.process.kill()  # SIGKILL: no last snapshot
    restarted_at = time.time()
    instance.start()
    # The restarted queue holds the three callbacks, past their max_wait_s: not abandoned (virtual hold).
    await wait_event(
        kafka,
        QUEUE_SUMMARY,
        lambda e: (
            e.queue_id == "kc"
            and e.occurred_at.ToNanoseconds() / 1e9 >= restarted_at
            and e.callbacks_waiting == 3
            and e.longest_wait_s > MAX_WAIT_S
        ),
    )
    await bus.publish(CALL_ENDED, ended(busy, attempt=on_agent.attempt))
    for c in callers:  # one agent: placed one after the other, in their order
        [r] = await wait_event(kafka, CALL_ROUTED, lambda e, c=c: e.call_id == c)
        assert r.callback_attempt == 1 and r.agent_id == "kc1"
        await bus.publish(CALL_ENDED, ended(c, attempt=r.attempt))
    tail = new_call_id()
    await bus.publish(CALL_QUEUED, queued(tail, "kc"))
    await wait_event(kafka, CALL_ROUTED, lambda e: e.call_id == tail)  # everything before it was handled
    for c in callers:
        placements = await read_all(kafka, CALL_ROUTED, lambda e, c=c: e.call_id == c)
        assert len({p.event_id for p in placements}) == 1, f"{c}: placed {len(placements)} times"
        assert await read_all(kafka, CALL_REJECTED, lambda e, c=c: e.call_id == c) == []
