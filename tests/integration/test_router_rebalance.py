"""Rebalances under steady traffic: a second worker joins, the first is SIGKILLed, then comes back.

test_router_crash.py kills the only worker; test_router_workers.py runs two workers that share the
partitions from the start. Here the group changes while calls flow, which is where faust-streaming
could lose a record: a stream drops an event fetched in an older consumer generation (or while flow
control is suspended), and Faust's pure-Python stream iterator also acks it, so the next commit could
pass it (robinhood/faust#115, faust-streaming/faust#216, #221). docs/ROUTER.md ("Rebalance under
traffic") says what the runs of this test showed and why the router does not lose such a record.

Timeline (one campaign and app id of its own; calls arrive at ~5/s the whole time; the test plays the
telephony edge and ends every routed call after a short talk time, ~30 % NO_ANSWER (a re-route),
the rest ANSWERED for 30 s (a sale); the price tier auctions with the bidder):

1. worker A alone;
2. worker B joins: a rebalance, both own partitions (and standbys of each other's tables);
3. A is SIGKILLed: after the session timeout B owns every partition and recovers A's tables;
   the calls published meanwhile must all be decided by B alone;
4. A comes back (same data dir): a third rebalance;
5. the traffic stops; every call settles and every slot comes back.

Checked from the topics read back, as in test_router_crash.py: every call has exactly one outcome;
no attempt of a call is routed to two different buyers; a call the buyer answered is never routed
again; the top buyer's concurrency cap is never exceeded over time; and at the end the ledger holds
no open call (a lost call.ended or release would keep a slot forever).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from aiokafka.partitioner import murmur2

from switchboard.platform.broker import EmbeddedBroker
from switchboard.platform.topics import (
    CALL_REJECTED,
    CALL_ROUTED,
)
from switchboard.v1 import events_pb2 as pb
from tests.integration.test_router_crash import check_one_outcome_each, max_open, read_call_events
from tests.integration.test_router_ledger import Edge, Routers, edge
from tests.support import (
    ServiceProcess,
    new_call_id,
    service_env,
    stop_services,
    until,
)

pytestmark = pytest.mark.integration

CAP = 2
CALLS_PER_S = 5.0
NO_ANSWER_SHARE = 0.3
TALK_S = (0.2, 1.0)  # the top buyer's two slots are busy most of the time: reservations get denied
CALLS_PER_PHASE = 10  # calls decided after each change of the group before the next one

CONFIG = """
version: 1
publishers:
  - {id: pub, min_price: 10.00}
buyers:
  - {id: TOP,   destination: "+18005550500", bid: {type: static, price: 40.00}, billable_after_s: 10, caps: {concurrency: CAP}}
  - {id: NEXT,  destination: "+18005550501", bid: {type: static, price: 30.00}, billable_after_s: 10}
  - {id: SPARE, destination: "+18005550502", bid: {type: static, price: 20.00}, billable_after_s: 10}
campaigns:
  - {id: CAMPAIGN, numbers: ["+18885550401"], publisher: pub, routing: {timeout_ms: 3000, tiers: [{strategy: price, buyers: [TOP, NEXT, SPARE]}]}}
"""


def partition_of(call_id: str, partitions: int) -> int:
    """The partition of a call-keyed record (Kafka's default partitioner), for the failure messages."""
    return (murmur2(call_id.encode()) & 0x7FFFFFFF) % partitions


class Traffic:
    """The callers and the telephony edge: new calls at a steady rate, every routed attempt ended once."""

    def __init__(self, e: Edge, campaign: str, seed: int) -> None:
        self.e = e
        self.campaign = campaign
        self.rng = random.Random(seed)
        self.calls: list[str] = []
        self.published_at: dict[str, float] = {}
        self.ended: dict[tuple[str, int], int] = {}  # (call, attempt) → outcome the edge reported
        self.routed: dict[str, dict[int, pb.CallRouted]] = defaultdict(dict)  # call → attempt → call.routed
        self.rejected: set[str] = set()
        self._handled: set[tuple[str, int]] = set()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._talks: set[asyncio.Task] = set()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._callers()), asyncio.create_task(self._edge())]

    async def stop_calls(self) -> None:
        self._stop.set()
        await self._tasks[0]

    async def close(self) -> None:
        self._stop.set()
        for t in (*self._tasks, *self._talks):
            t.cancel()
        await asyncio.gather(*self._tasks, *self._talks, return_exceptions=True)

    async def _callers(self) -> None:
        while not self._stop.is_set():
            call_id = new_call_id()  # noted before it is published: its results may come back at once
            self.calls.append(call_id)
            self.published_at[call_id] = time.monotonic()
            await self.e.call(self.campaign, call_id)
            try:  # the pace of arrivals, cut short when the traffic stops
                await asyncio.wait_for(self._stop.wait(), self.rng.expovariate(CALLS_PER_S))
            except TimeoutError:
                pass

    async def _edge(self) -> None:
        seen = 0
        while True:
            records = self.e.results.records
            while seen < len(records):
                topic, call_id, ev = records[seen]
                seen += 1
                if call_id not in self.published_at:
                    continue  # another test's call
                if topic == CALL_REJECTED.name:
                    self.rejected.add(call_id)
                elif topic == CALL_ROUTED.name:
                    self.routed[call_id][ev.attempt] = ev
                    key = (call_id, ev.attempt)
                    if key not in self._handled:  # a repeated call.routed rings once
                        self._handled.add(key)
                        talk = asyncio.create_task(self._talk(ev))
                        self._talks.add(talk)
                        talk.add_done_callback(self._talks.discard)
            await asyncio.sleep(0.01)

    async def _talk(self, routed: pb.CallRouted) -> None:
        await asyncio.sleep(self.rng.uniform(*TALK_S))
        if self.rng.random() < NO_ANSWER_SHARE:
            outcome, seconds = pb.CALL_OUTCOME_NO_ANSWER, 0
        else:
            outcome, seconds = pb.CALL_OUTCOME_ANSWERED, 30
        await self.e.end(routed, outcome, seconds)
        self.ended[(routed.call_id, routed.attempt)] = outcome

    # -- conditions on what the test has seen so far

    def decided(self, call_id: str) -> bool:
        return call_id in self.rejected or bool(self.routed.get(call_id))

    def settled(self, call_id: str) -> bool:
        """Rejected, or an attempt the edge ended answered (the sale stands)."""
        return call_id in self.rejected or any(
            self.ended.get((call_id, a)) == pb.CALL_OUTCOME_ANSWERED for a in self.routed.get(call_id, ())
        )

    def since(self, t: float) -> list[str]:
        return [c for c in self.calls if self.published_at[c] >= t]

    def describe(self, call_ids: list[str], partitions: int) -> str:
        return "; ".join(
            f"{c} (partition {partition_of(c, partitions)}, published {time.monotonic() - self.published_at[c]:.1f}s ago): "
            f"{[(type(x).__name__, getattr(x, 'attempt', 0), getattr(x, 'buyer_id', '')) for x in self.e.events(c)]}, "
            f"ended {[(a, pb.CallOutcome.Name(o)) for (cc, a), o in self.ended.items() if cc == c]}"
            for c in call_ids
        )


async def test_workers_join_crash_and_return_under_traffic(broker: EmbeddedBroker, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    campaign, top, nxt, spare = f"rebalance-{tag}", f"top-{tag}", f"next-{tag}", f"spare-{tag}"
    config = tmp_path / "routing.yaml"
    config.write_text(
        CONFIG.replace("CAMPAIGN", campaign)
        .replace("TOP", top)
        .replace("NEXT", nxt)
        .replace("SPARE", spare)
        .replace("CAP", str(CAP))
    )
    kafka = broker.kafka_settings()
    app_id = f"router-rebalance-{tag}"
    env = service_env(
        kafka,
        config,
        SWITCHBOARD_ROUTER_APP_ID=app_id,
        SWITCHBOARD_BIDDER_GROUP_ID=f"bidder-rebalance-{tag}",
        # Tansu holds a JoinGroup for about half the session timeout and drops a killed member only when
        # its session expires: 4 s (as test_router_crash.py) keeps each rebalance and the takeover short.
        SWITCHBOARD_KAFKA_SESSION_TIMEOUT_MS="4000",
    )
    routers = Routers(kafka, app_id, tmp_path, env)
    bidder = ServiceProcess("bidder", env, ready_dir=tmp_path / "bidder-ready", log=tmp_path / "bidder.log")
    seed = random.randrange(1 << 30)
    marks: list[tuple[str, float]] = []
    started = time.monotonic()

    async def start_worker(data_dir: str) -> list[ServiceProcess]:
        # A data dir per worker (A's again when it comes back); ready = assigned and recovered, which
        # for a joining worker means after the rebalance. In a thread: the traffic keeps flowing meanwhile.
        routers.env = {**env, "SWITCHBOARD_ROUTER_DATA_DIR": str(tmp_path / data_dir)}
        return await asyncio.to_thread(routers.start)

    try:
        await asyncio.to_thread(bidder.wait_ready, 60)
        await start_worker("router-a")
        [worker_a] = routers.procs
        async with edge(routers) as e:
            traffic = Traffic(e, campaign, seed)

            async def decided_since(what: str, t: float, timeout_s: float = 60.0) -> None:
                """CALLS_PER_PHASE calls published after `t` and every call before them decided."""

                def done() -> bool:
                    later = traffic.since(t)
                    return len(later) >= CALLS_PER_PHASE and all(
                        traffic.decided(c) for c in traffic.calls[: traffic.calls.index(later[CALLS_PER_PHASE - 1]) + 1]
                    )

                try:
                    await until(what, done, timeout_s, interval_s=0.02)
                except TimeoutError:
                    waiting = [
                        c for c in traffic.calls if not traffic.decided(c) and time.monotonic() - traffic.published_at[c] > 5
                    ]
                    raise AssertionError(
                        f"{what}: undecided {traffic.describe(waiting, kafka.partitions)}; seed {seed}; logs in {tmp_path}"
                    ) from None
                marks.append((what, time.monotonic() - started))

            try:
                traffic.start()
                try:
                    # 1. A alone.
                    await decided_since("A alone", time.monotonic())

                    # 2. B joins under traffic: a rebalance.
                    [worker_b] = await start_worker("router-b")
                    assert worker_b.info["partitions"] > 0, worker_b.info
                    await decided_since("A and B", time.monotonic())

                    # 3. A is killed under traffic: after its session expires B takes every partition.
                    worker_a.kill()  # SIGKILL by pid: no commit, no flush, no leaving the group
                    assert worker_a.proc.returncode == -9
                    await decided_since("B alone after A was killed", time.monotonic())

                    # 4. A comes back (its data dir again): a third rebalance.
                    [worker_a2] = await start_worker("router-a")
                    assert worker_a2.info["partitions"] > 0, worker_a2.info
                    await decided_since("A back with B", time.monotonic())
                finally:
                    await traffic.stop_calls()

                # 5. Every call settles (a NO_ANSWER re-routes, the edge ends the next attempt too), every
                # slot comes back to the ledger.
                calls = list(traffic.calls)
                try:
                    await until("every call settled", lambda: all(traffic.settled(c) for c in calls), 60, interval_s=0.05)
                except TimeoutError:
                    stuck = [c for c in calls if not traffic.settled(c)]
                    raise AssertionError(
                        f"not settled: {traffic.describe(stuck, kafka.partitions)}; seed {seed}; logs in {tmp_path}"
                    ) from None

                def holding() -> dict[str, list[str]]:
                    return {
                        b: sorted(e.view.loads[b][1].open_calls)
                        for b in (top, nxt, spare)
                        if b in e.view.loads and e.view.loads[b][1].open_calls
                    }

                try:
                    await until("every slot released", lambda: not holding(), 30, interval_s=0.05)
                except TimeoutError:
                    raise AssertionError(f"slots never released: {holding()}; seed {seed}; logs in {tmp_path}") from None
                ended_by_edge = dict(traffic.ended)
            finally:
                await traffic.close()
            logs = {f"router-{i}": p.logs(0) for i, p in enumerate(routers.procs)}

        # -- the checks, from the topics read back.
        events = await read_call_events(kafka, calls)
        routed_all, ended_all, rejected_all, by_call = events.routed, events.ended, events.rejected, events.by_call

        def info(call_id: str) -> str:
            c = by_call[call_id]
            return (
                f"partition {partition_of(call_id, kafka.partitions)}, routed {sorted((r.attempt, r.buyer_id) for r in c['routed'])}, "
                f"ended {sorted((x.attempt, x.buyer_id, pb.CallOutcome.Name(x.outcome)) for x in c['ended'])}, "
                f"rejected {[r.reason for r in c['rejected']]}; seed {seed}; logs in {tmp_path}"
            )

        check_one_outcome_each(events, calls, info)
        for call_id in calls:
            c = by_call[call_id]
            sold = [a for (cc, a), o in ended_by_edge.items() if cc == call_id and o == pb.CALL_OUTCOME_ANSWERED]
            assert len(sold) <= 1, f"{call_id}: sold twice: {info(call_id)}"
            assert not sold or all(r.attempt <= sold[0] for r in c["routed"]), (
                f"{call_id}: routed again after a sale: {info(call_id)}"
            )

        peak = max_open(routed_all, ended_all, top)
        assert peak <= CAP, f"{peak} calls open at once with {top} (cap {CAP}); seed {seed}; logs in {tmp_path}"

        # The run exercised what it should: re-routes, and the top buyer sold up to its cap.
        assert len(calls) >= 4 * CALLS_PER_PHASE
        rerouted = sum(1 for c in calls if any(r.attempt > 1 for r in by_call[c]["routed"]))
        assert rerouted > 0 and Counter(r.buyer_id for r in routed_all)[top] >= CAP
        denied = sum(text.count("reservation_denied") for text in logs.values())
        print(
            f"\nrebalance under traffic: {len(calls)} calls, {len(routed_all)} call.routed, {rerouted} re-routed, "
            f"{len(rejected_all)} rejected, peak {peak}/{CAP}, reservations denied {denied}, "
            f"phases {[(w, round(s, 1)) for w, s in marks]}; seed {seed}"
        )
    finally:
        # By pid: SIGTERM first (the clean shutdown), SIGKILL if one does not exit in time.
        stop_services(*[s for s in (bidder, *routers.procs) if s.proc.poll() is None])
